"""Faces: the ``Face`` record, box geometry, and ``make_detector``, the way in to the detector back-ends.

The back-ends live in ``albumsort.detectors`` (one module each, registered by
name) and all run on ONNX Runtime (``albumsort.runtime``), so every OS gets
the same detector:

* ``scrfd`` (default): SCRFD-2.5g at 640 px; its weights are for
  non-commercial research use only (models/README.md).
* ``yunet``: YuNet 2023mar at 1000 px, the licence-clean choice.

A detector returns candidates and the count of faces it was sure of but
that are too small to read (``detectors.Detections``); a candidate is a face
when its score is sure enough or the emotion model reads it as a readable
face (the detector's ``thresholds.confirmed``; ``pipeline.find_faces``).
Thresholds are chosen on the training share of WIDER FACE (``python
benchmarks/detection.py --sweep``; benchmarks/README.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

DETECT_SIDE = 1000
"""Long side of the image a photo is decoded at for detection (a 12 MP JPEG decodes at 1/4 scale to exactly that);
YuNet reads it as is, SCRFD shrinks it to 640."""


class DetectorUnavailable(Exception):
    """The requested face detector is not installed; ``str()`` says how to install it."""


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]  # x, y, w, h
    score: float
    landmarks: list[float] | None = field(default=None)  # 5 points as x0, y0, ..., x4, y4

    def scaled(self, s: float) -> Face:
        lm = [v * s for v in self.landmarks] if self.landmarks is not None else None
        return Face(tuple(v * s for v in self.box), self.score, lm)  # type: ignore[arg-type]

    def shifted(self, dx: float, dy: float) -> Face:
        x, y, w, h = self.box
        lm = None
        if self.landmarks is not None:
            lm = [v + (dx if i % 2 == 0 else dy) for i, v in enumerate(self.landmarks)]
        return Face((x + dx, y + dy, w, h), self.score, lm)


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
    for f in sorted(faces, key=lambda f: -f.score):
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


def detector_names() -> list[str]:
    from albumsort import detectors

    return detectors.names()


def make_detector(name: str | None = None, **options):
    """The detector ``name`` (``ALBUMSORT_DETECTOR``, else the default, SCRFD); ``options`` go to its class."""
    from albumsort import detectors

    name = name or os.environ.get("ALBUMSORT_DETECTOR") or detectors.DEFAULT
    cls = detectors.get(name)
    try:
        return cls(**options)
    except FileNotFoundError as e:
        raise DetectorUnavailable(f"the {name} detector's weights are missing: {e}") from None


def YuNetDetector(min_score: float | None = None, side: int = DETECT_SIDE, min_size: float | None = None):
    """YuNet on ONNX Runtime (kept under its old name: training/ builds it with a low candidate floor)."""
    return make_detector("yunet", min_score=min_score, side=side, min_size=min_size)
