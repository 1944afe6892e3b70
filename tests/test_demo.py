"""The demo album prints what the README shows (issue 23, point 6)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.test_cli import albumsort

ROOT = Path(__file__).resolve().parents[1]


def readme_demo_output() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"It ends with the happy list.*?```text\n(.*?)```", text, re.S)
    assert block, "the README shows no demo output"
    return block[1].strip().splitlines()


def test_the_demo_prints_what_the_readme_shows(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from make_demo_album import build
    finally:
        sys.path.remove(str(ROOT / "examples"))
    album = tmp_path / "examples" / "album"
    build(album)
    db = tmp_path / "demo.db"
    index = albumsort("index", album, db=db)
    assert index.returncode == 1 and "1 failed" in index.stderr, index.stderr  # the broken download, on purpose
    top = albumsort("top", "happy", "-n", "5", db=db, check=True)
    printed = [line.replace(str(tmp_path) + "/", "") for line in top.stdout.strip().splitlines()]
    assert printed + top.stderr.strip().splitlines() == readme_demo_output()
    sad = albumsort("top", "sad", "-n", "5", db=db, check=True).stdout
    assert [line.rsplit("/", 1)[-1] for line in sad.strip().splitlines()] == \
        ["grace_hopper.jpg", "cameraman.png", "group_collage.jpg"]  # as the README says
