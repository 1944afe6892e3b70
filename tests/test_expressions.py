"""Seven expressions in, four lists out (issue 24), through the command line on a hand-made index.

A face whose top expression is surprise, fear or disgust joins none of the
four lists; its scores are probabilities among all seven, never renormalised.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from albumsort.labels import BEYOND, EMOTIONS, EXPRESSIONS
from albumsort.scores import PRIOR, PRIOR_WEIGHT, face_confidence, ranking_columns, top_emotion
from albumsort.store import Index
from tests.test_cli_messages import build, run


def face(**p):
    probs = {e: p.get(e, 0.0) for e in EXPRESSIONS}
    assert abs(sum(probs.values()) - 1) < 1e-9
    return {**{f"p_{e}": v for e, v in probs.items()}, "det_score": 0.9, "readability": 0.9,
            "confidence": face_confidence(0.9, list(probs.values()), 0.9), "w": 80.0, "h": 90.0}


SURPRISED = face(surprise=0.5, sad=0.3, neutral=0.2)  # wide eyes, an "O" mouth: sad is its second reading
SAD = face(sad=0.6, neutral=0.4)
DISGUSTED = face(disgust=0.45, angry=0.35, sad=0.2)


@pytest.fixture
def db(tmp_path):
    a = tmp_path / "al"
    return build(tmp_path / "x.db", {a / "surprised.jpg": ("h1", [SURPRISED]), a / "sad.jpg": ("h2", [SAD]),
                                     a / "disgusted.jpg": ("h3", [DISGUSTED])}, root=tmp_path)


def paths(out: str) -> list[str]:
    """The listed photos' paths from the album folder on ("/al/x.jpg")."""
    return ["/al/" + it["path"].rsplit("/al/", 1)[1] for it in json.loads(out)]


def score(f: dict, e: str) -> float:
    return (f["confidence"] * f[f"p_{e}"] + PRIOR_WEIGHT * PRIOR) / (f["confidence"] + PRIOR_WEIGHT)


def test_a_surprised_face_is_kept_out_of_top_sad(db):
    code, out, _ = run(db, "top", "sad", "--json")
    assert code == 0 and paths(out) == ["/al/sad.jpg"]
    code, out, _ = run(db, "top", "angry", "--json")
    assert code == 0 and paths(out) == []  # disgust's second reading is angry: still not an angry face
    code, out, _ = run(db, "top", "sad", "--any", "--json")  # --any ranks every face by its P(sad)
    assert paths(out) == ["/al/sad.jpg", "/al/surprised.jpg", "/al/disgusted.jpg"]


def test_beyond_the_four_each_expression_has_its_list(db, tmp_path):
    for e, photo in (("surprise", "/al/surprised.jpg"), ("disgust", "/al/disgusted.jpg")):
        code, out, _ = run(db, "top", e.upper(), "--json")
        assert code == 0 and paths(out) == [photo]
    code, out, err = run(db, "top", "fear", "--json")
    assert code == 0 and paths(out) == []
    code, out, _ = run(db, "top", "surprise", "--everyone", "--json")
    assert code == 0 and paths(out) == []  # one face: not a group
    code, out, _ = run(db, "export", "surprise", tmp_path / "out")
    assert code == 0 and (tmp_path / "out" / "albumsort-manifest.csv").is_file()
    code, _, err = run(db, "top", "surprize")
    assert code == 2 and "did you mean surprise?" in err


def test_the_score_is_a_probability_among_seven(db):
    code, out, _ = run(db, "top", "surprise", "--json")
    (item,) = json.loads(out)
    assert item["score"] == pytest.approx(score(SURPRISED, "surprise"), abs=1e-6)
    assert item["faces"][0]["probabilities"] == pytest.approx({e: SURPRISED[f"p_{e}"] for e in EXPRESSIONS})
    code, out, _ = run(db, "top", "sad", "--any", "--json")
    got = {"/al/" + it["path"].rsplit("/al/", 1)[1]: it["score"] for it in json.loads(out)}
    # 0.3 among seven, not 0.3 / (0.3 + 0.2) = 0.6 renormalised over the four
    assert got["/al/surprised.jpg"] == pytest.approx(score(SURPRISED, "sad"), abs=1e-6)
    assert PRIOR == pytest.approx(1 / 7)


def test_status_show_explain_and_report_count_seven(db, tmp_path):
    code, out, _ = run(db, "status")
    rows = dict(line.split("\t") for line in out.splitlines())
    assert rows["mostly surprise"] == "1" and rows["mostly sad"] == "1" and rows["mostly disgust"] == "1"
    assert rows["mostly angry"] == "0" and sum(int(rows[f"mostly {e}"]) for e in EXPRESSIONS) == 3
    code, out, _ = run(db, "show", tmp_path / "al" / "surprised.jpg", "--json")
    assert json.loads(out)["faces"][0]["probabilities"]["surprise"] == 0.5
    code, out, _ = run(db, "explain", tmp_path / "al" / "surprised.jpg")
    assert code == 0 and "shows surprise" in out and "surprise: score" in out and "surprise 0.50" in out
    assert "sad: score" in out and "not in the list: no kept face shows it" in out
    code, out, _ = run(db, "report", tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    assert code == 0 and all(f'id="{e}"' in page for e in EMOTIONS) and 'id="surprise"' not in page
    assert "mostly surprise" in page  # counted among seven either way
    code, out, _ = run(db, "report", tmp_path / "r7", "--all-expressions")
    page = (tmp_path / "r7" / "index.html").read_text()
    assert all(f'id="{e}"' in page for e in EXPRESSIONS) and "surprise 50%" in page
    code, out, _ = run(db, "export", "--all", tmp_path / "all", "--all-expressions")
    assert code == 0 and {p.name for p in (tmp_path / "all").iterdir()} == set(EXPRESSIONS) | {"no-face"}


def test_ties_go_to_the_first_expression_in_both_ranking_paths(tmp_path):
    """A face equally sad and surprised shows sad (the first in order) in the precomputed columns and in SQL."""
    tie = face(sad=0.4, surprise=0.4, neutral=0.2)
    assert top_emotion(tie) == "sad" and ranking_columns([tie])["shows_sad"] == 1
    db = build(tmp_path / "t.db", {"/al/tie.jpg": ("h", [tie])})
    for extra in ([], ["--min-confidence", "0.1"]):  # the precomputed path, then the SQL one
        assert paths(run(db, "top", "sad", "--json", *extra)[1]) == ["/al/tie.jpg"]
        assert paths(run(db, "top", "surprise", "--json", *extra)[1]) == []


def test_an_index_from_before_the_seven_gains_them_in_place(tmp_path):
    """An index written with four emotion columns is read as it is; the next writer adds the three as 0."""
    import sqlite3

    db = build(tmp_path / "old.db", {"/al/a.jpg": ("h1", [SAD])})
    conn = sqlite3.connect(db)
    for e in BEYOND:  # what a schema-3 index of the four-emotion days looked like
        conn.execute(f"DROP INDEX IF EXISTS results_rank_{e}")
        for t, cols in (("faces", [f"p_{e}"]), ("results", [f"score_{e}", f"best_{e}", f"shows_{e}"])):
            for c in cols:
                conn.execute(f"ALTER TABLE {t} DROP COLUMN {c}")
    conn.commit()
    conn.close()
    code, out, _ = run(db, "top", "sad", "--json")
    assert code == 0 and paths(out) == ["/al/a.jpg"]  # read-only: nothing added, the four still rank
    code, out, _ = run(db, "top", "surprise", "--json")
    assert code == 0 and paths(out) == []
    Index(db).close()  # a writer opens it: the columns are added, 0 until re-scored
    idx = Index(db, create=False)
    assert idx.expressions == EXPRESSIONS
    assert idx.query("SELECT p_surprise, p_fear, p_disgust FROM faces")[0] == {"p_surprise": 0, "p_fear": 0,
                                                                             "p_disgust": 0}


def test_the_model_scores_come_back_in_expression_order():
    """Whatever expressions a model file reads, albumsort gets seven columns; one it does not read is 0."""
    from albumsort.emotions import EmotionModel

    m = EmotionModel()
    probs, readability = m.score_crops(np.full((2, m.input_size, m.input_size), 128, np.uint8))
    assert probs.shape == (2, len(EXPRESSIONS)) and readability.shape == (2,)
    read = [EXPRESSIONS.index(e) for e in m.labels]
    assert np.allclose(probs[:, read].sum(1), 1, atol=1e-4)
    assert not np.delete(probs, read, axis=1).any()
