"""Face detection: one YuNet pass (libfacedetection via the ``yuface`` wheel), MTCNN as fallback.

YuNet was chosen by measurement on real photos (benchmarks/detection.py): it
finds the most faces of at least 32 px at the best speed of the detectors
whose weights ship in PyPI wheels.  ``yuface`` only has wheels for Linux
x86_64 and Windows, so elsewhere albumsort falls back to ``mtcnn``
(TensorFlow; slower, fewer faces) and says so in ``albumsort status``.

Detection is one pass on a copy at most ``DETECT_SIDE`` px on its long side
(a 12 MP JPEG decodes at 1/4 scale to exactly that).  A candidate YuNet is
sure of (``SURE_SCORE``) is a face; a less certain one is a face only when
the emotion model reads it as a readable face (``confirmed``).  This replaced
a second, mirrored pass: half the detection time, higher precision, fewer
false faces on photos without any.  The thresholds are the rule with the
most recall at >= 90% precision on the training share of WIDER FACE
(``python benchmarks/detection.py --sweep``; benchmarks/README.md).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np

DETECT_SIDE = 1000
"""Long side of the image the detector sees (1000 and 1024 px measured the same recall)."""

CANDIDATE_SCORE = 0.5
"""YuNet score (0..1) from which a box is a candidate face."""

SURE_SCORE = 0.65
"""YuNet score from which a candidate is a face without asking the emotion model."""

READABLE = 0.5
"""Readability (the emotion model's score) that confirms a candidate scored below ``SURE_SCORE``."""

MIN_SIZE = 24
"""Faces shorter than this at detection scale (px of the DETECT_SIDE image) are dropped."""


def confirmed(score: float, readability: float) -> bool:
    """Whether a candidate with detector ``score`` and the model's ``readability`` counts as a face."""
    return score >= SURE_SCORE or (score >= CANDIDATE_SCORE and readability >= READABLE)


class DetectorUnavailable(Exception):
    """The requested face detector is not installed; ``str()`` says how to install it."""


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
    """libfacedetection's YuNet through the ``yuface`` wheel (BSD licence): candidate faces, one pass.

    Returns every box scored at least ``min_score`` and at least ``min_size``
    px tall at detection scale (smaller faces are too small to read an
    expression from); ``confirmed`` decides which candidates are faces.
    The smaller ones are not dropped silently: ``small`` counts those of the
    last ``detect`` that were surely faces (``SURE_SCORE``: the model cannot
    vouch for a face too small to read), so a crowd of tiny faces is told
    from a photo without any (measured on the WIDER sample: 14 of 400 photos
    hold only such faces; 1 of 176 no-face scenes has one).
    """

    name = "yunet"
    small = 0
    """Sure faces the last ``detect`` left out for being under ``min_size``."""

    def __init__(self, min_score: float = CANDIDATE_SCORE, side: int = DETECT_SIDE, min_size: float = MIN_SIZE):
        import yuface  # noqa: F401  (fails here when the wheel is missing)

        self.min_score, self.side, self.min_size = min_score, side, min_size
        from importlib.metadata import version

        self.version = (f"yunet-yuface{version('yuface')}-s{side}-1x-m{min_score:g}-min{min_size:g}"
                        f"-sure{SURE_SCORE:g}-read{READABLE:g}")

    def detect(self, rgb: np.ndarray) -> list[Face]:
        import yuface

        small, s = resize_to(rgb, self.side)
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # yuface warns about images over 960 px: measured fine at 1000
            confs, boxes, lms = yuface.detect(bgr, conf=self.min_score - 1e-6)
        self.small = sum(1 for c, b in zip(confs, boxes) if b[3] < self.min_size and c / 100.0 >= SURE_SCORE)
        return [Face(tuple(float(v) for v in b), float(c) / 100.0, [float(v) for v in lm]).scaled(1 / s)
                for c, b, lm in zip(confs, boxes, lms) if b[3] >= self.min_size]


class MTCNNDetector:
    """MTCNN from the ``mtcnn`` wheel: the fallback where yuface has no wheel."""

    name = "mtcnn"
    small = 0
    """MTCNN applies its own size floor (min_face_size) and reports nothing below it."""

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
                raise DetectorUnavailable("the yunet detector is not installed: pip install yuface "
                                          "(wheels for Linux x86_64 and Windows)") from None
    if name in (None, "", "mtcnn"):
        try:
            return MTCNNDetector()
        except ImportError:
            raise DetectorUnavailable("the mtcnn detector is not installed: pip install mtcnn"
                                      if name else "no face detector is installed: pip install yuface, "
                                      "or pip install mtcnn where yuface has no wheel") from None
    raise ValueError(f"unknown detector {name!r}: use yunet or mtcnn")
