"""``albumsort export``: ranked photos into a folder as 001_<name>, 002_<name>, ...

The folder's ``albumsort-manifest.csv`` records what albumsort wrote there,
with each file's size and mtime as written.  The manifest is not trusted on
its own: a file is albumsort's only if it is a plain entry directly in the
folder, listed there, and still of the recorded size and mtime.  Only such
files are ever replaced or removed; anything else (a file the user put
there or edited since, a name with a path in it) is left alone and
reported.  A failure on one photo (a hard link across file systems, a full
disk) is reported with what to do, and the rest still export; the manifest
always records what was written.

No two of albumsort's files in the folder carry the same rank.  A file
albumsort wrote that may be the only copy left (its original is gone or
changed) is never removed: it is *set aside*, renamed without its rank
prefix (``002_a.jpg`` -> ``a.jpg``) and kept in the manifest with an empty
rank.  A file in the way that is not albumsort's (the user's, or an export
the user edited) stays where it is, and the ranked photo takes the next free
name (``002_b-2.jpg``); the next run finds it there and keeps it (it does
not move on to ``-3``), and the edited file's manifest row is kept (with an
empty rank) so the note keeps saying it was edited.  Both are reported as
notes, not failures.
"""

from __future__ import annotations

import csv
import errno
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from albumsort.files import MANIFEST, link_new, tmp_beside

MODES = ("copy", "hardlink", "symlink")
FIELDS = ["rank", "score", "file", "source", "mode", "size", "mtime_ns", "written_size", "written_mtime_ns"]
NAME_MAX = 255
"""Longest file name, in bytes, on common file systems."""


@dataclass
class ExportResult:
    dest: Path
    written: int = 0
    kept: int = 0
    removed: int = 0
    set_aside: list[str] = field(default_factory=list)  # albumsort's own files renamed out of the ranked sequence
    notes: list[str] = field(default_factory=list)  # what was left alone or set aside, and why: not failures
    failed: list[str] = field(default_factory=list)


def _plain_name(name: str) -> bool:
    """A file name directly inside the folder: no separators, no '.' or '..', nothing absolute."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name \
        and not os.path.isabs(name) and os.path.basename(name) == name


def _read_manifest(dest: Path) -> dict[str, dict]:
    """Rows of the manifest whose ``file`` is a plain name; an unreadable manifest counts as empty."""
    path = dest / MANIFEST
    if not path.is_file() or path.is_symlink():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    return {r["file"]: r for r in rows if isinstance(r.get("file"), str) and _plain_name(r["file"])}


def _stat_matches(st: os.stat_result, row: dict) -> bool:
    return str(st.st_size) == str(row.get("written_size")) and str(st.st_mtime_ns) == str(row.get("written_mtime_ns"))


def is_ours(dest: Path, row: dict) -> bool:
    """Whether ``dest/row['file']`` is still exactly what albumsort wrote: same kind, size and mtime.

    Manifests from before ``written_size`` existed are read as they were
    written: a copy or hard link kept the source's size and mtime, a
    symbolic link pointed at the source.
    """
    target = dest / row["file"]
    try:
        st = os.lstat(target)
    except OSError:
        return False
    legacy = not row.get("written_size")
    if row.get("mode") == "symlink":
        if not stat.S_ISLNK(st.st_mode):
            return False
        return os.readlink(target) == os.path.abspath(row.get("source", "")) if legacy else _stat_matches(st, row)
    if not stat.S_ISREG(st.st_mode):
        return False
    if legacy:
        return str(st.st_size) == str(row.get("size")) and str(st.st_mtime_ns) == str(row.get("mtime_ns"))
    return _stat_matches(st, row)


def redundant(dest: Path, row: dict) -> bool:
    """Whether removing albumsort's file loses nothing: a link, or a copy whose original is still there."""
    target = dest / row["file"]
    if row.get("mode") == "symlink":
        return True
    try:
        if row.get("mode") == "hardlink":
            return os.lstat(target).st_nlink > 1
        return os.stat(row.get("source", "")).st_size == int(row.get("size", -1))
    except (OSError, ValueError):
        return False


def own_files(folder: str | Path) -> set[str]:
    """Names in ``folder`` that albumsort exported there (and nobody changed since), plus the manifest."""
    folder = Path(folder)
    names = {name for name, row in _read_manifest(folder).items() if is_ours(folder, row)}
    return names | {MANIFEST}


def _rank_key(row: dict) -> tuple:
    """Ranked files in rank order, then those set aside (empty rank), by name."""
    rank = str(row.get("rank", "")).strip()
    return (0, int(rank), "") if rank.isdigit() else (1, 0, row.get("file", ""))


def _write_manifest(dest: Path, rows: list[dict]) -> None:
    tmp = tmp_beside(dest / MANIFEST)
    with open(tmp, "x", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, dest / MANIFEST)


def _place(source: str, target: Path, mode: str, prev: dict | None) -> os.stat_result:
    """Write ``target`` from ``source`` through an exclusively created temporary name.

    ``prev`` is the manifest row of albumsort's own file at ``target``: it
    is replaced only if still unchanged, checked right before.  Without it,
    an existing target is never replaced.  Returns the written file's lstat.
    """
    tmp = tmp_beside(target)
    try:
        if mode == "copy":
            st = os.stat(source)
            with open(source, "rb") as src, open(tmp, "xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # times only: never a read-only flag
        elif mode == "hardlink":
            os.link(source, tmp)
        else:
            os.symlink(os.path.abspath(source), tmp)
        if prev is not None:
            if not is_ours(target.parent, prev):
                raise FileExistsError(errno.EEXIST, "changed while exporting", str(target))
            os.replace(tmp, target)
        else:
            link_new(tmp, target)  # never over a file that exists
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return os.lstat(target)


def export_name(rank: int, width: int, basename: str) -> str:
    """``NNN_<basename>``, the base name's stem shortened (extension kept) to fit ``NAME_MAX`` bytes."""
    prefix = f"{rank:0{width}d}_"
    name = prefix + basename
    if len(os.fsencode(name)) <= NAME_MAX:
        return name
    stem, ext = os.path.splitext(basename)
    if len(os.fsencode(ext)) > 16:
        stem, ext = basename, ""
    room = NAME_MAX - len(os.fsencode(prefix + ext))
    short = stem.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")  # whole characters only
    return prefix + short + ext


_RANKED = re.compile(r"[0-9]+_")


def free_name(dest: Path, name: str, taken: set[str]) -> str:
    """``name``, else ``<stem>-2<ext>``, ``-3``... : the first that neither exists in ``dest`` nor is ``taken``."""
    stem, ext = os.path.splitext(name)
    candidate, i = name, 1
    while candidate in taken or os.path.lexists(dest / candidate):
        i += 1
        candidate = f"{stem}-{i}{ext}"
    return candidate


def own_variant(name: str, source: str, ours: dict[str, dict], taken: set[str]) -> str | None:
    """albumsort's unchanged ``<stem>-K<ext>`` of ``name`` exported from ``source`` on an earlier run, if any.

    Where ``name`` is held by a file albumsort did not write (or that was
    edited), the ranked photo went to such a variant: reusing it keeps the
    folder as it is instead of writing ``-K+1`` and removing ``-K`` each run.
    """
    stem, ext = os.path.splitext(name)
    pattern = re.compile(re.escape(stem) + r"-([0-9]+)" + re.escape(ext))
    found = [(int(m.group(1)), n) for n, row in ours.items()
             if (m := pattern.fullmatch(n)) and row.get("source") == source and n not in taken]
    return min(found)[1] if found else None


def _set_aside(dest: Path, name: str, taken: set[str]) -> str:
    """Rename albumsort's ``dest/name`` without its rank prefix, never over an existing file; returns the new name."""
    bare = _RANKED.sub("", name, count=1)
    if _RANKED.match(bare):  # a photo itself named like 002_x.jpg must not look ranked
        bare = "kept-" + bare
    new = free_name(dest, bare, taken)
    try:
        os.link(dest / name, dest / new, follow_symlinks=False)  # fails, never replaces, if taken meanwhile
    except FileExistsError:
        raise
    except OSError:  # no hard links here: check, then rename
        if os.path.lexists(dest / new):
            raise FileExistsError(errno.EEXIST, "appeared while exporting", str(dest / new)) from None
        os.rename(dest / name, dest / new)
        return new
    os.unlink(dest / name)
    return new


def _advice(e: OSError, mode: str) -> str:
    if e.errno == errno.EXDEV and mode == "hardlink":
        return "hard links cannot cross file systems: use --mode copy (or symlink)"
    if e.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP) and mode in ("hardlink", "symlink"):
        return f"this file system does not allow {mode}s here: use --mode copy"
    if e.errno == errno.ENOSPC:
        return "the destination is full: free space or export fewer photos (-n)"
    if e.errno in (errno.EACCES, errno.EROFS):
        return "the destination is not writable"
    return e.strerror or str(e)


def write_advice(e: OSError) -> str:
    """Why a destination folder cannot be written, in words (``export`` and ``report`` say the same)."""
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"the destination is not writable ({e.strerror})"
    return _advice(e, "copy")


def export_ranked(items: list[dict], dest: str | Path, mode: str = "copy") -> ExportResult:
    """Make ``dest`` hold ``items`` (dicts with path and score), in order, as far as it can.

    ``items[i]["path"]`` is the text path; ``items[i].get("raw")`` the raw
    bytes to open when the name is not valid UTF-8.  Files albumsort wrote
    earlier and no longer needs are removed, only if still unchanged.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    old = _read_manifest(dest)
    ours = {name: row for name, row in old.items() if is_ours(dest, row)}
    width = max(3, len(str(len(items))))
    result = ExportResult(dest)
    rows: dict[str, dict] = {}
    planned: set[str] = set()

    def aside(name: str, prev: dict) -> bool:
        """Set albumsort's possibly-last copy ``name`` aside; False (and a failure) if it cannot be."""
        try:
            new = _set_aside(dest, name, planned | set(rows) | set(ours))
        except OSError as e:
            result.failed.append(f"{dest / name}: may be the only copy of {prev.get('source')}, and could not be "
                                 f"renamed out of the ranked sequence ({e.strerror or e})")
            rows[name] = prev
            return False
        ours.pop(name, None)
        rows[new] = dict(prev, file=new, rank="")
        result.set_aside.append(new)
        result.notes.append(f"{dest / name} -> {new}: set aside, kept: its original {prev.get('source')} is gone "
                            "or changed, so this may be the only copy")
        return True

    try:
        for rank, item in enumerate(items, 1):
            src = os.fsdecode(item["raw"]) if item.get("raw") else item["path"]
            # The name comes from the text path, so a non-UTF-8 name gets its \xNN form.
            name = export_name(rank, width, os.path.basename(item["path"]).replace("\\", "_"))
            try:
                st = os.stat(src)
            except OSError as e:
                result.failed.append(f"{item['path']}: source unreadable ({e.strerror}); not exported")
                planned.add(name)
                if ours.get(name):
                    rows[name] = ours[name]  # still ours: keep it listed
                continue
            row = {"rank": rank, "score": f"{item['score']:.6f}", "file": name, "source": item["path"],
                   "mode": mode, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            if name not in ours and os.path.lexists(dest / name):
                # Not albumsort's (or edited since): left alone; the ranked photo keeps its earlier
                # variant name if albumsort wrote one, else takes the next free name.
                why = "was changed since albumsort wrote it" if name in old else "was not written by albumsort"
                other = own_variant(name, item["path"], ours, planned | set(rows)) \
                    or free_name(dest, name, planned | set(rows))
                result.notes.append(f"{dest / name}: exists and {why}; left alone: rank {rank} is {other}")
                if name in old and name not in rows:
                    rows[name] = dict(old[name], rank="")  # listed still, so the next run says "changed" again
                name = other
                row["file"] = name
            prev = ours.get(name)
            if (prev and prev["source"] == item["path"] and prev["mode"] == mode
                    and prev.get("size") == str(st.st_size) and prev.get("mtime_ns") == str(st.st_mtime_ns)):
                result.kept += 1
                rows[name] = dict(prev, rank=rank, score=row["score"])
                planned.add(name)
                continue
            if prev is not None and not redundant(dest, prev):
                if not aside(name, prev):
                    continue
                prev = None
            target = dest / name
            planned.add(name)
            try:
                wst = _place(src, target, mode, prev)
            except OSError as e:
                result.failed.append(f"{item['path']} -> {target}: {_advice(e, mode)}")
                if prev is not None and is_ours(dest, prev):
                    rows[name] = prev  # still ours: keep it listed so a later run can replace it
                continue
            rows[name] = dict(row, written_size=wst.st_size, written_mtime_ns=wst.st_mtime_ns)
            result.written += 1
        for name, prev in list(ours.items()):
            if name in planned or name in rows:
                continue
            if not is_ours(dest, prev):  # checked again right before removing
                continue
            if not redundant(dest, prev):
                if not str(prev.get("rank", "")).strip():
                    rows[name] = prev  # set aside on an earlier run: stays, listed
                else:
                    aside(name, prev)
                continue
            try:
                os.unlink(dest / name)
                result.removed += 1
            except OSError as e:
                result.failed.append(f"{dest / name}: could not remove an old export ({e.strerror})")
                rows[name] = prev
    finally:
        for name, prev in old.items():
            if name not in rows and name not in planned and prev.get("written_size") and name in ours \
                    and os.path.lexists(dest / name) and is_ours(dest, prev):
                rows[name] = prev  # interrupted before it was removed: still ours
        _write_manifest(dest, sorted(rows.values(), key=_rank_key))
    for name in old:
        if name not in ours and name not in rows and os.path.lexists(dest / name) and name not in planned \
                and not any(n.startswith(f"{dest / name}:") for n in result.notes):
            result.notes.append(f"{dest / name}: listed in the manifest but changed since albumsort wrote "
                                "it; left alone")
    return result
