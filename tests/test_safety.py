"""Nothing albumsort writes or reads may lose a user's files or another program's data (issue 7).

Each test reproduces an attack or an accident that lost data before, and
checks that the files involved are byte-for-byte untouched.
"""

import csv
import errno
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from albumsort.export import MANIFEST, export_name, export_ranked
from albumsort.files import APPLICATION_ID
from albumsort.indexing import run_index, worker_count
from albumsort.store import Index
from tests.conftest import astronaut
from tests.test_cli import CLI, albumsort
from tests.test_export import items


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- 1. export trusts nothing but what it wrote ---------------------------------
def test_forged_manifest_cannot_delete_files_outside_or_inside_dest(tmp_path, sources):
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "precious.txt").write_text("precious")
    (victims / "absolute.txt").write_text("also precious")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "notes.txt").write_text("the user's notes")
    with open(dest / MANIFEST, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "score", "file", "source", "mode", "size", "mtime_ns", "written_size",
                    "written_mtime_ns"])
        w.writerow([1, 0.9, "../victims/precious.txt", "x", "copy", 8, 1, 8, 1])
        w.writerow([2, 0.8, str(victims / "absolute.txt"), "x", "copy", 13, 1, 13, 1])
        w.writerow([3, 0.7, "notes.txt", "x", "copy", 1, 1, 1, 1])  # size and mtime do not match
    res = export_ranked(items(sources[:1]), dest)
    assert res.removed == 0 and res.written == 1
    assert (victims / "precious.txt").read_text() == "precious"
    assert (victims / "absolute.txt").read_text() == "also precious"
    assert (dest / "notes.txt").read_text() == "the user's notes"


def test_an_edited_export_is_left_alone_and_reported(tmp_path, sources):
    dest = tmp_path / "out"
    export_ranked(items(sources), dest)
    edited = dest / "002_b.jpg"
    edited.write_bytes(b"the user retouched this copy")
    res = export_ranked(items([sources[0]]), dest)  # 002 and 003 are no longer wanted
    assert edited.read_bytes() == b"the user retouched this copy"
    assert res.removed == 1 and not (dest / "003_c.png").exists()
    assert any("002_b.jpg" in s and "changed since" in s for s in res.notes)
    res = export_ranked(items([sources[2], sources[1]]), dest)  # 002 is wanted again: still not overwritten
    assert edited.read_bytes() == b"the user retouched this copy"
    assert any("002_b.jpg" in s and "002_b-2.jpg" in s for s in res.notes)  # the ranked photo takes a free name
    assert (dest / "002_b-2.jpg").read_bytes() == b"b.jpg" * 10 and not res.failed


def test_foreign_files_with_temporary_looking_names_are_left_alone(tmp_path, sources):
    dest = tmp_path / "out"
    dest.mkdir()
    for name in (".001_a.jpg.albumsort-tmp", "albumsort-manifest.csv.tmp", ".albumsort-tmp-0123456789abcdef"):
        (dest / name).write_text("mine")
    export_ranked(items(sources), dest)
    export_ranked(items(sources[:1]), dest)
    for name in (".001_a.jpg.albumsort-tmp", "albumsort-manifest.csv.tmp", ".albumsort-tmp-0123456789abcdef"):
        assert (dest / name).read_text() == "mine"
    assert not [p for p in dest.iterdir() if p.name.startswith(".albumsort-tmp-") and p.read_text() != "mine"]


# -- 2. a failure half-way keeps what was written --------------------------------
def test_partial_failure_exports_the_rest_and_records_it(tmp_path, sources, monkeypatch):
    dest = tmp_path / "out"
    real_link = os.link

    def link(src, dst, *a, **k):
        if str(src).endswith("b.jpg"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(os, "link", link)
    res = export_ranked(items(sources), dest, "hardlink")
    assert res.written == 2 and len(res.failed) == 1
    assert "b.jpg" in res.failed[0] and "--mode copy" in res.failed[0] and "\n" not in res.failed[0]
    rows = {r["file"] for r in csv.DictReader(open(dest / MANIFEST))}
    assert rows == {"001_a.jpg", "003_c.png"}
    monkeypatch.setattr(os, "link", real_link)
    res = export_ranked(items(sources), dest, "hardlink")  # the rerun recognises its own files
    assert res.notes == [] and res.failed == [] and res.kept == 2 and res.written == 1


def test_full_disk_half_way_still_writes_the_manifest(tmp_path, sources, monkeypatch):
    dest = tmp_path / "out"
    real = shutil.copyfileobj
    calls = []

    def copyfileobj(src, dst, *a):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *a)

    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    res = export_ranked(items(sources), dest)
    assert res.written == 1 and len(res.failed) == 2 and "full" in res.failed[0]
    assert [r["file"] for r in csv.DictReader(open(dest / MANIFEST))] == ["001_a.jpg"]
    assert not [p for p in dest.iterdir() if p.name.startswith(".albumsort-tmp-")]


def test_long_names_are_shortened_not_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    name = "é" * 124 + "x.jpg"  # 253 bytes: no room for the NNN_ prefix
    (src / name).write_bytes(b"x")
    res = export_ranked(items([str(src / name)]), tmp_path / "out")
    assert res.written == 1 and not res.failed
    (out,) = [p for p in (tmp_path / "out").iterdir() if p.name != MANIFEST]
    assert out.name.startswith("001_é") and out.name.endswith(".jpg") and len(os.fsencode(out.name)) <= 255
    assert len(os.fsencode(export_name(1, 3, "a" * 300))) == 255


# -- 3, 4, 5, 6, 10: the commands, end to end ------------------------------------
def test_outputs_inside_an_album_never_hide_it(album, tmp_path):
    db = tmp_path / "i.db"
    albumsort("index", album, db=db)
    before = albumsort("status", db=db, check=True).stdout
    assert albumsort("export", "happy", album / "best", "-n", "2", db=db).returncode == 0
    assert albumsort("report", album / "report", db=db).returncode == 0
    p = albumsort("index", album, db=db)
    assert "0 indexed" in p.stderr and "0 removed" in p.stderr, p.stderr
    assert albumsort("status", db=db, check=True).stdout.split("\n")[1] == before.split("\n")[1]  # photo count
    # A photo the user puts in those folders is indexed; only albumsort's own files are skipped.
    astronaut().save(album / "best" / "mine.jpg")
    p = albumsort("index", album, db=db)
    assert "1 indexed" in p.stderr and "1 cop" not in p.stderr and "0 removed" in p.stderr, p.stderr


def test_report_refuses_a_foreign_index_html(album, tmp_path):
    db = tmp_path / "i.db"
    albumsort("index", album, db=db)
    dest = tmp_path / "site"
    dest.mkdir()
    (dest / "index.html").write_text("<h1>my homepage</h1>")
    p = albumsort("report", dest, db=db)
    assert p.returncode == 1 and "not written by albumsort" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert (dest / "index.html").read_text() == "<h1>my homepage</h1>"
    ours = tmp_path / "ours"
    assert albumsort("report", ours, db=db).returncode == 0
    assert albumsort("report", ours, db=db).returncode == 0  # its own page is replaced
    (ours / "index.html").write_text("edited by hand")
    assert albumsort("report", ours, db=db).returncode == 1
    assert (ours / "index.html").read_text() == "edited by hand"


def test_foreign_databases_are_never_changed(album, tmp_path):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, caption TEXT)")
    con.execute("INSERT INTO photos VALUES (1, 'grandma')")
    con.commit()
    con.close()
    plain = tmp_path / "plain.db"
    con = sqlite3.connect(plain)
    con.execute("CREATE TABLE notes (t TEXT)")
    con.commit()
    con.close()
    text = tmp_path / "notes.db"
    text.write_text("not a database at all")
    for db in (other, plain, text):
        before = digest(db)
        for args in (["index", album], ["status"], ["top", "happy"], ["report", tmp_path / "r"]):
            p = albumsort(*args, db=db)
            assert p.returncode == 2, (db, args, p.stderr)
            assert "not an albumsort index" in p.stderr and len(p.stderr.strip().splitlines()) == 1
        assert digest(db) == before
        assert not Path(str(db) + "-wal").exists()
    con = sqlite3.connect(other)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert con.execute("SELECT caption FROM photos").fetchall() == [("grandma",)]


def test_own_index_carries_its_identity_and_reads_leave_it_unchanged(album, tmp_path):
    db = tmp_path / "i.db"
    albumsort("index", album, db=db)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    con.execute("PRAGMA journal_mode=DELETE")  # as a backup tool might leave it
    con.close()
    before = digest(db)
    for args in (["status"], ["top", "happy"], ["show", album / "group.jpg"], ["errors"], ["nofaces"]):
        assert albumsort(*args, db=db).returncode == 0
    assert digest(db) == before and not Path(str(db) + "-wal").exists()


def test_read_only_index_serves_every_read_command(album, tmp_path):
    """On a read-only mount (a tmpfs remounted ro in a user namespace, where we are root) every read works."""
    import shlex

    db = tmp_path / "i.db"
    albumsort("index", album, db=db)
    ro, out = tmp_path / "ro", tmp_path / "out"
    ro.mkdir()
    out.mkdir()
    commands = [["top", "happy"], ["status"], ["show", album / "group.jpg"], ["report", out / "r"], ["errors"]]
    lines = [f"cp {shlex.quote(str(db))} {shlex.quote(str(ro))}/i.db", f"chmod 444 {shlex.quote(str(ro))}/i.db"]
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("root without unshare cannot make a read-only folder")
        q = shlex.quote(str(ro))
        lines = [f"mount -t tmpfs none {q}"] + lines + [f"mount -o remount,ro {q}"]
    else:
        lines.append(f"chmod 555 {shlex.quote(str(ro))}")
    cli = " ".join(shlex.quote(c) for c in CLI)
    for args in commands:
        lines.append(f"{cli} {' '.join(shlex.quote(str(a)) for a in args)} >/dev/null 2>{shlex.quote(str(out))}/err;"
                     f" echo \"rc=$? $(head -c 300 {shlex.quote(str(out))}/err | tr '\\n' ' ')\"")
    lines.append(f"ls -a {shlex.quote(str(ro))}")
    script = "set -e\n" + "\n".join(lines[:-len(commands) - 1]) + "\nset +e\n" + "\n".join(lines[-len(commands) - 1:])
    wrap = ["unshare", "-rm", "bash", "-c", script] if os.geteuid() == 0 else ["bash", "-c", script]
    env = dict(os.environ, ALBUMSORT_DB=str(ro / "i.db"))
    p = subprocess.run(wrap, capture_output=True, text=True, env=env, timeout=600,
                       cwd=Path(__file__).resolve().parents[1])
    if os.geteuid() == 0 and p.returncode != 0 and "mount" in p.stderr:
        pytest.skip(f"cannot mount here: {p.stderr.strip()[:200]}")
    rcs = [ln for ln in p.stdout.splitlines() if ln.startswith("rc=")]
    assert len(rcs) == len(commands), p.stdout + p.stderr
    assert all(ln.startswith("rc=0") for ln in rcs), p.stdout
    assert p.stdout.split()[-3:] == [".", "..", "i.db"]  # nothing was created beside it


def test_a_damaged_index_gets_one_line_that_says_how_to_rebuild(album, tmp_path):
    db = tmp_path / "i.db"
    albumsort("index", album, db=db)
    data = bytearray(db.read_bytes())
    data[4096:] = b"\x13" * (len(data) - 4096)  # keep the header, wreck every page after it
    db.write_bytes(bytes(data))
    p = albumsort("top", "happy", db=db)
    assert p.returncode == 2 and "rebuild" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert db.read_bytes() == bytes(data)


# -- 8. memory --------------------------------------------------------------------
def test_huge_junk_and_huge_images_are_refused_by_their_header(tmp_path, monkeypatch):
    from albumsort import images

    junk = tmp_path / "junk.jpg"
    with open(junk, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB, sparse: reading it whole would take seconds and a GiB
    t = time.perf_counter()
    with pytest.raises(images.ImageError, match="not an image"):
        images.check_header(junk)
    assert time.perf_counter() - t < 5
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000)).save(big)
    monkeypatch.setattr(images, "MAX_DECODE_BYTES", 20 << 20)  # about 60 MB needed, 20 MiB allowed
    with pytest.raises(images.ImageError, match="too large to decode safely"):
        images.check_header(big)
    with pytest.raises(images.ImageError, match="too large to decode safely"):
        images.load_rgb(big, max_side=1024)
    jpeg = tmp_path / "big.jpg"
    Image.new("RGB", (3000, 2000)).save(jpeg)
    assert images.load_rgb(jpeg, max_side=1024)[0].shape == (683, 1024, 3)  # decoded at 1/2 scale: fits


def test_large_png_decodes_in_bounded_memory(tmp_path):
    """A 100 MP PNG (a few hundred KB on disk) decodes within the per-worker budget; 150 MP would be refused."""
    big = tmp_path / "big.png"
    Image.new("RGB", (12500, 8000), (90, 120, 150)).save(big, compress_level=1)
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child of a large pytest process (TensorFlow
    # loaded by test_model_export) would report the parent's peak.
    code = ("import os, resource, sys; from albumsort.images import load_rgb; "
            "a, full = load_rgb(sys.argv[1], max_side=1024); "
            "proc = '/proc/self/status'; "
            "hwm = [int(l.split()[1]) for l in open(proc) if l.startswith('VmHWM:')] if os.path.exists(proc) "
            "else [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]; "
            "print(a.shape, full, hwm[0] // 1024)")
    p = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    peak_mib = int(p.stdout.split()[-1])
    assert "(12500, 8000)" in p.stdout
    assert peak_mib < 1200, p.stdout  # measured 1,065 MiB; the issue measured 2.9 GB for 144 MP before
    from albumsort import images

    with pytest.raises(images.ImageError, match="too large to decode safely"):
        images._open_checks(_FakeImage(14000, 10300), images.MAX_PIXELS, 1024)  # 144 MP: the PNG


class _FakeImage:
    """Only what the header check reads: size, mode, format."""

    def __init__(self, w, h):
        self.size, self.mode, self.format = (w, h), "RGB", "PNG"


def test_max_pixels_must_be_positive(tmp_path, album):
    for bad in ("0", "-5"):
        p = albumsort("index", album, "--max-pixels", bad, db=tmp_path / "i.db")
        assert p.returncode == 2 and "max-pixels" in p.stderr
    assert not (tmp_path / "i.db").exists()


def test_workers_are_capped_by_available_memory(monkeypatch):
    from albumsort import indexing

    monkeypatch.setattr(indexing, "available_memory", lambda: 2 * indexing.WORKER_MEMORY + 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert worker_count(None) == 2
    assert worker_count(5) == 5  # what the user asks for
    monkeypatch.setattr(indexing, "available_memory", lambda: 1)
    assert worker_count(None) == 1


# -- 9. names ---------------------------------------------------------------------
@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs a file system that takes any bytes")
def test_names_that_print_alike_keep_separate_rows(album, tmp_path):
    d = os.fsencode(str(album / "people"))
    literal = d + b"/p\\xff.jpg"
    byte = d + b"/p\xff.jpg"
    shutil.copy(album / "people" / "astronaut.jpg", os.fsdecode(literal))
    shutil.copy(album / "people" / "astronaut.jpg", os.fsdecode(byte))
    idx = Index(tmp_path / "i.db")
    run_index([str(album)], idx, workers=2)
    s = run_index([str(album)], idx, workers=2)
    assert s.indexed == 0 and s.unchanged == 7
    raws = {r["raw"] for r in idx.query("SELECT raw FROM photos")}
    assert literal in raws and byte in raws


# -- 10. smaller things -------------------------------------------------------------
def test_moves_copies_and_deletes_are_counted_apart(album, tmp_path):
    idx = Index(tmp_path / "i.db")
    run_index([str(album)], idx, workers=2)
    (album / "moved").mkdir()
    shutil.move(album / "people" / "astronaut.jpg", album / "moved" / "a.jpg")
    shutil.move(album / "places" / "field.jpg", album / "moved" / "f.jpg")
    shutil.copy(album / "group.jpg", album / "moved" / "group-copy.jpg")
    (album / "places" / "sky.webp").unlink()
    s = run_index([str(album)], idx, workers=2)
    assert (s.moved, s.copied, s.removed) == (2, 1, 1), s.line()
    assert "2 moved" in s.line() and "1 copy," in s.line() and "1 removed" in s.line()


def test_show_answers_from_the_index_when_the_file_is_gone(album, tmp_path):
    db = tmp_path / "i.db"
    albumsort("index", album, db=db)
    (album / "people" / "astronaut.jpg").unlink()
    p = albumsort("show", album / "people" / "astronaut.jpg", db=db)
    assert p.returncode == 0 and "happy" in p.stdout, p.stderr


def test_status_tells_a_live_run_from_an_interrupted_one(album, tmp_path):
    from filelock import FileLock

    db = tmp_path / "i.db"
    idx = Index(db)
    idx.start_run([str(album)])
    idx.close()
    assert "interrupted" in albumsort("status", db=db, check=True).stdout
    with FileLock(str(db) + ".lock"):
        assert "running now" in albumsort("status", db=db, check=True).stdout


def _sigint_disposition(q):
    import albumsort  # noqa: F401

    q.put(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


def test_worker_processes_leave_ctrl_c_to_the_main_process():
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_sigint_disposition, args=(q,))
    p.start()
    assert q.get(timeout=60) is True
    p.join()
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the main process keeps it


def test_unknown_detector_is_one_clear_line(album, tmp_path):
    """mtcnn is gone: asking for it names the detectors there are, without a traceback."""
    p = albumsort("index", album, "--detector", "mtcnn", db=tmp_path / "i.db")
    assert p.returncode == 2 and "scrfd" in p.stderr and "yunet" in p.stderr and "Traceback" not in p.stderr


def test_an_export_that_may_be_the_last_copy_is_never_removed(tmp_path, sources):
    dest = tmp_path / "out"
    export_ranked(items(sources), dest)
    os.unlink(sources[1])  # the user deleted the original of 002_b.jpg: the export is its only copy
    res = export_ranked(items([sources[0]]), dest)
    # Kept, but out of the ranked sequence: renamed without its rank, listed in the manifest; not a failure.
    assert (dest / "b.jpg").read_bytes() == b"b.jpg" * 10 and not (dest / "002_b.jpg").exists()
    assert not (dest / "003_c.png").exists() and not res.failed and res.set_aside == ["b.jpg"]
    assert any("002_b.jpg" in s and "only copy" in s for s in res.notes)
    other = tmp_path / "other" / "b.jpg"  # a different photo of the same name now ranks second
    other.parent.mkdir()
    other.write_bytes(b"another b")
    res = export_ranked(items([sources[0], str(other)]), dest)
    assert (dest / "002_b.jpg").read_bytes() == b"another b" and (dest / "b.jpg").read_bytes() == b"b.jpg" * 10
    assert res.notes == [] and res.set_aside == [] and not res.failed  # reruns: nothing more to say
    listed = {r["file"]: r["rank"] for r in csv.DictReader(open(dest / MANIFEST))}
    assert listed == {"001_a.jpg": "1", "002_b.jpg": "2", "b.jpg": ""}
    assert sorted(p.name[:4] for p in dest.iterdir() if p.name[:3].isdigit()) == ["001_", "002_"]


def test_exports_made_before_written_sizes_were_recorded_are_still_ours(tmp_path, sources):
    dest = tmp_path / "out"
    export_ranked(items(sources), dest)
    rows = list(csv.DictReader(open(dest / MANIFEST)))
    with open(dest / MANIFEST, "w", newline="") as f:  # the previous version's columns
        w = csv.DictWriter(f, fieldnames=["rank", "score", "file", "source", "mode", "size", "mtime_ns"],
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    res = export_ranked(items(sources[:1]), dest)
    assert res.removed == 2 and res.notes == []


def test_a_legacy_looking_foreign_database_is_refused(tmp_path, album):
    db = tmp_path / "x.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    con.execute("CREATE TABLE photos (id INTEGER, note TEXT)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    con.execute("INSERT INTO photos VALUES (1, 'keep me')")
    con.commit()
    con.close()
    before = digest(db)
    p = albumsort("index", album, db=db)
    assert p.returncode == 2 and "not an albumsort index" in p.stderr
    assert digest(db) == before
