"""Training pipeline: both FER2013 forms, seven expressions, a smoke training that resumes, evaluation, calibration."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from albumsort.labels import EMOTIONS, EXPRESSIONS
from tests.conftest import ROOT, shared
from training.calibration import expected_calibration_error, fit_temperature, softmax
from training.data import (
    FER_CLASSES,
    TARGETS,
    UNREADABLE,
    ferplus_majority,
    ferplus_targets,
    load,
    load_csv,
    load_fer,
    load_folder,
    stratified_split,
)


def fake_faces(n, label, seed):
    """Grayscale 48x48 images whose brightness pattern depends on the class, so a model can learn them."""
    rng = np.random.default_rng(seed)
    base = np.zeros((48, 48), np.float32)
    base[:, label * 12:(label + 1) * 12] = 200
    return [np.clip(base + rng.normal(0, 30, (48, 48)), 0, 255).astype(np.uint8) for _ in range(n)]


@pytest.fixture
def fer_folder(tmp_path):
    root = tmp_path / "fer"
    for split, n in (("train", 60), ("test", 15)):
        for label, e in enumerate(EMOTIONS + ("disgust", "contempt")):
            d = root / split / e
            d.mkdir(parents=True)
            for i, a in enumerate(fake_faces(n, label % 4, label * 100 + (split == "test"))):
                Image.fromarray(a).save(d / f"{split}_{i}.jpg", quality=95)
    return root


@pytest.fixture
def fer_csv(tmp_path):
    path = tmp_path / "fer2013.csv"
    rows = ["emotion,pixels,Usage"]
    for fer_label, _name in enumerate(FER_CLASSES):
        for usage in ("Training", "PublicTest", "PrivateTest"):
            for a in fake_faces(3, fer_label % 4, fer_label):
                rows.append(f"{fer_label},{' '.join(map(str, a.ravel()))},{usage}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_folder_loader_keeps_the_seven_expressions(fer_folder):
    x, y = load_folder(fer_folder / "train")
    assert x.shape == (300, 48, 48) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [60, 60, 60, 60, 0, 0, 60]  # disgust is expression 6; contempt ignored
    xt, _ = load(fer_folder, "test")
    assert len(xt) == 75


def test_csv_loader_maps_labels_and_splits(fer_csv):
    x, y = load_csv(fer_csv, "train")
    assert len(x) == 21 and sorted(set(y.tolist())) == list(range(7))
    # FER order: angry 0, disgust 1, fear 2, happy 3, sad 4, surprise 5, neutral 6
    # -> ours: angry 0, happy 1, sad 2, neutral 3, surprise 4, fear 5, disgust 6
    assert [EXPRESSIONS[int(v)] for v in y[::3]] == [FER_CLASSES[i] for i in range(7)]
    assert len(load(fer_csv, "test")[0]) == 21 and len(load(fer_csv, "private")[0]) == 21


def votes(**kw):
    return {v: kw.get(v, 0) for v in ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                                       "contempt", "unknown", "NF")}


def test_ferplus_votes_map_to_the_seven_expressions():
    assert TARGETS == ("angry", "happy", "sad", "neutral", "surprise", "fear", "disgust", "unreadable")
    t = ferplus_targets(votes(anger=6, sadness=2, neutral=1, surprise=1))
    assert np.allclose(t, [0.6, 0, 0.2, 0.1, 0.1, 0, 0, 0])  # surprise is a target of its own now
    assert np.allclose(ferplus_targets(votes(fear=5, disgust=3, happiness=2)), [0, 0.2, 0, 0, 0, 0.5, 0.3, 0])
    # Contempt's votes are dropped and the rest renormalised; a face that is mostly contempt is left out.
    assert np.allclose(ferplus_targets(votes(contempt=2, neutral=8)), [0, 0, 0, 1, 0, 0, 0, 0])
    assert ferplus_targets(votes(contempt=6, neutral=4)) is None
    assert np.allclose(ferplus_targets(votes(contempt=6, neutral=4), contempt="disgust"), [0, 0, 0, .4, 0, 0, .6, 0])
    assert np.allclose(ferplus_targets(votes(unknown=4, NF=2, neutral=4)), [0, 0, 0, 0.4, 0, 0, 0, 0.6])
    assert ferplus_majority(votes(sadness=5, neutral=4, anger=1)) == 2
    assert ferplus_majority(votes(sadness=4, neutral=4, anger=2)) == -1  # a tie at the top
    assert ferplus_majority(votes(surprise=7, happiness=3)) == EXPRESSIONS.index("surprise")
    assert ferplus_majority(votes(disgust=5, anger=3)) == EXPRESSIONS.index("disgust")
    assert ferplus_majority(votes(contempt=6, happiness=4)) == -1
    assert ferplus_majority(votes(unknown=6, happiness=4)) == -1


@pytest.fixture
def ferplus_folder(fer_folder):
    """The fake FER folder with FER+ votes that disagree with some folder labels."""
    rows = ["file,pixels," + ",".join(votes())]
    for split in ("train", "test"):
        for e in EMOTIONS + ("disgust", "contempt"):
            for p in sorted((fer_folder / split / e).iterdir()):
                if e == "disgust":
                    v = votes(disgust=8, anger=2)
                elif e == "contempt":
                    v = votes(contempt=8, neutral=2)  # left out
                elif p.stem.endswith("_0"):
                    v = votes(NF=7, neutral=3)  # not a face
                else:
                    name = {"angry": "anger", "happy": "happiness", "sad": "sadness", "neutral": "neutral"}[e]
                    v = votes(**{name: 8, "neutral": 2} if name != "neutral" else {"neutral": 10})
                rows.append(f"{split}/{e}/{p.name},original," + ",".join(str(x) for x in v.values()))
    rows.append("train/angry/missing.png,reconstructed" + ",0" * 10)
    (fer_folder / "ferplus.csv").write_text("\n".join(rows) + "\n")
    return fer_folder


def test_ferplus_loading(ferplus_folder):
    x, t = load_fer(ferplus_folder, "train")
    assert x.shape[1:] == (48, 48) and t.shape == (len(x), 8) and np.allclose(t.sum(1), 1)
    assert len(x) == 300  # 4 emotions + disgust, 60 each; contempt and the reconstructed row left out
    assert int((t.argmax(1) == UNREADABLE).sum()) == 4  # the _0 face of each emotion folder
    assert int((t.argmax(1) == EXPRESSIONS.index("disgust")).sum()) == 60
    xm, tm = load_fer(ferplus_folder, "test", labels="majority")
    assert len(xm) == 90 - 4 - 15 and set(tm.argmax(1).tolist()) == {0, 1, 2, 3, 6}  # six folders of 15
    xf, tf_ = load_fer(ferplus_folder, "test", labels="folder")  # FER2013's own labels, for comparison
    assert len(xf) == 75 and tf_.shape == (75, 8)


def test_expw_faces_are_cut_by_the_album_pipeline(tmp_path):
    from albumsort.faces import make_detector
    from albumsort.preprocess import crop_face, to_gray
    from tests.conftest import astronaut
    from training.data import expw_rows, load_expw

    root = tmp_path / "expw"
    (root / "faces").mkdir(parents=True)
    rgb = np.asarray(astronaut())
    det = make_detector()
    (f,) = det.detect(rgb)
    rows = ["file,emotion,x,y,w,h"]
    for i in range(20):
        e = EMOTIONS[i % 4]
        Image.fromarray(rgb).save(root / "faces" / f"{e}_{i}.png")
        rows.append(f"faces/{e}_{i}.png,{e},{f.box[0] + 3},{f.box[1] - 2},{f.box[2]},{f.box[3]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    splits = {s: {r["file"] for r in expw_rows(root, s)} for s in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == 20 and not splits["train"] & splits["test"]
    x, t, found = load_expw(root, "test", det)
    assert found == 1.0 and x.shape == (len(splits["test"]), 48, 48) and t.shape[1] == 8
    expected = crop_face(to_gray(rgb), f.box, f.landmarks)
    assert np.array_equal(x[0], expected)  # the detector's box and landmarks, not the label's box


def test_stratified_split():
    y = np.repeat(np.arange(4), 50)
    keep, held = stratified_split(y, 0.1, seed=0)
    assert len(held) == 20 and np.bincount(y[held]).tolist() == [5, 5, 5, 5]
    assert not set(keep) & set(held)


def test_temperature_recovers_known_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (4000, 4))
    labels = np.array([rng.choice(4, p=softmax(lg[None])[0]) for lg in true_logits])
    overconfident = true_logits * 3.0
    t = fit_temperature(overconfident, labels)
    assert 2.6 < t < 3.4
    before = expected_calibration_error(softmax(overconfident), labels)
    after = expected_calibration_error(softmax(overconfident, t), labels)
    assert after < before / 2


@pytest.mark.slow
def test_smoke_training_resumes_to_the_same_model_and_evaluates(fer_folder, tmp_path):
    """A short run end to end: stopped after its first epoch and resumed, it ends bit-equal to a run that went
    straight through; it writes the seven-expression model, its card, metrics and curves, and an ONNX file
    albumsort runs."""
    pytest.importorskip("tensorflow")
    out, straight = tmp_path / "models", tmp_path / "straight"
    base = [sys.executable, "-m", "training", "train", "--data", str(fer_folder), "--epochs", "3", "--lr", "3e-3",
            "--batch-size", "32", "--warmup-epochs", "0", "--name", "smoke", "--width", "8",
            "--expw", "", "--rafdb", "", "--nonfaces", ""]
    env = dict(os.environ, ALBUMSORT_TRAINING_CACHE=str(tmp_path / "cache"))
    first = subprocess.run(base + ["--out", str(out), "--stop-after", "0.0001"], capture_output=True, text=True,
                           cwd=ROOT, timeout=600, env=env)
    assert first.returncode == 3 and "stopped after epoch 1 of 3" in first.stdout, first.stderr[-3000:]
    assert (out / "smoke_checkpoint.keras").is_file() and not (out / "smoke.onnx").exists()
    assert json.loads((out / "smoke_checkpoint.json").read_text())["epoch"] == 1
    p = subprocess.run(base + ["--out", str(out), "--resume"], capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env=env)
    assert p.returncode == 0 and "resumed from" in p.stdout, p.stderr[-3000:]
    q = subprocess.run(base + ["--out", str(straight)], capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    assert q.returncode == 0, q.stderr[-3000:]
    import keras

    import training.model  # noqa: F401  (registers the Standardize layer)

    a, b = (keras.models.load_model(d / "smoke.keras", compile=False) for d in (out, straight))
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=False))
    for f in ("smoke.keras", "smoke.onnx", "smoke.json", "smoke_metrics.json", "smoke_curves.png",
              "smoke_confusion.png"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "smoke_metrics.json").read_text())
    assert metrics["onnx_max_difference_vs_keras"] < 1e-4
    card = json.loads((out / "smoke.json").read_text())
    assert (card["input_size"], card["channels"]) == (96, 1)  # the recipe's input: 96 px grey
    assert card["labels"] == list(EXPRESSIONS)  # the file reads all seven expressions
    assert metrics["config"]["seed"] == 1234 and metrics["calibration"]["emotion_temperature"] > 0
    assert len(metrics["history"]["loss"]) == 3  # the history spans both sittings
    lists = metrics["test_ferplus_lists"]
    assert set(lists["lists"]) == set(EXPRESSIONS) and 0 <= lists["seven_class_accuracy"] <= 1

    # The .onnx model is scored with only the inference runtime: Keras and TensorFlow cannot be imported.
    no_keras = ("import sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None; "
                "from training.evaluate import main; sys.exit(main(sys.argv[1:]))")
    ev = subprocess.run([sys.executable, "-c", no_keras, "--model", str(out / "smoke.onnx"),
                         "--data", str(fer_folder / "test"), "--confusion", str(tmp_path / "cm.png")],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert ev.returncode == 0, ev.stderr[-3000:]
    r = json.loads(ev.stdout)
    assert r["n"] == 60 and set(r["per_class"]) == set(EMOTIONS)  # four-class figures: faces of the four
    assert r["seven"]["n"] == 75  # and all seven: the disgust folder too
    assert np.array(r["confusion"]).sum() == 60 and np.array(r["confusion"]).shape == (4, 4)
    assert all(set(v) >= {"precision", "recall"} for v in r["per_class"].values())
    cm = np.array(r["confusion"])
    assert r["accuracy"] == pytest.approx(np.trace(cm) / 60)
    assert (tmp_path / "cm.png").stat().st_size > 1000
    rd = r["readability"]
    assert 0 <= rd["faces_mean"] <= 1 and rd["n_faces"] == 75
    from albumsort.emotions import EmotionModel

    probs, readability = EmotionModel(out / "smoke.onnx").score_crops(np.zeros((3, 96, 96), np.uint8))
    assert probs.shape == (3, 7) and readability.shape == (3,)
    assert np.allclose(probs.sum(1), 1, atol=1e-4) and ((readability >= 0) & (readability <= 1)).all()
    # Keras and ONNX forms agree once calibration is applied.
    ev2 = subprocess.run([sys.executable, "-m", "training", "evaluate", "--model", str(out / "smoke.keras"),
                          "--data", str(fer_folder / "test"), "--confusion", str(tmp_path / "cm2.png")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert json.loads(ev2.stdout)["confusion"] == r["confusion"]


def test_shipped_model_on_public_test():
    """The shipped model's accuracy on FER2013 PublicTest matches its model card's figure."""
    data = shared("fer2013", "test")
    from training.evaluate import evaluate

    card = json.loads((ROOT / "models" / "emotion.json").read_text())
    r = evaluate(ROOT / "models" / "emotion.onnx", data)
    assert r["n"] == 2622  # FER2013's own labels
    assert abs(r["ferplus"]["accuracy"] - card["test_accuracy"]) < 0.005  # the card's headline: FER+ majority


@pytest.fixture
def rafdb_folder(tmp_path):
    """A RAF-DB-shaped folder: train/<expression>/train_*_aligned.jpg, tight 100 px crops of a real face."""
    rgb = np.asarray(astronaut_face_crop())
    root = tmp_path / "rafdb"
    for e in ("angry", "happy", "sad", "neutral", "surprise", "fear", "disgust"):
        d = root / "train" / e
        d.mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rgb).save(d / f"train_{e}_{i:05d}_aligned.jpg", quality=95)
    return root


def astronaut_face_crop() -> Image.Image:
    """The astronaut's face cut tight and eye-level, as RAF-DB's aligned crops are, at 100 px."""
    from albumsort.faces import make_detector
    from tests.conftest import astronaut

    im = astronaut()
    (f,) = make_detector().detect(np.asarray(im))
    x, y, w, h = f.box
    return im.crop((int(x + 0.05 * w), int(y + 0.1 * h), int(x + 0.95 * w), int(y + h))).resize((100, 100))


def test_rafdb_split_and_label_mapping(rafdb_folder):
    from training.data import RAFDB_FOLDERS, rafdb_files

    train, val = rafdb_files(rafdb_folder, "train"), rafdb_files(rafdb_folder, "val")
    assert len(train) == 7 * 9 and len(val) == 7 * 1  # a fixed 10% of every class
    assert not {p for p, _ in train} & {p for p, _ in val}
    assert {e for _, e in train} == set(EXPRESSIONS)  # all seven of RAF-DB's expressions train
    assert rafdb_files(rafdb_folder, "val") == val  # stable across runs
    assert all(RAFDB_FOLDERS[e] == e for e in EXPRESSIONS) and len(RAFDB_FOLDERS) == 7


def test_rafdb_faces_get_the_album_framing(rafdb_folder, tmp_path):
    """A tight RAF-DB crop is padded, found by the album's detector and cut by crop_face at the model's size."""
    from albumsort.faces import make_detector
    from albumsort.preprocess import crop_face, for_model
    from training.data import DetectionCache, load_rafdb, pad_face, rafdb_files

    det = make_detector()
    cache = DetectionCache(det, tmp_path / "cache")
    x, t, found = load_rafdb(rafdb_folder, "val", size=64, channels=3, cache=cache)
    assert x.shape == (7, 64, 64, 3) and x.dtype == np.uint8 and found == 1.0
    truth = [EXPRESSIONS.index(e) for _, e in rafdb_files(rafdb_folder, "val")]
    assert t.shape == (7, 8) and t.argmax(1).tolist() == truth
    # Exactly what the album would cut from the padded photo with the detector's box and landmarks.
    path = rafdb_files(rafdb_folder, "val")[0][0]
    padded, p = pad_face(np.asarray(Image.open(path).convert("RGB")))
    assert p == 50 and padded.shape[:2] == (200, 200)
    (f,) = det.detect(padded)
    np.testing.assert_array_equal(x[0], crop_face(for_model(padded, 3), f.box, f.landmarks, size=64))
    # The album's frame is looser than RAF-DB's: the crop shows more than the tight original.
    assert max(f.box[2], f.box[3]) > 0.7 * 100
    # The detections are cached: a second load with a detector that fails finds them on disk.
    assert cache.path.is_file()

    class Broken:
        version = det.version

        def detect(self, rgb):
            raise AssertionError("detector called despite the cache")

    x2, _, _ = load_rafdb(rafdb_folder, "val", size=48, channels=1,
                          cache=DetectionCache(Broken(), tmp_path / "cache"))
    assert x2.shape == (7, 48, 48)


def test_model_declares_its_input_size_and_channels():
    pytest.importorskip("tensorflow")
    from training.export import calibrated
    from training.model import build_model

    m = build_model(width=4, n_classes=8, size=96, channels=3, stem_stride=2)
    w = calibrated(m, 1.0, 1.0, flip=True)
    assert tuple(w.input_shape[1:]) == (96, 96, 3)
    out = w.predict(np.random.default_rng(0).random((3, 96, 96, 3), dtype=np.float32), verbose=0)
    assert out.shape == (3, 8)  # seven expression probabilities, then readability
    assert np.allclose(out[:, :7].sum(1), 1, atol=1e-5) and ((out[:, 7] >= 0) & (out[:, 7] <= 1)).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_augmentations_keep_shape_and_label_face_like_things_unreadable(channels):
    """Masks and heavy paint cover the face and are labelled unreadable; augmentation keeps any input shape."""
    tf = pytest.importorskip("tensorflow")
    from training.augment import Rng, augment_batch, make_facelike

    x = tf.random.stateless_uniform([16, 64, 64, channels], seed=[0, 0])
    t = tf.one_hot(tf.range(16) % 7, 8)  # seven expressions, unreadable last
    seed = tf.constant([3, 4], tf.int64)
    a1, a2 = augment_batch(x, Rng(seed), 0.7, 64, channels), augment_batch(x, Rng(seed), 0.7, 64, channels)
    assert a1.shape == (16, 64, 64, channels) and np.array_equal(a1.numpy(), a2.numpy())  # a batch's seed decides
    assert not np.array_equal(a1.numpy(), augment_batch(x, Rng(seed + 1), 0.7, 64, channels).numpy())
    y, t2 = make_facelike(x, t, Rng(seed), 1.0, 64, channels)
    assert y.shape == x.shape and (t2.numpy().argmax(1) == UNREADABLE).all()
    centre = np.abs(y.numpy()[:, 24:40, 24:40] - x.numpy()[:, 24:40, 24:40]).mean(axis=(1, 2, 3))
    assert (centre > 0.1).all()  # the face itself is replaced, not a corner
    y0, t0 = make_facelike(x, t, Rng(seed), 0.0, 64, channels)
    assert np.array_equal(y0.numpy(), x.numpy()) and np.array_equal(t0.numpy(), t.numpy())


def test_softening_reaches_the_detail_asked_for():
    """``soften_to_px`` lets readable faces be softened below half the side (the 96 px readability head called
    soft web faces unreadable); left unset, augmentation is exactly the recipe's (the committed run resumes)."""
    tf = pytest.importorskip("tensorflow")
    from training.augment import Rng, augment_batch

    x = tf.random.stateless_uniform([32, 96, 96, 1], seed=[1, 2])  # all detail: every pixel independent

    def least_detail(soften_to):
        out = []
        for k in range(12):
            a = augment_batch(x, Rng(tf.constant([k, 7], tf.int64)), 1.0, 96, 1, soften_to).numpy()
            out.append(np.abs(np.diff(a, axis=2)).mean(axis=(1, 2, 3)).min())  # the softest face of the batch
        return min(out)

    seed = tf.constant([5, 6], tf.int64)
    assert np.array_equal(augment_batch(x, Rng(seed), 1.0, 96, 1).numpy(),
                          augment_batch(x, Rng(seed), 1.0, 96, 1, 48).numpy())  # None = half the side
    assert least_detail(16) < 0.6 * least_detail(None)
    from training.train import parse_config

    cfg = parse_config(["--soften-to-px", "20", "--init", "models/emotion.keras"])
    assert (cfg.soften_to_px, cfg.init) == (20, "models/emotion.keras")
    assert (parse_config([]).soften_to_px, parse_config([]).init) == (None, None)


def test_fine_tuning_starts_from_the_given_weights_and_refuses_other_shapes(tmp_path):
    pytest.importorskip("tensorflow")
    from training.model import build_model
    from training.train import Config, start_model

    m = build_model(8, 0.25, 8, 96, 1, 2)
    m.save(tmp_path / "start.keras")
    got = start_model(Config(init=str(tmp_path / "start.keras")), 8)
    assert all(np.array_equal(a, b) for a, b in zip(got.get_weights(), m.get_weights(), strict=True))
    fresh = start_model(Config(width=8), 8)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), m.get_weights(), strict=True))
    with pytest.raises(SystemExit, match="gives 8 outputs; this run needs"):
        start_model(Config(init=str(tmp_path / "start.keras")), 5)
    with pytest.raises(SystemExit, match="no model file"):
        start_model(Config(init=str(tmp_path / "missing.keras")), 8)


def test_the_pretrained_member_computes_what_mobilefacenet_computes(tmp_path):
    """``pretrained_mobilefacenet`` rebuilds the shipped face-recognition file layer by layer: its features are the
    ONNX file's own (ONNX Runtime), it reads the recipe's grey crop and gives the recipe's logits, it ensembles
    with a small CNN, and a file that is not the one models/README.md names is refused."""
    pytest.importorskip("tensorflow")
    onnx = pytest.importorskip("onnx")
    import keras
    import onnxruntime as ort

    from training.model import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        PRETRAINED_FACES,
        PRETRAINED_FEATURES,
        average_logits,
        build_model,
        pretrained_mobilefacenet,
    )
    from training.train import Config, start_model

    proto = onnx.load(PRETRAINED_FACES)
    proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(PRETRAINED_FEATURES))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rgb = np.random.default_rng(0).random((2, 112, 112, 3), np.float32)
    x = ((rgb * 255 - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)).transpose(0, 3, 1, 2)
    want = np.concatenate([session.run([PRETRAINED_FEATURES], {session.get_inputs()[0].name: x[i:i + 1]})[0]
                           for i in range(2)]).reshape(2, -1)  # the file's batch is fixed at 1
    m = pretrained_mobilefacenet(size=112, channels=3)
    got = keras.Model(m.input, m.get_layer("mfn_features").output).predict(rgb, verbose=0)
    assert got.shape == (2, 512) and np.abs(got - want).max() < 1e-3 * np.abs(want).max()

    member = start_model(Config(arch="mobilefacenet"), 8)
    assert member.input_shape == (None, 96, 96, 1) and member.output_shape == (None, 8)
    grey = np.random.default_rng(1).random((3, 96, 96, 1), np.float32)
    both = average_logits([member, build_model(8, 0.25, 8, 96, 1, 2)])
    assert both.predict(grey, verbose=0).shape == (3, 8)
    with pytest.raises(SystemExit, match="choose vgg or mobilefacenet"):
        start_model(Config(arch="resnet"), 8)
    other = tmp_path / "other.onnx"
    other.write_bytes(PRETRAINED_FACES.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="sha256 differs"):
        pretrained_mobilefacenet(path=other)


def test_an_ensemble_averages_its_members_logits(tmp_path):
    pytest.importorskip("tensorflow")
    from training.model import average_logits, build_model

    a, b = build_model(8, 0.25, 8, 96, 1, 2), build_model(8, 0.25, 8, 96, 1, 2)
    x = np.random.default_rng(0).random((4, 96, 96, 1), np.float32)
    both = average_logits([a, b])
    want = (a.predict(x, verbose=0) + b.predict(x, verbose=0)) / 2
    assert np.allclose(both.predict(x, verbose=0), want, atol=1e-5)
    both.save(tmp_path / "both.keras")  # one file, as the export and --init read it
    import keras

    again = keras.models.load_model(tmp_path / "both.keras", compile=False)
    assert np.allclose(again.predict(x, verbose=0), want, atol=1e-5)
    with pytest.raises(ValueError, match="different shapes"):
        average_logits([a, build_model(8, 0.25, 5, 96, 1, 2)])


def test_int8_folds_the_pretrained_members_relu6_into_its_convolutions(tmp_path):
    """``quantize_int8``: the pretrained member's ReLU6 (an ONNX ``Clip`` after most convolutions) is quantised, so
    it becomes its convolution's output range and no ``Clip`` is left; unquantised, each would cost a dequantise
    and a requantise.  The logits stay float."""
    pytest.importorskip("tensorflow")
    onnx = pytest.importorskip("onnx")
    from training.export import calibrated, export_onnx, quantize_int8
    from training.model import average_logits, build_model, pretrained_mobilefacenet

    model = average_logits([pretrained_mobilefacenet(0.25, 8, 96, 1), build_model(8, 0.25, 8, 96, 1, 2)],
                           ["face", "face+centre"])
    export_onnx(calibrated(model, 1.0, 1.0, flip=False), tmp_path / "float.onnx")
    x = np.random.default_rng(3).random((16, 96, 96, 1), np.float32)
    quantize_int8(tmp_path / "float.onnx", tmp_path / "int8.onnx", x)
    ops = [n.op_type for n in onnx.load(tmp_path / "float.onnx").graph.node]
    int8 = onnx.load(tmp_path / "int8.onnx").graph
    assert ops.count("Clip") >= 32 and not any(n.op_type == "Clip" for n in int8.node)
    made_by = {o: n.op_type for n in int8.node for o in n.output}
    dense = [n for n in int8.node if n.op_type in ("MatMul", "Gemm")]
    assert dense and not any(made_by.get(o) == "QuantizeLinear" for n in dense for o in n.output)
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in {o for d in dense for o in d.output}
                   for n in int8.node)


def test_each_member_can_read_its_own_views(tmp_path):
    """``average_logits(..., views)``: a costly member reads the face once while a cheap one also reads its centre;
    the mean is of each member's own views, it survives saving, and the exported file reads what Keras reads."""
    pytest.importorskip("tensorflow")
    import keras

    from training.export import calibrated, export_onnx, max_difference
    from training.model import average_logits, build_model, views_mean

    a, b = build_model(8, 0.25, 8, 96, 1, 2), build_model(8, 0.25, 8, 96, 1, 2)
    x = np.random.default_rng(2).random((3, 96, 96, 1), np.float32)
    mixed = average_logits([a, b], ["face+centre", "face"])
    want = (views_mean(a, zoom=0.9).predict(x, verbose=0) + b.predict(x, verbose=0)) / 2
    assert np.allclose(mixed.predict(x, verbose=0), want, atol=1e-5)
    assert np.abs(average_logits([a, b]).predict(x, verbose=0) - want).max() > 1e-4  # the views matter here
    mixed.save(tmp_path / "mixed.keras")
    again = keras.models.load_model(tmp_path / "mixed.keras", compile=False)
    assert np.allclose(again.predict(x, verbose=0), want, atol=1e-5)
    mirrored = average_logits([a, b], ["face+mirror", "all four"])  # a saved mirror view loads again
    mirrored.save(tmp_path / "mirrored.keras")
    assert np.allclose(keras.models.load_model(tmp_path / "mirrored.keras", compile=False).predict(x, verbose=0),
                       mirrored.predict(x, verbose=0), atol=1e-5)
    wrapped = calibrated(mixed, 1.2, 0.9, flip=False)
    export_onnx(wrapped, tmp_path / "mixed.onnx")
    assert max_difference(wrapped, tmp_path / "mixed.onnx", x) < 1e-4
    with pytest.raises(ValueError, match="2 view sets for 1 members"):
        average_logits([a], ["face", "face"])
    with pytest.raises(ValueError, match="choose among"):
        average_logits([a, b], ["face", "sideways"])


def test_test_time_views_average_the_logits_of_the_face_its_mirror_and_its_centre(tmp_path):
    """``views_mean``: with ``zoom`` the centre of the face, resized back, is one more view (and its mirror with
    ``flip``); the file exported from it reads what Keras reads."""
    tf = pytest.importorskip("tensorflow")
    from training.export import calibrated, export_onnx, max_difference
    from training.model import build_model, views_mean

    m = build_model(8, 0.25, 8, 96, 1, 2)
    x = np.random.default_rng(0).random((3, 96, 96, 1), np.float32)
    centre = tf.image.resize(x[:, 5:91, 5:91], (96, 96), method="bilinear").numpy()  # round(96 * 0.9) = 86

    def logits(v):
        return m.predict(v, verbose=0)

    assert views_mean(m) is m
    assert np.allclose(views_mean(m, zoom=0.9).predict(x, verbose=0), (logits(x) + logits(centre)) / 2, atol=1e-5)
    four = (logits(x) + logits(x[:, :, ::-1]) + logits(centre) + logits(centre[:, :, ::-1])) / 4
    assert np.allclose(views_mean(m, flip=True, zoom=0.9).predict(x, verbose=0), four, atol=1e-5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        views_mean(m, zoom=1.1)
    wrapped = calibrated(m, 1.3, 0.8, flip=True, zoom=0.9)
    export_onnx(wrapped, tmp_path / "views.onnx")
    assert max_difference(wrapped, tmp_path / "views.onnx", x) < 1e-4


def test_ensemble_command_ships_an_int8_file_of_two_members(fer_folder, tmp_path):
    """``python -m training ensemble --int8``: the members' mean, calibrated, exported, quantised to int8 and
    evaluated through albumsort's runtime; the float file is kept beside it; quantising twice gives the same
    bytes."""
    pytest.importorskip("tensorflow")
    from dataclasses import asdict

    import onnx

    from albumsort.emotions import EmotionModel
    from training.export import quantize_int8
    from training.model import build_model
    from training.train import Config

    data = ["--data", str(fer_folder), "--expw", "", "--rafdb", "", "--nonfaces", ""]
    config = asdict(Config(data=str(fer_folder), expw="", rafdb="", nonfaces=""))
    members = []
    for i in range(2):
        m = build_model(8, 0.25, 8, 96, 1, 2)
        m.save(tmp_path / f"m{i}.keras")
        (tmp_path / f"m{i}.json").write_text(json.dumps({"config": config}))
        members.append(str(tmp_path / f"m{i}.keras"))
    out = tmp_path / "ens"
    env = dict(os.environ, ALBUMSORT_TRAINING_CACHE=str(tmp_path / "cache"))
    run = ["ensemble", "--members", *members, *data]

    def training(*args):
        return subprocess.run([sys.executable, "-m", "training", *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=600, env=env)

    # A member trained on another split, or an --out that would overwrite a member, is refused before any work.
    (tmp_path / "m1.json").write_text(json.dumps({"config": config | {"seed": 7}}))
    bad = training(*run, "--out", str(out))
    assert bad.returncode != 0 and "other data settings (seed)" in bad.stderr, bad.stderr[-2000:]
    (tmp_path / "m1.json").write_text(json.dumps({"config": config}))
    bad = training(*run, "--out", str(tmp_path), "--name", "m0")
    assert bad.returncode != 0 and "would overwrite a member" in bad.stderr
    p = training(*run, "--int8", "--out", str(out), "--name", "ens")
    assert p.returncode == 0, p.stderr[-3000:]
    for f in ("ens.onnx", "ens_float.onnx", "ens.json", "ens_float.json", "ens.keras", "ens_metrics.json",
              "ens_confusion.png"):
        assert (out / f).is_file(), f
    card = json.loads((out / "ens.json").read_text())
    assert card["int8"] is True and card["members"] == members and card["labels"] == list(EXPRESSIONS)
    ops = {n.op_type for n in onnx.load(out / "ens.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "QuantizeLinear" not in {n.op_type for n in onnx.load(out / "ens_float.onnx").graph.node}
    metrics = json.loads((out / "ens_metrics.json").read_text())
    assert metrics["members"] == members and "int8_vs_float" in metrics and "test_ferplus_lists" in metrics
    probs, readability = EmotionModel(out / "ens.onnx").score_crops(np.full((3, 96, 96), 128, np.uint8))
    assert probs.shape == (3, 7) and np.allclose(probs.sum(1), 1, atol=1e-3)
    x = np.random.default_rng(1).random((64, 96, 96, 1), np.float32)
    quantize_int8(out / "ens_float.onnx", tmp_path / "a.onnx", x)
    quantize_int8(out / "ens_float.onnx", tmp_path / "b.onnx", x)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    bad = subprocess.run([sys.executable, "-m", "training", "ensemble", "--members", str(tmp_path / "nope.keras")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode != 0 and "no model file" in bad.stderr


def test_run_seed_changes_the_batches_but_not_the_split():
    """``--run-seed`` draws other batches and augmentations (a second ensemble member), while ``seed`` alone
    keeps deciding the held-out split, so the ensemble command accepts both runs."""
    pytest.importorskip("tensorflow")
    from training.train import DATA_FIELDS, Config, draw_seed, make_dataset, parse_config

    assert draw_seed(Config()) == 1234 and draw_seed(Config(run_seed=7)) == 7
    assert parse_config(["--run-seed", "7"]).run_seed == 7 and parse_config([]).run_seed is None
    assert "run_seed" not in DATA_FIELDS
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 96, 96, 1)).astype(np.float32) / 255
    t = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 64)]

    def first_batch(**kw):
        cfg = Config(epochs=1, batch_size=32, width=8, **kw)
        return next(iter(make_dataset(x, t, cfg, train=True)))[0].numpy()

    assert np.array_equal(first_batch(), first_batch(run_seed=1234))
    assert not np.array_equal(first_batch(), first_batch(run_seed=7))


@pytest.mark.parametrize("state", sorted((ROOT / "training" / "checkpoints").glob("*/*_checkpoint.json")),
                         ids=lambda p: p.parent.name)
def test_a_committed_long_run_resumes_with_the_recipe(state):
    """A long CPU run spans sittings from its checkpoint in the repository (models/README.md): a default changed
    under it would make ``--resume`` refuse it and the sittings spent on it would be lost.  The command that
    continues it is committed beside it (``resume.txt``; without one, the 150-epoch recipe's defaults and the
    run's own ``run_seed``), and must be accepted as it is written."""
    import shlex

    from training.train import parse_config, resume_differences

    assert state.with_suffix(".keras").is_file()
    st = json.loads(state.read_text())
    command = state.parent / "resume.txt"
    if command.is_file():
        words = shlex.split(command.read_text())
        assert words[:4] == ["python", "-m", "training", "train"] and "--resume" in words, words
        cfg = parse_config(words[4:])
        assert (ROOT / cfg.out).resolve() == state.parent.resolve()
    else:
        seed = st["config"].get("run_seed")
        cfg = parse_config(["--resume"] + (["--run-seed", str(seed)] if seed is not None else []))
        assert st["config"]["epochs"] == 150
    assert resume_differences(cfg, st["config"]) == []
    assert 0 < st["epoch"] < st["config"]["epochs"] and len(st["history"]["loss"]) == st["epoch"]


def test_focal_gamma_weighs_sure_faces_less_and_zero_is_the_recipe():
    """``--focal-gamma`` 0 is the recipe's cross-entropy; > 0 scales each face's loss by (1 - p)**gamma, so a face
    read surely costs far less than under cross-entropy while a confused one costs about as much."""
    pytest.importorskip("tensorflow")
    from training.train import Config, loss_of, parse_config

    assert parse_config(["--focal-gamma", "2"]).focal_gamma == 2.0 and Config().focal_gamma == 0.0
    t = np.array([[0, 1, 0], [0, 1, 0]], np.float32)
    logits = np.array([[0.0, 6.0, 0.0], [0.3, 0.0, 0.3]], np.float32)  # a sure face, a confused one
    ce = loss_of(Config(label_smoothing=0.0)).call(t, logits).numpy()
    focal = loss_of(Config(label_smoothing=0.0, focal_gamma=2.0)).call(t, logits).numpy().reshape(-1)
    if focal.size > 2:  # per-class terms: sum them per face
        focal = focal.reshape(2, -1).sum(1)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(focal, ce * (1 - p[:, 1]) ** 2, rtol=1e-4)
    assert focal[0] / ce[0] < 1e-4 and focal[1] / ce[1] > 0.3


def test_resume_reads_a_checkpoint_made_before_a_setting_existed():
    """A setting added to the recipe after a run started (its default unchanged) must not make ``--resume``
    refuse that run's checkpoint: a missing key in the checkpoint means the default."""
    from dataclasses import asdict

    from training.train import Config, resume_differences

    old = asdict(Config())
    del old["focal_gamma"]
    assert resume_differences(Config(), old) == []
    assert resume_differences(Config(focal_gamma=2.0), old) == ["focal_gamma"]
    assert resume_differences(Config(epochs=40, stop_after=5, out="x"), asdict(Config())) == ["epochs"]
