"""Scoring a model on FER2013-layout folders: accuracy, per-class precision/recall, confusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from albumsort.preprocess import EMOTIONS, to_model_input


def metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, per-class precision and recall, confusion (rows = true class), n."""
    pred = probs.argmax(axis=1)
    k = len(EMOTIONS)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for i, name in enumerate(EMOTIONS):
        tp = confusion[i, i]
        per_class[name] = {
            "precision": float(tp / confusion[:, i].sum()) if confusion[:, i].sum() else 0.0,
            "recall": float(tp / confusion[i].sum()) if confusion[i].sum() else 0.0,
            "n": int(confusion[i].sum()),
        }
    return {
        "accuracy": float((pred == labels).mean()),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": list(EMOTIONS),
        "n": int(len(labels)),
    }


def predict(model_path: str | Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities for uint8 crops (N, 48, 48) from a .tflite or .keras model.

    A .tflite model is run through albumsort's own runtime, so the figures are
    the ones the album pipeline gets.
    """
    model_path = Path(model_path)
    if model_path.suffix == ".tflite":
        from albumsort.emotions import EmotionModel

        return EmotionModel(model_path).predict_crops(images, batch_size=batch_size)
    import keras

    import training.model  # noqa: F401  (registers the Standardize layer for loading)
    from training.calibration import softmax

    model = keras.models.load_model(model_path, compile=False)
    out = model.predict(to_model_input(images), batch_size=batch_size, verbose=0)
    if model.layers[-1].name != "probabilities":
        out = softmax(out)
    return out


def plot_confusion(result: dict, path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title or f"accuracy {result['accuracy']:.1%} (n={result['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(model_path: str | Path, data: str | Path, confusion_png: str | Path | None = None) -> dict:
    """Score ``model_path`` on the emotion folders under ``data``; other folders are ignored."""
    from training.data import load_folder

    images, labels = load_folder(data)
    result = metrics(predict(model_path, images), labels)
    result["model"] = str(model_path)
    result["data"] = str(data)
    if confusion_png:
        plot_confusion(result, confusion_png, f"{Path(model_path).name} on {Path(data).name}: "
                       f"{result['accuracy']:.1%}")
        result["confusion_png"] = str(confusion_png)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training evaluate", description=__doc__)
    ap.add_argument("--model", required=True, help="a .tflite or .keras emotion model")
    ap.add_argument("--data", required=True, help="folder holding angry/ happy/ sad/ neutral/ (others ignored)")
    ap.add_argument("--confusion", default=None, help="PNG to write (default: confusion.png next to the model)")
    args = ap.parse_args(argv)
    png = args.confusion or str(Path(args.model).with_name(Path(args.model).stem + "_confusion.png"))
    print(json.dumps(evaluate(args.model, args.data, png), indent=2))
    return 0
