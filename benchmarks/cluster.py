"""Indexing on a Ray cluster against the local pool, and the driver's commit ceiling, side by side in one run.

    python benchmarks/cluster.py [--photos 200] [--workers 1,2] [--ceiling 10000,1000000] [--repeats 1]

1. Throughput: the same album of 12 MP JPEGs (benchmarks/out/large-N, made
   by index_speed.py's recipe from the shared WIDER FACE photos) indexed
   into a fresh index by the local process pool and by a local Ray cluster
   (``ray.init(num_cpus=max workers)``, actors as on any cluster), with the
   same number of workers, for each of ``--workers``: photos/s of each
   (whole runs: worker start-up included) and Ray's overhead.
2. The driver's commit ceiling: ``indexing._process`` (the driver's loop and
   its transactions, as in every run) fed by executors whose workers return
   a made-up result (one face) at once, in-process and through Ray actors, for
   each size of ``--ceiling``: photos/s the driver commits, and its peak
   memory (each size in a fresh process, so the peaks are the driver's own).

Nothing here is a test; run it alone on an idle machine.  ``--photos 20
--ceiling 2000,10000`` checks that it runs in a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "benchmarks" / "out"


# --------------------------------------------------------------------------
# Workers that return at once: what the driver can take
def synthetic(path: str):
    """A made-up, plausible result for ``path``: one face, a distinct content hash."""
    import hashlib

    from albumsort.pipeline import Analysed, FaceResult

    h = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
    k = int(h[:4], 16) / 65535
    p = (0.1, 0.6 * k + 0.1, 0.2 - 0.1 * k, 0.6 - 0.5 * k)
    face = FaceResult(box=(100.0, 80.0, 120.0, 150.0), det_score=0.9, p=p, readability=0.8,
                      landmarks=(130.0, 120.0, 170.0, 120.0, 150.0, 140.0, 135.0, 170.0, 165.0, 170.0))
    return Analysed(hash=h, width=4000, height=3000, dhash=int(h[:15], 16), exif_time=None, faces=(face,))


class SyntheticPool:
    """An executor whose results are ready at once: the driver alone sets the pace."""

    def __init__(self, workers: int = 2):
        self.workers = workers

    def run(self, tasks, total, job):
        done = []
        for t in tasks:
            done.append((t, synthetic(t.path)))
            if len(done) >= 64:
                yield done
                done = []
        if done:
            yield done

    def close(self) -> None:
        pass


class SyntheticActor:
    """Stands in for ``executors.PipelineActor`` on Ray: same methods, results made up at once."""

    def __init__(self, spec, known):
        self.pid = os.getpid()

    def ready(self):
        return "synthetic", self.pid

    def analyse(self, items):
        return "synthetic", self.pid, [synthetic(path) for path, _ in items]


def ceiling_child(n: int, kind: str, workers: int) -> dict:
    """Commit ``n`` synthetic photos through the real driver loop; photos/s and this process's peak RSS."""
    from albumsort.executors import Job, RayPool
    from albumsort.indexing import Summary, Todo, _process
    from albumsort.pipeline import PipelineSpec
    from albumsort.store import Index

    with tempfile.TemporaryDirectory(prefix="albumsort-ceiling-") as d:
        idx = Index(Path(d) / "index.db")
        run = idx.start_run(["/synthetic"])
        if kind == "ray":
            import ray

            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
            executor = RayPool(None, workers=workers, actor=SyntheticActor)
        else:
            executor = SyntheticPool(workers)
        job = Job(PipelineSpec(), ("synthetic-model", "synthetic-detector"), None)
        summary = Summary()
        with Todo() as todo:
            for i in range(n):
                todo.add(f"/synthetic/{i // 1000:05d}/IMG_{i:07d}.jpg".encode(), 3_000_000 + i, i * 10**9)
            t = time.perf_counter()
            try:
                _process(idx, todo, executor, job, run, summary, None)
            finally:
                executor.close()
            secs = time.perf_counter() - t
        assert summary.indexed == n, summary
        assert idx.conn.execute("SELECT count(*) FROM photos").fetchone()[0] == n
        idx.close()
    if kind == "ray":
        ray.shutdown()
    return {"n": n, "kind": kind, "secs": secs, "per_s": n / secs, "peak_mib": peak_rss() / 2**20}


def peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux; an upper bound


def ceiling(n: int, kind: str, workers: int) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child", kind, "--n", str(n), "--workers", str(workers)],
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"ceiling run {kind} n={n} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# Real photos: the local pool against a local Ray cluster
def album(n: int) -> Path:
    from index_speed import build_large

    return build_large(n)


def index_once(photos: Path, executor) -> tuple[float, str]:
    from albumsort.indexing import run_index
    from albumsort.store import Index

    with tempfile.TemporaryDirectory(prefix="albumsort-bench-") as d:
        idx = Index(Path(d) / "index.db")
        t = time.perf_counter()
        s = run_index([str(photos)], idx, executor=executor)
        secs = time.perf_counter() - t
        idx.close()
    return secs, s.line()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200, help="12 MP photos for the throughput runs (0: skip)")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare, comma-separated")
    ap.add_argument("--ceiling", default="10000,1000000", help="synthetic photo counts for the driver (empty: skip)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each throughput case (the median is shown)")
    ap.add_argument("--child", choices=["inline", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    workers = [int(w) for w in a.workers.split(",") if w]
    if a.child:
        print(json.dumps(ceiling_child(a.n, a.child, workers[0])))
        return 0

    import ray

    from albumsort.executors import LocalPool, RayPool

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throw-away local cluster
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} (should be near 0)")
    if a.photos:
        photos = album(a.photos)
        ray.init(address="local", num_cpus=max(workers), include_dashboard=False, log_to_driver=False)
        try:
            print(f"\n{a.photos} photos of 12 MP, fresh index each run, whole runs (worker start-up included)")
            print(f"{'workers':>7} {'local photos/s':>15} {'ray photos/s':>13} {'ray overhead':>13}")
            rates = {}
            for w in workers:
                local, on_ray = [], []
                for _ in range(a.repeats):  # alternated, so drift hits both alike
                    local.append(index_once(photos, LocalPool(w))[0])
                    on_ray.append(index_once(photos, RayPool(None, workers=w))[0])
                lw, rw = a.photos / statistics.median(local), a.photos / statistics.median(on_ray)
                rates[w] = (lw, rw)
                print(f"{w:>7} {lw:>15.2f} {rw:>13.2f} {100 * (lw / rw - 1):>12.1f}%")
            if len(workers) > 1:
                lo, hi = min(workers), max(workers)
                print(f"scaling {lo} -> {hi} workers: local {rates[hi][0] / rates[lo][0]:.2f}x, "
                      f"ray {rates[hi][1] / rates[lo][1]:.2f}x")
        finally:
            ray.shutdown()
    sizes = [int(s) for s in a.ceiling.split(",") if s]
    if sizes:
        print("\nThe driver's commit ceiling: workers return a made-up result at once (one face per photo)")
        print(f"{'photos':>9} {'executor':>9} {'photos/s':>9} {'seconds':>8} {'peak MiB':>9}")
        for kind in ("inline", "ray"):
            for n in sizes:
                r = ceiling(n, kind, max(workers))
                print(f"{n:>9,} {kind:>9} {r['per_s']:>9,.0f} {r['secs']:>8.1f} {r['peak_mib']:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
