"""Face-detection quality and speed on real photos, detectors side by side.

    python benchmarks/detection.py [--limit 400] [--detectors albumsort,yunet-default,mtcnn] [--sweep] [--side 1000]

* Recall: WIDER FACE validation sample (../shared/data/wider-face-val-sample,
  1024 px wide, crowds to portraits): share of annotated faces at least 32,
  48 and 64 px tall matched by a detection at IoU >= 0.5.
* Precision: share of detections that match any annotated face (of any size)
  at IoU >= 0.5. WIDER leaves some faces in crowds unannotated, so this is a
  lower bound.
* False alarms: share of photos with at least one detection among the 704
  no-face scenes and dlib's dogs.jpg; and among the sample images without a
  face that ship in scikit-image and matplotlib (hubble_deep_field, coffee,
  chelsea, rocket, ...), at full size.
* Speed: median milliseconds per WIDER photo, one process, one thread.

Figures are printed for the WIDER events and scenes the emotion model's
readability score never saw in training (``held-out``: ``is_training_share``
false) and for all photos.  ``--sweep`` prints how recall and precision move
with the rule that turns candidates into faces, on the training share (where
the shipped rule was chosen) and on the held-out share.

``albumsort`` is the detector exactly as ``albumsort index`` runs it
(``indexer.find_faces``: one YuNet pass, then ``faces.confirmed``).
"""

from __future__ import annotations

import argparse
import csv
import math
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

from albumsort.emotions import EmotionModel  # noqa: E402
from albumsort.faces import CANDIDATE_SCORE, DETECT_SIDE, MIN_SIZE, READABLE, SURE_SCORE, YuNetDetector, iou, make_detector  # noqa: E402,E501
from albumsort.indexer import detect_and_crop, find_faces  # noqa: E402
from training.data import is_training_share  # noqa: E402

TARGETS = {"recall32": 0.90, "precision": 0.90, "false_alarm": 0.005}
SIZES = (32, 48, 64)
NO_FACE_SAMPLES = ("brick", "chelsea", "checkerboard", "clock", "coffee", "coins", "colorwheel", "grass", "gravel",
                   "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon", "page",
                   "retina", "rocket", "text", "stereo_motorcycle", "cell", "binary_blobs", "shepp_logan_phantom")
"""scikit-image samples without a face (astronaut and camera have one); matplotlib adds two more."""


class Albumsort:
    """The detector plus the emotion model's confirmation, as ``albumsort index`` finds faces."""

    def __init__(self, side: int = DETECT_SIDE):
        self.detector = YuNetDetector(side=side)
        self.model = EmotionModel(threads=1)
        self.version = f"{self.detector.version} + {self.model.version} readability"

    def detect(self, rgb):
        return find_faces(rgb, self.detector, self.model)[0]


def detectors(names: list[str], side: int):
    for name in names:
        if name == "albumsort":
            yield name, Albumsort(side)
        elif name == "yunet-default":  # yuface out of the box: one pass, its own 0.5 threshold
            yield name, YuNetDetector(min_score=0.5, min_size=0, side=side)
        elif name == "mtcnn":
            try:
                yield name, make_detector("mtcnn")
            except Exception as e:
                print(f"mtcnn unavailable: {e}", file=sys.stderr)
        else:
            raise SystemExit(f"unknown detector {name}")


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def wider_truth(limit: int) -> dict[str, list]:
    gt = defaultdict(list)
    with open(DATA / "wider-face-val-sample" / "boxes.csv") as f:
        for r in csv.DictReader(f):
            gt[r["path"]].append(tuple(float(r[k]) for k in "xywh"))
    return {p: gt[p] for p in sorted(gt)[:limit]}


def no_face_samples() -> list[tuple[str, np.ndarray]]:
    """(name, RGB) of the sample images without a face that are installed."""
    out = []
    try:
        import skimage.data as sk

        for n in NO_FACE_SAMPLES:
            try:
                a = getattr(sk, n)()
            except Exception:  # samples that need a download are skipped
                continue
            a = np.asarray(a[0] if isinstance(a, tuple) else a)  # stereo_motorcycle: (left, right, disparity)
            if a.dtype != np.uint8:
                a = (np.clip(a, 0, 1) * 255).astype(np.uint8) if a.dtype.kind == "f" else (a > 0).astype(np.uint8) * 255
            out.append((n, np.asarray(Image.fromarray(a).convert("RGB"))))
    except ImportError:
        pass
    try:
        import matplotlib

        for n in ("logo2.png", "Minduka_Present_Blue_Pack.png"):
            out.append((n, load(Path(matplotlib.get_data_path()) / "sample_data" / n)))
    except ImportError:
        pass
    return out


def scenes() -> list[Path]:
    return sorted((DATA / "no-face-scenes").rglob("*.jpg")) + [DATA / "dlib-faces" / "dogs.jpg"]


def score_boxes(found: dict[str, list], gt: dict[str, list], photos) -> dict:
    tp = fp = 0
    big = dict.fromkeys(SIZES, 0)
    hit = dict.fromkeys(SIZES, 0)
    for p in photos:
        boxes = found[p]
        for b in boxes:
            if any(iou(b, g) >= 0.5 for g in gt[p]):
                tp += 1
            else:
                fp += 1
        for g in gt[p]:
            matched = any(iou(b, g) >= 0.5 for b in boxes)
            for s in SIZES:
                if g[3] >= s:
                    big[s] += 1
                    hit[s] += matched
    out = {f"recall{s}": hit[s] / max(big[s], 1) for s in SIZES}
    out.update(precision=tp / max(tp + fp, 1), detections=tp + fp, faces32=big[32], photos=len(photos))
    return out


def evaluate(det, limit: int) -> dict:
    gt = wider_truth(limit)
    found, times = {}, []
    for p in gt:
        rgb = load(DATA / "wider-face-val-sample" / "images" / p)
        t = time.perf_counter()
        faces = det.detect(rgb)
        times.append(time.perf_counter() - t)
        found[p] = [f.box for f in faces]
    held = [p for p in gt if not is_training_share(p.split("/")[0])]
    rows = {"held-out": score_boxes(found, gt, held), "all": score_boxes(found, gt, list(gt))}
    alarms = {s.name: bool(det.detect(load(s))) for s in scenes()}
    rows["held-out"]["false_alarm"] = statistics.mean(v for k, v in alarms.items() if not is_training_share(k))
    rows["held-out"]["no_face_photos"] = sum(1 for k in alarms if not is_training_share(k))
    rows["all"]["false_alarm"] = statistics.mean(alarms.values())
    rows["all"]["no_face_photos"] = len(alarms)
    samples = no_face_samples()
    flagged = [n for n, rgb in samples if det.detect(rgb)]
    for r in rows.values():
        r.update(samples=len(samples), sample_faces=len(flagged) / max(1, len(samples)), flagged=flagged,
                 ms_per_photo=1000 * statistics.median(times))
    return rows


def sweep(limit: int) -> None:
    """Recall/precision of candidate rules, from one YuNet pass at its floor and the model's readability."""
    det = YuNetDetector(min_score=0.2, min_size=0)
    model = EmotionModel(threads=1)
    gt = wider_truth(limit)
    cands = {}
    for p in gt:
        rgb = load(DATA / "wider-face-val-sample" / "images" / p)
        faces, crops = detect_and_crop(rgb, det)
        read = model.score_crops(crops)[1] if faces else []
        scale = min(1.0, det.side / max(rgb.shape[:2]))
        # (YuNet score, readability, height at detection scale, box)
        cands[p] = [(f.score, float(r), f.box[3] * scale, f.box) for f, r in zip(faces, read)]
    groups = {"training share": [p for p in gt if is_training_share(p.split("/")[0])],
              "held-out": [p for p in gt if not is_training_share(p.split("/")[0])]}
    print(f"\nsweep: one YuNet pass at {det.side} px; recall (faces >= 32 px) / precision")
    print(f"{'a face when':52}" + "".join(f"{k:>22}" for k in groups))

    def line(label, keep):
        found = {p: [c[3] for c in cs if keep(c)] for p, cs in cands.items()}
        cells = []
        for g in groups.values():
            r = score_boxes(found, gt, g)
            cells.append(f"{r['recall32']:.1%} / {r['precision']:.1%}")
        print(f"{label:52}" + "".join(f"{c:>22}" for c in cells))

    for size in (0, 16, 24):
        for t in (0.2, 0.3, 0.5, 0.6, 0.7):
            line(f"YuNet >= {t}, h >= {size}", lambda c, t=t, size=size: c[0] >= t and c[2] >= size)
    for t in (0.2, 0.5):
        for r in (0.3, 0.5, 0.8, 0.9):
            line(f"YuNet >= {t} and readability >= {r}, h >= 24",
                 lambda c, t=t, r=r: c[0] >= t and c[1] >= r and c[2] >= 24)
    for size in (16, 24):
        for sure in (0.6, 0.65, 0.7):
            for low in (0.4, 0.5):
                for r in (0.5, 0.8):
                    line(f"YuNet >= {sure}, or >= {low} and readability >= {r}, h >= {size}",
                         lambda c, sure=sure, low=low, r=r, size=size: c[2] >= size
                         and (c[0] >= sure or (c[0] >= low and c[1] >= r)))
    print(f"shipped: YuNet >= {SURE_SCORE}, or >= {CANDIDATE_SCORE} and readability >= {READABLE}, h >= {MIN_SIZE}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=400, help="WIDER photos to use (all 400 by default)")
    ap.add_argument("--detectors", default="albumsort,yunet-default",
                    help="comma-separated: albumsort, yunet-default, mtcnn")
    ap.add_argument("--sweep", action="store_true", help="also print the threshold sweep")
    ap.add_argument("--side", type=int, default=DETECT_SIDE,
                    help=f"long side the detector sees (albumsort uses {DETECT_SIDE})")
    args = ap.parse_args()
    if not (DATA / "wider-face-val-sample").is_dir():
        sys.exit(f"no data at {DATA}")
    rows = {}
    for name, det in detectors(args.detectors.split(","), args.side):
        rows[name] = evaluate(det, args.limit)
        rows[name]["version"] = det.version
        print(f"{name}: done", file=sys.stderr, flush=True)
    for part in ("held-out", "all"):
        first = next(iter(rows.values()))[part]
        print(f"\n{part}: {first['photos']} WIDER photos, {first['faces32']} faces >= 32 px; "
              f"{first['no_face_photos']} no-face scenes; {first['samples']} sample images without a face")
        print(f"{'detector':16}" + "".join(f"{'recall>=' + str(s):>11}" for s in SIZES)
              + f"{'precision':>11}{'scenes w/ face':>16}{'samples w/ face':>17}{'ms/photo':>10}")
        for name, r in rows.items():
            r = {**r[part], "version": r["version"]}
            print(f"{name:16}" + "".join(f"{r[f'recall{s}']:>11.1%}" for s in SIZES)
                  + f"{r['precision']:>11.1%}{r['false_alarm']:>16.1%}{r['sample_faces']:>17.1%}"
                  f"{r['ms_per_photo']:>10.0f}")
    print()
    for name, r in rows.items():
        print(f"{name}: {r['version']}; samples with a face: {', '.join(r['all']['flagged']) or 'none'}")
    print(f"\nTargets (held-out): recall >= {TARGETS['recall32']:.0%} (faces >= 32 px), precision >= "
          f"{TARGETS['precision']:.0%}, a face on <= {TARGETS['false_alarm']:.1%} of no-face photos.")
    if args.sweep:
        sweep(args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
