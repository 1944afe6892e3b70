"""How faces become photo scores, and the ranked queries that read them.

The rules (also in the README):

* A face's **confidence** is ``detector score x readability x top calibrated
  emotion probability``: how sure we are that this is a face, that its
  expression can be read at all (not a mask, sunglasses, a turned head, a
  dog or a galaxy), and which expression it is.  Faces below ``min_confidence`` (default 0.20) are ignored;
  a photo with no face left is "No face".
* A photo's **score for emotion E** is a confidence-weighted mean of its
  faces' P(E), shrunk towards the uninformed 0.25 by a prior weight of 0.5::

      score_E = (sum_i c_i * p_i(E) + 0.5 * 0.25) / (sum_i c_i + 0.5)

  so a group where everyone smiles outranks one smile among frowns (the mean
  is high), and several confident smiling faces outrank a single one (more
  evidence, less shrinkage).  Scores stay in 0..1.
* **Ties** break by more kept faces, then by the best single face's P(E),
  then by path, so the order is stable across runs.

Nothing here imports TensorFlow: ``top`` reads the index alone.
"""

from __future__ import annotations

from albumsort.index import Index
from albumsort.labels import EMOTIONS

DEFAULT_MIN_CONFIDENCE = 0.20
PRIOR_WEIGHT = 0.5
PRIOR = 1.0 / len(EMOTIONS)


def face_confidence(det_score: float, probabilities, readability: float = 1.0) -> float:
    """Detector score x readability x the top calibrated emotion probability."""
    return float(det_score) * float(readability) * float(max(probabilities))


def photo_scores(faces: list[dict], min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> tuple[dict, int]:
    """({emotion: score}, number of kept faces) for faces with ``confidence`` and ``p_<emotion>``."""
    kept = kept_faces(faces, min_confidence)
    total = sum(f["confidence"] for f in kept)
    scores = {}
    for e in EMOTIONS:
        num = sum(f["confidence"] * f[f"p_{e}"] for f in kept)
        scores[e] = (num + PRIOR_WEIGHT * PRIOR) / (total + PRIOR_WEIGHT) if kept else 0.0
    return scores, len(kept)


def kept_faces(faces: list[dict], min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[dict]:
    return [f for f in faces if f["confidence"] >= min_confidence]


def ranking_columns(faces: list[dict]) -> dict:
    """The precomputed columns ``top`` orders by at the default threshold."""
    scores, n_kept = photo_scores(faces)
    kept = kept_faces(faces)
    return {**{f"score_{e}": scores[e] for e in EMOTIONS}, "n_kept": n_kept,
            **{f"best_{e}": max((f[f"p_{e}"] for f in kept), default=0.0) for e in EMOTIONS}}


def _check(emotion: str) -> None:
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}: choose one of {', '.join(EMOTIONS)}")


def top(index: Index, emotion: str, n: int = 20, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        with_faces: bool = True, with_keys: bool = False) -> list[dict]:
    """The ``n`` photos that best show ``emotion``, best first, in the stable JSON shape.

    ``with_keys`` adds each photo's ``raw`` path bytes and content ``hash``
    (not JSON): for export and report, which open the files.

    At the default threshold the precomputed, indexed ``score_<emotion>``
    column answers directly; any other threshold aggregates the faces table.
    """
    _check(emotion)
    if abs(min_confidence - DEFAULT_MIN_CONFIDENCE) < 1e-12:
        sql = f"""
            SELECT p.path, p.raw, r.hash, r.score_{emotion} AS score, r.n_kept AS n_faces
            FROM results r INDEXED BY results_rank_{emotion} JOIN photos p ON p.hash = r.hash
            WHERE r.n_kept > 0
            ORDER BY r.score_{emotion} DESC, r.n_kept DESC, r.best_{emotion} DESC, p.path, p.raw
            LIMIT ?"""
        params = [n]
    else:
        sql = f"""
            WITH s AS (
                SELECT hash, (sum(confidence * p_{emotion}) + ?) / (sum(confidence) + ?) AS score,
                       count(*) AS n_faces, max(p_{emotion}) AS best
                FROM faces WHERE confidence >= ? GROUP BY hash)
            SELECT p.path, p.raw, s.hash, s.score, s.n_faces, s.best
            FROM s JOIN photos p ON p.hash = s.hash
            ORDER BY s.score DESC, s.n_faces DESC, s.best DESC, p.path, p.raw
            LIMIT ?"""
        params = [PRIOR_WEIGHT * PRIOR, PRIOR_WEIGHT, min_confidence, n]
    rows = list(index.query(sql, params))
    out = []
    for r in rows:
        item = {"path": r["path"], "score": round(float(r["score"]), 6), "n_faces": r["n_faces"]}
        if with_keys:
            item |= {"raw": r["raw"], "hash": r["hash"]}
        if with_faces:
            item["faces"] = [face_json(f) for f in index.faces(r["hash"]) if f["confidence"] >= min_confidence]
        out.append(item)
    return out


def no_faces(index: Index, min_confidence: float = DEFAULT_MIN_CONFIDENCE, with_keys: bool = False) -> list[dict]:
    """Photos with no face at or above ``min_confidence``, by path (``with_keys``: also raw and hash)."""
    sql = """
        SELECT p.path, p.raw, p.hash FROM photos p
        WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.hash = p.hash AND f.confidence >= ?)
        ORDER BY p.path, p.raw"""
    rows = index.query(sql, [min_confidence])
    return rows if with_keys else [{"path": r["path"]} for r in rows]


def face_json(f: dict) -> dict:
    """One face in the stable JSON shape of ``top --json`` and ``show --json``."""
    import json

    return {
        "box": [round(f["x"], 1), round(f["y"], 1), round(f["w"], 1), round(f["h"], 1)],
        "probabilities": {e: round(float(f[f"p_{e}"]), 4) for e in EMOTIONS},
        "readability": round(float(f["readability"]), 4) if f.get("readability") is not None else None,
        "confidence": round(float(f["confidence"]), 4),
        "detector_score": round(float(f["det_score"]), 4),
        "landmarks": json.loads(f["landmarks"]) if f.get("landmarks") else None,
    }
