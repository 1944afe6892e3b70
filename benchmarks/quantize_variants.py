"""Which ops of the emotion model to quantise: four int8 variants beside the float file, on the same faces.

    python benchmarks/quantize_variants.py [--src FLOAT.onnx]   # default: models/emotion_float.onnx if there

Each variant is ONNX Runtime's static QDQ quantisation (per-channel int8 weights, uint8 activations, MinMax
ranges over 512 RAF-DB training faces) of a different set of ops; each is measured on RAF-DB's validation share:
seven-class accuracy, the share of faces whose top expression differs from the float file's, the largest
probability difference, how many distinct P(happy) values remain (fewer means ties in a ranking) and how far
the probabilities are from summing to 1; then faces/s in batches of 1,024 on 2 threads, medians of 5
interleaved.  The chosen variant is ``training.export.QUANTIZED_OPS`` with ``FLOAT_OUTPUTS``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

CONVS = ["Conv", "MatMul", "Gemm"]
VARIANTS = {
    "convolutions, dense": {"op_types_to_quantize": CONVS},
    "+ activations, pooling": {"op_types_to_quantize": CONVS + ["Relu", "MaxPool", "GlobalAveragePool"]},
    "+ float logits (shipped)": {"op_types_to_quantize": CONVS + ["Relu", "MaxPool", "GlobalAveragePool"],
                                 "extra_options": {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}},
    "everything": {},
}


def main(argv=None) -> int:
    default = ROOT / "models" / "emotion_float.onnx"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=default if default.is_file() else ROOT / "models" / "emotion.onnx")
    args = ap.parse_args(argv)
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from albumsort.emotions import EmotionModel
    from albumsort.preprocess import to_model_input
    from training.data import load_rafdb
    from training.evaluate import list_view

    x_val, t_val, _ = load_rafdb(DATA / "rafdb", "val", size=96, channels=1)
    x_train, _, _ = load_rafdb(DATA / "rafdb", "train", size=96, channels=1)
    cal = to_model_input(x_train[np.random.default_rng(0).choice(len(x_train), 512, replace=False)])

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.starts = iter(range(0, len(cal), 32))

        def get_next(self):
            i = next(self.starts, None)
            return None if i is None else {"face": cal[i:i + 32]}

    tmp = Path(tempfile.mkdtemp())
    pre = tmp / "pre.onnx"
    quant_pre_process(str(args.src), str(pre), skip_symbolic_shape=True)
    models = {"float": EmotionModel(args.src, threads=2)}
    for i, (name, kw) in enumerate(VARIANTS.items()):
        out = tmp / f"v{i}.onnx"
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax, **kw)
        shutil.copy(args.src.with_suffix(".json"), out.with_suffix(".json"))
        models[name] = EmotionModel(out, threads=2)
    labels = t_val.argmax(1)
    p32, _ = models["float"].score_crops(x_val)
    print(f"{'variant':26} seven-class  top differs  max |dp|  distinct P(happy)  max |sum - 1|  ({len(labels)} faces)")
    for name, m in models.items():
        p, _ = m.score_crops(x_val)
        lv = list_view(p, labels)
        print(f"{name:26} {lv['seven_class_accuracy']:10.1%}  {np.mean(p.argmax(1) != p32.argmax(1)):11.1%}  "
              f"{np.abs(p - p32).max():8.3f}  {len(np.unique(p[:, 1])):17d}  {np.abs(p.sum(1) - 1).max():13.1e}")
    x = to_model_input(x_val[:1024])
    rates: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(5):
        for name, m in models.items():
            t = time.perf_counter()
            m.score(x)
            rates[name].append(len(x) / (time.perf_counter() - t))
    base = statistics.median(rates["float"])
    for name in models:
        r = statistics.median(rates[name])
        print(f"{name:26} {r:8.0f} faces/s  {r / base:5.2f}x")
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
