"""Indexing on a Ray cluster (issue 16): a real local cluster, started and stopped by these tests.

The in-process cluster is ``ray.init(num_cpus=2)``: its workers are separate
processes, as on any cluster; the command-line test starts ``ray start
--head`` and a second node process and points ``albumsort index --ray`` at it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albumsort.executors import LocalPool, RayPool
from albumsort.indexing import run_index
from albumsort.store import Index
from tests.conftest import astronaut, grace_hopper, scenery

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "albumsort"]
TIMES = {"scored_at", "indexed_at", "at", "seen_run", "id"}  # when, not what


def rows(db) -> dict[str, list[tuple]]:
    """Every row of every table the user sees, without the columns that say when."""
    c = sqlite3.connect(db)
    c.row_factory = sqlite3.Row
    out = {}
    for table in ("photos", "results", "faces", "errors"):
        out[table] = sorted(tuple((k, r[k]) for k in r.keys() if k not in TIMES and k != "person")
                            for r in c.execute(f"SELECT * FROM {table}"))
    # Person ids depend on the order faces first reached the index: compare the grouping itself.
    groups: dict = {}
    for h, idx, person in c.execute("SELECT hash, idx, person FROM faces WHERE person IS NOT NULL"):
        groups.setdefault(person, set()).add((h, idx))
    out["persons"] = sorted(sorted(g) for g in groups.values())
    c.close()
    return out


def album_of(root: Path, n: int) -> Path:
    """``n`` distinct photos: faces and scenes, a few of each kind, and a broken file."""
    root.mkdir(parents=True)
    faces = [astronaut(), grace_hopper()]
    for i in range(n):
        im = faces[i % 2] if i % 3 else scenery(i, (640, 480))
        im.rotate(i * 0.7 - 8).save(root / f"img_{i:03d}.jpg", quality=85)
    (root / "broken.jpg").write_text("not a photo")
    return root


RAY_ENV = {
    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),  # this checkout
    "RAY_AUTH_MODE": "disabled",  # no token written to ~/.ray for a throw-away cluster
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # `ray start --block` stops at once on SIGTERM
    "RAY_USAGE_STATS_ENABLED": "0",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster of 2 CPUs whose worker processes import this checkout of albumsort."""
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    try:
        yield
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def index_with(album: Path, db: Path, executor, **kw):
    idx = Index(db)
    try:
        return run_index([str(album)], idx, executor=executor, **kw)
    finally:
        idx.close()


def test_ray_results_equal_the_local_run_row_for_row(cluster, tmp_path):
    album = album_of(tmp_path / "album", 8)
    local = index_with(album, tmp_path / "local.db", LocalPool(2))
    on_ray = index_with(album, tmp_path / "ray.db", RayPool(None))
    shipped = index_with(album, tmp_path / "shipped.db", RayPool(None, ship_bytes=True))
    reference = rows(tmp_path / "local.db")
    assert len(reference["photos"]) == 8 and len(reference["faces"]) > 0 and len(reference["errors"]) == 1
    assert rows(tmp_path / "ray.db") == reference
    assert rows(tmp_path / "shipped.db") == reference
    assert local.line().split(" in ")[0] == on_ray.line().split(" in ")[0] == shipped.line().split(" in ")[0]

    # A rerun on the cluster opens nothing and a moved photo keeps its result without a decode.
    os.rename(album / "img_001.jpg", album / "moved.jpg")
    again = index_with(album, tmp_path / "ray.db", RayPool(None))
    assert (again.unchanged, again.moved, again.indexed, again.known_failed) == (7, 1, 0, 1)


def test_a_killed_worker_process_is_retried_and_nothing_is_written_twice(cluster, tmp_path):
    album = album_of(tmp_path / "album", 24)
    index_with(album, tmp_path / "local.db", LocalPool(2))
    pool = RayPool(None, batch=2)
    killed = []

    def progress(done, total):
        if not killed and pool.seen_pids and done < total - 4:
            killed.append(pool.seen_pids[0])
            os.kill(pool.seen_pids[0], signal.SIGKILL)  # a worker process of the cluster, mid-run

    s = index_with(album, tmp_path / "ray.db", pool, progress=progress)
    assert killed, "the run ended before a worker could be killed"
    assert killed[0] not in pool.seen_pids[1:] and len(pool.seen_pids) >= 3  # a new process took over
    assert (s.indexed, s.failed) == (24, 1)  # every photo once, none lost to the kill
    assert rows(tmp_path / "ray.db") == rows(tmp_path / "local.db")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_nodes(tmp_path):
    """``ray start --head`` and a second node process on this machine (1 CPU each); stopped by their pids."""
    import tempfile

    env = dict(os.environ, **RAY_ENV)
    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    temp = tempfile.mkdtemp(prefix="rayt")  # short: Ray's socket paths must stay under 108 bytes
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    procs = [subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false",
                               f"--temp-dir={temp}", *common], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        import socket

        address = f"127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:  # the head's port answers
            assert time.time() < deadline and procs[0].poll() is None, "the head node did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        procs.append(subprocess.Popen([ray_bin, "start", f"--address={address}", *common], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait = ("import ray, sys, time; ray.init(address=sys.argv[1], log_to_driver=False)\n"
                "while len([n for n in ray.nodes() if n['Alive']]) < 2 or ray.cluster_resources().get('CPU') != 2:\n"
                "    time.sleep(0.3)\n")
        subprocess.run([sys.executable, "-c", wait, address], env=env, capture_output=True,
                       timeout=max(1, deadline - time.time()), check=True)
        yield address, env
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def test_the_command_on_a_two_node_cluster_equals_a_local_run_also_after_ctrl_c(two_nodes, tmp_path):
    from tests.test_cli import big_album, wait_for_rows

    address, env = two_nodes
    album = big_album(tmp_path / "album", 40)
    (album / "broken.jpg").write_text("not a photo")
    local = subprocess.run(CLI + ["index", str(album)], env=dict(env, ALBUMSORT_DB=str(tmp_path / "local.db")),
                           capture_output=True, text=True, timeout=300)
    db = tmp_path / "ray.db"
    env = dict(env, ALBUMSORT_DB=str(db))
    proc = subprocess.Popen(CLI + ["index", str(album), "--ray", address], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert wait_for_rows(db, 2, proc), "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err
    partial = rows(db)
    done, broken_seen = len(partial["photos"]), bool(partial["errors"])
    assert 0 < done < 40  # a consistent partial index

    p = subprocess.run(CLI + ["index", str(album), "--ray", address, "--ray-ship-bytes"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert local.returncode == 1 and "broken.jpg" in local.stderr
    # The broken file fails on the run that reaches it; after that it is a known failure.
    assert p.returncode == (0 if broken_seen else 1), p.stderr
    assert ("broken.jpg" in p.stderr) != broken_seen and "Traceback" not in p.stderr
    assert f"{40 - done} indexed, {done} unchanged" in p.stderr, p.stderr  # resumed where it stopped
    assert rows(db) == rows(tmp_path / "local.db")


def test_a_photo_a_worker_cannot_read_names_the_node_and_the_path(cluster, tmp_path):
    album = album_of(tmp_path / "album", 2)
    gone = album / "img_001.jpg"
    s = index_with(album, tmp_path / "ray.db", RayPool(None), on_total=lambda n: gone.unlink())  # after the scan
    ((path, reason),) = [f for f in s.failures if "broken" not in f[0]]
    assert path == str(gone)
    assert "No such file or directory" in reason and reason.endswith(")") and " (on node " in reason, reason
    assert Index(tmp_path / "ray.db").error(str(gone))["size"] is None  # not remembered: retried next run


def test_an_unreachable_cluster_is_one_line_and_nothing_is_written(tmp_path):
    album = album_of(tmp_path / "album", 1)
    db = tmp_path / "i.db"
    nobody = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, ALBUMSORT_DB=str(db), **RAY_ENV)
    for args, address in ((["--ray", nobody], None), (["--ray"], nobody), (["--ray", "auto", "-j", "2"], nobody)):
        e = dict(env, RAY_ADDRESS=address) if address else env  # `auto` means RAY_ADDRESS where it is set
        p = subprocess.run(CLI + ["index", str(album), *args], env=e, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and p.stderr.strip().splitlines() == [
            f"error: cannot reach the Ray cluster at {nobody}: Connection refused; "
            "is `ray start --head` running there?"], p.stderr
    assert sorted(os.listdir(tmp_path)) == ["album"]  # no index, no lock file


def test_without_ray_the_option_says_how_to_install_it(tmp_path):
    album = album_of(tmp_path / "album", 1)
    db = tmp_path / "i.db"
    code = ("import sys; sys.modules['ray'] = None  # as if not installed\n"
            "sys.argv = ['albumsort', 'index', sys.argv[1], '--ray']\n"
            "from albumsort.cli import run; run()\n")
    p = subprocess.run([sys.executable, "-c", code, str(album)], env=dict(os.environ, ALBUMSORT_DB=str(db)),
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "error: --ray needs Ray, which is not installed: pip install 'albumsort[ray]'"], p.stderr
    assert not db.exists()


def test_no_other_command_imports_ray(tmp_path):
    album = album_of(tmp_path / "album", 2)
    code = (
        "import sys; from typer.testing import CliRunner; from albumsort.cli import app\n"
        "r = CliRunner()\n"
        f"for args in (['index', {str(album)!r}], ['top','happy','--json'], ['nofaces'], ['status'], ['errors'],\n"
        f"             ['show', {str(album / 'img_001.jpg')!r}], ['explain', {str(album / 'img_001.jpg')!r}],\n"
        f"             ['export', 'happy', {str(tmp_path / 'out')!r}], ['report', {str(tmp_path / 'rep')!r}]):\n"
        "    res = r.invoke(app, args); assert res.exit_code in (0, 1), (args, res.output)\n"
        "assert 'albumsort.executors' in sys.modules  # the index command did run its executor\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'ray']\n"
        "assert not bad, bad\n"
    )
    p = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ALBUMSORT_DB=str(tmp_path / "i.db")),
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
