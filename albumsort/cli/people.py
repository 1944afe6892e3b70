"""``albumsort people``: list, name, merge and forget the persons faces are grouped into."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from albumsort.cli.base import (
    AlbumCommand,
    app,
    console,
    fail,
    locked_change,
    note,
    open_index,
)
from albumsort.cli.options import (
    FORMAT_OPT,
    pick_format,
)
from albumsort.cli.output import Column, Format, emit
from albumsort.wording import plural

people_app = typer.Typer(
    cls=TyperGroup, invoke_without_command=True, no_args_is_help=False, rich_markup_mode="rich",
    help="Who is in your photos: faces grouped into people, offline, kept in the index alone.")
app.add_typer(people_app, name="people")
PEOPLE_COLUMNS = [Column("person", lambda r, i: r["person"]), Column("name", lambda r, i: r["name"] or "",
                                                                     justify="left"),
                  Column("faces", lambda r, i: r["faces"]), Column("photos", lambda r, i: len(r["photos"])),
                  Column("sample", lambda r, i: r["sample"], justify="left")]





@people_app.callback()
def people(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", metavar="",
                                 help='A JSON array of {"person", "name", "faces", "photos": [paths], "sample"}.'),
    fmt: Format | None = FORMAT_OPT,
    all_: bool = typer.Option(False, "--all", metavar="", help="Also people seen in one photo only."),
    persons: list[str] | None = typer.Option(None, "--person", metavar="NAME_OR_ID", show_default="everyone",
                                                help="Only this person (repeatable)."),
) -> None:
    """The people in the index, most photographed first: `albumsort people name ID NAME` names one.

    Faces are grouped by a face-recognition network when `albumsort index`
    runs; a face too small, blurred or turned away to identify is in no
    group.  What is stored is a list of 128 numbers per face, in the index
    file only: `albumsort people forget` deletes them all.
    """
    if ctx.invoked_subcommand is not None:
        return
    from albumsort.people import MIN_PHOTOS, PersonError, has_people, listing, resolve

    fmt = pick_format(as_json, fmt)
    idx = open_index(ctx)
    try:
        ids = [resolve(idx, given) for given in persons or []]
    except PersonError as e:
        fail(str(e))
    rows = listing(idx, 1 if all_ else MIN_PHOTOS, ids or None)
    emit(rows, fmt, PEOPLE_COLUMNS, f"{plural(len(rows), 'person')}")
    if not rows and fmt == Format.table:
        if not has_people(idx) or idx.meta("people") == "off":
            note("no people: run `albumsort index PHOTOS`" + (" --people" if idx.meta("people") == "off" else ""))
        elif not all_:
            note(f"nobody is in {MIN_PHOTOS} photos or more yet (--all lists everyone)")


@people_app.command("name", cls=AlbumCommand)
def people_name(
    ctx: typer.Context,
    person: str = typer.Argument(..., metavar="ID", show_default=False, help="A person's id or current name."),
    name: str = typer.Argument(..., metavar="NAME", show_default=False, help="The name to give."),
) -> None:
    """Name a person (or rename one); lists take --person NAME from then on."""
    from albumsort.people import name as set_name
    from albumsort.people import resolve

    def change(idx):
        pid = resolve(idx, person)
        set_name(idx, pid, name)
        return pid

    pid = locked_change(ctx, change)
    console.print(f"person {pid}: {name.strip()}", highlight=False, markup=False)


@people_app.command("merge", cls=AlbumCommand)
def people_merge(
    ctx: typer.Context,
    keep: str = typer.Argument(..., metavar="A", show_default=False, help="The person to keep (id or name)."),
    other: str = typer.Argument(..., metavar="B", show_default=False, help="The same person, grouped apart."),
) -> None:
    """Make B's faces A's: one person that was grouped as two.  Later runs keep them together."""
    from albumsort.people import merge, resolve

    def change(idx):
        a, b = resolve(idx, keep), resolve(idx, other)
        return a, b, merge(idx, a, b)

    a, b, moved = locked_change(ctx, change)
    console.print(f"person {b} merged into person {a} ({plural(moved, 'face')} moved)", highlight=False,
                  markup=False)


@people_app.command("forget", cls=AlbumCommand)
def people_forget(ctx: typer.Context) -> None:
    """Delete every face embedding and person (and their names) from the index, and stop recognising people
    in it; `albumsort index PHOTOS --people` starts again."""
    from albumsort.people import forget as forget_people

    n, k = locked_change(ctx, forget_people)
    note(f"deleted {plural(n, 'face embedding')} and {plural(k, 'person')}; people stay off for this index "
         "until `albumsort index PHOTOS --people`")
