"""Face-detection quality and speed on real photos, detectors side by side.

    python benchmarks/detection.py [--limit 400] [--detectors albumsort,yunet-default,mtcnn]

* Recall: WIDER FACE validation sample (../shared/data/wider-face-val-sample,
  1024 px wide, crowds to portraits): share of annotated faces at least 32 px
  tall matched by a detection at IoU >= 0.5.
* Precision: share of detections that match any annotated face (of any size)
  at IoU >= 0.5. WIDER leaves some faces in crowds unannotated, so this is a
  lower bound.
* False alarms: share of photos with at least one detection among the 704
  no-face scenes and dlib's dogs.jpg.
* Speed: median milliseconds per WIDER photo, one process, one thread.

``albumsort`` is the detector exactly as ``albumsort index`` runs it.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from albumsort.faces import YuNetDetector, iou, make_detector  # noqa: E402

TARGETS = {"recall32": 0.90, "precision": 0.90, "false_alarm": 0.01}


def detectors(names: list[str]):
    for name in names:
        if name == "albumsort":
            yield name, make_detector("yunet")
        elif name == "yunet-default":  # yuface out of the box: one pass, its own 0.5 threshold
            yield name, YuNetDetector(passes=("1x",), min_score=0.5, min_size=0, raw_score=0.5)
        elif name == "mtcnn":
            try:
                yield name, make_detector("mtcnn")
            except ImportError:
                print("mtcnn not installed: pip install mtcnn", file=sys.stderr)
        else:
            raise SystemExit(f"unknown detector {name}")


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def evaluate(det, limit: int) -> dict:
    root = DATA / "wider-face-val-sample"
    gt = defaultdict(list)
    with open(root / "boxes.csv") as f:
        for r in csv.DictReader(f):
            gt[r["path"]].append(tuple(float(r[k]) for k in "xywh"))
    paths = sorted(gt)[:limit]
    tp = fp = big = hit = 0
    times = []
    for p in paths:
        rgb = load(root / "images" / p)
        t = time.perf_counter()
        faces = det.detect(rgb)
        times.append(time.perf_counter() - t)
        boxes = [f.box for f in faces]
        for b in boxes:
            if any(iou(b, g) >= 0.5 for g in gt[p]):
                tp += 1
            else:
                fp += 1
        for g in gt[p]:
            if g[3] >= 32:
                big += 1
                hit += any(iou(b, g) >= 0.5 for b in boxes)
    scenes = sorted((DATA / "no-face-scenes").rglob("*.jpg")) + [DATA / "dlib-faces" / "dogs.jpg"]
    alarms = sum(1 for s in scenes if det.detect(load(s)))
    return {"photos": len(paths), "faces32": big, "recall32": hit / max(big, 1), "precision": tp / max(tp + fp, 1),
            "detections": tp + fp, "no_face_photos": len(scenes), "false_alarm": alarms / len(scenes),
            "ms_per_photo": 1000 * statistics.median(times)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=400, help="WIDER photos to use (all 400 by default)")
    ap.add_argument("--detectors", default="albumsort,yunet-default",
                    help="comma-separated: albumsort, yunet-default, mtcnn")
    args = ap.parse_args()
    if not (DATA / "wider-face-val-sample").is_dir():
        sys.exit(f"no data at {DATA}")
    rows = {}
    for name, det in detectors(args.detectors.split(",")):
        rows[name] = evaluate(det, args.limit)
        rows[name]["version"] = det.version
        print(f"{name}: done", file=sys.stderr, flush=True)
    print(f"{'detector':16}{'recall>=32px':>14}{'precision':>11}{'false alarms':>14}{'ms/photo':>10}  version")
    for name, r in rows.items():
        print(f"{name:16}{r['recall32']:>14.1%}{r['precision']:>11.1%}{r['false_alarm']:>14.1%}"
              f"{r['ms_per_photo']:>10.0f}  {r['version']}")
    first = next(iter(rows.values()))
    print(f"\n{first['photos']} WIDER photos, {first['faces32']} faces >= 32 px; {first['no_face_photos']} no-face "
          f"photos. Targets: recall >= {TARGETS['recall32']:.0%}, precision >= {TARGETS['precision']:.0%}, "
          f"false alarms <= {TARGETS['false_alarm']:.0%}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
