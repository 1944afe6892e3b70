"""Does a worker leak?  RSS of one process running the photo pipeline over N photos.

    python benchmarks/worker_memory.py [--photos 5000] [--detector scrfd] [--every 250]

One process does what one ``albumsort index`` worker does per photo
(``Pipeline.analyse``: hash, decode, detect, crop, score, one thread) over the 400
WIDER sample photos, cycled until ``--photos`` are done, and prints its
resident memory (VmRSS) every ``--every`` photos.  ``--detector yuface``
runs the old yuface wheel instead (1,000 photos showed its leak: about 35 KB
per detection), for comparison.

The verdict compares RSS after the first 500 photos (every allocator pool
warmed up) with RSS at the end: growth under 16 MiB over the rest is "flat"
(issue 17, point 6: then workers need not be recycled every 1,000 photos).
Not a timing benchmark: it can run on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

WARM = 500
FLAT_MIB = 16


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=5000)
    ap.add_argument("--detector", default="scrfd", help="a detector name, or yuface (the old wheel)")
    ap.add_argument("--every", type=int, default=250)
    args = ap.parse_args()

    import cv2

    cv2.setNumThreads(1)
    from albumsort.images import load_rgb
    from albumsort.pipeline import Pipeline, PipelineSpec

    photos = sorted((DATA / "wider-face-val-sample" / "images").rglob("*.jpg"))
    if not photos:
        sys.exit(f"no photos under {DATA}")
    if args.detector == "yuface":
        import numpy as np
        import yuface

        def one(p):
            rgb = load_rgb(p, max_side=1000)[0]
            yuface.detect(np.ascontiguousarray(rgb[:, :, ::-1]), conf=0.5)
    else:
        pipe = Pipeline(PipelineSpec(args.detector), threads=1)

        def one(p):
            pipe.analyse(str(p))  # what a worker runs per photo (no known-content look-up)

    print(f"{'photos':>8}{'RSS MiB':>10}", flush=True)
    print(f"{0:>8}{rss_mib():>10.1f}", flush=True)
    at_warm = None
    for i in range(1, args.photos + 1):
        one(photos[(i - 1) % len(photos)])
        if i == WARM:
            at_warm = rss_mib()
        if i % args.every == 0 or i == args.photos:
            print(f"{i:>8}{rss_mib():>10.1f}", flush=True)
    end = rss_mib()
    if at_warm is not None and args.photos > WARM:
        growth = end - at_warm
        per = growth * 1024 / (args.photos - WARM)
        verdict = "flat" if growth < FLAT_MIB else "GROWS"
        print(f"{args.detector}: {at_warm:.1f} MiB after {WARM} photos, {end:.1f} MiB after {args.photos}: "
              f"{growth:+.1f} MiB ({per:+.2f} KiB/photo): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
