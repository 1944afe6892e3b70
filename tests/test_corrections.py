"""Corrections that stick (issue 23, point 1): set, unset, hide, unhide, corrections, through the CLI."""

from __future__ import annotations

import json
import os

import pytest

from albumsort.store import Index
from tests.test_cli_messages import build, face, run
from tests.test_expressions import paths


@pytest.fixture
def album(tmp_path):
    a = tmp_path / "al"
    db = build(tmp_path / "c.db", {
        a / "grin.jpg": ("h1", [face(happy=0.9)]),
        a / "smiles-lines.jpg": ("h2", [face(happy=0.7, neutral=0.3)]),  # a resting face the model reads happy
        a / "pair.jpg": ("h3", [face(happy=0.8), face(sad=0.6)]),
        a / "frown.jpg": ("h4", [face(sad=0.7)]),
    }, root=tmp_path)
    return db, a


def top(db, *args):
    code, out, err = run(db, "top", *args, "--json")
    assert code == 0, err
    return paths(out)


def test_set_moves_a_photo_between_lists_and_unset_undoes_it(album):
    db, a = album
    assert "/al/smiles-lines.jpg" in top(db, "happy")
    code, out, _ = run(db, "set", a / "smiles-lines.jpg", "Neutral")
    assert code == 0 and "neutral (set by you)" in out
    assert "/al/smiles-lines.jpg" not in top(db, "happy") and top(db, "neutral") == ["/al/smiles-lines.jpg"]
    for extra in (["--min-confidence", "0.1"], ["--any"]):  # the SQL path reads corrections too
        assert "/al/smiles-lines.jpg" in top(db, "neutral", *extra)
    code, out, _ = run(db, "show", a / "smiles-lines.jpg", "--json")
    (f,) = json.loads(out)["faces"]
    assert f["corrected"] == "neutral" and f["probabilities"]["happy"] == 0.7  # the model's reading is kept beside
    code, out, _ = run(db, "explain", a / "smiles-lines.jpg")
    assert "shows neutral (set by you; the model read happy)" in out and "neutral: score" in out
    code, out, _ = run(db, "unset", a / "smiles-lines.jpg")
    assert code == 0 and "counts again" in out and "/al/smiles-lines.jpg" in top(db, "happy")


def test_one_face_of_a_group(album):
    db, a = album
    assert top(db, "sad") == ["/al/frown.jpg", "/al/pair.jpg"]
    code, out, _ = run(db, "set", f"{a / 'pair.jpg'}#2", "happy")
    assert code == 0 and out.startswith("face 2 of ")
    assert top(db, "sad") == ["/al/frown.jpg"]
    assert "/al/pair.jpg" in top(db, "happy", "--everyone")  # now both faces smile
    code, out, _ = run(db, "show", a / "pair.jpg")
    assert "happy (set by you)" in out
    code, _, err = run(db, "set", f"{a / 'pair.jpg'}#3", "happy")
    assert code == 2 and "has 2 faces" in err and "no face 3" in err
    code, _, err = run(db, "set", a / "nothere.jpg", "happy")
    assert code == 2 and "is not in the index" in err
    code, _, err = run(db, "set", a / "pair.jpg", "joyful")
    assert code == 2 and "unknown emotion" in err


def test_hide_keeps_a_photo_out_of_every_list(album, tmp_path):
    db, a = album
    code, out, _ = run(db, "hide", a / "grin.jpg")
    assert code == 0 and "hidden from every list" in out
    for extra in ([], ["--any"], ["--min-confidence", "0.1"], ["--all-shots"]):
        assert "/al/grin.jpg" not in top(db, "happy", *extra)
    code, _, _ = run(db, "export", "--all", tmp_path / "out")
    assert code == 0 and not any("grin" in p.name for p in (tmp_path / "out").rglob("*.jpg"))
    code, out, _ = run(db, "show", a / "grin.jpg")
    assert "hidden: kept out of every list" in out
    code, out, _ = run(db, "corrections", "--json")
    (c,) = json.loads(out)
    assert c["hidden"] and c["paths"] == [str(a / "grin.jpg")] and c["face"] is None
    code, out, _ = run(db, "unhide", a / "grin.jpg")
    assert code == 0 and "/al/grin.jpg" in top(db, "happy")
    assert json.loads(run(db, "corrections", "--json")[1]) == []


def test_corrections_follow_the_content_through_a_move_and_a_rescore(album):
    """Keyed by content: a moved photo keeps its correction; re-scored faces (a new model) keep it too."""
    db, a = album
    run(db, "set", a / "frown.jpg", "angry")
    idx = Index(db)
    with idx.transaction():  # what `index` does for a move: the same content under a new path
        idx.put_photo(str(a / "moved" / "frown.jpg").encode(), 1, 1, "h4", 2)
        idx.remove_photo(str(a / "frown.jpg").encode())
    idx.close()
    assert top(db, "angry") == ["/al/moved/frown.jpg"]
    # A new model re-scores the photo: the stored result and faces are replaced, the correction stays.
    idx = Index(db)
    f = idx.faces("h4")[0]
    with idx.transaction():
        f2 = {k: f[k] for k in f if k not in ("id", "hash")} | {"p_sad": 0.2, "p_neutral": 0.8, "x": f["x"] + 1}
        idx.resolve_corrections("h4", [f2])
        from albumsort.scores import ranking_columns
        idx.put_result("h4", {**{k: v for k, v in idx.result("h4").items() if k != "hash"},
                              "model_version": "m2", **ranking_columns(idx.corrected_faces("h4", [f2]))}, [f2])
    idx.close()
    assert top(db, "angry") == ["/al/moved/frown.jpg"]
    code, out, _ = run(db, "corrections")
    assert code == 0 and str(a / "moved" / "frown.jpg") in out and "shows angry" in out


def test_a_face_correction_waits_while_no_new_face_overlaps_it(album):
    db, a = album
    run(db, "set", f"{a / 'pair.jpg'}#2", "happy")
    idx = Index(db)
    faces = idx.faces("h3")
    with idx.transaction():
        moved = [dict(f, x=f["x"] + 500) for f in faces]  # the detector now puts every face elsewhere
        idx.resolve_corrections("h3", moved)
    idx.close()
    (c,) = json.loads(run(db, "corrections", "--json")[1])
    assert c["face"] == 2 and "waiting" in c


def test_read_only_commands_work_on_an_index_without_the_table(album):
    """An index written before corrections existed is read as it is (nothing hidden, nothing corrected)."""
    import sqlite3

    db, a = album
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE corrections")
    conn.commit()
    conn.close()
    os.chmod(db, 0o444)
    try:
        assert top(db, "happy", "--min-confidence", "0.1")
        code, out, _ = run(db, "corrections")
        assert code == 0
    finally:
        os.chmod(db, 0o644)
