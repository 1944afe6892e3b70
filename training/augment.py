"""Batched augmentation that makes FER2013 crops look like detector crops of album photos.

Scale, shift and roll jitter (a detector box is never where FER2013's
registration put the face), horizontal flips, brightness/contrast, blur from
down-and-up sampling, JPEG artefacts and random erasing.  Everything runs on
whole batches in TensorFlow ops so the 2 CPU cores stay on the model.
"""

from __future__ import annotations

import math

import tensorflow as tf

from albumsort.preprocess import FACE_SIZE


def _affine(images, scale, angle, tx, ty):
    c = (FACE_SIZE - 1) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a0, a1, b0, b1 = cos, -sin, sin, cos
    a2 = c + tx - a0 * c - a1 * c
    b2 = c + ty - b0 * c - b1 * c
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[FACE_SIZE, FACE_SIZE],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")


def augment_batch(x, strength: float = 1.0):
    """x: float32 (B, 48, 48, 1) in [0, 1]; returns the same shape, augmented."""
    b = tf.shape(x)[0]
    u = lambda lo, hi: tf.random.uniform([b], lo, hi)  # noqa: E731
    s = strength
    scale = tf.exp(u(math.log(1 - 0.15 * s), math.log(1 + 0.2 * s)))
    angle = u(-12.0 * s, 12.0 * s) * (math.pi / 180.0)
    shift = 0.08 * s * FACE_SIZE
    x = _affine(x, scale, angle, u(-shift, shift), u(-shift, shift))
    flip = tf.random.uniform([b, 1, 1, 1]) < 0.5
    x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    # Brightness, contrast, gamma.
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.reshape(u(1 - 0.35 * s, 1 + 0.35 * s), [b, 1, 1, 1])
    bright = tf.reshape(u(-0.15 * s, 0.15 * s), [b, 1, 1, 1])
    x = tf.clip_by_value((x - mean) * contrast + mean + bright, 0.0, 1.0)
    gamma = tf.reshape(tf.exp(u(-0.3 * s, 0.3 * s)), [b, 1, 1, 1])
    x = tf.pow(x + 1e-6, gamma)
    # Blur on a third of the batch: down to 24..40 px and back up.
    small = tf.random.uniform([], 24, 41, dtype=tf.int32)
    blurred = tf.image.resize(tf.image.resize(x, [small, small], antialias=True), [FACE_SIZE, FACE_SIZE])
    x = tf.where(tf.random.uniform([b, 1, 1, 1]) < 0.33 * s, blurred, x)
    # Random erasing on a quarter of the batch.
    yy = tf.reshape(tf.range(FACE_SIZE, dtype=tf.float32), [1, FACE_SIZE, 1, 1])
    xx = tf.reshape(tf.range(FACE_SIZE, dtype=tf.float32), [1, 1, FACE_SIZE, 1])
    eh = tf.reshape(u(6.0, 18.0), [b, 1, 1, 1])
    ew = tf.reshape(u(6.0, 18.0), [b, 1, 1, 1])
    ey = tf.reshape(u(0.0, FACE_SIZE - 6.0), [b, 1, 1, 1])
    ex = tf.reshape(u(0.0, FACE_SIZE - 6.0), [b, 1, 1, 1])
    box = (yy >= ey) & (yy < ey + eh) & (xx >= ex) & (xx < ex + ew)
    erase = tf.random.uniform([b, 1, 1, 1]) < 0.25 * s
    x = tf.where(box & erase, mean, x)
    return tf.clip_by_value(x, 0.0, 1.0)


def jpeg_artefacts(image, probability: float = 0.3):
    """One image (48, 48, 1) float in [0, 1]: re-encode as JPEG at quality 20..90 sometimes."""
    def degrade():
        q = tf.random.uniform([], 20, 91, dtype=tf.int32)
        u8 = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
        return tf.image.convert_image_dtype(tf.image.adjust_jpeg_quality(u8, q), tf.float32)
    return tf.cond(tf.random.uniform([]) < probability, degrade, lambda: image)


def make_unreadable(x, t, probability: float = 0.06):
    """Turn a share of a batch into faces nobody can read, labelled ``unreadable``.

    x: (B, 48, 48, 1) in [0, 1]; t: (B, 5) targets.  Each chosen face gets one
    of: a mask over nose and mouth, dark glasses over the eyes, a blur down to
    4-7 px, or most of the crop covered.  Small occlusions stay readable (the
    random erasing in ``augment_batch``); these take away what an expression
    is read from, so the readability score learns to drop them.
    """
    b = tf.shape(x)[0]
    yy = tf.reshape(tf.range(FACE_SIZE, dtype=tf.float32), [1, FACE_SIZE, 1, 1]) / FACE_SIZE
    xx = tf.reshape(tf.range(FACE_SIZE, dtype=tf.float32), [1, 1, FACE_SIZE, 1]) / FACE_SIZE
    u = lambda lo, hi: tf.reshape(tf.random.uniform([b], lo, hi), [b, 1, 1, 1])  # noqa: E731
    shade = u(0.0, 1.0)
    mask = (yy > u(0.48, 0.58)) & (xx > u(0.05, 0.2)) & (xx < u(0.8, 0.95))
    glasses = (yy > u(0.22, 0.3)) & (yy < u(0.45, 0.52)) & (xx > u(0.05, 0.15)) & (xx < u(0.85, 0.95))
    cover = (yy > u(0.0, 0.15)) & (xx > u(0.0, 0.15)) & (xx < u(0.85, 1.0))
    small = tf.random.uniform([], 4, 8, dtype=tf.int32)
    blurred = tf.image.resize(tf.image.resize(x, [small, small], antialias=True), [FACE_SIZE, FACE_SIZE])
    kind = tf.reshape(tf.random.uniform([b], 0, 4, dtype=tf.int32), [b, 1, 1, 1])
    out = tf.where(kind == 0, tf.where(mask, shade, x), x)
    out = tf.where(kind == 1, tf.where(glasses, shade * 0.3, x), out)
    out = tf.where(kind == 2, blurred, out)
    out = tf.where(kind == 3, tf.where(cover, shade, x), out)
    chosen = tf.random.uniform([b]) < probability
    x = tf.where(tf.reshape(chosen, [b, 1, 1, 1]), out, x)
    unreadable = tf.one_hot(tf.fill([b], tf.shape(t)[1] - 1), tf.shape(t)[1])
    t = tf.where(tf.reshape(chosen, [b, 1]), unreadable, t)
    return x, t
