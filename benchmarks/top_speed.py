"""``albumsort top`` on an index of 100,000 photos: time of the whole command and of the query.

    python benchmarks/top_speed.py [--photos 100000]

Fills a scratch index with synthetic photos (two faces each on average,
random calibrated-looking probabilities), then times ``albumsort top happy
-n 20 --json`` as a user runs it (fresh process, imports included) and the
library query alone, both as medians of 7 runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from albumsort.preprocess import EMOTIONS  # noqa: E402
from albumsort.ranking import top  # noqa: E402
from albumsort.scores import face_confidence, ranking_columns  # noqa: E402
from albumsort.store import Index  # noqa: E402


def fill(idx: Index, n: int) -> int:
    rng = np.random.default_rng(0)
    faces_total = 0
    with idx.transaction():
        results, faces, photos = [], [], []
        prev_dhash = 0
        for i in range(n):
            h = f"{i:032x}"
            k = int(rng.poisson(2.0))
            fs = []
            for j in range(k):
                p = rng.dirichlet(np.ones(4) * 0.7)
                det = float(rng.uniform(0.5, 1.0))
                fs.append({"hash": h, "idx": j, "x": 10.0, "y": 10.0, "w": 50.0, "h": 60.0, "landmarks": None,
                           "det_score": det, **{f"p_{e}": float(p[m]) for m, e in enumerate(EMOTIONS)},
                           "confidence": face_confidence(det, p)})
            faces += fs
            # Shots 4 s apart with EXIF times; every 5th photo repeats the previous one's scene (a burst).
            dhash = prev_dhash if i % 5 and rng.random() < 0.5 else int(rng.integers(-2**62, 2**62))
            prev_dhash = dhash
            results.append({"hash": h, "dhash": dhash, "exif_time": 1.7e9 + 4.0 * i,
                            "width": 4000, "height": 3000, "model_version": "m", "detector_version": "d",
                            "n_faces": k, "scored_at": 0.0, **ranking_columns(fs)})
            path = f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg"
            photos.append({"path": path, "raw": path.encode(), "size": 1,
                           "mtime_ns": 1, "hash": h, "taken": 1.7e9 + 4.0 * i, "taken_from": "exif",
                           "seen_run": 1, "indexed_at": 0.0})
        idx.db["results"].insert_all(results, batch_size=5000)
        idx.db["faces"].insert_all(faces, batch_size=5000)
        idx.db["photos"].insert_all(photos, batch_size=5000)
        faces_total = len(faces)
    idx.db.execute("ANALYZE")
    return faces_total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.db"
        idx = Index(db)
        t = time.perf_counter()
        n_faces = fill(idx, args.photos)
        print(f"index: {args.photos:,} photos, {n_faces:,} faces (filled in {time.perf_counter() - t:.1f} s)")
        lib = []
        for _ in range(7):
            t = time.perf_counter()
            top(idx, "happy", 20)
            lib.append(time.perf_counter() - t)
        other = []
        for _ in range(3):
            t = time.perf_counter()
            top(idx, "happy", 20, min_confidence=0.3)
            other.append(time.perf_counter() - t)
        cmd = []
        for _ in range(7):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "albumsort", "--db", str(db), "top", "happy", "-n", "20", "--json"],
                           check=True, capture_output=True)
            cmd.append(time.perf_counter() - t)
        base = []
        for _ in range(7):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            base.append(time.perf_counter() - t)
        print(f"top happy -n 20, library query at the default threshold: median {1000 * statistics.median(lib):.1f} ms")
        print("top happy -n 20, library query at --min-confidence 0.3:   "
              f"median {1000 * statistics.median(other):.0f} ms")
        print(f"`albumsort top happy -n 20 --json`, whole command:          median {statistics.median(cmd):.2f} s "
              f"(a bare `python -c pass` takes {statistics.median(base):.2f} s here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
