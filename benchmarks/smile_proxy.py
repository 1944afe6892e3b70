"""Smiles against everything else, by face and by photo score: a stand-in for GENKI-4K (issue 24, point 5).

    python benchmarks/smile_proxy.py OLD.onnx [...] [--current models/emotion.onnx]

Why: measured outside the project, the smile/non-smile AUC of the photo score
fell from 0.988 (48 px model) to 0.975 (96 px model); GENKI-4K cannot be
obtained here.  This takes the labelled held-out faces that are here (FER2013
PublicTest with FER+ majority labels, RAF-DB's validation share, ExpW's
held-out share, each cut as the album cuts it) and, for each model, prints the
happy-vs-rest ROC AUC of

* the face's P(happy) alone, and
* the photo score a one-face photo gets (``albumsort.scores``: confidence =
  detector x readability x top probability, the detector's score taken as 1;
  a face under the 0.20 floor leaves the photo at 0, "No face"),

and the share of smiles whose readability is under 0.5.  Then, for every
model, which degradation of a readable face makes it unreadable: ExpW's
held-out faces read readable as they are, darkened, softened (shrunk to N px
and enlarged back) or noised, and the share that falls under 0.5.  For the last model
it also tries other ways readability could enter the confidence, with what
each lets through: the labelled face-like things of the WIDER sample
(``evaluate --facelike``) ranked as sad or angry, and held-out non-face crops
reaching the floor.  Earlier shipped models: ``git show 9df7887:models/emotion.onnx``
(48 px, with its ``emotion.json``) and ``101d535`` (the first 96 px file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from albumsort.labels import EXPRESSIONS  # noqa: E402
from albumsort.scores import DEFAULT_MIN_CONFIDENCE, PRIOR, PRIOR_WEIGHT  # noqa: E402

HAPPY = EXPRESSIONS.index("happy")
SAD_ANGRY = [EXPRESSIONS.index("sad"), EXPRESSIONS.index("angry")]


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half."""
    from scipy.stats import rankdata

    r = rankdata(scores)
    n1 = int(positive.sum())
    n0 = len(scores) - n1
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def confidence(p: np.ndarray, read: np.ndarray, det=1.0, weight=lambda r: r) -> np.ndarray:
    return det * weight(read) * p.max(1)


def one_face_photo_score(p: np.ndarray, read: np.ndarray, weight=lambda r: r) -> np.ndarray:
    """``scores.score_terms`` for a photo of one face (0 when the face is under the confidence floor)."""
    c = confidence(p, read, weight=weight)
    s = (c * p[:, HAPPY] + PRIOR_WEIGHT * PRIOR) / (c + PRIOR_WEIGHT)
    return np.where(c >= DEFAULT_MIN_CONFIDENCE, s, 0.0)


WEIGHTS = {"r (as shipped)": lambda r: r, "sqrt(r)": np.sqrt, "r ** 0.25": lambda r: r ** 0.25,
           "min(1, r / 0.25)": lambda r: np.minimum(1.0, r / 0.25), "1 (ignored)": np.ones_like}


def _soften(x: np.ndarray, side: int) -> np.ndarray:
    import cv2

    n = x.shape[1]
    return np.stack([cv2.resize(cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA), (n, n),
                                interpolation=cv2.INTER_LINEAR).reshape(im.shape) for im in x])


def _noised(x: np.ndarray, sd: float) -> np.ndarray:
    return np.clip(x + np.random.default_rng(0).normal(0, sd, x.shape), 0, 255).astype(np.uint8)


DEGRADATIONS = {
    "brightness x0.3": lambda x: (x * 0.3).astype(np.uint8),
    "gamma 2 (darker)": lambda x: (255 * (x / 255.0) ** 2).astype(np.uint8),
    "softened to 32 px": lambda x: _soften(x, 32),
    "softened to 24 px": lambda x: _soften(x, 24),
    "softened to 16 px": lambda x: _soften(x, 16),
    "noise sd 12": lambda x: _noised(x, 12),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path, help="earlier .onnx files (each with its .json beside it)")
    ap.add_argument("--current", type=Path, default=ROOT / "models" / "emotion.onnx")
    args = ap.parse_args(argv)
    from training.data import load_expw, load_facelike, load_ferplus, load_nonfaces, load_rafdb
    from training.evaluate import model_input, predict

    print("model                          set          faces  smiles  AUC P(happy)  AUC photo  smiles read < 0.5")
    last = {}
    for path in [*args.models, args.current]:
        size, ch = model_input(path)
        sets = {}
        x, t = load_ferplus(DATA / "fer2013", "test", labels="majority", size=size, channels=ch)
        sets["FER+ test"] = (x, t.argmax(1))
        x, t, _ = load_rafdb(DATA / "rafdb", "val", size=size, channels=ch)
        sets["RAF-DB val"] = (x, t.argmax(1))
        x, t, _ = load_expw(DATA / "expw", "test", size=size, channels=ch)
        sets["ExpW test"] = (x, t.argmax(1))
        for name, (x, y) in sets.items():
            p, r = predict(path, x)
            pos = y == HAPPY
            last[name] = (p, r, pos)
            print(f"{str(path)[-30:]:30s} {name:11s} {len(y):6d} {pos.sum():7d}  {roc_auc(p[:, HAPPY], pos):11.4f}"
                  f"  {roc_auc(one_face_photo_score(p, r), pos):9.4f}  {np.mean(r[pos] < 0.5):17.1%}", flush=True)

    print("\nExpW held-out faces readable as they are (>= 0.5), share read < 0.5 after a degradation:")
    paths = [*args.models, args.current]
    print(f"{'degradation':20s}" + "".join(f"{str(p)[-26:]:>28s}" for p in paths))
    crops, readable = {}, {}
    for path in paths:
        size, ch = model_input(path)
        crops[path] = load_expw(DATA / "expw", "test", size=size, channels=ch)[0]
        readable[path] = predict(path, crops[path])[1] >= 0.5
    for name, degrade in DEGRADATIONS.items():
        cells = [np.mean(predict(p, degrade(crops[p]))[1][readable[p]] < 0.5) for p in paths]
        print(f"{name:20s}" + "".join(f"{c:28.1%}" for c in cells), flush=True)

    size, ch = model_input(args.current)
    held = load_facelike(DATA / "wider-face-val-sample", share="test", size=size, channels=ch)
    pf, rf = predict(args.current, held["crops"])
    facelike = held["kinds"] != "ordinary"
    pn, rn = predict(args.current, load_nonfaces(DATA, share="test", size=size, channels=ch))
    print(f"\n{args.current}: readability's place in the confidence (AUC of the photo score; what it lets in)")
    print("confidence = det x W x top      FER+ test  RAF-DB val  ExpW test   face-like held out ranked as sad/angry"
          "   non-face crops >= floor")
    for wname, w in WEIGHTS.items():
        aucs = "  ".join(f"{roc_auc(one_face_photo_score(p, r, w), pos):9.4f}" for p, r, pos in last.values())
        ranked = confidence(pf, rf, held["det_score"], w) >= DEFAULT_MIN_CONFIDENCE
        bad = ranked & np.isin(pf.argmax(1), SAD_ANGRY)
        print(f"W = {wname:26s} {aucs}   {bad[facelike].sum():3d}/{facelike.sum()} ({bad[facelike].mean():5.1%})"
              f"{'':18s}{np.mean(confidence(pn, rn, 1.0, w) >= DEFAULT_MIN_CONFIDENCE):6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
