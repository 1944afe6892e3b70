"""Face detection: YuNet (libfacedetection via the ``yuface`` wheel), MTCNN as fallback.

YuNet was chosen by measurement on real photos (benchmarks/detection.py): it
finds the most faces of at least 32 px at the best precision and speed of the
detectors whose weights ship in PyPI wheels.  ``yuface`` only has wheels for
Linux x86_64 and Windows, so elsewhere albumsort falls back to ``mtcnn``
(TensorFlow; slower, fewer faces) and says so in ``albumsort status``.

Detection runs on a copy at most ``DETECT_SIDE`` px on its long side and on
its mirror image; boxes are returned in the coordinates of the image passed
in.  A second pass at 2x resolution found a few more faces but cost 4x the
time and lowered precision (benchmarks/README.md), so it is not used.
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

MIN_SIZE = 24
"""Faces shorter than this at detection scale (px of the DETECT_SIDE image) are dropped."""


class DetectorUnavailable(Exception):
    """The requested face detector is not installed; ``str()`` says how to install it."""


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]  # x, y, w, h
    score: float
    landmarks: list[float] | None = field(default=None)  # 5 points as x0, y0, ..., x4, y4
    pass_id: int = field(default=0, compare=False, repr=False)

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
    """libfacedetection's YuNet through the ``yuface`` wheel (BSD licence).

    Two passes, the image and its mirror, and a face's score is the mean of
    its two scores (0 where a pass missed it): faces both passes agree on
    survive, one-pass flukes do not.  Faces under ``min_size`` px at
    detection scale are dropped: too small to read an expression from.
    Measured on WIDER FACE (benchmarks/detection.py): this raises precision
    from 0.87 to 0.89 at the same recall as one pass.
    """

    name = "yunet"

    def __init__(self, min_score: float = MIN_SCORE, side: int = DETECT_SIDE, min_size: float = MIN_SIZE,
                 passes: tuple[str, ...] = ("1x", "flip"), raw_score: float = 0.2):
        import yuface  # noqa: F401  (fails here when the wheel is missing)

        self.min_score, self.side, self.min_size, self.passes, self.raw_score = (
            min_score, side, min_size, passes, raw_score)
        from importlib.metadata import version

        self.version = (f"yunet-yuface{version('yuface')}-s{side}-{'+'.join(passes)}-m{min_score:g}"
                        f"-min{min_size:g}")

    def _detect(self, rgb: np.ndarray, min_score: float | None = None) -> list[Face]:
        import yuface

        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            confs, boxes, lms = yuface.detect(bgr, conf=self.min_score if min_score is None else min_score)
        return [Face(tuple(float(v) for v in b), float(c) / 100.0, [float(v) for v in lm])
                for c, b, lm in zip(confs, boxes, lms)]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        small, s = resize_to(rgb, self.side)
        found = self._detect(small, self.raw_score)
        if "flip" in self.passes:
            w = small.shape[1]
            for f in self._detect(np.ascontiguousarray(small[:, ::-1]), self.raw_score):
                x, y, bw, bh = f.box
                lm = f.landmarks
                # Mirror back; the eyes and mouth corners swap sides.
                pts = [(w - lm[i], lm[i + 1]) for i in range(0, 10, 2)]
                pts = [pts[1], pts[0], pts[2], pts[4], pts[3]]
                found.append(Face((w - x - bw, y, bw, bh), f.score, [v for p in pts for v in p], pass_id=1))
        fused = []
        for f in sorted(found, key=lambda f: -f.score):
            for c in fused:
                if iou(c[0].box, f.box) >= 0.4:
                    c[1].setdefault(f.pass_id, f.score)
                    break
            else:
                fused.append((f, {f.pass_id: f.score}))
        out = []
        for best, scores in fused:
            score = sum(scores.values()) / len(self.passes)
            if score >= self.min_score and best.box[3] >= self.min_size:
                out.append(Face(best.box, score, best.landmarks).scaled(1 / s))
        return out


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
