"""The one preprocessing shared by training and the album pipeline."""

import numpy as np
import pytest

import albumsort.preprocess as pp
from albumsort.detectors import Detections, Thresholds
from albumsort.faces import Face


def test_crop_is_48x48_uint8_and_centred():
    img = np.zeros((200, 300), np.uint8)
    img[50:150, 100:200] = 255  # a white 100x100 "face"
    crop = pp.crop_face(img, (100, 50, 100, 100))
    assert crop.shape == (pp.FACE_SIZE, pp.FACE_SIZE) and crop.dtype == np.uint8
    # CROP_SCALE is 1.0, so the white square fills the crop.
    assert crop[4:-4, 4:-4].min() > 200


def test_crop_levels_the_eyes():
    """A face rolled by 30 degrees comes out with its eyes level."""
    import cv2

    img = np.full((200, 200), 128, np.uint8)
    cv2.circle(img, (80, 90), 6, 0, -1)
    cv2.circle(img, (120, 90), 6, 0, -1)
    m = cv2.getRotationMatrix2D((100, 100), 30, 1.0)
    rolled = cv2.warpAffine(img, m, (200, 200), borderValue=128)
    eyes = cv2.transform(np.array([[[80, 90], [120, 90]]], np.float32), m)[0]
    lm = [eyes[0][0], eyes[0][1], eyes[1][0], eyes[1][1], 100, 110, 90, 125, 110, 125]
    crop = pp.crop_face(rolled, (50, 50, 100, 100), np.array(lm))
    dark = np.argwhere(crop < 60)
    left, right = dark[dark[:, 1] < 24], dark[dark[:, 1] >= 24]
    assert abs(left[:, 0].mean() - right[:, 0].mean()) < 1.5


def test_large_faces_are_smoothed_not_aliased():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (2000, 2000), dtype=np.uint8)
    crop = pp.crop_face(noise, (0, 0, 2000, 2000))
    assert crop.std() < 20  # area-averaged: noise cancels out; sampling would keep std ~74


def test_model_input_shape_and_range():
    x = pp.to_model_input(np.full((3, 48, 48), 255, np.uint8))
    assert x.shape == (3, 48, 48, 1) and x.dtype == np.float32 and x.max() == 1.0
    assert pp.to_model_input(np.zeros((48, 48), np.uint8)).shape == (1, 48, 48, 1)


def test_training_and_album_share_the_functions():
    """Training, evaluation and the album pipeline call the very same functions."""
    pytest.importorskip("tensorflow")
    import albumsort.emotions as emotions
    import training.evaluate as evaluate
    import training.train as train

    assert train.to_model_input is pp.to_model_input
    assert evaluate.to_model_input is pp.to_model_input
    assert emotions.to_model_input is pp.to_model_input


class Fixed:
    """A detector that always finds the same two faces."""

    thresholds = Thresholds(candidate=0.5, sure=0.5)

    def detect(self, rgb, photo_scale=1.0):
        return Detections([Face((10, 10, 40, 40), 0.9, None), Face((60, 20, 30, 30), 0.8, None)])


class FakeModel:
    """Records what it is given; reads crops of ``input_size`` px with ``channels`` channels."""

    def __init__(self, input_size=48, channels=1):
        self.input_size, self.channels, self.seen = input_size, channels, None

    def score_crops(self, crops):
        self.seen = crops
        x = pp.to_model_input(crops)
        assert x.shape[1:] == (self.input_size, self.input_size, self.channels)
        return np.full((len(x), 4), 0.25, np.float32), np.ones(len(x), np.float32)


def test_album_pipeline_crops_with_crop_face(monkeypatch):
    """pipeline.find_faces goes through preprocess.crop_face for every face."""
    from albumsort import pipeline

    calls = []
    real = pp.crop_face

    def spy(*a, **k):
        calls.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(pp, "crop_face", spy)
    rgb = np.random.default_rng(1).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    model = FakeModel()
    found = pipeline.find_faces(rgb, Fixed(), model)
    assert len(calls) == 2 and model.seen.shape == (2, 48, 48) and len(found.faces) == 2
    np.testing.assert_array_equal(model.seen[0], real(pp.to_gray(rgb), (10, 10, 40, 40), None))


def test_pipeline_crops_at_the_models_size_and_colour():
    """The crop side and channels come from the model (a 64 px colour model gets 64 px RGB crops)."""
    from albumsort import pipeline

    rgb = np.random.default_rng(2).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    model = FakeModel(64, 3)
    pipeline.find_faces(rgb, Fixed(), model)
    assert model.seen.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(model.seen[1], pp.crop_face(rgb, (60, 20, 30, 30), None, size=64))


def test_emotion_model_reads_its_input_from_the_onnx_file(tmp_path):
    """EmotionModel.input_size and .channels are the ONNX input's (N, S, S, C), not constants."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from albumsort.emotions import EmotionModel

    x = helper.make_tensor_value_info("face", TensorProto.FLOAT, ["n", 64, 64, 3])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 5])
    axes = helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])
    graph = helper.make_graph([helper.make_node("ReduceMean", ["face", "axes"], ["m"], keepdims=1),
                               helper.make_node("Reshape", ["m", "shape"], ["r"]),
                               helper.make_node("Tile", ["r", "reps"], ["probabilities"])],
                              "fake", [x], [y], [axes, helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
                                                 helper.make_tensor("reps", TensorProto.INT64, [2], [1, 5])])
    path = tmp_path / "colour64.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    m = EmotionModel(path, threads=1)
    assert (m.input_size, m.channels) == (64, 3)
    probs, read = m.score_crops(np.full((2, 64, 64, 3), 255, np.uint8))
    assert probs.shape == (2, 7) and np.allclose(read, 1.0)  # seven columns; the file reads four
    assert not probs[:, 4:].any()
    with pytest.raises(ValueError, match="do not fit"):
        m.score_crops(np.zeros((1, 48, 48), np.uint8))


def test_colour_crops_and_inputs():
    """A colour model gets RGB crops: crop_face keeps three channels and to_model_input keeps them."""
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[..., 0] = 200
    crop = pp.crop_face(pp.for_model(rgb, 3), (100, 50, 100, 100), size=64)
    assert crop.shape == (64, 64, 3) and crop[..., 0].min() == 200 and crop[..., 1].max() == 0
    assert pp.for_model(rgb, 1).shape == (200, 300)
    assert pp.to_model_input(crop).shape == (1, 64, 64, 3)
    assert pp.to_model_input(np.stack([crop, crop])).shape == (2, 64, 64, 3)
    assert pp.to_model_input(np.zeros((5, 64, 64), np.uint8)).shape == (5, 64, 64, 1)
