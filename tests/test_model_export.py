"""The shipped ONNX file is the trained Keras model with its calibrated heads: to within 1e-4 in float, and the
int8 copy albumsort runs reads the same expressions as that float file."""

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
FER_TEST = ROOT.parent / "shared" / "data" / "fer2013" / "test"


def faces(n: int, size: int, channels: int) -> np.ndarray:
    """n real FER2013 test faces when the shared data is there (random images otherwise), as model input."""
    from albumsort.preprocess import to_model_input

    files = sorted(FER_TEST.glob("*/*.png"))[::3][:n] if FER_TEST.is_dir() else []
    if len(files) < n:
        return np.random.default_rng(0).random((n, size, size, channels), dtype=np.float32)
    from PIL import Image

    crops = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB" if channels == 3 else "L").resize((size, size), Image.Resampling.BILINEAR)
            crops.append(np.asarray(im))
    return to_model_input(np.stack(crops))


def test_onnx_matches_keras_on_1000_faces():
    pytest.importorskip("tensorflow")
    pytest.importorskip("onnxruntime")
    import keras

    import training.model  # noqa: F401  (registers the custom layer)
    from training.export import calibrated, max_difference

    meta = json.loads((MODELS / "emotion.json").read_text())
    model = keras.models.load_model(MODELS / "emotion.keras")
    wrapped = calibrated(model, meta["emotion_temperature"], meta["readability_temperature"], meta["flip_tta"],
                         meta.get("zoom_tta", 0.0))
    size, channels = meta["input_size"], meta["channels"]
    assert tuple(wrapped.input_shape[1:]) == (size, size, channels)
    float_file = MODELS / ("emotion_float.onnx" if meta.get("int8") else "emotion.onnx")
    assert max_difference(wrapped, float_file, faces(1000, size, channels)) < 1e-4


def test_the_int8_file_reads_what_its_float_file_reads():
    """``training.export.quantize_int8`` made the shipped file from ``emotion_float.onnx``: on 1,000 faces the
    top expression is the same for at least 97% and no probability moves by more than 0.3 (measured on
    RAF-DB's validation share: 2.3% of faces change their top expression, the seven-class accuracy does not
    fall)."""
    meta = json.loads((MODELS / "emotion.json").read_text())
    if not meta.get("int8"):
        pytest.skip("the shipped emotion model is float")
    import onnx

    from albumsort.emotions import EmotionModel

    ops = {n.op_type for n in onnx.load(MODELS / "emotion.onnx").graph.node}
    assert "QuantizeLinear" in ops and ops >= {"Softmax"}
    x = faces(1000, meta["input_size"], meta["channels"])
    p8, r8 = EmotionModel(MODELS / "emotion.onnx").score(x)
    p32, r32 = EmotionModel(MODELS / "emotion_float.onnx").score(x)
    assert np.mean(p8.argmax(1) == p32.argmax(1)) >= 0.97
    assert np.abs(p8 - p32).max() < 0.3 and np.abs(r8 - r32).max() < 0.3
    assert np.allclose(p8.sum(1), 1, atol=1e-4)  # the heads stay float: full-resolution probabilities


def test_onnx_declares_its_input():
    """The album pipeline reads the face size and channels from the file: they must match the model card."""
    ort = pytest.importorskip("onnxruntime")
    meta = json.loads((MODELS / "emotion.json").read_text())
    session = ort.InferenceSession(str(MODELS / "emotion.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("face", "probabilities")
    assert inp.shape[1:] == [meta["input_size"], meta["input_size"], meta["channels"]]
    assert out.shape[1] == len(meta["labels"]) + 1  # the expressions the card names, then readability
    assert meta["labels"] == ["angry", "happy", "sad", "neutral", "surprise", "fear", "disgust"]
