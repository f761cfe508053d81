"""DoFNet: the KCI 2020 paper's SRCNN-style network, image -> DoF weight map (KCI 2020 summer conference paper on DoF regions).

Architecture (SRCNN, Dong et al. 2014, with the KCI paper's output): conv k1 x k1 (64) + ReLU,
conv k2 x k2 (32) + ReLU, conv k3 x k3 to the training target (linear), stride 1, output the
size of the input (any H x W >= k/2). The input RGB in [0, 1] is shifted to [-0.5, 0.5] inside
the graph. Padding: ``"symmetric"`` (default) mirrors (k-1)/2 px before each VALID conv
(``fedcba|abcdef``, TFLite MIRROR_PAD), the same border rule as the classical weight map
(``cv2.BORDER_REFLECT``), so the network is not shown a fake edge at the image border as with
zero padding; ``"zero"`` is SRCNN's zero SAME padding.

The training target (``target=``) is either the smoothed weight map ``W_s`` (1 channel) or
the paper's weighted image ``W' = W_s x I`` (3 channels); ``tf_defocus.dof.dof_training_target``
makes both. ``inference_model()`` always maps the image to the focus weight (N, H, W, 1) in
[0, 1], 1 = in focus: for ``weighted_image`` it recovers ``W`` from ``W'`` and the input inside
the graph (same formula as ``tf_defocus.dof.recover_weight_map``) with TFLite builtin ops only
(MUL, SUM, ADD, DIV, MINIMUM, MAXIMUM), so SavedModel / TFLite exports need no Python.
"""

import keras
from keras import ops

from tf_defocus.dof import RECOVERY_EPS, TARGETS
from tf_defocus.model_kinds import DOF_WEIGHT
from tf_defocus.models.layers import SymmetricPad

PACKAGE = "tf_defocus"
INFERENCE_NAME = DOF_WEIGHT.model_name   # "dofnet"
PADDINGS = ("symmetric", "zero")


def _channels(base, width):
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(1, int(round(base * width)))


def target_channels(target):
    """Output channels of the network for a training target: 1 (weight) or 3 (weighted_image)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    return 1 if target == "weight" else 3


@keras.saving.register_keras_serializable(package=PACKAGE)
class FocusFromPrediction(keras.layers.Layer):
    """[prediction (N,H,W,C), image (N,H,W,3)] -> focus weight (N,H,W,1) in [0, 1].

    target="weight": clip(prediction, 0, 1).
    target="weighted_image": sum_c(P_c I_c) / (sum_c I_c^2 + eps), clipped to [0, 1]
      (least-squares W of P = W * I with a Tikhonov term; see ``recover_weight_map``).
    """

    def __init__(self, target="weighted_image", eps=RECOVERY_EPS, **kwargs):
        super().__init__(**kwargs)
        target_channels(target)
        self.target = target
        self.eps = float(eps)

    def call(self, inputs):
        pred, image = inputs
        pred = ops.cast(pred, self.compute_dtype)
        if self.target == "weight":
            w = pred
        else:
            image = ops.cast(image, self.compute_dtype)
            num = ops.sum(pred * image, axis=-1, keepdims=True)
            den = ops.sum(image * image, axis=-1, keepdims=True) + self.eps
            w = num / den
        return ops.clip(w, 0.0, 1.0)

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0][:-1]) + (1,)

    def get_config(self):
        config = super().get_config()
        config.update(target=self.target, eps=self.eps)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class DoFNet(keras.Model):
    """SRCNN-style DoF network. Call: image (N,H,W,3) float32 RGB [0,1] -> raw prediction.

    width: multiplier of ``filters``; kernel_sizes: the three kernel sizes (odd, SRCNN's 9-1-5
      by default, 9-5-5 is the larger variant); filters: channels of the first two convs;
    target: "weight" (output (N,H,W,1), the smoothed weight map) or "weighted_image" (output
      (N,H,W,3), W x I). Outputs are linear (not clipped) during training.
    padding: "symmetric" (mirror, default) or "zero" (see the module docstring).
    """

    def __init__(self, width=1.0, kernel_sizes=(9, 1, 5), filters=(64, 32),
                 target="weighted_image", padding="symmetric", **kwargs):
        kwargs.setdefault("name", "dofnet_srcnn")
        super().__init__(**kwargs)
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        filters = tuple(int(f) for f in filters)
        if len(kernel_sizes) != 3 or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be three odd sizes >= 1, got {kernel_sizes}")
        if len(filters) != 2 or any(f < 1 for f in filters):
            raise ValueError(f"filters must be two positive channel counts, got {filters}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.padding = padding
        self.width = float(width)
        self.kernel_sizes = kernel_sizes
        self.filters = filters
        self.target = target
        out_channels = target_channels(target)
        f1, f2 = (_channels(f, self.width) for f in filters)
        k1, k2, k3 = kernel_sizes
        self.center = keras.layers.Rescaling(1.0, offset=-0.5, name="center")
        conv_pad = "same" if padding == "zero" else "valid"
        self.conv1 = keras.layers.Conv2D(f1, k1, padding=conv_pad, activation="relu", name="conv1")
        self.conv2 = keras.layers.Conv2D(f2, k2, padding=conv_pad, activation="relu", name="conv2")
        self.conv3 = keras.layers.Conv2D(out_channels, k3, padding=conv_pad, name="conv3")
        self.pads = [SymmetricPad(k // 2, name=f"pad{i + 1}")
                     if padding == "symmetric" and k > 1 else None
                     for i, k in enumerate(kernel_sizes)]
        self.build((None, None, None, 3))  # the input is always RGB: weights exist right away

    def _stages(self):
        return [(pad, conv) for pad, conv in zip(self.pads, (self.conv1, self.conv2, self.conv3))]

    def _apply(self, image):
        x = self.center(image)
        for pad, conv in self._stages():
            x = conv(pad(x) if pad is not None else x)
        return x

    def call(self, image):
        return self._apply(image)

    def build(self, input_shape):
        if self.built:
            return
        x = self.center.compute_output_shape(input_shape)
        for pad, conv in self._stages():
            if pad is not None:
                x = pad.compute_output_shape(x)
            conv.build(x)
            x = conv.compute_output_shape(x)
        self.built = True

    def receptive_field(self):
        """Side of the receptive field of one output pixel [px]."""
        return sum(self.kernel_sizes) - 2

    def inference_model(self):
        """Functional ``keras.Model(name="dofnet")`` sharing these weights:
        image (N,H,W,3) float32 RGB [0,1], any H/W -> focus weight (N,H,W,1) in [0,1]."""
        image = keras.Input(shape=(None, None, 3), name="image", dtype="float32")
        pred = self._apply(image)
        focus = FocusFromPrediction(self.target, name="focus", dtype="float32")([pred, image])
        return keras.Model(image, focus, name=INFERENCE_NAME)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "width": self.width,
                "kernel_sizes": list(self.kernel_sizes), "filters": list(self.filters),
                "target": self.target, "padding": self.padding}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
