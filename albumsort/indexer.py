"""``albumsort index``: scan, decode, detect, classify and store, incrementally and in parallel.

Worker processes (one per core, fewer when memory is short) do all the work
on a photo: check its header, hash it, decode it at the size the detector
needs, find and verify the faces, and score them with the emotion model, so
that both cores stay busy and nothing waits for a batch.  The main process
only walks the folders and writes each batch of results in one transaction.  A file whose size and mtime match
the index is never opened, nor is an unchanged file that failed before (it
is counted as a known failure); a file whose content hash is already scored
with the current model and detector (moved, renamed or copied) is not decoded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sqlite3
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Callable

from albumsort.index import Index, Stats, path_key, path_text
from albumsort.preprocess import EMOTIONS
from albumsort.ranking import face_confidence, ranking_columns
from albumsort.scan import Entry, Failure, walk
from albumsort.pipeline import DECODE_SIDE  # noqa: F401  (tests read it from here)


TASKS_PER_WORKER = None
"""Workers are never replaced (None).  They were, every 1,000 photos, while yuface leaked ~35 KB per
detection; on ONNX Runtime one worker's RSS is flat from photo 500 to photo 5,000
(``python benchmarks/worker_memory.py``: 551 MiB, then +3 MiB; benchmarks/README.md)."""

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
    interrupted: bool = False
    seconds: float = 0.0
    failures: list = field(default_factory=list)
    arrived: list = field(default_factory=list)  # content hashes of new paths whose content was known
    totals: Stats | None = None  # what the whole index holds after the run

    def line(self) -> str:
        """What this run did, then what the index holds (``Index.stats``, as ``status`` counts it)."""
        parts = [f"{self.indexed} indexed", f"{self.unchanged} unchanged", f"{self.moved} moved",
                 f"{self.removed} removed", f"{self.failed} failed"]
        if self.rescored:
            parts.insert(1, f"{self.rescored} re-scored for a new model")
        if self.copied:
            parts.insert(3, f"{self.copied} copies")
        if self.known_failed:
            parts.append(f"{self.known_failed} known failures (see `albumsort errors`)")
        end = " (interrupted)" if self.interrupted else ""
        t = self.totals
        held = (f"; the index holds {t.photos:,} photos, {t.kept_faces:,} kept faces, {t.no_face:,} no-face photos"
                if t else "")
        return ", ".join(parts) + f" in {self.seconds:.1f} s" + end + held


# --------------------------------------------------------------------------
# Worker side
_worker: dict = {}


def _init_worker(db_path: str, detector_name: str | None, model_path: str | None, current: tuple[str, str]) -> None:
    """Runs once per worker process: one thread each, the detector and models loaded once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    _exit_with_parent()
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    from albumsort.pipeline import Pipeline, PipelineSpec

    _worker["pipeline"] = Pipeline(PipelineSpec(detector_name, model_path), threads=1)
    from pathlib import Path

    uri = Path(db_path).resolve().as_uri() + "?mode=ro"  # escapes '#', '?' and '%' in the path
    _worker["db"] = sqlite3.connect(uri, uri=True, timeout=30)
    _worker["current"] = current


def _exit_with_parent() -> None:
    """End this worker when the main process dies (kill -9 gives it no chance to stop us)."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="albumsort-parent-watch").start()


def _is_current(content_hash: str) -> bool:
    row = _worker["db"].execute("SELECT model_version, detector_version FROM results WHERE hash = ?",
                                [content_hash]).fetchone()
    return row is not None and tuple(row) == _worker["current"]


def _content_failure(reason: str) -> bool:
    """Failures that depend on the file's bytes alone are remembered; permissions and --max-pixels are not."""
    return not reason.startswith(("permission denied", "cannot read", "image too large:", "not enough memory",
                                  "corrupt image: [Errno"))


def analyse(path: str, max_pixels: int) -> dict:
    """Check, hash, decode, detect and crop one photo (runs in a worker).

    The header is read first, so a junk or oversized file is refused before
    anything large is read or decoded; the hash is computed in chunks.
    Failures that depend only on the file carry ``"remember": True``: the
    index skips the unchanged file on later runs.
    """
    from albumsort.images import ImageError, check_header

    try:
        taken = check_header(path, max_pixels)[3]
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except ImageError as e:
        return {"error": str(e), "remember": _content_failure(str(e))}
    except OSError as e:
        return {"error": f"cannot read: {e.strerror or e}"}
    content_hash = h.hexdigest()
    if _is_current(content_hash):
        return {"hash": content_hash, "known": True}
    try:
        found = _worker["pipeline"].read(path, max_pixels)
    except ImageError as e:
        return {"error": str(e), "hash": content_hash, "remember": _content_failure(str(e))}
    return {"hash": content_hash, "known": False, "exif_time": taken, **found}


# --------------------------------------------------------------------------
# Main side
def current_versions(model_path: str | None, detector_name: str | None) -> tuple[str, str]:
    """(emotion model version, detector version): results made with others are re-scored."""
    from albumsort.pipeline import PipelineSpec

    return PipelineSpec(detector_name, model_path).versions()


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
) -> Summary:
    """Bring the index up to date with ``roots``; see the module docstring.

    ``on_total(n)`` is told how many files need work once the scan is done
    and ``progress(done, total)`` after each one.  Raises IndexLocked when
    another run holds the index; KeyboardInterrupt is caught, the work done
    so far is kept, and ``summary.interrupted`` is set.
    """
    from filelock import FileLock, Timeout

    from albumsort.images import MAX_PIXELS

    max_pixels = max_pixels or MAX_PIXELS
    lock = FileLock(str(index.path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise IndexLocked(f"another `albumsort index` is updating {index.path}; "
                          "wait for it to finish, then run again") from None
    t0 = time.time()
    summary = Summary()
    try:
        versions = current_versions(model_path, detector_name)
        abs_roots = [os.path.abspath(r) for r in roots]
        run = index.start_run([path_text(r) for r in abs_roots])
        workers = worker_count(workers)
        try:
            todo, unreadable = _scan(index, abs_roots, versions, run, summary, exclude)
            if on_total:
                on_total(len(todo))
            _process(index, todo, model_path, versions, run, summary, workers, detector_name, max_pixels, progress)
        except KeyboardInterrupt:
            summary.interrupted = True
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
        lock.release()


def _scan(index: Index, roots: list[str], versions: tuple[str, str], run: int, summary: Summary,
          exclude: list[str] | None = None):
    """Walk ``roots``: unchanged photos and known failures are marked seen, the rest returned as work."""
    todo: list[tuple[str, str, bytes, int, int]] = []
    unreadable: list[bytes] = []
    seen: list[bytes] = []
    seen_errors: list[bytes] = []
    lookup = "SELECT p.size, p.mtime_ns, r.model_version, r.detector_version FROM photos p " \
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
            if (row[2], row[3]) == versions:
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
        todo.append((key, item.path, raw, item.size, item.mtime_ns))
    with index.transaction():
        index.mark_seen(seen, run)
        index.mark_seen(seen_errors, run, table="errors")
    return todo, unreadable


def _process(index, todo, model_path, versions, run, summary, workers, detector_name, max_pixels, progress):
    """Run ``todo`` through worker processes; a crashed worker costs only its own photos."""
    from concurrent.futures.process import BrokenProcessPool

    if not todo:
        return
    ctx = get_context("spawn")
    pending: list[tuple[tuple, dict]] = []  # scored photos waiting to be written
    state = {"done": 0, "last_flush": time.time()}
    queue = list(reversed(todo))  # pop() hands out photos in scan order

    def flush(force: bool = False) -> None:
        if pending and (force or len(pending) >= 64
                        or time.time() - state["last_flush"] >= 1.0):  # commit at least every second
            _store(index, pending, versions, run, summary)
            state["done"] += len(pending)
            pending.clear()
            state["last_flush"] = time.time()
            if progress:
                progress(state["done"], len(todo))

    recycle = {"max_tasks_per_child": TASKS_PER_WORKER} if sys.version_info >= (3, 11) else {}
    while queue:
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(str(index.path), detector_name, model_path, versions), **recycle)
        inflight: dict[Future, tuple] = {}
        try:
            while queue or inflight:
                while queue and len(inflight) < workers * 4:
                    task = queue.pop()
                    inflight[pool.submit(analyse, task[1], max_pixels)] = task
                finished, _ = wait(list(inflight), timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = inflight.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        res = {"error": "a worker process crashed on this file (out of memory?)"}
                    except Exception as e:
                        res = {"error": f"internal error: {type(e).__name__}: {e}"}
                    pending.append((task, res))
                flush(force=not inflight)
            pool.shutdown()
        except BrokenProcessPool:
            # Submitting to a pool whose worker died: start a new pool for the rest.
            for task in inflight.values():
                pending.append((task, {"error": "a worker process crashed on this file (out of memory?)"}))
            pool.shutdown(wait=False, cancel_futures=True)
        except KeyboardInterrupt:
            for p in list((getattr(pool, "_processes", None) or {}).values()):
                p.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    flush(force=True)


def _store(index: Index, pending: list, versions, run: int, summary: Summary) -> list:
    """Write the results of ``pending`` photos in one transaction."""
    with index.transaction():
        for (key, _path, raw, size, mtime_ns), res in pending:
            if "error" in res:
                summary.failed += 1
                summary.failures.append((key, res["error"]))
                # Size and mtime make a failure "known": skipped until the file changes.
                # Crashes and internal errors are not remembered: they are retried.
                remember = res.get("remember", False)
                index.put_error(raw, size if remember else None, mtime_ns if remember else None, res["error"], run)
                old = index.photo(raw)
                if old and res.get("hash") and res["hash"] != old["hash"]:
                    index.remove_photo(raw)  # new content that cannot be read: the old results are stale
                elif old:
                    index.mark_seen([raw], run)  # a read failure is not a deletion: keep what we had
                continue
            if res["known"]:
                is_new = index.photo(raw) is None
                index.put_photo(raw, size, mtime_ns, res["hash"], run)
                if is_new:
                    summary.arrived.append(res["hash"])  # a move or a copy: told apart in _count_moves
                else:
                    summary.indexed += 1
                continue
            faces = []
            for i, f in enumerate(res["faces"]):
                p, r = f["p"], f["readability"]
                faces.append({
                    "idx": i, "x": f["box"][0], "y": f["box"][1], "w": f["box"][2], "h": f["box"][3],
                    "landmarks": json.dumps(f["landmarks"]) if f["landmarks"] else None,
                    "det_score": f["score"], **{f"p_{e}": float(p[j]) for j, e in enumerate(EMOTIONS)},
                    "readability": r, "confidence": face_confidence(f["score"], p, r),
                })
            ranks = ranking_columns(faces)
            index.put_result(res["hash"], {
                "width": res["width"], "height": res["height"], "model_version": versions[0],
                "detector_version": versions[1], "n_faces": len(faces), "scored_at": time.time(),
                "dhash": res["dhash"], "exif_time": res["exif_time"], **ranks}, faces)
            index.put_photo(raw, size, mtime_ns, res["hash"], run)
            summary.indexed += 1
            summary.faces += ranks["n_kept"]
    return pending


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
