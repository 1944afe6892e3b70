"""The emotion CNN: a small VGG-style network sized for 2,000+ faces/s on 2 CPU cores.

Plain Keras layers only, so the exported TFLite file runs in OpenCV's DNN
module as well as in TensorFlow.
"""

from __future__ import annotations

import keras
from keras import layers

from albumsort.preprocess import EMOTIONS, FACE_SIZE


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


def build_model(width: int = 16, dropout: float = 0.4, n_classes: int = len(EMOTIONS)) -> keras.Model:
    """VGG-style: four stages of 3x3 convs with batch-norm, global pooling, logits.

    ``width`` is the channel count of the first stage; each later stage
    doubles it.  Cost is about 93k * width**2 multiply-adds per face: width
    16 (24 M) runs at about 2,500 faces/s in TFLite on 2 cores, width 24 at
    about 1,000 (measured with benchmarks/model_speed.py).  The model outputs
    logits: softmax with the calibration temperature is added at export.
    """
    inp = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    x = Standardize(name="standardize")(inp)
    x = conv_bn(x, width, "s1a")
    x = layers.MaxPooling2D(name="s1_pool")(x)  # 24x24
    x = conv_bn(x, width * 2, "s2a")
    x = conv_bn(x, width * 2, "s2b")
    x = layers.MaxPooling2D(name="s2_pool")(x)  # 12x12
    x = conv_bn(x, width * 4, "s3a")
    x = conv_bn(x, width * 4, "s3b")
    x = layers.MaxPooling2D(name="s3_pool")(x)  # 6x6
    x = conv_bn(x, width * 8, "s4a")
    x = conv_bn(x, width * 8, "s4b")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    out = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inp, out, name="albumsort_emotion")


def with_softmax(model: keras.Model, temperature: float = 1.0) -> keras.Model:
    """Wrap a logits model so it outputs calibrated probabilities."""
    inp = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    logits = model(inp, training=False)
    scaled = layers.Rescaling(1.0 / float(temperature), name="temperature")(logits)
    out = layers.Softmax(name="probabilities")(scaled)
    return keras.Model(inp, out, name="albumsort_emotion_calibrated")
