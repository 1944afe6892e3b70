"""``show``, ``explain`` and ``status``: what the index holds about photos, faces and runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from albumsort.cli.base import (
    UsageLine,
    command,
    console,
    fail,
    note,
    open_index,
)
from albumsort.cli.options import (
    MIN_CONF_OPT,
    PERSON_OPT,
)
from albumsort.cli.output import Column, Format, emit, pairs
from albumsort.labels import EXPRESSIONS
from albumsort.wording import plural


def person_ids(idx, persons: list[str] | None) -> list[int]:
    """``--person`` values as person ids; a usage error for one the index does not know."""
    from albumsort.people import PersonError, resolve

    try:
        return [resolve(idx, given) for given in persons or []]
    except PersonError as e:
        raise UsageLine(str(e)) from None


def photo_rows(idx, paths: list[Path], persons: list[int] | None = None) -> tuple[list[dict], list[dict]]:
    """Index rows for photos and folders given on the command line, and the failures among them.

    A folder stands for every indexed photo under it, and every file under
    it that failed to index; with ``persons``, only photos with a face of each of them (and no failures).
    The index alone answers: no file is opened.
    """
    from albumsort.files import path_key, path_text

    rows, failed = [], []
    for p in paths:
        raw = path_key(os.path.abspath(p))
        row = idx.photo(raw)
        if row is not None:
            rows.append(row)
            continue
        under, bad = idx.under(raw)
        if under or bad:
            rows += under
            failed += bad
            continue
        e = idx.error(raw)
        fail(f"{path_text(raw)} failed to index: {e['reason']}" if e else
             f"{path_text(raw)} is not in the index {idx.path}")
    if persons:
        from albumsort.people import photos_of

        theirs = photos_of(idx, persons)
        rows, failed = [r for r in rows if r["hash"] in theirs], []
    return rows, failed


def report_failed(failed: list[dict], to_stdout: bool) -> None:
    for f in failed:
        line = f"{f['path']}: failed to index: {f['reason']}"
        if to_stdout:
            console.print(line, highlight=False, markup=False)
        else:
            note(line)


def _photo_json(idx, row: dict, min_confidence: float, known: dict | None = None) -> dict:
    from albumsort.people import names
    from albumsort.ranking import face_json, no_face_reason

    known = names(idx) if known is None else known

    res = idx.result(row["hash"]) or {}
    faces = idx.faces(row["hash"])
    read = idx.corrected_faces(row["hash"], faces)  # as ranking reads them: the user's corrections applied
    hidden = any(c["face"] == 0 and c["hidden"] for c in idx.corrections(row["hash"]))
    return {"path": row["path"], "width": res.get("width"), "height": res.get("height"),
            "model": res.get("model_version"), "detector": res.get("detector_version"),
            "taken": _when(row.get("taken")), "taken_from": row.get("taken_from"),
            "no_face": no_face_reason(read, min_confidence, res.get("n_small")), "n_small": res.get("n_small"),
            "truncated": res.get("truncated") is not None,
            "hidden": hidden,
            "faces": [face_json(f) | {"kept": r["confidence"] >= min_confidence}
                      | ({"corrected": r["corrected"]} if r.get("corrected") else {})
                      | ({"person_name": known.get(f["person"])} if f.get("person") is not None else {})
                      for f, r in zip(faces, read, strict=True)]}



def truncated_line(share: float) -> str:
    """What ``show`` and ``explain`` say of a file that ends early and was read as far as it goes."""
    held = f": the file holds about {share:.0%} of the picture" if share < 0.995 else ""
    return (f"truncated{held}; the rest is grey, as a viewer shows it (an interrupted copy? copy the photo "
            "again and rerun `albumsort index`)")


def _when(seconds: float | None) -> str | None:
    import datetime

    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _top_of(f: dict) -> str:
    """The model's top expression, or the user's (``albumsort set``) marked as theirs."""
    if f.get("corrected"):
        return f"{f['corrected']} (set by you)"
    from albumsort.scores import top_expression

    return top_expression(f["probabilities"])


FACE_COLUMNS = [Column("#", lambda f, i: i), Column("box x,y,w,h", lambda f, i: ",".join(f"{v:.0f}" for v in f["box"])),
                *[Column(e, lambda f, i, e=e: f["probabilities"][e], digits=2) for e in EXPRESSIONS],
                Column("top", lambda f, i: _top_of(f), justify="left"),
                Column("readable", lambda f, i: f.get("readability"), digits=2),
                Column("confidence", lambda f, i: f["confidence"], digits=2),
                Column("kept", lambda f, i: "kept" if f["kept"] else "ignored", justify="left"),
                Column("person", lambda f, i: f.get("person_name") or (f"#{f['person']}" if f.get("person") else ""),
                       justify="left")]


@command()
def show(
    ctx: typer.Context,
    photos: list[Path] = typer.Argument(..., metavar="PHOTO...", show_default=False,
                                        help="Indexed photos, or folders (every photo under them)."),
    as_json: bool = typer.Option(False, "--json", metavar="",
                                 help="JSON: one photo's object, or an array for several photos or a folder."),
    min_confidence: float = MIN_CONF_OPT,
    persons: list[str] | None = PERSON_OPT,
) -> None:
    """Each face of each PHOTO with its box, probabilities, readability and person, or "No face" and why.

    A folder lists every indexed photo under it (with --person, those of that
    person), then every file under it that failed to index, with the reason.
    """
    from rich.markup import escape

    from albumsort.people import names

    idx = open_index(ctx)
    rows, failed = photo_rows(idx, photos, person_ids(idx, persons))
    known = names(idx)
    objs = [_photo_json(idx, r, min_confidence, known) for r in rows]
    if as_json:
        from albumsort.files import path_key

        one = len(photos) == 1 and idx.photo(path_key(os.path.abspath(photos[0]))) is not None  # a photo, not a folder
        print(json.dumps(objs[0] if one else objs, indent=2, ensure_ascii=False))
        report_failed(failed, to_stdout=False)
        return
    for row, obj in zip(rows, objs, strict=True):
        console.print(f"[bold]{escape(obj['path'])}[/bold]  {obj['width']}x{obj['height']}  "
                      f"taken {obj['taken']} ({'EXIF' if obj['taken_from'] == 'exif' else 'file time'})",
                      highlight=False)
        if obj["truncated"]:
            console.print(truncated_line(idx.result(row["hash"])["truncated"]), highlight=False, markup=False)
        faces = obj["faces"]
        if obj["hidden"]:
            console.print("hidden: kept out of every list (albumsort unhide to undo)", highlight=False, markup=False)
        if obj["no_face"]:
            ignored = f"; {len(faces)} ignored below confidence {min_confidence:g}" if faces else ""
            small = f" ({obj['n_small']} found)" if obj["n_small"] else ""
            console.print(f"No face: {obj['no_face']}{small}{ignored}", highlight=False, markup=False)
        if faces:
            emit(faces, Format.table, FACE_COLUMNS, header=True)
    report_failed(failed, to_stdout=True)


def _explain_lines(idx, row: dict, min_confidence: float, ranks: dict, persons: list[int] | None = None) -> list[str]:
    """``ranking.explain`` in words."""
    from albumsort.people import label, names
    from albumsort.ranking import UNREADABLE, explain
    from albumsort.scores import PRIOR, PRIOR_WEIGHT, p

    known = names(idx)
    x = explain(idx, row, min_confidence, ranks, persons)
    res = x.result
    out = [f"{row['path']}  {res.get('width')}x{res.get('height')}  taken {_when(row.get('taken'))} "
           f"({'EXIF' if row.get('taken_from') == 'exif' else 'file time'})",
           f"scored by {res.get('model_version')} + {res.get('detector_version')}"]
    if x.hidden:
        out.append("hidden by you: kept out of every list (albumsort unhide to undo)")
    if res.get("truncated") is not None:
        out.append(truncated_line(res["truncated"]))
    out.append("")
    for w in x.faces:
        f, m = w.face, w.model
        probs = ", ".join(f"{e} {p(m, e):.2f}" for e in EXPRESSIONS)
        terms = f"detector {f['det_score']:.2f} x readability {w.readability:.2f} x top expression {w.top_p:.2f}"
        if f.get("corrected"):
            terms = f"detector {f['det_score']:.2f}: you set this face to {f['corrected']} (albumsort set)"
        verdict = "kept" if w.kept else f"ignored: confidence {f['confidence']:.2f} < {min_confidence:.2f}"
        if not w.kept and w.readability < UNREADABLE:
            verdict += " (the face cannot be read: turned, covered or not a face)"
        shows = f"shows {w.shows}" + (f" (set by you; the model read {w.model_shows})" if f.get("corrected") else "")
        who = f"; person {label(m['person'], known)}" if m.get("person") is not None else ""
        out.append(f"face {w.number}: box {', '.join(f'{v:.0f}' for v in (f['x'], f['y'], f['w'], f['h']))}; "
                   f"{probs}; {shows}{who}")
        out.append(f"        confidence {f['confidence']:.2f} = {terms} -> {verdict}")
    if res.get("n_small"):
        out.append(f"{plural(res['n_small'], 'more face')} too small to read: found, not scored")
    if x.no_face:
        out.append(f"No face: {x.no_face}")
    out.append("")
    if not x.scores:
        out += [f"{e}: not ranked (no kept face)" for e in EXPRESSIONS]
    theirs = " of " + " and ".join(label(i, known) for i in persons) if persons else ""
    n_kept = len(x.kept)
    for s in x.scores:
        where = {None: f"rank {s.rank}" + (f" in the list{theirs}" if persons else ""),
                 "persons": f"not in the list{theirs}: not every one of their kept faces shows it (see --any)",
                 "no face shows it": "not in the list: no kept face shows it (see --any)",
                 "fewer than a quarter": f"not in the list: {s.shows} of {n_kept} kept faces show it, fewer than a "
                                         "quarter (see --any)",
                 "burst": "not in the list (its burst is shown by a better shot)"}[s.why_not]
        out.append(f"{s.expression}: score {s.score:.3f} = (sum c*p {s.num:.3f} + {PRIOR_WEIGHT} x {PRIOR:.4g}) / "
                   f"(sum c {s.total:.3f} + {PRIOR_WEIGHT}); {plural(s.shows, 'face shows', 'faces show')} it; {where}")
    out.append("")
    out.append(f"moment: {plural(len(x.moment), 'shot')}" + "".join(f"\n  {m['path']}" for m in x.moment))
    return out


@command()
def explain(
    ctx: typer.Context,
    photos: list[Path] = typer.Argument(..., metavar="PHOTO...", show_default=False,
                                        help="Indexed photos, or folders (each photo under them)."),
    min_confidence: float = MIN_CONF_OPT,
    persons: list[str] | None = PERSON_OPT,
) -> None:
    """Why each PHOTO ranks where it does: every face, whether it was kept, the score's terms, its burst, its ranks.

    A folder explains each indexed photo under it, then lists the files
    under it that failed to index.  With --person: only photos of that
    person, and the ranks are those of `top E --person`.
    """
    idx = open_index(ctx)
    ids = person_ids(idx, persons)
    rows, failed = photo_rows(idx, photos, ids)
    ranked: dict = {}  # emotion: ranking.Ranks, shared by the photos explained
    try:
        for i, row in enumerate(rows):
            if i:
                console.print("")
            for line in _explain_lines(idx, row, min_confidence, ranked, ids):
                console.print(line, highlight=False, markup=False)
    finally:
        for r in ranked.values():
            r.close()
    if rows and failed:
        console.print("")
    report_failed(failed, to_stdout=True)


def status_rows(idx) -> list[tuple[str, str]]:
    """What ``status`` prints: the counts of ``Index.stats`` (the report's summary counts the same way)."""
    s = idx.stats()
    rows = [("index", str(idx.path)), ("photos", f"{s.photos:,}"),
            ("faces", f"{s.faces:,} found, {s.kept_faces:,} kept (confidence >= {s.min_confidence:g})"),
            ("no-face photos", f"{s.no_face:,}")]
    rows += [(f"mostly {e}", f"{s.by_emotion[e]:,}") for e in EXPRESSIONS]
    rows.append(("failed files", f"{s.failed:,}"))
    return rows


def version_name(version: str | None) -> str:
    """The name in a recorded model or detector version: ``emotion-1a2b3c4d5e6f`` -> ``emotion``,
    ``scrfd-int8-<12 hex>-s640-...`` -> ``scrfd-int8``; a version without a file hash is its own name."""
    import re

    m = re.match(r"(.+?)-[0-9a-f]{12}(?:-|$)", version or "")
    return m.group(1) if m else (version or "unknown")


def _day(seconds: float | None) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d") if seconds else "an unknown date"


@command()
def status(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", metavar="",
                                 help="Also show the version hashes of the model and the detector."),
) -> None:
    """What the index holds: photos, faces, failures, photos missing on disk, models, last run.

    Each photo with a kept face counts once, under the emotion of its
    highest score ("mostly happy"); the others are no-face photos, so the
    two add up to the photos.
    """
    idx = open_index(ctx)
    rows = status_rows(idx)
    gone = idx.missing()
    rows.append(("missing on disk", plural(len(gone), "photo") + (
        " (a deleted or unplugged folder: `albumsort forget PATH` drops them from the index, "
        "`albumsort index` on a parent folder notices deletions)" if gone else "")))
    cut = idx.truncated()
    if cut:
        rows.append(("truncated files", plural(cut, "photo") + " read as far as the file goes "
                     "(see `albumsort show`)"))
    for r in idx.scored_by():
        first, last = _day(r["first"]), _day(r["last"])
        when = f"scored {first}" if first == last else f"scored {first} to {last}"
        what = f"{version_name(r['model_version'])} model + {version_name(r['detector_version'])} detector"
        if verbose:
            what += f" ({r['model_version']} + {r['detector_version']})"
        rows.append(("scored by", f"{what}, {when} ({plural(r['n'], 'photo')})"))
    run = idx.last_run()
    if run:
        import datetime

        when = datetime.datetime.fromtimestamp(run["started"]).strftime("%Y-%m-%d %H:%M")
        from albumsort.files import run_in_progress

        if run["summary"]:
            what = run["summary"]
        elif run_in_progress(idx.path):
            what = "running now"
        else:
            what = "did not finish (interrupted); run `albumsort index` again to continue"
        rows.append(("last run", f"{when}: {what}"))
    pairs(rows)
