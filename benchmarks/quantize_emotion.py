"""An int8 copy of the emotion model, measured beside the float file: is it as right, and how much faster?

    python benchmarks/quantize_emotion.py [--faces 512] [--out /tmp/emotion_int8.onnx]

Why: the emotion model costs about 3 ms per candidate face in ``albumsort
index`` (issue 22's profile: 42 ms per photo of 14.7 candidates), and the
speed floor (500 faces/s on 2 cores, issue 24) is what rules out an ensemble
of two float models (632 faces/s alone).  The quantisation is the export's own
(``training.export.quantize_int8``: the convolutions and dense layer in int8,
the calibrated heads float), calibrated on
``--faces`` training-share crops (RAF-DB training split and FER2013 training
faces, cut as the album cuts them); the measure is on faces never trained on:
RAF-DB's validation share seven-wise (the four lists' precision and recall,
seven-class accuracy), FER+ PublicTest four-way, and readability on both.
Speed: faces/s in batches of 256 on 2 threads, float and int8 interleaved,
medians of 5; only the ratio is worth quoting on a loaded machine.
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


def calibration_inputs(n: int, size: int, channels: int) -> np.ndarray:
    from albumsort.preprocess import to_model_input
    from training.data import load_ferplus, load_rafdb

    x_raf, _, _ = load_rafdb(DATA / "rafdb", "train", size=size, channels=channels)
    x_fer, _ = load_ferplus(DATA / "fer2013", "train", labels="majority", size=size, channels=channels)
    rng = np.random.default_rng(0)
    pick = np.concatenate([x_raf[rng.choice(len(x_raf), n // 2, replace=False)],
                           x_fer[rng.choice(len(x_fer), n - n // 2, replace=False)]])
    return to_model_input(pick)


def faces_per_second(model, x: np.ndarray) -> float:
    t = time.perf_counter()
    model.score(x, batch_size=256)
    return len(x) / (time.perf_counter() - t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=512)
    float_file = ROOT / "models" / "emotion_float.onnx"  # the source of a shipped int8 file
    ap.add_argument("--src", type=Path,
                    default=float_file if float_file.is_file() else ROOT / "models" / "emotion.onnx")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "emotion_int8.onnx")
    args = ap.parse_args(argv)
    from albumsort.emotions import EmotionModel
    from albumsort.labels import EXPRESSIONS
    from albumsort.preprocess import to_model_input
    from training.data import load_ferplus, load_rafdb
    from training.evaluate import four_way, list_view
    from training.export import quantize_int8

    float_model = EmotionModel(args.src, threads=2)
    size, ch = float_model.input_size, float_model.channels
    cal = calibration_inputs(args.faces, size, ch)
    quantize_int8(args.src, args.out, cal)
    shutil.copy(args.src.with_suffix(".json"), args.out.with_suffix(".json"))  # labels and input, as the float file's
    int8_model = EmotionModel(args.out, threads=2)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB; float {args.src.stat().st_size / 1e6:.2f} MB) "
          f"from {len(cal)} training-share faces")

    x_raf, t_raf, _ = load_rafdb(DATA / "rafdb", "val", size=size, channels=ch)
    x_fer, t_fer = load_ferplus(DATA / "fer2013", "test", labels="majority", size=size, channels=ch)
    print("file    RAF-DB val: seven-class  angry P/R   happy P/R   sad P/R   neutral P/R | FER+ four-way | "
          "readability < 0.5 (RAF / FER+)")
    for label, m in (("float", float_model), ("int8", int8_model)):
        pr, rr = m.score_crops(x_raf)
        pf, rf = m.score_crops(x_fer)
        lv = list_view(pr, t_raf.argmax(1))
        lists = "  ".join(f"{100 * lv['lists'][e]['precision']:.1f}/{100 * lv['lists'][e]['recall']:.1f}"
                          for e in EXPRESSIONS[:4])
        fw = four_way(pf, t_fer.argmax(1))
        print(f"{label:6s}  {100 * lv['seven_class_accuracy']:6.1f}%  {lists} | {100 * fw['accuracy']:.1f}% | "
              f"{np.mean(rr < 0.5):.2%} / {np.mean(rf < 0.5):.2%}")
    pr32, _ = float_model.score_crops(x_raf)
    pr8, _ = int8_model.score_crops(x_raf)
    print(f"faces whose top expression differs: {np.mean(pr32.argmax(1) != pr8.argmax(1)):.2%}; largest probability "
          f"difference {np.abs(pr32 - pr8).max():.3f}")

    x = to_model_input(np.concatenate([x_raf, x_fer])[:2048])
    speeds: dict[str, list[float]] = {"float": [], "int8": []}
    for _ in range(5):
        speeds["float"].append(faces_per_second(float_model, x))
        speeds["int8"].append(faces_per_second(int8_model, x))
    f32, i8 = (statistics.median(speeds[k]) for k in ("float", "int8"))
    print(f"faces/s, batches of 256, 2 threads, medians of 5 interleaved: float {f32:.0f}, int8 {i8:.0f} "
          f"({i8 / f32:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
