"""The emotion model at inference time: a TFLite file, run without TensorFlow.

The shipped model (``models/emotion.tflite``) already ends in its calibrated
heads: five outputs per face, the four emotion probabilities in ``EMOTIONS``
order (given that the face is readable) and the readability score, 0..1
(is this a face whose expression can be read at all?).  A four-output model
from before the readability head reads every face as readable.  It runs in LiteRT (``ai-edge-litert``, ~30 ms to load)
and falls back to OpenCV's DNN module where LiteRT has no wheel.  Importing
TensorFlow would cost seconds per command and is never needed here.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from albumsort.litert import TFLiteModel, file_version
from albumsort.preprocess import EMOTIONS, to_model_input

MODEL_NAME = "emotion.tflite"


def model_dirs() -> list[Path]:
    """Where the shipped model is looked for, first match wins.

    ``ALBUMSORT_MODEL_DIR``, then the source checkout's ``models/`` (so a new
    model dropped there is picked up without code changes), then the copy
    packed into the wheel.
    """
    dirs = []
    if os.environ.get("ALBUMSORT_MODEL_DIR"):
        dirs.append(Path(os.environ["ALBUMSORT_MODEL_DIR"]))
    here = Path(__file__).resolve().parent
    dirs += [here.parent / "models", here / "_models"]
    return dirs


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
    """Batched scoring of 48x48 face crops into four calibrated probabilities."""

    def __init__(self, path: str | Path | None = None, threads: int | None = None):
        self.path = Path(path) if path else default_model_path()
        self.version = model_version(self.path)
        meta = self.path.with_suffix(".json")
        self.meta = json.loads(meta.read_text()) if meta.is_file() else {}
        labels = tuple(self.meta.get("labels", EMOTIONS))
        if labels != EMOTIONS:
            raise ValueError(f"{self.path}: model labels {labels} differ from {EMOTIONS}")
        self.threads = threads or min(2, os.cpu_count() or 1)
        self._model = TFLiteModel(self.path, self.threads)
        self.runtime = self._model.runtime

    def score(self, inputs: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, 4), readability (N,)) for model inputs (N, 48, 48, 1) from ``to_model_input``."""
        k = len(EMOTIONS)
        if len(inputs) == 0:
            return np.zeros((0, k), dtype=np.float32), np.zeros(0, dtype=np.float32)
        y = self._model.run_batched(inputs, batch_size).astype(np.float32)
        readability = y[:, k] if y.shape[1] > k else np.ones(len(y), np.float32)
        return y[:, :k], readability

    def predict(self, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Emotion probabilities (N, 4) for model inputs (N, 48, 48, 1)."""
        return self.score(inputs, batch_size)[0]

    def score_crops(self, crops: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, 4), readability (N,)) for uint8 crops (N, 48, 48) from ``crop_face``."""
        return self.score(to_model_input(np.asarray(crops)), batch_size=batch_size)

    def predict_crops(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Emotion probabilities (N, 4) for uint8 crops (N, 48, 48) from ``crop_face``."""
        return self.score_crops(crops, batch_size)[0]


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> EmotionModel:
    """One model per process: loading it per photo would dominate the run."""
    return EmotionModel(path)
