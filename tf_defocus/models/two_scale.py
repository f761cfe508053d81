"""Two-scale B: DMENet's blur estimator read at full and half scale, fused before the sigmoid.

Not in the paper. At half scale a blur of sigma px is sigma/2 px, inside the range B reads
well; the post-hoc fusion of two readings of the default model gained 6% MAE on validation
set v2 (``benchmarks/two_scale.py``, ``docs/training/default_model/status.md`` item 39). Here
the fusion is trained end to end:

* one B (``BlurEstimator``, shared weights) runs on the image and on its 2x2 average-pooled copy
  (padded to a multiple of 16 inside the graph, so inputs stay multiples of 16);
* at half resolution a small conv net reads B's last features (``uf_b2_lrelu``) and logit
  (``uf_c3``) of both passes and outputs a correction of the full-scale logit; its last conv is
  zero-initialised, so a model warm-started from a one-scale B (``copy_weights_by_name``)
  starts as exactly that B;
* the correction is upsampled (nearest, then a 3x3 box-initialised conv) and added to the
  full-scale logit; ``defocus = sigmoid(logit + correction)``.

Cost: the half-scale pass is a quarter of the pixels (+25% compute), the fusion ~1 k
multiply-adds per pixel.
"""

import keras
import numpy as np

from tf_defocus.models.blur_estimator import INFERENCE_MODEL_NAME, BlurEstimator, output_names
from tf_defocus.models.layers import (CropLike, FillSmooth, NearestUpsample, PadToMultiple,
                                      WidthConfigMixin, channels, conv_block)
from tf_defocus.model_kinds import DEFOCUS

TAP_NAME = "one_scale"
HEAD_FEATURE, LOGIT = "uf_b2_lrelu", "uf_c3"   # B's last feature and its pre-sigmoid logit
# Fusion convs at half resolution: (name, base channels); the last one outputs 1 channel.
_FUSE_CONVS = (("fuse_c1", 64), ("fuse_c2", 64))


def _tap(blur, with_training_outputs):
    """Functional view of ``blur``'s layers: image -> {head, logit[, B's outputs]}."""
    outputs = {"head": blur.get_layer(HEAD_FEATURE).output, "logit": blur.get_layer(LOGIT).output}
    if with_training_outputs:
        outputs.update({k: blur.get_layer(k).output for k in output_names(blur.step_head)})
    return keras.Model(blur.input, outputs, name=TAP_NAME)


def _conv(in_channels, base, name, width):
    """A named fusion conv as a small model (one callable, reusable on new tensors):
    base > 0: conv3x3 + LReLU to ``channels(base, width)``; 0: conv3x3 to 1, zero-initialised;
    -1: conv3x3 1 -> 1 without bias, initialised to a 3x3 box (smooths the upsampled
    correction)."""
    x = keras.Input(shape=(None, None, in_channels))
    if base > 0:
        y = conv_block(x, channels(base, width), name)
    elif base == 0:
        y = conv_block(x, 1, name, activation=None, kernel_initializer="zeros")
    else:
        y = conv_block(x, 1, name, activation=None, use_bias=False,
                       kernel_initializer=keras.initializers.Constant(1.0 / 9.0))
    return keras.Model(x, y, name=name)


def _fused_defocus(image, full, tap_fn, layer, width, scales=2):
    """The graph after B: ``full`` = tap outputs on ``image``; ``tap_fn(padded)`` the tap
    outputs at a coarser scale; ``layer(name, make)`` returns the named fusion layer, calling
    ``make(name)`` the first time. scales 3: a quarter-scale pass adds its own correction
    (zero-initialised) to the half-resolution one."""
    pool = lambda name, x: layer(name, lambda n: keras.layers.AveragePooling2D(2, name=n))(x)
    crop = layer("half_crop", lambda n: CropLike(name=n))
    concat = lambda name, xs: layer(name, lambda n: keras.layers.Concatenate(name=n))(xs)
    conv = lambda name, base, x: layer(name, lambda n: _conv(x.shape[-1], base, n, width))(x)

    def coarse_pass(prefix, coarse_image):
        """B's head and logit on ``coarse_image`` (padded inside, cropped back), concatenated."""
        padded = layer(f"{prefix}_pad",
                       lambda n: PadToMultiple(DEFOCUS.size_multiple, name=n))(coarse_image)
        out = tap_fn(padded)
        return concat(f"{prefix}_concat", [crop([out["head"], coarse_image]),
                                           crop([out["logit"], coarse_image])])

    def correction(prefix, x):
        for name, base in _FUSE_CONVS:
            x = conv(prefix + name, base, x)
        return conv(prefix + "fuse_out", 0, x)

    half_image = pool("half_pool", image)
    x_full = pool("full_pool", concat("full_concat", [full["head"], full["logit"]]))
    x_half = coarse_pass("half", half_image)
    delta = correction("", concat("fuse_concat", [x_full, x_half]))
    if scales == 3:
        x_quarter = coarse_pass("quarter", pool("quarter_pool", half_image))
        x = concat("q_fuse_concat", [pool("q_full_pool", x_full), pool("q_half_pool", x_half),
                                     x_quarter])
        delta_q = layer("q_fuse_up", lambda n: NearestUpsample(2, name=n))(correction("q_", x))
        delta = layer("q_fuse_add", lambda n: keras.layers.Add(name=n))([delta, delta_q])
    delta = layer("fuse_up", lambda n: NearestUpsample(2, name=n))(delta)
    delta = conv("fuse_smooth", -1, delta)
    logit = layer("fuse_add", lambda n: keras.layers.Add(name=n))([full["logit"], delta])
    return layer("defocus", lambda n: keras.layers.Activation("sigmoid", dtype="float32",
                                                              name=n))(logit)


@keras.saving.register_keras_serializable(package="tf_defocus")
class TwoScaleBlurEstimator(WidthConfigMixin, keras.Model):
    """B at full and half scale with a trained fusion (module docstring).

    Same interface as ``BlurEstimator``: input ``image`` (N,H,W,3) RGB in [0,1], H, W multiples
    of 16; outputs ``defocus`` (N,H,W,1) sigma/7 in [0,1] (fused), and B's full-scale ``aux_*``
    and ``feature`` (and ``step_bounds``) for training. width, norm, cues, step_head: B's
    (``BlurEstimator``).
    """

    ARCH_ARGS = ("width", "norm", "scales", "cues", "step_head")

    def __init__(self, width=1.0, norm="batch", scales=2, cues=False, step_head=False,
                 name="two_scale_blur_estimator", **kwargs):
        width, scales, cues, step_head = float(width), int(scales), bool(cues), bool(step_head)
        if scales not in (2, 3):
            raise ValueError(f"scales must be 2 or 3, got {scales}")
        blur = BlurEstimator(width=width, norm=norm, cues=cues, step_head=step_head,
                             name="blur_estimator_one_scale")
        tap = _tap(blur, with_training_outputs=True)
        image = keras.Input(shape=(None, None, 3), name="image")
        full = tap(image)
        made = {}

        def layer(n, make):
            if n not in made:
                made[n] = make(n)
            return made[n]

        outputs = {k: keras.layers.Activation("linear", dtype="float32", name=k)(full[k])
                   for k in output_names(step_head) if k != "defocus"}
        outputs["defocus"] = _fused_defocus(image, full, tap, layer, width, scales)
        outputs = {k: outputs[k] for k in output_names(step_head)}
        super().__init__(inputs=image, outputs=outputs, name=name, **kwargs)
        self.width, self.norm, self.scales, self.cues = width, norm, scales, cues
        self.step_head = step_head

    def inference_model(self, fill_smooth=False, fill_method="pull_push"):
        """Plain functional model ``blur_estimator``: image (N,H,W,3) -> defocus (N,H,W,1),
        sharing this model's weights; B's auxiliary heads are not computed.
        fill_smooth, fill_method: as ``BlurEstimator.inference_model``."""
        tap = self.get_layer(TAP_NAME)
        head_tap = keras.Model(tap.input, {"head": tap.get_layer(HEAD_FEATURE).output,
                                           "logit": tap.get_layer(LOGIT).output},
                               name=TAP_NAME + "_head")
        image = keras.Input(shape=(None, None, 3), name="image")
        defocus = _fused_defocus(image, head_tap(image), head_tap,
                                 lambda n, make: self.get_layer(n), self.width, self.scales)
        if fill_smooth:
            defocus = FillSmooth(fill_method, name="fill_smooth")([defocus, image])
        return keras.Model(inputs=image, outputs=defocus, name=INFERENCE_MODEL_NAME)


def _named_layers(model):
    """name -> layer of ``model`` and of the models nested in it (leaves only)."""
    out = {}
    for l in model.layers:
        if isinstance(l, keras.Model):
            out.update(_named_layers(l))
        else:
            out[l.name] = l
    return out


def copy_weights_by_name(source, target, widen_inputs=False):
    """Copy the weights of every layer of ``source`` (a B, its inference model or a two-scale
    B) into the layer of the same name in ``target`` -> number of layers copied. Raises
    ValueError if none matched or shapes differ.
    widen_inputs: a target conv kernel with more input channels (axis 2) than the source's
    takes the source's in its first channels and zeros in the rest, so a B warm-started
    without ``cues`` into one with them computes what the source did (the cue channels come
    last in both concatenations they enter)."""
    src, dst = _named_layers(source), _named_layers(target)
    copied = 0
    for name, layer in src.items():
        if layer.weights and name in dst:
            weights = layer.get_weights()
            if widen_inputs:
                weights = [_widen(w, v.shape) for w, v in zip(weights, dst[name].weights)]
            dst[name].set_weights(weights)
            copied += 1
    if not copied:
        raise ValueError(f"no layer of {source.name!r} matches a layer of {target.name!r}")
    return copied


def _widen(weight, shape):
    """A 4-D conv kernel ``weight`` zero-padded on its input axis to ``shape``; any other
    weight unchanged (``set_weights`` then rejects a mismatch)."""
    shape = tuple(shape)
    if weight.ndim != 4 or weight.shape == shape or (
            weight.shape[:2] + weight.shape[3:] != shape[:2] + shape[3:]
            or weight.shape[2] > shape[2]):
        return weight
    out = np.zeros(shape, weight.dtype)
    out[:, :, :weight.shape[2]] = weight
    return out
