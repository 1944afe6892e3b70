"""albumsort index on real little albums: faces found, incremental reruns, moves, model changes, locks."""

import os
import shutil
import sys

import pytest
from PIL import Image

from albumsort import emotions
from albumsort.indexing import IndexLocked, run_index
from albumsort.ranking import no_faces, top
from albumsort.store import Index


def run(album, db, **kw):
    idx = Index(db)
    try:
        return run_index([str(album)], idx, workers=2, **kw), idx
    finally:
        pass


def snapshot(idx):
    """Everything the user can see, without timestamps."""
    photos = sorted((r["path"], r["hash"]) for r in idx.query("SELECT path, hash FROM photos"))
    faces = sorted((r["hash"], r["idx"], round(r["x"]), round(r["y"]), round(r["p_happy"], 4))
                   for r in idx.query("SELECT * FROM faces"))
    errors = sorted((r["path"], r["reason"]) for r in idx.query("SELECT path, reason FROM errors"))
    return photos, faces, errors


def test_first_run_finds_faces_and_failures(album, tmp_path):
    s, idx = run(album, tmp_path / "i.db")
    assert s.indexed == 5 and s.failed == 1 and s.unchanged == 0
    assert "not an image" in s.failures[0][1]
    faces = {r["path"]: r["n_faces"] for r in idx.query(
        "SELECT p.path, r.n_faces FROM photos p JOIN results r ON r.hash = p.hash")}
    assert faces[str(album / "people" / "astronaut.jpg")] == 1
    assert faces[str(album / "group.jpg")] == 2
    assert faces[str(album / "places" / "field.jpg")] == 0
    nf = [r["path"] for r in no_faces(idx)]
    assert str(album / "places" / "field.jpg") in nf and str(album / "group.jpg") not in nf
    # Boxes are in full-resolution, upright pixel coordinates.
    (f,) = idx.query("SELECT f.* FROM faces f JOIN photos p ON p.hash = f.hash WHERE p.path LIKE '%astronaut%'")
    assert 150 < f["x"] + f["w"] / 2 < 300 and 50 < f["y"] + f["h"] / 2 < 200
    read = emotions.EmotionModel().labels  # the expressions the shipped model reads (probabilities among them)
    assert abs(sum(f[f"p_{e}"] for e in read) - 1) < 1e-4


def test_incremental_rerun_change_delete_move(album, tmp_path, monkeypatch):
    db = tmp_path / "i.db"
    run(album, db)
    s, idx = run(album, db)
    assert (s.indexed, s.unchanged, s.moved, s.removed) == (0, 5, 0, 0)
    scored_at = {r["hash"]: r["scored_at"] for r in idx.query("SELECT hash, scored_at FROM results")}

    # Move one photo, delete another, change a third.
    (album / "moved").mkdir()
    shutil.move(album / "people" / "astronaut.jpg", album / "moved" / "renamed.jpg")
    (album / "places" / "sky.webp").unlink()
    im = Image.open(album / "places" / "field.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    im.save(album / "places" / "field.jpg")
    s, idx = run(album, db)
    assert (s.indexed, s.moved, s.removed, s.unchanged) == (1, 1, 1, 2)
    row = idx.photo(str(album / "moved" / "renamed.jpg"))
    assert row and idx.result(row["hash"])["scored_at"] == scored_at[row["hash"]]  # not re-scored
    assert idx.photo(str(album / "people" / "astronaut.jpg")) is None
    assert idx.photo(str(album / "places" / "sky.webp")) is None
    assert len(list(idx.query("SELECT hash FROM results"))) == 4  # no orphans left


def test_unchanged_files_are_not_opened(album, tmp_path, monkeypatch):
    db = tmp_path / "i.db"
    run(album, db)
    import builtins

    opened = []
    real_open = builtins.open

    def spy(file, *a, **k):
        if str(file).startswith(str(album)):
            opened.append(file)
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", spy)
    s, _ = run(album, db)
    # The broken file failed before and has not changed: counted, not opened again.
    assert s.unchanged == 5 and opened == [] and s.failed == 0 and s.known_failed == 1
    assert "1 known failure (see `albumsort errors`)" in s.line()
    notes = album / "places" / "notes.jpg"
    os.utime(notes, ns=(notes.stat().st_atime_ns, notes.stat().st_mtime_ns + 10**9))
    s, _ = run(album, db)
    assert s.failed == 1 and s.known_failed == 0  # changed: read again


def test_new_model_rescores(album, tmp_path, monkeypatch):
    db = tmp_path / "i.db"
    run(album, db)
    monkeypatch.setattr(emotions, "file_version", lambda path: "a-new-model")
    s, idx = run(album, db)
    assert s.rescored == 5 and s.indexed == 5
    assert {r["model_version"] for r in idx.query("SELECT model_version FROM results")} == {
        f"{emotions.MODEL_NAME.split('.')[0]}-a-new-model"}


def test_new_detector_weights_or_thresholds_rescore(album, tmp_path, monkeypatch):
    """Issue 17, point 8: the detector version stored per photo (weights' hash + thresholds) changes with
    the detector, so the next run re-scores old photos by itself; an unchanged spec re-scores nothing."""
    from albumsort.detectors import DEFAULT, Thresholds, scrfd

    db = tmp_path / "i.db"
    run(album, db)
    s, idx = run(album, db)
    assert s.rescored == 0 and s.unchanged == 5
    monkeypatch.setattr(scrfd, "file_version", lambda path: "new-weights")
    s, idx = run(album, db)
    assert s.rescored == 5 and s.indexed == 5
    versions = {r["detector_version"] for r in idx.query("SELECT detector_version FROM results")}
    assert len(versions) == 1 and versions.pop().startswith(f"{DEFAULT}-new-weights-")  # scrfd or scrfd-int8
    monkeypatch.setattr(scrfd, "THRESHOLDS", Thresholds(candidate=0.45, sure=0.45))
    s, _ = run(album, db)
    assert s.rescored == 5
    s, idx = run(album, db, detector_name="yunet")
    assert s.rescored == 5
    assert {r["detector_version"][:6] for r in idx.query("SELECT detector_version FROM results")} == {"yunet-"}


def test_second_run_is_refused_while_one_holds_the_lock(album, tmp_path):
    from filelock import FileLock

    db = tmp_path / "i.db"
    with FileLock(str(db) + ".lock"):
        with pytest.raises(IndexLocked, match="another"):
            run(album, db)


def test_unreadable_subfolder_keeps_its_photos(album, tmp_path, monkeypatch):
    db = tmp_path / "i.db"
    run(album, db)
    real = os.scandir

    def scandir(path):
        if str(path).endswith("people"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    s, idx = run(album, db)
    assert s.removed == 0 and idx.photo(str(album / "people" / "astronaut.jpg")) is not None
    assert any("permission denied" in r for _, r in s.failures)


def test_top_happy_puts_smiling_astronaut_first(album, tmp_path):
    _, idx = run(album, tmp_path / "i.db")
    assert "astronaut" in top(idx, "happy", 1)[0]["path"]


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a file system that takes any bytes")
def test_non_utf8_file_name_is_indexed_and_listed(album, tmp_path):
    import json

    raw = os.fsencode(str(album)) + b"/smile_\xff\xfe.jpg"
    shutil.copy(album / "people" / "astronaut.jpg", os.fsdecode(raw))
    (album / "people" / "astronaut.jpg").unlink()
    s, idx = run(album, tmp_path / "i.db")
    assert s.failed == 1  # only notes.jpg
    paths = [r["path"] for r in top(idx, "happy", 10)]
    key = str(album) + "/smile_\\xff\\xfe.jpg"
    assert key in paths
    json.dumps(top(idx, "happy", 10))  # valid UTF-8 all the way to JSON
    assert idx.photo(key)["raw"] == raw


def test_content_found_twice_in_one_run_is_scored_once(album, tmp_path):
    """Copies analysed by workers that cannot look content up: the driver writes one result, counts copies."""
    import dataclasses

    from albumsort.executors import LocalPool

    class NoLookups(LocalPool):  # as on a cluster whose look-up actor is gone
        def run(self, tasks, total, job):
            return super().run(tasks, total, dataclasses.replace(job, known=None))

    for i in range(3):
        shutil.copy(album / "people" / "astronaut.jpg", album / f"copy{i}.jpg")
    s, idx = run(album, tmp_path / "i.db", executor=NoLookups(2))
    assert (s.indexed, s.copied, s.failed) == (5, 3, 1), s.line()
    (h,) = {r["hash"] for r in idx.query("SELECT hash FROM photos WHERE path LIKE '%astronaut%' OR path LIKE '%copy%'")}
    assert len(idx.query("SELECT 1 FROM results WHERE hash = ?", [h])) == 1
    assert len(idx.query("SELECT 1 FROM faces WHERE hash = ?", [h])) == 1


def test_the_photos_to_do_wait_on_disk_and_leave_nothing_behind_even_after_kill_9(tmp_path):
    import subprocess

    from albumsort.indexing import Todo
    from tests.test_cli import CLI, big_album, wait_for_rows

    with Todo() as todo:  # larger than the cache it may hold in memory: the rest is on disk
        for i in range(200_000):
            todo.add(f"/album/{i:06d}.jpg".encode(), i, i)
        pages, page = (todo.conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
        size = pages * page
        assert len(todo) == 200_000 and size > 1.5 * todo.CACHE_KIB * 1024
        assert [t[2] for t in todo][::100_000] == [b"/album/000000.jpg", b"/album/100000.jpg"]  # scan order

    album = big_album(tmp_path / "album", 12)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    db = tmp_path / "i.db"
    env = dict(os.environ, ALBUMSORT_DB=str(db), TMPDIR=str(scratch), SQLITE_TMPDIR=str(scratch))
    proc = subprocess.Popen(CLI + ["index", str(album), "-j", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert wait_for_rows(db, 1, proc), "the run finished before it could be killed"
    proc.kill()
    proc.wait(timeout=60)
    # ONNX Runtime (1.32 on Linux) writes its telemetry session id to $TMPDIR/.ses when imported: one
    # small file, reused by every later import, not a leftover of the run.
    assert [n for n in os.listdir(scratch) if n != ".ses"] == []


def test_a_profiled_run_says_where_each_photo_s_time_went(album, tmp_path, monkeypatch):
    """ALBUMSORT_PROFILE=FILE: every photo's stages, the driver's writes, the workers and the wall time."""
    import json

    out = tmp_path / "profile.json"
    monkeypatch.setenv("ALBUMSORT_PROFILE", str(out))
    s, idx = run(album, tmp_path / "p.db")
    rec = json.loads(out.read_text())
    assert len(rec["photos"]) == s.indexed + s.failed == 6 and len(rec["store_ms"]) == 6
    assert rec["workers"] == 2 and rec["wall_s"] > 0
    scored = [ph for ph in rec["photos"] if "detect" in ph]
    assert len(scored) == 5  # the five photos; the broken file failed at its header
    for ph in scored:
        assert {"header", "read_hash", "reduced_decode", "dhash", "total", "pickle", "ipc"} <= set(ph)
        assert ph["total"] >= ph["detect"] + ph["reduced_decode"] > 0
    assert sum("emotion_model" in ph for ph in scored) == 3  # the photos with faces
