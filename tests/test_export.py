"""Export: names, modes, manifest, reruns, and never touching files albumsort did not write."""

import csv
import os

import pytest

from albumsort.export import MANIFEST, export_ranked


def items(paths, scores=None):
    return [{"path": p, "score": (scores or [0.9, 0.8, 0.7])[i]} for i, p in enumerate(paths)]


@pytest.mark.parametrize("mode", ["copy", "hardlink", "symlink"])
def test_modes_and_names(tmp_path, sources, mode):
    dest = tmp_path / "out"
    res = export_ranked(items(sources), dest, mode)
    assert res.written == 3
    assert sorted(p.name for p in dest.iterdir() if p.name != MANIFEST) == ["001_a.jpg", "002_b.jpg", "003_c.png"]
    assert (dest / "002_b.jpg").read_bytes() == b"b.jpg" * 10
    if mode == "symlink":
        assert os.path.islink(dest / "001_a.jpg")
    if mode == "hardlink":
        assert os.stat(dest / "001_a.jpg").st_ino == os.stat(sources[0]).st_ino
    rows = list(csv.DictReader(open(dest / MANIFEST)))
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and rows[0]["source"] == sources[0]
    assert float(rows[0]["score"]) == pytest.approx(0.9)


def test_rerun_updates_and_removes_only_its_files(tmp_path, sources):
    dest = tmp_path / "out"
    export_ranked(items(sources), dest)
    (dest / "my_notes.txt").write_text("mine")
    res = export_ranked(items(sources), dest)
    assert res.kept == 3 and res.written == 0
    res = export_ranked(items([sources[2], sources[0]]), dest)  # new order, one fewer
    files = sorted(p.name for p in dest.iterdir() if p.name != MANIFEST)
    assert files == ["001_c.png", "002_a.jpg", "my_notes.txt"]
    assert (dest / "my_notes.txt").read_text() == "mine"
    assert res.removed == 3  # the three old names


def test_never_overwrites_a_foreign_file(tmp_path, sources):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "001_a.jpg").write_text("the user's own file")
    res = export_ranked(items(sources), dest)
    assert (dest / "001_a.jpg").read_text() == "the user's own file"
    assert res.notes and "not written by albumsort" in res.notes[0] and "001_a-2.jpg" in res.notes[0]
    assert (dest / "001_a-2.jpg").read_bytes() == b"a.jpg" * 10  # the ranked photo took the next free name
    res = export_ranked(items(sources[1:]), dest)  # a rerun must not delete it either
    assert (dest / "001_a.jpg").exists()
