"""Face detector back-ends behind one small protocol, found by name in a registry.

A back-end is one module in this package that defines a class with
``name``, ``version`` (its model files' hashes and thresholds, known without
loading anything), ``thresholds`` and ``detect(rgb, photo_scale) ->
Detections`` and registers it::

    @register("scrfd")
    class SCRFD: ...

Adding a detector is adding one file here: every module of the package is
imported when a detector is first looked up.  ``faces.make_detector`` is the
way in for the rest of albumsort.  ``Face`` and its geometry (IoU, NMS) live
here, beside the protocol that returns them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

DETECT_SIDE = 1000
"""Long side of the image a photo is decoded at for detection (a 12 MP JPEG decodes at 1/4 scale to exactly that);
YuNet reads it as is, SCRFD shrinks it to 640."""




@dataclass
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]  # x, y, w, h
    det_score: float  # the detector's confidence that this is a face (not the expression score)
    landmarks: list[float] | None = field(default=None)  # 5 points as x0, y0, ..., x4, y4

    def scaled(self, s: float) -> Face:
        lm = [v * s for v in self.landmarks] if self.landmarks is not None else None
        return Face(box_of(v * s for v in self.box), self.det_score, lm)

    def shifted(self, dx: float, dy: float) -> Face:
        x, y, w, h = self.box
        lm = None
        if self.landmarks is not None:
            lm = [v + (dx if i % 2 == 0 else dy) for i, v in enumerate(self.landmarks)]
        return Face((x + dx, y + dy, w, h), self.det_score, lm)


def box_of(values) -> tuple[float, float, float, float]:
    """x, y, w, h as plain floats (from a row of a network's output)."""
    x, y, w, h = (float(v) for v in values)
    return x, y, w, h


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def nms(faces: list[Face], threshold: float = 0.4) -> list[Face]:
    """Keep the best-scoring face of every overlapping group."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.det_score):
        if all(iou(f.box, k.box) < threshold for k in kept):
            kept.append(f)
    return kept


def resize_to(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Shrink so the long side is at most ``side``; returns (image, factor applied)."""
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return image, 1.0
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA), s


def nms_arrays(scores: np.ndarray, boxes: np.ndarray, threshold: float) -> list[int]:
    """Indices of the boxes (x, y, w, h) that non-maximum suppression keeps, best score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = np.maximum(boxes[:, 2], 0) * np.maximum(boxes[:, 3], 0)
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-9) <= threshold]
    return keep


@dataclass(frozen=True)
class Thresholds:
    """How a back-end's candidates become faces (every tunable of a detector in one place).

    A candidate is a box scored at least ``candidate``, at least ``min_size``
    px tall at detection scale (the image the network reads) and at least
    ``min_photo_size`` px tall in the photo's own pixels (what the pipeline
    can read it from, with a larger decode); it is a face when scored at
    least ``sure``, or when the emotion model reads it as a readable face
    (readability >= ``readable``).  ``sure == candidate`` makes the score
    alone decide.  A box scored at least ``sure`` but under either size
    floor is a face too small to read: not a candidate, but counted
    (``Detections.small``), so a crowd of tiny faces is not "no face found".
    """

    candidate: float
    sure: float
    readable: float = 0.5
    min_size: float = 0.0
    min_photo_size: float = 0.0

    def confirmed(self, score: float, readability: float) -> bool:
        return score >= self.sure or (score >= self.candidate and readability >= self.readable)

    def sized(self, boxes: Iterable[Face], detect_scale: float, photo_scale: float = 1.0) -> Detections:
        """The candidates of ``boxes`` (scored at least ``candidate``, in the pixels of the image given to
        ``detect``) that pass both size floors, and the count of sure ones that do not.

        ``detect_scale``: pixels the network read per pixel of that image; ``photo_scale``: pixels of the
        photo per pixel of that image.  The one definition of "too small to read" for every back-end.
        """
        kept, small = [], 0
        for f in boxes:
            h = f.box[3]
            if h * detect_scale >= self.min_size and h * photo_scale >= self.min_photo_size:
                kept.append(f)
            elif f.det_score >= self.sure:
                small += 1
        return Detections(kept, small)

    def tag(self) -> str:
        return (f"m{self.candidate:g}-sure{self.sure:g}-read{self.readable:g}-min{self.min_size:g}"
                f"-photo{self.min_photo_size:g}")

    def with_floor(self, min_score: float | None = None, min_size: float | None = None) -> Thresholds:
        """These thresholds with a lower candidate floor (sweeps, training): ``min_score`` lowers the
        candidate score (sure stays at least that); ``min_size`` becomes the only size floor."""
        if min_score is None and min_size is None:
            return self
        return Thresholds(self.candidate if min_score is None else min_score,
                          self.sure if min_score is None else max(self.sure, min_score), self.readable,
                          self.min_size if min_size is None else min_size,
                          self.min_photo_size if min_size is None else 0.0)


class Detections(list):
    """What ``detect`` returns: the candidate faces (a plain list of ``faces.Face``, so every caller that
    iterates or unpacks them is unchanged) and ``small``, how many faces the detector was sure of
    (score >= ``thresholds.sure``) but left out as too small to read (under a size floor)."""

    def __init__(self, faces: Iterable[Face] = (), small: int = 0):
        super().__init__(faces)
        self.small = int(small)

    def __repr__(self) -> str:
        return f"Detections({list.__repr__(self)}, small={self.small})"


@runtime_checkable
class Detector(Protocol):
    name: str
    version: str
    thresholds: Thresholds

    def detect(self, rgb: np.ndarray, photo_scale: float = 1.0) -> Detections:
        """Candidate faces in an RGB uint8 image, in its pixel coordinates, and the count of sure faces too
        small to read (``Thresholds.sized``).  ``photo_scale``: pixels of the photo per pixel of ``rgb``
        (more than 1 when ``rgb`` is a reduced decode), for ``thresholds.min_photo_size``."""


REGISTRY: dict[str, Callable[..., Detector]] = {}
DEFAULT = "scrfd-int8"
"""The detector ``albumsort index`` uses unless told otherwise: SCRFD-2.5g, the only one measured at
recall >= 90% and precision >= 90% on the held-out WIDER half, in its int8 form, which keeps recall
within 0.2 point of the float file and took 22 ms per photo against 39 on this project's CPU (AMD EPYC,
AVX-512 VNNI; ``benchmarks/detection.py``, idle, 2026-11-30).  On a CPU without fast int8 kernels
``--detector scrfd`` (float) may be faster."""


def register(name: str):
    """Class decorator: make a back-end available as ``--detector NAME``."""

    def add(cls):
        REGISTRY[name] = cls
        return cls

    return add


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def names() -> list[str]:
    """Registered back-ends, the default first."""
    _discover()
    return sorted(REGISTRY, key=lambda n: (n != DEFAULT, n))


def get(name: str) -> Callable[..., Detector]:
    _discover()
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}: use one of {', '.join(names())}") from None
