"""``albumsort export``: ranked photos into a folder as 001_<name>, 002_<name>, ...

The folder's ``albumsort-manifest.csv`` records what albumsort wrote there.
A rerun replaces and removes only files listed in it, so a file albumsort
did not write is never overwritten or deleted (a name clash is reported and
skipped instead), and the export follows the index as it changes.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "albumsort-manifest.csv"
MODES = ("copy", "hardlink", "symlink")
FIELDS = ["rank", "score", "file", "source", "mode", "size", "mtime_ns"]


@dataclass
class ExportResult:
    dest: Path
    written: int = 0
    kept: int = 0
    removed: int = 0
    skipped: list[str] = field(default_factory=list)


def _read_manifest(dest: Path) -> dict[str, dict]:
    path = dest / MANIFEST
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def _write_manifest(dest: Path, rows: list[dict]) -> None:
    tmp = dest / (MANIFEST + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, dest / MANIFEST)


def _place(source: str, target: Path, mode: str) -> None:
    """Write ``target`` from ``source`` atomically (temp name, then rename)."""
    tmp = target.with_name(f".{target.name}.albumsort-tmp")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    if mode == "copy":
        shutil.copy2(source, tmp)
    elif mode == "hardlink":
        os.link(source, tmp)
    else:
        os.symlink(os.path.abspath(source), tmp)
    os.replace(tmp, target)


def export_ranked(items: list[dict], dest: str | Path, mode: str = "copy") -> ExportResult:
    """Make ``dest`` hold exactly ``items`` (dicts with path and score), in order.

    ``items[i]["path"]`` is the text path; ``items[i].get("raw")`` the raw
    bytes to open when the name is not valid UTF-8.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    old = _read_manifest(dest)
    width = max(3, len(str(len(items))))
    result = ExportResult(dest)
    rows = []
    planned = set()
    for rank, item in enumerate(items, 1):
        src = os.fsdecode(item["raw"]) if item.get("raw") else item["path"]
        # The name comes from the text path, so a non-UTF-8 name gets its \xNN form.
        name = f"{rank:0{width}d}_{os.path.basename(item['path'])}"
        target = dest / name
        planned.add(name)
        try:
            st = os.stat(src)
        except OSError as e:
            result.skipped.append(f"{item['path']}: source unreadable ({e.strerror})")
            continue
        row = {"rank": rank, "score": f"{item['score']:.6f}", "file": name, "source": item["path"],
               "mode": mode, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        prev = old.get(name)
        exists = target.exists() or target.is_symlink()
        if exists and prev is None:
            result.skipped.append(f"{target}: exists and was not written by albumsort; left alone")
            continue
        if (exists and prev and prev["source"] == item["path"] and prev["mode"] == mode
                and prev.get("size") == str(st.st_size) and prev.get("mtime_ns") == str(st.st_mtime_ns)):
            result.kept += 1
        else:
            _place(src, target, mode)
            result.written += 1
        rows.append(row)
    for name in old:
        if name not in planned:
            target = dest / name
            if target.exists() or target.is_symlink():
                target.unlink()
                result.removed += 1
    # Files we wrote but now had to skip stay ours: keep them listed.
    for name, prev in old.items():
        target = dest / name
        if name in planned and name not in {r["file"] for r in rows} and (target.exists() or target.is_symlink()):
            rows.append(prev)
    rows.sort(key=lambda r: int(r["rank"]))
    _write_manifest(dest, rows)
    return result
