"""``top`` and ``nofaces``: ranked lists answered from the index alone."""

from __future__ import annotations

from pathlib import Path

import typer

from albumsort.cli.base import (
    command,
    note,
    open_index,
)
from albumsort.cli.options import (
    ALL_SHOTS_OPT,
    ANY_OPT,
    EMOTION_ARG,
    EVERYONE_OPT,
    FORMAT_OPT,
    IN_OPT,
    JSON_OPT,
    MAX_FACES_OPT,
    MIN_CONF_OPT,
    MIN_FACES_OPT,
    PERSON_OPT,
    SINCE_OPT,
    UNTIL_OPT,
    ListQuery,
    list_query,
    n_opt,
    pick_format,
)
from albumsort.cli.output import Column, Format, emit
from albumsort.scores import DEFAULT_MIN_CONFIDENCE

TOP_COLUMNS = [Column("rank", lambda r, i: i), Column("score", lambda r, i: float(r["score"])),
               Column("faces", lambda r, i: r.get("n_faces")), Column("shots", lambda r, i: r.get("shots", 1)),
               Column("path", lambda r, i: r["path"], justify="left")]
NOFACE_COLUMNS = [Column("reason", lambda r, i: r["reason"], justify="left"),
                  Column("faces", lambda r, i: r["n_faces"]),
                  Column("confidence", lambda r, i: r["confidence"], digits=2),
                  Column("path", lambda r, i: r["path"], justify="left")]


def _say_why_short(idx, q: ListQuery, emotion: str, items: list[dict]) -> None:
    """On stderr: why a list is empty, or that it is shorter than asked (stdout holds the list alone)."""
    if items and len(items) >= (q.n or 0):
        return
    gone = q.nothing_indexed(idx)
    if gone:
        note(gone)
        return
    if not items:
        hint = ""
        if not q.ranked(idx, emotion, 1, any_=True, everyone=False):  # no kept face at all
            if abs(q.min_confidence - DEFAULT_MIN_CONFIDENCE) > 1e-12 and (q.everyone or not q.any_):
                hint = f": no face reaches confidence {q.min_confidence:g}"
            if q.min_confidence > 0.9:
                hint += " (confidence tops out near 0.9)"
        elif not q.any_:
            hint = " (--any also lists groups where not everyone does)" if q.everyone else \
                " (--any lists every photo with a face, ranked by it)"
        note(f"no {_list_words(q, emotion, 0)}{hint}")
    else:
        note(f"only {len(items)} {_list_words(q, emotion, len(items))} (-n {q.n})")


def _list_words(q: ListQuery, emotion: str, count: int) -> str:
    """What a list holds, for ``count`` photos: the words of both the empty-list and the short-list note."""
    many = count > 1
    photos = "photos" if many else "photo"
    scope = f"{q.where()}{q.faces()}"
    reach = f"confidence {q.min_confidence:g}"
    if q.everyone and q.any_:
        return f"group {photos}{scope} with 2 or more faces that reach {reach}"
    if q.everyone:
        return f"group {photos}{scope} where everyone shows {emotion}"
    if q.any_:
        return f"{photos}{scope} {'have' if many else 'has'} a face that reaches {reach}"
    return f"{photos}{scope} {'show' if many else 'shows'} {emotion}"


@command()
def top(
    ctx: typer.Context,
    emotion: str = EMOTION_ARG,
    n: int = n_opt("How many photos."),
    as_json: bool = JSON_OPT,
    fmt: Format | None = FORMAT_OPT,
    min_confidence: float = MIN_CONF_OPT,
    any_: bool = ANY_OPT,
    everyone: bool = EVERYONE_OPT,
    all_shots: bool = ALL_SHOTS_OPT,
    folders: list[Path] | None = IN_OPT,
    since: str | None = SINCE_OPT,
    until: str | None = UNTIL_OPT,
    min_faces: int | None = MIN_FACES_OPT,
    max_faces: int | None = MAX_FACES_OPT,
    persons: list[str] | None = PERSON_OPT,
) -> None:
    """The N photos that best show EMOTION, best first (answers from the index alone).

    A photo shows EMOTION when it is the strongest expression of at least
    one kept face, and of at least a quarter of them in a group; each burst
    of near-identical shots (and each set of copies) appears once.
    """
    fmt = pick_format(as_json, fmt)
    q = list_query(n, min_confidence, any_, everyone, all_shots, folders, since, until, min_faces, max_faces,
                    persons)
    idx = open_index(ctx)
    q.check(idx)
    items = q.ranked(idx, emotion, with_faces=fmt in (Format.json, Format.ndjson))
    emit(items, fmt, TOP_COLUMNS, f"top {len(items)} {emotion}")
    _say_why_short(idx, q, emotion, items)  # on stderr in every format: stdout holds the data alone


@command()
def nofaces(
    ctx: typer.Context,
    n: int | None = n_opt("How many photos.", default=None, shown="all"),
    as_json: bool = JSON_OPT,
    fmt: Format | None = FORMAT_OPT,
    min_confidence: float = MIN_CONF_OPT,
    folders: list[Path] | None = IN_OPT,
    since: str | None = SINCE_OPT,
    until: str | None = UNTIL_OPT,
) -> None:
    """Photos with no face at or above the confidence threshold, and why.

    Why: no face found; faces too small to read; faces not readable (masked,
    turned away); faces below the confidence threshold.  Surest first: no
    face found, then by the best face's confidence, lowest first.
    """
    from albumsort.ranking import no_faces

    fmt = pick_format(as_json, fmt)
    q = list_query(n, min_confidence, folders=folders, since=since, until=until)
    idx = open_index(ctx)
    q.check(idx)
    items = no_faces(idx, min_confidence, filters=q.filters)[:n]
    emit(items, fmt, NOFACE_COLUMNS, "no face")
    if not items:
        note(q.nothing_indexed(idx) or f"every photo{q.where()} has a face at confidence >= {min_confidence:g}")
