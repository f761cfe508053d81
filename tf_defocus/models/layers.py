"""Small Keras layers and builders shared by the DMENet networks.

Every layer here works with unknown (None) height and width, so models built from them can be
exported with a dynamic spatial signature. All are registered for ``.keras`` serialisation
under the package name ``tf_defocus``.

Facts about the authors' TF1/TensorLayer graph (``codeslake/DMENet`` ``model.py``) that these
layers reproduce: caffe-style VGG preprocessing inside the graph, 1-px SYMMETRIC pad + VALID
3x3 conv, BatchNorm without gamma (decay 0.9, eps 1e-5), LeakyReLU(0.2).
"""

import keras
import tensorflow as tf
from keras import ops

from tf_defocus import propagation, units
from tf_defocus.tiling import tile_size_for_width

PACKAGE = "tf_defocus"


class WidthConfigMixin:
    """``get_config`` / ``from_config`` of a functional ``keras.Model`` subclass whose graph is
    rebuilt from its architecture arguments ``ARCH_ARGS`` (default: ``width``; list the mixin
    before ``keras.Model``)."""

    ARCH_ARGS = ("width",)

    def get_config(self):
        return {**{a: getattr(self, a) for a in self.ARCH_ARGS}, "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)

# Caffe VGG mean in BGR order (Keras ``vgg19.preprocess_input`` "caffe" mode, DMENet's VGG_MEAN).
VGG_MEAN_BGR = (103.939, 116.779, 123.68)

BN_MOMENTUM = 0.9     # TensorLayer BatchNormLayer decay
BN_EPSILON = 1e-5     # TensorLayer BatchNormLayer epsilon
LRELU_SLOPE = 0.2


def channels(base, width):
    """Channel count of a layer with ``base`` channels at width multiplier ``width`` (>= 1)."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(1, int(round(base * width)))


FIRST_CONV = "block1_conv1"
"""DMENet's first encoder conv (VGG19 ``block1_conv1``): ``channels(64, width)`` filters."""


def network_width(model):
    """Width multiplier of the DMENet network in ``model`` (B, a two-scale B or their
    inference models, searched through nested models): its first conv's filters / 64; None if
    ``model`` has no such layer."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            width = network_width(layer)
            if width is not None:
                return width
        elif layer.name == FIRST_CONV:
            return layer.filters / 64
    return None


def suggested_tile_size(model):
    """The tile side [px] a model's ModelInfo suggests: ``tiling.tile_size_for_width`` of the
    DMENet network in ``model``; None (the package default) for any other model."""
    width = network_width(model)
    return tile_size_for_width(min(width, 1.0)) if width else None


@keras.saving.register_keras_serializable(package=PACKAGE)
class CaffePreprocess(keras.layers.Layer):
    """RGB in [0, 1] (N,H,W,3) -> x255 -> BGR -> minus VGG mean (caffe mode), float.

    Same arithmetic as ``keras.applications.vgg19.preprocess_input`` on 0..255 RGB input.
    """

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype) * 255.0
        bgr = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(VGG_MEAN_BGR, dtype=self.compute_dtype)
        return bgr - mean

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class SymmetricPad(keras.layers.Layer):
    """Symmetric (mirror including the edge) spatial padding of ``pad`` px on every side.

    For ``pad=1`` this equals edge replication. Input/output NHWC; H, W may be unknown.
    """

    def __init__(self, pad=1, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")

    def call(self, inputs):
        p = self.pad
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="symmetric")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda s: None if s is None else s + 2 * self.pad
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package=PACKAGE)
class NearestUpsample(keras.layers.Layer):
    """Integer nearest-neighbour upsampling (pixel duplication), NHWC, unknown H/W allowed.

    For an exact integer factor this equals TF1 ``resize_nearest_neighbor(align_corners=True)``
    (DMENet's ``UpSampling2dLayer(method=1)``) and TF2 ``tf.image.resize(..., "nearest")``.
    Unlike ``keras.layers.UpSampling2D`` (repeat ops) it keeps the channel count static, which
    TFLite needs to lower the following conv to a builtin ``CONV_2D``.
    """

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")

    def call(self, inputs):
        # Pixel duplication by reshape -> broadcast -> reshape rather than tf.image.resize:
        # the gradient of a nearest resize (ResizeNearestNeighborGrad) has no XLA CPU kernel,
        # so --jit_compile training failed; these ops compile, export to TFLite builtins
        # (RESHAPE, BROADCAST_TO) and keep the channel count static for unknown H/W.
        k = self.factor
        channels = inputs.shape[-1]
        shape = tf.shape(inputs)
        n, h, w = shape[0], shape[1], shape[2]
        c = channels if channels is not None else shape[3]
        y = tf.reshape(inputs, tf.stack([n, h, 1, w, 1, c]))
        y = tf.broadcast_to(y, tf.stack([n, h, k, w, k, c]))
        return tf.reshape(y, tf.stack([n, h * k, w * k, c]))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda s: None if s is None else s * self.factor
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PadToMultiple(keras.layers.Layer):
    """Symmetric padding at the bottom and right up to H, W multiples of ``multiple`` [px]
    (NHWC, unknown H/W allowed); ``CropLike`` takes it off again. An input smaller than its
    padding (a 4 px quarter-scale image padded to 16) is mirrored repeatedly, each pass at most
    its current size (SYMMETRIC ``tf.pad``'s limit); inputs at least ``multiple`` - 1 px pad in
    the first pass."""

    def __init__(self, multiple, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        if self.multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {multiple}")

    def call(self, inputs):
        shape = tf.shape(inputs)
        m = self.multiple
        left = [(-shape[1]) % m, (-shape[2]) % m]
        x = inputs
        for _ in range(max(1, (m - 1).bit_length())):   # sizes at least double per pass
            size = tf.shape(x)
            step = [tf.minimum(left[0], size[1]), tf.minimum(left[1], size[2])]
            x = tf.pad(x, [[0, 0], [0, step[0]], [0, step[1]], [0, 0]], mode="SYMMETRIC")
            left = [left[0] - step[0], left[1] - step[1]]
        return x

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        up = lambda s: None if s is None else -(-s // self.multiple) * self.multiple
        return (n, up(h), up(w), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropLike(keras.layers.Layer):
    """[x (N,H',W',C), reference (N,H,W,*)] -> x[:, :H, :W] (H <= H', W <= W')."""

    def call(self, inputs):
        x, reference = inputs
        shape = tf.shape(reference)
        return x[:, :shape[1], :shape[2]]

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        return (x[0], reference[1], reference[2], x[3])


def batch_norm(name):
    """BatchNorm as in TensorLayer with ``gamma_init=None``: beta only, decay 0.9, eps 1e-5."""
    return keras.layers.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                           center=True, scale=False, name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FillSmooth(keras.layers.Layer):
    """[map (N,H,W,1), image (N,H,W,3) RGB [0,1]] -> the map with smooth surfaces (blur
    invisible) filled in from the visible pixels around them (``tf_defocus.propagation``;
    ``method``: one of ``propagation.FILL_METHODS``). The map is sigma / ``units.SIGMA_MAX_PX``, a
    model's output. No weights; float32."""

    def __init__(self, method="pull_push", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if method not in propagation.FILL_METHODS:
            raise ValueError(f"fill method {method!r}; expected one of {propagation.FILL_METHODS}")
        self.method = method

    def call(self, inputs):
        values, image = inputs
        return propagation.fill_smooth(values, image, self.method, px_per_unit=units.SIGMA_MAX_PX)

    def get_config(self):
        return {**super().get_config(), "method": self.method}

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0])


NORMS = ("batch", "group")
"""Normalisation of B: "batch" = the authors' graph (BatchNorm in the decoder only, none in the
VGG19 encoder); "group" = GroupNorm (Wu & He, ECCV 2018) after every conv of encoder and
decoder, none on 1-channel logits. GroupNorm does not depend on the other crops of a batch,
so training (batch statistics) and inference (moving statistics) compute the same function."""
GROUP_NORM_MAX_GROUPS = 32    # Wu & He's default
GROUP_NORM_MIN_CHANNELS = 4   # channels per group at low widths (16 channels -> 4 groups)


def group_count(channels_):
    """GroupNorm groups for ``channels_``: at most 32, at least 4 channels each, dividing."""
    g = max(1, min(GROUP_NORM_MAX_GROUPS, channels_ // GROUP_NORM_MIN_CHANNELS))
    while channels_ % g:
        g -= 1
    return g


def norm_layer(norm, name, channels_):
    """The normalisation layer ``norm`` (one of ``NORMS``) named ``name`` for ``channels_``."""
    if norm == "batch":
        return batch_norm(name)
    if norm == "group":
        return keras.layers.GroupNormalization(groups=group_count(channels_), epsilon=BN_EPSILON,
                                               name=name)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def conv_block(x, filters, conv_name, bn_name=None, kernel_size=3, pad=True, activation="lrelu",
               use_bias=True, kernel_initializer="he_normal", output_dtype=None, norm="batch"):
    """[SymmetricPad(1)] + VALID conv [+ BN(beta only) or GroupNorm] + activation.

    activation: "lrelu" (LeakyReLU 0.2), "relu", "sigmoid" or None. With ``bn_name`` the
    activation follows the BN, otherwise it follows the conv. ``output_dtype`` (e.g. "float32")
    sets the dtype of the final activation layer (for mixed precision outputs).
    norm: ``NORMS`` entry used when ``bn_name`` is given.
    Layer names: conv ``conv_name``, pad ``conv_name + "_pad"``, BN ``bn_name``, activation
    ``(bn_name or conv_name) + "_" + activation``.
    """
    if pad and kernel_size > 1:
        x = SymmetricPad(kernel_size // 2, name=conv_name + "_pad")(x)
    x = keras.layers.Conv2D(filters, kernel_size, padding="valid", use_bias=use_bias,
                            kernel_initializer=kernel_initializer, name=conv_name)(x)
    if bn_name is not None:
        x = norm_layer(norm, bn_name, filters)(x)
    last = bn_name or conv_name
    if activation == "lrelu":
        x = keras.layers.LeakyReLU(negative_slope=LRELU_SLOPE, name=last + "_lrelu",
                                   dtype=output_dtype)(x)
    elif activation in ("relu", "sigmoid"):
        x = keras.layers.Activation(activation, name=f"{last}_{activation}", dtype=output_dtype)(x)
    elif activation is None:
        if output_dtype is not None:
            x = keras.layers.Activation("linear", name=last + "_out", dtype=output_dtype)(x)
    else:
        raise ValueError(f"unknown activation {activation!r}")
    return x
