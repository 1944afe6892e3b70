"""YuNet (libfacedetection, 2023mar weights) on ONNX Runtime: ``--detector yunet``, the licence-clean choice.

Weights: ``models/yunet_s_dynamic.onnx`` from ShiqiYu/libfacedetection.train
(Apache-2.0; the same network opencv_zoo ships as
``face_detection_yunet_2023mar.onnx`` under MIT), exported with a dynamic
input size so the photo is read at 1000 px as the ``yuface`` wheel read it.
Issue 17 measured it three times faster on ONNX Runtime than in yuface, with
the same quality.

Input: BGR, 0..255, padded to a multiple of 32.  Output per stride 8, 16 and
32, one prior per cell: class and objectness scores (score = sqrt(cls x obj)),
box centre offset and log size, five landmarks.
"""

from __future__ import annotations

import numpy as np

from albumsort.detectors import DETECT_SIDE, Detections, Face, Thresholds, box_of, nms_arrays, register, resize_to
from albumsort.runtime import OnnxModel, file_version, model_file

STRIDES = (8, 16, 32)
NMS_IOU = 0.3

THRESHOLDS = Thresholds(candidate=0.5, sure=0.65, readable=0.5, min_size=24)
"""The rule chosen for YuNet in issue 8 (benchmarks/README.md): the most recall at >= 90% precision on the
training half of the WIDER sample.  Its size floor is at detection scale (24 px of the 1000 px image, so at
least 24 px of the photo too): YuNet's smaller boxes are not reliable enough to keep; the sure ones among
them are counted as too small to read (issue 15: 14 of 400 WIDER photos hold only such faces)."""


@register("yunet")
class YuNet:
    """YuNet-s, one pass at ``side`` px; ``min_score``/``min_size`` lower the candidate floor (sweeps, training)."""

    name = "yunet"
    file = "yunet_s_dynamic.onnx"

    def __init__(self, thresholds: Thresholds | None = None, side: int = DETECT_SIDE, threads: int | None = None,
                 file: str | None = None, min_score: float | None = None, min_size: float | None = None):
        t = (thresholds or THRESHOLDS).with_floor(min_score, min_size)
        self.thresholds, self.side = t, side
        self.min_score, self.min_size = t.candidate, t.min_size  # the names training/ reads
        self.file = file or self.file
        self.model = OnnxModel(model_file(self.file), threads)
        self.version = f"{self.name}-{file_version(self.model.path)}-s{side}-{t.tag()}"

    def raw(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(scores, boxes x, y, w, h, landmarks, scale) at the candidate floor, in detection-scale pixels."""
        small, s = resize_to(rgb, self.side)
        h, w = small.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = small[:, :, ::-1].transpose(2, 0, 1)
        sess = self.model.session
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": blob}), strict=True))
        scores, boxes, kps = [], [], []
        for stride in STRIDES:
            cls = np.clip(out[f"cls_{stride}"].reshape(-1), 0, 1)
            obj = np.clip(out[f"obj_{stride}"].reshape(-1), 0, 1)
            sc = np.sqrt(cls * obj)
            keep = np.nonzero(sc >= self.thresholds.candidate)[0]
            if not len(keep):
                continue
            cols = pw // stride
            cx0, cy0 = (keep % cols).astype(np.float32), (keep // cols).astype(np.float32)
            bb = out[f"bbox_{stride}"].reshape(-1, 4)[keep]
            kp = out[f"kps_{stride}"].reshape(-1, 10)[keep]
            cx, cy = (cx0 + bb[:, 0]) * stride, (cy0 + bb[:, 1]) * stride
            bw, bh = np.exp(bb[:, 2]) * stride, np.exp(bb[:, 3]) * stride
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
            kps.append((kp + np.tile(np.stack([cx0, cy0], axis=1), 5)) * stride)
            scores.append(sc[keep])
        if not scores:
            return np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.zeros((0, 10), np.float32), s
        return np.concatenate(scores), np.concatenate(boxes), np.concatenate(kps), s

    def detect(self, rgb: np.ndarray, photo_scale: float = 1.0) -> Detections:
        scores, boxes, kps, s = self.raw(rgb)
        keep = nms_arrays(scores, boxes, NMS_IOU)
        return self.thresholds.sized((Face(box_of(boxes[i]), float(scores[i]),
                                           [float(v) for v in kps[i]]).scaled(1 / s) for i in keep), s, photo_scale)

