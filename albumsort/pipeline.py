"""The photo pipeline: one photo (a path, or its bytes) in, one typed result out; no database.

A :class:`Pipeline` is built from a :class:`PipelineSpec` (which detector,
which emotion model, the pixel limit).  The spec's versions, the model
files' content hashes plus every threshold and the crop policy, are computed
without loading a network, so the driver can tell which photos need
re-scoring before any worker starts; they are stored with every photo, and a
photo scored by other versions is scored again by the next ``albumsort
index``.  The pipeline owns the detector (``albumsort.detectors``) and the
emotion model, both on ONNX Runtime (``albumsort.runtime``), loaded once.

``Pipeline.analyse`` checks the header, hashes the content, asks an optional
``known`` oracle whether that content is already scored with the current
versions, and otherwise decodes at ``DECODE_SIDE`` (a 12 MP JPEG at 1/4
scale), finds candidate faces, cuts each with ``preprocess.crop_face`` at
the model's input size S and colour (read from the model file), scores them,
and keeps the candidates the detector's thresholds confirm.  A face smaller
than S at that scale is cut from a second decode where it is at least S
tall (the smallest libjpeg scale that is enough), made only for photos that
have such faces: a face 25 px tall in the 1000 px decode of a 12 MP photo is
read from 100 px of real pixels, not from 25 px upscaled.  Faces the
detector is sure of but that are too small to read even so are counted
(``Analysed.n_small``), not scored.

Its results are small frozen dataclasses that pickle to a local worker
process and to a Ray actor alike: :class:`Analysed`, :class:`Known` and
:class:`Failed`, whose ``remember`` says whether the failure depends on the
file's bytes alone (then the index skips the unchanged file on later runs).
Whoever writes the index (``indexing``) turns them into rows; whoever runs
them (``executors``) never reads or writes the index.  Benchmarks, training
and tests call this module directly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from albumsort import stages
from albumsort.labels import EXPRESSIONS

DECODE_SIDE = 1000
"""Photos are decoded with their long side at most this for detection (``faces.DETECT_SIDE``):
libjpeg decodes a 4000x3000 JPEG at 1/4 scale to exactly 1000x750."""

REREAD = "reread-48"
"""Tag of the crop policy in the detector version (faces under ``READ_SIDE`` cut from a larger decode).  Not
changed by ``MIN_REREAD_GAIN``: a photo scored before it differs by at most 1.5x the detail of a face's crop,
not worth re-scoring a whole library for."""

READ_SIDE = 48
"""A face is cut for the model from a decode where its box is at least this many pixels (or the model's
input, if smaller).  The model reads no better from more: RAF-DB's validation faces shrunk to N px and
enlarged to its 96 px input read 71.8% right at 24 px, 78.3% at 32, 80.2% at 40, 81.1% at 48, 80.3% at
64 and 80.9% at 100 (``benchmarks/small_faces.py --resolution``).  Asking for 96 px decoded 62 of 100
camera photos again at full size for nothing."""

MIN_REREAD_GAIN = 1.5
"""A second decode is made only when it gives a small face at least this many times the pixels per side:
a 1024 px photo decoded at 1000 px for detection is never decoded again for 2% more detail (the profile,
``benchmarks/index_speed.py --profile``, found 7 in 8 of WIDER's 1024 px photos decoded twice for it)."""

NOT_REMEMBERED = ("permission denied", "cannot read", "image too large:", "not enough memory",
                  "corrupt image: [Errno")
"""Failures that depend on the machine or the options (permissions, a missing mount, --max-pixels,
memory), not on the file's bytes: retried on the next run instead of remembered."""


# --------------------------------------------------------------------------
# Results
@dataclass(frozen=True)
class FaceResult:
    """One kept face, in full-resolution upright pixels."""

    box: tuple[float, float, float, float]  # x, y, w, h
    det_score: float
    p: tuple[float, ...]  # one probability per expression, in ``EXPRESSIONS`` order
    readability: float
    landmarks: tuple[float, ...] | None = None
    read_scale: float = 1.0
    """Pixels of the decode its crop was cut from per pixel of the detection decode (1.0, or more when it
    was read from a larger decode)."""
    embedding: bytes | None = None
    """Who it is: the unit face embedding as float32 bytes (``albumsort.embeddings``), None when people are
    off or the face is too small, blurred or turned away to identify (``FaceEmbedder.usable``)."""
    embedding_norm: float | None = None
    """The embedding's raw norm (its quality), also for a face judged not usable; None when people are off or
    the face is too small to identify (the network is not run on it)."""


@dataclass(frozen=True)
class Analysed:
    """A photo decoded and scored."""

    hash: str
    width: int
    height: int
    dhash: int
    exif_time: float | None
    faces: tuple[FaceResult, ...]
    n_small: int = 0
    """Faces the detector was sure of but that were too small to read (``faces`` holds none of them)."""
    truncated: float | None = None
    """The file ends early (an interrupted copy) and was read as far as it goes: the share of the picture it
    held (``images.load_rgb``); None for a whole file."""
    timings: dict | None = field(default=None, compare=False)
    """Stage timings in ms when profiling (``albumsort.stages``), else None."""



@dataclass(frozen=True)
class Known:
    """A photo whose content is already scored with the current versions: nothing was decoded."""

    hash: str
    timings: dict | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Failed:
    """A photo that could not be analysed; ``remember``: its bytes alone make it fail."""

    reason: str
    remember: bool = False
    hash: str | None = None
    timings: dict | None = field(default=None, compare=False)

    @classmethod
    def of(cls, reason: str, content_hash: str | None = None) -> Failed:
        return cls(reason, remember=not reason.startswith(NOT_REMEMBERED), hash=content_hash)


Result = Analysed | Known | Failed


# --------------------------------------------------------------------------
# What a pipeline is made of
@dataclass(frozen=True)
class PipelineSpec:
    """What a pipeline is built from; plain values, so it travels to any worker.  ``versions()`` says what
    the index records, without loading anything."""

    detector: str | None = None  # a name in albumsort.detectors (None: ALBUMSORT_DETECTOR, else the default)
    model_path: str | None = None  # None: the shipped emotion model
    max_pixels: int | None = None  # None: images.MAX_PIXELS
    people: bool = True  # embed every kept face large enough to identify (``albumsort.embeddings``)

    def versions(self) -> tuple[str, str]:
        """(emotion model version, detector version); results made with others are re-scored.  With people
        on, the face-recognition model's version is part of the detector's: a new one re-embeds every face."""
        from albumsort.emotions import model_version
        from albumsort.faces import make_detector

        detector = f"{make_detector(self.detector).version}-{REREAD}"
        if self.people:
            from albumsort.embeddings import model_version as embedder_version

            detector += f"+{embedder_version()}"
        return model_version(self.model_path), detector

    @property
    def version(self) -> str:
        return " + ".join(self.versions())


def single_threaded() -> None:
    """One thread per worker for OpenCV and OpenMP: workers are the parallelism."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)


# --------------------------------------------------------------------------
# The faces in one decoded image
@dataclass
class FacesFound:
    """The confirmed faces of one image, in the pixels of the image the detector was given."""

    faces: list = field(default_factory=list)  # faces.Face
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, len(EXPRESSIONS)), np.float32))
    readability: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    read_scale: list = field(default_factory=list)
    """Per face: how many pixels of the image its crop was cut from per pixel of the detection image
    (1.0, or more when it came from a larger decode)."""
    small: int = 0
    """Faces the detector was sure of but left out as too small to read (``detectors.Detections.small``)."""
    larger: np.ndarray | None = None
    """The second, larger decode when one was made (faces with a ``read_scale`` above 1 were cut from it)."""


def reread_side(full_side: int, seen_side: int, smallest: float, size: int) -> int | None:
    """Long side to decode again at so a face ``smallest`` px at ``seen_side`` becomes at least ``size`` px.

    Rounded up to one of libjpeg's scales of the full photo (1/8, 1/4, 1/2, 1), which decode as fast as
    anything smaller; None when the detection decode is already the full photo or nearly
    (``MIN_REREAD_GAIN``).
    """
    if full_side < MIN_REREAD_GAIN * seen_side:
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

    ``full_side`` is the photo's own long side (``rgb`` may be a reduced decode of it): the detector's
    size floor in the photo's pixels is measured against it.  ``larger(side)`` decodes the same photo
    with its long side ``side`` (up to ``full_side``), or returns None when it cannot; faces under
    ``READ_SIDE`` at ``rgb``'s scale are cut from it.  Without it every crop comes from ``rgb``.  The
    one definition of "the faces in a photo".
    """
    seen = max(rgb.shape[:2])
    with stages.stage("detect"):
        found = detector.detect(rgb, photo_scale=full_side / seen if full_side else 1.0)  # detectors.Detections
    stages.note("faces", len(found))
    if not found:
        return FacesFound(small=found.small)
    cands = list(found)
    size, channels = model.input_size, model.channels
    with stages.stage("crop"):
        crops = crops_for(rgb, cands, size, channels)
    scales = [1.0] * len(cands)
    big = None
    enough = min(size, READ_SIDE)
    under = [i for i, f in enumerate(cands) if max(f.box[2], f.box[3]) < enough]  # read from more pixels
    if under and larger is not None and full_side:
        side = reread_side(full_side, seen, min(max(cands[i].box[2], cands[i].box[3]) for i in under), enough)
        with stages.stage("second_decode"):
            big = larger(side) if side else None
        if big is not None:
            s = max(big.shape[:2]) / seen
            stages.note("second_decode_scale", round(s, 3))
            if s > 1:
                with stages.stage("crop"):
                    crops[under] = crops_for(big, [cands[i] for i in under], size, channels, s)
                for i in under:
                    scales[i] = s
    with stages.stage("emotion_model"):
        probs, readability = model.score_crops(crops)
    t = detector.thresholds
    keep = [i for i, f in enumerate(cands) if t.confirmed(f.det_score, float(readability[i]))]
    return FacesFound([cands[i] for i in keep], probs[keep], readability[keep], [scales[i] for i in keep],
                      found.small, big if any(scales[i] > 1 for i in keep) else None)


# --------------------------------------------------------------------------
# The pipeline
class Pipeline:
    """The detector and the emotion model of one ``PipelineSpec``, loaded once; ``analyse`` turns a photo into a
    :data:`Result`."""

    def __init__(self, spec: PipelineSpec | None = None, threads: int | None = 1):
        from albumsort.emotions import EmotionModel
        from albumsort.faces import make_detector
        from albumsort.images import MAX_PIXELS

        self.spec = spec or PipelineSpec()
        self.max_pixels = self.spec.max_pixels or MAX_PIXELS
        self.detector = make_detector(self.spec.detector, threads=threads)
        self.model = EmotionModel(self.spec.model_path, threads=threads)
        self.embedder = None
        if self.spec.people:
            from albumsort.embeddings import FaceEmbedder

            self.embedder = FaceEmbedder(threads=threads)
        self.versions = self.spec.versions()

    def find_faces(self, rgb: np.ndarray, larger=None, full_side: int | None = None) -> FacesFound:
        return find_faces(rgb, self.detector, self.model, larger, full_side)

    def analyse(self, path: str, data: bytes | None = None,
                known: Callable[[str], bool] | None = None) -> Result:
        """Check, hash, decode, detect and score the photo at ``path`` (or ``data``, its bytes, read elsewhere).

        The header is read first, so a junk or oversized file is refused
        before anything large is read or decoded; the hash is computed in
        chunks.  ``known(hash)`` true: the content is scored already, nothing
        is decoded.
        """
        with stages.photo() as timings:
            start = time.perf_counter()
            res = self._analyse(path, data, known)
            if timings is None:
                return res
            import pickle

            timings["total"] = (time.perf_counter() - start) * 1000.0
            t0 = time.perf_counter()
            pickle.dumps(res)
            timings["pickle"] = (time.perf_counter() - t0) * 1000.0
            timings["end"] = time.time()
            return dataclasses.replace(res, timings=dict(timings))

    def _analyse(self, path: str, data: bytes | None, known) -> Result:
        checked = self.check(path, data)
        if isinstance(checked, Failed):
            return checked
        content_hash, taken = checked
        if known is not None:
            with stages.stage("known_lookup"):
                if known(content_hash):
                    return Known(content_hash)
        return self.score(path, content_hash, taken, data)

    def check(self, path: str, data: bytes | None = None) -> tuple[str, float | None] | Failed:
        """(content hash, EXIF capture time) after the header check, or why the photo fails it."""
        from albumsort.images import ImageError, check_header

        try:
            if data is None:
                with stages.stage("header"):
                    taken = check_header(path, self.max_pixels)[3]
                with stages.stage("read_hash"):
                    h = hashlib.blake2b(digest_size=16)
                    with open(path, "rb") as f:
                        while chunk := f.read(1 << 20):
                            h.update(chunk)
            else:
                with stages.stage("header"):
                    taken = check_header(io.BytesIO(data), self.max_pixels, name=path)[3]
                with stages.stage("read_hash"):
                    h = hashlib.blake2b(data, digest_size=16)
        except ImageError as e:
            return Failed.of(str(e))
        except OSError as e:
            return Failed(f"cannot read: {e.strerror or e}")
        return h.hexdigest(), taken

    def score(self, path: str, content_hash: str, taken: float | None, data: bytes | None = None) -> Result:
        """Decode and score a photo whose header passed and whose hash is ``content_hash``.

        Decoded at ``DECODE_SIDE`` for detection; decoded once more, larger, only when it has faces too
        small at that size for the model's input (a photo too large to decode bigger keeps crops from the
        first decode).
        """
        from albumsort.images import ImageError, difference_hash, load_rgb

        def source():
            return path if data is None else io.BytesIO(data)

        read: dict = {}
        try:
            with stages.stage("reduced_decode"):
                rgb, (full_w, full_h) = load_rgb(source(), max_side=DECODE_SIDE, max_pixels=self.max_pixels,
                                                 name=path, info=read)

        except ImageError as e:
            return Failed.of(str(e), content_hash)

        def larger(side: int) -> np.ndarray | None:
            try:
                return load_rgb(source(), max_side=side, max_pixels=self.max_pixels, name=path)[0]
            except (ImageError, MemoryError):  # too large to decode bigger: crops from the first decode
                return None

        found = self.find_faces(rgb, larger, max(full_w, full_h))
        s = full_w / rgb.shape[1]
        with stages.stage("dhash"):
            dhash = difference_hash(rgb)
        who = self.identify(rgb, found)
        return Analysed(
            hash=content_hash, width=full_w, height=full_h, dhash=dhash, exif_time=taken,
            n_small=found.small, truncated=read.get("truncated"),

            faces=tuple(FaceResult(box=tuple(v * s for v in f.box), det_score=f.det_score,
                                   p=tuple(float(v) for v in p), readability=float(r),
                                   landmarks=tuple(round(v * s, 1) for v in f.landmarks) if f.landmarks else None,
                                   read_scale=float(rs), embedding=emb, embedding_norm=norm)
                        for f, p, r, rs, (emb, norm) in zip(found.faces, found.probabilities, found.readability,
                                                            found.read_scale, who, strict=True)))

    def identify(self, rgb: np.ndarray, found: FacesFound) -> list[tuple[bytes | None, float | None]]:
        """(embedding bytes or None, raw norm or None) per kept face; all None when people are off.

        A face cut from the larger decode is embedded from it too: alignment and the size rule see its
        real pixels.  Faces without the detector's five landmarks get no embedding, and faces too small to
        identify neither an embedding nor a norm (the network is not run on them)."""
        out: list[tuple[bytes | None, float | None]] = [(None, None)] * len(found.faces)
        if self.embedder is None:
            return out
        from albumsort.embeddings import to_bytes

        with stages.stage("embed"):
            for src, scale in ((rgb, 1.0), (found.larger, None)):
                if src is None:
                    continue
                pick = [i for i, f in enumerate(found.faces) if f.landmarks is not None
                        and (found.read_scale[i] > 1) == (scale is None)]
                if not pick:
                    continue
                s = found.read_scale[pick[0]] if scale is None else scale
                emb = self.embedder.embed(src, [found.faces[i] for i in pick], scale=s)
                for j, i in enumerate(pick):
                    vec = to_bytes(emb.vectors[j]) if emb.usable[j] else None
                    norm = float(emb.norms[j])
                    out[i] = (vec, None if np.isnan(norm) else round(norm, 3))
        return out
