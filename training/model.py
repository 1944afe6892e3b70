"""The emotion CNN: a small VGG-style network sized for 2,000+ faces/s on 2 CPU cores.

Plain Keras layers only, so the exported ONNX file runs in ONNX Runtime on
every OS (``training/export.py``).
"""

from __future__ import annotations

from pathlib import Path

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


@keras.saving.register_keras_serializable(package="albumsort")
class Mirror(layers.Layer):
    """The face's mirror image (left and right swapped): a test-time view.  A layer, not a ``Lambda``, so a saved
    model with its views inside (``average_logits(..., views)``) loads again without unsafe deserialisation."""

    def call(self, x):
        return keras.ops.flip(x, axis=2)


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


def views_mean(model: keras.Model, flip: bool = False, zoom: float = 0.0, name: str = "views_mean") -> keras.Model:
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
        views += [Mirror(name=f"mirror_{i}")(v)
                  for i, v in enumerate(views)]
    outs = [model(v, training=False) for v in views]
    return keras.Model(inp, layers.Average(name="views_mean")(outs), name=name)


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


VIEWS = {"face": (False, 0.0), "face+mirror": (True, 0.0), "face+centre": (False, 0.9), "all four": (True, 0.9)}
"""The test-time view sets a member of an ensemble may read (``views_mean``'s ``flip``, ``zoom``)."""


def average_logits(members: list[keras.Model], views: list[str] | None = None) -> keras.Model:
    """One logits model whose output is the mean of its members' logits (an ensemble, exported as one file).

    The members must read the same input and give the same outputs; each is
    wrapped under its own name (``member_i``), as Keras wants operation names
    unique within a model.  ``with_heads`` then calibrates the mean like any
    single model's logits.  ``views`` (one ``VIEWS`` name per member) gives each member its own test-time views
    inside the file, so a costly member can read the face once while the cheap ones also read its centre; without
    it the views are the whole file's (``with_heads``).  One member without views is returned as it is
    (``python -m training ensemble`` with one member re-exports a trained model with other export settings).
    """
    if views is not None and len(views) != len(members):
        raise ValueError(f"{len(views)} view sets for {len(members)} members")
    unknown = [v for v in views or [] if v not in VIEWS]
    if unknown:
        raise ValueError(f"view sets {', '.join(unknown)}: choose among {', '.join(VIEWS)}")
    if len(members) == 1 and views is None:
        return members[0]
    shapes = {(tuple(m.input_shape[1:]), tuple(m.output_shape[1:])) for m in members}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members read or give different shapes: {sorted(shapes)}")
    inp = keras.Input(tuple(members[0].input_shape[1:]), name="face")
    outs = []
    for i, m in enumerate(members):
        member = keras.Model(m.input, m.output, name=f"member_{i}")
        if views is not None and VIEWS[views[i]] != (False, 0.0):
            member = views_mean(member, *VIEWS[views[i]], name=f"viewed_{i}")
        outs.append(member(inp, training=False))
    if len(outs) == 1:
        return keras.Model(inp, outs[0], name="albumsort_ensemble")
    return keras.Model(inp, layers.Average(name="ensemble_mean")(outs), name="albumsort_ensemble")


PRETRAINED_FACES = Path(__file__).resolve().parents[1] / "models" / "mobilefacenet.onnx"
"""The face-recognition network (MobileFaceNet, trained on MS-Celeb-1M; provenance in models/README.md) whose
weights ``pretrained_mobilefacenet`` starts from."""
PRETRAINED_SHA256 = "b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507"
PRETRAINED_FEATURES = "/gdconv/depthwise/Conv_output_0"
"""The tensor the expression head reads: the 512 globally pooled features, before the identity projection."""
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def pretrained_mobilefacenet(dropout: float = 0.4, n_classes: int = N_OUTPUTS, size: int = FACE_SIZE,
                             channels: int = 1, path: Path = PRETRAINED_FACES) -> keras.Model:
    """MobileFaceNet's layers and weights, read from its ONNX file, with an expression head: a pretrained member.

    Why: the small CNN learns faces from 43k labelled crops; this network learned them from millions of
    identities.  Fine-tuned for three epochs (35 minutes on 2 cores) it read 80.7% of RAF-DB's seven, near
    the 81.4% of a 40-epoch CNN after four hours (models/README.md, "A pretrained member").  It reads the recipe's crop
    (``size`` px, grey or RGB), resized to its 112 px and normalised as it was trained, and gives the recipe's
    logits, so it ensembles with the CNNs (``average_logits``) and ships through the same export.  Unlike the
    CNNs (``Standardize``) it normalises by fixed statistics, so it is not contrast-invariant by construction; the
    recipe's brightness/contrast augmentation is what teaches it that.  The
    file's batch norms are folded into its convolutions; each ONNX ``Conv``/``Clip``/``Relu``/``Add`` becomes
    the Keras layer that computes the same (checked against ONNX Runtime by the tests).
    """
    import hashlib

    import numpy as np
    import onnx
    from onnx import numpy_helper

    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != PRETRAINED_SHA256:
        raise ValueError(f"{path} is not the MobileFaceNet file models/README.md names (sha256 differs)")
    graph = onnx.load_from_string(data).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inp = keras.Input((size, size, channels), name="face")
    x = layers.Resizing(112, 112, interpolation="bilinear", name="mfn_resize")(inp) if size != 112 else inp
    if channels == 1:
        x = layers.Concatenate(name="mfn_rgb")([x, x, x])
    x = layers.Rescaling([255.0 / s for s in IMAGENET_STD], offset=[-m / s for m, s in
                         zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)], name="mfn_normalise")(x)
    tensors, loads = {graph.input[0].name: x}, []
    for i, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        attr = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        src = tensors[node.input[0]]
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            b = weights[node.input[2]] if len(node.input) > 2 else None
            top, left, bottom, right = attr.get("pads", [0, 0, 0, 0])
            strides, kernel_shape = tuple(attr.get("strides", [1, 1])), tuple(attr["kernel_shape"])
            same = strides == (1, 1) and top == bottom == (kernel_shape[0] - 1) // 2 and left == right == (
                kernel_shape[1] - 1) // 2 and kernel_shape[0] % 2 == kernel_shape[1] % 2 == 1
            if not same and (top or left or bottom or right):  # Keras's "same" pads a strided conv otherwise
                src = layers.ZeroPadding2D(((top, bottom), (left, right)), name=f"mfn_{i}_pad")(src)
            opts = dict(strides=strides, padding="same" if same else "valid", use_bias=b is not None,
                        name=f"mfn_{i}")
            if any(d != 1 for d in attr.get("dilations", [1, 1])):
                raise ValueError(f"{path}: dilated convolution {node.name} is not rebuilt here")
            if attr.get("group", 1) == 1:
                layer, kernel = layers.Conv2D(w.shape[0], kernel_shape, **opts), w.transpose(2, 3, 1, 0)
            elif attr["group"] == w.shape[0] and w.shape[1] == 1:
                layer, kernel = layers.DepthwiseConv2D(kernel_shape, **opts), w.transpose(2, 3, 0, 1)
            else:
                raise ValueError(f"{path}: grouped convolution {node.name} is neither full nor depthwise")
            out = layer(src)
            loads.append((layer, [kernel] + ([b] if b is not None else [])))
        elif node.op_type == "Clip":
            bounds = [float(onnx.numpy_helper.to_array(c.attribute[0].t)) for c in graph.node
                      if c.op_type == "Constant" and c.output[0] in node.input[1:]]
            if bounds != [0.0, 6.0]:
                raise ValueError(f"{path}: {node.name} clips to {bounds}, not ReLU6's [0, 6]")
            out = layers.ReLU(max_value=6.0, name=f"mfn_{i}_relu6")(src)
        elif node.op_type == "Relu":
            out = layers.ReLU(name=f"mfn_{i}_relu")(src)
        elif node.op_type == "Add":
            out = layers.Add(name=f"mfn_{i}_add")([src, tensors[node.input[1]]])
        elif node.op_type == "Reshape":
            continue  # the identity embedding's flattening: not used by the head
        else:
            raise ValueError(f"{path}: op {node.op_type} has no Keras counterpart here")
        tensors[node.output[0]] = out
        if node.output[0] == PRETRAINED_FEATURES:
            break
    for layer, w in loads:
        layer.set_weights([np.asarray(a, np.float32) for a in w])
    x = layers.Flatten(name="mfn_features")(tensors[PRETRAINED_FEATURES])
    x = layers.Dropout(dropout, name="drop")(x)
    out = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inp, out, name="albumsort_emotion_mobilefacenet")
