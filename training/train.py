"""Train the seven-expression + readability CNN on FER+, RAF-DB, ExpW and non-faces, calibrate, evaluate, export.

    python -m training train                        # 150 epochs from ../shared/data, checkpoint every epoch
    python -m training train --stop-after 110       # end this sitting after the epoch that passes 110 minutes
    python -m training train --resume               # continue from the last checkpoint, same result
    python -m training train --int8                 # ship the int8 copy of the exported file
    python -m training ensemble --members a.keras b.keras --int8   # one file: the members' mean logits

Long runs span sittings: after every epoch the model, its optimizer state and
the history are written to ``<out>/<name>_checkpoint.keras`` and ``.json``;
``--resume`` continues from there.  Every epoch's order and augmentation are
drawn from (seed, epoch, batch) alone (stateless random ops), so a resumed run
trains on exactly the batches an uninterrupted one would.  The loaded crops
are cached (``ALBUMSORT_TRAINING_CACHE``), so a resumed sitting starts in
seconds.  The full config is written next to the model with its metrics.
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
    epochs: int = 150
    batch_size: int = 64
    arch: str = "vgg"
    """``vgg``: the recipe's small CNN (``training.model.build_model``, ``width``, ``stem_stride``), from scratch.
    ``mobilefacenet``: the pretrained face-recognition network with an expression head
    (``training.model.pretrained_mobilefacenet``), fine-tuned: a member that learned faces from millions of
    identities (issue 24)."""
    width: int = 24
    dropout: float = 0.25
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    label_smoothing: float = 0.05
    focal_gamma: float = 0.0
    """0: cross-entropy (the recipe).  > 0: focal loss, each face's cross-entropy scaled by (1 - p)**gamma, so
    faces the model already reads surely weigh less and the confusable ones (sad/neutral, disgust/angry) more.
    Measured 2026-12-06 as an 8-epoch fine-tune (gamma 2) of a 150-epoch run: no list got more precise (run 12
    in models/README.md); from scratch it is untried."""
    class_weight_power: float = 0.7
    augment_strength: float = 0.7
    jpeg_probability: float = 0.2
    unreadable_probability: float = 0.05
    facelike_probability: float = 0.03
    facelike_repeat: int = 5
    expw_repeat: int = 2
    rafdb_repeat: int = 1
    ferplus_contempt: str = "drop"
    fer_fraction: float = 1.0
    input_size: int = 96
    channels: int = 1
    stem_stride: int = 2
    flip_tta: bool = True
    zoom_tta: float = 0.0
    """Export only: the file also reads the centre ``zoom_tta`` of each face, resized back (``training.model.
    views_mean``); 0 = not.  The shipped three-network file is ``--no-flip-tta --zoom-tta 0.9`` (the face and
    its centre, no mirror): at the same passes the centre view measured more accurate than the mirror and
    1.1-1.3x as fast in ONNX Runtime (models/README.md, "The shipped file (three networks)").  A single
    run's own export keeps the recipe's mirror (``flip_tta``) and no centre view."""
    val_fraction: float = 0.1
    seed: int = 1234
    limit_per_class: int | None = None
    threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    resume: bool = False
    stop_after: float = 0.0
    """Minutes: end the sitting after the first epoch that passes them (0: run to the end); --resume continues."""
    soften_to_px: int | None = None
    """Readable faces (a third of each batch) are softened down to this many px of detail; None: half the
    input side (the recipe of the 40-epoch and 150-epoch runs).  ``benchmarks/smile_proxy.py`` measures what
    it does to the readability of soft web faces."""
    run_seed: int | None = None
    """Seed of the initial weights, the batch order, the augmentation and dropout; None: ``seed``.  ``seed``
    alone decides the data and the held-out split, so runs that differ only in ``run_seed`` hold out the same
    faces and can be ensembled (``python -m training ensemble``)."""
    int8: bool = False
    """Ship the int8 copy of the exported file (``training.export.quantize_int8``); the float file is kept
    beside it as ``<name>_float.onnx``.  Export only: a run may resume with or without it."""
    init: str | None = None
    """A ``.keras`` model to start from (fine-tuning): its weights, with a fresh optimiser and schedule over
    ``epochs``; None: from scratch.  Its input and outputs must be the recipe's."""


def draw_seed(cfg: Config) -> int:
    """The seed of everything random in training except the data split (``Config.run_seed``)."""
    return cfg.seed if cfg.run_seed is None else cfg.run_seed


RUN_ONLY = ("threads", "resume", "stop_after", "out", "int8", "zoom_tta")
"""Config fields that may differ between the sittings of one run (``out``: a checkpoint may be moved, e.g.
into the repository between sittings, and resumed from there)."""


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


def make_dataset(x: np.ndarray, t: np.ndarray, cfg: Config, train: bool, weights: np.ndarray | None = None,
                 first_epoch: int = 0):
    """(input, soft target[, sample weight]) batches; training batches are shuffled and augmented.

    Training batches run from ``first_epoch`` to ``cfg.epochs`` (``len(x) // batch_size`` per epoch).
    Batch i of epoch e holds the faces of that epoch's stateless permutation, augmented with draws seeded
    by (``draw_seed(cfg)``, e, i) alone: a run resumed at epoch e sees what an uninterrupted run would have seen.
    """
    import tensorflow as tf

    from training.augment import Rng, augment_batch, jpeg_artefacts, make_facelike, make_unreadable

    if not train:
        return tf.data.Dataset.from_tensor_slices((x, t)).batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)
    n, size = len(x), cfg.batch_size
    per_epoch = n // size
    xs, ts = tf.constant(x), tf.constant(t)
    w = tf.constant(weights if weights is not None else np.ones(t.shape[1], np.float32))
    steps = np.array([(e, i) for e in range(first_epoch, cfg.epochs) for i in range(per_epoch)], np.int64)

    def batch(step):
        epoch_seed = tf.stack([tf.constant(draw_seed(cfg), tf.int64), step[0]])
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=epoch_seed)
        idx = order[step[1] * size:(step[1] + 1) * size]
        a, b = tf.gather(xs, idx), tf.gather(ts, idx)
        rng = Rng(tf.random.experimental.stateless_fold_in(epoch_seed, step[1]))
        if cfg.jpeg_probability > 0:
            a = jpeg_artefacts(a, rng, cfg.jpeg_probability)
        if cfg.augment_strength > 0:
            a = augment_batch(a, rng, cfg.augment_strength, cfg.input_size, cfg.channels, cfg.soften_to_px)
        if cfg.unreadable_probability > 0:
            a, b = make_unreadable(a, b, rng, cfg.unreadable_probability, cfg.input_size)
        if cfg.facelike_probability > 0:
            a, b = make_facelike(a, b, rng, cfg.facelike_probability, cfg.input_size, cfg.channels)
        return (a, b, tf.reduce_sum(b * w, axis=1)) if weights is not None else (a, b)

    ds = tf.data.Dataset.from_tensor_slices(steps)
    return ds.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


DATA_FIELDS = ("data", "expw", "rafdb", "nonfaces", "fer_fraction", "input_size", "channels", "val_fraction",
               "seed", "limit_per_class", "facelike_repeat", "expw_repeat", "rafdb_repeat", "ferplus_contempt")
"""The config fields that decide what ``load_all`` returns (the key of its on-disk cache)."""


def load_all_cached(cfg: Config) -> dict:
    """``load_all``, cached on disk by the data fields of ``cfg`` and the source of the loaders.

    Loading decodes ~50,000 images and runs the album's crop on each (minutes);
    a resumed sitting or a second run of the same data reads one file instead.
    """
    import hashlib

    import albumsort.preprocess
    import training.data

    key = json.dumps({k: getattr(cfg, k) for k in DATA_FIELDS}, sort_keys=True)
    for mod in (training.data, albumsort.preprocess):
        key += Path(mod.__file__).read_text()
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    base = Path(os.environ.get("ALBUMSORT_TRAINING_CACHE", Path.home() / ".cache" / "albumsort-training"))
    path = base / f"data-{digest}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            d: dict = {}
            for k in z.files:
                name, _, part = k.partition("/")
                if part:
                    d.setdefault(name, [None, None])[int(part)] = z[k]
                else:
                    d[name] = z[k].item() if z[k].ndim == 0 else z[k]
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    d = load_all(cfg)
    flat = {}
    for k, v in d.items():
        if isinstance(v, tuple):
            flat[f"{k}/0"], flat[f"{k}/1"] = v
        elif v is not None:
            flat[k] = np.asarray(v)
    base.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **flat)
    tmp.replace(path)
    return d


def load_all(cfg: Config) -> dict:
    """Every split training and its report need, as (uint8 crops, targets (N, K)).

    K is 8 (``TARGETS``: the seven expressions, then unreadable).
    """
    from albumsort.faces import make_detector
    from training.data import (
        UNREADABLE,
        DetectionCache,
        load_expw,
        load_fer,
        load_nonfaces,
        load_rafdb,
        one_hot,
        stratified_split,
    )

    size, ch = cfg.input_size, cfg.channels
    cache = DetectionCache(make_detector())
    d = {}
    images, targets = load_fer(cfg.data, "train", cfg.limit_per_class, size=size, channels=ch,
                               contempt=cfg.ferplus_contempt)
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
    d["train"] = (np.concatenate([x for x, _ in parts_train]), np.concatenate([t for _, t in parts_train]))
    d["val"] = (np.concatenate([x for x, _ in parts_val]), np.concatenate([t for _, t in parts_val]))
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


def checkpoint_paths(cfg: Config) -> tuple[Path, Path]:
    out = Path(cfg.out)
    return out / f"{cfg.name}_checkpoint.keras", out / f"{cfg.name}_checkpoint.json"


def save_checkpoint(model, cfg: Config, epoch: int, history: dict, seconds: float) -> None:
    """The model with its optimizer state and the run's history after ``epoch`` epochs (atomic replace)."""
    ckpt, state = checkpoint_paths(cfg)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.with_name(ckpt.stem + ".tmp.keras")
    model.save(tmp)
    tmp.replace(ckpt)
    st = {"epoch": epoch, "history": history, "train_seconds": seconds, "config": asdict(cfg)}
    tmp_state = state.with_suffix(".tmp")
    tmp_state.write_text(json.dumps(st, indent=1))
    tmp_state.replace(state)


def start_model(cfg: Config, n_outputs: int):
    """A new network, or the weights of ``cfg.init`` (fine-tuning), checked against the recipe's shapes."""
    from training.model import build_model, pretrained_mobilefacenet

    if cfg.arch not in ("vgg", "mobilefacenet"):
        raise SystemExit(f"--arch {cfg.arch}: choose vgg or mobilefacenet")
    if not cfg.init and cfg.arch == "mobilefacenet":
        return pretrained_mobilefacenet(cfg.dropout, n_outputs, cfg.input_size, cfg.channels)
    if not cfg.init:
        return build_model(cfg.width, cfg.dropout, n_outputs, cfg.input_size, cfg.channels, cfg.stem_stride)
    import keras

    if not Path(cfg.init).is_file():
        raise SystemExit(f"--init: no model file at {cfg.init}")
    model = keras.models.load_model(cfg.init, compile=False)
    have = (tuple(model.input_shape[1:]), int(model.output_shape[-1]))
    want = ((cfg.input_size, cfg.input_size, cfg.channels), n_outputs)
    if have != want:
        raise SystemExit(f"--init: {cfg.init} reads {have[0]} and gives {have[1]} outputs; this run needs {want[0]} "
                         f"and {want[1]}")
    print(f"starting from the weights of {cfg.init}", flush=True)
    return model


def resume_differences(cfg: Config, saved: dict) -> list[str]:
    """The settings in which ``cfg`` differs from a checkpoint's ``saved`` config (``RUN_ONLY`` ones aside); a
    setting the checkpoint predates counts as its default, so adding one to the recipe strands no run."""
    mine, defaults = asdict(cfg), asdict(Config())
    return [k for k in mine if k not in RUN_ONLY and mine[k] != saved.get(k, defaults[k])]


def loss_of(cfg: Config):
    """The training loss: cross-entropy on the soft targets (label-smoothed), or its focal form (``focal_gamma``)."""
    import keras

    if cfg.focal_gamma > 0:
        return keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=cfg.focal_gamma, from_logits=True,
                                                         label_smoothing=cfg.label_smoothing)
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing)


def fit(cfg: Config, x_train, t_train, x_val, t_val):
    """Train epoch by epoch from scratch or from the checkpoint; returns (model, history, seconds, finished)."""
    import keras

    import training.model  # noqa: F401  (registers the Standardize layer for loading the checkpoint)

    ckpt, state = checkpoint_paths(cfg)
    steps = len(x_train) // cfg.batch_size
    if cfg.resume and state.is_file():
        st = json.loads(state.read_text())
        differ = resume_differences(cfg, st["config"])
        if differ:
            raise SystemExit(f"--resume: the checkpoint was trained with other settings ({', '.join(differ)}); "
                             f"give the same ones or start a new --out")
        model = keras.models.load_model(ckpt)
        start, history, seconds = st["epoch"], st["history"], st["train_seconds"]
        print(f"resumed from {ckpt} after epoch {start} of {cfg.epochs}", flush=True)
    else:
        if cfg.resume:
            print(f"--resume: no checkpoint at {state}; starting from scratch", flush=True)
        model = start_model(cfg, t_train.shape[1])
        total, warm = max(1, steps * cfg.epochs), steps * cfg.warmup_epochs
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warm else cfg.lr, decay_steps=max(1, total - warm), warmup_target=cfg.lr if warm else None,
            warmup_steps=warm)
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
            loss=loss_of(cfg),
            metrics=["accuracy"])
        start, history, seconds = 0, {}, 0.0
    weights = class_weights(t_train, cfg.class_weight_power)
    if start >= cfg.epochs:
        return model, history, seconds, True
    val_ds = make_dataset(x_val, t_val, cfg, train=False)
    train_ds = make_dataset(x_train, t_train, cfg, train=True, weights=weights, first_epoch=start)
    sitting = time.time()
    state_of = {"t": 0.0, "stopped": False}

    class Checkpoints(keras.callbacks.Callback):
        """Per epoch: dropout's random stream from the epoch alone; after it, the checkpoint; maybe stop."""

        def on_epoch_begin(self, epoch, logs=None):
            state_of["t"] = time.time()
            for v in self.model.variables:
                if "seed_generator_state" in v.path:
                    v.assign(np.array([draw_seed(cfg) * 1000 + epoch, 0], dtype=v.dtype))

        def on_epoch_end(self, epoch, logs=None):
            nonlocal seconds
            for k, v in (logs or {}).items():
                history.setdefault(k, []).append(float(v))
            seconds += time.time() - state_of["t"]
            save_checkpoint(self.model, cfg, epoch + 1, history, seconds)
            if cfg.stop_after and time.time() - sitting > cfg.stop_after * 60 and epoch + 1 < cfg.epochs:
                print(f"stopped after epoch {epoch + 1} of {cfg.epochs} ({(time.time() - sitting) / 60:.0f} min "
                      f"this sitting); continue with --resume", flush=True)
                state_of["stopped"] = True
                self.model.stop_training = True

    model.fit(train_ds, validation_data=val_ds, initial_epoch=start, epochs=cfg.epochs, steps_per_epoch=steps,
              callbacks=[Checkpoints()], verbose=2)
    if state_of["stopped"]:
        return model, history, seconds, False
    return model, history, seconds, True


def train(cfg: Config) -> dict | None:
    """Train (or resume) to ``cfg.epochs``, then calibrate, export and evaluate; None when a sitting stops early."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
    tf.config.threading.set_inter_op_parallelism_threads(cfg.threads)
    seed_everything(draw_seed(cfg))
    from training.data import TARGETS

    t0 = time.time()
    data = load_all_cached(cfg)
    x_train, t_train = to_model_input(data["train"][0]), data["train"][1]
    x_val, t_val = to_model_input(data["val"][0]), data["val"][1]
    print(f"data: {len(x_train)} train, {len(x_val)} validation; class mass "
          f"{dict(zip(TARGETS, np.round(t_train.sum(0)).astype(int).tolist(), strict=True))} "
          f"({time.time() - t0:.1f} s)",
          flush=True)
    model, history, train_seconds, finished = fit(cfg, x_train, t_train, x_val, t_val)
    if not finished:
        return None
    return finish(cfg, model, data, history, train_seconds, t0)


def finish(cfg: Config, model, data: dict, history: dict, train_seconds: float, t0: float,
           members: list[str] | None = None, member_views: list[str] | None = None) -> dict:
    """Calibrate a trained logits model on the validation share, export it (int8 with ``cfg.int8``), evaluate
    the exported file on every held-out set and write its card, metrics and plots into ``cfg.out``.

    The figures are those of the ONNX file albumsort will run, read through albumsort's own runtime.
    """
    import keras
    import tensorflow as tf

    from training.data import TARGETS
    from training.evaluate import (
        facelike_metrics,
        four_way,
        list_view,
        metrics,
        plot_confusion,
        predict,
        readability_metrics,
    )
    from training.export import calibrated, export_onnx, max_difference, quantize_int8
    from training.model import views_mean

    x_val, t_val = to_model_input(data["val"][0]), data["val"][1]
    val_logits = views_mean(model, cfg.flip_tta, cfg.zoom_tta).predict(x_val, batch_size=512, verbose=0)
    cal = calibrate(val_logits, t_val)
    t_e, t_r = cal["emotion_temperature"], cal["readability_temperature"]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / f"{cfg.name}.keras")
    wrapped = calibrated(model, t_e, t_r, cfg.flip_tta, cfg.zoom_tta)
    shipped = out / f"{cfg.name}.onnx"
    float_file = out / f"{cfg.name}_float.onnx" if cfg.int8 else shipped
    export_onnx(wrapped, float_file)
    result: dict = {"calibration": cal, "onnx_max_difference_vs_keras": max_difference(wrapped, float_file,
                                                                                          x_val[:1000])}
    card = {
        "labels": list(TARGETS[:-1]),
        "outputs": "seven expression probabilities (each among all seven), then readability",
        "input": f"{cfg.input_size}x{cfg.input_size} {'RGB' if cfg.channels == 3 else 'grayscale'}, "
                 "albumsort.preprocess.crop_face + to_model_input",
        "input_size": cfg.input_size, "channels": cfg.channels,
        "emotion_temperature": t_e, "readability_temperature": t_r, "flip_tta": cfg.flip_tta,
        "zoom_tta": cfg.zoom_tta,
        "int8": cfg.int8, "members": members, "member_views": member_views, "config": asdict(cfg)}
    (out / f"{cfg.name}.json").write_text(json.dumps(card, indent=2))
    if cfg.int8:
        x_train = data["train"][0]
        pick = np.random.default_rng(cfg.seed).choice(len(x_train), min(512, len(x_train)), replace=False)
        quantize_int8(float_file, shipped, to_model_input(x_train[np.sort(pick)]))
        (out / f"{cfg.name}_float.json").write_text(json.dumps(card | {"int8": False}, indent=2))
    val_probs, val_readability = predict(shipped, data["val"][0])
    if cfg.int8:
        p8, p32 = val_probs, predict(float_file, data["val"][0])[0]
        result["int8_vs_float"] = {"validation_top_expression_differs": float(np.mean(p8.argmax(1) != p32.argmax(1))),
                                   "validation_max_probability_difference": float(np.abs(p8 - p32).max())}

    for key in ("test_ferplus", "test_fer2013", "test_expw", "test_rafdb"):
        if key in data:
            images, targets = data[key]
            probs, readability = predict(shipped, images)
            labels = targets.argmax(1)
            result[key] = four_way(probs, labels)
            result[key]["readability"] = readability_metrics(readability)
            if key in ("test_ferplus", "test_rafdb"):
                result[key + "_lists"] = list_view(probs, labels)
    wider = Path(cfg.nonfaces or "") / "wider-face-val-sample"
    if (wider / "boxes.csv").is_file():
        from training.data import load_facelike

        fl = load_facelike(wider, share="test", size=cfg.input_size, channels=cfg.channels)
        p_fl, r_fl = predict(shipped, fl["crops"])
        result["facelike_held_out"] = facelike_metrics(p_fl, r_fl, fl["kinds"], fl["det_score"])
    face = t_val.argmax(1) < len(TARGETS) - 1
    result["validation"] = metrics(val_probs[face], t_val[face].argmax(1))
    result["validation"]["readability"] = readability_metrics(val_readability[face], val_readability[~face])
    result.update({
        "expw_detector_found": data.get("expw_detector_found"),
        "rafdb_detector_found": data.get("rafdb_detector_found"),
        "n_facelike_train": data.get("n_facelike"),
        "n_train": int(len(data["train"][0])), "n_nonfaces": data.get("n_nonfaces"),
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t0, 1),
        "params": int(model.count_params()),
        "members": members,
        "member_views": member_views,
        "config": asdict(cfg),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "history": history,
    })
    (out / f"{cfg.name}_metrics.json").write_text(json.dumps(result, indent=2))
    headline = result.get("test_ferplus", result["validation"])
    (out / f"{cfg.name}.json").write_text(json.dumps(card | {"test_accuracy": headline["accuracy"]}, indent=2))
    if history:
        plot_curves(history, out / f"{cfg.name}_curves.png")
    plot_confusion(headline, out / f"{cfg.name}_confusion.png",
                   f"FER2013 PublicTest, FER+ majority, 4 classes: {headline['accuracy']:.1%}")
    summary = {k: result[k] for k in ("train_seconds", "params")}
    for key in ("test_ferplus", "test_fer2013", "test_expw", "test_rafdb"):
        if key in result:
            summary[key] = {"accuracy": result[key]["accuracy"],
                            "recall": {k: v["recall"] for k, v in result[key]["per_class"].items()}}
    if "test_rafdb_lists" in result:
        lv = result["test_rafdb_lists"]
        summary["rafdb_val_lists"] = {"seven_class_accuracy": lv["seven_class_accuracy"],
                                      **{e: {"precision": v["precision"], "recall": v["recall"]}
                                         for e, v in lv["lists"].items()}}
    summary["calibration"] = cal
    if "int8_vs_float" in result:
        summary["int8_vs_float"] = result["int8_vs_float"]
    print(json.dumps(summary, indent=2), flush=True)
    return result


def ensemble(cfg: Config, members: list[str], views: list[str] | None = None) -> dict:
    """Average the logits of trained models (``.keras`` files of this recipe) into one model, then calibrate,
    export and evaluate it as ``finish`` does a single run.

    ``views`` (``--member-views``, one ``training.model.VIEWS`` name per member) gives each member its own
    test-time views, in place of the file-wide ``flip_tta``/``zoom_tta``: the pretrained member (``--arch
    mobilefacenet``) costs several small CNNs' passes, so it reads the face once while they also read its centre.

    Each member's card (the ``.json`` beside it) must record the data fields (``DATA_FIELDS``) of ``cfg``:
    the same seed and shares mean the same held-out faces, so no member has trained on the validation share
    the temperatures are fitted on.  A member is never overwritten by the ensemble's files.
    """
    import keras

    import training.model as tm

    missing = [m for m in members if not Path(m).is_file()]
    if missing:
        raise SystemExit(f"--members: no model file at {', '.join(missing)}")
    for m in members:
        card = Path(m).with_suffix(".json")
        if not card.is_file():
            raise SystemExit(f"--members: {m} has no card ({card.name}) saying what it was trained on")
        theirs = json.loads(card.read_text()).get("config", {})
        differ = [k for k in DATA_FIELDS if theirs.get(k) != getattr(cfg, k)]
        if differ:
            raise SystemExit(f"--members: {m} was trained with other data settings ({', '.join(differ)}); "
                             "its held-out share would not be this run's")
    if any((Path(cfg.out) / f"{cfg.name}.keras").resolve() == Path(m).resolve() for m in members):
        raise SystemExit(f"--out {cfg.out} --name {cfg.name} would overwrite a member; choose another")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
    tf.config.threading.set_inter_op_parallelism_threads(cfg.threads)
    seed_everything(cfg.seed)
    t0 = time.time()
    data = load_all_cached(cfg)
    try:
        model = tm.average_logits([keras.models.load_model(m, compile=False) for m in members], views)
    except ValueError as e:
        raise SystemExit(f"--member-views: {e}") from None
    want = (cfg.input_size, cfg.input_size, cfg.channels)
    if tuple(model.input_shape[1:]) != want:
        raise SystemExit(f"--members read {tuple(model.input_shape[1:])}; this recipe reads {want}")
    if views is not None:  # the views are inside each member: none for the whole file
        from dataclasses import replace

        print("--member-views: each member reads its own views; --flip-tta and --zoom-tta are not used", flush=True)
        cfg = replace(cfg, flip_tta=False, zoom_tta=0.0)
    return finish(cfg, model, data, {}, 0.0, t0, members=[str(m) for m in members], member_views=views)


OPTIONAL_TYPES = {"run_seed": int, "limit_per_class": int, "soften_to_px": int, "init": str}
"""The argument type of each Config field whose default is None."""


def parse_config(argv: list[str] | None = None) -> Config:
    """The command line as a ``Config``: one option per field, defaults from ``Config``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    for name, value in asdict(defaults).items():
        if isinstance(value, bool):
            ap.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value,
                            help=f"default: {value}")
            continue
        kind = type(value) if value is not None else OPTIONAL_TYPES[name]
        ap.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value, help=f"default: {value}")
    return Config(**vars(ap.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    return 0 if train(parse_config(argv)) is not None else 3


def ensemble_main(argv: list[str] | None = None) -> int:
    """``python -m training ensemble --members a.keras b.keras [train's options]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training ensemble", add_help=False)
    ap.add_argument("--members", nargs="+", help="the .keras files of trained models to average")
    ap.add_argument("--member-views", nargs="+", help="one view set per member (training.model.VIEWS)")
    known, rest = ap.parse_known_args(argv)
    if not known.members:
        if "-h" in rest or "--help" in rest:
            print("python -m training ensemble --members A.keras B.keras [...] [--member-views face+centre face ...] "
                  "[--int8] [train's options: --out, --name, data settings]\n\n" + (ensemble.__doc__ or ""))
            return 0
        raise SystemExit("python -m training ensemble: --members A.keras B.keras [...] is required")
    ensemble(parse_config(rest), known.members, known.member_views)
    return 0
