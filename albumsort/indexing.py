"""``albumsort index``: scan, decode, detect, classify and store, incrementally and in parallel.

This module is the driver: it walks the folders, decides what changed, and
writes each batch of results in one transaction.  The per-photo work (check
the header, hash, decode at the size the detector needs, find and verify the
faces, read small ones from a larger decode, score them) is
``pipeline.Pipeline``'s, mapped over the photos by an executor
(``executors.LocalPool``: one worker process per core, fewer when memory is
short; or ``executors.RayPool``: one actor per CPU of a Ray cluster), so
that every core stays busy and nothing waits for a batch.  A
file whose size and mtime match the index is never opened, nor is an
unchanged file that failed before (it is counted as a known failure); a file
whose content hash is already scored with the current model and detector
(moved, renamed or copied) is not decoded.  The photos still to analyse wait
in a temporary file, not in memory, and the executors keep a bounded number
in flight, so the driver's memory does not grow with the album.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from albumsort import stages
from albumsort.files import lock_path, path_key, path_text
from albumsort.labels import EXPRESSIONS
from albumsort.pipeline import DECODE_SIDE  # noqa: F401  (tests read it from here)
from albumsort.scan import Failure, walk
from albumsort.scores import face_confidence, ranking_columns
from albumsort.store import UNCOUNTED, Index, Stats, is_current

if TYPE_CHECKING:
    from albumsort.executors import Executor


WORKER_MEMORY = (1 << 30) + (256 << 20)
"""Memory one worker may need: the largest decode it accepts (``images.MAX_DECODE_BYTES``) plus
the detector and Python; fewer workers start when the machine has less available."""


def available_memory() -> int | None:
    """Bytes of memory available to new work (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def worker_count(requested: int | None) -> int:
    """``requested``, else one per core, capped so that every worker has ``WORKER_MEMORY``."""
    if requested:
        return requested
    n = os.cpu_count() or 1
    avail = available_memory()
    if avail is not None:
        n = min(n, max(1, avail // WORKER_MEMORY))
    return n


class IndexLocked(Exception):
    """Another ``albumsort index`` holds the index."""


@dataclass
class Summary:
    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    copied: int = 0
    rescored: int = 0
    removed: int = 0
    faces: int = 0
    no_face: int = 0
    failed: int = 0
    known_failed: int = 0
    persons: int = 0  # persons made by this run (``albumsort.people``)
    interrupted: bool = False
    seconds: float = 0.0
    failures: list = field(default_factory=list)
    arrived: list = field(default_factory=list)  # content hashes of new paths whose content was known
    totals: Stats | None = None  # what the whole index holds after the run

    def line(self) -> str:
        """What this run did, then what the index holds (``Index.stats``, as ``status`` counts it)."""
        from albumsort.wording import plural

        parts = [f"{self.indexed:,} indexed", f"{self.unchanged:,} unchanged", f"{self.moved:,} moved",
                 f"{self.removed:,} removed", f"{self.failed:,} failed"]
        if self.rescored:
            parts.insert(1, f"{self.rescored:,} re-scored for a new model or index format")
        if self.copied:
            parts.insert(3, plural(self.copied, "copy"))
        if self.known_failed:
            parts.append(plural(self.known_failed, "known failure") + " (see `albumsort errors`)")
        end = " (interrupted)" if self.interrupted else ""
        t = self.totals
        held = (f"; the index holds {plural(t.photos, 'photo')}, {plural(t.kept_faces, 'kept face')}, "
                f"{plural(t.no_face, 'no-face photo')}" if t else "")
        return ", ".join(parts) + f" in {self.seconds:.1f} s" + end + held


# --------------------------------------------------------------------------
# Main side


def run_index(
    roots: list[str],
    index: Index,
    *,
    workers: int | None = None,
    detector_name: str | None = None,
    model_path: str | None = None,
    max_pixels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    exclude: list[str] | None = None,
    executor: Executor | None = None,
    on_workers: Callable[[int], None] | None = None,
    people: bool | None = None,
) -> Summary:
    """Bring the index up to date with ``roots``; see the module docstring.

    ``on_total(n)`` is told how many files need work once the scan is done,
    ``on_workers(k)`` how many workers analyse them, and ``progress(done,
    total)`` after each batch written.  ``executor`` runs the per-photo work
    (default: a ``LocalPool`` of ``workers`` processes); it is closed before
    this returns.  ``people``: embed faces and group them into persons (None: as the index says, on unless
    ``people forget`` turned them off; True turns them back on).  Raises IndexLocked when another run holds the index;
    KeyboardInterrupt is caught, the work done so far is kept, and
    ``summary.interrupted`` is set.
    """
    from filelock import FileLock, Timeout

    from albumsort.executors import Job, KnownContent, LocalPool
    from albumsort.images import MAX_PIXELS
    from albumsort.pipeline import PipelineSpec

    max_pixels = max_pixels or MAX_PIXELS
    lock = FileLock(lock_path(index.path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if executor is not None:
            executor.close()  # a pool made for this run (a Ray cluster's actors and session) ends with it
        raise IndexLocked(f"another `albumsort index` is updating {index.path}; "
                          "wait for it to finish, then run again") from None
    t0 = time.time()
    summary = Summary()
    try:
        from albumsort import people as persons

        if people:
            with index.transaction():
                persons.turn_on(index)
        spec = PipelineSpec(detector=detector_name, model_path=model_path, max_pixels=max_pixels,
                            people=persons.enabled(index))
        versions = spec.versions()
        abs_roots = [os.path.abspath(r) for r in roots]
        run = index.start_run([path_text(r) for r in abs_roots])
        executor = executor or LocalPool(worker_count(workers))
        job = Job(spec, versions, KnownContent(index.current_keys(versions)))
        try:
            with Todo() as todo:
                unreadable = _scan(index, abs_roots, versions, run, summary, exclude, todo)
                if on_total:
                    on_total(len(todo))
                if on_workers:
                    on_workers(executor.workers)
                _process(index, todo, executor, job, run, summary, progress)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            executor.close()
        if spec.people:
            from albumsort.embeddings import model_version

            with index.transaction():  # also after Ctrl-C: the photos written so far get their persons
                summary.persons = persons.assign(index, model_version())
        if not summary.interrupted:
            with index.transaction():
                removed = []
                for r in abs_roots:
                    # An empty root is more likely an unmounted drive than a deleted album.
                    if os.path.isdir(r) and os.listdir(r):
                        removed += index.remove_unseen(path_key(r), run, unreadable)
            summary.removed = len(removed)
            _count_moves(summary, removed)
        summary.totals = index.stats()
        summary.no_face = summary.totals.no_face
        summary.seconds = time.time() - t0
        index.finish_run(run, summary.line())
        return summary
    finally:
        if executor is not None:
            executor.close()  # also when the run failed before it started (closing twice is harmless)
        lock.release()


def _scan(index: Index, roots: list[str], versions: tuple[str, str], run: int, summary: Summary,
          exclude: list[str] | None, todo: Todo) -> list[bytes]:
    """Walk ``roots``: unchanged photos and known failures are marked seen, the rest added to ``todo``.

    Returns the folders that could not be read (their photos are kept).
    """
    unreadable: list[bytes] = []
    seen: list[bytes] = []
    seen_errors: list[bytes] = []
    lookup = f"SELECT p.size, p.mtime_ns, r.model_version, r.detector_version, {UNCOUNTED} FROM photos p " \
             "LEFT JOIN results r ON r.hash = p.hash WHERE p.raw = ?"
    known_error = "SELECT 1 FROM errors WHERE raw = ? AND size = ? AND mtime_ns = ?"
    for item in walk(roots, exclude):
        raw = path_key(item.path)
        key = path_text(raw)
        if isinstance(item, Failure):
            if item.is_dir:
                unreadable.append(raw)
            known = [raw, item.size, item.mtime_ns]
            if item.mtime_ns is not None and index.conn.execute(known_error, known).fetchone():
                summary.known_failed += 1  # a folder that could not be read before and is unchanged since
                seen_errors.append(raw)
                continue
            summary.failed += 1
            summary.failures.append((key, item.reason))
            with index.transaction():
                index.put_error(raw, item.size, item.mtime_ns, item.reason, run)
            continue
        row = index.conn.execute(lookup, [raw]).fetchone()
        if row and row[0] == item.size and row[1] == item.mtime_ns:
            if (row[2], row[3]) == versions and not row[4]:
                summary.unchanged += 1
                seen.append(raw)
                if len(seen) >= 2000:
                    with index.transaction():
                        index.mark_seen(seen, run)
                    seen = []
                continue
            summary.rescored += 1
        elif index.conn.execute(known_error, [raw, item.size, item.mtime_ns]).fetchone():
            summary.known_failed += 1  # failed before and unchanged since: not opened again
            seen_errors.append(raw)
            continue
        todo.add(raw, item.size, item.mtime_ns)
    with index.transaction():
        index.mark_seen(seen, run)
        index.mark_seen(seen_errors, run, table="errors")
    return unreadable


class Todo:
    """The photos a run must analyse, in scan order, kept in SQLite's private temporary database.

    A million new photos would hold about 500 MB of paths in lists; here the
    driver holds a few MB of cache and SQLite spills the rest to a file it
    has already unlinked, so nothing is left behind even by ``kill -9``.
    """

    CHUNK = 2000
    CACHE_KIB = 4096

    def __enter__(self) -> Todo:
        self.conn = sqlite3.connect("", isolation_level=None)  # "": private, on disk past its cache, self-deleting
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute(f"PRAGMA cache_size=-{self.CACHE_KIB}")  # what it may hold in memory
        self.conn.execute("CREATE TABLE todo (n INTEGER PRIMARY KEY, raw BLOB, size INTEGER, mtime_ns INTEGER)")
        self._buf: list[tuple[bytes, int, int]] = []
        self._n = 0
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def add(self, raw: bytes, size: int, mtime_ns: int) -> None:
        self._buf.append((raw, size, mtime_ns))
        self._n += 1
        if len(self._buf) >= self.CHUNK:
            self._write()

    def _write(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO todo (raw, size, mtime_ns) VALUES (?, ?, ?)", self._buf)
        self.conn.execute("COMMIT")
        self._buf = []

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[tuple[str, str, bytes, int, int]]:
        """(printable path, OS path, raw path, size, mtime_ns) in scan order."""
        if self._buf:
            self._write()
        last = 0
        while True:
            rows = self.conn.execute("SELECT n, raw, size, mtime_ns FROM todo WHERE n > ? ORDER BY n LIMIT ?",
                                     [last, self.CHUNK]).fetchall()
            if not rows:
                return
            for _n, raw, size, mtime_ns in rows:
                yield path_text(raw), os.fsdecode(raw), raw, size, mtime_ns
            last = rows[-1][0]


def _process(index: Index, todo: Todo, executor: Executor, job, run: int, summary: Summary, progress) -> None:
    """Run ``todo`` through ``executor``, writing results in one transaction at least every second."""
    from albumsort.executors import Task

    if not len(todo):
        return
    pending: list[tuple[tuple, object]] = []  # results waiting to be written
    state: dict[str, Any] = {"done": 0, "last_flush": time.time()}
    profile: dict[str, Any] | None = {"photos": [], "store_ms": [], "start": time.time()} if stages.enabled() else None

    def flush(force: bool = False) -> None:
        if pending and (force or len(pending) >= 64
                        or time.time() - state["last_flush"] >= 1.0):  # commit at least every second
            t0 = time.perf_counter()
            _store(index, pending, job.versions, run, summary)
            if profile is not None:
                profile["store_ms"] += [(time.perf_counter() - t0) * 1000.0 / len(pending)] * len(pending)
            state["done"] += len(pending)
            pending.clear()
            state["last_flush"] = time.time()
            if progress:
                progress(state["done"], len(todo))

    tasks = (Task(path, size, (key, path, raw, size, mtime_ns)) for key, path, raw, size, mtime_ns in todo)
    with closing(executor.run(tasks, len(todo), job)) as results:
        for done in results:
            pending.extend((task.ref, res) for task, res in done)
            if profile is not None:
                now = time.time()
                for _, res in done:
                    if getattr(res, "timings", None):
                        t = dict(res.timings or {})
                        t["ipc"] = (now - t.pop("end")) * 1000.0  # from the worker's end to the driver
                        profile["photos"].append(t)
            flush()
    flush(force=True)
    if profile is not None:
        stages.write(os.environ[stages.ENV], {"photos": profile["photos"], "store_ms": profile["store_ms"],
                                              "wall_s": time.time() - profile["start"],
                                              "workers": executor.workers})


def _store(index: Index, pending: list, versions, run: int, summary: Summary) -> None:
    """Write the results of ``pending`` photos in one transaction.

    Content already scored with the current versions (a copy analysed twice
    in one run, or a move that a worker could not look up) keeps its stored
    result: a result row is written once per content.
    """
    from albumsort import people
    from albumsort.pipeline import Analysed, Failed

    with index.transaction():
        for (key, _path, raw, size, mtime_ns), res in pending:
            if isinstance(res, Failed):
                summary.failed += 1
                summary.failures.append((key, res.reason))
                # Size and mtime make a failure "known": skipped until the file changes.
                # Crashes and internal errors are not remembered: they are retried.
                remember = res.remember
                index.put_error(raw, size if remember else None, mtime_ns if remember else None, res.reason, run)
                old = index.photo(raw)
                if old and res.hash and res.hash != old["hash"]:
                    index.remove_photo(raw)  # new content that cannot be read: the old results are stale
                elif old:
                    index.mark_seen([raw], run)  # a read failure is not a deletion: keep what we had
                continue
            if not isinstance(res, Analysed) and not is_current(index.conn, res.hash, versions):
                # A worker's look-up matched content that is not scored after all (a collision of the
                # hashes' first 8 bytes): nothing is stored for this path now, and the next run scores it.
                summary.failed += 1
                summary.failures.append((key, "its content could not be looked up; run `albumsort index` again"))
                index.put_error(raw, None, None, "its content could not be looked up; run again", run)
                continue
            if not isinstance(res, Analysed) or is_current(index.conn, res.hash, versions):
                is_new = index.photo(raw) is None
                index.put_photo(raw, size, mtime_ns, res.hash, run)
                if is_new:
                    summary.arrived.append(res.hash)  # a move or a copy: told apart in _count_moves
                else:
                    summary.indexed += 1
                continue
            faces = []
            for i, f in enumerate(res.faces):
                p, r = f.p, f.readability
                faces.append({
                    "idx": i, "x": f.box[0], "y": f.box[1], "w": f.box[2], "h": f.box[3],
                    "landmarks": json.dumps(list(f.landmarks)) if f.landmarks else None,
                    "det_score": f.det_score, **{f"p_{e}": float(p[j]) for j, e in enumerate(EXPRESSIONS)},
                    "readability": r, "confidence": face_confidence(f.det_score, p, r),
                    "embedding": f.embedding, "embedding_norm": f.embedding_norm,
                })
            index.resolve_corrections(res.hash, faces)  # the user's corrections follow re-detected faces
            people.carry(index, res.hash, faces)  # ...and so do persons
            ranks = ranking_columns(index.corrected_faces(res.hash, faces))
            index.put_result(res.hash, {
                "width": res.width, "height": res.height, "model_version": versions[0],
                "detector_version": versions[1], "n_faces": len(faces), "n_small": res.n_small,
                "truncated": res.truncated, "scored_at": time.time(),
                "dhash": res.dhash, "exif_time": res.exif_time, **ranks}, faces)
            index.put_photo(raw, size, mtime_ns, res.hash, run)
            summary.indexed += 1
            summary.faces += ranks["n_kept"]


def _count_moves(summary: Summary, removed: list[tuple[str, str]]) -> None:
    """A new path whose content left another path this run is a move; other new known content is a copy."""
    from collections import Counter

    gone = Counter(h for _, h in removed)
    moves = 0
    for h in summary.arrived:
        if gone[h] > 0:
            gone[h] -= 1
            moves += 1
    summary.moved = moves
    summary.copied = len(summary.arrived) - moves
    summary.removed = len(removed) - moves
