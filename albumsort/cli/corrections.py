"""The user's corrections (``set``, ``unset``, ``hide``, ``unhide``, ``corrections``) and ``forget``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from albumsort.cli.base import (
    command,
    console,
    fail,
    locked_change,
    note,
    open_index,
    writable_index,
)
from albumsort.cli.options import (
    emotion_name,
)
from albumsort.wording import plural


def _target(idx, given: str):
    from albumsort.corrections import CorrectionError, parse_target

    try:
        return parse_target(idx, given)
    except CorrectionError as e:
        fail(str(e))


@command(name="set")
def set_(
    ctx: typer.Context,
    photo: str = typer.Argument(..., metavar="PHOTO[#N]", show_default=False,
                                help="An indexed photo, or its Nth face as `show` numbers them: IMG.jpg#2."),
    emotion: str = typer.Argument(..., metavar="EMOTION", show_default=False,
                                  help="What it shows: angry, happy, sad, neutral, surprise, fear or disgust."),
) -> None:
    """Record what a photo (every face of it) or one face shows; lists read it before the model's reading.

    Kept in the index by content: it survives reruns, model upgrades and moves.
    `albumsort unset` removes it, `albumsort corrections` lists them.
    """
    from albumsort.corrections import CorrectionError, set_expression

    e = emotion_name(emotion)
    idx = writable_index(ctx)
    t = _target(idx, photo)
    try:
        set_expression(idx, t, e)
    except CorrectionError as err:
        fail(str(err))
    which = f"face {t.face} of " if t.face else ""
    console.print(f"{which}{t.row['path']}: {e} (set by you)", highlight=False, markup=False)


@command()
def unset(
    ctx: typer.Context,
    photo: str = typer.Argument(..., metavar="PHOTO[#N]", show_default=False,
                                help="An indexed photo, or its Nth face: IMG.jpg#2."),
) -> None:
    """Remove what `albumsort set` recorded for a photo or a face: the model's reading counts again."""
    from albumsort.corrections import set_expression

    idx = writable_index(ctx)
    t = _target(idx, photo)
    had = any(c["face"] == t.face and c["expression"] for c in idx.corrections(t.row["hash"]))
    set_expression(idx, t, None)
    which = f"face {t.face} of " if t.face else ""
    console.print(f"{which}{t.row['path']}: " + ("the model's reading counts again" if had else "had no correction"),
                  highlight=False, markup=False)


def _hide(ctx: typer.Context, photos: list[str], hidden: bool) -> None:
    """``hide`` and ``unhide``: one line per photo."""
    from albumsort.corrections import set_hidden

    idx = writable_index(ctx)
    for given in photos:
        t = _target(idx, given)
        set_hidden(idx, t, hidden)
        console.print(f"{t.row['path']}: " + ("hidden from every list" if hidden else "back in the lists"),
                      highlight=False, markup=False)


@command()
def hide(
    ctx: typer.Context,
    photos: list[str] = typer.Argument(..., metavar="PHOTO...", show_default=False, help="Indexed photos."),
) -> None:
    """Keep photos out of every list (top, export, report, nofaces); `albumsort unhide` lets them back."""
    _hide(ctx, photos, True)


@command()
def unhide(
    ctx: typer.Context,
    photos: list[str] = typer.Argument(..., metavar="PHOTO...", show_default=False, help="Indexed photos."),
) -> None:
    """Let photos hidden by `albumsort hide` back into the lists."""
    _hide(ctx, photos, False)


@command()
def corrections(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", metavar="",
                                 help="A JSON array of {paths, face, expression, hidden, at}."),
) -> None:
    """Every correction you made (set, hide), oldest first, with the photos that hold it."""
    from albumsort.corrections import listing

    rows = listing(open_index(ctx))
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        what = ", ".join(x for x in (f"shows {r['expression']}" if r["expression"] else "",
                                     "hidden" if r["hidden"] else "") if x)
        where = " | ".join(r["paths"]) or "(no indexed photo holds this content now)"
        face = f"#{r['face']}" if r["face"] else ""
        wait = f" (waiting: {r['waiting']})" if r.get("waiting") else ""
        console.print(f"{where}{face}: {what}{wait}", highlight=False, markup=False)
    if not rows:
        note("no corrections (albumsort set PHOTO EMOTION, albumsort hide PHOTO)")


@command()
def forget(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., metavar="PATH...", show_default=False,
                                       help="Photos or folders, which need not exist any more."),
) -> None:
    """Drop from the index the photos and failures at or under each PATH: a deleted, renamed or unplugged folder.

    Only the index changes: no file is touched.  A PATH that still exists is
    indexed again by the next `albumsort index` of a folder above it (use
    --exclude or an .albumsortignore to keep it out).  Exit status 2, with
    nothing dropped, when a PATH holds nothing indexed; 3 when an `index`
    run holds the index.
    """

    from albumsort.files import path_key

    raws = [(p, path_key(os.path.abspath(p))) for p in paths]
    idx = open_index(ctx)  # read-only first: nothing is created or changed when there is nothing to forget
    for p, raw in raws:
        if not any(idx.held_under(raw)):
            fail(f"nothing indexed at or under {p}: nothing was forgotten (see `albumsort status`)")
    idx.close()
    done = locked_change(ctx, lambda idx: [(p, *idx.forget(raw)) for p, raw in raws])
    for p, photos, failures in done:
        there = "on disk" if os.path.lexists(p) else "gone from disk"
        note(f"forgot {plural(photos, 'photo')} and {plural(failures, 'failure')} under {p} ({there}; "
             "no file was touched)")
