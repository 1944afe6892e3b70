"""Indexing speed, measured side by side in one run.

    python benchmarks/index_speed.py [--photos 200] [--kinds camera,smooth] [--small 10000] [--fer-photos 40]
    python benchmarks/index_speed.py --profile [--photos 200] [--kinds camera]   # where the time goes

1. Builds (once, cached in benchmarks/out/) two albums of large photos: the
   shared WIDER FACE photos upscaled to 4000x3000 JPEGs with an EXIF block
   and orientation tags, as a camera writes them; ``smooth`` as upscaled
   (quality 90), ``camera`` with sensor-like noise added (quality 92), whose
   files are larger and slower to decode, like a real camera's.
2. Times merely decoding every photo at full size with Pillow (one process,
   and also one process per core) with the files already in the page cache,
   before and after the index runs (the two averaged), and decoding at the
   detector's size by Pillow's draft and by OpenCV's reduced mode.
3. Times ``albumsort index`` on a fresh index (all cores), and prints
   photos/s and the ratios (issue 17's target: index <= 1.0x the decode).
4. Times the ``fer`` package's pipeline (OpenCV's Haar cascade on the photo,
   its mini-Xception in Keras) on the first ``--fer-photos`` of the same
   photos, one process, and prints its time per photo against albumsort's.
5. Times a no-change rerun on that album, and on an album of ``--small``
   distinct small photos (the rerun cost is per file, not per pixel), and
   compares the peak memory of indexing N and 4N small photos.

Medians of ``--repeats`` runs where a step is cheap enough to repeat.

``--profile`` instead runs one index of each album with ``ALBUMSORT_PROFILE``
(``albumsort.stages``) and prints, per photo, the median and 90th percentile
milliseconds of every stage, how often a second decode happens and at which
scale, and the share of the wall time the workers were busy.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WIDER = ROOT.parent / "shared" / "data" / "wider-face-val-sample" / "images"
OUT = ROOT / "benchmarks" / "out"


def build_large(n: int, kind: str = "smooth") -> Path:
    d = OUT / (f"large-{n}" if kind == "smooth" else f"large-{kind}-{n}")
    if d.is_dir() and len(list(d.glob("*.jpg"))) == n:
        return d
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    srcs = sorted(WIDER.rglob("*.jpg"))[:n]
    if len(srcs) < n:
        sys.exit(f"need {n} photos under {WIDER}")
    rng = np.random.default_rng(0)
    for i, src in enumerate(srcs):
        im = Image.open(src).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
        if kind == "camera":  # luminance and chroma noise of a phone or compact camera at base ISO
            a = np.asarray(im, dtype=np.int16)
            noise = rng.normal(0, 4.0, (3000, 4000, 1)) + rng.normal(0, 2.0, (3000, 4000, 3))
            im = Image.fromarray(np.clip(a + noise, 0, 255).astype(np.uint8))
        exif = Image.Exif()
        exif[0x010F] = "albumsort-bench"  # Make
        exif[0x0110] = "synthetic 12MP"  # Model
        orientation = (1, 1, 6, 8)[i % 4]
        exif[0x0112] = orientation
        if orientation == 6:
            im = im.transpose(Image.Transpose.ROTATE_90)
        elif orientation == 8:
            im = im.transpose(Image.Transpose.ROTATE_270)
        im.save(d / f"IMG_{i:04d}.jpg", quality=92 if kind == "camera" else 90, exif=exif.tobytes())
    return d


def build_small(n: int) -> Path:
    d = OUT / f"small-{n}"
    if d.is_dir() and sum(1 for _ in d.rglob("*.jpg")) == n:
        return d
    shutil.rmtree(d, ignore_errors=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = d / f"{i // 500:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(a).resize((64, 48), Image.Resampling.BILINEAR).save(sub / f"s{i:05d}.jpg", quality=80)
    return d


def decode_full(path: Path) -> int:
    with Image.open(path) as im:
        im.load()
        return im.size[0]


def decode_reduced_pillow(path: Path) -> tuple[int, int]:
    from albumsort.images import load_rgb

    return load_rgb(path, max_side=1000)[0].shape[:2]


def decode_reduced_cv2(path: Path) -> tuple[int, int]:
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_4).shape[:2]


def time_each(fn, files: list[Path]) -> float:
    """Median seconds per file of ``fn``, one process."""
    times = []
    for f in files:
        t = time.perf_counter()
        fn(f)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


FER_CODE = """
import sys, time
sys.path.insert(0, sys.argv.pop(1))  # OpenCV 4: fer's Haar cascade is gone from OpenCV 5
import cv2
from fer.fer import FER  # fer 25 keeps the class here
det = FER(mtcnn=False)
files = sys.argv[1:]
det.detect_emotions(cv2.imread(files[0]))  # load the model before timing
t = time.perf_counter()
faces = sum(len(det.detect_emotions(cv2.imread(f))) for f in files)
print(time.perf_counter() - t, faces)
"""


def time_fer(files: list[Path]) -> tuple[float, int] | None:
    """Seconds for the fer package's whole pipeline on ``files`` (one process), or None where fer is missing.

    fer needs OpenCV 4's Haar cascades (OpenCV 5 dropped them): installed once
    into benchmarks/out/opencv4, apart from albumsort's own OpenCV.
    """
    cv4 = OUT / "opencv4"
    if not (cv4 / "cv2").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(cv4),
                        "opencv-python-headless<5"], capture_output=True)
    p = subprocess.run([sys.executable, "-c", FER_CODE, str(cv4), *map(str, files)], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if p.returncode != 0:
        print(f"fer could not run: {(p.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
        return None
    secs, faces = p.stdout.split()[-2:]
    return float(secs), int(faces)


def time_decode(files: list[Path], workers: int) -> float:
    t = time.perf_counter()
    if workers == 1:
        for f in files:
            decode_full(f)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(decode_full, files, chunksize=4))
    return time.perf_counter() - t


def run_index(album: Path, db: Path) -> tuple[float, str, int]:
    """Wall time, summary line and peak RSS (KiB) of the largest process of one index run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "albumsort", "--db", str(db), "index", str(album)],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):
        sys.exit(p.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = [line for line in p.stderr.splitlines() if " indexed, " in line]  # a message: on stderr
    return wall, (summary[-1].strip() if summary else ""), max(peak, before)


STAGES = (("header", "header check"), ("read_hash", "read + hash the file"), ("known_lookup", "known-content look-up"),
          ("reduced_decode", "reduced decode (incl. orientation)"), ("exif_orientation", "  of it: EXIF orientation"),
          ("detect", "detection"), ("second_decode", "second decode (small faces)"), ("crop", "cropping"),
          ("emotion_model", "emotion model"), ("embed", "face embeddings (people)"), ("dhash", "difference hash"),
          ("pickle", "pickling the result"),
          ("ipc", "worker end -> driver (IPC, queue)"), ("store", "driver's SQLite write"),
          ("total", "worker total per photo"))


def profile(album: Path, db: Path) -> None:
    """One index run with stage timings; prints the table."""
    import json

    out = db.with_suffix(".profile.json")
    env = dict(os.environ, ALBUMSORT_PROFILE=str(out))
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "albumsort", "--db", str(db), "index", str(album)],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):
        sys.exit(p.stderr)
    rec = json.loads(out.read_text())
    photos = rec["photos"]
    for ph, st in zip(photos, rec["store_ms"], strict=False):
        ph["store"] = st
    n = len(photos)
    print(f"{'stage (ms per photo)':38}{'median':>9}{'p90':>9}{'mean':>9}  photos with it")
    for key, name in STAGES:
        vals = np.array([ph.get(key, 0.0) for ph in photos], float)
        has = sum(1 for ph in photos if key in ph)
        print(f"{name:38}{np.median(vals):9.1f}{np.percentile(vals, 90):9.1f}{vals.mean():9.1f}  {has}/{n}")
    scales = [ph["second_decode_scale"] for ph in photos if "second_decode_scale" in ph]
    faces = np.array([ph.get("faces", 0) for ph in photos])
    print(f"second decode on {len(scales)} of {n} photos; scales (x the 1000 px decode): "
          + ", ".join(f"{s:g}: {scales.count(s)}" for s in sorted(set(scales))))
    print(f"faces per photo (candidates): median {np.median(faces):.0f}, mean {faces.mean():.1f}")
    busy = sum(ph.get("total", 0.0) for ph in photos) / 1000.0
    print(f"workers busy: {busy:.1f} s of {rec['wall_s']:.1f} s x {rec['workers']} workers in the driver's "
          f"loop = {busy / (rec['wall_s'] * rec['workers']):.0%}; whole command {wall:.1f} s")


def peak_rss_of(album: Path, db: Path) -> int:
    code = ("import resource, subprocess, sys; "
            f"subprocess.run([sys.executable, '-m', 'albumsort', '--db', {str(db)!r}, 'index', {str(album)!r}], "
            "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--fer-photos", type=int, default=40, help="photos to time the fer package on (0: skip)")
    ap.add_argument("--kinds", default="camera,smooth", help="albums to time: camera (noisy, q92), smooth")
    ap.add_argument("--small", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="only the per-stage profile of one index run per album")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in args.kinds.split(","):
                large = build_large(args.photos, kind)
                print(f"\n{kind} album: {args.photos} photos of 4000x3000; {cores} cores")
                profile(large, Path(tmp) / f"{kind}.db")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        idx = None
        for kind in args.kinds.split(","):
            large = build_large(args.photos, kind)
            files = sorted(large.glob("*.jpg"))
            mb = sum(f.stat().st_size for f in files) / 1e6
            print(f"\n{kind} album: {len(files)} photos of 4000x3000 (EXIF, orientations 1/6/8), {mb:.0f} MB; "
                  f"{cores} cores")
            time_decode(files, 1)  # every file into the page cache
            dec1 = [time_decode(files, 1) for _ in range(args.repeats)]
            decn = [time_decode(files, cores) for _ in range(args.repeats)]
            sample = files[:40]
            print(f"decode at the detector's size (1000x750), median per photo, 1 process: "
                  f"Pillow draft {1000 * time_each(decode_reduced_pillow, sample):.1f} ms, "
                  f"OpenCV IMREAD_REDUCED_COLOR_4 {1000 * time_each(decode_reduced_cv2, sample):.1f} ms; "
                  f"full size {1000 * time_each(decode_full, sample):.1f} ms")
            walls = []
            for r in range(args.repeats):
                db = Path(tmp) / f"{kind}{r}.db"
                wall, line, _ = run_index(large, db)
                walls.append(wall)
            idx = statistics.median(walls)
            reruns = [run_index(large, Path(tmp) / f"{kind}0.db")[0] for _ in range(args.repeats)]
            dec1 += [time_decode(files, 1) for _ in range(args.repeats)]  # after the index runs too
            decn += [time_decode(files, cores) for _ in range(args.repeats)]
            d1, dn = statistics.mean(dec1), statistics.mean(decn)
            print(f"full-size Pillow decode, 1 process, cached (mean before/after): {d1:7.1f} s  "
                  f"({len(files) / d1:5.1f} photos/s)")
            print(f"full-size Pillow decode, {cores} processes, cached:               {dn:7.1f} s  "
                  f"({len(files) / dn:5.1f} photos/s)")
            print(f"albumsort index (fresh index, {cores} workers), median:          {idx:7.1f} s  "
                  f"({len(files) / idx:5.1f} photos/s)   [{line}]")
            print(f"  ratio index / decode (1 process):      {idx / d1:6.2f}x   (target <= 1.0x)")
            print(f"  ratio index / decode ({cores} processes):    {idx / dn:6.2f}x")
            print(f"no-change rerun of {len(files)} large photos:    {statistics.median(reruns):7.2f} s")
        if args.fer_photos and idx:
            fer = time_fer(files[:args.fer_photos])
            if fer:
                per = fer[0] / min(args.fer_photos, len(files))
                print(f"fer package (Haar + mini-Xception, 1 process), first {min(args.fer_photos, len(files))} "
                      f"photos: {per * 1000:.0f} ms/photo ({fer[1]} faces) vs albumsort {idx / len(files) * 1000:.0f} "
                      f"ms/photo: albumsort is {per / (idx / len(files)):.1f}x faster")

        small = build_small(args.small)
        run_index(small, Path(tmp) / "small.db")
        reruns = [run_index(small, Path(tmp) / "small.db")[0] for _ in range(args.repeats)]
        print(f"no-change rerun of {args.small} photos:      {statistics.median(reruns):7.2f} s   (target < 1 s)")

        quarter = OUT / f"small-{args.small}-quarter"
        if not quarter.is_dir():
            quarter.mkdir(parents=True)
            for sub in sorted(small.iterdir())[: max(1, len(list(small.iterdir())) // 4)]:
                shutil.copytree(sub, quarter / sub.name)
        n_q = sum(1 for _ in quarter.rglob("*.jpg"))
        rss_q = peak_rss_of(quarter, Path(tmp) / "q.db")
        rss_f = peak_rss_of(small, Path(tmp) / "f.db")
        print(f"peak RSS of the largest process: {n_q} photos {rss_q / 1024:.0f} MiB, "
              f"{args.small} photos {rss_f / 1024:.0f} MiB  (ratio {rss_f / rss_q:.2f} for {args.small / n_q:.0f}x "
              "the photos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
