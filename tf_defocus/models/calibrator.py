"""DMENet sharpness calibration network S (``Binary_Net`` in the authors' ``model.py``).

1x1 convs only (so its gradient sharpens B's map without spatial smearing):
64, 64, 64, 32, 32, 32, 16, 16, 16 (x width), each with bias + BN (beta only) + LeakyReLU(0.2),
then a 1x1 conv to one logit (with bias). Layer names mirror the TensorLayer scopes
(``l1_c1``, ``l1_b1``, ..., ``l4_c1``).
"""

import keras

from tf_defocus.models.layers import WidthConfigMixin, channels, conv_block

_STAGES = ((1, 64), (2, 32), (3, 16))   # (scope index, base channels); 3 convs each


@keras.saving.register_keras_serializable(package="tf_defocus")
class SharpnessCalibrator(WidthConfigMixin, keras.Model):
    """Input ``defocus`` (N,H,W,1) sigma/7 map -> float32 logits (N,H,W,1), 1 = blurred.

    ``sigmoid(logits)`` is the probability that a pixel is out of focus.
    """

    def __init__(self, width=1.0, name="sharpness_calibrator", **kwargs):
        width = float(width)
        defocus = keras.Input(shape=(None, None, 1), name="defocus")
        x = defocus
        for stage, base in _STAGES:
            for i in range(1, 4):
                x = conv_block(x, channels(base, width), f"l{stage}_c{i}", f"l{stage}_b{i}",
                               kernel_size=1, pad=False)
        logits = conv_block(x, 1, "l4_c1", kernel_size=1, pad=False, activation=None,
                            kernel_initializer="glorot_uniform", output_dtype="float32")
        super().__init__(inputs=defocus, outputs=logits, name=name, **kwargs)
        self.width = width
