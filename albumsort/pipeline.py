"""The photo pipeline: bytes on disk in, faces with their emotions out, no database.

A ``Pipeline`` is built from a ``PipelineSpec`` (which detector, which
emotion model).  The spec's versions, the model files' content hashes plus
every threshold, are computed without loading a network, so the indexer can
tell which photos need re-scoring before any worker starts; they are stored
with every photo, and a photo scored by other versions is scored again by the
next ``albumsort index``.

Per photo (``Pipeline.read``): decode at ``DECODE_SIDE`` (a 12 MP JPEG at
1/4 scale), find candidate faces, cut each with ``preprocess.crop_face`` at
the model's input size S and colour (read from the model file), score them,
and keep the candidates the detector's thresholds confirm.  A face smaller
than S at that scale is cut from a second decode where it is at least S
tall (the smallest libjpeg scale that is enough), made only for photos that
have such faces: a face 25 px tall in the 1000 px decode of a 12 MP photo is
read from 100 px of real pixels, not from 25 px upscaled.

``albumsort index`` (in worker processes), benchmarks/detection.py and the
tests all call this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from albumsort.preprocess import EMOTIONS

DECODE_SIDE = 1000
"""Photos are decoded with their long side at most this for detection (``faces.DETECT_SIDE``):
libjpeg decodes a 4000x3000 JPEG at 1/4 scale to exactly 1000x750."""

REREAD = "reread-small"
"""Tag of the crop policy in the detector version (small faces cut from a larger decode)."""


@dataclass(frozen=True)
class PipelineSpec:
    """What a pipeline is made of; ``versions()`` says what the index records, without loading anything."""

    detector: str | None = None  # a name in albumsort.detectors (None: ALBUMSORT_DETECTOR, else the default)
    model_path: str | None = None  # None: the shipped emotion model

    def versions(self) -> tuple[str, str]:
        """(emotion model version, detector version); results made with others are re-scored."""
        from albumsort.emotions import model_version
        from albumsort.faces import make_detector

        return model_version(self.model_path), f"{make_detector(self.detector).version}-{REREAD}"

    @property
    def version(self) -> str:
        return " + ".join(self.versions())


@dataclass
class FacesFound:
    """The confirmed faces of one image, in the pixels of the image the detector was given."""

    faces: list = field(default_factory=list)  # faces.Face
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, len(EMOTIONS)), np.float32))
    readability: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    read_scale: list = field(default_factory=list)
    """Per face: how many pixels of the image its crop was cut from per pixel of the detection image
    (1.0, or more when it came from a larger decode)."""


def reread_side(full_side: int, seen_side: int, smallest: float, size: int) -> int | None:
    """Long side to decode again at so a face ``smallest`` px at ``seen_side`` becomes at least ``size`` px.

    Rounded up to one of libjpeg's scales of the full photo (1/8, 1/4, 1/2, 1), which decode as fast as
    anything smaller; None when the detection decode is already the full photo.
    """
    if full_side <= seen_side:
        return None
    need = seen_side * size / max(smallest, 1e-6)
    for d in (8, 4, 2):
        side = math.ceil(full_side / d)
        if side > seen_side and side >= need:
            return side
    return full_side


def crops_for(image: np.ndarray, faces: list, size: int, channels: int, scale: float = 1.0) -> np.ndarray:
    """``preprocess.crop_face`` of every face (boxes in detection pixels; ``image`` is ``scale`` times larger)."""
    from albumsort import preprocess as pp

    img = pp.for_model(image, channels)
    out = []
    for f in faces:
        g = f.scaled(scale) if scale != 1.0 else f
        out.append(pp.crop_face(img, g.box, g.landmarks, size=size))
    return np.stack(out)


def find_faces(rgb: np.ndarray, detector, model,
               larger: Callable[[int], np.ndarray] | None = None, full_side: int | None = None) -> FacesFound:
    """The faces in ``rgb`` that ``detector.thresholds`` confirms, scored by ``model``.

    ``larger(side)`` decodes the same photo with its long side ``side`` (up to ``full_side``), or returns
    None when it cannot; faces smaller than the model's input at ``rgb``'s scale are cut from it.  Without
    it every crop comes from ``rgb``.  The one definition of "the faces in a photo".
    """
    cands = detector.detect(rgb)
    if not cands:
        return FacesFound()
    size, channels = model.input_size, model.channels
    crops = crops_for(rgb, cands, size, channels)
    scales = [1.0] * len(cands)
    small = [i for i, f in enumerate(cands) if max(f.box[2], f.box[3]) < size]
    seen = max(rgb.shape[:2])
    if small and larger is not None and full_side:
        side = reread_side(full_side, seen, min(max(cands[i].box[2], cands[i].box[3]) for i in small), size)
        big = larger(side) if side else None
        if big is not None:
            s = max(big.shape[:2]) / seen
            if s > 1:
                crops[small] = crops_for(big, [cands[i] for i in small], size, channels, s)
                for i in small:
                    scales[i] = s
    probs, readability = model.score_crops(crops)
    t = detector.thresholds
    keep = [i for i, f in enumerate(cands) if t.confirmed(f.score, float(readability[i]))]
    return FacesFound([cands[i] for i in keep], probs[keep], readability[keep], [scales[i] for i in keep])


class Pipeline:
    """The detector and the emotion model of one ``PipelineSpec``, loaded once, applied per photo."""

    def __init__(self, spec: PipelineSpec | None = None, threads: int | None = 1):
        from albumsort.emotions import EmotionModel
        from albumsort.faces import make_detector

        self.spec = spec or PipelineSpec()
        self.detector = make_detector(self.spec.detector, threads=threads)
        self.model = EmotionModel(self.spec.model_path, threads=threads)
        self.versions = (self.model.version, f"{self.detector.version}-{REREAD}")

    def find_faces(self, rgb: np.ndarray, larger=None, full_side: int | None = None) -> FacesFound:
        return find_faces(rgb, self.detector, self.model, larger, full_side)

    def read(self, path: str | Path, max_pixels: int) -> dict:
        """Decode, detect and score one photo: width, height, dhash and faces (boxes in full-photo pixels).

        Raises ``images.ImageError`` when the file cannot be decoded.
        """
        from albumsort.images import ImageError, difference_hash, load_rgb

        rgb, (full_w, full_h) = load_rgb(path, max_side=DECODE_SIDE, max_pixels=max_pixels)

        def larger(side: int):
            try:
                return load_rgb(path, max_side=side, max_pixels=max_pixels)[0]
            except (ImageError, MemoryError):  # too large to decode bigger: crops from the first decode
                return None

        found = self.find_faces(rgb, larger, max(full_w, full_h))
        s = full_w / rgb.shape[1]
        return {
            "width": full_w, "height": full_h, "dhash": difference_hash(rgb),
            "faces": [{"box": [v * s for v in f.box], "score": f.score, "p": [float(v) for v in p],
                       "readability": float(r), "read_scale": rs,
                       "landmarks": [round(v * s, 1) for v in f.landmarks] if f.landmarks else None}
                      for f, p, r, rs in zip(found.faces, found.probabilities, found.readability,
                                             found.read_scale)],
        }
