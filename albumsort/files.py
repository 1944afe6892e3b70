"""albumsort's own files: their names, and the only ways it writes them.

Every file albumsort makes outside the index is written whole through an
exclusively created temporary name (``TMP_PREFIX``) in the same folder,
then renamed: a crash leaves the old file or the new one, never half, and a
temporary name never collides with a user's file.  Paths are kept as their
raw bytes (``path_key``): two names that print alike are two files.  The
index file is told from another program's database by its SQLite
``application_id`` (``carries_our_id``), read from its header as bytes.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

TMP_PREFIX = ".albumsort-tmp-"
"""Temporary files are named ``.albumsort-tmp-<random>``, created exclusively: never a user's name."""
MANIFEST = "albumsort-manifest.csv"
"""The list of what ``export`` wrote into a folder: what tells its files from the user's."""
REPORT_MARKER = ".albumsort-report"
"""Beside a report's page: the hashes of the pages albumsort wrote there."""
IGNORE_FILE = ".albumsortignore"
"""A gitignore-style list of paths ``index`` skips, in any folder."""

# -- the index file: where it is, and how albumsort tells its own from another program's --------------
APP_NAME = "albumsort"
APPLICATION_ID = 0x616C6273
"""SQLite's application_id for albumsort indexes ("albs"): how an index is told from other databases."""


def default_db_path() -> Path:
    """``ALBUMSORT_DB``, else ``index.db`` in the per-user data directory."""
    env = os.environ.get("ALBUMSORT_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False) / "index.db"


class NotAnIndex(Exception):
    """The file is not an albumsort index this version can read, or not albumsort's at all."""


class DamagedIndex(Exception):
    """The index file is albumsort's but SQLite cannot read it."""


class IndexChanged(Exception):
    """The index was written while a command read it: not damage; running the command again reads it whole."""


def changed_message(path: Path) -> str:
    return (f"the index {path} changed while it was being read (an `albumsort index` run is updating it); "
            "run the command again")


SQLITE_HEADER = b"SQLite format 3\x00"


def carries_our_id(path: Path) -> bool:
    """Whether the file's SQLite header holds albumsort's ``application_id`` (read as bytes, no SQLite)."""
    try:
        with open(path, "rb") as f:
            head = f.read(72)
    except OSError:
        return False
    return head.startswith(SQLITE_HEADER) and len(head) == 72 and int.from_bytes(head[68:72], "big") == APPLICATION_ID


def damaged_message(path: Path, e: Exception) -> str:
    """One line for an index SQLite cannot read; only albumsort's own file is called an index to rebuild."""
    if os.path.isdir(path):
        return f"--db (or ALBUMSORT_DB) must name a file, not a folder: {path} is a folder"
    if carries_our_id(path):
        return (f"the index {path} is damaged ({e}); move it aside and run `albumsort index PHOTOS` "
                "to rebuild it")
    return (f"cannot read {path} ({e}), and nothing in it shows it is an albumsort index: "
            "check --db (or ALBUMSORT_DB); albumsort leaves that file alone")


def path_text(path: str | bytes) -> str:
    """The path as printable UTF-8 text: undecodable bytes become ``\\xNN``.

    Only for showing and prefix searches: the index keys rows by the raw
    bytes (``path_key``), because a name holding the byte 0xff and one
    literally named ``\\xff`` print alike.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def path_key(path: str | bytes) -> bytes:
    """The raw bytes of a path: the key of its row in ``photos`` and ``errors``."""
    return os.fsencode(path)


def lock_path(db: str | Path) -> str:
    """The lock an ``index`` run (or a change such as ``forget``) holds beside the index file."""
    return str(db) + ".lock"


def run_in_progress(db: str | Path) -> bool:
    """Whether an ``albumsort index`` holds this index's lock now (read-only check: nothing is created)."""
    lock = Path(lock_path(db))
    if not lock.exists():
        return False
    try:
        import fcntl
    except ImportError:  # Windows: the lock cannot be probed without taking it
        return False
    try:
        with open(lock, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def tmp_beside(target):
    """A fresh temporary name in ``target``'s folder, of the same type (str, bytes or Path)."""
    name = TMP_PREFIX + secrets.token_hex(8)
    if isinstance(target, Path):
        return target.parent / name
    if isinstance(target, bytes):
        return os.path.join(os.path.dirname(target), name.encode())
    return os.path.join(os.path.dirname(target), name)


def replace_whole(target, data: bytes) -> None:
    """Write ``target`` whole, replacing it: for files albumsort owns (a report page, its marker)."""
    tmp = tmp_beside(target)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def link_new(tmp, target) -> None:
    """Give the finished ``tmp`` the name ``target``, never over a file that exists (FileExistsError)."""
    try:
        os.link(tmp, target, follow_symlinks=False)  # fails, never replaces, if target exists
        os.unlink(tmp)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "appeared while writing", os.fsdecode(target)) from None
        os.replace(tmp, target)


def create_new(target, data: bytes) -> None:
    """Write ``target`` whole, or not at all, and never over a file that exists (FileExistsError)."""
    tmp = tmp_beside(target)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        link_new(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
