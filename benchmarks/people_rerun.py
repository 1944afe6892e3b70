"""Person ids and names through a rerun of a large album (issue 20, point 6): index 100 new photos into an
album of 10,000 whose faces are already grouped, through the CLI, and check that no id or name moved.

    python benchmarks/people_rerun.py [--photos 10000] [--persons 300] [--new 100]

The 10,000 photos are small real files on disk, entered into a fresh index as a finished run would leave
them (current model and detector versions, one face each with an embedding): embedding them for real
would take an hour on 2 cores and measure the network, not the grouping.  Their embeddings are drawn
around ``--persons`` identities (cosine to the identity's centre about 0.8, as one person's photos are;
different centres nearly orthogonal), grouped by ``people.assign`` as an index run's end does, and a
tenth of the persons named.  Then ``albumsort index`` runs on the folder with ``--new`` real photos of two
people added (the astronaut and Grace Hopper, varied as ``tests/test_people.py`` varies them), and the
script checks: every old face keeps its person, every name its person, the new photos are indexed and
grouped, the 10,000 are unchanged.  Prints the rerun's wall time (only meaningful on an idle machine).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from albumsort import people  # noqa: E402
from albumsort.embeddings import model_version as embedder_version  # noqa: E402
from albumsort.embeddings import to_bytes  # noqa: E402
from albumsort.files import path_key  # noqa: E402
from albumsort.pipeline import PipelineSpec  # noqa: E402
from albumsort.store import Index  # noqa: E402


def synthetic_album(folder: Path, db: Path, n: int, persons: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((persons, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    tiny = Image.new("RGB", (16, 16), (120, 110, 100))
    versions = PipelineSpec().versions()
    idx = Index(db)
    try:
        run = idx.start_run([str(folder)])
        with idx.transaction():
            for i in range(n):
                path = folder / "old" / f"{i // 1000:02d}" / f"photo_{i:05d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                tiny.save(path, quality=80, comment=str(i).encode())  # distinct bytes, not read by the rerun
                st = path.stat()
                who = rng.integers(persons)
                v = centres[who] + 0.75 * rng.standard_normal(128).astype(np.float32) / np.sqrt(128)
                v /= np.linalg.norm(v)
                h = hashlib.sha256(f"synthetic {i}".encode()).hexdigest()
                idx.put_result(h, {"width": 16, "height": 16, "model_version": versions[0],
                                   "detector_version": versions[1], "n_faces": 1, "n_small": 0, "truncated": 0.0,
                                   "scored_at": time.time(), "n_kept": 1, "score_neutral": 0.9, "shows_neutral": 1,
                                   "best_neutral": 0.9},
                               [{"idx": 0, "x": 2.0, "y": 2.0, "w": 12.0, "h": 12.0, "det_score": 0.9,
                                 "p_neutral": 0.9, "readability": 1.0, "confidence": 0.81,
                                 "embedding": to_bytes(v), "embedding_norm": 20.0}])
                idx.put_photo(path_key(str(path)), st.st_size, st.st_mtime_ns, h, run)
            people.assign(idx, embedder_version())
            ids = [r[0] for r in idx.conn.execute("SELECT id FROM persons ORDER BY id")]
            for k, pid in enumerate(ids[::10]):
                people.name(idx, pid, f"Person {k}")
        idx.finish_run(run, "synthetic")
    finally:
        idx.close()


def snapshot(db: Path) -> tuple[dict, dict]:
    c = sqlite3.connect(db)
    faces = dict(c.execute("SELECT f.hash, f.person FROM faces f JOIN photos p ON p.hash = f.hash "
                           "WHERE p.path LIKE '%/old/%'"))
    names = dict(c.execute("SELECT id, name FROM persons WHERE name IS NOT NULL"))
    c.close()
    return faces, names


def new_photos(folder: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import astronaut, grace_hopper

    rng = np.random.default_rng(1)
    (folder / "new").mkdir()
    for i in range(n):
        im = (astronaut() if i % 2 else grace_hopper()).rotate(float(rng.uniform(-8, 8)), expand=False)
        im = ImageOps.autocontrast(im, cutoff=float(rng.uniform(0, 3)))
        im.save(folder / "new" / f"new_{i:03d}.jpg", quality=int(rng.integers(80, 95)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=10_000)
    ap.add_argument("--persons", type=int, default=300)
    ap.add_argument("--new", type=int, default=100)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="albumsort-people-rerun-") as d:
        folder, db = Path(d) / "album", Path(d) / "album.db"
        t = time.perf_counter()
        synthetic_album(folder, db, args.photos, args.persons)
        before_faces, before_names = snapshot(db)
        print(f"{args.photos} photos grouped into {len(set(before_faces.values()))} persons, "
              f"{len(before_names)} named ({time.perf_counter() - t:.1f} s to build)")
        new_photos(folder, args.new)
        env = dict(os.environ, ALBUMSORT_DB=str(db))
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "albumsort", "index", str(folder)], env=env,
                           capture_output=True, text=True)
        wall = time.perf_counter() - t
        print(f"albumsort index (rerun): exit {p.returncode}, {wall:.1f} s: {p.stderr.strip().splitlines()[-1]}")
        after_faces, after_names = snapshot(db)
        moved = sum(before_faces[h] != after_faces.get(h) for h in before_faces)
        c = sqlite3.connect(db)
        new = c.execute("SELECT count(DISTINCT f.hash), count(DISTINCT f.person), count(*) FROM faces f "
                        "JOIN photos p ON p.hash = f.hash WHERE p.path LIKE '%/new/%'").fetchone()
        c.close()
        print(f"old faces whose person changed: {moved} of {len(before_faces)}; names kept: "
              f"{sum(after_names.get(i) == nm for i, nm in before_names.items())} of {len(before_names)}")
        print(f"new photos indexed with faces: {new[0]} of {args.new}, in {new[1]} persons ({new[2]} faces)")
        ok = p.returncode == 0 and moved == 0 and after_names == before_names and new[0] == args.new
        print("ids and names stable" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
