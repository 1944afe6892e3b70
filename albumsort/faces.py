"""Faces: ``make_detector``, the way in to the detector back-ends (``Face`` and its geometry live beside them).

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

from albumsort.detectors import DETECT_SIDE, Face, iou, nms, nms_arrays, resize_to

__all__ = ["DETECT_SIDE", "DetectorUnavailable", "Face", "YuNetDetector", "iou", "make_detector", "nms", "nms_arrays",
           "resize_to"]

class DetectorUnavailable(Exception):
    """The requested face detector cannot run here (its weights are missing); ``str()`` says which."""


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
