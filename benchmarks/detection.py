"""Face-detection quality and speed on real photos, detectors side by side.

    python benchmarks/detection.py [--limit 400] [--detectors scrfd,yunet] [--sweep scrfd] [--side N]

Every detector is measured as ``albumsort index`` runs it: the back-end from
``albumsort.detectors`` (on ONNX Runtime), then ``pipeline.find_faces`` (its
thresholds, and the emotion model's readability where the back-end asks for
it).  ``NAME@FILE`` runs back-end NAME on another ONNX file from ``models/``
(e.g. ``scrfd@scrfd_500m.onnx``); ``yuface`` is the old wheel, when installed.

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
* Speed: median and p90 milliseconds per WIDER photo, one process, one
  thread, input resize included, decode excluded (emotion model included
  where the detector needs its readability).  Only meaningful on an idle
  machine.

Figures are printed for the held-out half of the WIDER events and scenes
(``training.data.is_training_share`` false) and for all photos.  ``--sweep
NAME`` collects NAME's candidates at a low floor once, prints how recall and
precision move with the rule that turns candidates into faces on the
training half and on the held-out half, and picks the rule with the most
training-half recall at >= 90% training-half precision (the shipped
thresholds are chosen this way).
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

from albumsort.detectors import Thresholds  # noqa: E402
from albumsort.emotions import EmotionModel  # noqa: E402
from albumsort.faces import iou, make_detector  # noqa: E402
from albumsort.pipeline import crops_for, find_faces  # noqa: E402
from training.data import is_training_share  # noqa: E402

TARGETS = {"recall32": 0.90, "precision": 0.90, "false_alarm": 0.005}
SIZES = (32, 48, 64)
NO_FACE_SAMPLES = ("brick", "chelsea", "checkerboard", "clock", "coffee", "coins", "colorwheel", "grass", "gravel",
                   "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon", "page",
                   "retina", "rocket", "text", "stereo_motorcycle", "cell", "binary_blobs", "shepp_logan_phantom")
"""scikit-image samples without a face (astronaut and camera have one); matplotlib adds two more."""


class AsIndexed:
    """A detector plus the emotion model's confirmation, as ``albumsort index`` finds faces."""

    def __init__(self, name: str, side: int | None):
        back, _, file = name.partition("@")
        opts = {"threads": 1, **({"side": side} if side else {}), **({"file": file} if file else {})}
        self.detector = make_detector(back, **opts)
        self.model = EmotionModel(threads=1)
        self.version = f"{self.detector.version} + {self.model.version}"

    def detect(self, rgb):
        return find_faces(rgb, self.detector, self.model).faces


class Yuface:
    """The ``yuface`` wheel with issue 8's rule (the detector before issue 17), when installed."""

    def __init__(self, side: int | None):
        import yuface  # noqa: F401

        self.side, self.model = side or 1000, EmotionModel(threads=1)
        self.thresholds = Thresholds(candidate=0.5, sure=0.65, readable=0.5, min_size=24)
        self.version = f"yuface-s{self.side}-{self.thresholds.tag()}"

    def raw(self, rgb, photo_scale=1.0):
        import warnings

        import yuface

        from albumsort.faces import Face, resize_to

        small, s = resize_to(rgb, self.side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            confs, boxes, lms = yuface.detect(np.ascontiguousarray(small[:, :, ::-1]), conf=0.5 - 1e-6)
        return self.thresholds.sized((Face(tuple(float(v) for v in b), float(c) / 100.0,
                                           [float(v) for v in lm]).scaled(1 / s)
                                      for c, b, lm in zip(confs, boxes, lms, strict=False)), s, photo_scale)

    def detect(self, rgb):
        class Raw:
            thresholds = self.thresholds
            detect = self.raw

        return find_faces(rgb, Raw(), self.model).faces


def detectors(names: list[str], side: int | None):
    for name in names:
        if name == "yuface":
            try:
                yield name, Yuface(side)
            except ImportError:
                print("yuface is not installed: skipped", file=sys.stderr)
        else:
            yield name, AsIndexed(name, side)


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
                 ms_per_photo=1000 * statistics.median(times), ms_p90=1000 * float(np.percentile(times, 90)))
    return rows


def split(gt) -> dict[str, list]:
    return {"training half": [p for p in gt if is_training_share(p.split("/")[0])],
            "held-out half": [p for p in gt if not is_training_share(p.split("/")[0])]}


def candidates(name: str, limit: int, side: int | None, floor: float = 0.2):
    """Per WIDER photo: (score, readability, height at detection scale, box) of every candidate >= ``floor``."""
    back, _, file = name.partition("@")
    opts = {"threads": 1, "min_score": floor, "min_size": 0, **({"side": side} if side else {}),
            **({"file": file} if file else {})}
    det = make_detector(back, **opts)
    model = EmotionModel(threads=1)
    gt = wider_truth(limit)
    cands = {}
    for p in gt:
        rgb = load(DATA / "wider-face-val-sample" / "images" / p)
        faces = det.detect(rgb)
        read = model.score_crops(crops_for(rgb, faces, model.input_size, model.channels))[1] if faces else []
        scale = min(1.0, det.side / max(rgb.shape[:2]))
        cands[p] = [(f.det_score, float(r), f.box[3] * scale, f.box) for f, r in zip(faces, read, strict=False)]
    for path in scenes():
        rgb = load(path)
        faces = det.detect(rgb)
        read = model.score_crops(crops_for(rgb, faces, model.input_size, model.channels))[1] if faces else []
        scale = min(1.0, det.side / max(rgb.shape[:2]))
        cands[f"scene:{path.name}"] = [(f.det_score, float(r), f.box[3] * scale, f.box)
                                       for f, r in zip(faces, read, strict=True)]
    return det, gt, cands


def sweep(name: str, limit: int, side: int | None) -> Thresholds:
    """Recall/precision of candidate rules for detector ``name``; returns the rule chosen on the training half."""
    det, gt, cands = candidates(name, limit, side)
    groups = split(gt)
    scene_names = {"training half": [k for k in cands if k.startswith("scene:") and is_training_share(k[6:])],
                   "held-out half": [k for k in cands if k.startswith("scene:") and not is_training_share(k[6:])]}
    print(f"\nsweep: {det.version} (candidates >= 0.2); recall (faces >= 32 px) / precision / no-face scenes "
          "with a face")
    print(f"{'a face when':72}" + "".join(f"{k:>28}" for k in groups))
    rules = []
    for size in (0, 16, 24):
        for t in (0.3, 0.34, 0.36, 0.38, 0.4, 0.42, 0.44, 0.46, 0.5, 0.55, 0.6, 0.65, 0.7):
            rules.append(Thresholds(t, t, 0.5, size))
    for size in (0, 16):
        for sure in (0.5, 0.55, 0.6, 0.65, 0.7):
            for low in (0.3, 0.4, 0.5):
                for r in (0.3, 0.5, 0.8):
                    if low < sure:
                        rules.append(Thresholds(low, sure, r, size))
    best: dict = {}  # family -> (training recall, rule)
    for t in rules:
        found = {p: [c[3] for c in cs if c[2] >= t.min_size and t.confirmed(c[0], c[1])] for p, cs in cands.items()}
        res = [score_boxes(found, gt, g) for g in groups.values()]
        for r, g in zip(res, scene_names.values(), strict=False):
            r["false_alarm"] = sum(1 for k in g if found[k]) / max(1, len(g))
        if t.sure == t.candidate:
            label = f"score >= {t.candidate:g}, h >= {t.min_size:g}"
        else:
            label = f"score >= {t.sure:g}, or >= {t.candidate:g} and readability >= {t.readable:g}, h >= {t.min_size:g}"
        print(f"{label:72}" + "".join(f"{r['recall32']:>12.1%} / {r['precision']:.1%} / {r['false_alarm']:.1%}"
                                      for r in res))
        if res[0]["precision"] >= TARGETS["precision"] and res[0]["false_alarm"] <= TARGETS["false_alarm"]:
            for family in ("any rule", "score alone, no size floor" if t.sure == t.candidate and not t.min_size
                           else None):
                if family and res[0]["recall32"] > best.get(family, (-1, None))[0]:
                    best[family] = (res[0]["recall32"], t, res[1])
    for family, (_, t, held) in best.items():
        print(f"chosen on the training half among {family} (most recall at >= {TARGETS['precision']:.0%} "
              f"precision, a face on <= {TARGETS['false_alarm']:.1%} of scenes): {t}; held-out: "
              f"{held['recall32']:.1%} / {held['precision']:.1%}")
    print(f"{name} ships: {make_detector(name.partition('@')[0]).thresholds}")
    return best["any rule"][1] if best else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=400, help="WIDER photos to use (all 400 by default)")
    ap.add_argument("--detectors", default="scrfd,yunet",
                    help="comma-separated: any of albumsort.detectors (scrfd, yunet, ...), NAME@FILE.onnx, yuface")
    ap.add_argument("--sweep", metavar="NAME", default=None, help="also print the threshold sweep of detector NAME")
    ap.add_argument("--side", type=int, default=None, help="long side the detector sees (default: its own)")
    args = ap.parse_args()
    if not (DATA / "wider-face-val-sample").is_dir():
        sys.exit(f"no data at {DATA}")
    rows = {}
    for name, det in detectors([d for d in args.detectors.split(",") if d], args.side):
        rows[name] = evaluate(det, args.limit)
        rows[name]["version"] = det.version
        print(f"{name}: done", file=sys.stderr, flush=True)
    for part in ("held-out", "all"):
        if not rows:
            break
        first = next(iter(rows.values()))[part]
        print(f"\n{part}: {first['photos']} WIDER photos, {first['faces32']} faces >= 32 px; "
              f"{first['no_face_photos']} no-face scenes; {first['samples']} sample images without a face")
        print(f"{'detector':24}" + "".join(f"{'recall>=' + str(s):>11}" for s in SIZES)
              + f"{'precision':>11}{'scenes w/ face':>16}{'samples w/ face':>17}{'ms/photo':>10}{'p90':>6}")
        for name, r in rows.items():
            r = {**r[part], "version": r["version"]}
            print(f"{name:24}" + "".join(f"{r[f'recall{s}']:>11.1%}" for s in SIZES)
                  + f"{r['precision']:>11.1%}{r['false_alarm']:>16.1%}{r['sample_faces']:>17.1%}"
                  f"{r['ms_per_photo']:>10.0f}{r['ms_p90']:>6.0f}")
    print()
    for name, r in rows.items():
        print(f"{name}: {r['version']}; samples with a face: {', '.join(r['all']['flagged']) or 'none'}")
    print(f"\nTargets (held-out): recall >= {TARGETS['recall32']:.0%} (faces >= 32 px), precision >= "
          f"{TARGETS['precision']:.0%}, a face on <= {TARGETS['false_alarm']:.1%} of no-face photos.")
    if args.sweep:
        sweep(args.sweep, args.limit, args.side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
