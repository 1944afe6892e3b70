"""The one export of a trained model into what albumsort runs: an ONNX file.

The file holds the calibrated heads (``training.model.with_heads``): input
``face`` (N, S, S, C) float32 in [0, 1], output ``probabilities`` (N, 8) =
the seven expression probabilities, then readability.  ONNX Runtime runs the ONNX
file on every OS; the input side and channel count are read from the file by
the album pipeline, never assumed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ONNX_OPSET = 17
INPUT_NAME = "face"
OUTPUT_NAME = "probabilities"


def calibrated(model, emotion_temperature: float, readability_temperature: float, flip: bool, zoom: float = 0.0):
    """The logits model wrapped into its calibrated heads and test-time views, built (called once) so it can be
    exported."""
    from training.model import with_heads

    wrapped = with_heads(model, emotion_temperature, readability_temperature, flip, zoom)
    wrapped(np.zeros((1,) + tuple(wrapped.input_shape[1:]), np.float32))
    return wrapped


def export_onnx(wrapped, path: Path) -> None:
    """Write ``wrapped`` (from ``calibrated``) as ONNX with a dynamic batch and named input/output."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None,) + tuple(wrapped.input_shape[1:]), tf.float32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(wrapped, input_signature=spec, opset=ONNX_OPSET,
                                          output_path=None)
    # Name the output after what it holds; consumers look tensors up by name.
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
    proto.graph.output[0].name = OUTPUT_NAME
    onnx.checker.check_model(proto)
    Path(path).write_bytes(proto.SerializeToString())


QUANTIZED_OPS = ["Conv", "MatMul", "Gemm", "Relu", "MaxPool", "GlobalAveragePool", "Clip", "Pad"]
"""What ``quantize_int8`` quantises: the convolutions, their activations and pooling, and the dense layer,
nearly all of the arithmetic; the logits it outputs stay float (``FLOAT_OUTPUTS``), and so do the calibrated
heads, so the probabilities keep their full resolution and sum to 1.  Quantising everything instead leaves
138 distinct P(happy) values among 1,231 RAF-DB validation faces, ties in every ranking; this choice keeps
1,230 of 1,231, changes the top expression of 1.1% of them (everything quantised: 2.1%) and was the fastest of
the four variants timed side by side (``benchmarks/quantize_variants.py``, 2026-12-06, under load: 3.05x the float
file; convolutions and dense layer alone 2.67x; everything 2.96x)."""

"""``Clip`` and ``Pad``: the pretrained member (``--arch mobilefacenet``) has a ReLU6 (``Clip``) after most
convolutions; quantised, each becomes its convolution's output range and the op goes, where an unquantised one costs
a dequantise and a requantise.  The small CNNs have neither, so their files are as before (the shipped file,
re-quantised from its float source, is the same bytes).  Measured: the three-member file with run 13's member
(models/README.md, "A pretrained member") read 311 faces/s quantised so, against 206 without (one
``benchmarks/model_speed.py`` run, 2026-12-07)."""

FLOAT_OUTPUTS = ["MatMul", "Gemm"]
"""Op types whose outputs ``quantize_int8`` keeps float: the dense layer's logits feed the heads unrounded."""


def quantize_int8(src: Path, dst: Path, inputs: np.ndarray, batch: int = 32) -> None:
    """Write an int8 copy of the ONNX file ``src`` to ``dst``, its activation ranges taken from ``inputs``.

    ONNX Runtime's static quantisation of ``QUANTIZED_OPS``: QDQ format,
    per-channel int8 weights, uint8 activations, MinMax ranges over ``inputs`` (model inputs of training
    faces, never the faces it is measured on).  Why: on 2 cores it reads 2.6x
    the faces per second of the float file at the same accuracy
    (``benchmarks/quantize_emotion.py``), which is what leaves room under the
    500 faces/s floor for an ensemble.  Deterministic: the same inputs give
    the same bytes.
    """
    import shutil
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = np.ascontiguousarray(inputs, dtype=np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.starts = iter(range(0, len(x), batch))

        def get_next(self):
            i = next(self.starts, None)
            return None if i is None else {INPUT_NAME: x[i:i + batch]}

    with tempfile.TemporaryDirectory() as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=QUANTIZED_OPS,
                        extra_options={"OpTypesToExcludeOutputQuantization": FLOAT_OUTPUTS})
        shutil.copyfile(out, dst)


def max_difference(wrapped, onnx_path: Path, inputs: np.ndarray) -> float:
    """Largest absolute difference between Keras and ONNX Runtime outputs on ``inputs``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ours = session.run([OUTPUT_NAME], {INPUT_NAME: inputs.astype(np.float32)})[0]
    theirs = wrapped.predict(inputs, batch_size=256, verbose=0)
    return float(np.abs(ours - theirs).max())
