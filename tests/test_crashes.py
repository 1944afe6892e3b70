"""Issue 21: a worker process killed during `index` costs nothing; only a photo that kills its worker fails;
a pool made for a run ends with it, also when the index cannot be opened or locked."""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from albumsort.executors import CRASHED, LocalPool
from albumsort.labels import EMOTIONS
from albumsort.ranking import top
from albumsort.store import Index
from tests.conftest import scenery
from tests.test_cli import CLI, albumsort, big_album, full_snapshot

pytestmark = pytest.mark.slow

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds worker processes in /proc")


def workers_of(pid: int) -> set[int]:
    """The driver's worker processes: its children started by multiprocessing's spawn."""
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == pid and b"spawn_main" in cmd:  # not multiprocessing's resource tracker
            out.add(int(d))
    return out


def photos_in(db) -> int:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return c.execute("SELECT count(*) FROM photos").fetchone()[0]
    finally:
        c.close()


def happy_json(db) -> list:
    """`top happy --any --json` through the CLI, person ids left out (see ``rankings``)."""
    items = json.loads(albumsort("top", "happy", "--any", "--json", "-n", "1000", db=db, check=True).stdout)
    for item in items:
        for f in item["faces"]:
            f.pop("person", None)
    return items


def rankings(db) -> dict:
    """Every emotion's full list, and the faces grouped into persons as a partition: person ids themselves
    depend on the order photos first reached the index (here, the index held a quarter of them before)."""
    idx = Index(db, create=False)
    try:
        lists = {e: top(idx, e, 1000, any_=True) for e in EMOTIONS}
        groups: dict = {}
        for items in lists.values():
            for item in items:
                for f in item["faces"]:
                    groups.setdefault(f.pop("person", None), set()).add((item["path"], tuple(f["box"])))
        return {"lists": lists, "persons": sorted(sorted(g) for p, g in groups.items() if p is not None)}
    finally:
        idx.close()


KILLS = 3
"""Workers killed in all.  Each kill waits for the pool to be back at full strength and for new rows in the
index, then for a random moment, and spares the workers started since the previous kill: a fresh worker
holds the photo its predecessor died on, alone, and two kills of it there would rightly blame that photo."""


@linux_only
def test_workers_killed_mid_run_cost_nothing(tmp_path):
    """Workers are killed by pid at random moments of a run that re-reads photos the index holds: the
    index, the rankings and the exit status equal a clean run's, right after the run and after a rerun."""
    n = 60
    album = big_album(tmp_path / "album", n)
    db, reference = tmp_path / "killed.db", tmp_path / "reference.db"
    # The index already holds every fourth photo; touched since, they are all read again in the run.
    aside = tmp_path / "aside"
    aside.mkdir()
    later = sorted(p for i, p in enumerate(sorted(album.iterdir())) if i % 4)
    for p in later:
        shutil.move(p, aside / p.name)
    albumsort("index", album, "-j", "2", db=db, check=True)
    for p in later:
        shutil.move(aside / p.name, p)
    for p in album.iterdir():
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    albumsort("index", album, "-j", "2", db=reference, check=True)
    expected = happy_json(reference)

    # A fast machine can finish a run before all its kills: the run then repeats, from the same prepared
    # index, until KILLS workers were killed in all; every run is checked in full.
    prepared = tmp_path / "prepared.db"
    shutil.copy(db, prepared)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    killed: list[int] = []
    for attempt in range(5):
        if attempt:
            db = tmp_path / f"killed{attempt}.db"
            shutil.copy(prepared, db)
        proc = subprocess.Popen(CLI + ["index", str(album), "-j", "2"], env=dict(os.environ, ALBUMSORT_DB=str(db)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        may_kill = None  # the workers alive at the previous kill (None: any)
        try:
            rows = photos_in(db)
            while proc.poll() is None and len(killed) < KILLS:
                time.sleep(0.05)
                alive = workers_of(proc.pid)
                if len(alive) < 2 or photos_in(db) <= rows:
                    continue
                time.sleep(rng.uniform(0.0, 0.3))
                alive &= workers_of(proc.pid)
                victims = sorted(alive if may_kill is None else alive & may_kill)
                if victims and proc.poll() is None:
                    killed.append(rng.choice(victims))
                    os.kill(killed[-1], signal.SIGKILL)
                    may_kill, rows = alive - {killed[-1]}, photos_in(db)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        why = f"seed {seed}, run {attempt + 1}, killed {killed}: {out}{err}"
        # The summary line is a message: it goes to standard error with the progress.
        assert proc.returncode == 0 and "crashed" not in err and ", 0 failed" in err, why
        assert f"{n} indexed, 0 unchanged" in err and " 0 removed" in err, why  # each once: none lost or twice
        assert full_snapshot(db) == full_snapshot(reference), why
        assert rankings(db) == rankings(reference), why
        assert happy_json(db) == expected
        assert Index(db, create=False).query("SELECT path, reason FROM errors") == []
        if len(killed) >= KILLS:
            break
    assert len(killed) == KILLS, f"five runs ended before {KILLS} workers were killed ({why})"

    again = albumsort("index", album, "-j", "2", db=db)
    assert again.returncode == 0 and f"0 indexed, {n} unchanged" in again.stderr, again.stdout + again.stderr
    assert full_snapshot(db) == full_snapshot(reference) and rankings(db) == rankings(reference)
    assert happy_json(db) == expected


def _serve_dying_on_poison(conn, job):
    """A worker that logs each photo it starts (pid, name) and dies on any photo named poison*."""
    from albumsort import executors

    real = executors._analyse_local
    log = os.environ["ALBUMSORT_TEST_LOG"]

    def analyse(path):
        name = os.path.basename(path)
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {name}\n")
        if name.startswith("poison"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path)

    executors._analyse_local = analyse
    executors._serve(conn, job)


def test_only_a_photo_that_kills_its_worker_alone_is_blamed(tmp_path, monkeypatch):
    from albumsort.executors import ALONE_TRIES
    from albumsort.indexing import run_index

    album = big_album(tmp_path / "album", 10)
    scenery(99, (900, 700)).save(album / "poison.jpg")
    log = tmp_path / "log"
    monkeypatch.setenv("ALBUMSORT_TEST_LOG", str(log))
    idx = Index(tmp_path / "i.db")
    s = run_index([str(album)], idx, executor=LocalPool(2, serve=_serve_dying_on_poison))
    assert (s.indexed, s.copied, s.failed) == (10, 0, 1), s.line()
    assert s.failures == [(str(album / "poison.jpg"), CRASHED)]
    started: dict[int, list[str]] = {}
    for line in log.read_text().split("\n")[:-1]:
        pid, name = line.split()
        started.setdefault(int(pid), []).append(name)
    dead = [pid for pid, names in started.items() if names[-1] == "poison.jpg"]
    assert len(dead) == 1 + ALONE_TRIES  # once among others, then alone in each fresh worker
    assert [started[pid] for pid in dead[1:]] == [["poison.jpg"]] * ALONE_TRIES
    assert sorted(n for names in started.values() for n in names if n != "poison.jpg") == \
        sorted(p.name for p in album.iterdir() if p.name != "poison.jpg")  # every other photo once

    # Not remembered: the next run tries it again (a crash may be the machine's, not the file's).
    s = run_index([str(album)], idx, executor=LocalPool(2, serve=_serve_dying_on_poison))
    assert (s.unchanged, s.failed, s.known_failed) == (10, 1, 0)


def _serve_without_networks(conn, job):
    """A worker whose pipeline cannot load (a model file gone between the driver's check and the worker)."""
    from albumsort import executors

    def broken(job):
        raise FileNotFoundError(2, "No such file or directory", "emotions.onnx")

    executors._init_local = broken
    executors._serve(conn, job)


def test_workers_that_cannot_load_the_pipeline_stop_the_run_with_one_line(tmp_path):
    from albumsort.executors import WorkersFailed
    from albumsort.indexing import run_index

    album = big_album(tmp_path / "album", 3)
    idx = Index(tmp_path / "i.db")
    with pytest.raises(WorkersFailed) as e:
        run_index([str(album)], idx, executor=LocalPool(2, serve=_serve_without_networks))
    assert str(e.value) == ("a worker process could not load the photo pipeline: FileNotFoundError: "
                            "[Errno 2] No such file or directory: 'emotions.onnx'")
    assert idx.query("SELECT path FROM photos") == [] and idx.query("SELECT path FROM errors") == []


class _FakeRayPool:
    """Stands in for RayPool in the command: records that it was closed (a real one holds a cluster's actors
    and, when it started one, a Ray session)."""

    made: list = []

    def __init__(self, address, ship_bytes=False, workers=None):
        self.workers, self.closed = workers or 2, 0
        _FakeRayPool.made.append(self)

    def run(self, tasks, total, job):
        raise AssertionError("nothing should run")

    def close(self):
        self.closed += 1


def test_a_ray_pool_made_before_the_index_is_opened_or_locked_is_closed_when_that_fails(album, tmp_path,
                                                                                          monkeypatch):
    from filelock import FileLock
    from typer.testing import CliRunner

    from albumsort import executors
    from albumsort.cli import app

    monkeypatch.setattr(executors, "RayPool", _FakeRayPool)
    foreign = tmp_path / "notes.db"
    foreign.write_text("someone else's file")
    folder = tmp_path / "folder.db"
    folder.mkdir()
    locked = tmp_path / "locked.db"
    Index(locked).close()
    for db, code in ((folder, 2), (foreign, 2), (locked, 3)):
        _FakeRayPool.made.clear()
        with FileLock(str(locked) + ".lock"):
            r = CliRunner().invoke(app, ["--db", str(db), "index", str(album), "--ray", "auto"])
        assert r.exit_code == code, r.output
        assert [p.closed >= 1 for p in _FakeRayPool.made] == [True], db
    assert foreign.read_text() == "someone else's file"


def _serve_dying_at_start(conn, job):
    os._exit(1)  # as a worker killed while it loads the networks


def test_workers_that_always_die_while_starting_stop_the_run_instead_of_looping(tmp_path):
    from albumsort.executors import START_TRIES, WorkersFailed
    from albumsort.indexing import run_index

    album = big_album(tmp_path / "album", 3)
    with pytest.raises(WorkersFailed, match=f"^{START_TRIES} worker processes in a row died while loading"):
        run_index([str(album)], Index(tmp_path / "i.db"), executor=LocalPool(2, serve=_serve_dying_at_start))
