"""``albumsort report``: a static, self-contained HTML gallery of the ranking.

One page, one section per emotion (top-N thumbnails in rank order, each with
its rank, score and the face boxes drawn over it, labelled with each face's
top emotion), a "No face" section and a summary.  No network: no CDN, no web
fonts, no scripts.  Thumbnails are made once per content hash (EXIF
orientation applied) under ``DEST/thumbs/`` and reused by the next report.
Every name and path is HTML-escaped; links to the originals are ``file:``
URIs built from the raw path bytes, so spaces, ``#``, ``%`` and non-ASCII
names work.
"""

from __future__ import annotations

import datetime
import hashlib
import html
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from albumsort.files import REPORT_MARKER as MARKER
from albumsort.files import replace_whole, tmp_beside
from albumsort.labels import EMOTIONS, EXPRESSIONS
from albumsort.ranking import Filters, no_faces, top
from albumsort.scores import DEFAULT_MIN_CONFIDENCE, top_expression
from albumsort.store import Index

THUMB_SIDE = 320


class ForeignPage(Exception):
    """DEST/index.html exists and is not the page albumsort wrote there."""
COLOURS = {"angry": "#d62728", "happy": "#2ca02c", "sad": "#1f77b4", "neutral": "#7f7f7f",
           "surprise": "#ff7f0e", "fear": "#9467bd", "disgust": "#8c564b"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#fafafa;color:#222}
header{padding:16px 24px;background:#222;color:#eee}header h1{margin:0 0 6px;font-size:22px}
header p{margin:2px 0;font-size:13px;color:#bbb}nav a{color:#9cf;margin-right:14px}
section{padding:8px 24px 20px}h2{border-bottom:2px solid #ddd;padding-bottom:4px}
.grid{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;width:min-content}
.photo{position:relative;display:block;line-height:0}
.photo img{display:block;max-width:320px;max-height:320px}
.box{position:absolute;border:2px solid;box-sizing:border-box}
.box span{position:absolute;font:10px/1.25 system-ui,sans-serif;color:#fff;padding:0 2px;white-space:nowrap;
box-sizing:border-box;z-index:1}
.photo{overflow:hidden}.shots{color:#a60;font-weight:bold}
figcaption{font-size:12px;margin-top:6px;line-height:1.35;word-break:break-all;max-width:320px}
.rank{font-weight:bold}.score{color:#555}.why{color:#777;font-style:italic}.empty{color:#777;font-style:italic}
table.summary td{padding:2px 12px 2px 0;font-size:14px}
"""


@dataclass
class ReportResult:
    path: Path
    photos: int
    thumbs_made: int
    thumbs_reused: int
    thumb_failures: list


def _thumb(job: tuple[bytes, str]) -> str | None:
    """Make one thumbnail (runs in a worker); returns an error reason or None."""
    raw, target = job
    from PIL import Image

    from albumsort.images import ImageError, load_rgb

    try:
        rgb, _ = load_rgb(os.fsdecode(raw), max_side=THUMB_SIDE)
    except ImageError as e:
        return str(e)
    tmp = tmp_beside(target)
    try:
        with open(tmp, "xb") as f:
            Image.fromarray(rgb).save(f, "JPEG", quality=82)
        if os.path.lexists(target):
            os.unlink(tmp)  # appeared meanwhile: never replace a file we did not write
        else:
            os.replace(tmp, target)
    except OSError as e:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        return f"{target}: {e.strerror or e}"
    return None


def check_page_is_ours(dest: Path) -> None:
    """Raise ForeignPage unless DEST/index.html is absent or byte-identical to the page albumsort wrote."""
    page, marker = dest / "index.html", dest / MARKER
    if not os.path.lexists(page):
        return
    try:
        recorded = marker.read_text(encoding="ascii").split() if marker.is_file() else []
        ours = page.is_file() and not page.is_symlink() and \
            hashlib.sha256(page.read_bytes()).hexdigest() in recorded
    except (OSError, UnicodeDecodeError):
        ours = False
    if not ours:
        raise ForeignPage(f"{page} exists and was not written by albumsort (or was edited since); "
                          "refusing to overwrite it: choose another folder or move that file")


LABEL_CHAR_PX = 6.5
"""Width allowed per character of a face label (10 px system-ui, digits and '%' included, with room to spare)."""
LABEL_PAD_PX = 4
LABEL_HEIGHT_PX = 13
BORDER_PX = 2


def label_layout(faces: list[dict], width: int, height: int) -> list[tuple[str, float, float] | None]:
    """Where each face's label goes on the thumbnail, never cut and never over another label.

    For each face (largest box first): the label "happy 93%", else "happy", at the box's top-left
    corner inside it, else above the box, else below it, moved left where it would pass the photo's right
    edge.  The first place that lies inside the photo and clear of the labels already placed wins;
    with none, the face keeps its coloured box and the label as a tooltip (None).  Returns, per face in
    the given order, (text, left, top) in CSS pixels from the box's inner corner, or None.
    """
    scale = min(1.0, THUMB_SIDE / max(width, height, 1))  # the thumbnail as shown: long side <= THUMB_SIDE
    W, H = width * scale, height * scale
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[str, float, float] | None] = [None] * len(faces)
    order = sorted(range(len(faces)), key=lambda i: -faces[i]["box"][2] * faces[i]["box"][3])
    for i in order:
        bx, by, bw, bh = (v * scale for v in faces[i]["box"])
        probs = faces[i]["probabilities"]
        e = max(probs, key=probs.get)
        for text in (f"{e} {probs[e]:.0%}", e):
            lw, lh = len(text) * LABEL_CHAR_PX + LABEL_PAD_PX, LABEL_HEIGHT_PX
            spot = None
            for y in (by, by - lh, by + bh):
                x = min(bx, W - lw)
                if x < 0 or y < 0 or y + lh > H:
                    continue
                if all(x + lw <= px or px + pw <= x or y + lh <= py or py + ph <= y for px, py, pw, ph in placed):
                    spot = (x, y)
                    break
            if spot:
                placed.append((spot[0], spot[1], lw, lh))
                out[i] = (text, spot[0] - bx - BORDER_PX, spot[1] - by - BORDER_PX)
                break
    return out


def _figure(item: dict, rank: int | None, thumbs: str, width: int, height: int) -> str:
    uri = Path(os.fsdecode(item["raw"])).as_uri() if item.get("raw") else Path(item["path"]).as_uri()
    name = html.escape(os.path.basename(item["path"]))
    boxes, clipped = [], []
    for f in item.get("faces", []):
        x, y, w, h = f["box"]
        # Clip to the photo: a detector box may reach past its edge.
        x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
        clipped.append(dict(f, box=(x0, y0, max(0.0, min(x + w, width) - x0), max(0.0, min(y + h, height) - y0))))
    for f, label in zip(clipped, label_layout(clipped, width, height), strict=True):
        x, y, w, h = f["box"]
        probs = f["probabilities"]
        e = top_expression(probs)
        style = (f"left:{100 * x / width:.2f}%;top:{100 * y / height:.2f}%;width:{100 * w / width:.2f}%;"
                 f"height:{100 * h / height:.2f}%;border-color:{COLOURS[e]}")
        tip = f"{e} {probs[e]:.0%}"
        span = (f'<span style="background:{COLOURS[e]};left:{label[1]:.1f}px;top:{label[2]:.1f}px">'
                f"{label[0]}</span>" if label else "")
        boxes.append(f'<div class="box" title="{tip}" style="{style}">{span}</div>')
    caption = []
    if rank is not None:
        caption.append(f'<span class="rank">#{rank}</span> <span class="score">score {item["score"]:.3f}</span>')
        if item.get("shots", 1) > 1:
            caption.append(f' <span class="shots" title="best of {item["shots"]} shots of one moment">'
                           f'{item["shots"]} shots</span>')
        caption.append("<br>")
    caption.append(f'<span class="name" title="{html.escape(item["path"])}">{name}</span>')
    if item.get("reason"):
        caption.append(f'<br><span class="why">{html.escape(item["reason"])}</span>')
    return (f'<figure data-rank="{rank or ""}" data-path="{html.escape(item["path"])}">'
            f'<a class="photo" href="{html.escape(uri)}"><img src="{thumbs}/{item["hash"]}.jpg" alt="{name}" '
            f'loading="lazy">{"".join(boxes)}</a><figcaption>{"".join(caption)}</figcaption></figure>')


def build_report(index: Index, dest: str | Path, n: int = 20, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 workers: int | None = None, any_: bool = False, everyone: bool = False, all_shots: bool = False,
                 filters: Filters | None = None, expressions: tuple = EMOTIONS) -> ReportResult:
    """Write ``dest/index.html`` and its thumbnails, with the same lists ``top`` prints for ``expressions``
    (the four emotions by default); returns what was done."""
    dest = Path(dest)
    check_page_is_ours(dest)
    thumbs = dest / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    sections = {e: top(index, e, n, min_confidence, with_keys=True, any_=any_, everyone=everyone,
                       all_shots=all_shots, filters=filters) for e in expressions}
    nofaces = no_faces(index, min_confidence, with_keys=True, filters=filters)
    shown_nofaces = nofaces[:n]
    people = _people(index, expressions, min_confidence, any_, filters or Filters())
    best_of = [it for _, row in people for it in row.values()]
    rows: dict[bytes, Any] = {}  # by raw path: two names can print alike (see files.path_text)
    for items in list(sections.values()) + [shown_nofaces, best_of]:
        for it in items:
            if it["raw"] not in rows:
                rows[it["raw"]] = index.photo(it["raw"])
    for items in list(sections.values()) + [shown_nofaces, best_of]:
        for it in items:
            row = rows[it["raw"]]
            it["hash"], it["raw"] = row["hash"], row["raw"]
            res = index.result(row["hash"]) or {}
            it["width"], it["height"] = res.get("width") or 1, res.get("height") or 1
    # Thumbnails: once per content hash, in parallel.
    jobs, seen = [], set()
    for row in rows.values():
        target = thumbs / f"{row['hash']}.jpg"
        if row["hash"] not in seen and not target.exists():
            jobs.append((row["raw"], str(target)))
        seen.add(row["hash"])
    failed = []
    if jobs:
        with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
            failed = [r for r in pool.map(_thumb, jobs, chunksize=4) if r]
    f = filters or Filters()
    parts = [_head(index, min_confidence, f, tuple(sections), bool(people))]
    for e, items in sections.items():
        figs = "".join(_figure(it, i, "thumbs", it["width"], it["height"]) for i, it in enumerate(items, 1))
        parts.append(f'<section id="{e}" data-emotion="{e}"><h2>{e.capitalize()} — top {len(items)}</h2>'
                     f'<div class="grid">{figs or "<p class=empty>No photo shows this emotion.</p>"}</div></section>')
    if people:
        from albumsort.people import label

        lines = []
        for person, row in people:
            who = html.escape(label(person["person"], {person["person"]: person["name"]}))
            figs = "".join(_figure(dict(it, reason=e), None, "thumbs", it["width"], it["height"])
                           for e, it in row.items())
            lines.append(f'<h3 data-person="{person["person"]}">{who} — {len(person["photos"])} photos</h3>'
                         f'<div class="grid">{figs or "<p class=empty>No photo shows these emotions.</p>"}</div>')
        parts.append(f'<section id="people"><h2>People — best photo of each per emotion</h2>{"".join(lines)}'
                     "</section>")
    figs = "".join(_figure(it, None, "thumbs", it["width"], it["height"]) for it in shown_nofaces)
    more = f"<p class=empty>... and {len(nofaces) - len(shown_nofaces)} more.</p>" if len(nofaces) > n else ""
    parts.append(f'<section id="no-face" data-emotion="no-face"><h2>No face — {len(nofaces)}</h2>'
                 f'<div class="grid">{figs or "<p class=empty>Every photo has a face.</p>"}</div>{more}</section>')
    page = ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; img-src 'self' file: data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>albumsort report</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    out = dest / "index.html"
    data = page.encode("utf-8")
    check_page_is_ours(dest)  # again, just before replacing it
    # The marker lists the new page's hash and the old one's, so a crash between
    # the two writes leaves a page that is still recognised as ours.
    old = hashlib.sha256(out.read_bytes()).hexdigest() if out.is_file() else ""
    marker = f"{hashlib.sha256(data).hexdigest()}\n{old}\n".encode()
    for path, content in ((dest / MARKER, marker), (out, data)):
        replace_whole(path, content)
    return ReportResult(out, len(rows), len(jobs) - len(failed), len(seen) - len(jobs), failed)


PEOPLE_SHOWN = 12
"""The report's people section shows the most photographed people, at most this many."""


def _people(index: Index, expressions: tuple, min_confidence: float, any_: bool,
            filters: Filters) -> list[tuple[dict, dict]]:
    """(person, {emotion: best photo of them showing it}) for the people the report shows (``--person``'s, or
    the most photographed ones), each list as ``top E --person ID -n 1`` ranks it."""
    from dataclasses import replace

    from albumsort.people import listing

    chosen = listing(index, persons=filters.persons or None)[:PEOPLE_SHOWN]
    out = []
    for person in chosen:
        theirs = replace(filters, persons=[person["person"]])
        row = {}
        for e in expressions:
            got = top(index, e, 1, min_confidence, with_keys=True, any_=any_, filters=theirs)
            if got:
                row[e] = got[0]
        out.append((person, row))
    return out


def _scope(f: Filters) -> str:
    """The report's filters as words (empty without any)."""
    words = []
    if f.folders:
        words.append("under " + " or ".join(os.fsdecode(x) for x in f.folders))
    for label, t in (("taken since", f.since), ("taken before", f.until)):
        if t is not None:
            words.append(f"{label} {datetime.datetime.fromtimestamp(t, datetime.timezone.utc):%Y-%m-%d %H:%M}")
    if f.min_faces is not None:
        words.append(f"at least {f.min_faces} kept faces")
    if f.max_faces is not None:
        words.append(f"at most {f.max_faces} kept faces")
    return ", ".join(words)


def _head(index: Index, min_confidence: float = DEFAULT_MIN_CONFIDENCE, filters: Filters | None = None,
          sections: tuple = EMOTIONS, people: bool = False) -> str:
    """The summary: the counts, labels and definitions of ``albumsort status`` (``Index.stats``), counted
    with the report's own filters and threshold, so it describes the photos the sections were chosen from."""
    f = filters or Filters()
    where, params = f.sql(n_faces="coalesce(s.n_kept, 0)")
    s = index.stats(min_confidence, where, params)
    versions = [f"{r['model_version']} + {r['detector_version']}" for r in index.scored_by()]
    last = index.last_finished()
    when = datetime.datetime.fromtimestamp(last).strftime("%Y-%m-%d %H:%M") if last else "never"
    scope = _scope(f)
    rows = [("photos", f"{s.photos:,}" + (f" ({scope})" if scope else "")),
            ("faces", f"{s.faces:,} found, {s.kept_faces:,} kept (confidence >= {s.min_confidence:g})"),
            ("no-face photos", f"{s.no_face:,}")]
    rows += [(f"mostly {e}", f"{s.by_emotion[e]:,}") for e in EXPRESSIONS]
    rows += [("model + detector", ", ".join(versions) or "-"), ("indexed", when)]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    nav = "".join(f'<a href="#{e}">{e}</a>' for e in sections) + ('<a href="#people">people</a>' if people else "") \
        + '<a href="#no-face">no face</a>'
    return (f"<header><h1>albumsort report</h1><p>{html.escape(str(index.path))}</p><nav>{nav}</nav></header>"
            f'<section id="summary"><h2>Summary</h2><table class="summary">{table}</table></section>')
