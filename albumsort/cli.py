"""The ``albumsort`` command: a thin Typer layer over the library modules.

Read-only commands (top, nofaces, show, status, errors, export) touch only
the SQLite index; none of them imports TensorFlow or loads a model.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from albumsort.labels import EMOTIONS

app = typer.Typer(
    help="Sort a photo album by the emotions on people's faces (angry, happy, sad, neutral).",
    rich_markup_mode="rich", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]})
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Emotion(str, Enum):
    angry = "angry"
    happy = "happy"
    sad = "sad"
    neutral = "neutral"


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Detector(str, Enum):
    yunet = "yunet"
    mtcnn = "mtcnn"


class Mode(str, Enum):
    copy = "copy"
    hardlink = "hardlink"
    symlink = "symlink"


MIN_CONF_HELP = "Ignore faces whose confidence (detector score x top emotion probability) is below this."


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@app.callback()
def main(
    ctx: typer.Context,
    db: Optional[Path] = typer.Option(None, "--db", envvar="ALBUMSORT_DB",
                                      help="Index file (default: per-user data folder)."),
) -> None:
    """Index photos once, then rank them instantly by emotion."""
    ctx.obj = {"db": db}


def open_index(ctx: typer.Context, create: bool = False):
    """The index: read-only unless ``create`` (only ``index`` writes to it)."""
    import sqlite3

    from albumsort.index import DamagedIndex, Index, NotAnIndex, damaged_message, default_db_path

    path = ctx.obj["db"] or default_db_path()
    try:
        return Index(path, create=create)
    except (FileNotFoundError, NotAnIndex, DamagedIndex) as e:
        fail(str(e))
    except sqlite3.DatabaseError as e:
        fail(damaged_message(Path(path), e))
    except OSError as e:  # an unreadable file or folder
        fail(f"cannot open the index {path}: {e.strerror or e}")


@app.command()
def index(
    ctx: typer.Context,
    paths: List[Path] = typer.Argument(..., help="Photo folders (searched recursively) or files."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1,
                                          help="Worker processes (default: all cores)."),
    detector: Optional[Detector] = typer.Option(None, help="Face detector (default: the best installed)."),
    max_pixels: Optional[int] = typer.Option(None, min=1,
                                             help="Refuse images larger than this many pixels (default 150,000,000)."),
) -> None:
    """Find and score every face under PATHS; reruns only look at what changed.

    Exit status: 0 when every file was read (files that failed on an earlier
    run and have not changed are only counted), 1 when a file failed on this
    run, 3 when another `index` holds the index, 130 on Ctrl-C.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from albumsort.faces import DetectorUnavailable
    from albumsort.indexer import IndexLocked, run_index

    for p in paths:
        if not os.path.lexists(p):
            fail(f"no such file or folder: {p}")
    idx = open_index(ctx, create=True)
    columns = [TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} photos/s"), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:
        task = bar.add_task("index", total=None, rate="-")
        start = {}

        def on_total(n: int) -> None:
            import time

            start["t"] = time.time()
            bar.update(task, total=n)

        def progress(done: int, total: int) -> None:
            import time

            rate = done / max(time.time() - start.get("t", time.time()), 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f}")

        try:
            summary = run_index([str(p) for p in paths], idx, workers=workers,
                                detector_name=detector.value if detector else None,
                                max_pixels=max_pixels, progress=progress, on_total=on_total)
        except IndexLocked as e:
            fail(str(e), code=3)
        except DetectorUnavailable as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted before any photo was read; nothing changed", code=130)
        except Exception as e:  # a missing detector wheel, a full disk, a foreign database...
            fail(f"index stopped: {type(e).__name__}: {e}", code=4)
    from rich.markup import escape

    for path, reason in summary.failures[:20]:
        err.print(f"[yellow]failed:[/yellow] {escape(path)}: {escape(reason)}", highlight=False)
    if len(summary.failures) > 20:
        err.print(f"... and {len(summary.failures) - 20} more: see `albumsort errors`")
    console.print(summary.line(), highlight=False)
    if summary.interrupted:
        err.print("interrupted: the work done so far is saved; run the same command again to continue")
        raise typer.Exit(130)
    if summary.failed:
        raise typer.Exit(1)


def _print_ranked(items: list[dict], fmt: Format, title: str) -> None:
    if fmt is Format.json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
    elif fmt is Format.csv:
        w = csv.writer(sys.stdout)
        w.writerow(["rank", "score", "faces", "path"])
        for i, it in enumerate(items, 1):
            w.writerow([i, f"{it['score']:.4f}", it.get("n_faces", ""), it["path"]])
    else:
        if not items:
            err.print("nothing to show: index photos first, or lower --min-confidence")
            return
        t = Table(title=title)
        t.add_column("rank", justify="right")
        t.add_column("score", justify="right")
        t.add_column("faces", justify="right")
        t.add_column("path", overflow="fold")
        from rich.text import Text

        for i, it in enumerate(items, 1):
            t.add_row(str(i), f"{it['score']:.3f}", str(it.get("n_faces", "")), Text(it["path"]))
        console.print(t)


@app.command()
def top(
    ctx: typer.Context,
    emotion: Emotion = typer.Argument(..., help="angry, happy, sad or neutral."),
    n: int = typer.Option(20, "-n", "--number", min=1, help="How many photos."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, json or csv."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
) -> None:
    """The N photos that best show EMOTION, best first (answers from the index alone)."""
    from albumsort.ranking import top as rank

    items = rank(open_index(ctx), emotion.value, n, min_confidence, with_faces=as_json or fmt is Format.json)
    _print_ranked(items, Format.json if as_json else fmt, f"top {len(items)} {emotion.value}")


@app.command()
def nofaces(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of {path}."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
) -> None:
    """Photos with no face at or above the confidence threshold."""
    from albumsort.ranking import no_faces

    items = no_faces(open_index(ctx), min_confidence)
    if as_json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
    else:
        for it in items:
            console.print(it["path"], highlight=False, markup=False)


@app.command()
def show(
    ctx: typer.Context,
    photo: Path = typer.Argument(..., help="A photo that has been indexed."),
    as_json: bool = typer.Option(False, "--json"),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
) -> None:
    """Each face of PHOTO with its box and four probabilities, or "No face"."""
    from albumsort.index import path_key, path_text
    from albumsort.ranking import face_json

    idx = open_index(ctx)
    raw = path_key(os.path.abspath(photo))  # the index alone answers: the file itself is not opened
    key = path_text(raw)
    row = idx.photo(raw)
    if row is None:
        e = idx.error(raw)
        fail(f"{key} failed to index: {e['reason']}" if e else f"{key} is not in the index {idx.path}")
    res = idx.result(row["hash"]) or {}
    faces = [face_json(f) | {"kept": f["confidence"] >= min_confidence} for f in idx.faces(row["hash"])]
    if as_json:
        print(json.dumps({"path": key, "width": res.get("width"), "height": res.get("height"),
                          "model": res.get("model_version"), "detector": res.get("detector_version"),
                          "faces": faces}, indent=2, ensure_ascii=False))
        return
    from rich.markup import escape

    console.print(f"[bold]{escape(key)}[/bold]  {res.get('width')}x{res.get('height')}", highlight=False)
    kept = [f for f in faces if f["kept"]]
    if not kept:
        console.print("No face" + (f" (ignored {len(faces)} below confidence {min_confidence})" if faces else ""))
    t = Table()
    for c in ("#", "box x,y,w,h", *EMOTIONS, "confidence", ""):
        t.add_column(c, justify="right")
    for i, f in enumerate(faces, 1):
        top_e = max(f["probabilities"], key=f["probabilities"].get)
        t.add_row(str(i), ",".join(f"{v:.0f}" for v in f["box"]),
                  *[(f"[bold]{f['probabilities'][e]:.2f}[/bold]" if e == top_e else f"{f['probabilities'][e]:.2f}")
                    for e in EMOTIONS],
                  f"{f['confidence']:.2f}", "" if f["kept"] else "ignored")
    if faces:
        console.print(t)


@app.command()
def status(ctx: typer.Context) -> None:
    """What the index holds: photos, faces, failures, models, last run."""
    from albumsort.ranking import DEFAULT_MIN_CONFIDENCE

    idx = open_index(ctx)
    q = lambda sql, *a: idx.conn.execute(sql, list(a)).fetchone()[0]  # noqa: E731
    t = Table(show_header=False, box=None)
    from rich.text import Text

    t.add_row("index", Text(str(idx.path)))
    t.add_row("photos", f"{q('SELECT count(*) FROM photos'):,}")
    t.add_row("faces", f"{q('SELECT count(*) FROM faces'):,} "
              f"({q('SELECT count(*) FROM faces WHERE confidence >= ?', DEFAULT_MIN_CONFIDENCE):,} "
              f"at confidence >= {DEFAULT_MIN_CONFIDENCE})")
    t.add_row("no-face photos", f"{q('SELECT count(*) FROM photos p WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.hash = p.hash AND f.confidence >= ?)', DEFAULT_MIN_CONFIDENCE):,}")  # noqa: E501
    for e in EMOTIONS:
        t.add_row(f"top emotion {e}", f"{q(f'SELECT count(*) FROM results WHERE n_kept > 0 AND score_{e} = max(score_angry, score_happy, score_sad, score_neutral)'):,}")  # noqa: E501
    t.add_row("failed files", f"{q('SELECT count(*) FROM errors'):,}")
    for r in idx.query("SELECT model_version, detector_version, count(*) AS n FROM results "
                          "GROUP BY 1, 2 ORDER BY n DESC"):
        t.add_row("scored by", f"{r['model_version']} + {r['detector_version']} ({r['n']:,} photos)")
    last = list(idx.query("SELECT * FROM runs ORDER BY id DESC LIMIT 1"))
    if last:
        import datetime

        when = datetime.datetime.fromtimestamp(last[0]["started"]).strftime("%Y-%m-%d %H:%M")
        from albumsort.index import run_in_progress

        if last[0]["summary"]:
            what = last[0]["summary"]
        elif run_in_progress(idx.path):
            what = "running now"
        else:
            what = "did not finish (interrupted); run `albumsort index` again to continue"
        t.add_row("last run", f"{when}: {what}")
    console.print(t, highlight=False)


@app.command()
def errors(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Files and folders that could not be indexed, with the reason."""
    rows = list(open_index(ctx).query("SELECT path, reason FROM errors ORDER BY path, raw"))
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        console.print(f"{r['path']}: {r['reason']}", highlight=False, markup=False)
    if not rows:
        err.print("no failures")


@app.command()
def export(
    ctx: typer.Context,
    args: List[str] = typer.Argument(..., metavar="EMOTION DEST | --all DEST",
                                     help="An emotion and a destination folder (or just DEST with --all)."),
    all_: bool = typer.Option(False, "--all", help="Every emotion into DEST/<emotion>/, plus DEST/no-face/."),
    n: int = typer.Option(20, "-n", "--number", min=1, help="How many photos per emotion."),
    mode: Mode = typer.Option(Mode.copy, "--mode", help="copy, hardlink or symlink."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
) -> None:
    """Write the ranked photos as 001_<name>, 002_<name>, ... with a manifest; reruns update it."""
    from albumsort.export import export_ranked
    from albumsort.ranking import no_faces
    from albumsort.ranking import top as rank

    if all_:
        if len(args) != 1:
            fail("usage: albumsort export --all DEST")
        dest = Path(args[0])
        jobs = [(e, dest / e) for e in EMOTIONS] + [("no-face", dest / "no-face")]
    else:
        if len(args) != 2 or args[0] not in EMOTIONS:
            fail(f"usage: albumsort export EMOTION DEST, with EMOTION one of {', '.join(EMOTIONS)}")
        jobs = [(args[0], Path(args[1]))]
    idx = open_index(ctx)
    status_code = 0
    for what, dest in jobs:
        if what == "no-face":
            items = [dict(it, score=0.0) for it in no_faces(idx, min_confidence, with_keys=True)[:n]]
        else:
            items = rank(idx, what, n, min_confidence, with_faces=False, with_keys=True)
        try:
            res = export_ranked(items, dest, mode.value)
        except OSError as e:
            fail(f"cannot export to {dest}: {e.strerror or e}")
        console.print(f"{what}: {res.written + res.kept} of {len(items)} photos in {dest} ({res.written} written, "
                      f"{res.kept} up to date, {res.removed} removed)", highlight=False, markup=False)
        for s in res.skipped:
            err.print(f"skipped: {s}", highlight=False, markup=False)
            status_code = 1
        for s in res.failed:
            err.print(f"failed: {s}", highlight=False, markup=False)
            status_code = 1
    raise typer.Exit(status_code)


@app.command()
def report(
    ctx: typer.Context,
    dest: Path = typer.Argument(..., help="Folder to write index.html and thumbs/ into."),
    n: int = typer.Option(20, "-n", "--number", min=1, help="Photos per emotion."),
    open_: bool = typer.Option(False, "--open", help="Open the report in the default browser."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
) -> None:
    """A self-contained HTML gallery: top-N per emotion with face boxes, no-face photos, summary."""
    from albumsort.report import ForeignPage, build_report

    try:
        res = build_report(open_index(ctx), dest, n, min_confidence)
    except ForeignPage as e:
        fail(str(e), code=1)
    except OSError as e:
        fail(f"cannot write the report to {dest}: {e}")
    console.print(f"report: {res.path} ({res.photos} photos; {res.thumbs_made} thumbnails made, "
                  f"{res.thumbs_reused} reused)", highlight=False, markup=False)
    for reason in res.thumb_failures:
        err.print(f"thumbnail failed: {reason}", highlight=False, markup=False)
    if open_:
        import webbrowser

        webbrowser.open(res.path.resolve().as_uri())


def run() -> None:
    """Console-script entry point: a damaged index is one line, not a traceback."""
    import sqlite3

    try:
        app()
    except sqlite3.DatabaseError as e:
        from albumsort.index import damaged_message, default_db_path

        db = os.environ.get("ALBUMSORT_DB") or default_db_path()
        if "--db" in sys.argv[:-1]:
            db = sys.argv[sys.argv.index("--db") + 1]
        err.print(f"[red]error:[/red] {damaged_message(Path(db), e)}", highlight=False)
        sys.exit(2)
