"""The confidence rule, photo scores, tie-breaks and the stable JSON shapes."""

import json

import pytest

from albumsort.labels import EMOTIONS, EXPRESSIONS
from albumsort.ranking import no_faces, top
from albumsort.scores import face_confidence, photo_scores, ranking_columns
from albumsort.store import Index


def face(happy, det=0.95, **others):
    rest = (1 - happy) / 3
    p = {"angry": rest, "happy": happy, "sad": rest, "neutral": rest, **others}
    f = {f"p_{e}": p[e] for e in EMOTIONS}
    f["confidence"] = face_confidence(det, [p[e] for e in EMOTIONS])
    f["det_score"] = det
    return f


def test_confidence_is_detector_times_top_probability():
    assert face_confidence(0.8, [0.1, 0.6, 0.2, 0.1]) == pytest.approx(0.48)


def test_group_of_smiles_beats_one_smile_among_frowns():
    everyone = [face(0.9), face(0.85), face(0.9), face(0.8)]
    one = [face(0.95)] + [face(0.05, angry=0.9) for _ in range(3)]
    assert photo_scores(everyone)[0]["happy"] > photo_scores(one)[0]["happy"]


def test_more_confident_evidence_ranks_higher():
    assert photo_scores([face(0.9)] * 4)[0]["happy"] > photo_scores([face(0.9)])[0]["happy"]


def test_low_confidence_faces_are_ignored():
    weak = face(0.3, det=0.5)  # 0.5 * 0.3 = 0.15 < 0.20
    scores, kept = photo_scores([weak])
    assert kept == 0 and scores["happy"] == 0.0
    assert photo_scores([weak], min_confidence=0.1)[1] == 1


def test_scores_stay_in_unit_interval():
    for faces in ([face(1.0)], [face(0.0)], [face(0.5)] * 10):
        s, _ = photo_scores(faces)
        assert all(0.0 <= v <= 1.0 for v in s.values())


@pytest.fixture
def filled(tmp_path):
    idx = Index(tmp_path / "r.db")
    photos = {
        "/a/group_smiles.jpg": [face(0.9), face(0.9), face(0.85)],
        "/a/one_smile.jpg": [face(0.95), face(0.05, angry=0.9), face(0.05, angry=0.9)],
        "/a/portrait.jpg": [face(0.9)],
        "/a/tie_b.jpg": [face(0.7)],
        "/a/tie_a.jpg": [face(0.7)],
        "/a/landscape.jpg": [],
        "/a/blurry.jpg": [face(0.3, det=0.5)],
    }
    with idx.transaction():
        for i, (path, faces) in enumerate(photos.items()):
            h = f"h{i}"
            rows = [{"idx": j, "x": 1.0, "y": 2.0, "w": 30.0, "h": 40.0, "landmarks": None, **f}
                    for j, f in enumerate(faces)]
            idx.put_result(h, {"width": 100, "height": 100, "model_version": "m", "detector_version": "d",
                               "n_faces": len(faces), "scored_at": 0.0, **ranking_columns(faces)}, rows)
            idx.put_photo(path.encode(), 1, 1, h, 1)
    return idx


def test_top_order_ties_and_no_faces(filled):
    order = [r["path"] for r in top(filled, "happy", 10)]
    assert order[0] == "/a/group_smiles.jpg"
    assert order.index("/a/group_smiles.jpg") < order.index("/a/one_smile.jpg")
    assert order.index("/a/tie_a.jpg") + 1 == order.index("/a/tie_b.jpg")  # tie broken by path
    assert "/a/landscape.jpg" not in order and "/a/blurry.jpg" not in order
    # Surest first: no face found, then faces that were found but not kept, with the reason.
    assert [(r["path"], r["reason"], r["n_faces"]) for r in no_faces(filled)] == [
        ("/a/landscape.jpg", "no face found", 0), ("/a/blurry.jpg", "faces below the confidence threshold", 1)]


def test_other_threshold_uses_the_same_formula(filled):
    default = {r["path"]: r["score"] for r in top(filled, "happy", 10)}
    # A threshold just below the default aggregates in SQL: same scores.
    near = {r["path"]: r["score"] for r in top(filled, "happy", 10, min_confidence=0.2 - 1e-9)}
    assert near == pytest.approx(default)
    assert "/a/blurry.jpg" in [r["path"] for r in top(filled, "happy", 10, min_confidence=0.1)]


def test_json_shape(filled):
    items = json.loads(json.dumps(top(filled, "happy", 2)))
    assert [set(i) >= {"path", "score", "faces"} for i in items] == [True, True]
    f = items[0]["faces"][0]
    assert len(f["box"]) == 4 and set(f["probabilities"]) == set(EXPRESSIONS)
    assert items[0]["score"] >= items[1]["score"] and 0 <= items[1]["score"] <= 1


def test_unknown_emotion(filled):
    with pytest.raises(ValueError):
        top(filled, "surprised")


def test_a_tie_between_emotions_counts_once_on_every_path(tmp_path):
    """Issue 21: a face tied between two emotions shows the first of EXPRESSIONS, in the precomputed columns
    (default threshold) as in the SQL that aggregates faces (other thresholds, --everyone)."""
    from albumsort.scores import top_emotion

    idx = Index(tmp_path / "t.db")
    pairs = [(a, b) for i, a in enumerate(EXPRESSIONS) for b in EXPRESSIONS[i + 1:]]
    with idx.transaction():
        for _k, (a, b) in enumerate(pairs):
            rest = 0.2 / (len(EXPRESSIONS) - 2)
            p = {e: 0.4 if e in (a, b) else rest for e in EXPRESSIONS}
            f = {f"p_{e}": p[e] for e in EXPRESSIONS}
            f |= {"det_score": 0.95, "confidence": face_confidence(0.95, list(p.values()))}
            assert top_emotion(f) == a
            for n in (1, 2):  # one face, and a pair for --everyone
                rows = [{"idx": j, "x": 1.0, "y": 2.0, "w": 30.0, "h": 40.0, "landmarks": None, **f} for j in range(n)]
                h = f"{a}-{b}-{n}"
                idx.put_result(h, {"width": 100, "height": 100, "model_version": "m", "detector_version": "d",
                                   "n_faces": n, "scored_at": 0.0, **ranking_columns(rows)}, rows)
                idx.put_photo(f"/t/{h}.jpg".encode(), 1, 1, h, 1)
    for e in EXPRESSIONS:
        expected = {f"/t/{a}-{b}-{n}.jpg" for a, b in pairs if a == e for n in (1, 2)}
        assert {r["path"] for r in top(idx, e, 100)} == expected  # precomputed shows_E
        assert {r["path"] for r in top(idx, e, 100, min_confidence=0.2 - 1e-9)} == expected  # SQL over faces
        assert {r["path"] for r in top(idx, e, 100, everyone=True)} == {p for p in expected if p.endswith("-2.jpg")}
