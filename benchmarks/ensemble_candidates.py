"""Which networks to ensemble: every subset of the given ``.keras`` networks, their logits averaged, on RAF-DB's
validation share with all seven expressions (issue 24).

    python benchmarks/ensemble_candidates.py 40=A/emotion.keras 150=B/emotion.keras [ft=C/emotion.keras ...]

For each subset, with and without the mirror-image average, it prints the seven-class accuracy and the four
lists' precision/recall (a face joins the list of its top expression among seven).  The logits are compared
before calibration: a temperature does not change a face's top expression.  Float Keras, so a later int8
export of the chosen subset can read a few tenths of a point lower (``python -m training ensemble --int8``
reports its own figures).  The table behind the shipped pair is in models/README.md ("Recipe").
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or any("=" not in a for a in args):
        print(__doc__, file=sys.stderr)
        return 2
    import keras

    import training.model  # noqa: F401  (registers the Standardize layer)
    from albumsort.labels import EMOTIONS
    from albumsort.preprocess import to_model_input
    from training.data import load_rafdb
    from training.evaluate import list_view

    x, t, _ = load_rafdb(DATA / "rafdb", "val", size=96, channels=1)
    x, labels = to_model_input(x), t.argmax(1)
    logits = {}
    for arg in args:
        name, path = arg.split("=", 1)
        m = keras.models.load_model(path, compile=False)
        plain = m.predict(x, batch_size=256, verbose=0)
        logits[name] = (plain, (plain + m.predict(x[:, :, ::-1], batch_size=256, verbose=0)) / 2)
    print(f"{'networks':30} seven-class  " + "  ".join(f"{e} P/R".ljust(13) for e in EMOTIONS))
    for r in range(1, len(logits) + 1):
        for subset in itertools.combinations(logits, r):
            for flip in (0, 1):
                mean = sum(logits[n][flip] for n in subset) / len(subset)
                lv = list_view(mean[:, :-1], labels)
                cells = "  ".join(f"{100 * lv['lists'][e]['precision']:.1f}/{100 * lv['lists'][e]['recall']:.1f}"
                                  .ljust(13) for e in EMOTIONS)
                print(f"{' + '.join(subset) + (' (flip)' if flip else ''):30} {lv['seven_class_accuracy']:10.1%}  "
                      f"{cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
