"""Face embeddings and persons: speed, verification, grouping, and strangers in crowds.

    python benchmarks/people.py [--data /tmp/people-data] [--sweep] [--sets deepface,ckplus,wider]

Every face is found as ``albumsort index`` finds it (the default detector and the
emotion model's confirmation, ``pipeline.find_faces``, on the photo decoded at
``faces.DETECT_SIDE``), aligned by its five landmarks and embedded by
``albumsort.embeddings.FaceEmbedder`` with its shipped rule for which faces get
an embedding.

* Speed: milliseconds per face on one core (one ONNX Runtime thread; run it
  under ``taskset -c 1``), alignment included, median of repeated runs, faces
  one at a time and in batches of 16.
* Identity-labelled faces (fetched to ``--data``, never committed; a set that
  is absent is skipped):
  - ``deepface``: deepface's ``tests/unit/dataset`` (MIT): celebrity photos,
    identities from the "Yes" pairs of its ``master.csv`` (connected
    components); ``couple.jpg`` and the group selfie have no label and are left
    out.  The largest face of each photo is the labelled one.
  - ``ckplus``: CK+48 (research terms; ``CK+48/<emotion>/S<subject>_<seq>_<frame>.png``
    from WuJie1010/Facial-Expression-Recognition.Pytorch): 48 px posed
    portraits, one face per sequence (its last frame, the peak expression),
    the subject from the file name.  Each 48 px crop is padded with its blurred
    border and enlarged 4x for the detector (it finds nothing in 48 px), the
    landmarks are scaled back, and the face is aligned from the 48 px image.
  For each: verification ROC AUC over all pairs, and the pairwise precision
  and recall of ``cluster_faces`` at its threshold.
* Crowds (``../shared/data/wider-face-val-sample``, photos with two or more
  kept faces): every pair of faces of one photo is two different people; the
  share of those pairs whose cosine similarity reaches the threshold is how
  often strangers would come within it.  By event half (``is_training_share``):
  thresholds are chosen on the training half, the held-out half is reported.
* ``--sweep``: the tables that chose the thresholds: precision/recall and the
  crowd rate by cosine threshold, and by the minimum raw norm and eye distance
  (with synthetic degradations of the labelled faces: shrunk, blurred).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "people"

from albumsort import embeddings as E  # noqa: E402
from albumsort.emotions import EmotionModel  # noqa: E402
from albumsort.faces import DETECT_SIDE, make_detector  # noqa: E402
from albumsort.images import load_rgb  # noqa: E402
from albumsort.pipeline import find_faces  # noqa: E402

TARGETS = {"precision": 0.98, "recall": 0.95, "ms_per_face": 5.0}


# --------------------------------------------------------------------------
# Finding faces as the album does
class Finder:
    def __init__(self):
        self.detector = make_detector(threads=1)
        self.model = EmotionModel(threads=1)

    def faces(self, rgb):
        return find_faces(rgb, self.detector, self.model).faces


def _union_find_labels(pairs, names):
    parent = {n: n for n in names}

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        if a in parent and b in parent:
            parent[root(a)] = root(b)
    return {n: root(n) for n in names}


def deepface_items(data: Path):
    """[(path, identity)] from deepface's unit-test dataset: identities are the connected components of the
    "Yes" pairs of its ``master.csv`` and ``face-recognition-pivot.csv``."""
    d = data / "deepface"
    if not (d / "face-recognition-pivot.csv").is_file():
        return None
    pairs = []
    for fname, decision in (("master.csv", "Decision"), ("face-recognition-pivot.csv", "decision")):
        if (d / fname).is_file():
            with open(d / fname, newline="") as f:
                pairs += [(Path(r["file_x"]).name, Path(r["file_y"]).name, r[decision]) for r in csv.DictReader(f)]
    names = sorted({a for a, _, _ in pairs} | {b for _, b, _ in pairs})
    names = [n for n in names if (d / n).is_file()]
    ident = _union_find_labels([(a, b) for a, b, dec in pairs if dec == "Yes"], names)
    return [(d / n, ident[n]) for n in names]


def ckplus_items(data: Path):
    """[(path, subject)]: CK+48, the last frame of every sequence."""
    d = data / "ckplus" / "CK+48"
    if not d.is_dir():
        return None
    last = {}
    for p in sorted(d.glob("*/*.png")):
        subj, seq, frame = p.stem.split("_")
        key = (subj, seq)
        if key not in last or int(frame) > int(last[key].stem.split("_")[2]):
            last[key] = p
    return [(p, subj) for (subj, _), p in sorted(last.items())]


def pad_for_detector(rgb: np.ndarray, factor: int = 4) -> tuple[np.ndarray, float, int]:
    """A tight small crop padded by half its side with its blurred border and enlarged ``factor`` times,
    so the detector sees a face in context; returns (image, factor, pad in original pixels)."""
    import cv2

    h, w = rgb.shape[:2]
    pad = max(h, w) // 2
    big = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    blurred = cv2.GaussianBlur(big, (0, 0), pad / 3)
    blurred[pad:pad + h, pad:pad + w] = rgb
    return cv2.resize(blurred, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC), factor, pad


def labelled_faces(items, small: bool, finder: Finder):
    """For each item, the largest kept face: (rgb it is cut from, landmarks (5, 2) in its pixels, identity)."""
    out = []
    for path, ident in items:
        if small:
            from PIL import Image

            rgb = np.asarray(Image.open(path).convert("RGB"))
            big, k, pad = pad_for_detector(rgb)
            faces = finder.faces(big)
            if not faces:
                continue
            f = max(faces, key=lambda f: f.box[2] * f.box[3])
            lm = E.landmarks_array(f) / k - pad
        else:
            rgb, _ = load_rgb(path, max_side=DETECT_SIDE)
            faces = finder.faces(rgb)
            if not faces:
                continue
            f = max(faces, key=lambda f: f.box[2] * f.box[3])
            lm = E.landmarks_array(f)
        out.append((rgb, lm, ident))
    return out


def wider_faces(finder: Finder, limit: int | None = None):
    """[(photo, event half, rgb, [landmarks])] for WIDER sample photos with at least two kept faces."""
    from training.data import is_training_share

    d = SHARED / "wider-face-val-sample"
    if not (d / "boxes.csv").is_file():
        return None
    with open(d / "boxes.csv", newline="") as f:
        paths = sorted({r["path"] for r in csv.DictReader(f)})
    out = []
    for rel in paths[:limit]:
        rgb, _ = load_rgb(d / "images" / rel, max_side=DETECT_SIDE)
        faces = finder.faces(rgb)
        if len(faces) >= 2:
            half = "train" if is_training_share(rel.split("/")[0]) else "held-out"
            out.append((rel, half, rgb, [E.landmarks_array(f) for f in faces]))
    return out


# --------------------------------------------------------------------------
# Measures
def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (the probability a positive outscores a negative; ties count half)."""
    from numpy import argsort

    s = np.asarray(scores, np.float64)
    y = np.asarray(positive, bool)
    order = argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    npos, nneg = y.sum(), (~y).sum()
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / max(npos * nneg, 1))


def pair_sims(v: np.ndarray, ident) -> tuple[np.ndarray, np.ndarray]:
    ident = np.asarray(ident)
    iu = np.triu_indices(len(v), 1)
    return (v @ v.T)[iu], (ident[:, None] == ident[None, :])[iu]


def crowd_pairs(v: np.ndarray, photos) -> np.ndarray:
    """Cosine similarities of every pair of faces from one photo (all different people)."""
    photos = np.asarray(photos)
    out = []
    for ph in np.unique(photos):
        idx = np.flatnonzero(photos == ph)
        if len(idx) >= 2:
            s = v[idx] @ v[idx].T
            out.append(s[np.triu_indices(len(idx), 1)])
    return np.concatenate(out) if out else np.zeros(0)


def embed_all(embedder: E.FaceEmbedder, records) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit vectors, raw norms, eye distances) of (rgb, landmarks) records."""
    crops = np.stack([E.align(rgb, lm) for rgb, lm in records]) if records else np.zeros((0, 112, 112, 3))
    v, n = embedder.embed_crops(crops)
    eyes = np.array([E.eye_distance(lm) for _, lm in records], np.float32)
    return v, n, eyes


IDLE_DETECTOR_MS = 22.0
"""scrfd-int8's median ms per held-out WIDER photo on one core of this project's machine, measured idle
(benchmarks/README.md, issue 17): the yardstick that turns a speed measured under load into an estimate."""


def speed(embedder: E.FaceEmbedder, records, detector=None, photos=(), repeats: int = 9) -> dict:
    """Median ms per face (alignment + network), one at a time and in batches of 16; and, interleaved with
    them so both see the same load, the detector's median ms per photo on ``photos``."""
    records = (records * (32 // max(len(records), 1) + 1))[:32]
    out: dict = {1: [], 16: [], "detector": []}
    for _ in range(repeats):
        for batch in (1, 16):
            t = time.perf_counter()
            for i in range(0, len(records), batch):
                part = records[i:i + batch]
                embedder.embed_crops(np.stack([E.align(rgb, lm) for rgb, lm in part]))
            out[batch].append((time.perf_counter() - t) * 1000 / len(records))
        if detector is not None:
            for rgb in photos:
                t = time.perf_counter()
                detector.detect(rgb)
                out["detector"].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) if v else float("nan") for k, v in out.items()}


def clustered(v, ident, photos=None, **kw):
    lab = E.cluster_faces(v, np.arange(len(v)) if photos is None else photos, **kw)
    return E.pairwise_scores(ident, lab) + (len(set(lab.tolist())),)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("PEOPLE_DATA", "/tmp/people-data")))
    ap.add_argument("--sets", default="deepface,ckplus,wider")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--model", type=Path, default=None, help="another embedding ONNX file")
    args = ap.parse_args(argv)
    sets = args.sets.split(",")
    finder = Finder()
    embedder = E.FaceEmbedder(args.model, threads=1)
    print(f"embedder {embedder.version}; {E.LINKAGE} linkage at {E.THRESHOLD}; a face is embedded when its eyes "
          f"are >= {E.MIN_EYES:g} px apart and its raw norm >= {E.MIN_NORM:g}")
    print(f"faces found by {finder.detector.version} + {finder.model.version}")
    labelled = {}
    for name, items, small in (("deepface", deepface_items(args.data) if "deepface" in sets else None, False),
                               ("ckplus", ckplus_items(args.data) if "ckplus" in sets else None, True)):
        if items is None:
            if name in sets:
                print(f"{name}: not present under {args.data} (skipped)")
            continue
        recs = labelled_faces(items, small, finder)
        labelled[name] = recs
        print(f"{name}: {len(items)} photos, {len(recs)} with a kept face, {len({r[2] for r in recs})} identities")
    crowd = wider_faces(finder) if "wider" in sets else None
    if "wider" in sets and crowd is None:
        print("wider: not present (skipped)")

    speed_recs = [(r[0], r[1]) for recs in labelled.values() for r in recs[:16]]
    speed_recs = speed_recs or [(c[2], lm) for c in (crowd or [])[:4] for lm in c[3]]
    if speed_recs:
        from PIL import Image

        from training.data import is_training_share

        wider = SHARED / "wider-face-val-sample" / "images"
        held = sorted(p for p in wider.glob("*/*.jpg") if not is_training_share(p.parent.name))[::14][:16]
        photos = [np.asarray(Image.open(p).convert("RGB")) for p in held]
        sp = speed(embedder, speed_recs, finder.detector if finder.detector.name == "scrfd-int8" else None, photos)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"\nspeed, one thread (run under taskset -c 1): {sp[1]:.2f} ms/face one at a time, {sp[16]:.2f} ms/face "
              f"in batches of 16 (median of 9 runs of 32 faces; alignment included; target <= "
              f"{TARGETS['ms_per_face']:g}); load average {load:.1f}")
        if sp["detector"] == sp["detector"]:
            k = IDLE_DETECTOR_MS / sp["detector"]
            print(f"  yardstick, interleaved: scrfd-int8 {sp['detector']:.1f} ms/photo against {IDLE_DETECTOR_MS:g} "
                  f"idle -> estimated idle {sp[1] * k:.2f} ms/face one at a time, {sp[16] * k:.2f} in batches")

    results = {}
    if labelled:
        print("\nset          faces  embedded  ids    AUC  precision  recall  persons")
    for name, recs in labelled.items():
        v, n, eyes = embed_all(embedder, [(r[0], r[1]) for r in recs])
        ident = np.array([r[2] for r in recs])
        ok = embedder.usable(n, eyes)
        s, same = pair_sims(v[ok], ident[ok])
        p, r, k = clustered(v[ok], ident[ok])
        results[name] = (v, n, eyes, ident, ok)
        print(f"{name:12s} {len(v):5d}  {ok.mean():7.1%}  {len(set(ident)):4d}  {roc_auc(s, same):.4f}"
              f"     {p:.3f}   {r:.3f}  {k:6d}")

    if crowd:
        print("\ncrowds (WIDER photos with >= 2 kept faces): different-person pairs of one photo within the threshold")
        print("half       photos  faces  embedded   pairs  within")
        cv = {}
        for half in ("train", "held-out"):
            sel = [c for c in crowd if c[1] == half]
            recs = [(c[2], lm) for c in sel for lm in c[3]]
            photos = np.array([c[0] for c in sel for _ in c[3]])
            v, n, eyes = embed_all(embedder, recs)
            ok = embedder.usable(n, eyes)
            s = crowd_pairs(v[ok], photos[ok])
            cv[half] = (v, n, eyes, photos, ok)
            print(f"{half:9s} {len(sel):6d} {len(v):6d}  {ok.mean():7.1%}  {len(s):6d}  "
                  f"{np.mean(s >= E.THRESHOLD):6.2%}")
        results["wider"] = cv
        # strangers across photos: every embedded crowd face clustered at once (faces of different photos are
        # almost always different people here)
        v = np.concatenate([cv[h][0][cv[h][4]] for h in cv])
        photos = np.concatenate([cv[h][3][cv[h][4]] for h in cv])
        lab = E.cluster_faces(v, photos)
        shared = np.array([len(set(photos[lab == g])) > 1 for g in lab])
        print(f"all {len(v)} embedded crowd faces clustered together: {shared.mean():.1%} share a person with a "
              f"face of another photo ({len(set(lab.tolist()))} persons)")
        for name, (lv, _ln, _le, lid, lok) in [(k, x) for k, x in results.items() if k != "wider"]:
            allv = np.concatenate([lv[lok], v])
            ident = np.concatenate([lid[lok].astype(object), [f"wider{i}" for i in range(len(v))]])
            ph = np.concatenate([np.array([f"{name}{i}" for i in range(lok.sum())], object), photos.astype(object)])
            lab = E.cluster_faces(allv, ph)
            m = lok.sum()
            p, r = E.pairwise_scores(ident[:m], lab[:m])
            crowd_persons = set(lab[m:].tolist())
            mixed = np.mean([g in crowd_persons for g in lab[:m].tolist()])
            print(f"{name} with the crowd faces as strangers: precision {p:.3f} recall {r:.3f}; "
                  f"{mixed:.1%} of its faces share a person with a crowd face")

    if args.sweep:
        sweep(embedder, labelled, results)
    return 0


def sweep(embedder, labelled, results) -> None:
    print("\n--- alignment template and mirror averaging (verification AUC, all faces) ---")
    sq = E.ARCFACE_TEMPLATE
    padded = (sq - 56) / 1.5 + 56  # foamliu's LFW evaluation: the same points with inner padding 0.25
    for name, recs in labelled.items():
        ident = np.array([r[2] for r in recs])
        for tname, t in (("arcface", sq), ("padded 0.25", padded)):
            crops = np.stack([E.align(r[0], r[1], template=t) for r in recs])
            v, _ = embedder.embed_crops(crops)
            vf, _ = embedder.embed_crops(np.ascontiguousarray(crops[:, :, ::-1]))
            both = v + vf
            both /= np.linalg.norm(both, axis=1, keepdims=True)
            a1 = roc_auc(*pair_sims(v, ident))
            a2 = roc_auc(*pair_sims(both, ident))
            print(f"{name:9s} {tname:12s} AUC {a1:.4f}, with the mirror image averaged in {a2:.4f}")

    print("\n--- shrunk and blurred portraits (deepface): raw norm, and same-person pairs (against the unshrunk "
          "faces) within the threshold ---")
    if "deepface" in labelled:
        import cv2

        recs = labelled["deepface"]
        v0, n0, _ = embed_all(embedder, [(r[0], r[1]) for r in recs])
        ident = np.array([r[2] for r in recs])
        same = ident[:, None] == ident[None, :]
        np.fill_diagonal(same, False)
        diff = ident[:, None] != ident[None, :]

        def row(label, crops):
            v, n = embedder.embed_crops(np.stack(crops))
            s = v @ v0.T
            auc = roc_auc(np.concatenate([s[same], s[diff]]),
                          np.r_[np.ones(same.sum(), bool), np.zeros(diff.sum(), bool)])
            print(f"{label:18s} norm median {np.median(n):5.1f}  AUC {auc:.4f}  "
                  f"same-person within {np.mean(s[same] >= E.THRESHOLD):.3f}"
                  f"  different within {np.mean(s[diff] >= E.THRESHOLD):.4f}")

        row("as photographed", [E.align(r[0], r[1]) for r in recs])
        for eyes in (32, 24, 16, 12, 8, 6):
            crops = []
            for rgb, lm, _ in recs:
                k = eyes / E.eye_distance(lm)
                crops.append(E.align(cv2.resize(rgb, None, fx=k, fy=k, interpolation=cv2.INTER_AREA), lm * k))
            row(f"eyes {eyes} px apart", crops)
        for sigma in (1, 2, 3, 4):
            row(f"blur sigma {sigma} px", [E.align(cv2.GaussianBlur(r[0], (0, 0), sigma * E.eye_distance(r[1]) / 35),
                                                   r[1])
                                           for r in recs])

    if "wider" in results:
        print(f"\n--- which faces get an embedding: embedded share / different-person pairs of one photo within "
              f"{E.THRESHOLD} / embedded faces in a person with a face of another photo ---")
        for half in ("train", "held-out"):
            v, n, eyes, photos, _ = results["wider"][half]
            print(f"{half} half; rows: eyes >= px, columns: raw norm >= "
                  + "".join(f"{m:>22g}" for m in (0, 10, 11, 12, 13, 14)))
            for me in (0, 8, 12, 16):
                line = f"{me:5d}"
                for mn in (0, 10, 11, 12, 13, 14):
                    ok = (n >= mn) & (eyes >= me)
                    s = crowd_pairs(v[ok], photos[ok])
                    lab = E.cluster_faces(v[ok], photos[ok])
                    ph = photos[ok]
                    cross = np.mean([len(set(ph[lab == g])) > 1 for g in lab]) if len(lab) else 0.0
                    line += f"   {ok.mean():5.1%} {np.mean(s >= E.THRESHOLD):5.2%} {cross:5.1%}"
                print(line)
        n_all = np.concatenate([results["wider"][h][1] for h in ("train", "held-out")])
        e_all = np.concatenate([results["wider"][h][2] for h in ("train", "held-out")])
        print("crowd faces (both halves) with a raw norm >= 10 / 12 / 14, by eye distance:")
        for lo, hi in ((12, 16), (16, 24), (24, 40), (40, 10000)):
            m = (e_all >= lo) & (e_all < hi)
            if m.any():
                print(f"  eyes {lo}-{hi if hi < 10000 else ''} px: {m.sum():5d} faces, " +
                      " / ".join(f"{np.mean(n_all[m] >= t):.0%}" for t in (10, 12, 14))
                      + f", median norm {np.median(n_all[m]):.1f}")

    print("\n--- threshold and linkage (embedded faces): pairwise precision / recall; crowd pairs within ---")
    names = [k for k in results if k != "wider"]
    print("threshold linkage  " + "".join(f"{n:>18s}" for n in names)
          + ("   crowd train  held-out" if "wider" in results else ""))
    for th in np.round(np.arange(0.40, 0.701, 0.025), 3):
        for link in ("centroid", "average"):
            line = f"{th:9.3f} {link:9s}"
            for name in names:
                v, n, eyes, ident, ok = results[name]
                p, r, _ = clustered(v[ok], ident[ok], threshold=th, linkage=link)
                line += f"     {p:.3f} / {r:.3f}"
            if "wider" in results and link == "centroid":
                for half in ("train", "held-out"):
                    v, n, eyes, photos, ok = results["wider"][half]
                    line += f"   {np.mean(crowd_pairs(v[ok], photos[ok]) >= th):7.2%}"
            print(line)


if __name__ == "__main__":
    raise SystemExit(main())
