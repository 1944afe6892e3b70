"""Rankings users can trust and steer (issue 10), through the command line, on a hand-made index."""

import calendar
import datetime
import json

import pytest

from albumsort.labels import EMOTIONS
from albumsort.scores import face_confidence, ranking_columns
from albumsort.store import Index
from tests.test_cli import albumsort


def face(**p):
    probs = {e: p.get(e, 0.0) for e in EMOTIONS}
    rest = 1.0 - sum(probs.values())
    probs["neutral"] += rest
    f = {f"p_{e}": v for e, v in probs.items()}
    f.update(det_score=0.95, readability=0.95, confidence=face_confidence(0.95, list(probs.values()), 0.95))
    return f


def when(y, m=1, d=1, s=0):
    return float(calendar.timegm(datetime.datetime(y, m, d).timetuple()) + s)


D = 0x0F0F_F0F0_1234_5678
PHOTOS = {  # path: (content hash, faces, capture time, dhash)
    "/al/trip/smile1.jpg": ("h1", [face(happy=0.9)], when(2024, 7, 1), D),
    "/al/trip/smile2.jpg": ("h2", [face(happy=0.85)], when(2024, 7, 1, 2), D ^ 0b111),  # same burst
    "/al/trip/copy-of-smile1.jpg": ("h1", None, None, None),  # a copy: same content
    "/al/trip/sea.jpg": ("h7", [], when(2024, 7, 2), 12345),
    "/al/home/group_all.jpg": ("h3", [face(happy=0.8), face(happy=0.7), face(happy=0.75)], when(2023, 5, 1), 1),
    "/al/home/group_mixed.jpg": ("h4", [face(happy=0.95), face(angry=0.8)], when(2023, 5, 2), 2),
    "/al/home/angry.jpg": ("h5", [face(angry=0.9)], when(2023, 6, 1), 3),
    "/al/home/calm.jpg": ("h6", [face(neutral=0.5)], when(2023, 6, 2), 4),
}


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "r.db"
    idx = Index(path)
    with idx.transaction():
        for p, (h, faces, taken, dhash) in PHOTOS.items():
            if faces is not None:
                rows = [{"idx": j, "x": 1.0, "y": 2.0, "w": 30.0, "h": 40.0, "landmarks": None, **f}
                        for j, f in enumerate(faces)]
                idx.put_result(h, {"width": 100, "height": 100, "model_version": "m", "detector_version": "d",
                                   "n_faces": len(faces), "scored_at": 0.0, "dhash": dhash, "exif_time": taken,
                                   **ranking_columns(faces)}, rows)
            idx.put_photo(p.encode(), 1, 1, h, 1)
    idx.close()
    return path


def top(db, *args):
    p = albumsort("top", *args, "--format", "ndjson", db=db)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def names(items):
    return [i["path"].rsplit("/", 1)[1] for i in items]


def test_a_list_holds_only_photos_that_show_its_emotion(db):
    assert names(top(db, "angry")) == ["angry.jpg", "group_mixed.jpg"]
    assert "smile2.jpg" in names(top(db, "angry", "--any"))  # every photo with a face, ranked by angry
    p = albumsort("top", "sad", db=db)
    assert p.returncode == 0 and p.stdout == "" and "no photo shows sad (--any lists every photo" in p.stderr


def test_bursts_and_copies_count_once(db):
    happy = top(db, "happy")
    trip = [i for i in happy if "/trip/" in i["path"]]
    assert len(trip) == 1 and trip[0]["shots"] == 3  # two shots and one copy, shown once
    assert names(trip)[0] in ("smile1.jpg", "copy-of-smile1.jpg")  # the copies score alike: first by path
    every = names(top(db, "happy", "--all-shots"))
    assert {"smile1.jpg", "smile2.jpg", "copy-of-smile1.jpg"} <= set(every)


def test_filters_combine(db):
    assert set(names(top(db, "happy", "--in", "/al/home"))) == {"group_all.jpg", "group_mixed.jpg"}
    assert names(top(db, "happy", "--since", "2024")) == ["copy-of-smile1.jpg"]
    assert set(names(top(db, "happy", "--until", "2023-05-01"))) == {"group_all.jpg"}  # the whole day counts
    assert set(names(top(db, "happy", "--min-faces", "2"))) == {"group_all.jpg", "group_mixed.jpg"}
    assert set(names(top(db, "happy", "--max-faces", "1", "--in", "/al/home", "--any"))) == {"angry.jpg", "calm.jpg"}
    assert names(top(db, "happy", "--in", "/al/trip", "--until", "2023")) == []
    p = albumsort("top", "happy", "--since", "last tuesday", db=db)
    assert p.returncode == 2 and "not a date" in p.stderr


def test_everyone_ranks_by_the_least_smiling_face(db):
    assert names(top(db, "happy", "--everyone")) == ["group_all.jpg"]  # the mixed group has a frown
    assert names(top(db, "happy", "--everyone", "--any")) == ["group_all.jpg", "group_mixed.jpg"]


def test_formats_and_conventions(db):
    p = albumsort("top", "happy", "--format", "csv", db=db)
    assert p.stdout.splitlines()[0] == "rank,score,faces,shots,path" and len(p.stdout.splitlines()) == 4
    assert p.stderr == "only 3 photos show happy (-n 20)\n"  # as the table says it (issue 23)
    p = albumsort("top", "happy", "--format", "csv", "-n", "3", db=db)
    assert len(p.stdout.splitlines()) == 4 and p.stderr == ""  # a full list: nothing to say
    p = albumsort("top", "happy", db=db)  # a table piped: one whole path per line
    assert all(line.count("\t") == 4 for line in p.stdout.splitlines())
    assert albumsort("--version", db=db).stdout.startswith("albumsort ")
    h = albumsort("top", "--help", db=db, env={"COLUMNS": "200"}).stdout
    flags = [line for line in h.splitlines() if any(f in line for f in ("--json", "--any", "--everyone"))]
    assert len(flags) == 3 and not any("<bool>" in line or "BOOLEAN" in line for line in flags)


def test_explain_and_show_several(db):
    p = albumsort("explain", "/al/home/group_mixed.jpg", db=db)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "face 2:" in out and "shows angry" in out and "kept" in out
    assert "happy: score" in out and "sad: score" in out and "; rank 3" in out
    # The prior is the uninformed 1/7 of seven expressions: (0.578 + 0.5/7) / (1.579 + 0.5) = 0.312.
    assert "angry: score 0.312 = (sum c*p 0.578 + 0.5 x 0.1429) / (sum c 1.579 + 0.5); 1 face shows it; rank 2" in out

    assert "not in the list: no kept face shows it" in out  # sad
    assert "moment: 1 shot" in out
    burst = albumsort("explain", "/al/trip/smile2.jpg", db=db).stdout
    assert "moment: 3 shots" in burst and "its burst is shown by a better shot" in burst
    one = json.loads(albumsort("show", "/al/home/angry.jpg", "--json", db=db).stdout)
    assert isinstance(one, dict) and one["path"] == "/al/home/angry.jpg" and one["taken_from"] == "exif"
    several = json.loads(albumsort("show", "/al/home/angry.jpg", "/al/trip", "--json", db=db).stdout)
    assert [o["path"].rsplit("/", 1)[1] for o in several] == [
        "angry.jpg", "copy-of-smile1.jpg", "sea.jpg", "smile1.jpg", "smile2.jpg"]


def test_explain_ranks_past_a_thousand_without_a_query_per_ranked_photo(tmp_path, monkeypatch):
    """Issue 21: explain said "rank > 1000" past the 1,000 photos it fetched per emotion, and counted the
    shots of every one of them (a burst query each) to find one photo's rank."""
    from typer.testing import CliRunner

    from albumsort import ranking
    from albumsort.cli import app

    path = tmp_path / "many.db"
    idx = Index(path)
    n = 1100
    with idx.transaction():
        for i in range(n):  # happier first by file number; camera times 11 s apart: no bursts
            faces = [face(happy=0.95 - 0.4 * i / n)]
            rows = [{"idx": 0, "x": 1.0, "y": 2.0, "w": 30.0, "h": 40.0, "landmarks": None, **faces[0]}]
            idx.put_result(f"h{i}", {"width": 100, "height": 100, "model_version": "m", "detector_version": "d",
                                     "n_faces": 1, "scored_at": 0.0, "dhash": D, "exif_time": when(2024) + 11 * i,
                                     **ranking_columns(faces)}, rows)
            idx.put_photo(f"/many/{i:04d}.jpg".encode(), 1, 1, f"h{i}", 1)
    idx.close()
    calls = []
    real = ranking.burst_members
    monkeypatch.setattr(ranking, "burst_members", lambda *a: calls.append(1) or real(*a))
    r = CliRunner().invoke(app, ["--db", str(path), "explain", "/many/1049.jpg", "/many/0000.jpg"])
    assert r.exit_code == 0, r.output
    assert "1 face shows it; rank 1050\n" in r.stdout and "1 face shows it; rank 1\n" in r.stdout
    assert len(calls) == 2  # one per photo explained: its own moment
