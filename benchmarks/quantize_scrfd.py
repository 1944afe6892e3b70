"""Make ``models/scrfd_2.5g_int8.onnx``: SCRFD-2.5g quantised to int8, static, calibrated on training-half photos.

    python benchmarks/quantize_scrfd.py [--photos 40] [--method minmax] [--out models/scrfd_2.5g_int8.onnx]

The float file is converted from opset 11 to 13 (per-channel quantisation
needs it), then ONNX Runtime's static quantisation (QDQ format, int8
weights per channel, uint8 activations), calibrated on ``--photos`` WIDER photos from the training
half (``training.data.is_training_share``), each fed exactly as the detector
feeds it (``SCRFD._input``: long side 640, padded to a multiple of 32).  The
held-out half is never seen.  Measure the result with::

    python benchmarks/detection.py --detectors scrfd,scrfd@scrfd_2.5g_int8.onnx

Int8 speed depends on the CPU (VNNI); keep the float file's figures beside it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

OPSET = 13
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from albumsort.detectors.scrfd import SCRFD  # noqa: E402
from training.data import is_training_share  # noqa: E402


def calibration_photos(n: int) -> list[Path]:
    """The first ``n`` training-half WIDER photos, spread over the events (round robin)."""
    root = DATA / "wider-face-val-sample" / "images"
    events = [sorted(e.glob("*.jpg")) for e in sorted(root.iterdir()) if is_training_share(e.name)]
    out: list[Path] = []
    while len(out) < n and any(events):
        for e in events:
            if e and len(out) < n:
                out.append(e.pop(0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"])
    ap.add_argument("--src", default=str(ROOT / "models" / "scrfd_2.5g.onnx"))
    ap.add_argument("--out", default=str(ROOT / "models" / "scrfd_2.5g_int8.onnx"))
    args = ap.parse_args()

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from PIL import Image

    det = SCRFD(threads=1)
    blobs = []
    for p in calibration_photos(args.photos):
        with Image.open(p) as im:
            blobs.append(det._input(np.asarray(im.convert("RGB")))[0])

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(blobs)

        def get_next(self):
            b = next(self.it, None)
            return None if b is None else {"input.1": b}

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[args.method]
    import onnx
    from onnx import version_converter

    with tempfile.TemporaryDirectory() as tmp:
        # Opset 11 has no per-channel DequantizeLinear (its ``axis`` came in opset 13).
        up = Path(tmp) / "opset13.onnx"
        onnx.save(version_converter.convert_version(onnx.load(args.src), OPSET), str(up))
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(up), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), args.out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, calibrate_method=method)
    print(f"wrote {args.out} from {len(blobs)} training-half photos ({args.method})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
