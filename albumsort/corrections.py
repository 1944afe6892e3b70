"""What the user says a photo or a face shows, kept in the index and read by ranking before the model.

A model will always misread some faces.  ``albumsort set PHOTO EMOTION``
(or ``PHOTO#2`` for its second face, numbered as ``show`` numbers them)
records what the user sees; ``albumsort hide PHOTO`` keeps a photo out of
every list.  Corrections are rows of the index's ``corrections`` table keyed
by the photo's *content* hash, like results: they survive reruns, model and
detector upgrades, moves and renames, and a copy of the photo carries them.

* A corrected face reads its expression with probability 1 and readability
  1, so its confidence is its detector score; ranking, ``status``, the
  report and export all read faces through ``Index.faces_sql`` /
  ``Index.corrected_faces``, which apply this.  The ``faces`` table keeps
  the model's own values, which ``show`` and ``explain`` print beside the
  user's.
* A whole-photo correction (face 0) applies to every face of the photo; a
  face's own correction wins over it.
* A face correction records the face's box: after a detector change the
  correction follows the new detection that overlaps it best (IoU >= 0.5),
  and waits, unapplied, while none does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from albumsort.labels import EXPRESSIONS

MATCH_IOU = 0.5
"""A face correction follows the new detection overlapping its recorded box at least this much."""


def apply(faces: list[dict], corrections: list[dict]) -> list[dict]:
    """``faces`` (rows of the faces table) with ``corrections`` (rows of one content) applied."""
    photo = next((c for c in corrections if c["face"] == 0 and c["expression"]), None)
    own = {c["face_idx"]: c for c in corrections if c["face"] > 0 and c["expression"] and c["face_idx"] is not None}
    out = []
    for f in faces:
        c = own.get(f["idx"]) or photo
        if c is None:
            out.append(f)
            continue
        e = c["expression"]
        out.append({**f, **{f"p_{x}": float(x == e) for x in EXPRESSIONS}, "readability": 1.0,
                    "confidence": float(f["det_score"]), "corrected": e})
    return out


def match(correction: dict, faces: list[dict]) -> int | None:
    """The ``idx`` of the face in ``faces`` overlapping the correction's recorded box most (IoU >= 0.5)."""
    from albumsort.faces import iou

    box = tuple(correction[k] for k in ("x", "y", "w", "h"))
    if any(v is None for v in box):
        return None
    best, best_iou = None, MATCH_IOU
    for f in faces:
        o = iou(box, (f["x"], f["y"], f["w"], f["h"]))
        if o >= best_iou:
            best, best_iou = f["idx"], o
    return best


class CorrectionError(ValueError):
    """A correction that cannot be made (an unknown face number...): one line for the user."""


@dataclass
class Target:
    """A photo given on the command line, and which face of it (0: the whole photo)."""

    row: dict
    face: int = 0


def parse_target(index, given: str) -> Target:
    """``PHOTO`` or ``PHOTO#N`` as an indexed photo and a face number.

    A path that is itself indexed wins, so a file whose name ends in ``#2`` is that file.
    """
    import re

    from albumsort.files import path_key, path_text

    raw = path_key(os.path.abspath(given))
    row = index.photo(raw)
    if row is not None:
        return Target(row)
    m = re.fullmatch(r"(.+)#(\d+)", given)
    if m:
        row = index.photo(path_key(os.path.abspath(m.group(1))))
        if row is not None:
            return Target(row, int(m.group(2)))
    raise CorrectionError(f"{path_text(raw)} is not in the index {index.path}")


def set_expression(index, target: Target, expression: str | None) -> dict:
    """Record (or with ``expression`` None, remove) what ``target`` shows; returns the stored row or {}."""
    h, n = target.row["hash"], target.face
    faces = index.faces(h)
    if n > len(faces):
        raise CorrectionError(f"{target.row['path']} has {len(faces)} face{'s' if len(faces) != 1 else ''} "
                              f"(see albumsort show); there is no face {n}")
    if n == 0 and not faces and expression:
        raise CorrectionError(f"no face was found in {target.row['path']}: albumsort set corrects faces the "
                              "detector found (albumsort hide keeps the photo out of every list)")
    with index.transaction():
        old = next((c for c in index.corrections(h) if c["face"] == n), None)
        if expression is None:
            if old is not None and not old["hidden"]:
                index.conn.execute("DELETE FROM corrections WHERE hash = ? AND face = ?", [h, n])
            elif old is not None:
                index.conn.execute("UPDATE corrections SET expression = NULL WHERE hash = ? AND face = ?", [h, n])
            row = {}
        else:
            f = faces[n - 1] if n else None
            row = {"hash": h, "face": n, "face_idx": f["idx"] if f else None,
                   "x": f["x"] if f else None, "y": f["y"] if f else None, "w": f["w"] if f else None,
                   "h": f["h"] if f else None, "expression": expression,
                   "hidden": old["hidden"] if old else 0, "at": time.time()}
            index.db["corrections"].upsert(row, pk=("hash", "face"))
        index.rerank(h)
    return row


def set_hidden(index, target: Target, hidden: bool) -> None:
    """Keep the photo of ``target`` out of every list (or let it back in)."""
    h = target.row["hash"]
    with index.transaction():
        old = next((c for c in index.corrections(h) if c["face"] == 0), None)
        if hidden:
            if old is None:
                index.db["corrections"].insert({"hash": h, "face": 0, "hidden": 1, "at": time.time()})
            else:
                index.conn.execute("UPDATE corrections SET hidden = 1 WHERE hash = ? AND face = 0", [h])
        elif old is not None:
            if old["expression"]:
                index.conn.execute("UPDATE corrections SET hidden = 0 WHERE hash = ? AND face = 0", [h])
            else:
                index.conn.execute("DELETE FROM corrections WHERE hash = ? AND face = 0", [h])


def listing(index) -> list[dict]:
    """Every correction with the photos that hold its content: ``[{paths, face, expression, hidden, at}]``."""
    out = []
    for c in index.corrections():
        paths = [r["path"] for r in index.query("SELECT path FROM photos WHERE hash = ? ORDER BY path, raw",
                                                [c["hash"]])]
        item = {"paths": paths, "face": c["face"] or None, "expression": c["expression"], "hidden": bool(c["hidden"]),
                "at": c["at"]}
        if c["face"] and c["expression"] and c["face_idx"] is None:
            item["waiting"] = "no face of the photo overlaps the corrected one since the detector changed"
        out.append(item)
    return out
