"""The emotion CNN: a small VGG-style network sized for 2,000+ faces/s on 2 CPU cores.

Plain Keras layers only, so the exported ONNX file runs in ONNX Runtime on
every OS (``training/export.py``).
"""

from __future__ import annotations

import keras
from keras import layers

from albumsort.labels import EXPRESSIONS
from albumsort.preprocess import FACE_SIZE

N_OUTPUTS = len(EXPRESSIONS) + 1
"""Logits for the seven expressions, then one for "unreadable" (not a face, or no readable expression)."""


@keras.saving.register_keras_serializable(package="albumsort")
class Standardize(layers.Layer):
    """Per-image zero mean, unit variance (the std floored at 0.03 so flat crops stay flat).

    FER2013's training folder has lower contrast than its test folder (median
    pixel std 38 vs 55 of 255) and album photos vary more still; inside the
    model, this makes every consumer of the model contrast-invariant alike.
    """

    def call(self, x):
        mean = keras.ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.sqrt(keras.ops.mean(keras.ops.square(x - mean), axis=(1, 2, 3), keepdims=True))
        return (x - mean) / keras.ops.maximum(std, 0.03)


def conv_bn(x, filters, name):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_model(width: int = 16, dropout: float = 0.4, n_classes: int = N_OUTPUTS, size: int = FACE_SIZE,
                channels: int = 1, stem_stride: int = 1) -> keras.Model:
    """VGG-style: four stages of 3x3 convs with batch-norm, global pooling, logits.

    ``width`` is the channel count of the first stage; each later stage
    doubles it.  Cost is about 93k * width**2 multiply-adds per face at
    48 px, growing with the area of ``size / stem_stride``: width 16 (24 M)
    runs at about 2,500 faces/s in TFLite on 2 cores, width 24 at about 1,000
    (measured with benchmarks/model_speed.py).  ``stem_stride`` 2 makes the
    first convolution strided, so a 96 px face costs what a 48 px one does
    while the stem still sees its fine detail.  ``channels`` 3 reads RGB.
    The model outputs logits: the calibrated heads are added at export
    (``with_heads``).
    """
    inp = keras.Input((size, size, channels), name="face")
    x = Standardize(name="standardize")(inp)
    if stem_stride > 1:
        x = layers.Conv2D(width, 3, strides=stem_stride, padding="same", use_bias=False, name="stem_conv")(x)
        x = layers.BatchNormalization(name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
    x = conv_bn(x, width, "s1a")
    x = layers.MaxPooling2D(name="s1_pool")(x)
    x = conv_bn(x, width * 2, "s2a")
    x = conv_bn(x, width * 2, "s2b")
    x = layers.MaxPooling2D(name="s2_pool")(x)
    x = conv_bn(x, width * 4, "s3a")
    x = conv_bn(x, width * 4, "s3b")
    x = layers.MaxPooling2D(name="s3_pool")(x)
    x = conv_bn(x, width * 8, "s4a")
    x = conv_bn(x, width * 8, "s4b")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    out = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inp, out, name="albumsort_emotion")


def views_mean(model: keras.Model, flip: bool = False, zoom: float = 0.0) -> keras.Model:
    """The logits ``model`` reads, averaged over test-time views of each face (``model`` itself without any).

    * ``flip``: the mirror image of every view;
    * ``zoom`` (0 < zoom < 1): the centre ``zoom`` of the face, resized back to the input side (bilinear), a
      slightly tighter crop; 0 = no such view.
    Averaging logits over views is averaging the model's log-probabilities: the faces it reads alike either way
    keep their reading, the ones it is unsure of get a steadier one.  Inside the file, so every consumer gets it.
    """
    if not flip and not zoom:
        return model
    side = int(model.input_shape[1])
    inp = keras.Input(tuple(model.input_shape[1:]), name="face")
    views = [inp]
    if zoom:
        if not 0 < zoom < 1:
            raise ValueError(f"zoom {zoom}: the share of the face kept, between 0 and 1")
        inner = int(round(side * zoom))
        views.append(layers.Resizing(side, side, interpolation="bilinear", name="zoom_resize")(
            layers.CenterCrop(inner, inner, name="zoom_crop")(inp)))
    if flip:
        views += [layers.Lambda(lambda t: keras.ops.flip(t, axis=2), name=f"mirror_{i}")(v)
                  for i, v in enumerate(views)]
    outs = [model(v, training=False) for v in views]
    return keras.Model(inp, layers.Average(name="views_mean")(outs), name="views_mean")


def with_heads(model: keras.Model, emotion_temperature: float = 1.0, readability_temperature: float = 1.0,
               flip: bool = False, zoom: float = 0.0) -> keras.Model:
    """Wrap a logits model into what albumsort runs: (N, K+1) = K expression probabilities, readability.

    * expressions: softmax of the K expression logits / T_e, i.e. P(expression | readable face),
      each a probability among all K (the seven), never renormalised over fewer;
    * readability: 1 - P(unreadable) from the softmax of all K+1 logits / T_r.
    The logits are those of ``views_mean`` (``flip``, ``zoom``): test-time views inside the file.
    Plain slice, softmax and concat ops keep the file easy to export (ONNX, TFLite).
    """
    inp = keras.Input(tuple(model.input_shape[1:]), name="face")
    logits = views_mean(model, flip, zoom)(inp, training=False)
    k = int(model.output_shape[-1]) - 1
    emo_logits = layers.Lambda(lambda t: t[:, :k], name="emotion_logits")(logits)
    emotions = layers.Softmax(name="emotions")(layers.Rescaling(1.0 / float(emotion_temperature))(emo_logits))
    everything = layers.Softmax(name="all_classes")(layers.Rescaling(1.0 / float(readability_temperature))(logits))
    readable = layers.Lambda(lambda t: 1.0 - t[:, k:], name="readability")(everything)
    out = layers.Concatenate(name="probabilities")([emotions, readable])
    return keras.Model(inp, out, name="albumsort_emotion_calibrated")


def average_logits(members: list[keras.Model]) -> keras.Model:
    """One logits model whose output is the mean of its members' logits (an ensemble, exported as one file).

    The members must read the same input and give the same outputs; each is
    wrapped under its own name (``member_i``), as Keras wants operation names
    unique within a model.  ``with_heads`` then calibrates the mean like any
    single model's logits.  One member is returned as it is (``python -m training ensemble`` with one member
    re-exports a trained model with other export settings, e.g. ``--zoom-tta``).
    """
    if len(members) == 1:
        return members[0]
    shapes = {(tuple(m.input_shape[1:]), tuple(m.output_shape[1:])) for m in members}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members read or give different shapes: {sorted(shapes)}")
    inp = keras.Input(tuple(members[0].input_shape[1:]), name="face")
    outs = [keras.Model(m.input, m.output, name=f"member_{i}")(inp, training=False) for i, m in enumerate(members)]
    return keras.Model(inp, layers.Average(name="ensemble_mean")(outs), name="albumsort_ensemble")
