"""SCRFD (insightface) on ONNX Runtime: the default detector.

Weights: insightface's pretrained SCRFD-2.5g with keypoints
(``models/scrfd_2.5g.onnx``; provenance in models/README.md).  They are
released for **non-commercial research use only**, like the emotion
training sets (FER2013, ExpW, RAF-DB).  ``--detector yunet`` is the
licence-clean choice.

The photo is shrunk so its long side is at most ``side`` px (640, as the
model was trained) and padded to a multiple of 32 (the largest stride) on the right
and bottom, so a 4:3 photo costs 640 x 480, not 640 x 640.  The network
gives, per stride 8, 16 and 32 and two anchors per cell, a face score, box
distances and five landmarks; boxes above the candidate score go through
NMS.
"""

from __future__ import annotations

import numpy as np

from albumsort.detectors import Detections, Face, Thresholds, box_of, nms_arrays, register
from albumsort.runtime import OnnxModel, file_version, model_file

STRIDES = (8, 16, 32)
ANCHORS = 2
MEAN, STD = 127.5, 128.0
NMS_IOU = 0.4

THRESHOLDS = Thresholds(candidate=0.4, sure=0.4, readable=0.5, min_size=0, min_photo_size=16)
"""A face when SCRFD scores it >= 0.4, whatever its readability: of the score-only rules, the one with the most
recall at >= 90% precision (and <= 0.5% no-face scenes with a face) on the training half of the WIDER sample
(``python benchmarks/detection.py --sweep scrfd``; benchmarks/README.md).  No size floor at detection scale:
faces small there are read from a larger decode (``pipeline``).  What no decode can make readable is a face
under 16 px in the photo itself: it is counted as too small to read (``Detections.small``), not scored.  On
the WIDER sample 3% of SCRFD's faces under 16 px were readable (readability >= 0.5; none under 12 px)
against 23% at 16-20 px and 64% at 24-32 px; the floor takes 0.5% of the faces that reach the default
confidence 0.20 (4 of 772 on the training half, 6 of 1,294 held out; benchmarks/README.md)."""


def _centres(h: int, w: int, stride: int) -> np.ndarray:
    ys, xs = np.mgrid[:h, :w]
    c = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(c, ANCHORS, axis=0)


@register("scrfd")
class SCRFD:
    """SCRFD-2.5g with keypoints, float32 (``file`` picks another export, e.g. the int8 one)."""

    name = "scrfd"
    file = "scrfd_2.5g.onnx"

    def __init__(self, thresholds: Thresholds | None = None, side: int = 640, threads: int | None = None,
                 file: str | None = None, min_score: float | None = None, min_size: float | None = None):
        t = (thresholds or THRESHOLDS).with_floor(min_score, min_size)  # a candidate floor for sweeps, training
        self.thresholds, self.side = t, side
        self.file = file or self.file
        self.model = OnnxModel(model_file(self.file), threads)
        self.version = f"{self.name}-{file_version(self.model.path)}-s{side}-{t.tag()}"
        self._centres: dict = {}

    def _input(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """The network input: never enlarged (enlarging 100 px no-face scenes to 640 px gave 1.8% of them a
        face at score 0.4 against 0.3% without), shrunk to ``side``, padded to a multiple of 32."""
        import cv2

        h, w = rgb.shape[:2]
        s = min(1.0, self.side / max(h, w))  # never enlarged: small photos' textures become faces when blown up
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        img = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :nh, :nw] = (img.transpose(2, 0, 1).astype(np.float32) - MEAN) / STD
        return blob, s

    def raw(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores (K,), boxes (K, 4) as x, y, w, h, landmarks (K, 10)) at the candidate floor, before NMS,
        in ``rgb``'s pixels."""
        blob, s = self._input(rgb)
        sess = self.model.session
        outs = sess.run(None, {sess.get_inputs()[0].name: blob})
        ph, pw = blob.shape[2:]
        floor = self.thresholds.candidate
        scores, boxes, kps = [], [], []
        for i, stride in enumerate(STRIDES):
            sc, bb, kp = outs[i].reshape(-1), outs[i + 3].reshape(-1, 4), outs[i + 6].reshape(-1, 10)
            key = (ph // stride, pw // stride, stride)
            if key not in self._centres:
                self._centres[key] = _centres(*key)
            c = self._centres[key][: len(sc)]
            keep = sc >= floor
            if not keep.any():
                continue
            c, bb, kp = c[keep], bb[keep] * stride, kp[keep] * stride
            x1, y1 = c[:, 0] - bb[:, 0], c[:, 1] - bb[:, 1]
            x2, y2 = c[:, 0] + bb[:, 2], c[:, 1] + bb[:, 3]
            scores.append(sc[keep])
            boxes.append(np.stack([x1, y1, x2 - x1, y2 - y1], axis=1))
            kps.append(kp + np.tile(c, 5))
        if not scores:
            return np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.zeros((0, 10), np.float32)
        return np.concatenate(scores), np.concatenate(boxes) / s, np.concatenate(kps) / s

    def detect(self, rgb: np.ndarray, photo_scale: float = 1.0) -> Detections:
        scores, boxes, kps = self.raw(rgb)
        keep = nms_arrays(scores, boxes, NMS_IOU)
        scale = min(1.0, self.side / max(rgb.shape[:2]))  # min_size is in px of an image at most `side` long
        return self.thresholds.sized((Face(box_of(boxes[i]), float(scores[i]),
                                           [float(v) for v in kps[i]]) for i in keep), scale, photo_scale)


@register("scrfd-int8")
class SCRFDInt8(SCRFD):
    """The same network quantised to int8 (static, calibrated on training-half WIDER photos)."""

    name = "scrfd-int8"
    file = "scrfd_2.5g_int8.onnx"
