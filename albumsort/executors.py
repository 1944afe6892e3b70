"""Executors: what runs the photo pipeline over the driver's tasks, on this machine or on a Ray cluster.

The driver (``indexing.run_index``) scans, decides what changed, writes the
index in transactions and shows progress.  An executor only maps
``Pipeline.analyse`` over tasks and hands back ``(task, result)`` pairs as
they complete, in lists, at least once a second (an empty list when nothing
finished, so the driver can commit on time):

* :class:`LocalPool`: worker processes on this machine, each holding at
  most two photos; a worker that dies costs only the photo it was working
  on, which is tried again alone in a fresh worker, and is blamed only when
  it kills that worker too.
* :class:`RayPool`: one Ray actor per CPU of a cluster, each holding one
  pipeline (the networks loaded once); batches of photos go to the actor with
  the least work; the engine restarts dead actors and retries their batches
  (bounded); only paths travel, or with ``ship_bytes`` the files' bytes.

Both keep a bounded number of photos in flight, so the driver's memory does
not grow with the album.  Workers never open the index: the one look-up
they need, "is this content already scored?" (it spares decoding a moved or
copied photo), is answered by :class:`KnownContent`, the driver's snapshot
of the current content hashes (8 bytes each), handed to every worker once.

Ray is imported only by :class:`RayPool`: no other command imports it.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import wait as mp_wait
from typing import Any, Protocol

import numpy as np

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
    """What every worker of one run needs: the pipeline's spec, and the content already scored."""

    spec: PipelineSpec
    versions: tuple[str, str]
    known: KnownContent | None = None  # None: nothing counts as known


Done = list[tuple[Task, Result]]


class Executor(Protocol):
    """Maps the pipeline over tasks; see the module docstring."""

    workers: int

    def run(self, tasks: Iterable[Task], total: int, job: Job) -> Generator[Done, None, None]:
        """Yield completed ``(task, result)`` pairs as they come, at least once a second."""

    def close(self) -> None:
        """Release every worker; called once the run is over, also after Ctrl-C."""


@dataclass(frozen=True)
class KnownContent:
    """Whether content was scored with the current versions when the run began (``Index.current_keys``).

    The first 8 bytes of each content hash, sorted: 8 MB for a million photos, searched in a worker without
    SQLite.  A match the driver finds not current after all (a 1-in-2^64 prefix collision) is scored again
    (``indexing._store``); content first scored during the run is de-duplicated when results return.
    """

    keys: np.ndarray  # uint64, sorted

    @staticmethod
    def key(content_hash: str) -> int:
        return int(content_hash[:16], 16)

    def __call__(self, content_hash: str) -> bool:
        k = np.uint64(self.key(content_hash))
        i = int(np.searchsorted(self.keys, k))
        return i < len(self.keys) and self.keys[i] == k

    def __len__(self) -> int:
        return len(self.keys)


# --------------------------------------------------------------------------
# Local worker processes
_local: dict = {}


def _init_local(job: Job) -> None:
    """Runs once per worker process: one thread each, the pipeline loaded once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    _exit_with_parent()
    single_threaded()
    _local["pipeline"] = Pipeline(job.spec)
    _local["known"] = job.known


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


def _serve(conn, job: Job) -> None:
    """A worker process: load the pipeline once, then analyse the paths the driver sends, one at a time.

    It says when it is ready and when it starts each photo, so that when it dies the driver knows which
    photo it was working on (and which ones it had not touched yet).
    """
    try:
        _init_local(job)
    except Exception as e:
        conn.send(("broken", (f"{type(e).__name__}: {e}".strip().splitlines() or ["?"])[0]))
        return
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        n, path = msg
        conn.send(("start", n))
        try:
            res = _analyse_local(path)
        except Exception as e:
            res = Failed(f"internal error: {type(e).__name__}: {e}")
        conn.send(("done", n, res))


QUEUED_PER_WORKER = 2
"""Photos sent to a local worker at once: one it works on, one waiting, so no worker idles while the driver
commits."""

ALONE_TRIES = 2
"""Times a photo whose worker died is tried again, each time alone in a fresh worker; it is recorded as
crashed (``CRASHED``, not remembered: the next run tries it again) only when it killed every one of them.
One try would blame a photo for a kill from outside (the OOM killer choosing the largest process, a user's
``kill``) that came while it happened to be alone; a photo that really kills its worker does so twice."""

START_TRIES = 10
"""Worker processes in a row that may die while loading the networks (none getting ready in between)
before the run stops with WorkersFailed instead of starting more: enough that kills from outside (a few
workers killed while a loaded machine is slow to start them) never stop a run, few enough that a machine
where no worker can start says so in seconds."""


class WorkersFailed(Exception):
    """No local worker process could load the photo pipeline; ``str()`` is one line."""


@dataclass
class _Worker:
    proc: Any
    conn: Any
    held: deque = field(default_factory=deque)  # (number, Task) sent and not answered, in order
    alone: bool = False  # holds one photo whose earlier worker died, and nothing else
    ready: bool = False
    started: int | None = None  # the number of the photo it said it started and has not answered
    photos: int = 0


class LocalPool:
    """Worker processes on this machine; a crashed worker costs only the photo it was working on.

    Each worker holds at most ``QUEUED_PER_WORKER`` photos and says which one
    it starts, so when one dies (``kill -9``, the OOM killer) its siblings go
    on, the photos it had not started go to the next free worker, and the one
    it was working on is tried again alone in a fresh worker (``ALONE_TRIES``).
    Nothing is dropped and nobody else is blamed: the driver sees results,
    or ``Failed`` for a photo that killed its worker each time it was alone.
    """

    def __init__(self, workers: int, serve=_serve):
        self.workers = workers
        self.serve = serve  # what each worker process runs: _serve, or a stand-in with its protocol (tests)
        self._procs: list[_Worker] = []

    def run(self, tasks: Iterable[Task], total: int, job: Job) -> Generator[Done, None, None]:
        ctx = get_context("spawn")
        it = iter(tasks)
        numbers = itertools.count()
        again: deque[tuple[int, Task]] = deque()  # held by a worker that died before starting them
        suspects: deque[tuple[int, Task]] = deque()  # a worker died working on each: each is tried alone
        alone_deaths: dict[int, int] = {}
        state = {"exhausted": False, "start_deaths": 0}
        limit = TASKS_PER_WORKER or float("inf")
        procs = self._procs

        def take() -> tuple[int, Task] | None:
            if again:
                return again.popleft()
            if state["exhausted"]:
                return None
            task = next(it, None)
            if task is None:
                state["exhausted"] = True
                return None
            return next(numbers), task

        def send(w: _Worker, item: tuple[int, Task]) -> None:
            w.held.append(item)
            try:
                w.conn.send((item[0], item[1].path))
            except OSError:
                pass  # it died: its sentinel says so, and the photo is handed on with the others it held

        def spawn() -> None:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=self.serve, args=(child, job), daemon=True)
            proc.start()
            child.close()  # the worker's end lives in the worker alone, so its death reads as end of file
            w = _Worker(proc, parent)
            procs.append(w)
            if suspects:
                w.alone = True
                send(w, suspects.popleft())

        def receive(w: _Worker, done: Done) -> bool:
            """Handle what ``w`` has sent; False once it is gone."""
            while True:
                try:
                    if not w.conn.poll():
                        if w.proc.is_alive():
                            return True
                        if not w.conn.poll(0.5):  # what it wrote before it died, then the end of file
                            return False
                    msg = w.conn.recv()
                except Exception:  # end of file, or a message cut short by its death
                    return False
                if msg[0] == "start":
                    w.started = msg[1]
                elif msg[0] == "done":
                    n, task = w.held.popleft()
                    assert n == msg[1], (n, msg[1])
                    w.started, w.alone = None, False
                    w.photos += 1
                    alone_deaths.pop(n, None)
                    done.append((task, msg[2]))
                elif msg[0] == "ready":
                    w.ready = True
                    state["start_deaths"] = 0
                elif msg[0] == "broken":
                    raise WorkersFailed(f"a worker process could not load the photo pipeline: {msg[1]}")

        def bury(w: _Worker, done: Done) -> None:
            """``w`` died: hand on what it held; only the photo it was working on is suspected."""
            procs.remove(w)
            _stop(w, kill=True)
            if not w.ready:
                state["start_deaths"] += 1
                if state["start_deaths"] >= START_TRIES:
                    raise WorkersFailed(f"{START_TRIES} worker processes in a row died while loading the photo "
                                        "pipeline (out of memory?)")
            untouched = []
            for n, task in w.held:
                if n != w.started:
                    if w.alone:
                        suspects.appendleft((n, task))  # it died before starting it: still owed a try alone
                    else:
                        untouched.append((n, task))
                    continue
                if w.alone:
                    alone_deaths[n] = alone_deaths.get(n, 0) + 1
                if alone_deaths.get(n, 0) >= ALONE_TRIES:
                    alone_deaths.pop(n)
                    done.append((task, Failed(CRASHED)))
                else:
                    suspects.append((n, task))
            again.extendleft(reversed(untouched))

        first = take()
        if first is None:
            return
        again.append(first)
        try:
            while len(procs) < self.workers:
                spawn()
            while True:
                done: Done = []
                for w in list(procs):
                    if w.photos >= limit and not w.held:  # TASKS_PER_WORKER: a fresh process takes over
                        procs.remove(w)
                        _stop(w)
                        spawn()
                for w in procs:
                    while not w.alone and len(w.held) < QUEUED_PER_WORKER and w.photos + len(w.held) < limit:
                        item = take()
                        if item is None:
                            break
                        send(w, item)
                if state["exhausted"] and not again and not suspects and not any(w.held for w in procs):
                    break
                ready = set(mp_wait([w.conn for w in procs] + [w.proc.sentinel for w in procs], timeout=1.0))
                for w in list(procs):
                    if (w.conn in ready or w.proc.sentinel in ready) and not receive(w, done):
                        bury(w, done)
                while suspects or len(procs) < self.workers:
                    spawn()
                yield done
            for w in procs:
                _stop(w)
        finally:
            for w in procs:
                _stop(w, kill=True)
            procs.clear()

    def close(self) -> None:
        for w in self._procs:
            _stop(w, kill=True)
        self._procs.clear()


def _stop(w: _Worker, kill: bool = False) -> None:
    """End a worker: asked to (it finishes nothing more), or at once with ``kill``."""
    if not kill:
        try:
            w.conn.send(None)
        except OSError:
            pass
        w.proc.join(timeout=10)
    if w.proc.is_alive():
        w.proc.terminate()
        w.proc.join(timeout=5)
    if w.proc.is_alive():
        w.proc.kill()
        w.proc.join()
    w.conn.close()


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

    def __init__(self, spec: PipelineSpec, known: KnownContent | None):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        single_threaded()
        self.pipeline = Pipeline(spec)
        self.known = known
        self.where = where()

    def ready(self) -> tuple[str, int]:
        return self.where, os.getpid()

    def analyse(self, items: list[tuple[str, bytes | None]]) -> tuple[str, int, list[Result]]:
        """Results for ``(path, bytes or None)`` items, in order."""
        checked = [self.pipeline.check(path, data) for path, data in items]
        out: list[Result] = []
        for (path, data), c in zip(items, checked, strict=True):
            if isinstance(c, Failed):
                out.append(self._named(c))
            elif self.known is not None and self.known(c[0]):
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
        return self._actor_class.remote(job.spec, job.known)

    # -- the run --------------------------------------------------------------
    def run(self, tasks: Iterable[Task], total: int, job: Job) -> Generator[Done, None, None]:
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
            batch: list = []
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
                done.extend(zip(batch, results, strict=True))
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
