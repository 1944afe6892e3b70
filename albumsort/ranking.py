"""How faces become photo scores, and the ranked queries that read them.

The rules (also in the README):

* The model reads seven expressions (``EXPRESSIONS``: angry, happy, sad,
  neutral, surprise, fear, disgust); each probability is among all seven.
  A face's **top expression** is the most probable of the seven (the first
  in ``EXPRESSIONS`` order on a tie): a surprised face is in no list of the
  four, only in ``top surprise``.
* A face's **confidence** is ``detector score x readability x top calibrated
  expression probability``: how sure we are that this is a face, that its
  expression can be read at all (not a mask, sunglasses, a turned head, a
  dog or a galaxy), and which expression it is.  Faces below ``min_confidence`` (default 0.20) are ignored;
  a photo with no face left is "No face".
* A photo's **score for expression E** is a confidence-weighted mean of its
  faces' P(E), shrunk towards the uninformed 1/7 by a prior weight of 0.5::

      score_E = (sum_i c_i * p_i(E) + 0.5 / 7) / (sum_i c_i + 0.5)

  so a group where everyone smiles outranks one smile among frowns (the mean
  is high), and several confident smiling faces outrank a single one (more
  evidence, less shrinkage).  Scores stay in 0..1.
* **Ties** break by more kept faces, then by the best single face's P(E),
  then by path, so the order is stable across runs.
* **A list holds only photos that show its expression**: E is the top
  expression of at least one kept face and, in a group, of at least a
  quarter of its kept faces (``SHOWN_BY``): one sad face among four people
  makes a sad photo, seven among a crowd of 119 smiling people do not
  (``--any`` lifts this).  With ``everyone`` the photo needs two or more
  kept faces, every one of them showing E, and ranks by its least-E face.
* **Shots of one moment count once**: copies of one file, and photos taken
  within ``BURST_SECONDS`` of each other whose perceptual hashes differ in
  at most ``BURST_BITS`` of 64 bits, form a group; a list shows each
  group's best photo once, with the number of shots it stands for.
* **A person's list** (``--person``, ``Filters.persons``) holds photos with a
  kept face of every chosen person, each of those faces showing E (unless
  ``--any``), ranked by the least-E of them: the happiest photos *of
  Grandma*, not photos where others smile beside her.

Nothing here imports a network runtime: ``top`` reads the index alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from albumsort.labels import EXPRESSIONS
from albumsort.scores import (
    DEFAULT_MIN_CONFIDENCE,
    PRIOR,
    PRIOR_WEIGHT,
    SHOWN_BY,
    p,
    score_terms,
    shows_emotion,
    top_emotion,
)
from albumsort.store import Index, under_sql

UNREADABLE = 0.5
"""Faces whose readability is below this cannot be read: masked, turned away, covered, or not a face."""
NO_FACE_REASONS = ("no face found", "faces too small to read", "faces not readable (masked, turned away)",
                   "faces below the confidence threshold")
"""Why a photo is "No face"."""
SMALL_FACE_PX = 32
"""An unreadable face shorter than this, in the photo's pixels, counts as too small to read (a crowd's faces),
not as masked or turned away: the detection benchmarks count faces from 32 px as the ones to find, and under
it readability falls off (23% of 16-20 px faces are readable, about half at 20-24 px: benchmarks/README.md)."""
BURST_SECONDS = 10.0
"""Photos taken further apart than this are never one burst."""
BURST_BITS = 10
"""Largest difference, in bits of the 64-bit difference hash, between shots of one burst."""


@dataclass
class Filters:
    """Which photos a list may hold; every field combines with the others (AND)."""

    folders: list[bytes] = field(default_factory=list)  # raw path prefixes: any of them
    since: float | None = None  # capture time, local wall clock seconds (see images.exif_time)
    until: float | None = None  # exclusive
    min_faces: int | None = None
    max_faces: int | None = None
    persons: list[int] = field(default_factory=list)
    """Person ids (``albumsort.people``): a list holds photos with a kept face of each, ranked by theirs."""

    def sql(self, photo: str = "p", n_faces: str = "r.n_kept") -> tuple[str, list]:
        where, params = [], []
        if self.folders:
            ors = []
            for f in self.folders:
                cond, args = under_sql(f, f"{photo}.raw", itself=False)
                ors.append(cond)
                params += args
            where.append("(" + " OR ".join(ors) + ")")
        if self.since is not None:
            where.append(f"{photo}.taken >= ?")
            params.append(self.since)
        if self.until is not None:
            where.append(f"{photo}.taken < ?")
            params.append(self.until)
        if self.min_faces is not None:
            where.append(f"{n_faces} >= ?")
            params.append(self.min_faces)
        if self.max_faces is not None:
            where.append(f"{n_faces} <= ?")
            params.append(self.max_faces)
        return "".join(f" AND {w}" for w in where), params


def _shows_sql(shows: str, n_kept: str) -> str:
    return f"{shows} > 0 AND {shows} >= {SHOWN_BY!r} * {n_kept}"


def no_face_reason(faces: list[dict], min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                   n_small: int | None = 0) -> str | None:
    """Why a photo is "No face" (one of NO_FACE_REASONS), or None when it has a kept face.

    ``n_small`` is how many faces the detector found but left out as too
    small to read (``results.n_small``; None where not counted, as 0);
    faces that were scored but are unreadable and under ``SMALL_FACE_PX``
    tall count with them.  Small faces decide when there is no other face,
    or when they are at least as many as the other faces found (a crowd);
    otherwise the most confident other face does: not readable, or only
    below the threshold.
    """
    if faces and max(f["confidence"] for f in faces) >= min_confidence:
        return None
    # A face scored but unreadable and under SMALL_FACE_PX tall is a small face, not a masked one: in a
    # crowd most found faces are such, and "masked, turned away" would say the wrong thing.
    tiny = [f for f in faces if _unreadable(f) and f.get("h") is not None and f["h"] < SMALL_FACE_PX]
    small = (n_small or 0) + len(tiny)
    if small and small >= len(faces) - len(tiny):
        return NO_FACE_REASONS[1]
    if not faces:
        return NO_FACE_REASONS[0]
    faces = [f for f in faces if not any(f is t for t in tiny)]
    best = max(faces, key=lambda f: f["confidence"])
    if best.get("readability") is not None and best["readability"] < UNREADABLE:
        return NO_FACE_REASONS[2]
    return NO_FACE_REASONS[3]


def _unreadable(f: dict) -> bool:
    return f.get("readability") is not None and f["readability"] < UNREADABLE


def hamming(a: int | None, b: int | None) -> int:
    if a is None or b is None:
        return 64
    return bin((a ^ b) & 0xFFFFFFFFFFFFFFFF).count("1")


def same_moment(a: dict, b: dict) -> bool:
    """Copies of one file, or near-identical photos taken a few seconds apart."""
    if a["hash"] == b["hash"]:
        return True
    # Only camera capture times: files copied together get mtimes seconds apart.
    if a.get("taken_from") != "exif" or b.get("taken_from") != "exif":
        return False
    if a.get("taken") is None or b.get("taken") is None or abs(a["taken"] - b["taken"]) > BURST_SECONDS:
        return False
    return hamming(a.get("dhash"), b.get("dhash")) <= BURST_BITS


class _Moments:
    """The photos a list has chosen, looked up by content and by capture time, so that whether a row is of
    a moment already shown (``same_moment``) takes a few comparisons however long the list grows."""

    def __init__(self) -> None:
        self.hashes: set = set()
        self.by_time: dict[int, list[dict]] = {}  # camera-timed photos by BURST_SECONDS slot

    def shown(self, r: dict) -> bool:
        if r["hash"] in self.hashes:
            return True
        if r.get("taken_from") != "exif" or r.get("taken") is None:
            return False
        slot = int(r["taken"] // BURST_SECONDS)  # a photo within BURST_SECONDS is in this slot or a neighbour
        return any(same_moment(c, r) for k in (slot - 1, slot, slot + 1) for c in self.by_time.get(k, ()))

    def add(self, r: dict) -> None:
        self.hashes.add(r["hash"])
        if r.get("taken_from") == "exif" and r.get("taken") is not None:
            self.by_time.setdefault(int(r["taken"] // BURST_SECONDS), []).append(
                {k: r.get(k) for k in ("hash", "taken", "taken_from", "dhash")})


def burst_members(index: Index, photo: dict) -> list[dict]:
    """Every indexed photo of ``photo``'s moment (itself included), by path."""
    rows = index.query(
        "SELECT p.path, p.raw, p.hash, p.taken, p.taken_from, r.dhash FROM photos p "
        "JOIN results r ON r.hash = p.hash "
        "WHERE p.hash = ? OR (p.taken BETWEEN ? AND ?) ORDER BY p.path, p.raw",
        [photo["hash"], (photo.get("taken") or 0) - BURST_SECONDS, (photo.get("taken") or 0) + BURST_SECONDS])
    return [r for r in rows if same_moment(photo, r)]


def _check(emotion: str) -> None:
    if emotion not in EXPRESSIONS:
        raise ValueError(f"unknown emotion {emotion!r}: choose one of {', '.join(EXPRESSIONS)}")


def is_top_sql(e: str, expressions: tuple = EXPRESSIONS) -> str:
    """SQL: a face's top expression is ``e`` (``top_emotion``'s rule: ties go to the first in order)."""
    i = expressions.index(e)
    return " AND ".join([f"p_{e} > p_{o}" for o in expressions[:i]] + [f"p_{e} >= p_{o}" for o in expressions[i + 1:]])


def _ranked_rows(index: Index, emotion: str, min_confidence: float, any_: bool, everyone: bool,
                 filters: Filters):
    """A cursor over candidate photos, best first: path, raw, hash, taken, dhash, score, n_faces."""
    e = emotion
    from albumsort.people import has_people

    # An index written before the seven (or before people), not yet re-indexed: nothing shows e (of anyone).
    if e not in index.expressions or (filters.persons and not has_people(index)):
        return index.conn.execute("SELECT NULL AS path, NULL AS raw, NULL AS hash, NULL AS taken, "
                                  "NULL AS taken_from, NULL AS dhash, 0 AS score, 0 AS n_faces WHERE 0")
    is_top = is_top_sql(e, index.expressions)

    if filters.persons:
        where, params = filters.sql()
        where += index.not_hidden_sql("p")
        floor = "" if any_ else " AND s.shows = s.n_faces"
        marks = ",".join("?" * len(filters.persons))
        sql = f"""
            WITH s AS (
                SELECT hash, min(p_{e}) AS score, count(*) AS n_faces, max(p_{e}) AS best,
                       sum(CASE WHEN {is_top} THEN 1 ELSE 0 END) AS shows
                FROM {index.faces_sql()} WHERE confidence >= ? AND person IN ({marks}) GROUP BY hash
                HAVING count(DISTINCT person) = ?)
            SELECT p.path, p.raw, p.hash, p.taken, p.taken_from, r.dhash, s.score, r.n_kept AS n_faces
            FROM s JOIN photos p ON p.hash = s.hash JOIN results r ON r.hash = s.hash
            WHERE 1 {floor}{where}
            ORDER BY s.score DESC, s.n_faces DESC, s.best DESC, p.path, p.raw"""
        persons = sorted(set(filters.persons))
        return index.conn.execute(sql, [min_confidence, *persons, len(persons)] + params)
    if everyone:
        # Rank by the least-E face; every kept face must show E (unless --any).
        where, params = filters.sql(n_faces="s.n_faces")
        where += index.not_hidden_sql("p")
        floor = "" if any_ else " AND s.shows = s.n_faces"
        sql = f"""
            WITH s AS (
                SELECT hash, min(p_{e}) AS score, count(*) AS n_faces, max(p_{e}) AS best,
                       sum(CASE WHEN {is_top} THEN 1 ELSE 0 END) AS shows
                FROM {index.faces_sql()} WHERE confidence >= ? GROUP BY hash HAVING count(*) >= 2)
            SELECT p.path, p.raw, p.hash, p.taken, p.taken_from, r.dhash, s.score, s.n_faces
            FROM s JOIN photos p ON p.hash = s.hash JOIN results r ON r.hash = s.hash
            WHERE 1 {floor}{where}
            ORDER BY s.score DESC, s.n_faces DESC, s.best DESC, p.path, p.raw"""
        return index.conn.execute(sql, [min_confidence] + params)
    if abs(min_confidence - DEFAULT_MIN_CONFIDENCE) < 1e-12:
        where, params = filters.sql()
        where += index.not_hidden_sql("p")
        floor = "" if any_ else f" AND {_shows_sql(f'r.shows_{e}', 'r.n_kept')}"
        sql = f"""
            SELECT p.path, p.raw, r.hash, p.taken, p.taken_from, r.dhash, r.score_{e} AS score,
                   r.n_kept AS n_faces
            FROM results r INDEXED BY results_rank_{e} JOIN photos p ON p.hash = r.hash
            WHERE r.n_kept > 0{floor}{where}
            ORDER BY r.score_{e} DESC, r.n_kept DESC, r.best_{e} DESC, p.path, p.raw"""
        return index.conn.execute(sql, params)
    where, params = filters.sql(n_faces="s.n_faces")
    where += index.not_hidden_sql("p")
    floor = "" if any_ else f" AND {_shows_sql('s.shows', 's.n_faces')}"
    sql = f"""
        WITH s AS (
            SELECT hash, (sum(confidence * p_{e}) + ?) / (sum(confidence) + ?) AS score,
                   count(*) AS n_faces, max(p_{e}) AS best, sum(CASE WHEN {is_top} THEN 1 ELSE 0 END) AS shows
            FROM {index.faces_sql()} WHERE confidence >= ? GROUP BY hash)
        SELECT p.path, p.raw, s.hash, p.taken, p.taken_from, r.dhash, s.score, s.n_faces
        FROM s JOIN photos p ON p.hash = s.hash JOIN results r ON r.hash = s.hash
        WHERE 1 {floor}{where}
        ORDER BY s.score DESC, s.n_faces DESC, s.best DESC, p.path, p.raw"""
    return index.conn.execute(sql, [PRIOR_WEIGHT * PRIOR, PRIOR_WEIGHT, min_confidence] + params)


def top(index: Index, emotion: str, n: int = 20, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        with_faces: bool = True, with_keys: bool = False, any_: bool = False, everyone: bool = False,
        all_shots: bool = False, filters: Filters | None = None) -> list[dict]:
    """The ``n`` photos that best show ``emotion``, best first, in the stable JSON shape.

    Only photos that show ``emotion`` are listed (``any_`` lists every photo
    with a face); each burst or set of copies appears once, as its best shot,
    with ``shots`` saying how many it stands for (``all_shots`` lists them
    all).  At the default threshold the precomputed, indexed columns answer
    and the cursor stops after N groups; other thresholds aggregate faces.
    ``with_keys`` adds each photo's ``raw`` path bytes and content ``hash``
    (not JSON): for export and report, which open the files.
    """
    _check(emotion)
    filters = filters or Filters()
    cursor = _ranked_rows(index, emotion, min_confidence, any_, everyone, filters)
    cursor.row_factory = __import__("sqlite3").Row
    chosen: list[dict] = []
    moments = _Moments()
    for row in cursor:
        r = dict(row)
        if not all_shots and moments.shown(r):
            continue
        chosen.append(r)
        moments.add(r)
        if len(chosen) >= n:
            break
    cursor.close()
    out = []
    for r in chosen:
        item = {"path": r["path"], "score": round(float(r["score"]), 6), "n_faces": r["n_faces"]}
        if not all_shots:
            item["shots"] = len(burst_members(index, r)) or 1
        if with_keys:
            item |= {"raw": r["raw"], "hash": r["hash"]}
        if with_faces:
            item["faces"] = [face_json(f) for f in index.corrected_faces(r["hash"])
                             if f["confidence"] >= min_confidence]
        out.append(item)
    return out


class Ranks:
    """Where photos stand in one emotion's list as ``top`` ranks it (default options), with no limit and no
    query per photo: the list is walked once, only as far as the photos asked about (``explain``)."""

    def __init__(self, index: Index, emotion: str, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 filters: Filters | None = None):
        _check(emotion)
        self._cursor = _ranked_rows(index, emotion, min_confidence, False, False, filters or Filters())
        self._cursor.row_factory = __import__("sqlite3").Row
        self._moments = _Moments()
        self._rank: dict[str, int] = {}  # content hash: rank of the first photo of it the list shows
        self._shown = 0

    def of(self, content_hash: str) -> int | None:
        """The rank of the photo with this content, or None when the list does not show it."""
        while content_hash not in self._rank and self._cursor is not None:
            row = self._cursor.fetchone()
            if row is None:
                self.close()
                break
            r = dict(row)
            if self._moments.shown(r):
                continue
            self._moments.add(r)
            self._shown += 1
            self._rank.setdefault(r["hash"], self._shown)
        return self._rank.get(content_hash)

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None


def no_faces(index: Index, min_confidence: float = DEFAULT_MIN_CONFIDENCE, with_keys: bool = False,
             filters: Filters | None = None) -> list[dict]:
    """Photos with no face at or above ``min_confidence``, each with the reason (see ``no_face_reason``).

    Surest first: photos where no face was found, then the others by their
    best face's confidence, lowest first; then by path.  Items are
    ``{path, reason, n_faces, n_small, confidence}``: faces found, faces too
    small to read (None where not counted), and the best one's confidence
    (None without a face); ``with_keys`` adds raw and hash.
    """
    f = filters or Filters()
    where, params = Filters(f.folders, f.since, f.until).sql()
    where += index.not_hidden_sql("p")
    small = "(SELECT r.n_small FROM results r WHERE r.hash = p.hash)" if index.has_column("results", "n_small") \
        else "NULL"
    sql = f"""
        SELECT p.path, p.raw, p.hash, {small} AS n_small FROM photos p
        WHERE NOT EXISTS (SELECT 1 FROM {index.faces_sql()} f WHERE f.hash = p.hash AND f.confidence >= ?){where}"""
    rows = index.query(sql, [min_confidence] + params)
    faces: dict[str, list] = {}
    hashes = list({r["hash"] for r in rows})
    for i in range(0, len(hashes), 500):
        chunk = hashes[i:i + 500]
        for fr in index.query(f"SELECT hash, w, h, readability, confidence FROM {index.faces_sql()} WHERE hash IN "
                              f"({', '.join('?' * len(chunk))})", chunk):
            faces.setdefault(fr["hash"], []).append(fr)
    out = []
    for r in rows:
        mine = faces.get(r["hash"], [])
        item = {"path": r["path"], "reason": no_face_reason(mine, min_confidence, r["n_small"]),
                "n_faces": len(mine), "n_small": r["n_small"],
                "confidence": round(max(x["confidence"] for x in mine), 4) if mine else None}
        if with_keys:
            item |= {"raw": r["raw"], "hash": r["hash"]}
        out.append(item)
    out.sort(key=lambda it: (it["reason"] != NO_FACE_REASONS[0], it["confidence"] or 0.0, it["path"],
                             it.get("raw", b"")))
    return out


def count_photos(index: Index, filters: Filters | None = None) -> int:
    """How many indexed photos lie in the folders and dates of ``filters`` (face counts aside)."""
    f = filters or Filters()
    where, params = Filters(f.folders, f.since, f.until).sql()
    return index.conn.execute(f"SELECT count(*) FROM photos p WHERE 1{where}", params).fetchone()[0]


def face_json(f: dict) -> dict:
    """One face in the stable JSON shape of ``top --json`` and ``show --json``."""
    import json

    return {
        "box": [round(f["x"], 1), round(f["y"], 1), round(f["w"], 1), round(f["h"], 1)],
        "probabilities": {e: round(p(f, e), 4) for e in EXPRESSIONS},
        "readability": round(float(f["readability"]), 4) if f.get("readability") is not None else None,
        "confidence": round(float(f["confidence"]), 4),
        "detector_score": round(float(f["det_score"]), 4),
        "landmarks": json.loads(f["landmarks"]) if f.get("landmarks") else None,
    } | ({"corrected": f["corrected"]} if f.get("corrected") else {}) | (
        {"person": f["person"]} if f.get("person") is not None else {})


@dataclass
class FaceWhy:
    """One face as ``explain`` tells it: the model's reading, the user's correction, and the confidence terms."""

    number: int
    face: dict  # as the lists read it: the user's correction applied
    model: dict  # as the model read it
    kept: bool
    readability: float
    top_p: float  # the top probability, the last term of the confidence

    @property
    def shows(self) -> str:
        return top_emotion(self.face)

    @property
    def model_shows(self) -> str:
        return top_emotion(self.model)


@dataclass
class ScoreWhy:
    """One expression's photo score with its terms, and where the photo stands in that list."""

    expression: str
    num: float  # sum of confidence x P(E) over kept faces
    total: float  # sum of confidence over kept faces
    score: float
    shows: int  # kept faces whose top expression is E
    rank: int | None
    why_not: str | None  # "persons", "no face shows it", "fewer than a quarter" or "burst" when unranked


@dataclass
class Explanation:
    """Why a photo ranks where it does (``albumsort explain``): data for the CLI to print."""

    row: dict
    result: dict
    hidden: bool
    faces: list[FaceWhy]
    no_face: str | None
    scores: list[ScoreWhy]  # empty when no face is kept
    moment: list[dict]  # the shots of its burst, itself included

    @property
    def kept(self) -> list[dict]:
        return [w.face for w in self.faces if w.kept]


def explain(index: Index, row: dict, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
            ranks: dict | None = None, persons: list[int] | None = None) -> Explanation:
    """Every face of a photo, whether it was kept, each expression's score terms and rank, and its burst.

    ``ranks`` (expression: ``Ranks``) is filled and reused across the photos explained in one command;
    the caller closes them.
    """
    ranks = {} if ranks is None else ranks
    res = index.result(row["hash"]) or {}
    model_faces = index.faces(row["hash"])
    faces = index.corrected_faces(row["hash"], model_faces)
    why = []
    for i, (m, f) in enumerate(zip(model_faces, faces, strict=True), 1):
        read = f.get("readability")
        why.append(FaceWhy(i, f, m, f["confidence"] >= min_confidence, 1.0 if read is None else float(read),
                           max(p(f, e) for e in EXPRESSIONS)))
    kept = [w.face for w in why if w.kept]
    scores = []
    for e in EXPRESSIONS if kept else ():
        num, total, score = score_terms(kept, e)
        shows = sum(top_emotion(f) == e for f in kept)
        if e not in ranks:
            ranks[e] = Ranks(index, e, min_confidence, Filters(persons=list(persons or [])))
        rank = ranks[e].of(row["hash"])
        why_not = None
        if not rank:
            why_not = ("persons" if persons else "no face shows it" if not shows else
                       "fewer than a quarter" if not shows_emotion(shows, len(kept)) else "burst")
        scores.append(ScoreWhy(e, num, total, score, shows, rank, why_not))
    moment = burst_members(index, {"hash": row["hash"], "taken": row.get("taken"), "taken_from": row.get("taken_from"),
                                   "dhash": res.get("dhash")})
    hidden = any(c["face"] == 0 and c["hidden"] for c in index.corrections(row["hash"]))
    return Explanation(row, res, hidden, why, no_face_reason(faces, min_confidence, res.get("n_small")), scores,
                       moment)
