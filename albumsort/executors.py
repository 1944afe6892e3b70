"""Executors: what runs the photo pipeline over the driver's tasks, on this machine or on a Ray cluster.

The driver (``indexer.run_index``) scans, decides what changed, writes the
index in transactions and shows progress.  An executor only maps
``Pipeline.analyse`` over tasks and hands back ``(task, result)`` pairs as
they complete, in lists, at least once a second (an empty list when nothing
finished, so the driver can commit on time):

* :class:`LocalPool`: worker processes on this machine (today's process
  pool); a worker that crashes costs only the photos it held, and a new pool
  takes the rest.
* :class:`RayPool`: one Ray actor per CPU of a cluster, each holding one
  pipeline (the networks loaded once); batches of photos go to the actor with
  the least work; the engine restarts dead actors and retries their batches
  (bounded); only paths travel, or with ``ship_bytes`` the files' bytes.

Both keep a bounded number of photos in flight, so the driver's memory does
not grow with the album.  Neither reads nor writes the index: the one
look-up workers need, "is this content already scored?" (it spares decoding
a moved or copied photo), is answered by :class:`KnownContent`, a read-only
connection on the driver's machine.

Ray is imported only by :class:`RayPool`: no other command imports it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Protocol

from albumsort.pipeline import Failed, Known, Pipeline, PipelineSpec, Result, single_threaded

TASKS_PER_WORKER: int | None = None
"""Photos after which a worker (a local process or a Ray actor) is replaced by a fresh one; None: never.
Workers were replaced every 1,000 photos while yuface leaked ~35 KB per detection; on ONNX Runtime one
worker's RSS is flat from photo 500 to photo 5,000 (``python benchmarks/worker_memory.py``: 551 MiB, then
+3 MiB; benchmarks/README.md), so each keeps its loaded networks for the whole run.  Set a number here
should a back-end ever leak again: both pools honour it."""

CRASHED = "a worker process crashed on this file (out of memory?)"


@dataclass(frozen=True)
class Task:
    """One photo to analyse; ``ref`` is the driver's own record, handed back untouched and never shipped."""

    path: str
    size: int = 0
    ref: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Job:
    """What every worker of one run needs: the pipeline's spec, and where the known-content look-ups read."""

    spec: PipelineSpec
    versions: tuple[str, str]
    db_path: Optional[str] = None  # the index, read-only; None: nothing counts as known


Done = list[tuple[Task, Result]]


class Executor(Protocol):
    """Maps the pipeline over tasks; see the module docstring."""

    workers: int

    def run(self, tasks: Iterable[Task], total: int, job: Job) -> Iterator[Done]:
        """Yield completed ``(task, result)`` pairs as they come, at least once a second."""

    def close(self) -> None:
        """Release every worker; called once the run is over, also after Ctrl-C."""


class KnownContent:
    """Whether content is already scored with the current versions: read-only look-ups in the index."""

    def __init__(self, db_path: str, versions: tuple[str, str]):
        uri = Path(db_path).resolve().as_uri() + "?mode=ro"  # escapes '#', '?' and '%' in the path
        self.conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        self.versions = tuple(versions)

    def __call__(self, content_hash: str) -> bool:
        from albumsort.indexer import UNCOUNTED

        row = self.conn.execute(f"SELECT model_version, detector_version, {UNCOUNTED} FROM results r "
                                "WHERE hash = ?", [content_hash]).fetchone()
        return row is not None and tuple(row[:2]) == self.versions and not row[2]

    def current(self, hashes: list[str]) -> list[bool]:
        return [self(h) for h in hashes]


# --------------------------------------------------------------------------
# Local worker processes
_local: dict = {}


def _init_local(job: Job) -> None:
    """Runs once per worker process: one thread each, the pipeline loaded once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    _exit_with_parent()
    single_threaded()
    _local["pipeline"] = Pipeline(job.spec)
    _local["known"] = KnownContent(job.db_path, job.versions) if job.db_path else None


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


def _analyse_local(path: str) -> Result:
    return _local["pipeline"].analyse(path, known=_local["known"])


class LocalPool:
    """Worker processes on this machine; a crashed worker costs only its own photos."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def run(self, tasks: Iterable[Task], total: int, job: Job) -> Iterator[Done]:
        import sys
        from concurrent.futures.process import BrokenProcessPool

        ctx = get_context("spawn")
        recycle = {"max_tasks_per_child": TASKS_PER_WORKER} if TASKS_PER_WORKER and sys.version_info >= (3, 11) \
            else {}
        it = iter(tasks)
        queue: deque[Task] = deque()  # taken from ``it``, not yet submitted (after a crashed pool)

        def more() -> bool:
            if not queue:
                nxt = next(it, None)
                if nxt is None:
                    return False
                queue.append(nxt)
            return True

        while more():
            self._pool = pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_local,
                                                    initargs=(job,), **recycle)
            inflight: dict[Future, Task] = {}
            try:
                while True:
                    while len(inflight) < self.workers * 4 and more():
                        task = queue.popleft()
                        inflight[pool.submit(_analyse_local, task.path)] = task
                    if not inflight:
                        break
                    finished, _ = wait(list(inflight), timeout=1.0, return_when=FIRST_COMPLETED)
                    done: Done = []
                    for fut in finished:
                        task = inflight.pop(fut)
                        try:
                            res = fut.result()
                        except BrokenProcessPool:
                            res = Failed(CRASHED)
                        except Exception as e:
                            res = Failed(f"internal error: {type(e).__name__}: {e}")
                        done.append((task, res))
                    yield done
                pool.shutdown()
            except BrokenProcessPool:
                # Submitting to a pool whose worker died: a new pool takes the rest.
                pool.shutdown(wait=False, cancel_futures=True)
                yield [(task, Failed(CRASHED)) for task in inflight.values()]
            finally:
                self._pool = None
                if inflight and not pool._broken:  # Ctrl-C, or the driver stopped early
                    self._terminate(pool)

    @staticmethod
    def _terminate(pool: ProcessPoolExecutor) -> None:
        for p in list((getattr(pool, "_processes", None) or {}).values()):
            p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._terminate(self._pool)
            self._pool = None


# --------------------------------------------------------------------------
# A Ray cluster
RAY_INSTALL = "--ray needs Ray, which is not installed: pip install 'albumsort[ray]'"

RAY_BATCH = 8
"""Photos per actor call: about half a second of work, so Ray's per-call cost (about a millisecond) is noise."""

RAY_TASK_RETRIES = 3
"""Times the engine re-runs a batch whose actor died (the actor is restarted, here or on another node);
after that each photo of the batch gets one try of its own, and a photo that still kills its worker fails
(not remembered: the next run tries it again)."""

IN_FLIGHT_PER_WORKER = 2
"""Batches queued per actor: one running, one waiting, so no actor idles while the driver commits."""

SHIP_BYTES_IN_FLIGHT = 512 << 20
"""With ``ship_bytes``, at most this many bytes of photos are on their way at once (flat driver memory)."""

SHIP_MAX_FILE = 1 << 30
"""With ``ship_bytes``, larger files are not read into the driver (no photo albumsort decodes is this large)."""

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a cluster's address to answer before saying it cannot be reached."""


READY_TIMEOUT = 300.0
"""Seconds the workers may take to start (a node installing its Python environment is slow); those that
have not started by then are left out, and the run goes on with the others."""


class RayUnavailable(Exception):
    """Ray is not installed; ``str()`` says how to install it."""


class ClusterUnreachable(Exception):
    """The Ray cluster could not be reached; ``str()`` is one line."""


class ClusterFailed(Exception):
    """The cluster was reached but no worker could start the pipeline; ``str()`` says where and why."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(RAY_INSTALL) from None
    return ray


def _probe(address: str) -> None:
    """Fail fast on an address nothing answers at (``ray.init`` would retry for minutes)."""
    import socket

    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "auto")  # what ray.init("auto") connects to, where set
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        host, port = address, "6379"
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address}: {e.strerror or e}; "
                                 "is `ray start --head` running there?") from None


def where() -> str:
    """This worker's node, as errors name it: host name and IP address."""
    import socket

    ray = import_ray()
    return f"node {socket.gethostname()} ({ray.util.get_node_ip_address()})"


class PipelineActor:
    """One pipeline on one CPU of the cluster (wrapped by ``ray.remote`` when a RayPool starts)."""

    def __init__(self, spec: PipelineSpec, known: str | None):
        import ray

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        single_threaded()
        self.pipeline = Pipeline(spec)
        # The KnownContent actor on the driver's node, by name: a handle argument would live in the
        # object store, and Ray warns that a restart could then fail to find it.
        self.known = ray.get_actor(known) if known else None
        self.where = where()

    def ready(self) -> tuple[str, int]:
        return self.where, os.getpid()

    def analyse(self, items: list[tuple[str, Optional[bytes]]]) -> tuple[str, int, list[Result]]:
        """Results for ``(path, bytes or None)`` items, in order; one known-content look-up per batch."""
        checked = [self.pipeline.check(path, data) for path, data in items]
        hashes = [c[0] for c in checked if not isinstance(c, Failed)]
        known: set[str] = set()
        if self.known is not None and hashes:
            try:
                import ray

                known = {h for h, k in zip(hashes, ray.get(self.known.current.remote(hashes))) if k}
            except Exception:  # the driver de-duplicates by hash when results return
                known = set()
        out: list[Result] = []
        for (path, data), c in zip(items, checked):
            if isinstance(c, Failed):
                out.append(self._named(c))
            elif c[0] in known:
                out.append(Known(c[0]))
            else:
                out.append(self._named(self.pipeline.score(path, c[0], c[1], data)))
        return self.where, os.getpid(), out

    def _named(self, res: Result) -> Result:
        """A failure that depends on the machine (a missing mount, permissions) names the node."""
        if isinstance(res, Failed) and not res.remember:
            return Failed(f"{res.reason} (on {self.where})", res.remember, res.hash)
        return res


@dataclass
class _Slot:
    actor: Any
    inflight: int = 0
    photos: int = 0


class RayPool:
    """One actor per CPU of a Ray cluster (or ``workers``), each holding one pipeline.

    ``address``: ``auto`` (the cluster this machine belongs to, as ``ray.init``
    understands it), ``host:port`` of a head node, or None to use the Ray
    session this process has already started.
    """

    def __init__(self, address: str | None = "auto", *, ship_bytes: bool = False, workers: int | None = None,
                 batch: int = RAY_BATCH, actor: type = PipelineActor):
        self.ray = import_ray()
        self.actor = actor  # what each worker runs: PipelineActor, or a stand-in with its methods (benchmarks)
        self.ship_bytes = ship_bytes
        self.batch = batch
        self._owns_session = False
        self.seen_pids: list[int] = []  # worker processes that returned results, first seen first
        if address is not None or not self.ray.is_initialized():
            self._connect(address or "auto")
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        if cpus < 1 and not workers:
            self.close()
            raise ClusterUnreachable("the Ray cluster offers no CPU to work on")
        self.workers = min(workers, cpus) if workers and cpus else workers or cpus  # one actor per CPU at most
        self._slots: list[_Slot] = []
        self._known = None

    def _connect(self, address: str) -> None:
        import logging

        ray = self.ray
        _probe(address)
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            if address == "auto" and not os.environ.get("RAY_ADDRESS"):
                raise ClusterUnreachable("no Ray cluster runs on this machine: start one with `ray start --head` "
                                         "(or join one with `ray start --address HEAD:6379`), or give "
                                         "--ray HOST:PORT") from None
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ClusterUnreachable(f"cannot reach the Ray cluster at {address}: {msg}") from None
        self._owns_session = True

    # -- actors ---------------------------------------------------------------
    def _start(self, job: Job) -> None:
        ray = self.ray
        if job.db_path:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = ray.get_runtime_context().get_node_id()
            self._known_name = f"albumsort-known-content-{os.getpid()}-{time.time_ns()}"
            self._known = ray.remote(KnownContent).options(
                name=self._known_name, num_cpus=0, max_restarts=-1, max_task_retries=RAY_TASK_RETRIES,
                scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
            ).remote(job.db_path, job.versions)
        self._actor_class = ray.remote(self.actor).options(
            num_cpus=1, max_restarts=-1, max_task_retries=RAY_TASK_RETRIES)
        self._slots = [_Slot(self._new_actor(job)) for _ in range(self.workers)]
        ready = {s.actor.ready.remote(): s for s in self._slots}
        errors = []
        deadline = time.time() + READY_TIMEOUT
        for ref, slot in ready.items():
            try:
                ray.get(ref, timeout=max(1.0, deadline - time.time()))
            except self.ray.exceptions.RayError as e:
                errors.append(_gist(e))
                ray.kill(slot.actor)
                self._slots.remove(slot)
        if not self._slots:
            raise ClusterFailed(f"no Ray worker could start the photo pipeline: {errors[0]}")
        self.workers = len(self._slots)

    def _new_actor(self, job: Job):
        return self._actor_class.remote(job.spec, self._known_name if self._known is not None else None)

    # -- the run --------------------------------------------------------------
    def run(self, tasks: Iterable[Task], total: int, job: Job) -> Iterator[Done]:
        ray = self.ray
        self._start(job)
        per_call = max(1, min(self.batch, total // (self.workers * IN_FLIGHT_PER_WORKER)))
        it = iter(tasks)
        retry: deque[list[Task]] = deque()  # batches to send again, one photo each
        inflight: dict[Any, tuple[_Slot, list[Task], int]] = {}
        in_bytes = 0
        exhausted = False

        def next_batch() -> list[Task]:
            nonlocal exhausted
            if retry:
                return retry.popleft()
            batch = []
            while not exhausted and len(batch) < per_call:
                t = next(it, None)
                if t is None:
                    exhausted = True
                else:
                    batch.append(t)
            return batch

        while True:
            done: Done = []
            # Submit while an actor has room: a bounded number of batches (and bytes) in flight.
            while (in_bytes < SHIP_BYTES_IN_FLIGHT or not inflight) and (retry or not exhausted):
                slot = self._free_slot(job)
                if slot is None:
                    break
                batch = next_batch()
                if not batch:
                    break
                items, nbytes = [], 0
                for t in batch:
                    data = None
                    if self.ship_bytes:
                        data = _read(t)
                        if isinstance(data, Failed):
                            done.append((t, data))
                            continue
                        nbytes += len(data)
                    items.append((t, data))
                if not items:
                    continue
                ref = slot.actor.analyse.remote([(t.path, d) for t, d in items])
                slot.inflight += 1
                slot.photos += len(items)
                in_bytes += nbytes
                inflight[ref] = (slot, [t for t, _ in items], nbytes)
            if not inflight:
                if done:
                    yield done
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                slot, batch, nbytes = inflight.pop(ref)
                slot.inflight -= 1
                in_bytes -= nbytes
                try:
                    _node, pid, results = ray.get(ref)
                except ray.exceptions.RayError as e:
                    if len(batch) > 1:
                        retry.extend([t] for t in batch)  # one try each: only a photo that kills its worker fails
                    else:
                        done.append((batch[0], Failed(f"a Ray worker died {RAY_TASK_RETRIES + 1} times on this "
                                                      f"file (out of memory?): {_gist(e)}")))
                    continue
                if pid not in self.seen_pids:
                    self.seen_pids.append(pid)
                done.extend(zip(batch, results))
            yield done

    def _free_slot(self, job: Job) -> _Slot | None:
        """The actor with the least work queued (after replacing those that did ``TASKS_PER_WORKER`` photos,
        where that is set)."""
        limit = TASKS_PER_WORKER or float("inf")
        for s in self._slots:
            if s.photos >= limit and s.inflight == 0:
                self.ray.kill(s.actor)  # a fresh process, as LocalPool does
                s.actor, s.photos = self._new_actor(job), 0
        free = [s for s in self._slots if s.inflight < IN_FLIGHT_PER_WORKER and s.photos < limit]
        return min(free, key=lambda s: s.inflight) if free else None

    def close(self) -> None:
        ray = self.ray
        for s in self._slots:
            try:
                ray.kill(s.actor)
            except Exception:
                pass
        self._slots = []
        if self._known is not None:
            try:
                ray.kill(self._known)
            except Exception:
                pass
            self._known = None
        if self._owns_session:
            ray.shutdown()
            self._owns_session = False


def _read(task: Task) -> bytes | Failed:
    """The file's bytes, read by the driver for nodes that cannot see the photos."""
    try:
        size = os.stat(task.path).st_size
        if size > SHIP_MAX_FILE:
            return Failed(f"file too large to ship to the cluster: {size / 2**20:,.0f} MiB "
                          f"(limit {SHIP_MAX_FILE / 2**20:,.0f} MiB)")
        with open(task.path, "rb") as f:
            return f.read()
    except OSError as e:
        return Failed(f"cannot read: {e.strerror or e}")


def _gist(e: BaseException) -> str:
    """The line of a Ray error that says what happened (its last: the cause, after the traceback)."""
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(e).__name__
