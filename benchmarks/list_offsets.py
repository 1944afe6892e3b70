"""Where the four lists' wrong faces come from, and whether a logit offset could move them out (issue 24).

    python benchmarks/list_offsets.py [MODEL.onnx]     (default: the shipped model)

On RAF-DB's validation share with all seven expressions, through albumsort's runtime: the seven-class
confusion matrix of ``MODEL`` (rows the labelled expression, columns the top one), then the four lists'
precision/recall when the surprise, fear and disgust log-probabilities are all raised by an offset, which takes
faces out of the four lists without changing the order within them.  An offset chosen here would be chosen on
the faces it is measured on: this says whether the lever exists, not what to ship.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OFFSETS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    model = Path(args[0]) if args else ROOT / "models" / "emotion.onnx"
    if not (DATA / "rafdb").is_dir():
        print(f"no RAF-DB at {DATA / 'rafdb'}", file=sys.stderr)
        return 2
    from albumsort.labels import EMOTIONS, EXPRESSIONS
    from training.data import load_rafdb
    from training.evaluate import list_view, predict

    x, t, _ = load_rafdb(DATA / "rafdb", "val", size=96, channels=1)
    labels = t.argmax(1)
    p, _ = predict(model, x)
    k = len(EXPRESSIONS)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (labels, p.argmax(1)), 1)
    print(f"{model}: RAF-DB val, {len(labels)} faces; rows labelled, columns top expression")
    print(" " * 10 + "".join(f"{e[:8]:>9}" for e in EXPRESSIONS))
    for i, e in enumerate(EXPRESSIONS):
        print(f"{e:10}" + "".join(f"{c:9d}" for c in confusion[i]))
    extra = [EXPRESSIONS.index(e) for e in EXPRESSIONS if e not in EMOTIONS]
    print("\noffset on " + ", ".join(EXPRESSIONS[i] for i in extra) + "  seven-class  "
          + "  ".join(f"{e} P/R".ljust(13) for e in EMOTIONS))
    logp = np.log(np.clip(p, 1e-9, None))
    for b in OFFSETS:
        q = logp.copy()
        q[:, extra] += b
        lv = list_view(np.exp(q), labels)
        cells = "  ".join(f"{100 * lv['lists'][e]['precision']:.1f}/{100 * lv['lists'][e]['recall']:.1f}".ljust(13)
                          for e in EMOTIONS)
        print(f"{b:>30.2f}  {lv['seven_class_accuracy']:10.1%}  {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
