"""The one place ONNX Runtime sessions are made: every network albumsort runs goes through here.

ONNX Runtime has wheels for Linux x86_64 and aarch64, macOS arm64 and x86_64
and Windows, for every supported Python, so the face detector and the emotion
model run the same way everywhere.  A session gets the CPU provider and a
capped thread count (``threads``; one per worker process when indexing, so
that worker processes, not threads, fill the cores), with ONNX Runtime's own
thread spinning off so idle workers do not burn a core.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

PROVIDERS = ("CPUExecutionProvider",)
"""Execution providers, in order of preference (the CPU one is in every ONNX Runtime wheel)."""


def default_threads() -> int:
    """Threads for a session made outside a worker: at most two (a CLI command scores few faces)."""
    env = os.environ.get("ALBUMSORT_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return min(2, os.cpu_count() or 1)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def sha256(path: str | Path) -> str:
    """The file's sha256 (hex), cached per (path, size, mtime): versions are computed without loading a model."""
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def file_version(path: str | Path) -> str:
    """A short content hash: the index re-scores photos when a model file changes."""
    return sha256(path)[:12]


def session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime inference session for the model at ``path``, on ``threads`` intra-op threads."""
    import onnxruntime as ort

    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()  # albumsort runs offline and sends nothing anywhere
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: no warnings about unused initialisers on every load
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    available = ort.get_available_providers()
    providers = [p for p in PROVIDERS if p in available] or available[:1]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def model_dirs() -> list[Path]:
    """Where shipped model files are looked for, first match wins.

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


def model_file(name: str) -> Path:
    """The shipped model file ``name`` (e.g. ``scrfd_2.5g.onnx``) from the first of ``model_dirs`` that has it."""
    for d in model_dirs():
        if (d / name).is_file():
            return d / name
    raise FileNotFoundError(f"no {name} in " + ", ".join(str(d) for d in model_dirs()))


class OnnxModel:
    """One ONNX file: its version is known at once (a content hash), its session is made on first use."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        self.threads = threads
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = session(self.path, self.threads)
        return self._session

    def __getstate__(self):  # a session does not pickle; the receiving process makes its own
        return {**self.__dict__, "_session": None}
