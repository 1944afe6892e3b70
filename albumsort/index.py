"""The SQLite index: where photos, faces and failures are kept between runs.

Results are keyed by the file's content hash, not its path, so a moved,
renamed or copied photo keeps its faces without running any model again.
Every photo is written in one transaction (its row, its faces, its scores),
with SQLite in WAL mode, so a kill or a power cut at any moment leaves either
the old state or the new one for that photo, never half of it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from albumsort.labels import EMOTIONS

SCHEMA_VERSION = 2
APP_NAME = "albumsort"


def default_db_path() -> Path:
    """``ALBUMSORT_DB``, else ``index.db`` in the per-user data directory."""
    env = os.environ.get("ALBUMSORT_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False) / "index.db"


def path_text(path: str) -> str:
    """The path as valid UTF-8 text: undecodable bytes become ``\\xNN``.

    File names that are not valid UTF-8 still get a stable, printable key;
    the raw bytes are kept beside it to open the file again.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class NotAnIndex(Exception):
    """The file is not an albumsort index this version can read."""


class Index:
    """albumsort's tables: read with plain sqlite3 (fast to import), written through sqlite-utils."""

    def __init__(self, path: str | Path | None = None, create: bool = True):
        self.path = Path(path) if path else default_db_path()
        if not create and not self.path.exists():
            raise FileNotFoundError(f"no index at {self.path}: run `albumsort index PHOTOS` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self._db = None
        version = self._schema_version()
        if version == SCHEMA_VERSION:
            return
        if not create:
            raise NotAnIndex(f"{self.path} is not an albumsort index" if version is None else
                              f"{self.path} was made by another albumsort version: run `albumsort index` to rebuild")
        if version is not None:
            self._drop()  # an index is a cache of what the photos say: rebuild it
        self._create()

    @property
    def db(self):
        """sqlite-utils on the same connection, imported only by commands that write."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def query(self, sql: str, params=()) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, list(params))]

    def _schema_version(self) -> int | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError:
            return None
        return int(row[0]) if row else None

    def _drop(self) -> None:
        with self.transaction():
            for t in ("faces", "photos", "errors", "runs", "results", "meta"):
                self.conn.execute(f"DROP TABLE IF EXISTS {t}")

    def _create(self) -> None:
        db = self.db
        with self.transaction():
            db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            db["meta"].upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")
            db["results"].create({
                "hash": str, "width": int, "height": int, "model_version": str,
                "detector_version": str, "n_faces": int, "scored_at": float,
                **{f"score_{e}": float for e in EMOTIONS}, "n_kept": int,
                **{f"best_{e}": float for e in EMOTIONS},
            }, pk="hash", if_not_exists=True)
            db["faces"].create({
                "id": int, "hash": str, "idx": int, "x": float, "y": float, "w": float, "h": float,
                "landmarks": str, "det_score": float, **{f"p_{e}": float for e in EMOTIONS},
                "confidence": float,
            }, pk="id", foreign_keys=[("hash", "results", "hash")], if_not_exists=True)
            db["photos"].create({
                "path": str, "raw": bytes, "size": int, "mtime_ns": int, "hash": str,
                "seen_run": int, "indexed_at": float,
            }, pk="path", foreign_keys=[("hash", "results", "hash")], if_not_exists=True)
            db["errors"].create({
                "path": str, "raw": bytes, "size": int, "mtime_ns": int, "reason": str,
                "seen_run": int, "at": float,
            }, pk="path", if_not_exists=True)
            db["runs"].create({
                "id": int, "started": float, "finished": float, "roots": str, "summary": str,
            }, pk="id", if_not_exists=True)
            db["faces"].create_index(["hash"], if_not_exists=True)
            db["photos"].create_index(["hash"], if_not_exists=True)
            for e in EMOTIONS:
                # The full ranking order, so `top` walks the index and stops after N rows.
                db.execute(f"CREATE INDEX IF NOT EXISTS results_rank_{e} ON results "
                           f"(score_{e} DESC, n_kept DESC, best_{e} DESC)")

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (Ctrl-C included)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    # -- runs -------------------------------------------------------------
    def start_run(self, roots: list[str]) -> int:
        with self.transaction():
            self.db["runs"].insert({"started": time.time(), "roots": "\n".join(roots)})
            return int(self.conn.execute("SELECT max(id) FROM runs").fetchone()[0])

    def finish_run(self, run: int, summary: str) -> None:
        with self.transaction():
            self.db["runs"].update(run, {"finished": time.time(), "summary": summary})

    # -- reads ------------------------------------------------------------
    def photo(self, path: str) -> dict | None:
        rows = self.query("SELECT * FROM photos WHERE path = ?", [path])
        return rows[0] if rows else None

    def result(self, content_hash: str) -> dict | None:
        rows = self.query("SELECT * FROM results WHERE hash = ?", [content_hash])
        return rows[0] if rows else None

    def faces(self, content_hash: str) -> list[dict]:
        return self.query("SELECT * FROM faces WHERE hash = ? ORDER BY idx", [content_hash])

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    # -- writes (each call is one transaction unless inside one) ------------
    def mark_seen(self, paths: list[str], run: int) -> None:
        self.conn.executemany("UPDATE photos SET seen_run = ? WHERE path = ?", [(run, p) for p in paths])

    def put_result(self, content_hash: str, result: dict, faces: list[dict]) -> None:
        self.conn.execute("DELETE FROM faces WHERE hash = ?", [content_hash])
        self.db["results"].upsert({"hash": content_hash, **result}, pk="hash")
        if faces:
            self.db["faces"].insert_all([{"hash": content_hash, **f} for f in faces])

    def put_photo(self, path: str, raw: bytes, size: int, mtime_ns: int, content_hash: str, run: int) -> None:
        self.db["photos"].upsert({
            "path": path, "raw": raw, "size": size, "mtime_ns": mtime_ns, "hash": content_hash,
            "seen_run": run, "indexed_at": time.time()}, pk="path")
        self.conn.execute("DELETE FROM errors WHERE path = ?", [path])

    def put_error(self, path: str, raw: bytes, size: int | None, mtime_ns: int | None, reason: str, run: int) -> None:
        self.db["errors"].upsert({"path": path, "raw": raw, "size": size, "mtime_ns": mtime_ns,
                                  "reason": reason, "seen_run": run, "at": time.time()}, pk="path")

    def remove_unseen(self, root: str, run: int, keep_under: list[str]) -> list[str]:
        """Drop photos and errors under ``root`` not seen in ``run``; returns removed paths.

        Paths under ``keep_under`` (folders that could not be read this run)
        are kept: an unreadable folder is not a deleted one.
        """
        prefix = root.rstrip(os.sep) + os.sep
        removed = []
        for table in ("photos", "errors"):
            rows = self.conn.execute(
                f"SELECT path FROM {table} WHERE substr(path, 1, ?) = ? AND seen_run IS NOT ?",
                [len(prefix), prefix, run]).fetchall()
            for (p,) in rows:
                if any(p == k or p.startswith(k.rstrip(os.sep) + os.sep) for k in keep_under):
                    continue
                self.conn.execute(f"DELETE FROM {table} WHERE path = ?", [p])
                if table == "photos":
                    removed.append(p)
        self.drop_orphans()
        return removed

    def drop_orphans(self) -> None:
        """Results no photo points to any more (the file was deleted or changed)."""
        orphans = "SELECT hash FROM results WHERE hash NOT IN (SELECT hash FROM photos WHERE hash IS NOT NULL)"
        self.conn.execute(f"DELETE FROM faces WHERE hash IN ({orphans})")
        self.conn.execute(f"DELETE FROM results WHERE hash IN ({orphans})")

    def remove_photo(self, path: str) -> None:
        self.conn.execute("DELETE FROM photos WHERE path = ?", [path])
