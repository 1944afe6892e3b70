"""The albumsort command as users run it: subprocesses, exit codes, JSON shapes, kills."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albumsort.labels import EXPRESSIONS
from tests.conftest import astronaut, grace_hopper, scenery

CLI = [sys.executable, "-m", "albumsort"]


def albumsort(*args, db, check=False, env=None):
    e = dict(os.environ, ALBUMSORT_DB=str(db), **(env or {}))
    p = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, env=e, timeout=600)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_index_top_show_nofaces_status_errors(album, tmp_path):
    db = tmp_path / "cli.db"
    p = albumsort("index", album, db=db)
    assert p.returncode == 1, p.stderr  # one file failed
    assert p.stdout == "" and "5 indexed" in p.stderr and "1 failed" in p.stderr  # messages: on stderr
    assert p.stderr.strip().endswith("; the index holds 5 photos, 4 kept faces, 2 no-face photos"), p.stderr
    rerun = albumsort("index", album, db=db).stderr  # this run's counts, then the index's: never mixed up
    assert "0 indexed, 5 unchanged" in rerun and rerun.strip().endswith("4 kept faces, 2 no-face photos")
    failed = [line for line in p.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "notes.jpg: not an image" in failed[0]  # one line, then the summary line

    items = json.loads(albumsort("top", "happy", "-n", "10", "--json", db=db, check=True).stdout)
    assert items and all(Path(i["path"]).is_absolute() for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    for i in items:
        assert 0 <= i["score"] <= 1 and i["faces"]
        for f in i["faces"]:
            assert len(f["box"]) == 4 and set(f["probabilities"]) == set(EXPRESSIONS)
    assert not any("field" in i["path"] for i in items)

    nf = json.loads(albumsort("nofaces", "--json", db=db, check=True).stdout)
    assert {Path(i["path"]).name for i in nf} == {"field.jpg", "sky.webp"}

    out = albumsort("show", album / "people" / "astronaut.jpg", db=db, check=True).stdout
    assert "happy" in out and "box" in out
    assert "No face" in albumsort("show", album / "places" / "field.jpg", db=db, check=True).stdout
    assert "5" in albumsort("status", db=db, check=True).stdout
    assert "not an image" in albumsort("errors", db=db, check=True).stdout
    table = albumsort("top", "happy", db=db, check=True).stdout  # piped: one whole path per line
    assert table and all(len(line.split("\t")) == 5 for line in table.splitlines())
    csv_out = albumsort("top", "sad", "--any", "--format", "csv", db=db, check=True).stdout
    assert csv_out.splitlines()[0] == "rank,score,faces,shots,path" and len(csv_out.splitlines()) > 1


def test_read_commands_do_not_import_tensorflow(album, tmp_path):
    db = tmp_path / "cli.db"
    albumsort("index", album, db=db)
    code = (
        "import sys; from typer.testing import CliRunner; from albumsort.cli import app\n"
        "r = CliRunner()\n"
        "for args in (['top','happy','--json'], ['nofaces'], ['status'], ['errors']):\n"
        "    res = r.invoke(app, args); assert res.exit_code == 0, res.output\n"
        "heavy = ('tensorflow', 'keras', 'ai_edge_litert', 'yuface', 'onnxruntime', 'cv2')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "assert not bad, bad\n"
    )
    p = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ALBUMSORT_DB=str(db)),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_index_location(tmp_path, album):
    env = dict(os.environ)
    env.pop("ALBUMSORT_DB", None)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    p = subprocess.run(CLI + ["status"], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "no index" in p.stderr
    explicit = tmp_path / "explicit.db"
    subprocess.run(CLI + ["--db", str(explicit), "index", str(album / "people")], env=env, capture_output=True)
    assert explicit.exists()
    # top works from any working directory with ALBUMSORT_DB.
    p = subprocess.run(CLI + ["top", "happy", "--json"], capture_output=True, text=True, cwd="/",
                       env=dict(env, ALBUMSORT_DB=str(explicit)))
    assert p.returncode == 0 and json.loads(p.stdout)
    if sys.platform.startswith("linux"):
        subprocess.run(CLI + ["index", str(album / "people")], env=env, capture_output=True)
        assert (tmp_path / "xdg" / "albumsort" / "index.db").exists()


def test_export_cli(album, tmp_path):
    db = tmp_path / "cli.db"
    albumsort("index", album, db=db)
    dest = tmp_path / "best"
    albumsort("export", "happy", dest, "-n", "2", db=db, check=True)
    assert sorted(p.name[:4] for p in dest.iterdir() if p.suffix != ".csv") == ["001_", "002_"]
    albumsort("export", "--all", tmp_path / "all", "--mode", "symlink", db=db, check=True)
    assert {p.name for p in (tmp_path / "all").iterdir()} == {"angry", "happy", "sad", "neutral", "no-face"}
    assert len([p for p in (tmp_path / "all" / "no-face").iterdir() if p.suffix != ".csv"]) == 2
    p = albumsort("export", "joyful", dest, db=db)
    assert p.returncode == 2 and "unknown emotion 'joyful'" in p.stderr


def big_album(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    faces = [astronaut(), grace_hopper()]
    for i in range(n):
        im = faces[i % 2] if i % 3 else scenery(i, (900, 700))
        im = im.resize((im.width * 2, im.height * 2)).rotate(i * 0.5 - 12)  # all distinct
        im.save(root / f"img_{i:03d}.jpg", quality=85)
    return root


def full_snapshot(db):
    c = sqlite3.connect(db)
    photos = sorted(c.execute("SELECT path, hash FROM photos"))
    faces = sorted(c.execute("SELECT hash, idx, round(x), round(y), round(p_happy, 4) FROM faces"))
    results = sorted(c.execute("SELECT hash, n_faces, model_version FROM results"))
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    c.close()
    return photos, faces, results


def wait_for_rows(db, n, proc, timeout=120):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            return False
        try:
            c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            k = c.execute("SELECT count(*) FROM photos").fetchone()[0]
            c.close()
            if k >= n:
                return True
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def indexed_big_album(tmp_path_factory):
    """48 photos and the index an uninterrupted run makes of them, made once for both signals."""
    root = tmp_path_factory.mktemp("killed")
    album = big_album(root / "album", 48)
    albumsort("index", album, db=root / "ref.db", check=True)
    return album, full_snapshot(root / "ref.db")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_the_same_index(tmp_path, sig, indexed_big_album):
    album, reference = indexed_big_album

    db = tmp_path / "killed.db"
    env = dict(os.environ, ALBUMSORT_DB=str(db))
    proc = subprocess.Popen(CLI + ["index", str(album), "--workers", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_rows(db, 4, proc), "the run finished before it could be interrupted"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted" in err
    done = full_snapshot(db)[0]
    assert 0 < len(done) < 48  # a consistent partial index
    p = albumsort("index", album, db=db, check=True)
    assert f"{48 - len(done)} indexed" in p.stderr and f"{len(done)} unchanged" in p.stderr, p.stderr
    assert full_snapshot(db) == reference
