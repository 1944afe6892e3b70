"""Face detector back-ends behind one small protocol, found by name in a registry.

A back-end is one module in this package that defines a class with
``name``, ``version`` (its model files' hashes and thresholds, known without
loading anything) and ``detect(rgb) -> list[Face]`` and registers it::

    @register("scrfd")
    class SCRFD: ...

Adding a detector is adding one file here: every module of the package is
imported when a detector is first looked up.  ``faces.make_detector`` is the
way in for the rest of albumsort.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from albumsort.faces import Face


@dataclass(frozen=True)
class Thresholds:
    """How a back-end's candidates become faces (every tunable of a detector in one place).

    A candidate is a box scored at least ``candidate`` and at least
    ``min_size`` px tall at detection scale; it is a face when scored at
    least ``sure``, or when the emotion model reads it as a readable face
    (readability >= ``readable``).  ``sure == candidate`` makes the score
    alone decide.
    """

    candidate: float
    sure: float
    readable: float = 0.5
    min_size: float = 0.0

    def confirmed(self, score: float, readability: float) -> bool:
        return score >= self.sure or (score >= self.candidate and readability >= self.readable)

    def tag(self) -> str:
        return f"m{self.candidate:g}-sure{self.sure:g}-read{self.readable:g}-min{self.min_size:g}"


@runtime_checkable
class Detector(Protocol):
    name: str
    version: str
    thresholds: Thresholds

    def detect(self, rgb: "np.ndarray") -> "list[Face]":
        """Candidate faces in an RGB uint8 image, in its pixel coordinates."""


REGISTRY: dict[str, Callable[..., Detector]] = {}
DEFAULT = "scrfd"
"""The detector ``albumsort index`` uses unless told otherwise (issue 17: the only one measured at
recall >= 90% and precision >= 90% on the held-out WIDER half)."""


def register(name: str):
    """Class decorator: make a back-end available as ``--detector NAME``."""

    def add(cls):
        REGISTRY[name] = cls
        return cls

    return add


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def names() -> list[str]:
    """Registered back-ends, the default first."""
    _discover()
    return sorted(REGISTRY, key=lambda n: (n != DEFAULT, n))


def get(name: str) -> Callable[..., Detector]:
    _discover()
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}: use one of {', '.join(names())}") from None
