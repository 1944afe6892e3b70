"""Make ``models/mobilefacenet_int8.onnx``: the face-recognition network quantised to int8, static, calibrated
on aligned faces of training-half WIDER crowd photos.

    python benchmarks/quantize_mobilefacenet.py [--faces 400] [--method minmax] [--out models/mobilefacenet_int8.onnx]

Why: issue 20 asks for at most 5 ms per face on one core, and issue 22 for the
index inside a plain decode's time; the float network costs about 3.4 ms per
aligned face idle and twice that with two workers sharing the cores.  ONNX
Runtime's static quantisation (QDQ format, int8 weights per channel, uint8
activations) is calibrated on ``--faces`` faces found and aligned exactly as
``albumsort index`` finds and aligns them (``pipeline.find_faces`` on the photo
decoded at ``faces.DETECT_SIDE``, ``embeddings.align``), from WIDER events of
the training half only (``training.data.is_training_share``); the identity
sets the grouping is measured on (deepface's photos, CK+) and WIDER's held-out
half are never seen.  Measure the result beside the float file with::

    python benchmarks/people.py --model models/mobilefacenet_int8.onnx
    python benchmarks/people.py

Int8 speed depends on the CPU (VNNI); keep the float file's figures beside it.  The calibration faces are
found with the shipped emotion model's confirmation, so the same bytes come back (sha256 in models/README.md)
while that model is the one they were made with; with another, re-measure before replacing the file.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from albumsort import embeddings as E  # noqa: E402
from training.data import is_training_share  # noqa: E402


def calibration_crops(n: int) -> np.ndarray:
    """Up to ``n`` aligned 112 px faces (eyes at least ``E.MIN_EYES`` apart) from training-half WIDER photos."""
    from albumsort.emotions import EmotionModel
    from albumsort.faces import DETECT_SIDE, make_detector
    from albumsort.images import load_rgb
    from albumsort.pipeline import find_faces

    d = DATA / "wider-face-val-sample"
    with open(d / "boxes.csv", newline="") as f:
        paths = sorted({r["path"] for r in csv.DictReader(f) if is_training_share(r["path"].split("/")[0])})
    detector, model = make_detector(threads=1), EmotionModel(threads=1)
    crops: list[np.ndarray] = []
    for rel in paths:
        rgb, _ = load_rgb(d / "images" / rel, max_side=DETECT_SIDE)
        for face in find_faces(rgb, detector, model).faces:
            if face.landmarks is not None and E.eye_distance(face.landmarks) >= E.MIN_EYES:
                crops.append(E.align(rgb, face.landmarks))
        if len(crops) >= n:
            break
    return np.stack(crops[:n])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=400)
    ap.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"])
    ap.add_argument("--src", default=str(ROOT / "models" / "mobilefacenet.onnx"))
    ap.add_argument("--out", default=str(ROOT / "models" / "mobilefacenet_int8.onnx"))
    args = ap.parse_args()

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    crops = calibration_crops(args.faces)
    blobs = [((c.astype(np.float32) - E.MEAN) / E.STD).transpose(2, 0, 1)[None].copy() for c in crops]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(blobs)

        def get_next(self):
            b = next(self.it, None)
            return None if b is None else {"input0": b}

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[args.method]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(args.src, str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), args.out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, calibrate_method=method)
    print(f"wrote {args.out} from {len(blobs)} training-half WIDER faces ({args.method})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
