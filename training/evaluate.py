"""Scoring a model on FER2013-layout folders: accuracy, per-class precision/recall, confusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from albumsort.labels import EMOTIONS, EXPRESSIONS
from albumsort.preprocess import to_model_input


def metrics(probs: np.ndarray, labels: np.ndarray, names: tuple = EXPRESSIONS) -> dict:
    """Accuracy, per-class precision and recall, confusion (rows = true class), n, over ``names``."""
    pred = probs.argmax(axis=1)
    k = len(names)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for i, name in enumerate(names):
        tp = confusion[i, i]
        per_class[name] = {
            "precision": float(tp / confusion[:, i].sum()) if confusion[:, i].sum() else 0.0,
            "recall": float(tp / confusion[i].sum()) if confusion[i].sum() else 0.0,
            "n": int(confusion[i].sum()),
        }
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": list(names),
        "n": int(len(labels)),
    }


def four_way(probs: np.ndarray, labels: np.ndarray) -> dict:
    """The four-class figures comparable with earlier models and peers: faces labelled with one of the four
    emotions, each read as the most probable of the four (the other expressions' columns ignored)."""
    m = labels < len(EMOTIONS)
    return metrics(probs[m][:, :len(EMOTIONS)], labels[m], EMOTIONS)


def list_view(probs: np.ndarray, labels: np.ndarray) -> dict:
    """What the lists hold: for each expression E, the faces whose top expression among all seven is E.

    precision = share of those faces labelled E; recall = share of the faces labelled E that are there.
    Faces of every expression count (their natural mix), as in an album.  Also the seven-class accuracy.
    """
    top = probs.argmax(1)
    out = {"seven_class_accuracy": float((top == labels).mean()) if len(labels) else float("nan"),
           "n": int(len(labels)), "lists": {}}
    for i, e in enumerate(EXPRESSIONS):
        listed, truth = top == i, labels == i
        out["lists"][e] = {"precision": float((listed & truth).sum() / max(1, listed.sum())),
                           "recall": float((listed & truth).sum() / max(1, truth.sum())),
                           "listed": int(listed.sum()), "labelled": int(truth.sum())}
    return out


def heads_from_logits(logits: np.ndarray, emotion_temperature: float = 1.0,
                      readability_temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(expression probabilities (N, K), readability (N,)) from the network's K+1 logits, as the export computes."""
    from training.calibration import readability_logits, softmax

    probs = softmax(logits[:, :-1], emotion_temperature)
    return probs, softmax(readability_logits(logits), readability_temperature)[:, 0]


def readability_metrics(faces: np.ndarray, nonfaces: np.ndarray | None = None, threshold: float = 0.5) -> dict:
    """How readability separates faces from non-faces: shares on each side of ``threshold``, AUC."""
    from training.calibration import auc

    out = {"faces_mean": float(np.mean(faces)) if len(faces) else float("nan"),
           "faces_below": float(np.mean(faces < threshold)) if len(faces) else float("nan"),
           "threshold": threshold, "n_faces": int(len(faces))}
    if nonfaces is not None:
        out.update({"nonfaces_mean": float(np.mean(nonfaces)) if len(nonfaces) else float("nan"),
                    "nonfaces_at_or_above": float(np.mean(nonfaces >= threshold)) if len(nonfaces) else float("nan"),
                    "auc": auc(faces, nonfaces), "n_nonfaces": int(len(nonfaces))})
    return out


def predict(model_path: str | Path, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, 7), readability (N,)) for uint8 crops from an .onnx or .keras model.

    An .onnx model is run through albumsort's own runtime (no Keras import),
    so the figures are the ones the album pipeline gets.  A .keras model gets
    the temperatures and test-time views recorded in the .json beside it.
    """
    model_path = Path(model_path)
    if model_path.suffix == ".onnx":
        from albumsort.emotions import EmotionModel

        return EmotionModel(model_path).score_crops(images, batch_size=batch_size)
    import json

    import keras

    from training.model import views_mean  # (also registers the Standardize layer for loading)

    meta_path = model_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    model = keras.models.load_model(model_path, compile=False)
    views = views_mean(model, bool(meta.get("flip_tta")), float(meta.get("zoom_tta") or 0.0))
    logits = views.predict(to_model_input(images), batch_size=batch_size, verbose=0)
    return heads_from_logits(logits, meta.get("emotion_temperature", 1.0), meta.get("readability_temperature", 1.0))


def facelike_metrics(probs: np.ndarray, readability: np.ndarray, kinds: np.ndarray, det_score: np.ndarray,
                     min_confidence: float = 0.20) -> dict:
    """How face-like things (masks, paint, helmets, printed faces) would rank, by kind and for ordinary faces.

    A face ranks when ``det_score x readability x top probability >= min_confidence``
    (albumsort.ranking); for face-like things the share that would rank as sad or angry is what
    users see as a wrong list entry.
    """
    conf = det_score * readability * probs.max(1)
    kept = conf >= min_confidence
    top = np.array(EXPRESSIONS[:probs.shape[1]])[probs.argmax(1)]
    out = {}
    groups = {"face-like (all kinds)": kinds != "ordinary", "ordinary faces": kinds == "ordinary"}
    groups.update({k: kinds == k for k in sorted(set(kinds.tolist())) if k != "ordinary"})
    for name, m in groups.items():
        n = int(m.sum())
        if not n:
            continue
        found = m & (det_score > 0)
        out[name] = {"n": n, "found": int(found.sum()),
                     "readability_mean": float(readability[found].mean()) if found.any() else float("nan"),
                     "ranked": float(kept[m].mean()),
                     "ranked_sad_or_angry": float((kept & m & np.isin(top, ["sad", "angry"])).sum() / n)}
    return out


def plot_confusion(result: dict, path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4) if len(result["labels"]) <= 4 else (6.4, 5.6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = result["labels"]
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 4 else 0)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title or f"accuracy {result['accuracy']:.1%} (n={result['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_input(model_path: str | Path) -> tuple[int, int]:
    """(side, channels) the model reads, from the card beside it (48 px grey for models older than the field)."""
    meta = Path(model_path).with_suffix(".json")
    card = json.loads(meta.read_text()) if meta.is_file() else {}
    return int(card.get("input_size", 48)), int(card.get("channels", 1))


def evaluate(model_path: str | Path, data: str | Path, confusion_png: str | Path | None = None,
             expw: str | Path | None = None, nonfaces: str | Path | None = None,
             rafdb: str | Path | None = None, facelike: str | Path | None = None) -> dict:
    """Score ``model_path`` on the emotion folders under ``data``; other folders are ignored.

    The top-level keys are the folder labels' figures (FER2013's own labels
    for FER2013).  When ``ferplus.csv`` sits in ``data``'s parent, ``ferplus``
    holds the figures on the FER+ majority labels; ``expw`` the held-out ExpW
    share cut as the album cuts it; ``readability`` how the readability score
    treats these faces and, with ``nonfaces``, the held-out non-face crops;
    ``rafdb`` the RAF-DB validation share; ``facelike`` (the WIDER sample folder) how the
    labelled masks, paint, helmets and printed faces would rank (``facelike_metrics``).  Crops are made at the side and
    channels the model declares.
    """
    from training.data import load_ferplus, load_folder

    data = Path(data)
    size, ch = model_input(model_path)
    images, labels = load_folder(data, size=size, channels=ch)
    probs, readability = predict(model_path, images)
    result = four_way(probs, labels)
    result["seven"] = metrics(probs, labels, EXPRESSIONS[:probs.shape[1]]) if probs.shape[1] > 4 else None
    result["model"] = str(model_path)
    result["data"] = str(data)
    face_read = [readability]
    if (data.parent / "ferplus.csv").is_file():
        xf, tf_ = load_ferplus(data.parent, data.name, labels="majority", size=size, channels=ch)
        pf, rf = predict(model_path, xf)
        result["ferplus"] = four_way(pf, tf_.argmax(1))
        result["ferplus_lists"] = list_view(pf, tf_.argmax(1))
    if expw:
        from training.data import load_expw

        xe, te, found = load_expw(expw, "test", size=size, channels=ch)
        pe, re_ = predict(model_path, xe)
        result["expw"] = four_way(pe, te.argmax(1)) | {"detector_found": found}
        face_read.append(re_)
    if facelike:
        from training.data import load_facelike

        fl = load_facelike(facelike, share=None, size=size, channels=ch)
        pl, rl = predict(model_path, fl["crops"])
        result["facelike"] = facelike_metrics(pl, rl, fl["kinds"], fl["det_score"])
        held = load_facelike(facelike, share="test", size=size, channels=ch)
        pl, rl = predict(model_path, held["crops"])
        result["facelike_held_out"] = facelike_metrics(pl, rl, held["kinds"], held["det_score"])
    if rafdb:
        from training.data import load_rafdb

        xr, tr, found = load_rafdb(rafdb, "val", size=size, channels=ch)
        pr, rr = predict(model_path, xr)
        result["rafdb_val"] = four_way(pr, tr.argmax(1)) | {"detector_found": found}
        result["rafdb_val_lists"] = list_view(pr, tr.argmax(1))
        face_read.append(rr)
    nf = None
    if nonfaces:
        from training.data import load_nonfaces

        nf = predict(model_path, load_nonfaces(nonfaces, share="test", size=size, channels=ch))[1]
    result["readability"] = readability_metrics(np.concatenate(face_read), nf)
    if confusion_png:
        head = result.get("ferplus", result)
        plot_confusion(head, confusion_png, f"{Path(model_path).name} on {data.name}"
                       f"{' (FER+ majority)' if 'ferplus' in result else ''}: {head['accuracy']:.1%}")
        result["confusion_png"] = str(confusion_png)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training evaluate", description=__doc__)
    ap.add_argument("--model", required=True, help="an .onnx or .keras emotion model")
    ap.add_argument("--data", required=True, help="folder holding angry/ happy/ sad/ neutral/ (others ignored)")
    ap.add_argument("--expw", default=None, help="ExpW folder: also score its held-out share (needs the detector)")
    ap.add_argument("--rafdb", default=None, help="RAF-DB folder: also score its validation share (needs the detector)")
    ap.add_argument("--facelike", default=None,
                    help="wider-face-val-sample folder: how its labelled masks, paint, helmets, printed faces rank")
    ap.add_argument("--nonfaces", default=None,
                    help="shared data folder: also score the held-out non-face crops for readability")
    ap.add_argument("--confusion", default=None, help="PNG to write (default: confusion.png next to the model)")
    args = ap.parse_args(argv)
    png = args.confusion or str(Path(args.model).with_name(Path(args.model).stem + "_confusion.png"))
    print(json.dumps(evaluate(args.model, args.data, png, args.expw, args.nonfaces, args.rafdb,
                                args.facelike), indent=2))
    return 0
