"""Issue 23, through the command line: keywords other tools read (2), folders that went away (3), nearly
complete files (4) and messages that say what happened (5).  The test names carry the issue's points."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from albumsort.cli import ExitStatus, app
from albumsort.labels import EMOTIONS
from albumsort.scores import ranking_columns
from albumsort.store import Index
from tests.conftest import astronaut, scenery
from tests.test_cli_messages import face

CLI = [sys.executable, "-m", "albumsort"]


def run(db, *args):
    r = CliRunner().invoke(app, ["--db", str(db), *[str(a) for a in args]])
    return r.exit_code, r.stdout, r.stderr


def build(db: Path, photos: dict, versions=("m", "d"), scored_at=0.0) -> Path:
    """An index of ``photos`` {path: (hash, faces)}; each path that does not exist yet is written as a small
    file, unless its hash starts with "gone"."""
    idx = Index(db)
    with idx.transaction():
        for i, (p, (h, faces)) in enumerate(photos.items()):
            rows = [{"idx": j, "x": 1.0, "y": 2.0, "landmarks": None, **f} for j, f in enumerate(faces)]
            idx.put_result(h, {"width": 400, "height": 300, "model_version": versions[0],
                               "detector_version": versions[1], "n_faces": len(faces), "n_small": 0,
                               "scored_at": scored_at, "dhash": i * 977, "exif_time": None,
                               **ranking_columns(faces)}, rows)
            idx.put_photo(os.fsencode(p), 1, 1, h, 1)
            if not h.startswith("gone") and not Path(p).exists():
                Path(p).parent.mkdir(parents=True, exist_ok=True)
                Path(p).write_bytes(f"photo {p}".encode())
    idx.close()
    return db


def read_only(tmp_path: Path, folder: Path, setup: list[str], commands: list[list]) -> list[tuple[int, str]]:
    """Run albumsort ``commands`` with ``folder`` read-only (a tmpfs remounted ro in a user namespace when
    we are root, where chmod stops nothing; else chmod 555) after the shell lines ``setup`` filled it.

    Returns (exit status, stderr) per command.
    """
    q = shlex.quote
    out = tmp_path / "ro-out"
    out.mkdir(exist_ok=True)
    folder.mkdir(exist_ok=True)
    root = os.geteuid() == 0
    if root and not shutil.which("unshare"):
        pytest.skip("root without unshare cannot make a read-only folder")
    lines = ([f"mount -t tmpfs none {q(str(folder))}"] if root else []) + setup
    lines.append(f"mount -o remount,ro {q(str(folder))}" if root else f"chmod 555 {q(str(folder))}")
    for i, args in enumerate(commands):
        cmd = " ".join(q(str(a)) for a in CLI + list(args))
        lines.append(f"{cmd} >/dev/null 2>{q(str(out))}/err{i}; echo $? > {q(str(out))}/rc{i}")
    script = "set -e\n" + "\n".join(lines[:len(lines) - len(commands)]) + "\nset +e\n" + \
        "\n".join(lines[len(lines) - len(commands):])
    wrap = ["unshare", "-rm", "bash", "-c", script] if root else ["bash", "-c", script]
    p = subprocess.run(wrap, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1],
                       env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    if root and p.returncode != 0 and "mount" in p.stderr:
        pytest.skip(f"cannot mount here: {p.stderr.strip()[:200]}")
    if not root:
        os.chmod(folder, 0o755)
    assert p.returncode == 0, p.stderr
    return [(int((out / f"rc{i}").read_text()), (out / f"err{i}").read_text()) for i in range(len(commands))]


# -- 5: messages that say what happened ------------------------------------------------------------------
def test_5_an_empty_folder_says_no_photos_were_found(tmp_path):
    empty = tmp_path / "Empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a photo")
    code, out, err = run(tmp_path / "i.db", "index", empty)
    assert code == 0 and out == ""  # the summary is a message: stderr, as the README says
    assert f"no photos found in {empty}: albumsort reads" in err and "JPG" in err and "HEIC" in err
    assert err.strip().splitlines()[-1].startswith("0 indexed")


def test_5_one_photo_and_one_known_failure_are_singular(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    scenery(3).save(album / "field.jpg")
    (album / "broken.jpg").write_text("not a picture")
    db = tmp_path / "i.db"
    code, out, err = run(db, "index", album, "-j", "1")
    assert code == ExitStatus.FAILED and "the index holds 1 photo, 0 kept faces, 1 no-face photo" in err, err
    code, out, err = run(db, "index", album, "-j", "1")
    assert code == 0 and "1 known failure (see `albumsort errors`)" in err, err
    code, out, err = run(db, "export", "--all", tmp_path / "out", "-n", "1")
    assert code == 0 and "no-face: 1 of 1 photo in" in out, out
    code, out, err = run(db, "report", tmp_path / "rep")
    assert code == 0 and "(1 photo; 1 thumbnail made, 0 reused)" in out, out


def test_5_top_in_a_folder_that_does_not_exist_says_so(tmp_path):
    a = tmp_path / "al"
    db = build(tmp_path / "i.db", {a / "x.jpg": ("h1", [face(happy=0.9)]), tmp_path / "card" / "y.jpg":
                                   ("gone1", [face(happy=0.8)])})
    for args in (["top", "happy"], ["nofaces"], ["export", "happy", tmp_path / "out"], ["report", tmp_path / "r"]):
        code, out, err = run(db, *args, "--in", tmp_path / "NoSuchFolder")
        assert code == ExitStatus.USAGE and out == "", args
        assert err == f"error: --in {tmp_path / 'NoSuchFolder'}: no such folder, and no indexed photo under it\n"
    assert not (tmp_path / "out").exists() and not (tmp_path / "r").exists()
    code, out, err = run(db, "top", "happy", "--in", tmp_path / "card")  # gone, but indexed: a valid filter
    assert code == 0 and out.strip().endswith(str(tmp_path / "card" / "y.jpg"))


def test_5_report_and_export_into_a_folder_they_cannot_write_say_the_same_line(tmp_path):
    a = tmp_path / "al"
    db = build(tmp_path / "i.db", {a / "x.jpg": ("h1", [face(happy=0.9)])})
    ro = tmp_path / "ro"
    (rc_r, err_r), (rc_e, err_e) = read_only(tmp_path, ro, [], [
        ["--db", db, "report", ro / "rep"], ["--db", db, "export", "happy", ro / "best"]])
    assert rc_r == rc_e == ExitStatus.FAILED
    for err, dest in ((err_r, ro / "rep"), (err_e, ro / "best")):
        assert err.startswith(f"error: cannot write to {dest}: the destination is not writable ("), err
        assert err.count("\n") == 1 and "Errno" not in err
    assert err_r.split(": ", 2)[2] == err_e.split(": ", 2)[2]  # the same reason, word for word


def test_5_db_in_a_folder_that_cannot_be_written_says_so(tmp_path):
    a = tmp_path / "al"
    built = build(tmp_path / "i.db", {a / "x.jpg": ("h1", [face(happy=0.9)])})
    ro = tmp_path / "ro"
    results = read_only(tmp_path, ro, [f"cp {shlex.quote(str(built))} {shlex.quote(str(ro))}/i.db"], [
        ["--db", ro / "new.db", "index", a], ["--db", ro / "i.db", "index", a], ["--db", ro / "i.db", "top", "happy"],
        ["--db", ro / "sub" / "new.db", "index", a]])
    for code, err in results[:2] + results[3:]:
        assert code == ExitStatus.USAGE and err.count("\n") == 1, err
        assert f"the folder {ro} is not writable" in err and "not an albumsort index" not in err, err
    assert results[2][0] == 0  # reading it there still works


def test_5_status_names_the_model_and_detector_with_a_date_and_hashes_only_when_verbose(tmp_path):
    import datetime

    when = datetime.datetime(2026, 11, 30, 12).timestamp()
    db = build(tmp_path / "i.db", {tmp_path / "x.jpg": ("h1", [face(happy=0.9)])},
               versions=("emotion-0123456789ab", "scrfd-int8-ba9876543210-s640-t0.4-reread-small"), scored_at=when)
    code, out, _ = run(db, "status")
    rows = dict(line.split("\t", 1) for line in out.splitlines())
    assert rows["scored by"] == "emotion model + scrfd-int8 detector, scored 2026-11-30 (1 photo)"
    code, out, _ = run(db, "status", "--verbose")
    rows = dict(line.split("\t", 1) for line in out.splitlines())
    assert "(emotion-0123456789ab + scrfd-int8-ba9876543210-s640-t0.4-reread-small)" in rows["scored by"]


def test_5_a_crowd_of_small_unreadable_faces_is_too_small_not_masked():
    from albumsort.ranking import NO_FACE_REASONS as R
    from albumsort.ranking import no_face_reason

    crowd = [face(w=16, h=21, readability=0.01, happy=0.4)] * 6  # scored, unreadable, all under 32 px
    assert no_face_reason(crowd) == R[1]
    big_masked = face(w=200, h=260, readability=0.02, happy=0.5)
    assert no_face_reason([big_masked]) == R[2]  # one large unreadable face: masked or turned away
    assert no_face_reason([big_masked] * 3 + crowd[:2]) == R[2]  # most faces large: they decide
    assert no_face_reason([big_masked] + crowd[:2], n_small=1) == R[1]


def test_5_a_real_crowd_whose_faces_were_scored_but_are_small_says_too_small(tmp_path):
    from tests.conftest import shared

    parade = shared("wider-face-val-sample", "images", "0--Parade", "0_Parade_Parade_0_137.jpg")
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(parade, album / "parade.jpg")
    db = tmp_path / "i.db"
    assert run(db, "index", album, "-j", "1")[0] == 0
    item = json.loads(run(db, "nofaces", "--json")[1])[0]
    # SCRFD finds about six faces of 19-22 px here and the model reads none of them.
    assert item["n_faces"] >= 3 and item["reason"] == "faces too small to read", item
    assert "No face: faces too small to read" in run(db, "show", album / "parade.jpg")[1]


def test_5_report_labels_are_whole_words_inside_the_photo_and_apart():
    from albumsort.report import LABEL_CHAR_PX, LABEL_HEIGHT_PX, LABEL_PAD_PX, label_layout

    def f(x, y, w, h, e="happy"):
        return {"box": (x, y, w, h), "probabilities": {k: (0.9 if k == e else 0.1 / 3) for k in EMOTIONS}}

    # A 1600x1200 group photo (shown 320x240): a row of 20 px faces, two close large ones, one at the edge.
    faces = [f(60 + 90 * i, 900, 20, 26, EMOTIONS[i % 4]) for i in range(16)]
    faces += [f(100, 100, 300, 360), f(420, 120, 280, 340, "neutral"), f(1560, 500, 40, 50, "sad")]
    layout = label_layout(faces, 1600, 1200)
    rects = []
    for face_, label in zip(faces, layout, strict=False):
        if label is None:
            continue
        text, left, top = label
        word = text.split()[0]
        assert word == max(face_["probabilities"], key=face_["probabilities"].get), text  # never "h" or "ha"
        x, y = face_["box"][0] / 5 + 2 + left, face_["box"][1] / 5 + 2 + top
        w = len(text) * LABEL_CHAR_PX + LABEL_PAD_PX
        assert 0 <= x and x + w <= 320 and 0 <= y and y + LABEL_HEIGHT_PX <= 240, (text, x, y)
        rects.append((x, y, w))
    for i, (x, y, w) in enumerate(rects):
        for x2, y2, w2 in rects[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + LABEL_HEIGHT_PX <= y2 or y2 + LABEL_HEIGHT_PX <= y
    assert layout[16] and layout[17] and layout[16][0] == "happy 90%"  # large faces: the whole label
    assert layout[18] and layout[18][0].startswith("sad")  # at the right edge: moved left, not cut
    assert sum(label is not None for label in layout) >= 10


# -- 3: folders that went away ---------------------------------------------------------------------------
def _status(db) -> dict:
    return dict(line.split("\t", 1) for line in run(db, "status")[1].splitlines())


def test_3_forget_drops_a_folder_that_no_longer_exists_and_status_counts_the_missing(tmp_path):
    a, card = tmp_path / "al", tmp_path / "card"
    db = build(tmp_path / "i.db", {a / "x.jpg": ("h1", [face(happy=0.9)]), card / "y.jpg": ("h2", [face(sad=0.8)]),
                                   card / "sub" / "z.jpg": ("h3", [])})
    shutil.rmtree(card)  # unplugged
    s = _status(db)
    assert s["photos"] == "3" and s["missing on disk"].startswith("2 photos (a deleted or unplugged folder: "
                                                                   "`albumsort forget PATH`")
    before = (a / "x.jpg").read_bytes()
    code, out, err = run(db, "forget", card)
    assert code == 0 and out == "" and err == f"forgot 2 photos and 0 failures under {card} (gone from disk; no " \
        "file was touched)\n"
    s = _status(db)
    assert s["photos"] == "1" and s["missing on disk"] == "0 photos" and s["mostly sad"] == "0"
    assert (a / "x.jpg").read_bytes() == before
    idx = Index(db, create=False)
    assert idx.result("h2") is None and idx.faces("h2") == []  # results no photo uses are gone too
    idx.close()
    code, out, err = run(db, "forget", card)  # again: nothing there, said in one line, nothing changed
    assert code == ExitStatus.USAGE and err == f"error: nothing indexed at or under {card}: nothing was forgotten " \
        "(see `albumsort status`)\n"
    code, out, err = run(db, "forget", a / "x.jpg")  # a single photo, still on disk
    assert code == 0 and "forgot 1 photo and 0 failures" in err and "(on disk;" in err
    assert (a / "x.jpg").read_bytes() == before


def test_3_forget_creates_no_index_and_waits_for_no_running_index(tmp_path):
    from filelock import FileLock

    code, out, err = run(tmp_path / "none.db", "forget", tmp_path / "x")
    assert code == ExitStatus.USAGE and "no index at" in err and not (tmp_path / "none.db").exists()
    db = build(tmp_path / "i.db", {tmp_path / "gone" / "y.jpg": ("gone1", [])})
    with FileLock(str(db) + ".lock"):
        code, out, err = run(db, "forget", tmp_path / "gone")
    assert code == ExitStatus.LOCKED and "another `albumsort index`" in err
    assert _status(db)["photos"] == "1"


def test_3_index_on_a_parent_notices_a_deleted_folder_and_a_gone_path_points_to_forget(tmp_path):
    album = tmp_path / "album"
    for i, sub in enumerate(["a", "b", "b"]):
        (album / sub).mkdir(parents=True, exist_ok=True)
        scenery(10 + i).save(album / sub / f"p{i}.jpg")
    db = tmp_path / "i.db"
    assert run(db, "index", album, "-j", "1")[0] == 0
    shutil.rmtree(album / "b")
    assert _status(db)["missing on disk"].startswith("2 photos")
    code, out, err = run(db, "index", album / "b")
    assert code == ExitStatus.USAGE and err == f"error: no such file or folder: {album / 'b'}; the index holds 2 " \
        f"photos under it: `albumsort forget {album / 'b'}` drops them\n"
    code, out, err = run(db, "index", album, "-j", "1")
    assert code == 0 and err.startswith("0 indexed, 1 unchanged, 0 moved, 2 removed"), err
    assert _status(db)["missing on disk"] == "0 photos" and _status(db)["photos"] == "1"


def test_3_export_skips_a_missing_file_with_one_line_and_still_fills_the_list(tmp_path):
    a, card = tmp_path / "al", tmp_path / "card"
    db = build(tmp_path / "i.db", {card / "best.jpg": ("h1", [face(happy=0.95)]),
                                   a / "copy-of-best.jpg": ("h1", [face(happy=0.95)]),
                                   a / "second.jpg": ("h2", [face(happy=0.9)]),
                                   a / "third.jpg": ("h3", [face(happy=0.8)])})
    shutil.rmtree(card)
    out = tmp_path / "out"
    code, stdout, err = run(db, "export", "happy", out, "--all-shots", "-n", "3")
    assert code == 0, err
    assert err == f"skipped: {card / 'best.jpg'}: missing on disk (deleted, or on a drive not plugged in); " \
        "`albumsort forget PATH` drops it from the index\n"
    assert "happy: 3 of 3 photos in" in stdout
    assert sorted(p.name for p in out.glob("0*")) == ["001_copy-of-best.jpg", "002_second.jpg", "003_third.jpg"]
    code, stdout, err = run(db, "export", "--all", tmp_path / "all", "--all-shots")
    assert code == 0 and err.count("skipped: ") == 1, err


# -- 4: nearly complete files ----------------------------------------------------------------------------
def _cut_album(tmp_path) -> Path:
    import io

    album = tmp_path / "album"
    album.mkdir()
    buf = io.BytesIO()
    astronaut().save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    (album / "end-missing.jpg").write_bytes(data[:-1500])  # an interrupted copy: the last bytes are missing
    (album / "half.jpg").write_bytes(data[: len(data) // 2])
    sos = data.index(b"\xff\xda")
    (album / "headers-only.jpg").write_bytes(data[: sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")])
    return album


def test_4_a_jpeg_cut_short_is_read_as_viewers_read_it_and_flagged_in_show(tmp_path):
    album = _cut_album(tmp_path)
    db = tmp_path / "i.db"
    code, out, err = run(db, "index", album, "-j", "1")
    assert code == ExitStatus.FAILED and err.count("failed: ") == 1, err  # only the file with no picture fails
    assert f"failed: {album / 'headers-only.jpg'}: cannot be decoded: the file is cut short before any of the " \
        "picture" in err
    assert "2 indexed" in err
    code, out, _ = run(db, "show", album / "end-missing.jpg")
    assert code == 0 and out.splitlines()[1].startswith("truncated; the rest is grey, as a viewer shows it"), out
    assert "happy" in out  # the astronaut's face is there, as in a viewer
    code, out, _ = run(db, "show", album / "half.jpg")
    assert "truncated: the file holds about 5" in out or "truncated: the file holds about 4" in out, out
    obj = json.loads(run(db, "show", album / "end-missing.jpg", "--json")[1])
    assert obj["truncated"] is True and obj["faces"]
    assert "truncated" in run(db, "explain", album / "half.jpg")[1]
    assert _status(db)["truncated files"].startswith("2 photos read as far as the file goes")
    code, out, err = run(db, "index", album, "-j", "1")  # unchanged: nothing is read again
    assert code == 0 and err.startswith("0 indexed, 2 unchanged") and "1 known failure" in err, err


def test_4_a_file_that_failed_as_truncated_before_is_read_again_once(tmp_path):
    import sqlite3

    album = _cut_album(tmp_path)
    (album / "headers-only.jpg").unlink()
    (album / "half.jpg").unlink()
    db = tmp_path / "i.db"
    assert run(db, "index", album, "-j", "1")[0] == 0
    cut = album / "end-missing.jpg"
    st = cut.stat()
    con = sqlite3.connect(db)  # as the previous version left it: a known failure, no truncated column
    con.execute("DELETE FROM photos")
    con.execute("DELETE FROM faces")
    con.execute("DELETE FROM results")
    con.execute("ALTER TABLE results DROP COLUMN truncated")
    con.execute("INSERT INTO errors (raw, path, size, mtime_ns, reason, seen_run, at) VALUES (?, ?, ?, ?, ?, 1, 0)",
                [os.fsencode(cut), str(cut), st.st_size, st.st_mtime_ns,
                 "truncated file: image file is truncated (12 bytes not processed)"])
    con.commit()
    con.close()
    code, out, err = run(db, "index", album, "-j", "1")
    assert code == 0 and err.startswith("1 indexed"), err
    assert run(db, "errors")[2] == "no failures\n"
    assert "truncated" in run(db, "show", cut)[1]


# -- 2: keywords other tools read ------------------------------------------------------------------------
def _keywords(path: Path) -> dict:
    from albumsort.sidecars import read_keywords

    return read_keywords(path.read_bytes())


@pytest.fixture
def tagged(tmp_path):
    a = tmp_path / "al"
    return build(tmp_path / "i.db", {a / "a.jpg": ("h1", [face(happy=0.9)]), a / "b.jpg": ("h2", [face(happy=0.8)]),
                                     a / "pair.jpg": ("h3", [face(happy=0.9), face(angry=0.85)]),
                                     a / "empty.jpg": ("h4", [])}), a


def test_2_export_xmp_writes_sidecars_that_exiv2_reads_beside_the_copies(tagged, tmp_path):
    db, a = tagged
    out = tmp_path / "best"
    code, stdout, err = run(db, "export", "happy", out, "--xmp")
    assert code == 0 and err == "", err
    assert f"happy: XMP sidecars in {out} (3 written, 0 up to date, 0 removed, 0 skipped)" in stdout
    copies = sorted(p for p in out.glob("00*") if p.suffix == ".jpg")
    assert [p.name for p in copies] == ["001_a.jpg", "002_b.jpg", "003_pair.jpg"]
    for p in copies:
        assert _keywords(Path(f"{p}.xmp")) == {"Xmp.dc.subject": ["albumsort", "happy"],
                                               "Xmp.lr.hierarchicalSubject": ["albumsort|happy"],
                                               "Xmp.digiKam.TagsList": ["albumsort/happy"]}
    assert not list(a.glob("*.xmp"))  # nothing beside the originals
    code, stdout, err = run(db, "export", "happy", out, "--xmp")
    assert code == 0 and "(0 written, 3 up to date, 0 removed, 0 skipped)" in stdout
    code, stdout, err = run(db, "export", "--all", tmp_path / "all", "--xmp")
    assert code == 0, err
    assert _keywords(tmp_path / "all" / "no-face" / "001_empty.jpg.xmp")["Xmp.lr.hierarchicalSubject"] == [
        "albumsort|no face"]
    assert _keywords(tmp_path / "all" / "angry" / "001_pair.jpg.xmp")["Xmp.digiKam.TagsList"] == ["albumsort/angry"]


def test_2_a_sidecar_albumsort_did_not_write_is_never_replaced_and_is_reported(tagged, tmp_path):
    db, a = tagged
    out = tmp_path / "best"
    out.mkdir()
    (out / "001_a.jpg.xmp").write_bytes(b"<x:xmpmeta>the user's own</x:xmpmeta>")
    (out / "002_b.xmp").write_bytes(b"Lightroom's")
    code, stdout, err = run(db, "export", "happy", out, "--xmp")
    assert code == 0 and "(1 written, 0 up to date, 0 removed, 2 skipped)" in stdout, stdout
    assert f"skipped: {out / '001_a.jpg'}: has a sidecar already (001_a.jpg.xmp); left alone" in err
    assert f"skipped: {out / '002_b.jpg'}: has a sidecar already (002_b.xmp); left alone" in err
    assert (out / "001_a.jpg.xmp").read_bytes() == b"<x:xmpmeta>the user's own</x:xmpmeta>"
    assert (out / "002_b.xmp").read_bytes() == b"Lightroom's" and not (out / "002_b.jpg.xmp").exists()
    assert (out / "003_pair.jpg.xmp").exists()
    # pair drops out of the list: its copy goes, so does albumsort's sidecar; the user's files stay.
    code, stdout, err = run(db, "export", "happy", out, "-n", "2")  # without --xmp: only its own orphans go
    assert code == 0 and not (out / "003_pair.jpg").exists() and not (out / "003_pair.jpg.xmp").exists()
    assert "1 XMP sidecar of photos no longer in" in err
    assert (out / "001_a.jpg.xmp").exists() and (out / "002_b.xmp").exists()


def test_2_a_sidecar_is_created_whole_and_never_over_a_file(tmp_path):
    from albumsort.files import create_new
    from albumsort.sidecars import packet

    target = tmp_path / "x.jpg.xmp"
    target.write_bytes(b"appeared meanwhile")
    with pytest.raises(FileExistsError):
        create_new(os.fsencode(target), packet(["happy"]))
    assert target.read_bytes() == b"appeared meanwhile" and sorted(p.name for p in tmp_path.iterdir()) == [
        "x.jpg.xmp"]  # no temporary file left behind


def test_2_tag_writes_beside_originals_only_when_asked_and_only_where_none_exists(tagged, tmp_path):
    db, a = tagged
    originals = {p.name: p.read_bytes() for p in a.iterdir()}
    code, out, err = run(db, "tag", a)
    assert code == ExitStatus.USAGE and err == "error: tag writes beside your original photos only when asked: add " \
        "--beside-originals (export --xmp tags exported copies instead)\n"
    assert not list(a.glob("*.xmp"))
    (a / "b.XMP").write_bytes(b"darktable's")  # another tool's sidecar, Lightroom's naming, upper case
    code, out, err = run(db, "tag", a, "--beside-originals")
    assert code == 0 and out == "tag: XMP sidecars for 4 photos (3 written, 0 up to date, 1 skipped)\n", out
    assert err == f"skipped: {a / 'b.jpg'}: has a sidecar already (b.XMP); left alone\n"
    assert (a / "b.XMP").read_bytes() == b"darktable's" and not (a / "b.jpg.xmp").exists()
    assert _keywords(a / "pair.jpg.xmp")["Xmp.lr.hierarchicalSubject"] == ["albumsort|angry", "albumsort|happy"]
    assert _keywords(a / "empty.jpg.xmp")["Xmp.dc.subject"] == ["albumsort", "no face"]
    assert {p.name: p.read_bytes() for p in a.iterdir() if p.name in originals} == originals  # photos untouched
    (a / "a.jpg.xmp").write_bytes(b"edited in digiKam")
    code, out, err = run(db, "tag", a, "--beside-originals")
    assert code == 0 and "(0 written, 2 up to date, 2 skipped)" in out
    assert (a / "a.jpg.xmp").read_bytes() == b"edited in digiKam"  # even albumsort's own, once changed


@pytest.mark.skipif(not shutil.which("exiftool"), reason="exiftool not installed (apt-get install "
                    "libimage-exiftool-perl; .ci/run installs it as root)")
def test_2_exiftool_reads_the_keywords_lightroom_digikam_and_immich_look_for(tagged, tmp_path):
    db, a = tagged
    out = tmp_path / "best"
    assert run(db, "export", "happy", out, "--xmp", "-n", "1")[0] == 0
    p = subprocess.run(["exiftool", "-j", "-struct", "-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject",
                        "-XMP-digiKam:TagsList", str(out / "001_a.jpg.xmp")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)[0]
    assert got["Subject"] == ["albumsort", "happy"]
    assert got["HierarchicalSubject"] in ("albumsort|happy", ["albumsort|happy"])
    assert got["TagsList"] in ("albumsort/happy", ["albumsort/happy"])
