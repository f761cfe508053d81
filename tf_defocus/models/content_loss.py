"""DMENet content preservation network C: a frozen VGG19 up to conv4_4 (perceptual loss).

As in the authors' ``main.py``: the 1-channel map (sigma/7 in [0,1]) is repeated to 3
channels, preprocessed like an RGB image in [0,1] (x255, BGR, minus VGG mean) and run through
the same VGG19 trunk as the encoder (``VGG19_down``: 1-px symmetric pad + VALID conv + ReLU,
ImageNet weights); the loss is the MSE between the conv4_4 features of prediction and label.
"""

import keras
from keras import ops

from tf_defocus.models.layers import CaffePreprocess
from tf_defocus.models.vgg import load_vgg19_imagenet, vgg19_trunk

DEFAULT_LAYER = "block4_conv4"


@keras.saving.register_keras_serializable(package="tf_defocus")
class ContentLoss(keras.Model):
    """Frozen VGG19 feature extractor for 1-channel maps, plus ``distance(y_pred, y_true)`` (the loss).

    Input ``defocus`` (N,H,W,1) in [0,1] -> float32 features (N,H/8,W/8,round(512*width)) of
    ``layer`` (default conv4_4). H, W multiples of 8. Never trainable: it has no trainable
    weights and must not be given to an optimizer.
    vgg_weights: local path of Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``
    (width 1.0 only) or None (random VGG: tests and ablations only).
    """

    def __init__(self, vgg_weights=None, width=1.0, layer=DEFAULT_LAYER, padding="symmetric",
                 name="content_loss", **kwargs):
        kwargs.pop("trainable", None)
        width = float(width)
        defocus = keras.Input(shape=(None, None, 1), name="defocus")
        rgb = keras.layers.Concatenate(axis=-1, name="to_rgb")([defocus, defocus, defocus])
        x = CaffePreprocess(name="preprocess")(rgb)
        feats = vgg19_trunk(x, width=width, last=layer, padding=padding)
        out = keras.layers.Activation("linear", dtype="float32", name="features")(feats[layer])
        super().__init__(inputs=defocus, outputs=out, name=name, trainable=False, **kwargs)
        self.width = width
        self.layer_name = layer
        self.padding = padding
        self.has_imagenet_weights = vgg_weights is not None
        if vgg_weights is not None:
            load_vgg19_imagenet(self, vgg_weights, width=width)

    def distance(self, y_pred, y_true):
        """Mean squared difference of the VGG features of two (N,H,W,1) maps; float32 scalar."""
        n = ops.shape(y_pred)[0]
        both = ops.concatenate([ops.cast(y_pred, "float32"), ops.cast(y_true, "float32")], axis=0)
        feats = self(both, training=False)
        return ops.mean(ops.square(feats[:n] - feats[n:]))

    def get_config(self):
        return {"width": self.width, "layer": self.layer_name, "padding": self.padding,
                "name": self.name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)
