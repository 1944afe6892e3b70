"""Train the emotion + readability CNN on FER2013/FER+, RAF-DB, ExpW and non-faces, calibrate, evaluate, export.

    python -m training train            # FER+ votes, RAF-DB, ExpW, non-faces from ../shared/data

Reproducible: seeds are fixed (Python, NumPy, TensorFlow, op determinism)
and the full config is written next to the model with its metrics.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from albumsort.preprocess import to_model_input


@dataclass
class Config:
    data: str = "../shared/data/fer2013"
    expw: str = "../shared/data/expw"
    rafdb: str = "../shared/data/rafdb"
    nonfaces: str = "../shared/data"
    out: str = "models"
    name: str = "emotion"
    epochs: int = 24
    batch_size: int = 64
    width: int = 24
    dropout: float = 0.25
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    label_smoothing: float = 0.05
    class_weight_power: float = 0.7
    augment_strength: float = 0.7
    jpeg_probability: float = 0.2
    unreadable_probability: float = 0.05
    facelike_probability: float = 0.03
    facelike_repeat: int = 5
    expw_repeat: int = 2
    rafdb_repeat: int = 1
    rafdb_other: str = "drop"
    fer_fraction: float = 1.0
    input_size: int = 96
    channels: int = 1
    stem_stride: int = 2
    flip_tta: bool = True
    val_fraction: float = 0.1
    seed: int = 1234
    limit_per_class: int | None = None
    threads: int = field(default_factory=lambda: os.cpu_count() or 2)


def seed_everything(seed: int) -> None:
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    import keras

    keras.utils.set_random_seed(seed)


def class_weights(targets: np.ndarray, power: float) -> np.ndarray:
    """Per-class weights (mean mass / class mass) ** power over soft targets; power 1 balances fully."""
    mass = targets.sum(axis=0).astype(float)
    return ((mass.mean() / np.maximum(mass, 1.0)) ** power).astype(np.float32)


def make_dataset(x: np.ndarray, t: np.ndarray, cfg: Config, train: bool, weights: np.ndarray | None = None):
    """(input, soft target[, sample weight]) batches; training batches are augmented."""
    import tensorflow as tf

    from training.augment import augment_batch, jpeg_artefacts, make_facelike, make_unreadable

    ds = tf.data.Dataset.from_tensor_slices((x, t))
    if train:
        ds = ds.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
        if cfg.jpeg_probability > 0:
            ds = ds.map(lambda a, b: (jpeg_artefacts(a, cfg.jpeg_probability), b),
                        num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(cfg.batch_size, drop_remainder=train)
    if train and cfg.augment_strength > 0:
        ds = ds.map(lambda a, b: (augment_batch(a, cfg.augment_strength, cfg.input_size, cfg.channels), b),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if train and cfg.unreadable_probability > 0:
        ds = ds.map(lambda a, b: make_unreadable(a, b, cfg.unreadable_probability, cfg.input_size),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if train and cfg.facelike_probability > 0:
        ds = ds.map(lambda a, b: make_facelike(a, b, cfg.facelike_probability, cfg.input_size, cfg.channels),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if weights is not None:
        w = tf.constant(weights)
        ds = ds.map(lambda a, b: (a, b, tf.reduce_sum(b * w, axis=1)))
    return ds.prefetch(tf.data.AUTOTUNE)


def load_all(cfg: Config) -> dict:
    """Every split training and its report need, as (uint8 crops, targets (N, K)).

    K is 5 (``TARGETS``), or 8 when RAF-DB's surprise/fear/disgust faces train
    auxiliary outputs (``rafdb_other="aux"``).
    """
    from albumsort.faces import make_detector
    from training.data import (RAFDB_OTHER, UNREADABLE, DetectionCache, load_expw, load_fer, load_nonfaces,
                               load_rafdb, one_hot, stratified_split)

    size, ch = cfg.input_size, cfg.channels
    cache = DetectionCache(make_detector())
    d = {}
    images, targets = load_fer(cfg.data, "train", cfg.limit_per_class, size=size, channels=ch)
    keep, held = stratified_split(targets.argmax(1), cfg.val_fraction, cfg.seed)
    if cfg.fer_fraction < 1.0:  # quick sweeps: a fixed random share of FER's training faces
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(keep)[:int(len(keep) * cfg.fer_fraction)])
    parts_train, parts_val = [(images[keep], targets[keep])], [(images[held], targets[held])]
    d["test_ferplus"] = load_fer(cfg.data, "test", cfg.limit_per_class, labels="majority", size=size, channels=ch)
    d["test_fer2013"] = load_fer(cfg.data, "test", cfg.limit_per_class, labels="folder", size=size, channels=ch)
    if cfg.rafdb and Path(cfg.rafdb).is_dir():
        xr, tr, found = load_rafdb(cfg.rafdb, "train", size=size, channels=ch, cache=cache)
        parts_train += [(xr, tr)] * max(1, cfg.rafdb_repeat)
        d["test_rafdb"] = load_rafdb(cfg.rafdb, "val", size=size, channels=ch, cache=cache)[:2]
        parts_val.append(d["test_rafdb"])
        d["rafdb_detector_found"] = found
        if cfg.rafdb_other == "aux":
            parts_train.append(load_rafdb(cfg.rafdb, "train", size=size, channels=ch, cache=cache,
                                          expressions=RAFDB_OTHER)[:2])
        elif cfg.rafdb_other != "drop":
            raise ValueError(f"rafdb_other must be drop or aux, not {cfg.rafdb_other!r}")
    if cfg.expw and Path(cfg.expw).is_dir():
        xe, te, found = load_expw(cfg.expw, "train", size=size, channels=ch, cache=cache)
        parts_train += [(xe, te)] * max(1, cfg.expw_repeat)
        xv, tv, _ = load_expw(cfg.expw, "val", size=size, channels=ch, cache=cache)
        parts_val.append((xv, tv))
        d["test_expw"] = load_expw(cfg.expw, "test", size=size, channels=ch, cache=cache)[:2]
        d["expw_detector_found"] = found
    wider = Path(cfg.nonfaces or "") / "wider-face-val-sample"
    if cfg.facelike_repeat > 0 and (wider / "boxes.csv").is_file():
        from training.data import FACELIKE_KINDS, load_facelike

        fl = load_facelike(wider, share="train", size=size, channels=ch, cache=cache, kinds=FACELIKE_KINDS)
        found = fl["crops"][fl["found"]]  # what the album would read; the rest it never sees
        parts_train += [(found, one_hot(np.full(len(found), UNREADABLE)))] * cfg.facelike_repeat
        d["n_facelike"] = int(len(found))
    if cfg.nonfaces and Path(cfg.nonfaces).is_dir():
        neg = load_nonfaces(cfg.nonfaces, seed=cfg.seed, share="train", size=size, channels=ch)
        if len(neg):
            labels = np.full(len(neg), UNREADABLE)
            k, h = stratified_split(labels, cfg.val_fraction, cfg.seed)
            parts_train.append((neg[k], one_hot(labels[k])))
            parts_val.append((neg[h], one_hot(labels[h])))
        d["n_nonfaces"] = int(len(neg))
    width = max(t.shape[1] for _, t in parts_train)
    pad = lambda t: np.pad(t, ((0, 0), (0, width - t.shape[1])))  # noqa: E731
    d["train"] = (np.concatenate([x for x, _ in parts_train]), np.concatenate([pad(t) for _, t in parts_train]))
    d["val"] = (np.concatenate([x for x, _ in parts_val]), np.concatenate([pad(t) for _, t in parts_val]))
    return d


def plot_curves(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(history["loss"], label="train")
    a.plot(history["val_loss"], label="validation")
    a.set_title("loss")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(history["accuracy"], label="train")
    b.plot(history["val_accuracy"], label="validation")
    b.set_title("accuracy")
    b.set_xlabel("epoch")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def calibrate(logits: np.ndarray, targets: np.ndarray) -> dict:
    """Temperatures for the emotion head (readable faces, majority label) and the readability head.

    Returns the temperatures and the expected calibration error before and after each.
    """
    from training.calibration import expected_calibration_error, fit_temperature, readability_logits, softmax
    from training.data import UNREADABLE

    major = targets.argmax(1)
    face = major != UNREADABLE
    emo = logits[face][:, :UNREADABLE]
    t_e = fit_temperature(emo, major[face])
    r2 = readability_logits(logits)
    r_labels = (~face).astype(int)
    t_r = fit_temperature(r2, r_labels)
    return {
        "emotion_temperature": t_e, "readability_temperature": t_r,
        "fitted_on": "validation: 10% of FER+ train, RAF-DB val share, ExpW val share, 10% of the training non-faces",
        "emotion_ece_before": expected_calibration_error(softmax(emo), major[face]),
        "emotion_ece_after": expected_calibration_error(softmax(emo, t_e), major[face]),
        "readability_ece_before": expected_calibration_error(softmax(r2), r_labels),
        "readability_ece_after": expected_calibration_error(softmax(r2, t_r), r_labels),
    }


def train(cfg: Config) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
    tf.config.threading.set_inter_op_parallelism_threads(cfg.threads)
    seed_everything(cfg.seed)
    import keras

    from training.data import TARGETS
    from training.evaluate import heads_from_logits, metrics, plot_confusion, readability_metrics
    from training.export import calibrated, export_onnx, export_tflite, max_difference
    from training.model import build_model

    t0 = time.time()
    data = load_all(cfg)
    x_train, t_train = to_model_input(data["train"][0]), data["train"][1]
    x_val, t_val = to_model_input(data["val"][0]), data["val"][1]
    print(f"data: {len(x_train)} train, {len(x_val)} validation; class mass "
          f"{dict(zip(TARGETS, np.round(t_train.sum(0)).astype(int).tolist()))} ({time.time() - t0:.1f} s)",
          flush=True)

    model = build_model(cfg.width, cfg.dropout, t_train.shape[1], cfg.input_size, cfg.channels, cfg.stem_stride)
    steps = len(x_train) // cfg.batch_size
    total, warm = max(1, steps * cfg.epochs), steps * cfg.warmup_epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warm else cfg.lr, decay_steps=max(1, total - warm), warmup_target=cfg.lr if warm else None,
        warmup_steps=warm)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"])
    weights = class_weights(t_train, cfg.class_weight_power)
    train_ds = make_dataset(x_train, t_train, cfg, train=True, weights=weights)
    val_ds = make_dataset(x_val, t_val, cfg, train=False)

    t1 = time.time()
    hist = model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, verbose=2)
    train_seconds = time.time() - t1

    def logits_of(images):
        x = to_model_input(images)
        out = model.predict(x, batch_size=512, verbose=0)
        if cfg.flip_tta:
            out = (out + model.predict(x[:, :, ::-1], batch_size=512, verbose=0)) / 2
        return out[:, :len(TARGETS)]  # auxiliary outputs are for training only

    val_logits = logits_of(data["val"][0])
    cal = calibrate(val_logits, t_val)
    t_e, t_r = cal["emotion_temperature"], cal["readability_temperature"]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / f"{cfg.name}.keras")
    wrapped = calibrated(model, t_e, t_r, cfg.flip_tta)
    export_onnx(wrapped, out / f"{cfg.name}.onnx")
    export_tflite(wrapped, out / f"{cfg.name}.tflite")
    onnx_vs_keras = max_difference(wrapped, out / f"{cfg.name}.onnx", x_val[:1000])

    result = {"calibration": cal, "onnx_max_difference_vs_keras": onnx_vs_keras}
    for key in ("test_ferplus", "test_fer2013", "test_expw", "test_rafdb"):
        if key in data:
            images, targets = data[key]
            probs, readability = heads_from_logits(logits_of(images), t_e, t_r)
            result[key] = metrics(probs, targets.argmax(1))
            result[key]["readability"] = readability_metrics(readability)
    wider = Path(cfg.nonfaces or "") / "wider-face-val-sample"
    if (wider / "boxes.csv").is_file():
        from training.data import load_facelike
        from training.evaluate import facelike_metrics

        fl = load_facelike(wider, share="test", size=cfg.input_size, channels=cfg.channels)
        p_fl, r_fl = heads_from_logits(logits_of(fl["crops"]), t_e, t_r)
        result["facelike_held_out"] = facelike_metrics(p_fl, r_fl, fl["kinds"], fl["det_score"])
    probs, readability = heads_from_logits(val_logits, t_e, t_r)
    face = t_val.argmax(1) < len(TARGETS) - 1
    result["validation"] = metrics(probs[face], t_val[face].argmax(1))
    result["validation"]["readability"] = readability_metrics(readability[face], readability[~face])
    result.update({
        "expw_detector_found": data.get("expw_detector_found"),
        "rafdb_detector_found": data.get("rafdb_detector_found"),
        "n_facelike_train": data.get("n_facelike"),
        "n_train": int(len(x_train)), "n_nonfaces": data.get("n_nonfaces"),
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t0, 1),
        "params": int(model.count_params()),
        "config": asdict(cfg),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
    })
    (out / f"{cfg.name}_metrics.json").write_text(json.dumps(result, indent=2))
    headline = result.get("test_ferplus", result["validation"])
    (out / f"{cfg.name}.json").write_text(json.dumps({
        "labels": list(TARGETS[:-1]), "outputs": "four emotion probabilities, then readability",
        "input": f"{cfg.input_size}x{cfg.input_size} {'RGB' if cfg.channels == 3 else 'grayscale'}, "
                 "albumsort.preprocess.crop_face + to_model_input",
        "input_size": cfg.input_size, "channels": cfg.channels,
        "emotion_temperature": t_e, "readability_temperature": t_r, "flip_tta": cfg.flip_tta,
        "config": asdict(cfg), "test_accuracy": headline["accuracy"]}, indent=2))
    plot_curves(hist.history, out / f"{cfg.name}_curves.png")
    plot_confusion(headline, out / f"{cfg.name}_confusion.png",
                   f"FER2013 PublicTest, FER+ majority, 4 classes: {headline['accuracy']:.1%}")
    summary = {k: result[k] for k in ("train_seconds", "params")}
    for key in ("test_ferplus", "test_fer2013", "test_expw", "test_rafdb"):
        if key in result:
            summary[key] = {"accuracy": result[key]["accuracy"],
                            "recall": {k: v["recall"] for k, v in result[key]["per_class"].items()}}
    summary["calibration"] = cal
    print(json.dumps(summary, indent=2), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    for name, value in asdict(defaults).items():
        if isinstance(value, bool):
            ap.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value,
                            help=f"default: {value}")
            continue
        kind = type(value) if value is not None else int
        ap.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value, help=f"default: {value}")
    args = ap.parse_args(argv)
    train(Config(**vars(args)))
    return 0
