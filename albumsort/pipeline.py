"""The photo pipeline: one photo (a path, or its bytes) in, one typed result out; no database.

A :class:`Pipeline` is built from a :class:`PipelineSpec` (detector name,
model file, pixel limit) and owns the detector and the emotion model, loaded
once.  ``analyse`` checks the header, hashes the content, asks an optional
``known`` oracle whether that content is already scored with the current
versions, and otherwise decodes, detects, crops and scores.

Its results are small frozen dataclasses that pickle to a local worker
process and to a Ray actor alike: :class:`Analysed`, :class:`Known` and
:class:`Failed`, whose ``remember`` says whether the failure depends on the
file's bytes alone (then the index skips the unchanged file on later runs).
Whoever writes the index (``indexer``) turns them into rows; whoever runs
them (``executors``) never reads or writes the index.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import Callable, Optional, Union

NOT_REMEMBERED = ("permission denied", "cannot read", "image too large:", "not enough memory",
                  "corrupt image: [Errno")
"""Failures that depend on the machine or the options (permissions, a missing mount, --max-pixels,
memory), not on the file's bytes: retried on the next run instead of remembered."""


@dataclass(frozen=True)
class FaceResult:
    """One kept face, in full-resolution upright pixels."""

    box: tuple[float, float, float, float]  # x, y, w, h
    det_score: float
    p: tuple[float, ...]  # one probability per emotion, in ``EMOTIONS`` order
    readability: float
    landmarks: Optional[tuple[float, ...]] = None


@dataclass(frozen=True)
class Analysed:
    """A photo decoded and scored."""

    hash: str
    width: int
    height: int
    dhash: int
    exif_time: Optional[float]
    faces: tuple[FaceResult, ...]
    n_small: int = 0
    """Faces the detector was sure of but that were too small to read (``faces`` holds none of them)."""


@dataclass(frozen=True)
class Known:
    """A photo whose content is already scored with the current versions: nothing was decoded."""

    hash: str


@dataclass(frozen=True)
class Failed:
    """A photo that could not be analysed; ``remember``: its bytes alone make it fail."""

    reason: str
    remember: bool = False
    hash: Optional[str] = None

    @classmethod
    def of(cls, reason: str, content_hash: str | None = None) -> "Failed":
        return cls(reason, remember=not reason.startswith(NOT_REMEMBERED), hash=content_hash)


Result = Union[Analysed, Known, Failed]


@dataclass(frozen=True)
class PipelineSpec:
    """What a pipeline is built from; plain values, so it travels to any worker."""

    detector_name: Optional[str] = None
    model_path: Optional[str] = None
    max_pixels: Optional[int] = None

    def versions(self) -> tuple[str, str]:
        """(emotion model version, detector version): results made with others are re-scored."""
        from albumsort.emotions import model_version
        from albumsort.faces import make_detector

        return model_version(self.model_path), make_detector(self.detector_name).version


def single_threaded() -> None:
    """One thread per worker for OpenCV and OpenMP: workers are the parallelism."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)


class Pipeline:
    """The detector and the emotion model, loaded once; ``analyse`` turns a photo into a :data:`Result`."""

    def __init__(self, spec: PipelineSpec, threads: int = 1):
        from albumsort.emotions import EmotionModel
        from albumsort.faces import make_detector
        from albumsort.images import MAX_PIXELS

        self.spec = spec
        self.max_pixels = spec.max_pixels or MAX_PIXELS
        self.detector = make_detector(spec.detector_name)
        self.model = EmotionModel(spec.model_path, threads=threads)

    def analyse(self, path: str, data: bytes | None = None,
                known: Callable[[str], bool] | None = None) -> Result:
        """Check, hash, decode, detect and score the photo at ``path`` (or ``data``, its bytes, read elsewhere).

        The header is read first, so a junk or oversized file is refused
        before anything large is read or decoded; the hash is computed in
        chunks.  ``known(hash)`` true: the content is scored already, nothing
        is decoded.
        """
        checked = self.check(path, data)
        if isinstance(checked, Failed):
            return checked
        content_hash, taken = checked
        if known is not None and known(content_hash):
            return Known(content_hash)
        return self.score(path, content_hash, taken, data)

    def check(self, path: str, data: bytes | None = None) -> tuple[str, Optional[float]] | Failed:
        """(content hash, EXIF capture time) after the header check, or why the photo fails it."""
        from albumsort.images import ImageError, check_header

        try:
            if data is None:
                taken = check_header(path, self.max_pixels)[3]
                h = hashlib.blake2b(digest_size=16)
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            else:
                taken = check_header(io.BytesIO(data), self.max_pixels, name=path)[3]
                h = hashlib.blake2b(data, digest_size=16)
        except ImageError as e:
            return Failed.of(str(e))
        except OSError as e:
            return Failed(f"cannot read: {e.strerror or e}")
        return h.hexdigest(), taken

    def score(self, path: str, content_hash: str, taken: float | None, data: bytes | None = None) -> Result:
        """Decode and score a photo whose header passed and whose hash is ``content_hash``."""
        from albumsort.images import ImageError, difference_hash, load_rgb
        from albumsort.indexer import DECODE_SIDE, find_faces  # the detection internals stay there for now

        try:
            source = path if data is None else io.BytesIO(data)
            rgb, (full_w, full_h) = load_rgb(source, max_side=DECODE_SIDE, max_pixels=self.max_pixels, name=path)
        except ImageError as e:
            return Failed.of(str(e), content_hash)
        faces, probs, readability = find_faces(rgb, self.detector, self.model)
        s = full_w / rgb.shape[1]
        return Analysed(
            hash=content_hash, width=full_w, height=full_h, dhash=difference_hash(rgb), exif_time=taken,
            n_small=int(getattr(self.detector, "small", 0)),
            faces=tuple(FaceResult(box=tuple(v * s for v in f.box), det_score=f.score,
                                   p=tuple(float(v) for v in p), readability=float(r),
                                   landmarks=tuple(round(v * s, 1) for v in f.landmarks) if f.landmarks else None)
                        for f, p, r in zip(faces, probs, readability)))
