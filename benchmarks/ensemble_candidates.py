"""Which networks to ensemble: every subset of the given ``.keras`` networks, their logits averaged, on RAF-DB's
validation share with all seven expressions (issue 24).

    python benchmarks/ensemble_candidates.py [--views face+mirror] 40=A/emotion.keras 150=B/emotion.keras ...
    python benchmarks/ensemble_candidates.py 150=B/emotion.keras mfn=C/emotion.keras@face   # C reads the face only

For each subset and each set of test-time views (the face alone; + its mirror, as shipped; + the centre 0.9 of
the face, resized back, as ``--zoom-tta 0.9`` builds it; + both; all four), it prints the seven-class accuracy
and the four lists' precision/recall (a face joins the list of its top expression among seven), and the
network passes per face and their cost in passes of the cheapest network (timed here: a pretrained
MobileFaceNet pass costs several CNN passes).  ``--views face+mirror`` keeps one view set.
``NAME=PATH@VIEWS`` fixes one network's views whatever the row's (``python -m training ensemble
--member-views``): a costly pretrained member (``--arch mobilefacenet``) may read the face once while the small
CNNs read more; the mean is then of each network's own views, and the passes add up.
The logits are compared before calibration: a temperature does not change a face's top expression.
Float Keras, so a later int8 export of the chosen subset can read a few tenths of a point lower
(``python -m training ensemble --int8`` reports its own figures).  The table behind the shipped file is in
models/README.md ("Recipe").
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


VIEW_SETS = {  # name -> the views averaged (face, mirror, centre, centre mirrored)
    "face": ("face",),
    "face+mirror": ("face", "mirror"),
    "face+centre": ("face", "centre"),
    "face+mirror+centre": ("face", "mirror", "centre"),
    "all four": ("face", "mirror", "centre", "centre mirror"),
}
ZOOM = 0.9


def view_inputs(x):
    """The four views of faces ``x`` (N, S, S, C), the centre one computed by the layers ``views_mean`` uses."""
    import numpy as np
    from keras import layers

    side = x.shape[1]
    inner = int(round(side * ZOOM))
    centre = np.asarray(layers.Resizing(side, side, interpolation="bilinear")(layers.CenterCrop(inner, inner)(x)))
    return {"face": x, "mirror": x[:, :, ::-1], "centre": centre, "centre mirror": centre[:, :, ::-1]}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    only = None
    if "--views" in args:
        i = args.index("--views")
        only = args[i + 1] if i + 1 < len(args) else ""
        del args[i:i + 2]
        if only not in VIEW_SETS:
            print(f"--views {only!r}: one of {', '.join(VIEW_SETS)}", file=sys.stderr)
            return 2
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
    sets = {only: VIEW_SETS[only]} if only else VIEW_SETS
    fixed: dict[str, tuple[str, ...] | None] = {}
    paths = {}
    for arg in args:
        name, path = arg.split("=", 1)
        path, _, own = path.rpartition("@") if "@" in path and not Path(path).is_file() else (path, "", "")
        if own and own not in VIEW_SETS:
            print(f"{arg}: views {own!r} are not one of {', '.join(VIEW_SETS)}", file=sys.stderr)
            return 2
        paths[name], fixed[name] = path, VIEW_SETS[own] if own else None
    needed = sorted({v for views in list(sets.values()) + [f for f in fixed.values() if f] for v in views})
    inputs = {k: v for k, v in view_inputs(x).items() if k in needed}
    logits, seconds = {}, {}
    for name, path in paths.items():
        m = keras.models.load_model(path, compile=False)
        use = fixed[name] or needed
        logits[name] = {}
        m.predict(x[:256], batch_size=256, verbose=0)  # warm-up: tracing is not a pass's cost
        for v, xv in inputs.items():
            if v in use:
                start = time.perf_counter()
                logits[name][v] = m.predict(xv, batch_size=256, verbose=0)
                seconds.setdefault(name, []).append(time.perf_counter() - start)
    # a pass of each network, in passes of the cheapest one (medians of its views' timings, Keras on this machine)
    unit = min(statistics.median(t) for t in seconds.values())
    cost = {n: statistics.median(t) / unit for n, t in seconds.items()}
    print("cost of one pass, in passes of the cheapest network: "
          + ", ".join(f"{n} {c:.1f}" for n, c in cost.items()))
    print(f"{'networks':22} {'views':19} passes  cost  seven-class  "
          + "  ".join(f"{e} P/R".ljust(13) for e in EMOTIONS))
    for r in range(1, len(logits) + 1):
        for subset in itertools.combinations(logits, r):
            for set_name, views in sets.items():
                own = {n: fixed[n] or views for n in subset}
                mean = sum(sum(logits[n][v] for v in own[n]) / len(own[n]) for n in subset) / len(subset)
                lv = list_view(mean[:, :-1], labels)
                cells = "  ".join(f"{100 * lv['lists'][e]['precision']:.1f}/{100 * lv['lists'][e]['recall']:.1f}"
                                  .ljust(13) for e in EMOTIONS)
                print(f"{' + '.join(subset):22} {set_name:19} {sum(len(v) for v in own.values()):6d}  "
                      f"{sum(len(v) * cost[n] for n, v in own.items()):4.1f}  "
                      f"{lv['seven_class_accuracy']:10.1%}  {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
