"""Running a .tflite model: LiteRT when installed, OpenCV's DNN module otherwise.

albumsort itself runs ONNX files (``albumsort.runtime``); this stays for
``benchmarks/model_speed.py`` (ONNX Runtime against LiteRT) and for older
``.tflite`` training outputs.

The interpreter set-up (thread count, batch resizing, silencing LiteRT's log
line) lives here once.  Importing TensorFlow is never needed.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from albumsort.runtime import file_version  # noqa: F401  (re-exported)


@contextmanager
def quiet_stderr():
    """Silence C++ log lines written straight to file descriptor 2."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class TFLiteModel:
    """One .tflite file, run on float32 batches (N, ...) -> (N, outputs)."""

    def __init__(self, path: Path, threads: int):
        self.path = path
        self._batch = None
        try:
            from ai_edge_litert.interpreter import Interpreter

            with quiet_stderr():  # LiteRT prints an INFO line about XNNPACK on every load
                self._interp = Interpreter(model_path=str(path), num_threads=threads)
            self.runtime = "litert"
        except ImportError:
            import cv2

            try:
                self._net = cv2.dnn.readNetFromTFLite(str(path))
            except cv2.error:
                raise RuntimeError(f"{path} needs the LiteRT runtime (pip install ai-edge-litert): "
                                   "OpenCV's DNN module cannot run all of its operators") from None
            self.runtime = "opencv-dnn"

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.runtime == "litert":
            it = self._interp
            if self._batch != len(x):
                it.resize_tensor_input(it.get_input_details()[0]["index"], list(x.shape))
                with quiet_stderr():
                    it.allocate_tensors()
                self._batch = len(x)
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            out = it.get_tensor(it.get_output_details()[0]["index"]).copy()
        else:
            self._net.setInput(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            out = np.asarray(self._net.forward())
        return out.reshape(len(x), -1)

    def run_batched(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        """``run`` in chunks of at most ``batch_size``.

        A short chunk is padded to the next power of two, so that the
        interpreter, which reallocates whenever the batch size changes, sees
        few sizes when it is called photo by photo.
        """
        out = []
        for i in range(0, len(x), batch_size):
            chunk = np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32)
            size = min(batch_size, 1 << max(0, len(chunk) - 1).bit_length())
            if size > len(chunk):
                pad = np.zeros((size - len(chunk),) + chunk.shape[1:], np.float32)
                out.append(self.run(np.concatenate([chunk, pad]))[: len(chunk)])
            else:
                out.append(self.run(chunk))
        return np.concatenate(out)
