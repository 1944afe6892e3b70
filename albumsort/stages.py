"""Where an index run's time goes: per-photo stage timings, off unless ``ALBUMSORT_PROFILE`` names a file.

With ``ALBUMSORT_PROFILE=FILE`` every worker times the stages of each photo
(reading and hashing, the header check, the reduced decode, EXIF
orientation, detection, the second decode for small faces and its scale,
cropping, the emotion model, pickling the result) and hands them back with
the result; the driver adds what it spends (the wait between a worker's end
and the result's arrival, its SQLite writes) and writes everything to FILE
as JSON when the run ends.  ``benchmarks/index_speed.py --profile`` prints
the medians and 90th percentiles.  Off, a stage costs one ``if``.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

ENV = "ALBUMSORT_PROFILE"

_photo: dict | None = None
"""The stage timings (ms) of the photo this process is analysing, or None when not profiling."""


def enabled() -> bool:
    return bool(os.environ.get(ENV))


@contextmanager
def photo():
    """Collect the stages of one photo; yields the dict (None when not profiling)."""
    global _photo
    _photo = {} if enabled() else None
    try:
        yield _photo
    finally:
        _photo = None


@contextmanager
def stage(name: str):
    """Add the time spent inside to stage ``name`` of the current photo (nothing when not profiling)."""
    if _photo is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _photo[name] = _photo.get(name, 0.0) + (time.perf_counter() - t0) * 1000.0


def note(name: str, value) -> None:
    """Record a value (a count, a scale) for the current photo."""
    if _photo is not None:
        _photo[name] = value


def write(path: str, record: dict) -> None:
    """The run's record as JSON at ``path`` (replaced atomically)."""
    import json

    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)
