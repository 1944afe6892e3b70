"""Face detection: YuNet (libfacedetection via the ``yuface`` wheel), MTCNN as fallback.

YuNet was chosen by measurement on real photos (benchmarks/detection.py): it
finds the most faces of at least 32 px at the best precision and speed of the
detectors whose weights ship in PyPI wheels.  ``yuface`` only has wheels for
Linux x86_64 and Windows, so elsewhere albumsort falls back to ``mtcnn``
(TensorFlow; slower, fewer faces) and says so in ``albumsort status``.

Detection runs on a copy at most ``DETECT_SIDE`` px on its long side; a
second pass on 2x2 overlapping tiles at double resolution finds the small
faces of group photos.  Boxes are returned in the coordinates of the image
passed in.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np

DETECT_SIDE = 1024
"""Long side of the image the first detection pass sees."""

MIN_SCORE = 0.5
"""Detector score below which a candidate is dropped (YuNet scores are 0..1)."""


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]  # x, y, w, h
    score: float
    landmarks: list[float] | None = field(default=None)  # 5 points as x0, y0, ..., x4, y4

    def scaled(self, s: float) -> "Face":
        lm = [v * s for v in self.landmarks] if self.landmarks is not None else None
        return Face(tuple(v * s for v in self.box), self.score, lm)  # type: ignore[arg-type]

    def shifted(self, dx: float, dy: float) -> "Face":
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
    h, w = image.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return image, 1.0
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA), s


class YuNetDetector:
    """libfacedetection's YuNet through the ``yuface`` wheel (BSD licence)."""

    name = "yunet"

    def __init__(self, min_score: float = MIN_SCORE, side: int = DETECT_SIDE, tiles: bool = True):
        import yuface  # noqa: F401  (fails here when the wheel is missing)

        self.min_score = min_score
        self.side = side
        self.tiles = tiles
        from importlib.metadata import version

        self.version = f"yunet-yuface{version('yuface')}-s{side}-t{int(tiles)}-m{min_score:g}"

    def _detect(self, rgb: np.ndarray) -> list[Face]:
        import yuface

        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            confs, boxes, lms = yuface.detect(bgr, conf=self.min_score)
        return [Face(tuple(float(v) for v in b), float(c) / 100.0, [float(v) for v in lm])
                for c, b, lm in zip(confs, boxes, lms)]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        small, s = resize_to(rgb, self.side)
        faces = [f.scaled(1 / s) for f in self._detect(small)]
        h, w = rgb.shape[:2]
        if self.tiles and max(h, w) >= self.side * 1.5:
            # Second pass: 2x2 overlapping tiles, each seen at up to `side` px,
            # so faces half the size are found again at a size YuNet handles.
            th, tw = int(h * 0.6), int(w * 0.6)
            for y0 in (0, h - th):
                for x0 in (0, w - tw):
                    tile, ts = resize_to(rgb[y0:y0 + th, x0:x0 + tw], self.side)
                    faces += [f.scaled(1 / ts).shifted(x0, y0) for f in self._detect(tile)]
        return nms(faces)


class MTCNNDetector:
    """MTCNN from the ``mtcnn`` wheel: the fallback where yuface has no wheel."""

    name = "mtcnn"

    def __init__(self, min_score: float = 0.9, side: int = DETECT_SIDE):
        from importlib.metadata import version

        from mtcnn import MTCNN

        self._mtcnn = MTCNN()
        self.min_score = min_score
        self.side = side
        self.version = f"mtcnn{version('mtcnn')}-s{side}-m{min_score:g}"

    def detect(self, rgb: np.ndarray) -> list[Face]:
        small, s = resize_to(rgb, self.side)
        out = []
        for r in self._mtcnn.detect_faces(np.ascontiguousarray(small)):
            if r["confidence"] < self.min_score:
                continue
            k = r["keypoints"]
            lm = [*k["right_eye"], *k["left_eye"], *k["nose"], *k["mouth_right"], *k["mouth_left"]]
            out.append(Face(tuple(float(v) for v in r["box"]), float(r["confidence"]),
                            [float(v) for v in lm]).scaled(1 / s))
        return out


def make_detector(name: str | None = None) -> YuNetDetector | MTCNNDetector:
    """The best detector installed: ``name`` (yunet or mtcnn) forces one."""
    name = name or os.environ.get("ALBUMSORT_DETECTOR")
    if name in (None, "", "yunet"):
        try:
            return YuNetDetector()
        except ImportError:
            if name == "yunet":
                raise
    if name in (None, "", "mtcnn"):
        return MTCNNDetector()
    raise ValueError(f"unknown detector {name!r}: use yunet or mtcnn")
