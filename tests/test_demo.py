"""The demo album prints what the README shows (issue 23, point 6)."""

from __future__ import annotations

import json
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
    printed = [line.replace(str(tmp_path) + "/", "").split("\t") for line in top.stdout.strip().splitlines()]
    shown = readme_demo_output()
    assert top.stderr.strip().splitlines() == shown[len(printed):]  # "only 3 photos show happy (-n 5)"
    expected = [line.split("\t") for line in shown[:len(printed)]]
    assert [r[:1] + r[2:] for r in printed] == [r[:1] + r[2:] for r in expected]  # ranks, counts, paths
    for got, want in zip(printed, expected, strict=True):  # scores, to the rounding another CPU may differ by
        assert abs(float(got[1]) - float(want[1])) <= 0.005, (got, want)

    sad = albumsort("top", "sad", "-n", "5", db=db, check=True).stdout
    assert [line.rsplit("/", 1)[-1] for line in sad.strip().splitlines()] == \
        ["grace_hopper.jpg", "cameraman.png"]  # as the README says
    for name, sad_p in (("portraits/grace_hopper.jpg", 0.82), ("portraits/cameraman.png", 0.53)):  # README's figures
        (f,) = json.loads(albumsort("show", album / name, "--json", db=db, check=True).stdout)["faces"]
        assert abs(f["probabilities"]["sad"] - sad_p) <= 0.01
    neutral = albumsort("top", "neutral", db=db, check=True).stdout
    assert [line.rsplit("/", 1)[-1] for line in neutral.strip().splitlines()] == ["group_collage.jpg"]
    empty = albumsort("top", "angry", db=db, check=True)  # "no face in it is angry"
    assert empty.stdout == "" and "no photo shows angry" in empty.stderr


def test_the_demo_script_never_writes_into_someone_elses_folder(tmp_path, capsys):
    """``make_demo_album.py DEST`` writes only into a new or empty folder or one it built: a folder of the user's
    own photos is refused with one line and left as it was; ``--help`` is help, not a folder name."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from make_demo_album import FILES, MARKER, main
    finally:
        sys.path.remove(str(ROOT / "examples"))
    mine = tmp_path / "photos"
    (mine / "portraits").mkdir(parents=True)
    (mine / "portraits" / "astronaut.jpg").write_bytes(b"the user's own photo")
    assert main([str(mine)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not make" in err[0]
    assert sorted(p.name for p in mine.rglob("*")) == ["astronaut.jpg", "portraits"]
    assert (mine / "portraits" / "astronaut.jpg").read_bytes() == b"the user's own photo"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main([str(a_file)]) == 2 and a_file.read_text() == "x"
    with pytest.raises(SystemExit) as help_exit:
        main(["--help"])
    assert help_exit.value.code == 0 and not Path("--help").exists()
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    album = tmp_path / "album"
    assert main([str(album)]) == 0 and (album / MARKER).is_file()
    assert sorted(p.relative_to(album).as_posix() for p in album.rglob("*") if p.is_file()) == \
        sorted(FILES + (MARKER,))
    assert main([str(album)]) == 0  # its own album is rebuilt
    (album / MARKER).unlink()
    assert main([str(album)]) == 0  # and one built before the marker existed (its files and nothing else)
