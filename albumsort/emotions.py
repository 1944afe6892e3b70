"""The emotion model at inference time: an ONNX file, run by ONNX Runtime.

The shipped model (``models/emotion.onnx``, exported by ``training/export.py``)
already ends in its calibrated heads: input ``face`` (N, S, S, C) float32 in
[0, 1], output ``probabilities`` (N, K+1): the probabilities of the K
expressions its card (``emotion.json``) names in ``labels`` (given that the
face is readable; the shipped model reads all seven ``EXPRESSIONS``), then
the readability score, 0..1 (is this a face whose expression can be read at
all?).  Scores come back in ``EXPRESSIONS`` order whatever the file's order;
an expression the file does not read (an older four-emotion model) is 0.  The crop
side S and the channel count C are read from the file's input shape
(``EmotionModel.input_size``, ``.channels``): a new model at 64 px in colour
needs no code change.  A four-output model reads every face as readable.

ONNX Runtime (``albumsort.runtime``) runs it on every OS.  Importing
TensorFlow would cost seconds per command and is never needed here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from albumsort.labels import EMOTIONS, EXPRESSIONS
from albumsort.preprocess import to_model_input
from albumsort.runtime import file_version, model_dirs, session

MODEL_NAME = "emotion.onnx"


def default_model_path() -> Path:
    env = os.environ.get("ALBUMSORT_MODEL")
    if env:
        return Path(env)
    for d in model_dirs():
        if (d / MODEL_NAME).is_file():
            return d / MODEL_NAME
    raise FileNotFoundError(f"no {MODEL_NAME} in " + ", ".join(str(d) for d in model_dirs()))


def model_version(path: str | Path | None = None) -> str:
    """The version the index records for the model at ``path`` (the shipped one by default), without loading it."""
    path = Path(path) if path else default_model_path()
    if not path.is_file():
        raise FileNotFoundError(f"emotion model not found: {path}")
    return f"{path.stem}-{file_version(path)}"


class EmotionModel:
    """Batched scoring of face crops into calibrated expression probabilities and readability."""

    def __init__(self, path: str | Path | None = None, threads: int | None = None):
        self.path = Path(path) if path else default_model_path()
        self.version = model_version(self.path)
        meta = self.path.with_suffix(".json")
        self.meta = json.loads(meta.read_text()) if meta.is_file() else {}
        self.labels: tuple[str, ...] = tuple(self.meta.get("labels", EMOTIONS))
        """The expressions the file reads, in the order of its outputs."""
        unknown = [e for e in self.labels if e not in EXPRESSIONS]
        if unknown:
            raise ValueError(f"{self.path}: model labels {', '.join(unknown)} are not among {', '.join(EXPRESSIONS)}")
        self._columns = [EXPRESSIONS.index(e) for e in self.labels]
        self.threads = threads
        if self.path.suffix != ".onnx":
            raise ValueError(f"{self.path}: albumsort runs .onnx models (export one with training/export.py)")
        self._session = session(self.path, threads)
        inp = self._session.get_inputs()[0]
        self._input, self._output = inp.name, self._session.get_outputs()[0].name
        shape = inp.shape  # (N, S, S, C); N is dynamic
        self.runtime = "onnxruntime"
        if not (len(shape) == 4 and isinstance(shape[1], int) and isinstance(shape[3], int)):
            raise ValueError(f"{self.path}: input shape {shape} is not (N, S, S, C)")
        self.input_size: int = shape[1]
        """Side S of the square crops the model reads (``crop_face(..., size=S)``)."""
        self.channels: int = shape[3]
        """1: grayscale crops; 3: RGB crops (``preprocess.for_model``)."""

    def _run(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        return np.concatenate([self._session.run([self._output], {self._input: x[i:i + batch_size]})[0]
                               for i in range(0, len(x), batch_size)])

    def score(self, inputs: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, 7) in ``EXPRESSIONS`` order, readability (N,)) for model inputs (N, S, S, C)."""
        k = len(self.labels)
        if len(inputs) == 0:
            return np.zeros((0, len(EXPRESSIONS)), dtype=np.float32), np.zeros(0, dtype=np.float32)
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        if x.shape[1:] != (self.input_size, self.input_size, self.channels):
            raise ValueError(f"inputs {x.shape[1:]} do not fit the model's "
                             f"{(self.input_size, self.input_size, self.channels)}")
        y = self._run(x, batch_size).astype(np.float32)
        readability = y[:, k] if y.shape[1] > k else np.ones(len(y), np.float32)
        probs = np.zeros((len(y), len(EXPRESSIONS)), np.float32)
        probs[:, self._columns] = y[:, :k]
        return probs, readability

    def score_crops(self, crops: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, 7), readability (N,)) for uint8 crops (N, S, S) or (N, S, S, 3) from ``crop_face``."""
        return self.score(to_model_input(np.asarray(crops)), batch_size=batch_size)
