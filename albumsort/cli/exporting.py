"""``errors``, ``export``, ``tag`` and ``report``: the lists written out, and what failed to index."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import Enum
from functools import partial
from pathlib import Path

import typer

from albumsort.cli.base import (
    ExitStatus,
    UsageLine,
    cannot_write,
    command,
    console,
    err,
    fail,
    note,
    open_index,
)
from albumsort.cli.options import (
    ALL_SHOTS_OPT,
    ANY_OPT,
    EVERYONE_OPT,
    IN_OPT,
    MAX_FACES_OPT,
    MIN_CONF_OPT,
    MIN_FACES_OPT,
    PERSON_OPT,
    SINCE_OPT,
    UNTIL_OPT,
    emotion_name,
    list_query,
    n_opt,
)
from albumsort.cli.photos import photo_rows
from albumsort.labels import EMOTIONS, EXPRESSIONS
from albumsort.wording import plural


class Mode(str, Enum):
    copy = "copy"
    hardlink = "hardlink"
    symlink = "symlink"




@command()
def errors(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", metavar="", help="Print a JSON array of {path, reason}."),
) -> None:
    """Files and folders that could not be indexed, with the reason."""
    rows = open_index(ctx).failures()
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        console.print(f"{r['path']}: {r['reason']}", highlight=False, markup=False)
    if not rows:
        note("no failures")


@command()
def export(
    ctx: typer.Context,
    what: str | None = typer.Argument(None, metavar="EMOTION", show_default=False,
                                         help="angry, happy, sad or neutral, or surprise, fear, disgust "
                                              "(with --all: DEST)."),
    dest: Path | None = typer.Argument(None, metavar="DEST", show_default=False,
                                          help="The folder to write into."),
    all_: bool = typer.Option(False, "--all", metavar="",
                              help="The four emotions into DEST/<emotion>/, plus DEST/no-face/: export --all DEST."),
    all_expressions: bool = typer.Option(False, "--all-expressions", metavar="",
                                         help="With --all: also surprise, fear and disgust."),
    n: int = n_opt("How many photos per emotion."),
    mode: Mode = typer.Option(Mode.copy, "--mode", metavar="MODE", help="copy, hardlink or symlink."),
    xmp: bool = typer.Option(False, "--xmp", metavar="",
                             help="Beside each exported photo, an XMP sidecar (001_IMG.jpg.xmp) with the keyword "
                                  "albumsort|<emotion>, for digiKam, darktable, Immich and Lightroom."),
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
    """Write the ranked photos into DEST as 001_<name>, 002_<name>, ... with a manifest; reruns update it.

    With --xmp each exported photo gets an XMP sidecar with its keyword; a
    rerun removes the sidecars of photos that left DEST.

    Exit status 0 when every photo is in place (files kept aside are
    reported, not failures), 1 when a photo could not be written.
    """
    from albumsort.export import export_ranked
    from albumsort.ranking import no_faces

    if what is None:
        raise UsageLine("export --all needs DEST: albumsort export --all DEST" if all_ else
                        "export needs EMOTION and DEST: albumsort export EMOTION DEST (or export --all DEST)")
    if all_:
        if dest is not None:
            raise UsageLine("export --all takes only DEST: albumsort export --all DEST")
        root = Path(what)
        jobs = [(e, root / e) for e in (EXPRESSIONS if all_expressions else EMOTIONS)]
        if not persons:  # a person's photos are never no-face photos
            jobs.append(("no-face", root / "no-face"))
    else:
        if dest is None:
            raise UsageLine("export needs EMOTION and DEST: albumsort export EMOTION DEST (or export --all DEST)")
        jobs = [(emotion_name(what), dest)]
    q = list_query(n, min_confidence, any_, everyone, all_shots, folders, since, until, min_faces, max_faces,
                    persons)
    idx = open_index(ctx)
    q.check(idx)
    status_code: int = ExitStatus.OK
    for kind, target in jobs:
        if kind == "no-face":
            found = [dict(it, score=0.0) for it in no_faces(idx, min_confidence, with_keys=True, filters=q.filters)]
            items, gone = _on_disk(found, n)
        else:
            items, gone = _ranked_on_disk(partial(q.ranked, idx, kind, with_keys=True), n)
        for path in gone[:20]:
            note(f"skipped: {path}: missing on disk (deleted, or on a drive not plugged in); "
                 "`albumsort forget PATH` drops it from the index")
        if len(gone) > 20:
            note(f"... and {plural(len(gone) - 20, 'more photo')} missing on disk")
        try:
            res = export_ranked(items, target, mode.value)
        except OSError as e:
            fail(cannot_write(target, e), code=ExitStatus.FAILED)
        aside = f", {len(res.set_aside)} set aside" if res.set_aside else ""
        console.print(f"{kind}: {res.written + res.kept} of {plural(len(items), 'photo')} in {target} "
                      f"({res.written} written, "
                      f"{res.kept} up to date, {res.removed} removed{aside})", highlight=False, markup=False)
        for s in res.notes:
            note(f"note: {s}")
        for s in res.failed:
            err.print(f"failed: {s}", highlight=False, markup=False)
            status_code = ExitStatus.FAILED
        if xmp or os.path.isdir(target):
            status_code = max(status_code, _export_sidecars(target, kind, xmp))
    raise typer.Exit(int(status_code))


def _export_sidecars(target: Path, kind: str, write: bool) -> int:
    """Bring the XMP sidecars in an export folder up to date (``sidecars.sync_export``); the exit status."""
    from albumsort.sidecars import sync_export

    res = sync_export(target, kind, write)
    if write:
        console.print(f"{kind}: XMP sidecars in {target} ({res.written} written, {res.kept} up to date, "
                      f"{res.removed} removed, {len(res.skipped)} skipped)", highlight=False, markup=False)
    elif res.removed:
        note(f"{kind}: {plural(res.removed, 'XMP sidecar')} of photos no longer in {target} removed")
    return _sidecar_notes(res)


def _sidecar_notes(res) -> int:
    for s in res.skipped:
        note(f"skipped: {s}")
    for s in res.failed:
        err.print(f"failed: {s}", highlight=False, markup=False)
    return ExitStatus.FAILED if res.failed else ExitStatus.OK


@command()
def tag(
    ctx: typer.Context,
    photos: list[Path] = typer.Argument(..., metavar="PHOTO...", show_default=False,
                                        help="Indexed photos, or folders (every indexed photo under them)."),
    beside_originals: bool = typer.Option(False, "--beside-originals", metavar="",
                                          help="Write the sidecars beside your original photos (required)."),
) -> None:
    """XMP sidecars beside your original photos, with the keywords albumsort|<emotion> other tools read.

    Each photo gets IMG.jpg.xmp with every emotion it shows (the lists it is
    in), or albumsort|no face.  Only where the photo has no sidecar yet
    (IMG.jpg.xmp or IMG.xmp): an existing one is never changed, and each is
    reported as skipped.  No photo is changed.  Exit status 1 when a
    sidecar could not be written.
    """
    from albumsort.ranking import shows_emotion
    from albumsort.sidecars import SidecarResult, tags_for, write_beside

    if not beside_originals:
        raise UsageLine("tag writes beside your original photos only when asked: add --beside-originals "
                        "(export --xmp tags exported copies instead)")
    idx = open_index(ctx)
    rows, failed = photo_rows(idx, photos)
    result = SidecarResult()
    gone = 0
    for row in rows:
        res = idx.result(row["hash"]) or {}
        kinds = [e for e in EXPRESSIONS
                 if res.get("n_kept") and shows_emotion(res.get(f"shows_{e}") or 0, res["n_kept"])]
        if _missing(row):
            gone += 1
            note(f"skipped: {row['path']}: missing on disk")
            continue
        write_beside(row["raw"], tags_for(kinds or ["no-face"]), result)
    console.print(f"tag: XMP sidecars for {plural(len(rows), 'photo')} ({result.written} written, {result.kept} "
                  f"up to date, {len(result.skipped) + gone} skipped)", highlight=False, markup=False)
    raise typer.Exit(int(_sidecar_notes(result)))


def _missing(item: dict) -> bool:
    """Whether an indexed photo's file is gone (its folder too, perhaps); an unreadable one is not missing."""
    import errno

    try:
        os.stat(os.fsdecode(item["raw"]) if item.get("raw") else item["path"])
    except OSError as e:
        return e.errno in (errno.ENOENT, errno.ENOTDIR)
    return False


def _on_disk(items: list[dict], n: int) -> tuple[list[dict], list[str]]:
    """The first ``n`` items whose file is on disk, and the paths of the missing ones met on the way."""
    present: list[dict] = []
    gone: list[str] = []
    for it in items:
        if len(present) >= n:
            break
        (gone.append(it["path"]) if _missing(it) else present.append(it))
    return present, gone


def _ranked_on_disk(fetch: Callable[[int], list[dict]], n: int) -> tuple[list[dict], list[str]]:
    """``n`` ranked photos on disk: ``fetch(k)`` gives the first k of the list; while some are missing, twice
    as many are asked for, so an unplugged folder neither shortens the export nor makes it slow."""
    want = n
    while True:
        got = fetch(want)
        present, gone = _on_disk(got, n)
        if len(present) >= n or len(got) < want:
            return present, gone
        want = max(2 * want, len(got) + n - len(present))


@command()
def report(
    ctx: typer.Context,
    dest: Path = typer.Argument(..., metavar="DEST", show_default=False,
                                help="Folder to write index.html and thumbs/ into."),
    n: int = n_opt("Photos per emotion (and no-face photos shown)."),
    open_: bool = typer.Option(False, "--open", metavar="", help="Open the report in the default browser."),
    all_expressions: bool = typer.Option(False, "--all-expressions", metavar="",
                                         help="Also sections for surprise, fear and disgust."),
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
    """A self-contained HTML gallery: top-N per emotion with face boxes, no-face photos and why, summary."""
    from albumsort.report import ForeignPage, build_report

    q = list_query(n, min_confidence, any_, everyone, all_shots, folders, since, until, min_faces, max_faces,
                    persons)
    idx = open_index(ctx)
    q.check(idx)
    try:
        res = build_report(idx, dest, n, min_confidence, any_=any_, everyone=everyone,
                           all_shots=all_shots, filters=q.filters,
                           expressions=EXPRESSIONS if all_expressions else EMOTIONS)

    except ForeignPage as e:
        fail(str(e), code=ExitStatus.FAILED)
    except OSError as e:
        fail(cannot_write(dest, e), code=ExitStatus.FAILED)
    console.print(f"report: {res.path} ({plural(res.photos, 'photo')}; {plural(res.thumbs_made, 'thumbnail')} "
                  f"made, {res.thumbs_reused:,} reused)", highlight=False, markup=False)
    for reason in res.thumb_failures:
        err.print(f"thumbnail failed: {reason}", highlight=False, markup=False)
    if open_:
        import webbrowser

        webbrowser.open(res.path.resolve().as_uri())
