"""Training data: FER2013 (challenge CSV, folder layout, FER+ votes), ExpW faces, non-faces.

Every loader returns uint8 crops (N, 48, 48) and soft targets (N, 5) over
``TARGETS``: the four product emotions in ``EMOTIONS`` order, then
``unreadable`` (not a face, or a face whose expression cannot be read).

* FER2013 with ``ferplus.csv`` beside it trains on the FER+ votes of ten
  annotators (Barsoum et al. 2016): anger/happiness/sadness/neutral votes go to
  the four emotions, unknown and not-a-face votes to ``unreadable``.  Votes for
  surprise, fear, disgust and contempt are dropped and the rest renormalised;
  a face whose plurality is one of those four is left out (see
  ``FERPLUS_MIN_KEPT``).  Without ``ferplus.csv`` the folder labels are used.
* ExpW faces (colour web photos with context) are cut by the album's own
  detector and ``crop_face``, so training sees exactly the album's framing.
* Non-faces: the detector's false boxes and random crops from photos without
  faces, from a fixed training share of the shared data (``is_training_share``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from albumsort.preprocess import EMOTIONS, FACE_SIZE

TARGETS = EMOTIONS + ("unreadable",)
UNREADABLE = len(EMOTIONS)

FERPLUS_VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                 "unknown", "NF")
FERPLUS_TO_TARGET = {"anger": 0, "happiness": 1, "sadness": 2, "neutral": 3, "unknown": UNREADABLE,
                     "NF": UNREADABLE}
FERPLUS_MIN_KEPT = 0.5
"""A face is kept when at least this share of its votes is for a target class."""

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's label order in the challenge CSV (``emotion`` column 0..6)."""

CSV_SPLITS = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}


def read_face(path: str | Path) -> np.ndarray:
    """One FER-style face file as uint8 (48, 48) grayscale."""
    with Image.open(path) as im:
        im = im.convert("L")
        if im.size != (FACE_SIZE, FACE_SIZE):
            im = im.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def load_folder(root: str | Path, limit_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``root/<emotion>/*`` images for the four emotions; other folders are ignored.

    Returns (images uint8 (N, 48, 48), labels int64 (N,)).  Files are read in
    sorted order so that a run is reproducible.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such data folder: {root}")
    images, labels = [], []
    for label, emotion in enumerate(EMOTIONS):
        folder = root / emotion
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
        if limit_per_class:
            files = files[:limit_per_class]
        for path in files:
            images.append(read_face(path))
            labels.append(label)
    if not images:
        raise ValueError(f"{root} holds none of the folders {', '.join(EMOTIONS)}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_csv(path: str | Path, split: str = "train", limit_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read the FER2013 challenge CSV (``emotion,pixels,Usage``) for one split.

    ``split`` is train, test (PublicTest) or private (PrivateTest).
    """
    usage = CSV_SPLITS[split]
    keep = {FER_CLASSES.index(e): i for i, e in enumerate(EMOTIONS)}
    images, labels, counts = [], [], {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["Usage"].strip() != usage:
                continue
            fer = int(row["emotion"])
            if fer not in keep:
                continue
            label = keep[fer]
            if limit_per_class and counts.get(label, 0) >= limit_per_class:
                continue
            counts[label] = counts.get(label, 0) + 1
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            if pixels.size != FACE_SIZE * FACE_SIZE:
                raise ValueError(f"{path}: a row has {pixels.size} pixels, expected {FACE_SIZE * FACE_SIZE}")
            images.append(pixels.reshape(FACE_SIZE, FACE_SIZE))
            labels.append(label)
    if not images:
        raise ValueError(f"{path}: no {usage} rows for {', '.join(EMOTIONS)}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load(data: str | Path, split: str, limit_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a split from either form: a CSV file, or a folder with train/ and test/.

    A folder that directly holds emotion folders is read as it is.
    """
    data = Path(data)
    if data.is_file():
        return load_csv(data, split, limit_per_class)
    sub = data / split
    if sub.is_dir():
        return load_folder(sub, limit_per_class)
    if split == "private":
        raise FileNotFoundError(f"{data} has no private/ folder")
    return load_folder(data, limit_per_class)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of every class held out."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = int(round(len(idx) * fraction))
        held.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Integer labels (0..4) to float32 targets (N, 5)."""
    out = np.zeros((len(labels), len(TARGETS)), np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def ferplus_targets(votes: dict[str, int]) -> np.ndarray | None:
    """Soft targets over ``TARGETS`` from one face's FER+ votes, or None to leave the face out."""
    total = sum(votes.values())
    t = np.zeros(len(TARGETS), np.float32)
    for name, cls in FERPLUS_TO_TARGET.items():
        t[cls] += votes.get(name, 0)
    if total == 0 or t.sum() < FERPLUS_MIN_KEPT * total:
        return None
    return t / t.sum()


def ferplus_majority(votes: dict[str, int]) -> int:
    """FER+ majority label as an EMOTIONS index, or -1 (another class won, or a tie at the top)."""
    counts = [votes.get(v, 0) for v in FERPLUS_VOTES]
    best = max(counts)
    if best == 0 or counts.count(best) > 1:
        return -1
    name = FERPLUS_VOTES[counts.index(best)]
    return FERPLUS_TO_TARGET[name] if name in ("anger", "happiness", "sadness", "neutral") else -1


def read_ferplus(root: str | Path) -> dict[str, dict[str, int]]:
    """``ferplus.csv`` under ``root`` as {file relative to root: votes}; faces without votes are absent."""
    path = Path(root) / "ferplus.csv"
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("pixels", "original") != "original":
                continue
            out[row["file"]] = {v: int(row.get(v) or 0) for v in FERPLUS_VOTES}
    return out


def load_ferplus(root: str | Path, split: str, labels: str = "votes",
                 limit_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FER2013 faces of ``split`` (train or test) with FER+ labels.

    ``labels="votes"``: soft targets (N, 5) from ``ferplus_targets``.
    ``labels="majority"``: one-hot targets of the FER+ majority, only for
    faces whose majority is one of the four emotions (the evaluation set).
    """
    root = Path(root)
    votes = read_ferplus(root)
    images, targets, counts = [], [], {}
    for rel in sorted(votes):
        if not rel.startswith(split + "/"):
            continue
        if labels == "majority":
            m = ferplus_majority(votes[rel])
            if m < 0:
                continue
            t = one_hot(np.array([m]))[0]
        else:
            t = ferplus_targets(votes[rel])
            if t is None:
                continue
        cls = int(t.argmax())
        if limit_per_class and counts.get(cls, 0) >= limit_per_class:
            continue
        counts[cls] = counts.get(cls, 0) + 1
        images.append(read_face(root / rel))
        targets.append(t)
    if not images:
        raise ValueError(f"{root}/ferplus.csv: no faces for split {split}")
    return np.stack(images), np.stack(targets).astype(np.float32)


def load_fer(data: str | Path, split: str, limit_per_class: int | None = None,
             labels: str = "votes") -> tuple[np.ndarray, np.ndarray]:
    """FER2013 as (images, targets (N, 5)): FER+ votes when ``ferplus.csv`` is there, else the given labels."""
    data = Path(data)
    if data.is_dir() and (data / "ferplus.csv").is_file() and labels != "folder":
        return load_ferplus(data, split, labels, limit_per_class)
    x, y = load(data, split, limit_per_class)
    return x, one_hot(y)


# -- ExpW: faces from web photos, cut as the album cuts them ------------------
EXPW_SPLITS = {"train": (0.0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.0)}
"""Fixed shares of every ExpW class (shuffled with seed 0): 70% train, 10% validation, 20% held out."""


def expw_rows(root: str | Path, split: str) -> list[dict]:
    """The labels.csv rows of one ExpW split, stratified by emotion and stable across runs."""
    root = Path(root)
    with open(root / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["emotion"] in EMOTIONS]
    lo, hi = EXPW_SPLITS[split]
    out = []
    for e in EMOTIONS:
        rs = sorted((r for r in rows if r["emotion"] == e), key=lambda r: r["file"])
        order = np.random.default_rng(0).permutation(len(rs))
        out += [rs[i] for i in order[int(lo * len(rs)):int(hi * len(rs))]]
    return out


def album_crop(rgb: np.ndarray, box, detector) -> tuple[np.ndarray, bool]:
    """The 48x48 crop the album pipeline makes of the face at ``box`` (x, y, w, h) in ``rgb``.

    The detector runs on the whole image; the detection overlapping ``box``
    best (IoU >= 0.3) is cut by ``crop_face`` with its landmarks.  When the
    detector misses the face, the labelled box is cut without landmarks.
    Returns (crop, found by the detector).
    """
    from albumsort.faces import iou
    from albumsort.preprocess import crop_face, to_gray

    gray = to_gray(rgb)
    best, best_iou = None, 0.3
    for f in detector.detect(rgb):
        o = iou(f.box, box)
        if o >= best_iou:
            best, best_iou = f, o
    if best is None:
        return crop_face(gray, box), False
    return crop_face(gray, best.box, best.landmarks), True


def load_expw(root: str | Path, split: str, detector=None) -> tuple[np.ndarray, np.ndarray, float]:
    """ExpW faces of ``split`` as album crops: (images, one-hot targets, share found by the detector)."""
    from albumsort.faces import make_detector

    root = Path(root)
    detector = detector or make_detector()
    images, labels, found = [], [], 0
    for r in expw_rows(root, split):
        with Image.open(root / r["file"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        crop, ok = album_crop(rgb, tuple(float(r[k]) for k in "xywh"), detector)
        images.append(crop)
        labels.append(EMOTIONS.index(r["emotion"]))
        found += ok
    return np.stack(images), one_hot(np.array(labels)), found / max(1, len(images))


# -- Non-faces ------------------------------------------------------------------
def is_training_share(name: str) -> bool:
    """Half of the shared no-face photos and WIDER events train the readability score; the rest measure it.

    Stable and content-free: by a hash of the file or folder name.
    """
    import zlib

    return zlib.crc32(name.encode()) % 2 == 0


def load_nonfaces(data: str | Path, detector=None, seed: int = 0, per_scene: int = 2,
                  share: str = "train") -> np.ndarray:
    """Crops that are not readable faces, as the album would cut them.

    * the detector's boxes at a low threshold (0.3) that match no annotated
      face in WIDER FACE, on the dogs, and on the no-face scenes;
    * random square crops (10-60% of the short side) of the no-face scenes
      and of WIDER photo regions that hold no annotated face.

    ``share`` picks the training half (``is_training_share``) or the other one.
    """
    from albumsort.faces import YuNetDetector, iou
    from albumsort.preprocess import crop_face, to_gray

    data = Path(data)
    rng = np.random.default_rng(seed)
    detector = detector or YuNetDetector(min_score=0.3, min_size=12)
    want = share == "train"
    crops: list[np.ndarray] = []

    def random_crops(gray, n, avoid=()):
        h, w = gray.shape
        for _ in range(n * 4):
            if n == 0:
                break
            side = rng.uniform(0.1, 0.6) * min(h, w)
            x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
            if any(iou((x, y, side, side), b) > 0.05 for b in avoid):
                continue
            crops.append(crop_face(gray, (x, y, side, side)))
            n -= 1

    def false_boxes(rgb, gray, truth=()):
        for f in detector.detect(rgb):
            if all(iou(f.box, b) < 0.3 for b in truth):
                crops.append(crop_face(gray, f.box, f.landmarks))

    scenes = data / "no-face-scenes"
    if scenes.is_dir():
        for p in sorted(scenes.glob("*/*.jpg")):
            if is_training_share(p.name) != want:
                continue
            with Image.open(p) as im:
                rgb = np.asarray(im.convert("RGB"))
            gray = to_gray(rgb)
            false_boxes(rgb, gray)
            random_crops(gray, per_scene)
    dogs = data / "dlib-faces" / "dogs.jpg"
    if dogs.is_file() and want:
        with Image.open(dogs) as im:
            rgb = np.asarray(im.convert("RGB"))
        false_boxes(rgb, to_gray(rgb))
        random_crops(to_gray(rgb), 40)
    wider = data / "wider-face-val-sample"
    if (wider / "boxes.csv").is_file():
        truth: dict[str, list] = {}
        with open(wider / "boxes.csv", newline="") as f:
            for r in csv.DictReader(f):
                truth.setdefault(r["path"], []).append(tuple(float(r[k]) for k in "xywh"))
        for rel in sorted(truth):
            if is_training_share(rel.split("/")[0]) != want:
                continue
            with Image.open(wider / "images" / rel) as im:
                rgb = np.asarray(im.convert("RGB"))
            gray = to_gray(rgb)
            false_boxes(rgb, gray, truth[rel])
            random_crops(gray, per_scene, truth[rel])
    if not crops:
        return np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8)
    return np.stack(crops)
