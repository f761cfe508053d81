"""DMENet blur estimation network B: VGG19 encoder, U-Net decoder, 7 residual refinement blocks.

Faithful to the authors' ``model.py`` (``VGG19_down`` + ``UNet_up``, ``codeslake/DMENet``):

* caffe preprocessing inside the graph; encoder = VGG19 conv1_1..conv5_4 with 1-px symmetric
  pad + VALID conv + ReLU, 4 max-pools (bottleneck at 1/16);
* decoder levels 1/8 (3 x 256), 1/4 (3 x 128), 1/2 (3 x 64), 1/1 (1 x 64): nearest x2
  upsampling, concat ``[upsampled, skip]``, pad + conv + BN(beta only) + LeakyReLU(0.2);
* aux heads at 1/16 (on conv5_4), 1/8, 1/4, 1/2, 1/1: conv (256/128/64/32/32) + BN + LReLU,
  conv to 1 + BN + sigmoid;
* refinement: 7 blocks ``lrelu(bn(conv1x1(x))) + main(x)`` with main two 3x3 conv-BN-LReLU,
  no activation after the add; head conv 64, conv 32 (BN + LReLU), conv 1 + sigmoid.

Keras layer names mirror the TensorLayer scopes with ``/`` -> ``_`` (``u3/c1`` -> ``u3_c1``,
``u0/c_res0`` -> ``u0_c_res0``); encoder convs use ``keras.applications.VGG19`` names
(``block1_conv1``). ``tf_defocus.convert_official`` relies on these names.
"""

import keras

from tf_defocus.model_kinds import DEFOCUS
from tf_defocus.models.blur_cues import BlurCues
from tf_defocus.models.layers import (NORMS, CaffePreprocess, FillSmooth, NearestUpsample,
                                      WidthConfigMixin, channels, conv_block)
from tf_defocus.models.vgg import VGG19_SKIP_NAMES, load_vgg19_imagenet, vgg19_trunk

NUM_REFINE_BLOCKS = 7
# Output name -> downsampling factor of the auxiliary heads.
AUX_FACTORS = {"aux_16": 16, "aux_8": 8, "aux_4": 4, "aux_2": 2, "aux_1": 1}
OUTPUT_NAMES = ("defocus",) + tuple(AUX_FACTORS) + ("feature",)
STEP_BOUNDS = "step_bounds"   # the optional depth-step head's output (``step_head``)
INFERENCE_MODEL_NAME = DEFOCUS.model_name   # "blur_estimator"; input H, W: DEFOCUS.size_multiple
# Decoder levels: (TensorLayer scope, skip conv name, base channels, number of convs).
_DECODER_LEVELS = (("u3", "block4_conv4", 256, 3), ("u2", "block3_conv4", 128, 3),
                   ("u1", "block2_conv2", 64, 3))
# Aux head scope -> base channels of its first conv.
_AUX_BASE = {"u4_aux": 256, "u3_aux": 128, "u2_aux": 64, "u1_aux": 32, "u0_aux": 32}


def output_names(step_head=False):
    """B's training outputs: ``OUTPUT_NAMES``, then ``STEP_BOUNDS`` with ``step_head``."""
    return OUTPUT_NAMES + ((STEP_BOUNDS,) if step_head else ())


def _aux_head(x, scope, width, out_name, norm):
    """conv3x3 + BN + LReLU, conv3x3 to 1 + BN + sigmoid (float32) -> (N,h,w,1) in [0,1].
    With norm="group" the 1-channel logit has no normalisation (its bias sets the level)."""
    x = conv_block(x, channels(_AUX_BASE[scope], width), f"{scope}_c1", f"{scope}_b1", norm=norm)
    x = conv_block(x, 1, f"{scope}_c2", f"{scope}_b2" if norm == "batch" else None,
                   activation=None, kernel_initializer="glorot_uniform", norm=norm)
    return keras.layers.Activation("sigmoid", dtype="float32", name=out_name)(x)


@keras.saving.register_keras_serializable(package="tf_defocus")
class BlurEstimator(WidthConfigMixin, keras.Model):
    """DMENet's B as a functional Keras model (graph built in ``__init__``).

    Input ``image``: (N,H,W,3) float32 RGB in [0,1]; H, W multiples of 16 (None allowed).
    Outputs (dict, all float32):
      ``defocus`` (N,H,W,1) sigma/7 in [0,1]; ``aux_16``, ``aux_8``, ``aux_4``, ``aux_2``,
      ``aux_1`` (N,H/k,W/k,1) side outputs in [0,1]; ``feature`` (N,H,W,round(64*width)) the
      full-resolution decoder feature (``u0/b_init``) that the domain discriminator sees.
    width: channel multiplier (1.0 = the paper). norm: "batch" (the paper) or "group"
    (``layers.NORMS``; GroupNorm in encoder and decoder, for training from scratch).
    cues: also feed ``blur_cues.BlurCues`` (re-blur gradient ratios, not in the paper) to the
    first encoder conv and to the full-resolution decoder level (``u0_c_init``).
    step_head: also output ``step_bounds`` (N,H,W,2) in [0,1], the (lo, hi) sigma/7 of
    ``training.losses.depth_step_bounds`` (the sharpest sigma within a pixel's disc, the most
    blurred whose disc reaches it), read from the refined features by conv-BN-LReLU + conv +
    sigmoid (``us_*``; not in the paper): an auxiliary target that marks occlusion boundaries
    and their sides for training only (the inference model does not compute it).
    vgg_weights: optional local path of Keras'
    ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (width 1.0 only); not stored in
    the config.
    """

    ARCH_ARGS = ("width", "norm", "cues", "step_head")

    def __init__(self, width=1.0, vgg_weights=None, norm="batch", cues=False, step_head=False,
                 name="blur_estimator_trainable", **kwargs):
        width, cues, step_head = float(width), bool(cues), bool(step_head)
        if cues and vgg_weights is not None:
            raise ValueError("cues=True changes the first conv's input: no ImageNet VGG19 weights")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        block = lambda *a, **k: conv_block(*a, norm=norm, **k)
        image = keras.Input(shape=(None, None, 3), name="image")
        x = CaffePreprocess(name="preprocess")(image)
        if cues:
            cue = BlurCues(name="blur_cues")(image)
            x = keras.layers.Concatenate(axis=-1, name="cues_concat")([x, cue])
        feats = vgg19_trunk(x, width=width, last="block5_conv4", padding="symmetric",
                            norm=None if norm == "batch" else norm)
        skips = [feats[n] for n in VGG19_SKIP_NAMES]   # 1/1, 1/2, 1/4, 1/8, 1/16
        bottom = skips[-1]

        outputs = {"aux_16": _aux_head(bottom, "u4_aux", width, "aux_16", norm)}
        n = bottom
        for (scope, skip_name, base, n_convs), aux_scope, aux_name in zip(
                _DECODER_LEVELS, ("u3_aux", "u2_aux", "u1_aux"), ("aux_8", "aux_4", "aux_2")):
            n = NearestUpsample(2, name=f"{scope}_up")(n)
            # Order matters: [upsampled, skip] (both halves have equal width).
            n = keras.layers.Concatenate(axis=-1, name=f"{scope}_concat")([n, feats[skip_name]])
            for i in range(1, n_convs + 1):
                n = block(n, channels(base, width), f"{scope}_c{i}", f"{scope}_b{i}")
            outputs[aux_name] = _aux_head(n, aux_scope, width, aux_name, norm)

        n = NearestUpsample(2, name="u0_up")(n)
        n = keras.layers.Concatenate(axis=-1, name="u0_concat")(
            [n, feats["block1_conv2"]] + ([cue] if cues else []))
        n = block(n, channels(64, width), "u0_c_init", "u0_b_init")
        outputs["aux_1"] = _aux_head(n, "u0_aux", width, "aux_1", norm)
        outputs["feature"] = keras.layers.Activation("linear", dtype="float32", name="feature")(n)

        c64 = channels(64, width)
        for i in range(NUM_REFINE_BLOCKS):
            shortcut = block(n, c64, f"u0_c_res{i}", f"u0_b_res{i}", kernel_size=1, pad=False)
            main = block(n, c64, f"u0_c{i}_1", f"u0_b{i}_1")
            main = block(main, c64, f"u0_c{i}_2", f"u0_b{i}_2")
            n = keras.layers.Add(name=f"u0_add{i}")([main, shortcut])
        if step_head:
            s = block(n, channels(32, width), "us_c1", "us_b1")
            s = conv_block(s, 2, "us_c2", activation=None, kernel_initializer="glorot_uniform")
            outputs[STEP_BOUNDS] = keras.layers.Activation("sigmoid", dtype="float32",
                                                           name=STEP_BOUNDS)(s)

        n = block(n, c64, "uf_c1", "uf_b1")
        n = block(n, channels(32, width), "uf_c2", "uf_b2")
        n = conv_block(n, 1, "uf_c3", activation=None, kernel_initializer="glorot_uniform")
        outputs["defocus"] = keras.layers.Activation("sigmoid", dtype="float32", name="defocus")(n)

        outputs = {k: outputs[k] for k in output_names(step_head)}
        super().__init__(inputs=image, outputs=outputs, name=name, **kwargs)
        self.width, self.norm, self.cues, self.step_head = width, norm, cues, step_head
        if vgg_weights is not None:
            load_vgg19_imagenet(self, vgg_weights, width=width)

    def inference_model(self, fill_smooth=False, fill_method="pull_push"):
        """Plain functional model ``blur_estimator``: image (N,H,W,3) -> defocus (N,H,W,1),
        sharing this model's layers and weights (what ``blur_estimator.keras`` holds). A float32
        copy of a mixed-precision model: ``training.dmenet_task.float32_inference_model``.
        fill_smooth: end with ``layers.FillSmooth`` (smooth surfaces take the sigma of the
        visible pixels around them; for models trained with ``--smooth_weight`` < 1);
        fill_method: its method (``propagation.FILL_METHODS``).
        """
        image = self.get_layer("image").output
        defocus = self.get_layer("defocus").output
        if fill_smooth:
            defocus = FillSmooth(fill_method, name="fill_smooth")([defocus, image])
        return keras.Model(inputs=image, outputs=defocus, name=INFERENCE_MODEL_NAME)
