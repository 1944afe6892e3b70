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
    ndjson = "ndjson"
    csv = "csv"


def _detector_names() -> list[str]:
    from albumsort.detectors import names

    return names()


Detector = Enum("Detector", {n.replace("-", "_"): n for n in _detector_names()}, type=str)


class Mode(str, Enum):
    copy = "copy"
    hardlink = "hardlink"
    symlink = "symlink"


MIN_CONF_HELP = "Ignore faces whose confidence (detector score x top emotion probability) is below this."


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from albumsort import __version__

        print(f"albumsort {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    db: Optional[Path] = typer.Option(None, "--db", envvar="ALBUMSORT_DB",
                                      help="Index file (default: per-user data folder)."),
    version: bool = typer.Option(False, "--version", metavar="", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Index photos once, then rank them instantly by emotion."""
    ctx.obj = {"db": db}


def parse_date(text: str, end: bool = False) -> float:
    """YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] as local wall-clock seconds.

    With ``end`` the whole period named is included: ``--until 2024-06`` ends
    at the start of July.
    """
    import calendar
    import datetime

    text = text.strip()
    for fmt, step in (("%Y", "year"), ("%Y-%m", "month"), ("%Y-%m-%d", "day"), ("%Y-%m-%dT%H:%M", "minute"),
                      ("%Y-%m-%d %H:%M", "minute"), ("%Y-%m-%dT%H:%M:%S", "second"),
                      ("%Y-%m-%d %H:%M:%S", "second")):
        try:
            dt = datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if end:
            if step == "year":
                dt = dt.replace(year=dt.year + 1)
            elif step == "month":
                dt = dt.replace(year=dt.year + dt.month // 12, month=dt.month % 12 + 1)
            else:
                dt += {"day": datetime.timedelta(days=1), "minute": datetime.timedelta(minutes=1),
                       "second": datetime.timedelta(seconds=1)}[step]
        return float(calendar.timegm(dt.timetuple()))
    raise typer.BadParameter(f"{text!r} is not a date: use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM")


IN_HELP = "Only photos under this folder (repeatable: any of them)."
SINCE_HELP = "Only photos taken on or after this date (EXIF capture time, else file time): YYYY[-MM[-DD]]."
UNTIL_HELP = "Only photos taken up to the end of this date: YYYY[-MM[-DD]]."
ANY_HELP = "List every photo with a face, ranked by the emotion, not only those that show it."
EVERYONE_HELP = "Is everyone showing it? Photos with 2+ faces, every face showing the emotion, ranked by the least."
ALL_SHOTS_HELP = "List every shot of a burst and every copy, not one per moment."


# The options every ranked list takes (top, export, report): defined once, shared.
ANY_OPT = typer.Option(False, "--any", metavar="", help=ANY_HELP)
EVERYONE_OPT = typer.Option(False, "--everyone", metavar="", help=EVERYONE_HELP)
ALL_SHOTS_OPT = typer.Option(False, "--all-shots", metavar="", help=ALL_SHOTS_HELP)
IN_OPT = typer.Option(None, "--in", metavar="FOLDER", help=IN_HELP)
SINCE_OPT = typer.Option(None, "--since", metavar="DATE", help=SINCE_HELP)
UNTIL_OPT = typer.Option(None, "--until", metavar="DATE", help=UNTIL_HELP)
MIN_FACES_OPT = typer.Option(None, "--min-faces", min=0, help="Only photos with at least N kept faces.")
MAX_FACES_OPT = typer.Option(None, "--max-faces", min=0, help="Only photos with at most N kept faces.")


def filters_from(folders, since, until, min_faces, max_faces):
    from albumsort.index import path_key
    from albumsort.ranking import Filters

    return Filters(folders=[path_key(os.path.abspath(f)) for f in folders or []],
                   since=parse_date(since) if since else None, until=parse_date(until, end=True) if until else None,
                   min_faces=min_faces, max_faces=max_faces)


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
                                          help="Worker processes (default: one per core, fewer when memory is short)."),
    detector: Optional[Detector] = typer.Option(None, help="Face detector: scrfd (default; weights for non-commercial use only) or yunet (licence-clean)."),
    max_pixels: Optional[int] = typer.Option(None, min=1,
                                             help="Refuse images larger than this many pixels (default 150,000,000)."),
    exclude: Optional[List[str]] = typer.Option(
        None, "--exclude", metavar="GLOB",
        help="Skip paths matching this gitignore-style pattern, relative to each PATH (repeatable); "
             "an .albumsortignore file in any folder does the same."),
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
                                max_pixels=max_pixels, progress=progress, on_total=on_total, exclude=exclude)
        except IndexLocked as e:
            fail(str(e), code=3)
        except DetectorUnavailable as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted; whatever was indexed is saved: run the same command again to continue", code=130)
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
    """Data on stdout only; a note for an empty list on stderr."""
    if fmt is Format.json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
    elif fmt is Format.ndjson:
        for it in items:
            print(json.dumps(it, ensure_ascii=False))
    elif fmt is Format.csv:
        w = csv.writer(sys.stdout)
        w.writerow(["rank", "score", "faces", "shots", "path"])
        for i, it in enumerate(items, 1):
            w.writerow([i, f"{it['score']:.4f}", it.get("n_faces", ""), it.get("shots", 1), it["path"]])
    else:
        if not items:
            err.print(f"{title}: no photo shows it (--any lists every photo with a face)")
            return
        if not console.is_terminal:
            # Piped: one line per photo, whole paths, tab-separated, never wrapped.
            for i, it in enumerate(items, 1):
                print(f"{i}\t{it['score']:.3f}\t{it.get('n_faces', '')}\t{it.get('shots', 1)}\t{it['path']}")
            return
        t = Table(title=title)
        t.add_column("rank", justify="right")
        t.add_column("score", justify="right")
        t.add_column("faces", justify="right")
        t.add_column("shots", justify="right")
        t.add_column("path", overflow="fold")
        from rich.text import Text

        for i, it in enumerate(items, 1):
            t.add_row(str(i), f"{it['score']:.3f}", str(it.get("n_faces", "")), str(it.get("shots", 1)),
                      Text(it["path"]))
        console.print(t)


@app.command()
def top(
    ctx: typer.Context,
    emotion: Emotion = typer.Argument(..., help="angry, happy, sad or neutral."),
    n: int = typer.Option(20, "-n", "--number", min=1, help="How many photos."),
    as_json: bool = typer.Option(False, "--json", metavar="", help="Same as --format json."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, json, ndjson or csv."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
    any_: bool = ANY_OPT,
    everyone: bool = EVERYONE_OPT,
    all_shots: bool = ALL_SHOTS_OPT,
    folders: Optional[List[Path]] = IN_OPT,
    since: Optional[str] = SINCE_OPT,
    until: Optional[str] = UNTIL_OPT,
    min_faces: Optional[int] = MIN_FACES_OPT,
    max_faces: Optional[int] = MAX_FACES_OPT,
) -> None:
    """The N photos that best show EMOTION, best first (answers from the index alone).

    Only photos where EMOTION is some face's strongest expression are listed;
    each burst of near-identical shots (and each set of copies) appears once.
    """
    from albumsort.ranking import top as rank

    fmt = Format.json if as_json else fmt
    items = rank(open_index(ctx), emotion.value, n, min_confidence, with_faces=fmt in (Format.json, Format.ndjson),
                 any_=any_, everyone=everyone, all_shots=all_shots,
                 filters=filters_from(folders, since, until, min_faces, max_faces))
    _print_ranked(items, fmt, f"top {len(items)} {emotion.value}")


@app.command()
def nofaces(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", metavar="", help="Print a JSON array of {path}."),
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


def _photo_rows(idx, paths: list[Path]) -> list[dict]:
    """Index rows for photos and folders given on the command line (folders: every indexed photo under them)."""
    from albumsort.index import path_key, path_text

    rows = []
    for p in paths:
        raw = path_key(os.path.abspath(p))  # the index alone answers: the file itself is not opened
        row = idx.photo(raw)
        if row is not None:
            rows.append(row)
            continue
        prefix = raw.rstrip(os.sep.encode()) + os.sep.encode()
        under = idx.query("SELECT * FROM photos WHERE substr(raw, 1, ?) = ? ORDER BY path, raw", [len(prefix), prefix])
        if under:
            rows += under
            continue
        e = idx.error(raw)
        fail(f"{path_text(raw)} failed to index: {e['reason']}" if e else
             f"{path_text(raw)} is not in the index {idx.path}")
    return rows


def _photo_json(idx, row: dict, min_confidence: float) -> dict:
    from albumsort.ranking import face_json

    res = idx.result(row["hash"]) or {}
    faces = [face_json(f) | {"kept": f["confidence"] >= min_confidence} for f in idx.faces(row["hash"])]
    return {"path": row["path"], "width": res.get("width"), "height": res.get("height"),
            "model": res.get("model_version"), "detector": res.get("detector_version"),
            "taken": _when(row.get("taken")), "taken_from": row.get("taken_from"), "faces": faces}


def _when(seconds: float | None) -> str | None:
    import datetime

    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def show(
    ctx: typer.Context,
    photos: List[Path] = typer.Argument(..., help="Indexed photos, or folders (every indexed photo under them)."),
    as_json: bool = typer.Option(False, "--json", metavar="",
                                 help="JSON: one photo's object, or an array for several photos or a folder."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
) -> None:
    """Each face of each PHOTO with its box, probabilities and readability, or "No face"."""
    from rich.markup import escape

    idx = open_index(ctx)
    rows = _photo_rows(idx, photos)
    objs = [_photo_json(idx, r, min_confidence) for r in rows]
    if as_json:
        from albumsort.index import path_key

        one = len(photos) == 1 and idx.photo(path_key(os.path.abspath(photos[0]))) is not None  # a photo, not a folder
        print(json.dumps(objs[0] if one else objs, indent=2, ensure_ascii=False))
        return
    for obj in objs:
        console.print(f"[bold]{escape(obj['path'])}[/bold]  {obj['width']}x{obj['height']}  "
                      f"taken {obj['taken']} ({'EXIF' if obj['taken_from'] == 'exif' else 'file time'})",
                      highlight=False)
        faces = obj["faces"]
        if not any(f["kept"] for f in faces):
            console.print("No face" + (f" (ignored {len(faces)} below confidence {min_confidence})" if faces else ""))
        if not faces:
            continue
        t = Table()
        for c in ("#", "box x,y,w,h", *EMOTIONS, "readable", "confidence", ""):
            t.add_column(c, justify="right")
        for i, f in enumerate(faces, 1):
            top_e = max(f["probabilities"], key=f["probabilities"].get)
            t.add_row(str(i), ",".join(f"{v:.0f}" for v in f["box"]),
                      *[(f"[bold]{f['probabilities'][e]:.2f}[/bold]" if e == top_e else
                         f"{f['probabilities'][e]:.2f}") for e in EMOTIONS],
                      f"{f['readability']:.2f}" if f.get("readability") is not None else "-",
                      f"{f['confidence']:.2f}", "" if f["kept"] else "ignored")
        console.print(t)


@app.command()
def explain(
    ctx: typer.Context,
    photo: Path = typer.Argument(..., help="An indexed photo."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
) -> None:
    """Why PHOTO ranks where it does: every face, whether it was kept, the score's terms, its burst, its ranks."""
    from albumsort.ranking import PRIOR, PRIOR_WEIGHT, burst_members, top, top_emotion

    idx = open_index(ctx)
    (row,) = _photo_rows(idx, [photo])[:1]
    res = idx.result(row["hash"]) or {}
    faces = idx.faces(row["hash"])
    out = [f"{row['path']}  {res.get('width')}x{res.get('height')}  taken {_when(row.get('taken'))} "
           f"({'EXIF' if row.get('taken_from') == 'exif' else 'file time'})",
           f"scored by {res.get('model_version')} + {res.get('detector_version')}", ""]
    kept = []
    for i, f in enumerate(faces, 1):
        probs = ", ".join(f"{e} {f[f'p_{e}']:.2f}" for e in EMOTIONS)
        read = f.get("readability") if f.get("readability") is not None else 1.0
        top_p = max(f[f"p_{e}"] for e in EMOTIONS)
        terms = f"detector {f['det_score']:.2f} x readability {read:.2f} x top emotion {top_p:.2f}"
        ok = f["confidence"] >= min_confidence
        verdict = "kept" if ok else f"ignored: confidence {f['confidence']:.2f} < {min_confidence:.2f}"
        if not ok and read < 0.5:
            verdict += " (the face cannot be read: turned, covered or not a face)"
        out.append(f"face {i}: box {', '.join(f'{v:.0f}' for v in (f['x'], f['y'], f['w'], f['h']))}; {probs}; "
                   f"shows {top_emotion(f)}")
        out.append(f"        confidence {f['confidence']:.2f} = {terms} -> {verdict}")
        if ok:
            kept.append(f)
    if not faces:
        out.append("no face found")
    out.append("")
    total = sum(f["confidence"] for f in kept)
    for e in EMOTIONS:
        if not kept:
            out.append(f"{e}: not ranked (no kept face)")
            continue
        num = sum(f["confidence"] * f[f"p_{e}"] for f in kept)
        score = (num + PRIOR_WEIGHT * PRIOR) / (total + PRIOR_WEIGHT)
        shows = sum(top_emotion(f) == e for f in kept)
        ranked = top(idx, e, 1000, min_confidence, with_faces=False, with_keys=True)
        pos = next((i for i, it in enumerate(ranked, 1) if it["hash"] == row["hash"]), None)
        where = (f"rank {pos}" if pos else "not in the list (its burst is shown by a better shot)" if shows else
                 "not in the list: no kept face shows it (see --any)")
        if shows and pos is None and len(ranked) == 1000:
            where = "rank > 1000"
        out.append(f"{e}: score {score:.3f} = (sum c*p {num:.3f} + {PRIOR_WEIGHT} x {PRIOR}) / "
                   f"(sum c {total:.3f} + {PRIOR_WEIGHT}); {shows} face(s) show it; {where}")
    members = burst_members(idx, {"hash": row["hash"], "taken": row.get("taken"), "taken_from": row.get("taken_from"),
                                  "dhash": res.get("dhash")})
    out.append("")
    out.append(f"moment: {len(members)} shot(s)" + "".join(f"\n  {m['path']}" for m in members))
    for line in out:
        console.print(line, highlight=False, markup=False)


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
    as_json: bool = typer.Option(False, "--json", metavar="", help="Print a JSON array of {path, reason}."),
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
    all_: bool = typer.Option(False, "--all", metavar="", help="Every emotion into DEST/<emotion>/, plus DEST/no-face/."),
    n: int = typer.Option(20, "-n", "--number", min=1, help="How many photos per emotion."),
    mode: Mode = typer.Option(Mode.copy, "--mode", help="copy, hardlink or symlink."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
    any_: bool = ANY_OPT,
    everyone: bool = EVERYONE_OPT,
    all_shots: bool = ALL_SHOTS_OPT,
    folders: Optional[List[Path]] = IN_OPT,
    since: Optional[str] = SINCE_OPT,
    until: Optional[str] = UNTIL_OPT,
    min_faces: Optional[int] = MIN_FACES_OPT,
    max_faces: Optional[int] = MAX_FACES_OPT,
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
    filters = filters_from(folders, since, until, min_faces, max_faces)
    status_code = 0
    for what, dest in jobs:
        if what == "no-face":
            items = [dict(it, score=0.0) for it in no_faces(idx, min_confidence, with_keys=True, filters=filters)[:n]]
        else:
            items = rank(idx, what, n, min_confidence, with_faces=False, with_keys=True, any_=any_,
                         everyone=everyone, all_shots=all_shots, filters=filters)
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
    open_: bool = typer.Option(False, "--open", metavar="", help="Open the report in the default browser."),
    min_confidence: float = typer.Option(0.20, min=0.0, max=1.0, help=MIN_CONF_HELP),
    any_: bool = ANY_OPT,
    everyone: bool = EVERYONE_OPT,
    all_shots: bool = ALL_SHOTS_OPT,
    folders: Optional[List[Path]] = IN_OPT,
    since: Optional[str] = SINCE_OPT,
    until: Optional[str] = UNTIL_OPT,
    min_faces: Optional[int] = MIN_FACES_OPT,
    max_faces: Optional[int] = MAX_FACES_OPT,
) -> None:
    """A self-contained HTML gallery: top-N per emotion with face boxes, no-face photos, summary."""
    from albumsort.report import ForeignPage, build_report

    try:
        res = build_report(open_index(ctx), dest, n, min_confidence, any_=any_, everyone=everyone,
                           all_shots=all_shots, filters=filters_from(folders, since, until, min_faces, max_faces))
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
