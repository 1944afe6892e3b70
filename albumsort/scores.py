"""The one definition of a face's top expression and confidence, and of a photo's score for an expression.

Pure functions of face rows (``p_<expression>``, ``confidence``): the
index precomputes ``ranking_columns`` with them, ``ranking`` orders by
them (its SQL computes the same score for other thresholds), ``explain``
shows their terms.  The rules in words are in ``ranking``'s docstring and
the README.
"""

from __future__ import annotations

from albumsort.labels import EXPRESSIONS

DEFAULT_MIN_CONFIDENCE = 0.20
"""Faces below this confidence are ignored unless a command is given ``--min-confidence``."""
SHOWN_BY = 0.25
"""A photo shows E when E is the top emotion of at least this share of its kept faces (and of one at least)."""
PRIOR_WEIGHT = 0.5
PRIOR = 1.0 / len(EXPRESSIONS)
"""A photo score is shrunk towards this uninformed probability, with this weight (``score_terms``)."""


def face_confidence(det_score: float, probabilities, readability: float = 1.0) -> float:
    """Detector score x readability x the top calibrated expression probability (among all seven)."""
    return float(det_score) * float(readability) * float(max(probabilities))


def p(face: dict, expression: str) -> float:
    """A face's probability of ``expression``; 0 where the model that read it had no such output."""
    return float(face.get(f"p_{expression}") or 0.0)


def photo_scores(faces: list[dict], min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> tuple[dict, int]:
    """({expression: score}, number of kept faces) for faces with ``confidence`` and ``p_<expression>``."""
    kept = kept_faces(faces, min_confidence)
    return {e: score_terms(kept, e)[2] if kept else 0.0 for e in EXPRESSIONS}, len(kept)


def score_terms(kept: list[dict], expression: str) -> tuple[float, float, float]:
    """(sum c*p, sum c, score) of a photo's kept faces for one expression: the one definition of the
    photo score (the SQL in ``_ranked_rows`` computes the same for other thresholds)."""
    num = sum(f["confidence"] * p(f, expression) for f in kept)
    total = sum(f["confidence"] for f in kept)
    return num, total, (num + PRIOR_WEIGHT * PRIOR) / (total + PRIOR_WEIGHT)


def kept_faces(faces: list[dict], min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[dict]:
    return [f for f in faces if f["confidence"] >= min_confidence]


def top_emotion(face: dict) -> str:
    """The face's top expression among all seven: the first in ``EXPRESSIONS`` order on a tie (as in SQL)."""
    return top_expression({e: p(face, e) for e in EXPRESSIONS})


def top_expression(probabilities: dict) -> str:
    """The top of ``{expression: probability}`` (a face's JSON ``probabilities``), ties as ``top_emotion``."""
    return max(EXPRESSIONS, key=lambda e: probabilities.get(e) or 0.0)


def shows_emotion(shows: int, n_kept: int) -> bool:
    """Whether a photo shows E, given how many of its ``n_kept`` kept faces have E as their top emotion."""
    return shows > 0 and shows >= SHOWN_BY * n_kept


def ranking_columns(faces: list[dict]) -> dict:
    """The precomputed columns ``top`` orders and filters by at the default threshold."""
    scores, n_kept = photo_scores(faces)
    kept = kept_faces(faces)
    tops = [top_emotion(f) for f in kept]
    return {**{f"score_{e}": scores[e] for e in EXPRESSIONS}, "n_kept": n_kept,
            **{f"best_{e}": max((p(f, e) for f in kept), default=0.0) for e in EXPRESSIONS},
            **{f"shows_{e}": tops.count(e) for e in EXPRESSIONS}}
