"""FER2013 loaders: the challenge CSV and the folder layout, both to uint8 arrays.

Only the four product emotions are kept (in ``EMOTIONS`` order); the other
three FER2013 classes are dropped, because keeping them as an extra "other"
class is an experiment, not a default (see models/README.md).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from albumsort.preprocess import EMOTIONS, FACE_SIZE

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's label order in the challenge CSV (``emotion`` column 0..6)."""

CSV_SPLITS = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}


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
            with Image.open(path) as im:
                im = im.convert("L")
                if im.size != (FACE_SIZE, FACE_SIZE):
                    im = im.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8))
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
