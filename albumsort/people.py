"""Persons in the index: faces grouped by who they are, named and merged by the user, forgotten on request.

``albumsort.embeddings`` holds the network and the grouping rule, free of
the index; this module keeps their results in it:

* every face with an embedding (``faces.embedding``, float32 bytes; the
  pipeline gives none to a face too small, blurred or turned away to
  identify) gets a person id (``faces.person``) at the end of each ``index``
  run: new faces join existing persons or make new ones
  (``embeddings.cluster_faces``), and faces that have a person keep it, so
  ids and names stay stable across reruns;
* a face re-detected in a re-scored photo (a new emotion model) keeps its
  person by its box (IoU >= 0.5), like a correction does;
* a new face-recognition model re-embeds every face (it is part of the
  detector version, so every photo is read again) and the faces are grouped
  again from scratch, each new group keeping the id most of its faces had
  (``embeddings.carry_over``);
* ``persons`` holds an id (never reused: AUTOINCREMENT) and the user's name;
  ``merge`` moves one person's faces to another, ``forget`` deletes every
  embedding and person and turns people off for this index until ``index
  --people``.

Embeddings are biometric data: they are written to the index file only,
never exported, reported or printed.
"""

from __future__ import annotations

import time

from albumsort.wording import plural

MATCH_IOU = 0.5
"""A re-detected face keeps the person of the old face its box overlaps at least this much."""

MIN_PHOTOS = 2
"""``albumsort people`` lists persons seen in at least this many photos (``--all``: every one): a stranger
in one crowd photo is a person of one photo."""

OFF = "off"


class PersonError(ValueError):
    """A person that cannot be found or changed: one line for the user."""


def create_table(conn) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS persons (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, at REAL)")


def has_people(index) -> bool:
    """Whether the file has the person column (an index opened read-only before it existed has not)."""
    if "has_people" not in index.__dict__:
        index.__dict__["has_people"] = index.has_column("faces", "person")
    return index.__dict__["has_people"]


def enabled(index) -> bool:
    """People are on unless ``people forget`` turned them off for this index."""
    return index.meta("people") != OFF


def carry(index, content_hash: str, faces: list[dict]) -> None:
    """Give each new face row of ``content_hash`` that has an embedding the person of the stored face its
    box overlaps most (IoU >= ``MATCH_IOU``), before the stored faces are replaced."""
    from albumsort.faces import iou

    if not has_people(index):
        return
    old = index.query("SELECT x, y, w, h, person FROM faces WHERE hash = ? AND person IS NOT NULL", [content_hash])
    if not old:
        return
    for f in faces:
        if f.get("embedding") is None:
            continue
        box = (f["x"], f["y"], f["w"], f["h"])
        best, best_iou = None, MATCH_IOU
        for o in old:
            v = iou(box, (o["x"], o["y"], o["w"], o["h"]))
            if v >= best_iou:
                best, best_iou = o["person"], v
        f["person"] = best


def assign(index, version: str) -> int:
    """Give every face with an embedding a person; returns how many persons were made.

    ``version``: the face-recognition model's version (``embeddings.model_version``).  Only faces embedded
    by it take part (a run interrupted during a model change leaves others, which keep their person).  When
    the index last grouped with another version, every face is grouped again and ids carry over.  Call
    inside a transaction.
    """
    import numpy as np

    from albumsort.embeddings import carry_over, cluster_faces, from_bytes

    tag = f"%+{version}"
    rows = index.conn.execute(
        "SELECT f.id, f.hash, f.embedding, f.person FROM faces f JOIN results r ON r.hash = f.hash "
        "WHERE f.embedding IS NOT NULL AND r.detector_version LIKE ? ORDER BY f.hash, f.idx", [tag]).fetchall()
    before = index.meta("embedder_version")
    index.db["meta"].upsert({"key": "embedder_version", "value": version}, pk="key")
    if not rows:
        return 0
    ids = [r[0] for r in rows]
    photos = [r[1] for r in rows]
    vectors = from_bytes([r[2] for r in rows])
    old = np.array([-1 if r[3] is None else r[3] for r in rows], np.int64)
    if before is not None and before != version:
        labels = carry_over(old, cluster_faces(vectors, photos))
    elif (old >= 0).all():
        return 0
    else:
        labels = cluster_faces(vectors, photos, old)
    known = {r[0] for r in index.conn.execute("SELECT id FROM persons")}
    fresh: dict[int, int] = {}
    for lab in sorted(set(labels.tolist()) - known):
        fresh[lab] = int(index.conn.execute("INSERT INTO persons (name, at) VALUES (NULL, ?)",
                                            [time.time()]).lastrowid)
    final = [fresh.get(int(lab), int(lab)) for lab in labels]
    index.conn.executemany("UPDATE faces SET person = ? WHERE id = ?",
                           [(lab, i) for lab, i, o in zip(final, ids, old.tolist(), strict=True) if lab != o])
    drop_empty(index)
    return len(fresh)


def drop_empty(index) -> None:
    """Persons no face points to any more (their photos were deleted, or they were merged away)."""
    index.conn.execute("DELETE FROM persons WHERE id NOT IN (SELECT person FROM faces WHERE person IS NOT NULL)")


def listing(index, min_photos: int = MIN_PHOTOS, persons: list[int] | None = None) -> list[dict]:
    """Persons with at least ``min_photos`` photos, most photos first: id, name, faces, photos (their paths,
    best-identified face first) and sample (the photo of their best-identified face)."""
    if not has_people(index):
        return []
    where = f" AND f.person IN ({','.join('?' * len(persons))})" if persons else ""
    rows = index.query(
        "SELECT f.person, pe.name, f.hash, f.embedding_norm, p.path FROM faces f "
        "JOIN persons pe ON pe.id = f.person JOIN photos p ON p.hash = f.hash "
        f"WHERE f.person IS NOT NULL{where} ORDER BY f.person, f.embedding_norm DESC, p.path", persons or [])
    out: dict[int, dict] = {}
    for r in rows:
        d = out.setdefault(r["person"], {"person": r["person"], "name": r["name"], "hashes": set(), "photos": []})
        d["hashes"].add(r["hash"])
        if r["path"] not in d["photos"]:
            d["photos"].append(r["path"])
    result = []
    for d in out.values():
        if len(d["photos"]) < min_photos and not persons:
            continue
        faces = index.conn.execute("SELECT count(*) FROM faces WHERE person = ?", [d["person"]]).fetchone()[0]
        result.append({"person": d["person"], "name": d["name"], "faces": faces, "photos": d["photos"],
                       "sample": d["photos"][0]})
    result.sort(key=lambda d: (-len(d["photos"]), d["person"]))
    return result


def resolve(index, given: str) -> int:
    """A person id from a name (exact, then ignoring case) or a number; PersonError when none is known."""
    if not has_people(index):
        raise PersonError(f"the index {index.path} has no people yet: run `albumsort index` first")
    rows = index.query("SELECT id FROM persons WHERE name = ?", [given])
    if not rows:
        rows = index.query("SELECT id FROM persons WHERE lower(name) = lower(?)", [given])
    if len(rows) == 1:
        return int(rows[0]["id"])
    if len(rows) > 1:
        raise PersonError(f"{len(rows)} persons are named {given!r}: give the id (see `albumsort people`)")
    if given.isdigit() and index.query("SELECT 1 FROM persons WHERE id = ?", [int(given)]):
        return int(given)
    raise PersonError(f"no person {given!r} in the index {index.path} (see `albumsort people`)")


def name(index, person: int, new_name: str) -> None:
    new_name = new_name.strip()
    if not new_name or new_name.isdigit():
        raise PersonError("a name needs a letter (a number would read as a person id)")
    index.conn.execute("UPDATE persons SET name = ?, at = ? WHERE id = ?", [new_name, time.time(), person])


def merge(index, keep: int, other: int) -> int:
    """Move every face of ``other`` to ``keep`` (which takes ``other``'s name if it has none); returns the
    faces moved.  Refused when the two share a photo: two faces of one photo are never one person."""
    if keep == other:
        raise PersonError("a person cannot be merged with itself")
    shared = index.conn.execute(
        "SELECT count(DISTINCT a.hash) FROM faces a JOIN faces b ON a.hash = b.hash "
        "WHERE a.person = ? AND b.person = ?", [keep, other]).fetchone()[0]
    if shared:
        raise PersonError(f"persons {keep} and {other} are both in {plural(shared, 'photo')}: two faces of one photo "
                          "are never one person")
    index.conn.execute("UPDATE persons SET name = (SELECT name FROM persons WHERE id = ?) WHERE id = ? AND name "
                       "IS NULL", [other, keep])
    moved = index.conn.execute("UPDATE faces SET person = ? WHERE person = ?", [keep, other]).rowcount
    index.conn.execute("DELETE FROM persons WHERE id = ?", [other])
    return moved


def forget(index) -> tuple[int, int]:
    """Delete every embedding and person and turn people off for this index; returns (embeddings, persons)."""
    if not has_people(index):
        return 0, 0
    index.conn.execute("PRAGMA secure_delete = ON")  # the freed bytes are overwritten, not left in the file
    n = index.conn.execute("UPDATE faces SET embedding = NULL, embedding_norm = NULL, person = NULL "
                           "WHERE embedding IS NOT NULL OR person IS NOT NULL").rowcount
    k = index.conn.execute("DELETE FROM persons").rowcount
    index.db["meta"].upsert({"key": "people", "value": OFF}, pk="key")
    index.conn.execute("DELETE FROM meta WHERE key = 'embedder_version'")
    return n, k


def turn_on(index) -> None:
    index.conn.execute("DELETE FROM meta WHERE key = 'people'")



def names(index) -> dict[int, str | None]:
    """Every person's name (None: not named yet), by id."""
    if not has_people(index):
        return {}
    return {r[0]: r[1] for r in index.conn.execute("SELECT id, name FROM persons")}


def label(person: int | None, known: dict) -> str:
    """How a face's person is printed: the name, else ``#id``; "" for a face in no group."""
    if person is None:
        return ""
    return known.get(person) or f"#{person}"


def photos_of(index, persons: list[int]) -> set[str]:
    """Content hashes of the photos with a face of every one of ``persons``."""
    if not persons or not has_people(index):
        return set()
    marks = ",".join("?" * len(persons))
    rows = index.conn.execute(f"SELECT hash FROM faces WHERE person IN ({marks}) GROUP BY hash "
                              "HAVING count(DISTINCT person) = ?", [*persons, len(set(persons))]).fetchall()
    return {r[0] for r in rows}
