"""Walking photo folders: which files to look at, and why others could not be.

Hidden folders and files are skipped (``.thumbnails``, ``._IMG_1.JPG``
AppleDouble files that carry an image extension but hold no image).  Folder
symlinks are followed once; a link back to a folder being walked is a loop
and is reported, as are broken links and folders that cannot be read.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from albumsort.files import IGNORE_FILE, MANIFEST, REPORT_MARKER
from albumsort.images import EXTENSIONS

_THUMB = re.compile(r"[0-9a-f]{32}\.jpg")


@dataclass(frozen=True)
class Entry:
    """A candidate photo: its path (as the OS gave it) and what ``stat`` says."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Failure:
    """A file or folder that could not be read, with a one-line reason."""

    path: str
    reason: str
    is_dir: bool = False
    size: int | None = None  # a folder that could not be read: its own stat, so that
    mtime_ns: int | None = None  # an unchanged one is a known failure on the next run


def _reason(e: OSError) -> str:
    import errno

    if e.errno == errno.ELOOP:
        return "symlink loop"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.ENOENT:
        return "broken symlink" if e.filename and os.path.islink(e.filename) else "vanished while scanning"
    return e.strerror or str(e)


def is_photo_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in EXTENSIONS


class _Ignores:
    """The ``.albumsortignore`` files met on the way down, plus ``--exclude`` patterns for each root."""

    def __init__(self, rules: tuple = ()):
        self.rules = rules  # (base folder, compiled spec), outermost first

    def add(self, base: str, lines: list[str]) -> _Ignores:
        import pathspec

        lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            return self
        return _Ignores(self.rules + ((base, pathspec.GitIgnoreSpec.from_lines(lines)),))

    def excluded(self, path: str, is_dir: bool) -> bool:
        """The last rule set with an opinion wins, as with nested .gitignore files."""
        verdict = False
        for base, spec in self.rules:
            rel = os.path.relpath(path, base).replace(os.sep, "/") + ("/" if is_dir else "")
            res = spec.check_file(rel)
            if res.include is not None:
                verdict = bool(res.include)
        return verdict


def walk(roots: list[str], exclude: list[str] | None = None) -> Iterator[Entry | Failure]:
    """Yield every photo under ``roots`` (folders or single files), depth first, sorted by name.

    Paths matched by ``exclude`` (gitignore-syntax patterns, relative to each
    root) or by an ``.albumsortignore`` file in a folder are skipped.
    """
    visited: set[tuple[int, int]] = set()
    for root in roots:
        root = os.path.abspath(root)
        try:
            st = os.stat(root)
        except OSError as e:
            yield Failure(root, _reason(e), is_dir=True)
            continue
        if stat.S_ISREG(st.st_mode):
            yield Entry(root, st.st_size, st.st_mtime_ns)
            continue
        yield from _walk_dir(root, st, visited, ancestors=(), ignores=_Ignores().add(root, list(exclude or [])))


def _own_outputs(folder: str, names: set[str], in_report: bool) -> set[str]:
    """Names in ``folder`` that albumsort wrote: an export's files, a report's thumbnails.

    Only those are skipped, never the folder around them, so a report or an
    export made inside an album cannot make the album's photos vanish.
    """
    from albumsort.export import own_files

    own: set[str] = set()
    if MANIFEST in names:
        own |= own_files(folder)
    if in_report:
        own |= {n for n in names if _THUMB.fullmatch(n)}
    return own


def _walk_dir(folder: str, st: os.stat_result, visited: set, ancestors: tuple,
              in_report: bool = False, ignores: _Ignores | None = None) -> Iterator[Entry | Failure]:
    ignores = ignores if ignores is not None else _Ignores()
    key = (st.st_dev, st.st_ino)
    if key in ancestors:
        yield Failure(folder, "symlink loop: links back to a folder that contains it", is_dir=True)
        return
    if key in visited:
        return  # the same folder reached through another link: walked once already
    visited.add(key)
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        yield Failure(folder, f"cannot read folder: {_reason(e)}", is_dir=True, size=st.st_size,
                      mtime_ns=st.st_mtime_ns)
        return
    names = {e.name for e in entries}
    if IGNORE_FILE in names:
        try:
            with open(os.path.join(folder, IGNORE_FILE), encoding="utf-8", errors="replace") as f:
                ignores = ignores.add(folder, f.read().splitlines())
        except OSError as e:
            yield Failure(os.path.join(folder, IGNORE_FILE), f"cannot read: {_reason(e)}")
        except ValueError as e:  # a pattern pathspec cannot parse
            yield Failure(os.path.join(folder, IGNORE_FILE), f"bad pattern: {e}")
    own = _own_outputs(folder, names, in_report)
    report_here = REPORT_MARKER in names
    subdirs: list[os.DirEntry] = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name in own:
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if ignores.rules and ignores.excluded(entry.path, is_dir):
            continue
        if is_dir:
            subdirs.append(entry)
            continue
        if not is_photo_name(entry.name):
            if entry.is_symlink() and not os.path.exists(entry.path):
                # A dangling link without a photo extension may be an unmounted folder:
                # report it, and keep whatever the index holds under it.
                yield Failure(entry.path, "broken symlink", is_dir=True)
            continue
        try:
            fst = entry.stat(follow_symlinks=True)
        except OSError as err:
            reason = _reason(err)
            if entry.is_symlink() and reason == "vanished while scanning":
                reason = "broken symlink"
            yield Failure(entry.path, reason)
            continue
        if stat.S_ISREG(fst.st_mode):
            yield Entry(entry.path, fst.st_size, fst.st_mtime_ns)
    for d in subdirs:
        try:
            dst = os.stat(d.path)
        except OSError as err:
            yield Failure(d.path, f"cannot read folder: {_reason(err)}", is_dir=True)
            continue
        yield from _walk_dir(d.path, dst, visited, ancestors + (key,), in_report=report_here and d.name == "thumbs",
                             ignores=ignores)
