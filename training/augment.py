"""Batched augmentation that makes FER2013 crops look like detector crops of album photos.

Scale, shift and roll jitter (a detector box is never where FER2013's
registration put the face), horizontal flips, brightness/contrast, blur from
down-and-up sampling, JPEG artefacts and random erasing.  Everything runs on
whole batches in TensorFlow ops so the 2 CPU cores stay on the model.

All randomness is stateless, drawn from a per-batch seed (``Rng``): a batch's
augmentation depends only on (run seed, epoch, batch number), so a run resumed
from its checkpoint sees exactly what an uninterrupted run would have seen.
"""

from __future__ import annotations

import math

import tensorflow as tf


class Rng:
    """Stateless random draws from one seed (a (2,) int tensor), each draw from its own folded-in seed."""

    def __init__(self, seed):
        self.seed = tf.cast(seed, tf.int64)
        self.n = 0

    def next_seed(self):
        self.n += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.n)

    def uniform(self, shape, lo=0.0, hi=1.0, dtype=tf.float32):
        return tf.random.stateless_uniform(shape, self.next_seed(), lo, hi, dtype=dtype)



def _affine(images, scale, angle, tx, ty):
    size = images.shape[1]
    c = (size - 1) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a0, a1, b0, b1 = cos, -sin, sin, cos
    a2 = c + tx - a0 * c - a1 * c
    b2 = c + ty - b0 * c - b1 * c
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[size, size],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")


def augment_batch(x, rng: Rng, strength: float = 1.0, size: int = 48, channels: int = 1,
                  soften_to: int | None = None):
    """x: float32 (B, size, size, channels) in [0, 1], channels 1 or 3; returns the same shape, augmented.

    ``soften_to``: the least detail, in px, a third of the faces are softened to (shrunk and enlarged back);
    None: half the side (at 96 px no readable face then has less than 48 px of detail, and the readability
    head learns that a soft face is no face: models/README.md, "Smiles")."""
    x = tf.ensure_shape(x, [None, size, size, channels])
    b = tf.shape(x)[0]
    u = lambda lo, hi: rng.uniform([b], lo, hi)  # noqa: E731
    s = strength
    scale = tf.exp(u(math.log(1 - 0.15 * s), math.log(1 + 0.2 * s)))
    angle = u(-12.0 * s, 12.0 * s) * (math.pi / 180.0)
    shift = 0.08 * s * size
    x = _affine(x, scale, angle, u(-shift, shift), u(-shift, shift))
    flip = rng.uniform([b, 1, 1, 1]) < 0.5
    x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    # Brightness, contrast, gamma.
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.reshape(u(1 - 0.35 * s, 1 + 0.35 * s), [b, 1, 1, 1])
    bright = tf.reshape(u(-0.15 * s, 0.15 * s), [b, 1, 1, 1])
    x = tf.clip_by_value((x - mean) * contrast + mean + bright, 0.0, 1.0)
    gamma = tf.reshape(tf.exp(u(-0.3 * s, 0.3 * s)), [b, 1, 1, 1])
    x = tf.pow(x + 1e-6, gamma)
    if channels == 3:
        # Colour: saturation jitter, and a share of faces turned grey (FER2013 and ~12% of RAF-DB are grey).
        grey = tf.reduce_mean(x, axis=3, keepdims=True)
        sat = tf.reshape(u(1 - 0.4 * s, 1 + 0.3 * s), [b, 1, 1, 1])
        sat = tf.where(rng.uniform([b, 1, 1, 1]) < 0.15, 0.0, sat)
        x = tf.clip_by_value(grey + (x - grey) * sat, 0.0, 1.0)
    # Blur on a third of the batch: down to soften_to px (unset: 1/2 of the side)..5/6 of the side and back up.
    least = size // 2 if soften_to is None else min(max(int(soften_to), 2), size * 5 // 6)
    small = rng.uniform([], least, size * 5 // 6 + 1, dtype=tf.int32)
    blurred = tf.image.resize(tf.image.resize(x, [small, small], antialias=True), [size, size])
    x = tf.where(rng.uniform([b, 1, 1, 1]) < 0.33 * s, blurred, x)
    # Random erasing on a quarter of the batch.
    yy = tf.reshape(tf.range(size, dtype=tf.float32), [1, size, 1, 1]) / size
    xx = tf.reshape(tf.range(size, dtype=tf.float32), [1, 1, size, 1]) / size
    eh = tf.reshape(u(0.125, 0.375), [b, 1, 1, 1])
    ew = tf.reshape(u(0.125, 0.375), [b, 1, 1, 1])
    ey = tf.reshape(u(0.0, 0.875), [b, 1, 1, 1])
    ex = tf.reshape(u(0.0, 0.875), [b, 1, 1, 1])
    box = (yy >= ey) & (yy < ey + eh) & (xx >= ex) & (xx < ex + ew)
    erase = rng.uniform([b, 1, 1, 1]) < 0.25 * s
    x = tf.where(box & erase, mean, x)
    return tf.clip_by_value(x, 0.0, 1.0)


def jpeg_artefacts(x, rng: Rng, probability: float = 0.3):
    """A batch (B, S, S, C) float in [0, 1]: re-encode a share of its images as JPEG at quality 20..90."""
    b = tf.shape(x)[0]
    chosen = rng.uniform([b]) < probability
    quality = rng.uniform([b], 20, 91, dtype=tf.int32)

    def one(args):
        image, do, q = args

        def degrade():
            u8 = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
            return tf.image.convert_image_dtype(tf.image.adjust_jpeg_quality(u8, q), tf.float32)
        return tf.cond(do, degrade, lambda: image)
    return tf.map_fn(one, (x, chosen, quality), fn_output_signature=tf.float32)


def make_unreadable(x, t, rng: Rng, probability: float = 0.06, size: int = 48):
    """Turn a share of a batch into faces nobody can read, labelled ``unreadable``.

    x: (B, S, S, C) in [0, 1]; t: (B, K) targets, ``unreadable`` last.  Each chosen face gets one
    of: a mask over nose and mouth, dark glasses over the eyes, a blur down to
    4-7 px, or most of the crop covered.  Small occlusions stay readable (the
    random erasing in ``augment_batch``); these take away what an expression
    is read from, so the readability score learns to drop them.
    """
    b = tf.shape(x)[0]
    yy = tf.reshape(tf.range(size, dtype=tf.float32), [1, size, 1, 1]) / size
    xx = tf.reshape(tf.range(size, dtype=tf.float32), [1, 1, size, 1]) / size
    u = lambda lo, hi: tf.reshape(rng.uniform([b], lo, hi), [b, 1, 1, 1])  # noqa: E731
    shade = u(0.0, 1.0)
    mask = (yy > u(0.48, 0.58)) & (xx > u(0.05, 0.2)) & (xx < u(0.8, 0.95))
    glasses = (yy > u(0.22, 0.3)) & (yy < u(0.45, 0.52)) & (xx > u(0.05, 0.15)) & (xx < u(0.85, 0.95))
    cover = (yy > u(0.0, 0.15)) & (xx > u(0.0, 0.15)) & (xx < u(0.85, 1.0))
    small = rng.uniform([], 4, 8, dtype=tf.int32)
    blurred = tf.image.resize(tf.image.resize(x, [small, small], antialias=True), [size, size])
    kind = tf.reshape(rng.uniform([b], 0, 4, dtype=tf.int32), [b, 1, 1, 1])
    out = tf.where(kind == 0, tf.where(mask, shade, x), x)
    out = tf.where(kind == 1, tf.where(glasses, shade * 0.3, x), out)
    out = tf.where(kind == 2, blurred, out)
    out = tf.where(kind == 3, tf.where(cover, shade, x), out)
    chosen = rng.uniform([b]) < probability
    x = tf.where(tf.reshape(chosen, [b, 1, 1, 1]), out, x)
    unreadable = tf.one_hot(tf.fill([b], tf.shape(t)[1] - 1), tf.shape(t)[1])  # the last target
    t = tf.where(tf.reshape(chosen, [b, 1]), unreadable, t)
    return x, t


def make_facelike(x, t, rng: Rng, probability: float = 0.04, size: int = 48, channels: int = 1):
    """Turn a share of a batch into face-like things that are not readable faces, labelled ``unreadable``.

    Costume masks and heavy face paint keep a face's outline, hair and
    ears, so the detector finds them and a model trained on faces alone reads
    their painted features as an expression (a Guy Fawkes mask as sad, corpse
    paint as angry).  Each chosen face gets one of:

    * a full-face mask: an ellipse over brow, eyes, nose, mouth and chin in
      one flat colour with faint texture, two dark eye holes and a painted
      mouth line at a random slant;
    * heavy paint: two to four broad bands of flat colour (grey levels for a
      grey model) over most of the face, at 75-95% opacity.

    Masks over the lower face, glasses and blur are ``make_unreadable``'s.
    """
    b = tf.shape(x)[0]
    yy = tf.reshape(tf.range(size, dtype=tf.float32), [1, size, 1, 1]) / size
    xx = tf.reshape(tf.range(size, dtype=tf.float32), [1, 1, size, 1]) / size
    u = lambda lo, hi: tf.reshape(rng.uniform([b], lo, hi), [b, 1, 1, 1])  # noqa: E731
    colour = lambda: rng.uniform([b, 1, 1, channels], 0.0, 1.0)  # noqa: E731
    # Full-face mask.
    cx, cy, rx, ry = u(0.45, 0.55), u(0.5, 0.6), u(0.3, 0.4), u(0.38, 0.48)
    face = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1.0
    texture = tf.image.resize(rng.uniform([b, 6, 6, 1], -0.06, 0.06), [size, size])
    base = tf.clip_by_value(colour() + texture, 0.0, 1.0)
    eye_r, eye_y, eye_dx = u(0.045, 0.08), cy - ry * u(0.25, 0.4), rx * u(0.35, 0.5)
    eyes = ((((xx - (cx - eye_dx)) ** 2 + (yy - eye_y) ** 2) < eye_r ** 2)
            | (((xx - (cx + eye_dx)) ** 2 + (yy - eye_y) ** 2) < eye_r ** 2))
    slant = u(-0.25, 0.25)
    mouth = (tf.abs(yy - (cy + ry * 0.5) - slant * (xx - cx)) < u(0.01, 0.025)) & (tf.abs(xx - cx) < rx * 0.45)
    masked = tf.where(face, base, x)
    masked = tf.where(face & (eyes | mouth), base * u(0.0, 0.3), masked)
    # Heavy paint: bands of flat colour across the face.
    angle = u(0.0, 3.1416)
    along = (xx - 0.5) * tf.cos(angle) + (yy - 0.5) * tf.sin(angle)
    n_bands = u(2.0, 4.99)
    band = tf.cast(tf.floor((along + 0.75) * n_bands / 1.5), tf.int32) % 2 == 0
    alpha = u(0.75, 0.95)
    inside = ((xx - 0.5) / 0.42) ** 2 + ((yy - 0.55) / 0.5) ** 2 < 1.0
    c1, c2 = colour(), colour()
    paint = tf.where(band, c1, c2)
    painted = tf.where(inside, (1 - alpha) * x + alpha * paint, x)
    kind = tf.reshape(rng.uniform([b], 0, 2, dtype=tf.int32), [b, 1, 1, 1])
    out = tf.where(kind == 0, masked, painted)
    chosen = rng.uniform([b]) < probability
    x = tf.where(tf.reshape(chosen, [b, 1, 1, 1]), out, x)
    unreadable = tf.one_hot(tf.fill([b], tf.shape(t)[1] - 1), tf.shape(t)[1])  # the last target
    t = tf.where(tf.reshape(chosen, [b, 1]), unreadable, t)
    return x, t
