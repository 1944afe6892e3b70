"""Which faces are too small to read?  SCRFD's faces on the WIDER sample by their height in the photo.

    python benchmarks/small_faces.py [--detector scrfd]
    python benchmarks/small_faces.py --resolution     # how many pixels a face needs to be read as well

Runs the photo pipeline (as ``albumsort index`` does: 1000 px decode, small
faces re-read from a larger decode) over the 400 WIDER sample photos with
the detector's floor in photo pixels lifted, and prints, per height band in
the photo's own pixels and per half (training / held-out), how many faces
the detector confirms, how many the model reads (readability >= 0.5) and how
many reach the default confidence 0.20.  The floor (``min_photo_size``,
``albumsort/detectors/scrfd.py``) is chosen from this table.  Not a timing
benchmark: it can run on a busy machine.

``--resolution`` reads RAF-DB's validation share (tight 100 px crops) shrunk
to N px and enlarged again to the model's input: the seven-class accuracy by
N says how large a face must be in the decode it is cut from
(``pipeline.READ_SIDE``); more pixels than that buy a second decode nothing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
BANDS = (0, 8, 12, 14, 16, 20, 24, 32, 48, 10**9)


def resolution(sides=(16, 20, 24, 32, 40, 48, 64, 100)) -> int:
    import numpy as np
    from PIL import Image

    from albumsort.emotions import EmotionModel
    from albumsort.labels import EXPRESSIONS
    from training.data import rafdb_files

    model = EmotionModel()
    val = rafdb_files(DATA / "rafdb", "val")
    if not val:
        sys.exit(f"no RAF-DB at {DATA / 'rafdb'}")
    faces = [Image.open(p).convert("L" if model.channels == 1 else "RGB") for p, _ in val]
    labels = np.array([EXPRESSIONS.index(e) for _, e in val])
    side = model.input_size
    print(f"{model.version}: RAF-DB validation share, {len(val)} faces, each shrunk to N px then enlarged to {side}")
    print(f"{'N px':>6}{'seven-class':>13}{'readability':>13}")
    for n in sides:
        crops = np.stack([np.asarray(f.resize((n, n), Image.Resampling.BOX)
                                     .resize((side, side), Image.Resampling.BILINEAR)) for f in faces])
        p, r = model.score_crops(crops)
        print(f"{n:>6}{100 * (p.argmax(1) == labels).mean():>12.1f}%{r.mean():>13.2f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="scrfd")
    ap.add_argument("--resolution", action="store_true", help="accuracy by the face's pixels (RAF-DB validation)")
    args = ap.parse_args()
    if args.resolution:
        return resolution()
    root = DATA / "wider-face-val-sample"
    if not root.is_dir():
        sys.exit(f"no data at {root}")

    from albumsort.faces import iou
    from albumsort.pipeline import Analysed, Pipeline, PipelineSpec
    from albumsort.scores import DEFAULT_MIN_CONFIDENCE, face_confidence
    from training.data import is_training_share

    truth = defaultdict(list)
    with open(root / "boxes.csv") as f:
        for r in csv.DictReader(f):
            truth[r["path"]].append(tuple(float(r[k]) for k in "xywh"))
    pipe = Pipeline(PipelineSpec(args.detector), threads=1)
    pipe.detector.thresholds = dataclasses.replace(pipe.detector.thresholds, min_photo_size=0)  # floor lifted
    rows = defaultdict(lambda: [0, 0, 0, 0])  # (half, band) -> faces, matched, readable, reach confidence
    for path in sorted(truth):
        res = pipe.analyse(str(root / "images" / path))
        if not isinstance(res, Analysed):
            continue
        half = "training" if is_training_share(path.split("/")[0]) else "held-out"
        for face in res.faces:
            band = max(b for b in BANDS if b <= face.box[3])
            r = rows[half, band]
            r[0] += 1
            r[1] += any(iou(face.box, g) >= 0.3 for g in truth[path])
            r[2] += face.readability >= 0.5
            r[3] += face_confidence(face.det_score, face.p, face.readability) >= DEFAULT_MIN_CONFIDENCE
    print(f"{pipe.detector.version}, floor in photo pixels lifted")
    print(f"{'half':10}{'height px':>12}{'faces':>8}{'matched':>9}{'readable':>10}{'conf>=0.20':>12}")
    for half in ("training", "held-out"):
        for lo, hi in zip(BANDS, BANDS[1:], strict=False):
            if (half, lo) in rows:
                n, m, rd, c = rows[half, lo]
                label = f"{lo}-{hi}" if hi < 10**9 else f">= {lo}"
                print(f"{half:10}{label:>12}{n:>8}{m:>9}{rd:>10}{c:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
