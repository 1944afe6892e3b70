"""The one face preprocessing shared by training and the album pipeline.

The emotion model only sees what this module produces, so the crop, the
alignment, the resize and the normalisation live here once: training feeds
FER2013 crops through :func:`to_model_input`, the album pipeline feeds
detector boxes through :func:`crop_face` and then the same
:func:`to_model_input`.  A test checks that both paths call these functions.
"""

from __future__ import annotations

import math

import numpy as np

FACE_SIZE = 48
"""Default side of the square crop (FER2013's size).  The album pipeline reads the
side and the channel count from the model file itself (``emotions.EmotionModel``)."""

CROP_SCALE = 1.0
"""Side of the square crop, as a multiple of the detector box's larger side.

Measured, so that album crops frame a face as FER2013 does: YuNet run on 300
FER2013 test faces (padded, upscaled 4x; found in 282) gives a median box of
37 x 48.25 px centred at (23.5, 22.75) in the 48 x 48 frame, so the frame is
1.0x the box's larger side and centred 1.25 px (0.026 of the side) lower.
"""

CROP_SHIFT_Y = 0.026
"""Vertical shift of the crop centre below the box centre, as a fraction of the crop side."""

from albumsort.labels import EMOTIONS  # noqa: E402,F401  (re-exported: training imports it from here)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a uint8 grayscale image from RGB, RGBA or grayscale input."""
    import cv2  # imported here: read-only commands import this module for EMOTIONS only
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def for_model(rgb: np.ndarray, channels: int) -> np.ndarray:
    """The photo as the model reads it: grayscale (H, W) for a 1-channel model, RGB (H, W, 3) otherwise."""
    if channels == 1:
        return to_gray(rgb)
    if rgb.ndim == 2:
        return np.repeat(rgb[..., None], 3, axis=2)
    return rgb[..., :3]


def crop_face(
    gray: np.ndarray,
    box: tuple[float, float, float, float],
    landmarks: np.ndarray | None = None,
    size: int = FACE_SIZE,
) -> np.ndarray:
    """Cut the face in ``box`` (x, y, w, h) out of ``gray`` as a size x size crop.

    ``gray`` may also be an RGB image (H, W, 3) (see ``for_model``); the crop
    then keeps its three channels.

    When eye landmarks are given (YuNet order: right eye, left eye, nose,
    mouth corners, as x, y pairs) the crop is rotated about the face centre so
    that the eyes lie level, as in FER2013's roughly registered faces.  The
    crop is square, ``CROP_SCALE`` times the box's larger side, and pixels
    outside the photo are filled by replicating the border.
    """
    import cv2

    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * CROP_SCALE
    cx = x + w / 2.0
    cy = y + h / 2.0 + CROP_SHIFT_Y * side
    angle = 0.0
    if landmarks is not None and len(landmarks) >= 4:
        (ex1, ey1), (ex2, ey2) = landmarks[0:2], landmarks[2:4]
        if ex2 < ex1:
            ex1, ey1, ex2, ey2 = ex2, ey2, ex1, ey1
        angle = math.degrees(math.atan2(ey2 - ey1, ex2 - ex1))
    scale = size / max(side, 1.0)
    # One affine warp does rotate + crop + resize, so the photo is sampled once.
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += size / 2.0 - cx
    m[1, 2] += size / 2.0 - cy
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    if scale < 0.5:
        # Warping samples, it does not average: pre-shrink large faces so the
        # crop is as smooth as FER2013's downscaled faces.
        k = int(1 / scale)
        small = cv2.resize(gray, (max(1, gray.shape[1] // k), max(1, gray.shape[0] // k)),
                           interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, :2] *= k
        interp = cv2.INTER_LINEAR
        gray = small
    return cv2.warpAffine(gray, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def to_model_input(crops: np.ndarray) -> np.ndarray:
    """Turn uint8 crops into the model's float input (N, S, S, C) in [0, 1].

    Accepts grayscale crops (N, S, S) or (S, S), colour crops (N, S, S, 3) or
    (S, S, 3), and (N, S, S, 1).  The model standardises each face itself
    (its first layer), so no statistics have to travel with it.
    """
    crops = np.asarray(crops)
    if crops.ndim == 2 or (crops.ndim == 3 and crops.shape[1] != crops.shape[2]):
        crops = crops[None]  # one grayscale (S, S) or colour (S, S, C) crop
    if crops.ndim == 3:
        crops = crops[..., None]
    return crops.astype(np.float32) / 255.0
