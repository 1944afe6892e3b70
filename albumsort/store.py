"""The SQLite index: where photos, faces and failures are kept between runs.

Results are keyed by the file's content hash, not its path, so a moved,
renamed or copied photo keeps its faces without running any model again.
Photos and failures are keyed by the path's raw bytes (two names that print
alike never share a row); ``path`` beside them is the printable form.
Every batch of photos is written in one transaction, with SQLite in WAL
mode, so a kill or a power cut at any moment leaves either the old state or
the new one, never half of it.

The file carries albumsort's own SQLite ``application_id``.  albumsort
never writes to a database that is not empty and not its own, and commands
that only read open the index read-only (see ``Index._connect_readonly``),
so neither another program's database nor a backup copy is ever changed.

Columns added since schema 3 (``ADDED_COLUMNS``) are added in place by the
next ``index`` run (``ALTER TABLE ... ADD COLUMN``: nothing else changes,
and an older albumsort still reads the file); until then readers see them
as NULL, "not known".
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np  # imported by index runs only: read commands stay fast

from albumsort.files import (
    APPLICATION_ID,
    DamagedIndex,
    IndexChanged,
    NotAnIndex,
    carries_our_id,
    changed_message,
    damaged_message,
    default_db_path,
    path_key,
    path_text,
    run_in_progress,
)
from albumsort.labels import EXPRESSIONS
from albumsort.scores import DEFAULT_MIN_CONFIDENCE, ranking_columns

SCHEMA_VERSION = 3


ADDED_COLUMNS = {
    "results": {"n_small": "INTEGER", "truncated": "REAL",
                **{f"{k}_{e}": ("REAL" if k != "shows" else "INTEGER") + " NOT NULL DEFAULT 0"
                   for e in EXPRESSIONS[4:] for k in ("score", "best", "shows")}},
    "faces": {**{f"p_{e}": "REAL NOT NULL DEFAULT 0" for e in EXPRESSIONS[4:]},
              "embedding": "BLOB", "embedding_norm": "REAL", "person": "INTEGER"},
}
"""Columns newer than schema 3: added to an older index in place.  ``n_small`` and ``truncated`` are NULL
until its photos are read again; the expressions beyond the four read 0 ("not read by that model") until the
next ``index`` re-scores the photos with a seven-expression model; faces have no embedding or person (NULL)
until their photos are read again (``albumsort.people``)."""

ON_ADDED = {("results", "truncated"):
            "UPDATE errors SET size = NULL, mtime_ns = NULL WHERE reason LIKE 'truncated file%'"}
"""What adding a column changes besides: files that failed only because they end early (the old reason
``images.OLD_TRUNCATED``) are read again by the next run, which reads them as far as they go."""

OWN_TABLES = frozenset({"meta", "results", "faces", "photos", "errors", "runs", "corrections", "persons",
                        "sqlite_sequence"})

LEGACY_SCHEMAS = ("1", "2")
"""Schema versions albumsort wrote before its indexes carried an application_id."""


def under_sql(raw: bytes, column: str = "raw", itself: bool = True) -> tuple[str, list]:
    """SQL and its parameters for paths under the folder ``raw`` (and ``raw`` itself, with ``itself``): the one
    folder-prefix test.  A byte prefix ending in the separator: ``/a/b`` never matches ``/a/bc``."""
    prefix = raw.rstrip(os.sep.encode()) + os.sep.encode()
    if itself:
        return f"({column} = ? OR substr({column}, 1, ?) = ?)", [raw, len(prefix), prefix]
    return f"substr({column}, 1, ?) = ?", [len(prefix), prefix]


UNCOUNTED = "coalesce(r.n_small IS NULL AND r.n_kept = 0, 0)"
"""SQL: a no-face result stored before small faces were counted (``n_small``): re-read once to count them."""


def is_current(conn: sqlite3.Connection, content_hash: str, versions: tuple) -> bool:
    """Whether content is scored with the current (model, detector) versions and needs no re-read: the one
    definition of "current" (the driver's walk and the workers' look-ups both ask it)."""
    row = conn.execute(f"SELECT model_version, detector_version, {UNCOUNTED} FROM results r WHERE hash = ?",
                       [content_hash]).fetchone()
    return row is not None and tuple(row[:2]) == tuple(versions) and not row[2]


def photo_emotion_sql(results: str = "r", expressions: tuple = EXPRESSIONS) -> str:
    """SQL for a photo's expression: the one of its highest score among ``expressions``, the first on a tie.

    Only meaningful for a photo with a kept face (``n_kept > 0``); the one
    definition ``status``, the report and the index summary count by.
    """
    cases = []
    for i, e in enumerate(expressions[:-1]):
        rest = [f"{results}.score_{o}" for o in expressions[i + 1:]]
        best = f"max({', '.join(rest)})" if len(rest) > 1 else rest[0]
        cases.append(f"WHEN {results}.score_{e} >= {best} THEN '{e}'")
    return f"CASE {' '.join(cases)} ELSE '{expressions[-1]}' END"


@dataclass
class Stats:
    """What the index holds, counted one way everywhere (``status``, the report, the summary of a run).

    A *photo* is an indexed file: a copy in another folder is another photo.
    A photo's *faces* are every face the detector found in it; its *kept
    faces* those at or above the default confidence.  A photo with no kept
    face is a *no-face photo*; any other photo's *emotion* is the emotion of
    its highest score.  So ``no_face + sum(by_emotion) == photos``.
    """

    photos: int
    faces: int
    kept_faces: int
    no_face: int
    by_emotion: dict
    failed: int
    min_confidence: float = DEFAULT_MIN_CONFIDENCE


class Index:
    """albumsort's tables: read with plain sqlite3 (fast to import), written through sqlite-utils.

    ``create=False`` opens read-only: nothing in the file or beside it is
    written, so it works on read-only mounts and leaves the journal mode alone.
    """

    def __init__(self, path: str | Path | None = None, create: bool = True):
        self.path = Path(path) if path else default_db_path()
        self.readonly = not create
        self._db = None
        self.immutable = False
        if self.readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no index at {self.path}: run `albumsort index PHOTOS` first")
            self.conn = self._connect_readonly()
            try:
                self._check_readable()
            except (NotAnIndex, DamagedIndex):
                if self.changed():
                    raise IndexChanged(changed_message(self.path)) from None
                raise
            return
        if self.path.exists() and self.path.stat().st_size > 0:
            probe = self._connect_readonly()
            try:
                version = self._owned_version(probe)
            finally:
                probe.close()
                self.immutable = False
        else:
            version = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        if version == SCHEMA_VERSION:
            self._add_columns()
            return
        if version:
            self._drop()  # an older albumsort index is a cache of what the photos say: rebuild it
        self._create()

    # -- opening ------------------------------------------------------------
    def _file_state(self) -> tuple:
        """What tells that the file was written: its identity, size and mtime, and whether a ``-wal`` exists."""
        try:
            st = os.stat(self.path)
        except OSError:
            return ()
        return st.st_ino, st.st_size, st.st_mtime_ns, os.path.lexists(str(self.path) + "-wal")

    def changed(self) -> bool:
        """Whether an ``immutable`` read may have been torn: the file was written since it was opened."""
        return self.immutable and (self._file_state() != self._opened or run_in_progress(self.path))

    def _connect_readonly(self) -> sqlite3.Connection:
        """A read-only connection that creates nothing beside the file and is safe beside a writer.

        ``index`` writes in WAL mode and, when it closes, turns the file back
        to a rollback journal (``close``), so between runs the header says
        so and a plain ``mode=ro`` reader needs no ``-wal``/``-shm`` file:
        it creates nothing, and SQLite's locks keep its reads whole while an
        ``index`` run writes.  During a run the writer's ``-wal``/``-shm``
        exist and ``mode=ro`` shares them.

        Only a file whose header still says WAL without a ``-wal`` beside it
        (an index from an older albumsort, or one a reader held while
        ``index`` closed) is opened ``immutable``, since a WAL reader there
        would create both files and leave them.  ``immutable`` reads the
        file as it is, with no locks: a writer starting meanwhile can make a
        query fail or read half-written pages, so such a failure is never
        called damage when the file changed (``changed``, ``IndexChanged``):
        the command says to run again.  On read-only media nothing can
        write, so ``immutable`` is always safe there.
        """
        uri = self.path.resolve().as_uri()
        writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        busy = os.path.lexists(str(self.path) + "-wal") or run_in_progress(self.path)
        try:
            with open(self.path, "rb") as f:
                wal_header = f.read(20)[18:20] == b"\x02\x02"
        except OSError:
            wal_header = True
        plain = not wal_header or (writable and busy)
        self._opened = self._file_state()
        self.immutable = not plain
        conn = sqlite3.connect(f"{uri}?mode=ro" if plain else f"{uri}?immutable=1", uri=True,
                               timeout=30, isolation_level=None)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            if not (wal_header and writable and busy):
                raise
            conn.close()  # e.g. a WAL index on media that turned read-only under us
            self.immutable = True
            conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30, isolation_level=None)
        except sqlite3.DatabaseError as e:
            conn.close()
            self._not_ours(e)
        conn.row_factory = sqlite3.Row
        return conn

    def _not_ours(self, e: Exception):
        """SQLite cannot read the file: albumsort's own id in its header makes it a damaged index, to rebuild."""
        if carries_our_id(self.path):
            raise DamagedIndex(damaged_message(self.path, e)) from None
        raise NotAnIndex(f"{self.path} is not an albumsort index ({e}); refusing to touch it") from None

    def _owned_version(self, conn: sqlite3.Connection) -> int:
        """The schema version of albumsort's index in ``conn``; 0 for an empty database; raises if foreign."""
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            self._not_ours(e)
        if app_id == 0 and not tables:
            return 0
        foreign = NotAnIndex(f"{self.path} is not an albumsort index (another program's database?); "
                             "refusing to change it: choose another --db")
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and not tables <= OWN_TABLES):
            raise foreign
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            row = None  # no meta table
        except sqlite3.DatabaseError as e:
            raise DamagedIndex(damaged_message(self.path, e)) from None
        if app_id == 0:
            # Before application_id, albumsort indexes (schema 1 and 2) had exactly these tables.
            if not (row and row[0] in LEGACY_SCHEMAS and {"meta", "results", "photos", "faces"} <= tables):
                raise foreign
        try:
            return int(row[0]) if row else -1
        except ValueError:
            raise DamagedIndex(damaged_message(self.path, ValueError(f"schema version {row[0]!r}"))) from None

    def _check_readable(self) -> None:
        try:
            version = self._owned_version(self.conn)
        except (NotAnIndex, DamagedIndex):
            self.conn.close()
            raise
        if version != SCHEMA_VERSION:
            self.conn.close()
            raise NotAnIndex(f"{self.path} is empty or was made by another albumsort version: "
                             "run `albumsort index PHOTOS` to rebuild it")

    @property
    def db(self):
        """sqlite-utils on the same connection, imported only by commands that write."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def query(self, sql: str, params=()) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, list(params))]

    def _drop(self) -> None:
        with self.transaction():
            for t in ("faces", "photos", "errors", "runs", "results", "meta"):
                self.conn.execute(f"DROP TABLE IF EXISTS {t}")

    def _create(self) -> None:
        db = self.db
        with self.transaction():
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            db["meta"].upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")
            db["results"].create({
                "hash": str, "width": int, "height": int, "model_version": str,
                "detector_version": str, "n_faces": int, "n_small": int, "truncated": float, "scored_at": float,
                **{f"score_{e}": float for e in EXPRESSIONS}, "n_kept": int,
                **{f"best_{e}": float for e in EXPRESSIONS}, **{f"shows_{e}": int for e in EXPRESSIONS},
                "dhash": int, "exif_time": float,
            }, pk="hash", if_not_exists=True)
            db["faces"].create({
                "id": int, "hash": str, "idx": int, "x": float, "y": float, "w": float, "h": float,
                "landmarks": str, "det_score": float, **{f"p_{e}": float for e in EXPRESSIONS},
                "readability": float, "confidence": float, "embedding": bytes, "embedding_norm": float,
                "person": int,
            }, pk="id", foreign_keys=[("hash", "results", "hash")], if_not_exists=True)
            db["photos"].create({
                "raw": bytes, "path": str, "size": int, "mtime_ns": int, "hash": str,
                "taken": float, "taken_from": str, "seen_run": int, "indexed_at": float,
            }, pk="raw", foreign_keys=[("hash", "results", "hash")], if_not_exists=True)
            db["errors"].create({
                "raw": bytes, "path": str, "size": int, "mtime_ns": int, "reason": str,
                "seen_run": int, "at": float,
            }, pk="raw", if_not_exists=True)
            db["runs"].create({
                "id": int, "started": float, "finished": float, "roots": str, "summary": str,
            }, pk="id", if_not_exists=True)
            self._create_corrections()
            db["faces"].create_index(["hash"], if_not_exists=True)
            db["photos"].create_index(["hash"], if_not_exists=True)
            db["photos"].create_index(["path"], if_not_exists=True)
            db["photos"].create_index(["taken"], if_not_exists=True)
            self._rank_indexes()

    def _create_corrections(self) -> None:
        """What the user says: one row per content and face (0: the whole photo), kept across reruns,
        model upgrades and moves because it is keyed by content (see ``albumsort.corrections``); and the
        persons they named (``albumsort.people``)."""
        from albumsort.people import create_table

        create_table(self.conn)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS corrections (hash TEXT NOT NULL, face INTEGER NOT NULL, face_idx INTEGER, "
            "x REAL, y REAL, w REAL, h REAL, expression TEXT, hidden INTEGER NOT NULL DEFAULT 0, at REAL, "
            "PRIMARY KEY (hash, face))")

    def _rank_indexes(self) -> None:
        for e in EXPRESSIONS:
            # The full ranking order, so `top` walks the index and stops after N rows.
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS results_rank_{e} ON results "
                              f"(score_{e} DESC, n_kept DESC, best_{e} DESC)")

    def _add_columns(self) -> None:
        """Add ``ADDED_COLUMNS`` (and their ranking indexes) an index of this schema lacks, in one transaction;
        nothing else changes."""
        with self.transaction():
            for table, cols in ADDED_COLUMNS.items():
                have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
                for col, kind in cols.items():
                    if col not in have:
                        self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
                        if (table, col) in ON_ADDED:
                            self.conn.execute(ON_ADDED[(table, col)])
            self._rank_indexes()
            self._create_corrections()
        self.__dict__.pop("expressions", None)
        self.__dict__.pop("has_corrections", None)
        self.__dict__.pop("has_people", None)

    @property
    def has_corrections(self) -> bool:
        """Whether the file has the corrections table (an index opened read-only before it existed has not)."""
        if "has_corrections" not in self.__dict__:
            self.__dict__["has_corrections"] = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'corrections'").fetchone() is not None
        return self.__dict__["has_corrections"]

    def faces_sql(self) -> str:
        """A FROM item with every face as ranking reads it: the user's corrections applied to the model's values.

        A corrected face (its own row, else its photo's) reads its expression with probability 1 and
        readability 1, so its confidence is its detector score.  ``faces`` itself keeps the model's values.
        """
        if not self.has_corrections:
            return "faces"
        e = "coalesce(cf_.expression, cp_.expression)"
        probs = ", ".join(f"CASE WHEN {e} IS NULL THEN f_.p_{x} ELSE ({e} = '{x}') * 1.0 END AS p_{x}"
                          for x in self.expressions)
        person = "f_.person" if self.has_column("faces", "person") else "NULL AS person"
        return (f"(SELECT f_.hash, f_.idx, f_.x, f_.y, f_.w, f_.h, f_.det_score, {person}, {probs}, "
                f"CASE WHEN {e} IS NULL THEN f_.readability ELSE 1.0 END AS readability, "
                f"CASE WHEN {e} IS NULL THEN f_.confidence ELSE f_.det_score END AS confidence "
                "FROM faces f_ LEFT JOIN corrections cf_ ON cf_.hash = f_.hash AND cf_.face > 0 "
                "AND cf_.face_idx = f_.idx LEFT JOIN corrections cp_ ON cp_.hash = f_.hash AND cp_.face = 0)")

    def not_hidden_sql(self, alias: str = "p") -> str:
        """`` AND`` clause keeping photos the user hid (``albumsort hide``) out of a list."""
        if not self.has_corrections:
            return ""
        return f" AND {alias}.hash NOT IN (SELECT hash FROM corrections WHERE face = 0 AND hidden = 1)"

    def corrections(self, content_hash: str | None = None) -> list[dict]:
        """The user's corrections (of one content, or all), photo-level first."""
        if not self.has_corrections:
            return []
        if content_hash is None:
            return self.query("SELECT * FROM corrections ORDER BY at, hash, face")
        return self.query("SELECT * FROM corrections WHERE hash = ? ORDER BY face", [content_hash])

    def corrected_faces(self, content_hash: str, faces: list[dict] | None = None) -> list[dict]:
        """The faces of ``content_hash`` as ranking reads them (``faces_sql`` in Python)."""
        from albumsort.corrections import apply

        faces = self.faces(content_hash) if faces is None else faces
        return apply(faces, self.corrections(content_hash))

    def resolve_corrections(self, content_hash: str, faces: list[dict]) -> None:
        """Point each face correction of ``content_hash`` at the face it was made on, among ``faces`` (new
        detections after a detector change), by the box it recorded; NULL when no face overlaps it."""
        from albumsort.corrections import match

        for c in self.corrections(content_hash):
            if c["face"] > 0:
                self.conn.execute("UPDATE corrections SET face_idx = ? WHERE hash = ? AND face = ?",
                                  [match(c, faces), content_hash, c["face"]])

    def rerank(self, content_hash: str) -> None:
        """Recompute a result's precomputed ranking columns from its faces with the corrections applied."""
        if self.result(content_hash) is not None:
            self.db["results"].update(content_hash, ranking_columns(self.corrected_faces(content_hash)))

    @property
    def expressions(self) -> tuple[str, ...]:
        """The expressions this file has columns for: all seven, or the four of an index written before them
        and opened read-only (the next ``index`` run adds the rest)."""
        if "expressions" not in self.__dict__:
            have = {r[1] for r in self.conn.execute("PRAGMA table_info(faces)")}
            self.__dict__["expressions"] = tuple(e for e in EXPRESSIONS if f"p_{e}" in have)
        return self.__dict__["expressions"]

    def has_column(self, table: str, column: str) -> bool:
        """Whether the file has ``column`` (a read-only open of an older index may lack an added one)."""
        return any(r[1] == column for r in self.conn.execute(f"PRAGMA table_info({table})"))

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
        """Close; a writer first turns the file back to a rollback journal, so readers need no immutable mode.

        That needs no other connection to hold the WAL: when a reader does,
        the file stays in WAL mode (readers cope, see ``_connect_readonly``)
        and the next ``index`` run tries again.
        """
        if not self.readonly:
            try:
                self.conn.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError:
                pass
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
    def photo(self, path: str | bytes) -> dict | None:
        """The photo row for a path given as raw bytes (or a str path), else for its printed form."""
        rows = self.query("SELECT * FROM photos WHERE raw = ?", [path_key(path)])
        if not rows and isinstance(path, str):
            rows = self.query("SELECT * FROM photos WHERE path = ? ORDER BY raw LIMIT 1", [path])
        return rows[0] if rows else None

    def error(self, path: str | bytes) -> dict | None:
        rows = self.query("SELECT * FROM errors WHERE raw = ?", [path_key(path)])
        return rows[0] if rows else None

    def result(self, content_hash: str) -> dict | None:
        rows = self.query("SELECT * FROM results WHERE hash = ?", [content_hash])
        return rows[0] if rows else None

    def faces(self, content_hash: str) -> list[dict]:
        return self.query("SELECT * FROM faces WHERE hash = ? ORDER BY idx", [content_hash])

    def stats(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE, where: str = "", params=()) -> Stats:
        """Every count of the index in one query (see ``Stats`` for what each one means).

        ``where``/``params`` (``ranking.Filters.sql(n_faces="s.n_kept")``, on photos ``p``) and
        ``min_confidence`` count only what a list with those options sees, by the same definitions.
        """
        exprs = self.expressions
        by = {e: 0 for e in EXPRESSIONS}
        photos = faces = kept = no_face = 0
        if where or abs(min_confidence - DEFAULT_MIN_CONFIDENCE) > 1e-12:
            # A photo's emotion is the one of its highest score; with one threshold for every emotion
            # that is the one of the highest confidence-weighted sum, so the sums stand in for the scores.
            sums = ", ".join(f"sum(CASE WHEN confidence >= ? THEN confidence * p_{e} ELSE 0 END) AS score_{e}"
                             for e in exprs)
            sql = (f"WITH s AS (SELECT hash, count(*) AS n_faces, sum(confidence >= ?) AS n_kept, {sums} "
                   f"FROM {self.faces_sql()} GROUP BY hash) "
                   f"SELECT CASE WHEN coalesce(s.n_kept, 0) = 0 THEN '' ELSE {photo_emotion_sql('s', exprs)} END "
                   "AS e, count(*), coalesce(sum(s.n_faces), 0), coalesce(sum(s.n_kept), 0) "
                   f"FROM photos p LEFT JOIN s ON s.hash = p.hash WHERE 1{where} GROUP BY 1")
            rows = self.conn.execute(sql, [min_confidence] * (1 + len(exprs)) + list(params))
        else:
            rows = self.conn.execute(
                f"SELECT CASE WHEN coalesce(r.n_kept, 0) = 0 THEN '' ELSE {photo_emotion_sql('r', exprs)} END AS e, "
                "count(*), coalesce(sum(r.n_faces), 0), coalesce(sum(r.n_kept), 0) "
                "FROM photos p LEFT JOIN results r ON r.hash = p.hash GROUP BY 1")
        for e, n, nf, nk in rows:
            photos, faces, kept = photos + n, faces + nf, kept + nk
            if e:
                by[e] = n
            else:
                no_face = n
        failed = self.conn.execute("SELECT count(*) FROM errors").fetchone()[0]
        return Stats(photos, faces, kept, no_face, by, failed, min_confidence)

    def missing(self, under: bytes | None = None) -> list[str]:
        """Printable paths of indexed photos (under the folder ``under``) whose file is not on disk now.

        A deleted, renamed or unplugged folder's photos stay in the index until ``index`` runs on a folder
        above them or ``forget`` drops them.  One listing per folder, not one stat per photo, and a folder
        that is gone answers for all its photos at once; a folder that cannot be listed (permission
        denied) is not called missing.
        """
        import errno

        sql = "SELECT raw, path FROM photos"
        params: list = []
        if under is not None:
            cond, params = under_sql(under)
            sql += f" WHERE {cond}"
        listed: dict[bytes, set | None] = {}
        out = []
        for raw, path in self.conn.execute(sql + " ORDER BY raw", params):
            folder, name = os.path.split(raw)
            if folder not in listed:
                if len(listed) > 256:
                    listed.clear()
                try:
                    listed[folder] = set(os.listdir(folder))
                except OSError as e:
                    listed[folder] = set() if e.errno in (errno.ENOENT, errno.ENOTDIR) else None
            names = listed[folder]
            if names is not None and name not in names:
                out.append(path)
        return out

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    # -- writes (each call is one transaction unless inside one) ------------
    def mark_seen(self, raws: list[bytes], run: int, table: str = "photos") -> None:
        self.conn.executemany(f"UPDATE {table} SET seen_run = ? WHERE raw = ?", [(run, r) for r in raws])

    def put_result(self, content_hash: str, result: dict, faces: list[dict]) -> None:
        """Store one content's result and faces; an expression a face (or model) has no value for reads 0."""
        self.conn.execute("DELETE FROM faces WHERE hash = ?", [content_hash])
        zeros = {f"{k}_{e}": 0 for e in self.expressions for k in ("score", "best", "shows")}
        self.db["results"].upsert({"hash": content_hash, **zeros, **result}, pk="hash")
        if faces:
            none = {f"p_{e}": 0.0 for e in self.expressions}
            self.db["faces"].insert_all([{"hash": content_hash, **none, **f} for f in faces])

    def put_photo(self, raw: bytes, size: int, mtime_ns: int, content_hash: str, run: int) -> None:
        """Record a photo; its capture time is the EXIF time of its content, else its file's mtime."""
        from albumsort.images import local_seconds

        row = self.conn.execute("SELECT exif_time FROM results WHERE hash = ?", [content_hash]).fetchone()
        exif = row[0] if row else None
        self.db["photos"].upsert({
            "raw": raw, "path": path_text(raw), "size": size, "mtime_ns": mtime_ns, "hash": content_hash,
            "taken": exif if exif is not None else local_seconds(mtime_ns / 1e9),
            "taken_from": "exif" if exif is not None else "mtime",
            "seen_run": run, "indexed_at": time.time()}, pk="raw")
        self.conn.execute("DELETE FROM errors WHERE raw = ?", [raw])

    def put_error(self, raw: bytes, size: int | None, mtime_ns: int | None, reason: str, run: int) -> None:
        self.db["errors"].upsert({"raw": raw, "path": path_text(raw), "size": size, "mtime_ns": mtime_ns,
                                  "reason": reason, "seen_run": run, "at": time.time()}, pk="raw")

    def remove_unseen(self, root: bytes, run: int, keep_under: list[bytes]) -> list[tuple[str, str]]:
        """Drop photos and errors under ``root`` not seen in ``run``; returns removed (path, hash) pairs.

        Paths under ``keep_under`` (folders that could not be read this run)
        are kept: an unreadable folder is not a deleted one.
        """
        sep = os.sep.encode()
        keep = [k.rstrip(sep) for k in keep_under]
        removed = []
        cond, params = under_sql(root, itself=False)
        for table in ("photos", "errors"):
            cols = "raw, path, hash" if table == "photos" else "raw, path, NULL"
            rows = self.conn.execute(f"SELECT {cols} FROM {table} WHERE {cond} AND seen_run IS NOT ?",
                                     [*params, run]).fetchall()
            for raw, path, h in rows:
                if any(raw == k or raw.startswith(k + sep) for k in keep):
                    continue
                self.conn.execute(f"DELETE FROM {table} WHERE raw = ?", [raw])
                if table == "photos":
                    removed.append((path, h))
        self.drop_orphans()
        return removed

    def drop_orphans(self) -> None:
        """Results no photo points to any more (the file was deleted or changed)."""
        orphans = "SELECT hash FROM results WHERE hash NOT IN (SELECT hash FROM photos WHERE hash IS NOT NULL)"
        self.conn.execute(f"DELETE FROM faces WHERE hash IN ({orphans})")
        self.conn.execute(f"DELETE FROM results WHERE hash IN ({orphans})")

    def held_under(self, raw: bytes) -> tuple[int, int]:
        """(photos, failures) the index holds at the path ``raw`` or under it as a folder."""
        cond, params = under_sql(raw)
        photos, failures = (self.conn.execute(f"SELECT count(*) FROM {t} WHERE {cond}", params).fetchone()[0]
                            for t in ("photos", "errors"))
        return photos, failures

    def under(self, raw: bytes) -> tuple[list[dict], list[dict]]:
        """(photo rows, failures as path and reason) under the folder ``raw``, by path (``show FOLDER``)."""
        cond, params = under_sql(raw, itself=False)
        return (self.query(f"SELECT * FROM photos WHERE {cond} ORDER BY path, raw", params),
                self.query(f"SELECT path, reason FROM errors WHERE {cond} ORDER BY path, raw", params))

    def current_keys(self, versions: tuple) -> np.ndarray:
        """The first 8 bytes of every content hash scored with these (model, detector) versions and needing no
        re-read, sorted (``executors.KnownContent``: what workers look content up in)."""
        import numpy as np

        rows = self.conn.execute(f"SELECT hash FROM results r WHERE model_version = ? AND detector_version = ? "
                                 f"AND NOT {UNCOUNTED}", list(versions))
        return np.unique(np.fromiter((int(h[:16], 16) for (h,) in rows), np.uint64))

    def truncated(self) -> int:
        """Photos whose file ends early and was read as far as it goes (0 before the column existed)."""
        if not self.has_column("results", "truncated"):
            return 0
        return self.conn.execute("SELECT count(*) FROM photos p JOIN results r ON r.hash = p.hash "
                                 "WHERE r.truncated IS NOT NULL").fetchone()[0]

    def scored_by(self) -> list[dict]:
        """Each (model, detector) version pair the photos were scored by: photos, first and last scoring time."""
        return self.query("SELECT r.model_version, r.detector_version, count(*) AS n, min(r.scored_at) AS first, "
                          "max(r.scored_at) AS last FROM photos p JOIN results r ON r.hash = p.hash "
                          "GROUP BY 1, 2 ORDER BY n DESC")

    def last_finished(self) -> float | None:
        """When the last ``index`` run that finished did."""
        return self.conn.execute("SELECT max(finished) FROM runs").fetchone()[0]

    def last_run(self) -> dict | None:
        rows = self.query("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None

    def failures(self) -> list[dict]:
        """Every file and folder that failed to index, as path and reason, by path."""
        return self.query("SELECT path, reason FROM errors ORDER BY path, raw")

    def forget(self, raw: bytes) -> tuple[int, int]:
        """Drop the photos and failures at ``raw`` or under it, and results no photo uses any more.

        Returns (photos, failures) dropped.  Only the index changes: no file is opened or touched.
        """
        cond, params = under_sql(raw)
        counts = []
        for table in ("photos", "errors"):
            cur = self.conn.execute(f"DELETE FROM {table} WHERE {cond}", params)
            counts.append(cur.rowcount)
        self.drop_orphans()
        return counts[0], counts[1]

    def remove_photo(self, raw: bytes) -> None:
        self.conn.execute("DELETE FROM photos WHERE raw = ?", [raw])
