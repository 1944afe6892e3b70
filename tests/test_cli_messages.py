"""What a user reads is one clear line, and every count agrees (issue 15), through typer's CliRunner.

Most tests run on a hand-made index (no model is loaded); the numbers in
the test names are the issue's points.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from albumsort.cli import ExitStatus, app
from albumsort.labels import EMOTIONS, EXPRESSIONS
from albumsort.scores import face_confidence, ranking_columns
from albumsort.store import Index

ROOT = Path(__file__).resolve().parents[1]


def face(w=60.0, h=80.0, readability=0.95, det=0.95, **p):
    probs = {e: p.get(e, 0.0) for e in EMOTIONS}
    probs["neutral"] += 1.0 - sum(probs.values())
    return {**{f"p_{e}": v for e, v in probs.items()}, "det_score": det, "readability": readability,
            "confidence": face_confidence(det, list(probs.values()), readability), "w": w, "h": h}


def build(path: Path, photos: dict, root: Path | None = None) -> Path:
    """An index of ``photos`` {path: (hash, faces[, faces too small to read])}; a path under ``root`` is also
    written as a small file."""
    idx = Index(path)
    with idx.transaction():
        for i, (p, (h, faces, *small)) in enumerate(photos.items()):
            rows = [{"idx": j, "x": 1.0, "y": 2.0, "landmarks": None, **f} for j, f in enumerate(faces)]
            idx.put_result(h, {"width": 400, "height": 300, "model_version": "m", "detector_version": "d",
                               "n_faces": len(faces), "n_small": small[0] if small else 0, "scored_at": 0.0,
                               "dhash": i * 977, "exif_time": None, **ranking_columns(faces)}, rows)
            idx.put_photo(str(p).encode(), 1, 1, h, 1)
            if root is not None and str(p).startswith(str(root)):
                Path(p).parent.mkdir(parents=True, exist_ok=True)
                Path(p).write_bytes(f"photo {p}".encode())
    idx.close()
    return path


def run(db, *args, env=None):
    r = CliRunner().invoke(app, ["--db", str(db), *[str(a) for a in args]], env=env)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def album(tmp_path):
    """Three happy photos, a copy, a mixed pair, a crowd, a small group and four kinds of No face."""
    a = tmp_path / "al"
    photos = {
        a / "trip" / "smile1.jpg": ("h1", [face(happy=0.9)]),
        a / "trip" / "smile2.jpg": ("h2", [face(happy=0.8)]),
        a / "trip" / "copy-of-smile1.jpg": ("h1", [face(happy=0.9)]),
        a / "home" / "pair.jpg": ("h3", [face(happy=0.9), face(angry=0.8)]),
        a / "home" / "crowd.jpg": ("h4", [face(happy=0.8)] * 10 + [face(sad=0.7)] * 2),
        a / "home" / "four.jpg": ("h5", [face(neutral=0.9)] * 3 + [face(sad=0.8)]),
        a / "nf" / "landscape.jpg": ("h6", []),
        a / "nf" / "lineup.jpg": ("h7", [], 20),  # 20 faces found, all under the detector's size floor
        a / "nf" / "masked.jpg": ("h8", [face(readability=0.2, happy=0.6)]),
        a / "nf" / "unsure.jpg": ("h9", [face(det=0.4, readability=0.7, happy=0.45)]),
    }
    return build(tmp_path / "i.db", photos, root=a), a


# -- 1 ------------------------------------------------------------------------------------------------
def test_1_db_naming_a_folder_says_it_must_be_a_file(tmp_path):
    photos = tmp_path / "Photos"
    photos.mkdir()
    (photos / "keep.jpg").write_bytes(b"precious")
    for args in (["top", "happy"], ["status"], ["index", photos]):
        code, out, err = run(photos, *args)
        assert code == ExitStatus.USAGE and err.count("\n") == 1, err
        assert "--db must name a file" in err and "move" not in err
    assert [p.name for p in photos.iterdir()] == ["keep.jpg"]


def test_1_an_unreadable_file_that_is_not_ours_is_not_called_an_index_to_move(tmp_path):
    from albumsort.files import damaged_message

    other = tmp_path / "theirs.db"
    other.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)  # a header without albumsort's application_id
    msg = damaged_message(other, Exception("disk I/O error"))
    assert "move" not in msg and "check --db" in msg


def test_1_a_folder_given_by_albumsort_db_is_named_as_such(tmp_path):
    for args in (["top", "happy"], ["status"]):
        r = CliRunner().invoke(app, args, env={"ALBUMSORT_DB": str(tmp_path)})
        assert r.exit_code == 2 and r.stderr.startswith("error: ALBUMSORT_DB must name a file"), r.stderr


def test_5_the_run_summary_writes_every_number_alike():
    from albumsort.indexing import Summary
    from albumsort.store import Stats

    totals = Stats(12408, 30120, 21000, 1408, {e: 2750 for e in EMOTIONS}, 0)
    line = Summary(indexed=12408, unchanged=1200, rescored=1500, copied=1001, known_failed=1002,
                   totals=totals).line()
    assert line.startswith("12,408 indexed, 1,500 re-scored for a new model or index format, 1,200 unchanged, "
                           "1,001 copies") and "1,002 known failures" in line
    assert line.endswith("the index holds 12,408 photos, 21,000 kept faces, 1,408 no-face photos")


# -- 2 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    (["top", "happpy"], "error: unknown emotion 'happpy' (did you mean happy?)"),
    (["top", "joyful"], "error: unknown emotion 'joyful' (choose angry, happy, sad or neutral, "
                        "or beyond the four surprise, fear, disgust)"),
    (["top", "happy", "-n", "0"], "error: -n must be a positive number, not 0"),
    (["top", "happy", "-n", "-5"], "error: -n must be a positive number, not -5"),
    (["top", "happy", "--since", "yesterday"], "error: --since 'yesterday' is not a date: use YYYY, YYYY-MM"),
    (["nofaces", "--until", "soon"], "error: --until 'soon' is not a date"),
    (["top", "happy", "--min-confidence", "1.5"], "error: --min-confidence must be between 0 and 1"),
    (["top", "happy", "--zzz"], "error: no such option: --zzz; see `albumsort top --help`"),
    (["top"], "error: missing argument EMOTION; see `albumsort top --help`"),
    (["export", "happy"], "error: export needs EMOTION and DEST"),
    (["export", "--all"], "error: export --all needs DEST: albumsort export --all DEST\n"),
    (["export"], "error: export needs EMOTION and DEST"),
    (["top", "happy", "-n"], "error: option '-n' requires an argument; see `albumsort top --help`\n"),
    (["--db", "x.db", "nofaces", "--format"], "error: option '--format' requires an argument; see `albumsort "
                                              "nofaces --help`\n"),
    (["export", "joyful", "out"], "error: unknown emotion 'joyful'"),
    (["frobnicate"], "error: no such command 'frobnicate'"),
])
def test_2_usage_errors_are_one_line_with_a_hint_and_exit_2(album, args, expected):
    db, _ = album
    code, out, err = run(db, *args)
    assert code == ExitStatus.USAGE == 2
    assert err.startswith(expected) and err.count("\n") == 1, err
    assert out == "" and not any(c in err for c in "╭│╰")
    assert "Value error" not in err and "Input should" not in err


def test_2_emotions_in_any_case_and_db_after_the_command(album):
    db, _ = album
    code, out, _ = run(db, "top", "Happy")
    assert code == 0 and ("smile1.jpg" in out or "copy-of-smile1.jpg" in out)
    r = CliRunner().invoke(app, ["top", "HAPPY", "--db", str(db)])  # --db after the command
    assert r.exit_code == 0 and r.stdout == out
    r = CliRunner().invoke(app, ["export", "Sad", str(db.parent / "sad"), "--db", str(db)])
    assert r.exit_code == 0, r.stderr


# -- 3 ------------------------------------------------------------------------------------------------
def test_3_filters_that_match_nothing_say_so(album, tmp_path):
    db, a = album
    (tmp_path / "Empty").mkdir()
    code, out, err = run(db, "top", "happy", "--in", tmp_path / "Empty")
    assert code == 0 and out == "" and err == f"no indexed photo under {tmp_path / 'Empty'}\n"
    code, out, err = run(db, "top", "happy", "--since", "2030")
    assert code == 0 and out == "" and err == "no photo taken since 2030-01-01 is indexed\n"
    # Indexed photos there, none shows it: the --any hint only where --any would list something.
    code, out, err = run(db, "top", "angry", "--in", a / "trip")
    assert err == f"no photo under {a / 'trip'} shows angry (--any lists every photo with a face, ranked by it)\n"
    code, out, err = run(db, "top", "angry", "--in", a / "nf")
    assert err == f"no photo under {a / 'nf'} shows angry\n"
    code, out, err = run(db, "nofaces", "--in", a / "trip")
    assert code == 0 and out == "" and err == f"every photo under {a / 'trip'} has a face at confidence >= 0.2\n"


def test_3_a_short_list_says_how_many(album):
    db, _ = album
    code, out, err = run(db, "top", "happy", "-n", "5")
    assert code == 0 and len(out.splitlines()) == 4  # smile1 and its copy are one moment
    assert err == "only 4 photos show happy (-n 5)\n"
    code, out, err = run(db, "top", "happy", "-n", "4")
    assert len(out.splitlines()) == 4 and err == ""


def test_3_the_note_says_what_the_list_holds_with_any_everyone_and_a_threshold(album):
    db, _ = album
    code, out, err = run(db, "top", "angry", "--any", "-n", "50")  # every photo with a kept face, one per moment
    assert len(out.splitlines()) == 5 and err == "only 5 photos have a face that reaches confidence 0.2 (-n 50)\n"
    code, out, err = run(db, "top", "happy", "--everyone")
    assert out == "" and err == "no group photo where everyone shows happy (--any also lists groups where not " \
        "everyone does)\n"
    code, out, err = run(db, "top", "happy", "--everyone", "--any", "-n", "5")
    assert len(out.splitlines()) == 3 and err == "only 3 group photos with 2 or more faces that reach " \
        "confidence 0.2 (-n 5)\n"
    code, out, err = run(db, "top", "angry", "--any", "--min-confidence", "0.95")
    assert out == "" and err == "no photo has a face that reaches confidence 0.95 (confidence tops out near 0.9)\n"
    code, out, err = run(db, "top", "angry", "--min-confidence", "0.95")
    assert err == "no photo shows angry: no face reaches confidence 0.95 (confidence tops out near 0.9)\n"


# -- 4 ------------------------------------------------------------------------------------------------
def test_4_conflicting_formats_are_refused_naming_both(album):
    db, _ = album
    code, out, err = run(db, "top", "happy", "--json", "--format", "csv")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--json" in err and "--format csv" in err
    code, out, _ = run(db, "nofaces", "--json", "--format", "json")  # the same format twice is fine
    assert code == 0 and json.loads(out)


# -- 5 ------------------------------------------------------------------------------------------------
def _status(db) -> dict:
    code, out, _ = run(db, "status")
    assert code == 0
    return dict(line.split("\t", 1) for line in out.splitlines())


def test_5_status_report_and_summary_count_the_same_way(album, tmp_path):
    db, _ = album
    s = _status(db)
    photos, no_face = int(s["photos"]), int(s["no-face photos"])
    mostly = {e: int(s[f"mostly {e}"]) for e in EMOTIONS}
    assert photos == 10 and no_face == 4 and sum(mostly.values()) + no_face == photos
    assert mostly == {"angry": 0, "happy": 5, "sad": 0, "neutral": 1}  # a copy is a photo too
    assert s["faces"] == "23 found, 21 kept (confidence >= 0.2)"
    code, out, err = run(db, "report", tmp_path / "rep")
    assert code == 0, err
    page = (tmp_path / "rep" / "index.html").read_text()
    summary = {k: html.unescape(v) for k, v in re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td></tr>", page)}
    for key in ["photos", "faces", "no-face photos"] + [f"mostly {e}" for e in EMOTIONS]:
        assert summary[key] == s[key], key

    from albumsort.indexing import Summary
    from albumsort.store import Index as Idx

    line = Summary(unchanged=10, totals=Idx(db, create=False).stats()).line()
    assert line.startswith("0 indexed, 10 unchanged") and " faces" not in line.split(";")[0]
    assert line.endswith("; the index holds 10 photos, 21 kept faces, 4 no-face photos")


def test_5_the_report_summary_counts_what_the_report_was_asked_for(album, tmp_path):
    db, a = album
    code, out, err = run(db, "report", tmp_path / "rep", "--in", a / "nf", "--min-confidence", "0.1")
    assert code == 0, err
    page = (tmp_path / "rep" / "index.html").read_text()
    summary = {k: html.unescape(v) for k, v in re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td></tr>", page)}
    assert summary["photos"] == f"4 (under {a / 'nf'})"
    assert summary["faces"] == "2 found, 2 kept (confidence >= 0.1)"  # the masked and the unsure face
    assert summary["no-face photos"] == "2" and "No face — 2" in page
    assert (summary["mostly happy"], summary["mostly neutral"], summary["mostly sad"]) == ("1", "1", "0")
    run(db, "report", tmp_path / "rep2", "--min-faces", "3")  # face filters too: the crowd and the group of four
    page = (tmp_path / "rep2" / "index.html").read_text()
    summary = {k: html.unescape(v) for k, v in re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td></tr>", page)}
    assert summary["photos"] == "2 (at least 3 kept faces)" and summary["no-face photos"] == "0"


# -- 6 ------------------------------------------------------------------------------------------------
def test_6_no_face_says_why_and_lists_surest_first(album, tmp_path):
    db, a = album
    code, out, _ = run(db, "nofaces", "--json")
    got = [(Path(i["path"]).name, i["reason"], i["n_faces"], i["n_small"]) for i in json.loads(out)]
    # No face found first, then the others by their best face's confidence, lowest (surest) first.
    assert got == [("landscape.jpg", "no face found", 0, 0),
                   ("lineup.jpg", "faces too small to read", 0, 20),
                   ("masked.jpg", "faces not readable (masked, turned away)", 1, 0),
                   ("unsure.jpg", "faces below the confidence threshold", 1, 0)]
    assert [i["confidence"] for i in json.loads(out)] == [None, None, 0.114, 0.154]
    code, out, _ = run(db, "nofaces", "-n", "2")
    assert [line.split("\t")[0] for line in out.splitlines()] == ["no face found", "faces too small to read"]
    code, out, _ = run(db, "nofaces", "--format", "csv", "--in", a / "nf", "--since", "1970")
    assert out.splitlines()[0] == "reason,faces,confidence,path" and len(out.splitlines()) == 5
    assert "No face: faces too small to read (20 found)" in run(db, "show", a / "nf" / "lineup.jpg")[1]
    assert "20 more faces too small to read" in run(db, "explain", a / "nf" / "lineup.jpg")[1]
    assert json.loads(run(db, "show", a / "nf" / "masked.jpg", "--json")[1])["no_face"].startswith("faces not read")
    assert "No face: no face found" in run(db, "explain", a / "nf" / "landscape.jpg")[1]
    run(db, "report", tmp_path / "rep")
    page = (tmp_path / "rep" / "index.html").read_text()
    section = page[page.index('id="no-face"'):]
    order = ("landscape.jpg", "lineup.jpg", "masked.jpg", "unsure.jpg")
    assert [section.index(w) for w in order] == sorted(section.index(w) for w in order)
    assert "faces too small to read" in section
    code, _, err = run(db, "export", "--all", tmp_path / "all", "-n", "2")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "all" / "no-face").iterdir() if p.suffix == ".jpg") == [
        "001_landscape.jpg", "002_lineup.jpg"]


def test_6_which_faces_decide_the_reason():
    from albumsort.ranking import NO_FACE_REASONS as R
    from albumsort.ranking import no_face_reason

    unsure, masked = face(det=0.4, readability=0.7, happy=0.45), face(readability=0.2, happy=0.6)
    assert no_face_reason([], n_small=0) == R[0] and no_face_reason([], n_small=None) == R[0]  # None: not counted
    assert no_face_reason([], n_small=3) == R[1]
    assert no_face_reason([masked, unsure], n_small=40) == R[1]  # a crowd: most faces are too small
    assert no_face_reason([masked, unsure], n_small=1) == R[3]  # the faces found decide: the best is readable
    assert no_face_reason([masked], n_small=0) == R[2]
    assert no_face_reason([face(happy=0.9)], n_small=40) is None  # a kept face: not "No face" at all


def _index_copies(tmp_path, files: dict, *options) -> tuple[Path, Path]:
    album = tmp_path / "album"
    album.mkdir()
    for name, src in files.items():
        (album / name).write_bytes(Path(src).read_bytes())
    db = tmp_path / "i.db"
    code, out, err = run(db, "index", album, "-j", "1", *options)
    assert code == 0, out + err
    return db, album


@pytest.mark.parametrize("detector, at_least", [("scrfd", 5), ("yunet", 20)])
def test_6_a_real_crowd_of_tiny_faces_is_too_small_not_faceless(tmp_path, detector, at_least):
    """Each detector counts the band's faces too small to read by its own floor: YuNet those under 24 px at
    detection scale (as yuface did: >= 20), SCRFD, which sees fewer of them at 640 px, those under 16 px of
    the photo."""
    from tests.conftest import shared

    band = shared("wider-face-val-sample", "images", "0--Parade", "0_Parade_marchingband_1_78.jpg")
    forest = sorted(shared("no-face-scenes", "forest").glob("*.jpg"))[0]
    db, album = _index_copies(tmp_path, {"band.jpg": band, "forest.jpg": forest}, "--detector", detector)
    items = {Path(i["path"]).name: i for i in json.loads(run(db, "nofaces", "--json")[1])}
    assert items["band.jpg"]["reason"] == "faces too small to read" and items["band.jpg"]["n_small"] >= at_least
    assert items["forest.jpg"]["reason"] == "no face found" and items["forest.jpg"]["n_small"] == 0
    assert list(items) == ["forest.jpg", "band.jpg"]  # no face found first
    assert "No face: faces too small to read" in run(db, "show", album / "band.jpg")[1]


def test_6_an_index_from_before_small_faces_were_counted_is_read_and_then_completed(tmp_path):
    import hashlib
    import sqlite3

    from tests.conftest import shared

    band = shared("wider-face-val-sample", "images", "0--Parade", "0_Parade_marchingband_1_78.jpg")
    portrait = shared("wider-face-val-sample", "images", "20--Family_Group")
    db, album = _index_copies(tmp_path, {"band.jpg": band, "family.jpg": sorted(portrait.glob("*.jpg"))[0]})
    con = sqlite3.connect(db)  # the previous version's file: no n_small column, left in WAL mode
    con.execute("ALTER TABLE results DROP COLUMN n_small")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    code, out, err = run(db, "nofaces", "--json")  # read as it is: the photo is simply not counted yet
    assert code == 0 and {Path(i["path"]).name: (i["reason"], i["n_small"]) for i in json.loads(out)}[
        "band.jpg"] == ("no face found", None)
    for args in (["status"], ["top", "happy"], ["show", album / "band.jpg"]):
        assert run(db, *args)[0] == 0, args
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("i.db")) == ["i.db", "i.db.lock"]
    code, out, err = run(db, "index", album, "-j", "1")  # adds the column; reads the no-face photo again, once
    assert code == 0 and err.startswith("1 indexed, 1 re-scored for a new model or index format, 1 unchanged"), err
    assert json.loads(run(db, "nofaces", "--json")[1])[0]["reason"] == "faces too small to read"
    code, out, err = run(db, "index", album, "-j", "1")
    assert code == 0 and err.startswith("0 indexed, 2 unchanged"), err


# -- 7 ------------------------------------------------------------------------------------------------
def test_7_a_crowd_is_not_sad_because_two_of_twelve_faces_are(album):
    db, _ = album
    sad = [Path(line.split("\t")[-1]).name for line in run(db, "top", "sad")[1].splitlines()]
    assert sad == ["four.jpg"]  # one sad face in four people is a quarter: shown; two in twelve are not
    sad_any = [Path(line.split("\t")[-1]).name for line in run(db, "top", "sad", "--any")[1].splitlines()]
    assert "crowd.jpg" in sad_any
    assert [Path(i["path"]).name for i in json.loads(run(db, "top", "sad", "--min-confidence", "0.1",
                                                         "--json")[1])] == ["four.jpg"]  # the SQL path agrees
    code, out, _ = run(db, "explain", Path(db).parent / "al" / "home" / "crowd.jpg")
    assert "sad: score" in out and "2 of 12 kept faces show it, fewer than a quarter (see --any)" in out
    happy = [Path(line.split("\t")[-1]).name for line in run(db, "top", "happy")[1].splitlines()]
    assert "crowd.jpg" in happy and "pair.jpg" in happy  # one smile in two faces is half


# -- 8 ------------------------------------------------------------------------------------------------
def test_8_a_kept_export_is_reported_not_a_failure_and_no_rank_is_shared(tmp_path):
    a = tmp_path / "al"
    before = build(tmp_path / "a.db", {a / "a.jpg": ("ha", [face(happy=0.9)]),
                                       a / "b.jpg": ("hb", [face(happy=0.8)])}, root=a)
    out = tmp_path / "out"
    assert run(before, "export", "happy", out)[0] == 0
    os.unlink(a / "b.jpg")  # the user deleted the original of 002_b.jpg; the next index sees c instead
    (a / "c.jpg").write_bytes(b"photo c")
    after = build(tmp_path / "b.db", {a / "a.jpg": ("ha", [face(happy=0.9)]), a / "c.jpg": ("hc", [face(happy=0.8)])})
    code, stdout, err = run(after, "export", "happy", out)
    assert code == 0, err
    assert "1 set aside" in stdout and "002_b.jpg -> b.jpg: set aside" in err and "only copy" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["001_a.jpg", "002_c.jpg", "albumsort-manifest.csv", "b.jpg"]
    assert (out / "b.jpg").read_bytes() == f"photo {a / 'b.jpg'}".encode()
    rows = {r["file"]: r["rank"] for r in csv.DictReader(open(out / "albumsort-manifest.csv"))}
    assert rows == {"001_a.jpg": "1", "002_c.jpg": "2", "b.jpg": ""}
    code, stdout, err = run(after, "export", "happy", out)  # a rerun: nothing to say, nothing failed
    assert code == 0 and err == "" and "0 written, 2 up to date" in stdout
    (out / "001_a.jpg").write_bytes(b"retouched by the user")  # an edited export stays; rank 1 takes a free name
    (a / "a.jpg").write_bytes(b"photo a, edited")
    code, stdout, err = run(after, "export", "happy", out)
    assert code == 0 and "001_a.jpg: exists and was changed since albumsort wrote it; left alone: rank 1 is " \
        "001_a-2.jpg" in err
    assert (out / "001_a.jpg").read_bytes() == b"retouched by the user"
    assert (out / "001_a-2.jpg").read_bytes() == b"photo a, edited"
    for _ in range(2):  # later runs keep 001_a-2.jpg (no -3, nothing removed) and still say why, truly
        code, stdout, err = run(after, "export", "happy", out)
        assert code == 0 and "0 written, 2 up to date, 0 removed" in stdout, stdout + err
        assert err == f"note: {out / '001_a.jpg'}: exists and was changed since albumsort wrote it; left alone: " \
            "rank 1 is 001_a-2.jpg\n"
    assert sorted(p.name for p in out.iterdir()) == ["001_a-2.jpg", "001_a.jpg", "002_c.jpg",
                                                     "albumsort-manifest.csv", "b.jpg"]


def test_8_an_edited_export_does_not_make_every_rerun_write_a_new_name(album, tmp_path):
    db, _ = album
    out = tmp_path / "out"
    assert run(db, "export", "happy", out, "-n", "4")[0] == 0
    first = sorted(out.glob("001_*"))[0]
    with open(first, "ab") as f:  # echo x >> out/001_*.jpg
        f.write(b"x\n")
    runs = [run(db, "export", "happy", out, "-n", "4") for _ in range(3)]
    assert all(code == 0 for code, _, _ in runs)
    assert "1 written" in runs[0][1] and all("0 written, 4 up to date, 0 removed" in o for _, o, _ in runs[1:])
    assert all("was changed since albumsort wrote it" in e and "not written by" not in e for _, _, e in runs)
    stem = first.stem
    assert sorted(p.name for p in out.glob("001_*")) == sorted([first.name, f"{stem}-2.jpg"])
    assert first.read_bytes().endswith(b"x\n")


# -- 9 ------------------------------------------------------------------------------------------------
def test_9_an_unchanged_unreadable_folder_is_a_known_failure(tmp_path, monkeypatch):
    from albumsort import scan

    album = tmp_path / "album"
    (album / "locked").mkdir(parents=True)
    (album / "notes.txt").write_text("no photos here")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(album / "locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(scan.os, "scandir", scandir)
    db = tmp_path / "i.db"
    code, out, err = run(db, "index", album)
    assert code == ExitStatus.FAILED and "permission denied" in err and "1 failed" in err and out == ""
    code, out, err = run(db, "index", album)
    assert code == 0 and "0 failed" in err and "1 known failure (see" in err, out + err
    os.utime(album / "locked", ns=(1, 1))  # it changed: read again, and it fails again
    code, out, err = run(db, "index", album)
    assert code == ExitStatus.FAILED and "1 failed" in err


# -- 10 -----------------------------------------------------------------------------------------------
def test_10_piped_output_is_never_cut(tmp_path):
    long = tmp_path / ("a-folder-with-a-long-name-" * 6) / "IMG_0001_with_a_long_name.jpg"
    faceless = long.parent / ("a-landscape-with-a-long-name-" * 4 + ".jpg")
    db = build(tmp_path / "i.db", {long: ("h", [face(happy=0.91234), face(w=12, h=12, sad=0.5)]),
                                   faceless: ("h2", [], 30)})
    env = {"COLUMNS": "40"}
    code, out, _ = run(db, "show", long, env=env)
    assert code == 0 and "…" not in out and str(long) in out
    lines = out.splitlines()
    assert lines[1].split("\t") == ["#", "box x,y,w,h", *EXPRESSIONS, "top", "readable", "confidence", "kept",
                                    "person"]
    assert lines[2].split("\t")[2:12] == ["0.00", "0.91", "0.00", "0.09", "0.00", "0.00", "0.00", "happy", "0.95",
                                          "0.82"]
    assert len(lines) == 4 and all(line.count("\t") == 13 for line in lines[1:])
    code, out, _ = run(db, "status", env=env)
    assert "…" not in out and f"index\t{db}" in out and all("\t" in line for line in out.splitlines())
    code, out, _ = run(db, "nofaces", "--in", tmp_path, env=env)
    assert out == f"faces too small to read\t0\t-\t{faceless}\n"  # whole, however narrow the terminal


# -- 11 -----------------------------------------------------------------------------------------------
def test_11_folders_in_show_and_explain(album):
    db, a = album
    idx = Index(db)
    with idx.transaction():
        idx.put_error(str(a / "trip" / "broken.jpg").encode(), 5, 5, "not an image (text file)", 1)
    idx.close()
    code, out, _ = run(db, "show", a / "trip")
    assert code == 0 and f"{a / 'trip' / 'broken.jpg'}: failed to index: not an image (text file)" in out
    assert out.count("taken ") == 3
    code, out, err = run(db, "explain", a / "trip")
    assert code == 0, err
    assert out.count("moment: ") == 3 and all(n in out for n in ("smile1.jpg", "smile2.jpg", "copy-of-smile1"))
    assert "broken.jpg: failed to index" in out
    code, out, err = run(db, "explain", a / "trip" / "smile2.jpg", a / "home" / "pair.jpg")
    assert code == 0 and out.count("moment: ") == 2


# -- 12 -----------------------------------------------------------------------------------------------
def test_12_read_only_commands_create_nothing_beside_the_index(album):
    db, _ = album
    beside = lambda: sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name))  # noqa: E731
    assert beside() == ["i.db"]
    for args in (["status"], ["top", "happy"], ["nofaces"], ["show", db.parent / "al"], ["errors"]):
        assert run(db, *args)[0] == 0
        assert beside() == ["i.db"], args
    good = db.read_bytes()
    for journal in (b"\x01\x01", b"\x02\x02"):  # a damaged index, its header in rollback or in WAL mode
        data = bytearray(good)
        data[18:20] = journal
        data[4096:] = b"\x13" * (len(data) - 4096)
        db.write_bytes(bytes(data))
        for args in (["status"], ["top", "happy"]):
            code, _, err = run(db, *args)
            assert code == 2 and "rebuild" in err and err.count("\n") == 1
            assert beside() == ["i.db"], args
        assert db.read_bytes() == bytes(data)


def _write_a_lot(db: Path) -> None:
    """What an `index` run does to the file: WAL, many rows, checkpoints, then back to a rollback journal."""
    writer = Index(db)
    for i in range(30):
        with writer.transaction():
            writer.put_result(f"new{i}", {"width": 1, "height": 1, "n_faces": 0, "n_small": 0,
                                          **ranking_columns([])}, [])
            writer.put_photo(f"/new/{i}-{'x' * 3000}.jpg".encode(), 1, 1, f"new{i}", 2)
        writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    writer.close()


def test_12_a_reader_open_while_index_writes_reads_whole_and_creates_nothing(album):
    db, _ = album
    reader = Index(db, create=False)
    assert not reader.immutable  # the file is in rollback-journal mode between runs: plain read-only
    assert reader.stats().photos == 10
    _write_a_lot(db)
    assert reader.stats().photos == 40 and not reader.changed()  # a locked read: whole, and never "damaged"
    reader.close()
    assert sorted(p.name for p in db.parent.iterdir() if p.name.startswith("i.db")) == ["i.db"]
    assert db.read_bytes()[18:20] == b"\x01\x01"


def test_12_an_immutable_read_torn_by_a_writer_is_not_called_damage(album, monkeypatch, capsys):
    import sqlite3

    from albumsort.cli import base as cli

    db, _ = album
    con = sqlite3.connect(db)  # an index left in WAL mode (an older albumsort): read immutable, nothing created
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    code, out, _ = run(db, "status")
    assert code == 0 and sorted(p.name for p in db.parent.iterdir() if p.name.startswith("i.db")) == ["i.db"]
    reader = Index(db, create=False)
    assert reader.immutable and not reader.changed()
    _write_a_lot(db)  # an `index` run starts while, say, a long report reads
    assert reader.changed()

    def torn():  # what SQLite says when pages change under an immutable reader
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(cli, "app", torn)
    monkeypatch.setitem(cli.state, "index", reader)
    with pytest.raises(SystemExit) as e:
        cli.run()
    err = capsys.readouterr().err
    assert e.value.code == ExitStatus.FAILED and "changed while it was being read" in err and "run the command " \
        "again" in err and "move" not in err and "damaged" not in err
    assert Index(db, create=False).stats().photos == 40  # the next read is whole


# -- 13 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["index", "top", "nofaces", "show", "explain", "status", "errors", "export",
                                     "report", "forget", "tag"])
def test_13_help_uses_plain_metavars_and_states_defaults(command):
    r = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert r.exit_code == 0
    text = r.stdout
    for raw in ("<bool>", "<list[", "<int", "<float", "<str>", "<path>", "{EMOTION", "range"):
        assert raw not in text, (command, raw)
    options = [line for line in text.splitlines() if re.match(r"^│ +--", line) and " FLAG" not in line]
    for line in options:
        name = line.split()[1]
        takes_value = re.match(r"^│ +--[\w-]+(?:\s+-\w)?\s+[A-Z][A-Z.]*\s{2,}", line)
        if takes_value and name not in ("--db",):
            assert "[default:" in line or "[required]" in line, (command, line)
    if "--min-confidence" in text:
        assert "detector score x readability x top emotion probability" in text and "0.9" in text


def test_13_usage_lines_name_what_to_give():
    usage = {c: CliRunner().invoke(app, [c, "--help"]).stdout for c in ("index", "show", "explain", "export")}
    assert "index [OPTIONS] PATH..." in usage["index"]
    assert "show [OPTIONS] PHOTO..." in usage["show"] and "explain [OPTIONS] PHOTO..." in usage["explain"]
    assert "export [OPTIONS] EMOTION [DEST]" in usage["export"]
    assert "forget [OPTIONS] PATH..." in CliRunner().invoke(app, ["forget", "--help"]).stdout
    assert "tag [OPTIONS] PHOTO..." in CliRunner().invoke(app, ["tag", "--help"]).stdout


# -- 14 and the exit statuses -------------------------------------------------------------------------
def test_14_readme_documents_every_exit_status_and_the_browser_test():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Exit status"):]
    section = section[:section.index("\n#")]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert documented == {int(s) for s in ExitStatus}
    assert "apt-get install chromium chromium-driver" in readme
    assert "apt-get install -y -qq chromium chromium-driver" in (ROOT / ".ci" / "run").read_text()
    r = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert all(f"{int(s)} " in r.stdout for s in ExitStatus)  # --help says them too
