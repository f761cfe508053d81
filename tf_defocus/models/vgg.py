"""VGG19 convolutional trunk (conv1_1 .. conv5_4) as used by DMENet's encoder and content loss.

DMENet (``codeslake/DMENet`` ``model.py``, ``VGG19_down``) runs the 16 VGG19 3x3 convs with a
1-px SYMMETRIC pad + VALID conv + ReLU, 2x2/2 max-pools (SAME) after conv1_2, conv2_2, conv3_4
and conv4_4, and no pool5. Layer names follow ``keras.applications.VGG19`` (``block1_conv1``,
``block1_pool``, ...) so ImageNet weights copy over by name; the kernels have the same shapes
whether padding is SAME or symmetric + VALID.
"""

import os

import keras

from tf_defocus.models.layers import SymmetricPad, channels, norm_layer

# (block, number of convs, base channels)
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
VGG19_CONV_NAMES = tuple(f"block{b}_conv{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))
# The encoder skips (last conv of blocks 1..4) and bottom (conv5_4).
VGG19_SKIP_NAMES = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4")


def vgg19_trunk(x, width=1.0, last="block5_conv4", padding="symmetric", norm=None):
    """Apply the VGG19 convs to the preprocessed (BGR, mean-subtracted) tensor ``x``.

    x: (N,H,W,3) caffe-preprocessed image; H, W may be None (multiples of 16 at run time for
    the full trunk). width: channel multiplier. last: name of the last conv to build.
    padding: "symmetric" (DMENet: 1-px symmetric pad + VALID) or "same".
    norm: None (VGG19, DMENet) or "group": GroupNorm ``<conv name>_gn`` between each conv
    and its ReLU (``layers.NORMS``; for training from scratch).
    Returns a dict conv name -> feature tensor (after ReLU) for every conv built.
    """
    if last not in VGG19_CONV_NAMES:
        raise ValueError(f"last must be one of {VGG19_CONV_NAMES}, got {last!r}")
    if padding not in ("symmetric", "same"):
        raise ValueError(f"padding must be 'symmetric' or 'same', got {padding!r}")
    features = {}
    for block, n_convs, base in VGG19_BLOCKS:
        if block > 1:
            x = keras.layers.MaxPooling2D(2, strides=2, padding="same",
                                          name=f"block{block - 1}_pool")(x)
        for i in range(1, n_convs + 1):
            name = f"block{block}_conv{i}"
            if padding == "symmetric":
                x = SymmetricPad(1, name=name + "_pad")(x)
            x = keras.layers.Conv2D(channels(base, width), 3,
                                    padding="valid" if padding == "symmetric" else "same",
                                    activation="relu" if norm is None else None,
                                    kernel_initializer="he_normal", name=name)(x)
            if norm is not None:
                x = norm_layer(norm, name + "_gn", channels(base, width))(x)
                x = keras.layers.ReLU(name=name + "_relu")(x)
            features[name] = x
            if name == last:
                return features
    return features


def load_vgg19_imagenet(model, weights_path, width=1.0, layer_names=None):
    """Copy ImageNet VGG19 conv kernels and biases into ``model``'s layers of the same name.

    weights_path: local Keras VGG19 weights file, e.g.
    ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (never downloaded here).
    layer_names: which ``blockN_convM`` layers to fill (default: every one ``model`` has).
    Only valid at width 1.0. Returns the list of filled layer names.
    """
    weights_path = os.fspath(weights_path)
    if width != 1.0:
        raise ValueError(f"ImageNet VGG19 weights ({weights_path}) need width=1.0; got width={width}. "
                         "Use vgg_weights=None for narrower models.")
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"VGG19 weights file not found: {weights_path}")
    own = {layer.name for layer in model.layers}
    names = [n for n in (layer_names or VGG19_CONV_NAMES) if n in own]
    if not names:
        raise ValueError(f"model {model.name!r} has no VGG19 conv layers to fill")
    try:
        reference = keras.applications.VGG19(weights=weights_path, include_top=False,
                                             input_shape=(None, None, 3))
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"could not load VGG19 weights from {weights_path}: {err}") from err
    for name in names:
        src = reference.get_layer(name).get_weights()
        dst = model.get_layer(name)
        shapes = [tuple(w.shape) for w in dst.get_weights()]
        if [tuple(w.shape) for w in src] != shapes:
            raise ValueError(f"{weights_path}: layer {name} has shapes {[w.shape for w in src]}, "
                             f"model expects {shapes}")
        dst.set_weights(src)
    return names
