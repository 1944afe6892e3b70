"""Reading a face against its person's own faces (issue 20, point 4): which correction helps, on three kinds of album.

    git --git-dir=<WuJie1010/Facial-Expression-Recognition.Pytorch snapshot> archive HEAD CK+48 \\
        | tar -x -C /tmp/people-data/ckplus
    python benchmarks/person_reading.py --ckplus /tmp/people-data/ckplus/CK+48

CK+ (research terms, never committed) holds posed sequences of 123 subjects,
the subject in every file name (``S010_004_00000017.png``: subject 10,
sequence 4); each sequence's last frame is its peak expression.  Contempt is
left out (albumsort reads seven expressions without it); CK+48 has no neutral
frames, so this measures the six others only.  The shipped model reads each
48 px crop resized to its input, as it reads FER2013's crops.

Three albums are built from the same faces, persons known (the grouping is
measured in ``benchmarks/people.py``):

* posed: every peak frame of every subject (each person shows several expressions);
* smile-heavy: each subject's three happy frames plus one peak frame of every other expression;
* always smiling: each subject's three happy frames only (nearly identical frames: a weak test), and
  with ``--fer-happy``, FER2013 happy faces 30 to a pretended person (varied smiles, many photos: the
  test that a correction leaves a person who only ever smiles alone);
* mixed: half the subjects only smile, the other half are posed.

Corrections of the log-probabilities ``l`` of a face whose person has ``n``
faces with mean log-probabilities ``m``: none; mean-centring ``l - m``;
shrinkage ``l - n/(n+k) m``; learned ``l - a n/(n+k) m`` with ``a`` chosen
on the other subjects (5 folds by subject, on the posed album).  Printed: the
share of faces whose top expression is the labelled one, per album, and for
the always-smiling album the share of smiles still read happy.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from albumsort.emotions import EmotionModel  # noqa: E402
from albumsort.labels import EXPRESSIONS  # noqa: E402

FOLDERS = {"anger": "angry", "happy": "happy", "sadness": "sad", "surprise": "surprise", "fear": "fear",
           "disgust": "disgust"}
HOW = ("none", "centre", "shrink", "album", "album-shrink", "capped")
CAP = 1.0
NAME = re.compile(r"S(\d+)_(\d+)_(\d+)\.png$")


def load(folder: Path, model: EmotionModel) -> list[dict]:
    """One row per frame: subject, sequence, frame, label, log-probabilities."""
    rows, crops = [], []
    for sub, label in FOLDERS.items():
        for f in sorted((folder / sub).glob("*.png")):
            m = NAME.search(f.name)
            if not m:
                continue
            im = Image.open(f).convert("L").resize((model.input_size,) * 2, Image.Resampling.BILINEAR)
            crops.append(np.asarray(im))
            rows.append({"subject": int(m[1]), "sequence": int(m[2]), "frame": int(m[3]), "label": label})
    probs, _ = model.score_crops(np.stack(crops))
    for r, p in zip(rows, np.log(np.clip(probs, 1e-4, 1.0)), strict=True):
        r["l"] = p
    return rows


def albums(rows: list[dict]) -> tuple[dict[str, list[dict]], set[int]]:
    """The albums by name, and the subjects who only smile in the mixed one."""
    peak: dict[tuple, dict] = {}
    for r in rows:
        key = (r["subject"], r["sequence"])
        if key not in peak or r["frame"] > peak[key]["frame"]:
            peak[key] = r
    happy = defaultdict(list)
    for r in rows:
        if r["label"] == "happy":
            happy[r["subject"]].append(r)
    posed = list(peak.values())
    smiles = [r for s in happy for r in happy[s]]
    heavy = smiles + [r for r in posed if r["label"] != "happy" and r["subject"] in happy]
    subjects = sorted(happy)
    smilers = set(subjects[::2])  # half the subjects only ever smile, the other half are posed
    mixed = [r for r in smiles if r["subject"] in smilers] + [r for r in posed if r["subject"] not in smilers]
    return {"posed": posed, "smile-heavy": heavy, "always smiling": smiles, "mixed": mixed}, smilers


def pooled_smiles(folder: Path, model: EmotionModel, per_person: int = 30, persons: int = 10) -> list[dict]:
    """An always-smiling album with many varied photos a person: FER2013 happy faces, ``per_person`` of them
    pretending to be one person (no resting face to find, so any change a correction makes is a loss)."""
    files = sorted(folder.glob("*.png"))[:per_person * persons]
    crops = [np.asarray(Image.open(f).convert("L").resize((model.input_size,) * 2, Image.Resampling.BILINEAR))
             for f in files]
    probs, _ = model.score_crops(np.stack(crops))
    return [{"subject": 10_000 + i // per_person, "label": "happy", "l": lp}
            for i, lp in enumerate(np.log(np.clip(probs, 1e-4, 1.0)))]


def corrected(album: list[dict], how: str, k: float = 5.0, a: float = 1.0) -> np.ndarray:
    """Top expression index of every face of ``album`` after the correction ``how``."""
    by = defaultdict(list)
    for i, r in enumerate(album):
        by[r["subject"]].append(i)
    L = np.stack([r["l"] for r in album])
    out = L.copy()
    ref = L.mean(axis=0) if how.startswith("album") else 0.0
    for idx in by.values():
        n, m = len(idx), L[idx].mean(axis=0)
        if n < 2:  # one face: nothing to read it against (centring it would leave a tie)
            continue
        w = {"none": 0.0, "centre": 1.0, "shrink": n / (n + k), "learned": a * n / (n + k), "album": 1.0,
             "album-shrink": n / (n + k), "capped": n / (n + k)}[how]
        c = w * (m - ref)
        if how == "capped":  # the person's offset, centred over the expressions, at most CAP nats either way
            c = np.clip(c - c.mean(), -CAP, CAP)
        out[idx] = L[idx] - c
    return out.argmax(axis=1)


def accuracy(album: list[dict], top: np.ndarray) -> float:
    return float(np.mean([EXPRESSIONS[t] == r["label"] for t, r in zip(top, album, strict=True)]))


GRID = tuple(i / 10 for i in range(16))
"""The strengths ``a`` the learned correction chooses from."""


def learned_tops(album: list[dict], posed: list[dict], k: float, grid: tuple = GRID) -> np.ndarray:
    """Each fold's subjects read with the ``a`` that reads the other folds' posed faces best; subjects not in
    the posed album (the pooled smiles) with the ``a`` that reads all of it best."""
    subjects = sorted({r["subject"] for r in posed})
    folds = {s: i % 5 for i, s in enumerate(subjects)}
    top = np.zeros(len(album), np.int64)
    for fold in (*range(5), None):
        train = [r for r in posed if folds[r["subject"]] != fold]
        best = max(grid, key=lambda a: accuracy(train, corrected(train, "learned", k, a)))
        mine = [i for i, r in enumerate(album) if folds.get(r["subject"]) == fold]
        if mine:
            top[mine] = corrected([album[i] for i in mine], "learned", k, best)
            where = f"fold {fold}" if fold is not None else "outside the folds"
            print(f"    learned: a = {best:.1f} for {len(mine)} faces ({where})", file=sys.stderr)
    return top


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckplus", type=Path, required=True, help="the CK+48 folder (anger/, happy/, ...)")
    ap.add_argument("--model", default=None, help="emotion model (default: the shipped one)")
    ap.add_argument("--k", type=float, default=5.0, help="shrinkage: the correction is scaled by n/(n+k)")
    ap.add_argument("--fer-happy", type=Path, default=ROOT.parent / "shared/data/fer2013/test/happy",
                    help="FER2013 happy faces for the always-smiling album with 30 photos a person")
    ap.add_argument("--cap", type=float, default=CAP, help="capped: the largest correction of one expression, nats")
    args = ap.parse_args(argv)
    globals()["CAP"] = args.cap
    if not args.ckplus.is_dir():
        print(f"no CK+48 folder at {args.ckplus}", file=sys.stderr)
        return 2
    model = EmotionModel(args.model)
    rows = load(args.ckplus, model)
    al, smiling = albums(rows)
    if args.fer_happy.is_dir():
        al["smiling, 30 each"] = pooled_smiles(args.fer_happy, model)
    posed = al["posed"]
    print(f"{len(rows)} frames of {len({r['subject'] for r in rows})} subjects; model {model.version}")
    print(f"{'album':16}{'faces':>7}" + "".join(f"{h:>14}" for h in HOW) + f"{'learned':>14}")
    for name, album in al.items():
        cells = [accuracy(album, corrected(album, h, args.k)) for h in HOW]
        cells.append(accuracy(album, learned_tops(album, posed, args.k)))
        print(f"{name:16}{len(album):>7}" + "".join(f"{100 * c:>14.1f}" for c in cells))
    mixed = al["mixed"]
    print("mixed album, the smilers' smiles read happy / the posed subjects' faces read right:")
    for h in HOW:
        top = corrected(mixed, h, args.k)
        s_ = [EXPRESSIONS[t] == "happy" for t, r in zip(top, mixed, strict=True) if r["subject"] in smiling]
        p_ = [EXPRESSIONS[t] == r["label"] for t, r in zip(top, mixed, strict=True) if r["subject"] not in smiling]
        print(f"  {h:14}{100 * np.mean(s_):6.1f}%  {100 * np.mean(p_):6.1f}%")
    print("\nposed, recall per expression (" + " / ".join(HOW) + "):")
    tops = {h: corrected(posed, h, args.k) for h in HOW}
    for e in FOLDERS.values():
        idx = [i for i, r in enumerate(posed) if r["label"] == e]
        cells = [np.mean([EXPRESSIONS[tops[h][i]] == e for i in idx]) for h in tops]
        print(f"  {e:10}{len(idx):>4}  " + " / ".join(f"{100 * c:.0f}%" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
