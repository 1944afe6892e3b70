"""Train the four-emotion CNN on FER2013, calibrate it, evaluate it and export it to models/.

    python -m training train --data ../shared/data/fer2013

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

from albumsort.preprocess import EMOTIONS, to_model_input


@dataclass
class Config:
    data: str = "../shared/data/fer2013"
    out: str = "models"
    name: str = "emotion"
    epochs: int = 34
    batch_size: int = 32
    width: int = 16
    dropout: float = 0.25
    lr: float = 1e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    class_weight_power: float = 1.0
    augment_strength: float = 0.7
    jpeg_probability: float = 0.2
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


def class_weights(labels: np.ndarray, power: float) -> dict[int, float]:
    """(mean count / class count) ** power: power 1 balances classes fully."""
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(float)
    w = (counts.mean() / np.maximum(counts, 1)) ** power
    return {i: float(v) for i, v in enumerate(w)}


def make_dataset(x: np.ndarray, y: np.ndarray, cfg: Config, train: bool):
    import tensorflow as tf

    from training.augment import augment_batch, jpeg_artefacts

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if train:
        ds = ds.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
        if cfg.jpeg_probability > 0:
            ds = ds.map(lambda a, b: (jpeg_artefacts(a, cfg.jpeg_probability), b),
                        num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(cfg.batch_size, drop_remainder=train)
    if train and cfg.augment_strength > 0:
        ds = ds.map(lambda a, b: (augment_batch(a, cfg.augment_strength), b),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


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


def export_tflite(model, temperature: float, path: Path) -> None:
    """Write the calibrated probability model as a float32 TFLite file."""
    import tensorflow as tf

    from training.model import with_softmax

    calibrated = with_softmax(model, temperature)
    converter = tf.lite.TFLiteConverter.from_keras_model(calibrated)
    path.write_bytes(converter.convert())


def train(cfg: Config) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
    tf.config.threading.set_inter_op_parallelism_threads(cfg.threads)
    seed_everything(cfg.seed)
    import keras

    from training.calibration import expected_calibration_error, fit_temperature, softmax
    from training.data import load, stratified_split
    from training.evaluate import metrics, plot_confusion
    from training.model import build_model

    t0 = time.time()
    images, labels = load(cfg.data, "train", cfg.limit_per_class)
    test_images, test_labels = load(cfg.data, "test", cfg.limit_per_class)
    keep, held = stratified_split(labels, cfg.val_fraction, cfg.seed)
    x_train, y_train = to_model_input(images[keep]), labels[keep]
    x_val, y_val = to_model_input(images[held]), labels[held]
    x_test = to_model_input(test_images)
    print(f"data: {len(x_train)} train, {len(x_val)} validation, {len(x_test)} test "
          f"({time.time() - t0:.1f} s)", flush=True)

    model = build_model(cfg.width, cfg.dropout)
    steps = len(x_train) // cfg.batch_size
    total, warm = max(1, steps * cfg.epochs), steps * cfg.warmup_epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warm else cfg.lr, decay_steps=max(1, total - warm), warmup_target=cfg.lr if warm else None,
        warmup_steps=warm)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"])
    onehot = lambda y: keras.ops.one_hot(y, len(EMOTIONS))  # noqa: E731
    train_ds = make_dataset(x_train, y_train, cfg, train=True).map(lambda a, b: (a, onehot(b)))
    val_ds = make_dataset(x_val, y_val, cfg, train=False).map(lambda a, b: (a, onehot(b)))

    # Keras applies class_weight per sample; wrap it into the dataset instead
    # so it composes with the one-hot labels.
    cw = class_weights(y_train, cfg.class_weight_power)
    table = tf.constant([cw[i] for i in range(len(EMOTIONS))], tf.float32)
    train_ds = train_ds.map(lambda a, b: (a, b, tf.reduce_sum(b * table, axis=1)))

    t1 = time.time()
    hist = model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, verbose=2)
    train_seconds = time.time() - t1

    val_logits = model.predict(x_val, batch_size=512, verbose=0)
    temperature = fit_temperature(val_logits, y_val)
    test_logits = model.predict(x_test, batch_size=512, verbose=0)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / f"{cfg.name}.keras")
    tflite = out / f"{cfg.name}.tflite"
    export_tflite(model, temperature, tflite)

    test_probs = softmax(test_logits, temperature)
    result = {
        "test": metrics(test_probs, test_labels),
        "validation": metrics(softmax(val_logits, temperature), y_val),
        "calibration": {
            "temperature": temperature,
            "fitted_on": "validation (held-out 10% of FER2013 train)",
            "ece_validation_before": expected_calibration_error(softmax(val_logits), y_val),
            "ece_validation_after": expected_calibration_error(softmax(val_logits, temperature), y_val),
            "ece_test_before": expected_calibration_error(softmax(test_logits), test_labels),
            "ece_test_after": expected_calibration_error(test_probs, test_labels),
        },
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t0, 1),
        "params": int(model.count_params()),
        "config": asdict(cfg),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
    }
    (out / f"{cfg.name}_metrics.json").write_text(json.dumps(result, indent=2))
    (out / f"{cfg.name}.json").write_text(json.dumps({
        "labels": list(EMOTIONS), "input": "48x48 grayscale, albumsort.preprocess.crop_face + to_model_input",
        "temperature": temperature, "config": asdict(cfg),
        "test_accuracy": result["test"]["accuracy"]}, indent=2))
    plot_curves(hist.history, out / f"{cfg.name}_curves.png")
    plot_confusion(result["test"], out / f"{cfg.name}_confusion.png",
                   f"FER2013 PublicTest, 4 classes: {result['test']['accuracy']:.1%}")
    summary = {k: result[k] for k in ("train_seconds", "params")}
    summary["test_accuracy"] = result["test"]["accuracy"]
    summary["recall"] = {k: v["recall"] for k, v in result["test"]["per_class"].items()}
    summary["calibration"] = result["calibration"]
    print(json.dumps(summary, indent=2), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    for name, value in asdict(defaults).items():
        kind = type(value) if value is not None else int
        ap.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value, help=f"default: {value}")
    args = ap.parse_args(argv)
    train(Config(**vars(args)))
    return 0
