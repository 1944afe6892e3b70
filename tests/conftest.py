"""Shared fixtures: small albums made on the fly, and the optional ../shared/data."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ALBUMSORT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_configure(config):
    """Give Ctrl-C back to a suite started with SIGINT ignored (a shell's background job, ``nohup``).

    Such a process and every child it starts inherit the ignore, so the tests that press Ctrl-C on a
    run (and check that it stops cleanly and resumes) would see it do nothing.  An installed handler,
    unlike an ignore, is reset on exec, so the children get Python's usual KeyboardInterrupt again.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or a clean skip when that data is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p


@pytest.fixture(autouse=True)
def _isolated_db(tmp_path, monkeypatch):
    """Every test gets its own index; nothing touches the user's real one."""
    monkeypatch.setenv("ALBUMSORT_DB", str(tmp_path / "index.db"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def astronaut() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())


def grace_hopper() -> Image.Image:
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        im = Image.open(f).convert("RGB")
        im.load()
    return im


def scenery(seed: int = 0, size=(320, 240)) -> Image.Image:
    """A smooth random image with no face in it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


@pytest.fixture
def album(tmp_path) -> Path:
    """Two portraits, a group collage, two face-free images and a broken file."""
    d = tmp_path / "album"
    (d / "people").mkdir(parents=True)
    (d / "places").mkdir()
    astronaut().save(d / "people" / "astronaut.jpg", quality=92)
    grace_hopper().save(d / "people" / "hopper.png")
    group = Image.new("RGB", (700, 350))
    group.paste(astronaut().crop((100, 0, 450, 350)), (0, 0))
    group.paste(grace_hopper().crop((60, 0, 452, 392)).resize((350, 350)), (350, 0))
    group.save(d / "group.jpg", quality=90)
    scenery(1).save(d / "places" / "field.jpg")
    scenery(2).save(d / "places" / "sky.webp")
    (d / "places" / "notes.jpg").write_text("this is not a picture")
    return d


@pytest.fixture
def sources(tmp_path):
    """Three small source files for export tests."""
    d = tmp_path / "src"
    d.mkdir()
    out = []
    for name in ("a.jpg", "b.jpg", "c.png"):
        (d / name).write_bytes(name.encode() * 10)
        out.append(str(d / name))
    return out


@pytest.fixture
def copy_tree(tmp_path):
    def copy(src: Path, name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst, symlinks=True)
        return dst
    return copy
