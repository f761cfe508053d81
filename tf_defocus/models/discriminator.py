"""DMENet domain discriminator D (``feature_discriminator`` in the authors' ``model.py``).

Five 4x4 stride-2 SAME convs (64, 128, 256, 512, 1) x width, no biases; BN (beta only) +
LeakyReLU(0.2) after the first four; the last conv gives PatchGAN logits (no activation).
Layer names mirror the TensorLayer scopes: ``h0_c1``, ``h0_b1``, ..., ``h4_c1``.
"""

import keras

from tf_defocus.models.layers import LRELU_SLOPE, WidthConfigMixin, batch_norm, channels

_BASES = (64, 128, 256, 512)


@keras.saving.register_keras_serializable(package="tf_defocus")
class DomainDiscriminator(WidthConfigMixin, keras.Model):
    """Input ``feature`` (N,H,W,round(64*width)) -> float32 logits (N,ceil(H/32),ceil(W/32),1).

    Logit > 0 means "synthetic domain" (the authors label synthetic 1, real 0).
    """

    def __init__(self, width=1.0, name="domain_discriminator", **kwargs):
        width = float(width)
        feature = keras.Input(shape=(None, None, channels(64, width)), name="feature")
        x = feature
        for i, base in enumerate(_BASES):
            x = keras.layers.Conv2D(channels(base, width), 4, strides=2, padding="same",
                                    use_bias=False, kernel_initializer="he_normal",
                                    name=f"h{i}_c1")(x)
            x = batch_norm(f"h{i}_b1")(x)
            x = keras.layers.LeakyReLU(negative_slope=LRELU_SLOPE, name=f"h{i}_b1_lrelu")(x)
        x = keras.layers.Conv2D(1, 4, strides=2, padding="same", use_bias=False,
                                kernel_initializer="glorot_uniform", name="h4_c1")(x)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
        super().__init__(inputs=feature, outputs=logits, name=name, **kwargs)
        self.width = width
