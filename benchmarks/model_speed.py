"""Emotion-model speed: cold load time and faces/s in batches, per runtime, and output agreement.

    python benchmarks/model_speed.py [--repeats 5] [--threads 1] [--also OTHER.onnx ...]

Measured side by side in one run on the same random crops: ONNX Runtime on
``models/emotion.onnx`` (what albumsort runs, on every OS), OpenCV DNN on
the same file, Keras (the training form), the float file an int8 one was
made from (``emotion_float.onnx``) and any ``--also`` file (an earlier model,
read as ``git show``'s copy), all on the same crops.  LiteRT, the runtime ONNX
Runtime replaced, was measured here until the seven-expression model
(benchmarks/README.md keeps its figures).  ``--threads 1`` is what
an index worker uses.  Load time is measured in a fresh interpreter, imports
included, because that is what a user waits for.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOAD = ("import time; t = time.perf_counter(); import sys; sys.path.insert(0, {root!r}); "
        "from albumsort.emotions import EmotionModel; m = EmotionModel({model!r}); "
        "m.score_crops(__import__('numpy').zeros((1, m.input_size, m.input_size, m.channels), 'uint8')); "
        "print(time.perf_counter() - t)")


def faces_per_second(fn, x, repeats):
    fn(x[:256])  # warm-up
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        rates.append(len(x) / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "emotion.onnx"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=None, help="threads per runtime (default: albumsort's, 2)")
    ap.add_argument("--also", nargs="*", default=[], help="other .onnx emotion files to time side by side")
    args = ap.parse_args()

    from albumsort.emotions import EmotionModel
    from albumsort.preprocess import to_model_input

    onnx = EmotionModel(args.model, threads=args.threads)
    size, channels = onnx.input_size, onnx.channels
    shape = (args.n, size, size) + ((channels,) if channels > 1 else ())
    crops = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    x = to_model_input(crops)
    loads = [float(subprocess.run([sys.executable, "-c", LOAD.format(root=str(ROOT), model=args.model)],
                                  capture_output=True, text=True, check=True).stdout) for _ in range(3)]
    print("ONNX Runtime: cold load + first prediction (fresh process, imports included): "
          f"median {statistics.median(loads):.2f} s")

    both = lambda m, b: np.concatenate([m.score(b)[0], m.score(b)[1][:, None]], axis=1)  # noqa: E731
    ref = both(onnx, x)  # four probabilities and readability
    print(f"{'runtime':28}{'faces/s (median)':>18}{'max |diff| vs ONNX':>24}")
    print(f"{'ONNX Runtime (albumsort)':28}{faces_per_second(onnx.score, x, args.repeats):>18,.0f}{0:>24.1e}")
    float_file = Path(args.model).with_name(Path(args.model).stem + "_float.onnx")
    others = ([("ONNX Runtime, float source", float_file)] if float_file.is_file() else []) + [
        (f"ONNX Runtime, {Path(p).parent.name}/{Path(p).name}", Path(p)) for p in args.also]
    for label, path in others:
        other = EmotionModel(path, threads=args.threads)
        # a file whose labels differ (another class set, or no labels in its metadata) is not comparable
        diff = f"{np.abs(both(other, x) - ref).max():.1e}" if other.labels == onnx.labels else "labels differ"
        print(f"{label[:28]:28}{faces_per_second(other.score, x, args.repeats):>18,.0f}{diff:>24}")
    import cv2

    try:
        net = cv2.dnn.readNetFromONNX(args.model)
    except cv2.error as e:
        net = None
        reason = [ln for ln in str(e).splitlines() if "Unsupported" in ln or "error" in ln][-1].strip()[-70:]

    def opencv(batch):
        out = []
        for i in range(0, len(batch), 256):
            net.setInput(np.ascontiguousarray(batch[i:i + 256]))  # NHWC, as the ONNX file reads it
            out.append(np.asarray(net.forward()).reshape(len(batch[i:i + 256]), -1))
        return np.concatenate(out)

    try:
        if net is None:
            raise RuntimeError(reason)
        diff = np.abs(opencv(x) - ref).max()
        print(f"{'OpenCV DNN (not used)':28}{faces_per_second(opencv, x, args.repeats):>18,.0f}{diff:>24.1e}")
    except Exception as e:  # cv2.error: an op the DNN module does not implement
        print(f"{'OpenCV DNN (not used)':28}{'cannot run: ' + str(e).splitlines()[0][:60]:>42}")

    keras_path = Path(args.model).with_suffix(".keras")
    if keras_path.is_file():
        try:
            import json

            import keras

            from training.model import with_heads

            meta = json.loads(Path(args.model).with_suffix(".json").read_text())
            km = with_heads(keras.models.load_model(keras_path, compile=False), meta["emotion_temperature"],
                            meta["readability_temperature"], meta.get("flip_tta", False),
                            meta.get("zoom_tta", 0.0))
            kfn = lambda b: km.predict(b, batch_size=256, verbose=0)  # noqa: E731
            print(f"{'Keras (training form)':28}{faces_per_second(kfn, x, args.repeats):>18,.0f}"
                  f"{np.abs(kfn(x) - ref).max():>24.1e}")
        except ImportError:
            print("Keras not installed: pip install -e '.[train]' to compare the training form")
    return 0


if __name__ == "__main__":
    sys.exit(main())
