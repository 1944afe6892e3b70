"""Training data: FER2013 (challenge CSV, folder layout, FER+ votes), ExpW and RAF-DB faces, non-faces.

Every loader returns uint8 crops and soft targets (N, 8) over
``TARGETS``: the seven expressions in ``EXPRESSIONS`` order (the four product
emotions first, then surprise, fear, disgust), then ``unreadable`` (not a
face, or a face whose expression cannot be read).

* FER2013 with ``ferplus.csv`` beside it trains on the FER+ votes of ten
  annotators (Barsoum et al. 2016): votes for the seven expressions go to
  them, unknown and not-a-face votes to ``unreadable``.  Contempt votes are
  dropped and the rest renormalised (``FERPLUS_CONTEMPT``: 162 training
  faces, 0.6%, have contempt as their plurality); a face whose plurality is
  contempt is left out (see ``FERPLUS_MIN_KEPT``).  Without ``ferplus.csv``
  the folder labels are used.
* ExpW faces (colour web photos with context) are cut by the album's own
  detector and ``crop_face``, so training sees exactly the album's framing.
* RAF-DB faces (tight, eye-aligned 100 px crops) are padded back out to a
  photo-like frame and cut the same way (``load_rafdb``).

Crops are (N, S, S) grayscale or (N, S, S, 3) RGB for a model input of side
``size`` and ``channels`` 1 or 3 (FER2013's 48 px grey faces are resized and,
for a colour model, repeated over three channels).  Detections are cached per
file and detector version (``DetectionCache``), so a second run or another
input size costs no detector time.
* Non-faces: the detector's false boxes and random crops from photos without
  faces, from a fixed training share of the shared data (``is_training_share``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from albumsort.labels import EMOTIONS, EXPRESSIONS
from albumsort.preprocess import FACE_SIZE

TARGETS = EXPRESSIONS + ("unreadable",)
UNREADABLE = len(EXPRESSIONS)

FERPLUS_VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                 "unknown", "NF")
FERPLUS_TO_TARGET = {"anger": 0, "happiness": 1, "sadness": 2, "neutral": 3, "surprise": 4, "fear": 5,
                     "disgust": 6, "unknown": UNREADABLE, "NF": UNREADABLE}
FERPLUS_CONTEMPT = {"drop": None, "disgust": 6, "unreadable": UNREADABLE}
"""Where contempt votes go (``train.Config.ferplus_contempt``): dropped, to disgust, or to unreadable."""
FERPLUS_MIN_KEPT = 0.5
"""A face is kept when at least this share of its votes is for a target class."""

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's label order in the challenge CSV (``emotion`` column 0..6)."""

CSV_SPLITS = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}


def read_face(path: str | Path, size: int = FACE_SIZE, channels: int = 1) -> np.ndarray:
    """One FER-style face file as uint8 (size, size) grayscale, or (size, size, 3) for a colour model."""
    with Image.open(path) as im:
        im = im.convert("L")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BICUBIC if size > im.size[0] else Image.Resampling.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    return np.repeat(a[..., None], 3, axis=2) if channels == 3 else a


def load_folder(root: str | Path, limit_per_class: int | None = None, size: int = FACE_SIZE,
                channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Read ``root/<expression>/*`` images for the seven expressions; other folders are ignored.

    Returns (images uint8 (N, 48, 48), labels int64 (N,), ``EXPRESSIONS`` indices).  Files are read in
    sorted order so that a run is reproducible.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such data folder: {root}")
    images, labels = [], []
    for label, emotion in enumerate(EXPRESSIONS):
        folder = root / emotion
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
        if limit_per_class:
            files = files[:limit_per_class]
        for path in files:
            images.append(read_face(path, size, channels))
            labels.append(label)
    if not images:
        raise ValueError(f"{root} holds none of the folders {', '.join(EXPRESSIONS)}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_csv(path: str | Path, split: str = "train",
             limit_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read the FER2013 challenge CSV (``emotion,pixels,Usage``) for one split.

    ``split`` is train, test (PublicTest) or private (PrivateTest).
    """
    usage = CSV_SPLITS[split]
    keep = {FER_CLASSES.index(e): i for i, e in enumerate(EXPRESSIONS)}
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
        raise ValueError(f"{path}: no {usage} rows for {', '.join(EXPRESSIONS)}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load(data: str | Path, split: str, limit_per_class: int | None = None, size: int = FACE_SIZE,
         channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Load a split from either form: a CSV file, or a folder with train/ and test/.

    A folder that directly holds emotion folders is read as it is.
    """
    data = Path(data)
    if data.is_file():
        x, y = load_csv(data, split, limit_per_class)
        return np.stack([resize_crop(c, size, channels) for c in x]), y
    sub = data / split
    if sub.is_dir():
        return load_folder(sub, limit_per_class, size, channels)
    if split == "private":
        raise FileNotFoundError(f"{data} has no private/ folder")
    return load_folder(data, limit_per_class, size, channels)


def resize_crop(gray48: np.ndarray, size: int, channels: int) -> np.ndarray:
    """A 48 px grey crop at the model's size and channels (as ``read_face`` does for files)."""
    im = Image.fromarray(gray48)
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    a = np.asarray(im, dtype=np.uint8)
    return np.repeat(a[..., None], 3, axis=2) if channels == 3 else a


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


def one_hot(labels: np.ndarray, width: int = len(TARGETS)) -> np.ndarray:
    """Integer labels (``TARGETS`` indices) to float32 targets (N, width)."""
    out = np.zeros((len(labels), width), np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def ferplus_targets(votes: dict[str, int], contempt: str = "drop") -> np.ndarray | None:
    """Soft targets over ``TARGETS`` from one face's FER+ votes, or None to leave the face out."""
    total = sum(votes.values())
    t = np.zeros(len(TARGETS), np.float32)
    mapping = dict(FERPLUS_TO_TARGET)
    if FERPLUS_CONTEMPT[contempt] is not None:
        mapping["contempt"] = FERPLUS_CONTEMPT[contempt]
    for name, cls in mapping.items():
        t[cls] += votes.get(name, 0)
    if total == 0 or t.sum() < FERPLUS_MIN_KEPT * total:
        return None
    return t / t.sum()


def ferplus_majority(votes: dict[str, int]) -> int:
    """FER+ majority label as an EXPRESSIONS index, or -1 (contempt, unknown or not-a-face won, or a tie)."""
    counts = [votes.get(v, 0) for v in FERPLUS_VOTES]
    best = max(counts)
    if best == 0 or counts.count(best) > 1:
        return -1
    cls = FERPLUS_TO_TARGET.get(FERPLUS_VOTES[counts.index(best)], UNREADABLE)
    return cls if cls < UNREADABLE else -1


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


def load_ferplus(root: str | Path, split: str, labels: str = "votes", limit_per_class: int | None = None,
                 size: int = FACE_SIZE, channels: int = 1, contempt: str = "drop") -> tuple[np.ndarray, np.ndarray]:
    """FER2013 faces of ``split`` (train or test) with FER+ labels.

    ``labels="votes"``: soft targets (N, 8) from ``ferplus_targets``.
    ``labels="majority"``: one-hot targets of the FER+ majority, only for
    faces whose majority is one of the seven expressions (the evaluation set;
    the four-class figures keep the faces labelled with one of the four).
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
            t = ferplus_targets(votes[rel], contempt)
            if t is None:
                continue
        cls = int(t.argmax())
        if limit_per_class and counts.get(cls, 0) >= limit_per_class:
            continue
        counts[cls] = counts.get(cls, 0) + 1
        images.append(read_face(root / rel, size, channels))
        targets.append(t)
    if not images:
        raise ValueError(f"{root}/ferplus.csv: no faces for split {split}")
    return np.stack(images), np.stack(targets).astype(np.float32)


def load_fer(data: str | Path, split: str, limit_per_class: int | None = None,
             labels: str = "votes", size: int = FACE_SIZE, channels: int = 1,
             contempt: str = "drop") -> tuple[np.ndarray, np.ndarray]:
    """FER2013 as (images, targets (N, 8)): FER+ votes when ``ferplus.csv`` is there, else the given labels."""
    data = Path(data)
    if data.is_dir() and (data / "ferplus.csv").is_file() and labels != "folder":
        return load_ferplus(data, split, labels, limit_per_class, size, channels, contempt)
    x, y = load(data, split, limit_per_class, size, channels)
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


class DetectionCache:
    """The detector's faces per image file, stored on disk per detector version.

    Detection dominates loading ExpW and RAF-DB (~16,000 photos); the cache
    makes every later run, and every input size, free of it.  Keyed by the
    file's path, size and mtime, so a changed file is detected again.
    """

    def __init__(self, detector, folder: str | Path | None = None):
        import json
        import os

        self.detector = detector
        version = getattr(detector, "version", type(detector).__name__)
        base = Path(folder or os.environ.get("ALBUMSORT_TRAINING_CACHE",
                                             Path.home() / ".cache" / "albumsort-training"))
        self.path = base / f"detections-{version}.json"
        self._data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self._dirty = False

    def faces(self, path: Path, rgb: np.ndarray, variant: str = "") -> list:
        """The detections in ``rgb``, read from ``path``; ``variant`` names any change made to the file's pixels."""
        from albumsort.faces import Face

        st = Path(path).stat()
        key = f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{variant}"
        if key not in self._data:
            self._data[key] = [[list(f.box), f.det_score, f.landmarks] for f in self.detector.detect(rgb)]
            self._dirty = True
        return [Face(tuple(b), sc, lm) for b, sc, lm in self._data[key]]

    def save(self) -> None:
        import json

        if self._dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data))
            tmp.replace(self.path)
            self._dirty = False


def album_crop(rgb: np.ndarray, box, detector=None, size: int = FACE_SIZE, channels: int = 1,
               faces: list | None = None) -> tuple[np.ndarray, bool]:
    """The crop the album pipeline makes of the face at ``box`` (x, y, w, h) in ``rgb``.

    The detector runs on the whole image (or ``faces`` are its detections);
    the detection overlapping ``box`` best (IoU >= 0.3) is cut by
    ``crop_face`` with its landmarks.  When the detector misses the face, the
    labelled box is cut without landmarks.  Returns (crop, found by the detector).
    """
    from albumsort.faces import iou
    from albumsort.preprocess import crop_face, for_model

    image = for_model(rgb, channels)
    best, best_iou = None, 0.3
    for f in (faces if faces is not None else detector.detect(rgb)):
        o = iou(f.box, box)
        if o >= best_iou:
            best, best_iou = f, o
    if best is None:
        return crop_face(image, box, size=size), False
    return crop_face(image, best.box, best.landmarks, size=size), True


def load_expw(root: str | Path, split: str, detector=None, size: int = FACE_SIZE, channels: int = 1,
              cache: DetectionCache | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """ExpW faces of ``split`` as album crops: (images, one-hot targets, share found by the detector)."""
    from albumsort.faces import make_detector

    root = Path(root)
    cache = cache or DetectionCache(detector or make_detector())
    images, labels, found = [], [], 0
    for r in expw_rows(root, split):
        with Image.open(root / r["file"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        faces = cache.faces(root / r["file"], rgb)
        crop, ok = album_crop(rgb, tuple(float(r[k]) for k in "xywh"), size=size, channels=channels, faces=faces)
        images.append(crop)
        labels.append(EMOTIONS.index(r["emotion"]))
        found += ok
    cache.save()
    return np.stack(images), one_hot(np.array(labels)), found / max(1, len(images))


# -- RAF-DB: tight aligned web faces, given back the album's framing -------------
RAFDB_FOLDERS = {e: e for e in EXPRESSIONS}
"""RAF-DB's seven folders and the expression each trains: all seven are albumsort's ``EXPRESSIONS``."""

RAFDB_SPLITS = {"train": (0.0, 0.9), "val": (0.9, 1.0)}
"""Fixed shares of every RAF-DB training-split class (shuffled with seed 0): 90% train, 10% validation.
RAF-DB's own test split is withheld by the project for acceptance."""

RAFDB_PAD = 0.5
"""RAF-DB crops are padded by this share of their side on every side (``pad_face``) before the
detector runs, so the album's detector sees a face with context, as in a photo, and ``crop_face``
cuts the album's framing from the padded copy."""


PAD_VARIANT = f"pad-soft{RAFDB_PAD:g}"
"""Names ``pad_face``'s output in the detection cache."""


def rafdb_files(root: str | Path, split: str, expressions=EXPRESSIONS) -> list[tuple[Path, str]]:
    """(file, RAF-DB expression) of one fixed share of ``root/train``, stratified and stable across runs."""
    root = Path(root)
    base = root / "train" if (root / "train").is_dir() else root
    lo, hi = RAFDB_SPLITS[split]
    out = []
    for e in expressions:
        files = sorted(p for p in (base / e).glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        order = np.random.default_rng(0).permutation(len(files))
        out += [(files[i], e) for i in order[int(lo * len(files)):int(hi * len(files))]]
    return out


def pad_face(rgb: np.ndarray, pad: float = RAFDB_PAD) -> tuple[np.ndarray, int]:
    """``rgb`` with ``pad`` x its side added on every side; returns (padded, offset).

    The border is the crop's edge replicated and then blurred (sigma 8% of
    the side), so the detector and the album's looser crop see a soft,
    out-of-focus surround rather than streaks or mirrored eyes.
    """
    import cv2

    p = int(round(pad * max(rgb.shape[:2])))
    padded = cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_REPLICATE)
    soft = cv2.GaussianBlur(padded, (0, 0), 0.08 * max(rgb.shape[:2]))
    soft[p:p + rgb.shape[0], p:p + rgb.shape[1]] = rgb
    return soft, p


def load_rafdb(root: str | Path, split: str, detector=None, size: int = FACE_SIZE, channels: int = 1,
               cache: DetectionCache | None = None,
               expressions=EXPRESSIONS) -> tuple[np.ndarray, np.ndarray, float]:
    """RAF-DB faces of ``split`` (train or val) for ``expressions`` (all seven by default), as album crops.

    Each tight crop is padded (``pad_face``); the detector runs on the padded
    copy and the detection overlapping the original crop is cut by
    ``crop_face`` with its landmarks, exactly as the album cuts a face from a
    photo.  Returns (images, one-hot targets, share found by the detector).
    """
    from albumsort.faces import make_detector

    cache = cache or DetectionCache(detector or make_detector())
    images, labels, found = [], [], 0
    for path, expression in rafdb_files(root, split, expressions):
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        padded, p = pad_face(rgb)
        h, w = rgb.shape[:2]
        # The aligned crop is a little wider than a detector box: the face box is its central ~80%.
        box = (p + 0.1 * w, p + 0.1 * h, 0.8 * w, 0.8 * h)
        crop, ok = album_crop(padded, box, size=size, channels=channels,
                              faces=cache.faces(path, padded, PAD_VARIANT))
        images.append(crop)
        labels.append(EXPRESSIONS.index(RAFDB_FOLDERS[expression]))
        found += ok
    cache.save()
    return np.stack(images), one_hot(np.array(labels)), found / max(1, len(images))


# -- Face-like things: masks, paint, helmets, printed faces -----------------------
FACELIKE_CSV = Path(__file__).with_name("facelike.csv")
"""Annotated WIDER FACE boxes (``wider-face-val-sample/boxes.csv`` rows) that are not readable faces
(kinds mask, surgical_mask, paint, statue, printed, cartoon, helmet), with ordinary faces of the same
photos as controls and ``unsure`` ones; labelled by eye from contact sheets of every face >= 32 px."""

FACELIKE_KINDS = ("mask", "surgical_mask", "paint", "statue", "printed", "cartoon", "helmet")


def load_facelike(wider: str | Path, share: str | None = None, size: int = FACE_SIZE, channels: int = 1,
                  cache: DetectionCache | None = None, kinds=FACELIKE_KINDS + ("ordinary",)) -> dict:
    """The labelled face-like things (and ordinary faces) as the album would cut and score them.

    Returns {"crops", "kinds", "det_score" (0 where the detector misses the face, which the album then
    never reads), "found"} for the rows of ``kinds`` in the ``share`` ("train", "test" or None for all)
    half of WIDER's events (``is_training_share``).
    """
    from albumsort.faces import iou, make_detector

    wider = Path(wider)
    cache = cache or DetectionCache(make_detector())
    with open(FACELIKE_CSV, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] in kinds]
    if share is not None:
        rows = [r for r in rows if is_training_share(r["path"].split("/")[0]) == (share == "train")]
    crops, out_kinds, scores = [], [], []
    for r in rows:
        path = wider / "images" / r["path"]
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        faces = cache.faces(path, rgb)
        box = tuple(float(r[k]) for k in "xywh")
        crop, found = album_crop(rgb, box, size=size, channels=channels, faces=faces)
        best = max((iou(f.box, box) for f in faces), default=0.0)
        scores.append(max((f.det_score for f in faces if iou(f.box, box) == best), default=0.0) if found else 0.0)
        crops.append(crop)
        out_kinds.append(r["kind"])
    cache.save()
    return {"crops": np.stack(crops), "kinds": np.array(out_kinds), "det_score": np.array(scores, np.float32),
            "found": np.array(scores) > 0}


# -- Non-faces ------------------------------------------------------------------
def is_training_share(name: str) -> bool:
    """Half of the shared no-face photos and WIDER events train the readability score; the rest measure it.

    Stable and content-free: by a hash of the file or folder name.
    """
    import zlib

    return zlib.crc32(name.encode()) % 2 == 0


def load_nonfaces(data: str | Path, detector=None, seed: int = 0, per_scene: int = 2,
                  share: str = "train", size: int = FACE_SIZE, channels: int = 1) -> np.ndarray:
    """Crops that are not readable faces, as the album would cut them.

    * the detector's boxes at a low threshold (0.3) that match no annotated
      face in WIDER FACE, on the dogs, and on the no-face scenes;
    * random square crops (10-60% of the short side) of the no-face scenes
      and of WIDER photo regions that hold no annotated face.

    ``share`` picks the training half (``is_training_share``) or the other one.
    """
    from albumsort.faces import YuNetDetector, iou
    from albumsort.preprocess import crop_face, for_model

    data = Path(data)
    rng = np.random.default_rng(seed)
    cache = DetectionCache(detector or YuNetDetector(min_score=0.3, min_size=12))
    want = share == "train"
    crops: list[np.ndarray] = []

    def random_crops(gray, n, avoid=()):
        h, w = gray.shape[:2]
        for _ in range(n * 4):
            if n == 0:
                break
            side = rng.uniform(0.1, 0.6) * min(h, w)
            x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
            if any(iou((x, y, side, side), b) > 0.05 for b in avoid):
                continue
            crops.append(crop_face(gray, (x, y, side, side), size=size))
            n -= 1

    def false_boxes(path, rgb, gray, truth=()):
        for f in cache.faces(path, rgb):
            if all(iou(f.box, b) < 0.3 for b in truth):
                crops.append(crop_face(gray, f.box, f.landmarks, size=size))

    scenes = data / "no-face-scenes"
    if scenes.is_dir():
        for p in sorted(scenes.glob("*/*.jpg")):
            if is_training_share(p.name) != want:
                continue
            with Image.open(p) as im:
                rgb = np.asarray(im.convert("RGB"))
            gray = for_model(rgb, channels)
            false_boxes(p, rgb, gray)
            random_crops(gray, per_scene)
    dogs = data / "dlib-faces" / "dogs.jpg"
    if dogs.is_file() and want:
        with Image.open(dogs) as im:
            rgb = np.asarray(im.convert("RGB"))
        false_boxes(dogs, rgb, for_model(rgb, channels))
        random_crops(for_model(rgb, channels), 40)
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
            gray = for_model(rgb, channels)
            false_boxes(wider / "images" / rel, rgb, gray, truth[rel])
            random_crops(gray, per_scene, truth[rel])
    cache.save()
    if not crops:
        return np.zeros((0, size, size) + ((3,) if channels == 3 else ()), np.uint8)
    return np.stack(crops)
