"""Export-time rewrites of a Keras inference model: same function, better exported graph.

All rewrites clone the functional graph with ``keras.models.clone_model`` and share (or copy)
the weights; the float outputs are unchanged up to float32 round-off.

* (TFLite only) ``SymmetricPad(p)`` -> slices + concatenation. TFLite's ``MIRROR_PAD`` has no
  XNNPACK kernel, so every pad splits the delegated graph; with slices and concatenations the
  whole network runs in XNNPACK (measured ~3-7x faster at 512x512 on CPU).
* (TFLite only) ``fold_input_preprocessing``: DMENet's in-graph caffe preprocessing
  (x255, RGB->BGR, minus the VGG mean) is folded into the first convolution (weights x255 with
  the input channels reversed, bias minus W . mean; exact because the symmetric pad between them
  commutes with a per-pixel affine map). Quantized, the preprocessed tensor spans ~275 levels
  of 1.0, which int8 can only hold at a step of ~1.08: the re-rounding adds banding noise that
  the blur estimator reads as texture (int8 MAE 0.10 -> 0.015 sigma/7 on a trained model).
  Folded, the uint8 pixels reach the first conv without any re-rounding.
* (quantized TFLite only) ``equalize_concat_inputs``: DMENet concatenates decoder features
  (|x| ~ 1) with raw VGG skips (|x| up to 1e3..1e6, no normalisation). An int8 CONCATENATION
  shares one scale across its inputs (TFLite 8-bit spec), which rounds the decoder half to
  zero, and dynamic-range kernels quantize the concatenated conv input per tensor with the same
  effect. Each concat input ``i`` is multiplied by ``c_i`` (so all inputs have the same
  calibrated max |x|) and the following conv's kernel rows for those channels by ``1 / c_i``:
  the float function is unchanged, every input keeps its int8 resolution.
"""

import keras
import numpy as np
import tensorflow as tf

MAX_CONCAT_INPUTS = 4   # XNNPACK delegates CONCATENATION with a small number of inputs


def _concat_many(pieces, axis):
    """Concatenate with at most MAX_CONCAT_INPUTS inputs per op (nested)."""
    while len(pieces) > MAX_CONCAT_INPUTS:
        pieces = [pieces[i:i + MAX_CONCAT_INPUTS] for i in range(0, len(pieces), MAX_CONCAT_INPUTS)]
        pieces = [p[0] if len(p) == 1 else tf.concat(p, axis) for p in pieces]
    return pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis)


def _mirror(x, p, axis):
    """Symmetric pad of ``p`` along ``axis`` (1 or 2) from single-row/column slices."""
    def take(start, stop):
        return x[:, start:stop] if axis == 1 else x[:, :, start:stop]
    top = [take(i, i + 1) for i in reversed(range(p))]
    bottom = [take(-1 - i, -i if i else None) for i in range(p)]
    return _concat_many(top + [x] + bottom, axis)


class SliceSymmetricPad(keras.layers.Layer):
    """Symmetric spatial pad of ``pad`` px (like ``SymmetricPad``) built from STRIDED_SLICE +
    CONCATENATION, which XNNPACK delegates (MIRROR_PAD it does not)."""

    def __init__(self, pad=1, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, x):
        if self.pad == 0:
            return x
        return _mirror(_mirror(x, self.pad, 1), self.pad, 2)

    def compute_output_shape(self, s):
        g = lambda v: None if v is None else v + 2 * self.pad
        return (s[0], g(s[1]), g(s[2]), s[3])


class ScaledConcatenate(keras.layers.Layer):
    """Concatenate ``inputs[i] * scales[i]`` along ``axis`` (float-equivalent rebalancing)."""

    def __init__(self, scales, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.scales = [float(s) for s in scales]
        self.axis = int(axis)

    def call(self, inputs):
        parts = [x if s == 1.0 else x * s for x, s in zip(inputs, self.scales)]
        return tf.concat(parts, self.axis)

    def compute_output_shape(self, shapes):
        out = list(shapes[0])
        dims = [s[self.axis] for s in shapes]
        out[self.axis] = None if any(d is None for d in dims) else sum(dims)
        return tuple(out)


def _walk(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def _replacement(layer, tflite):
    from tf_defocus.models.layers import SymmetricPad
    if tflite and isinstance(layer, SymmetricPad):
        return SliceSymmetricPad(layer.pad, name=layer.name)
    return None


def export_friendly(model, tflite=False):
    """``model`` with (if ``tflite``) ``SymmetricPad`` replaced by the equivalent
    export-friendly layer (see the module docstring); weights shared.
    Returns ``model`` itself when nothing needs replacing."""
    if not any(_replacement(l, tflite) is not None for l in _walk(model)):
        return model

    def clone(layer):
        new = _replacement(layer, tflite)
        if new is not None:
            return new
        if isinstance(layer, keras.Model) and any(
                _replacement(l, tflite) is not None for l in _walk(layer)):
            return export_friendly(layer, tflite)
        return layer

    out = keras.models.clone_model(model, clone_function=clone)
    if [id(w) for w in out.weights] != [id(w) for w in model.weights]:
        raise RuntimeError(f"{model.name}: export rewrite did not share the weights")
    return out


# ----------------------------------------------------------------------------- equalization

def _model_nodes(model):
    """The graph nodes of this functional model (a layer shared with another model, e.g. the
    trainable BlurEstimator, also has nodes there; those are ignored)."""
    return [n for nodes in model._nodes_by_depth.values() for n in nodes]


def _graph_index(model):
    """(nodes, users: id(tensor) -> consuming nodes, calls: id(layer) -> number of calls,
    outputs: ids of the model's output tensors) of a functional model."""
    nodes = _model_nodes(model)
    users, calls = {}, {}
    for n in nodes:
        calls[id(n.operation)] = calls.get(id(n.operation), 0) + 1
        for t in n.input_tensors:
            users.setdefault(id(t), []).append(n)
    return nodes, users, calls, {id(t) for t in model.outputs}


def _pad_like(layer):
    from tf_defocus.models.layers import SymmetricPad
    return isinstance(layer, (SymmetricPad, SliceSymmetricPad, keras.layers.ZeroPadding2D))


def concat_plan(model):
    """Concatenations that can be rebalanced: list of (concat layer, input tensors, conv layer)
    where the concat joins on the last axis and feeds exactly one chain of zero or more pads
    (scale-equivariant) ending in a ``Conv2D`` used once in this model."""
    nodes, users, calls, outputs = _graph_index(model)
    plan = []
    for n in nodes:
        layer = n.operation
        if not isinstance(layer, keras.layers.Concatenate) or layer.axis not in (-1, 3):
            continue
        if calls[id(layer)] != 1 or id(n.output_tensors[0]) in outputs:
            continue
        nxt = users.get(id(n.output_tensors[0]), [])
        while (len(nxt) == 1 and _pad_like(nxt[0].operation)
               and id(nxt[0].output_tensors[0]) not in outputs):
            nxt = users.get(id(nxt[0].output_tensors[0]), [])
        if (len(nxt) == 1 and type(nxt[0].operation) is keras.layers.Conv2D
                and calls[id(nxt[0].operation)] == 1):
            plan.append((layer, list(n.input_tensors), nxt[0].operation))
    return plan


def _chain_to_conv(nodes_users, out_tensor, outputs, allowed):
    """Follow single-consumer ``allowed`` layers from ``out_tensor``; the Conv2D node at the
    end or None."""
    nxt = nodes_users.get(id(out_tensor), [])
    while (len(nxt) == 1 and isinstance(nxt[0].operation, allowed)
           and id(nxt[0].output_tensors[0]) not in outputs):
        nxt = nodes_users.get(id(nxt[0].output_tensors[0]), [])
    if len(nxt) == 1 and type(nxt[0].operation) is keras.layers.Conv2D:
        return nxt[0]
    return None


def fold_input_preprocessing(model):
    """Fold ``CaffePreprocess`` into the first conv (see the module docstring).

    Returns ``(new_model, folded_conv_name or None)``; the model itself when there is nothing
    to fold (no CaffePreprocess feeding, through symmetric pads only, one biased Conv2D).
    """
    from tf_defocus.models.layers import VGG_MEAN_BGR, CaffePreprocess, SymmetricPad
    nodes, users, calls, outputs = _graph_index(model)
    pre = [n for n in nodes if isinstance(n.operation, CaffePreprocess)]
    if len(pre) != 1 or calls[id(pre[0].operation)] != 1:
        return model, None
    conv_node = _chain_to_conv(users, pre[0].output_tensors[0], outputs,
                               (SymmetricPad, SliceSymmetricPad))
    if conv_node is None:
        return model, None
    conv = conv_node.operation
    if calls[id(conv)] != 1 or not conv.use_bias or conv.get_weights()[0].shape[2] != 3:
        return model, None
    pre_layer = pre[0].operation
    replacement = {}

    def clone(layer):
        if layer is pre_layer:
            return keras.layers.Identity(name=layer.name)
        if layer is conv:
            replacement["conv"] = keras.layers.Conv2D.from_config(layer.get_config())
            return replacement["conv"]
        return layer

    out = keras.models.clone_model(model, clone_function=clone)
    kernel, bias = conv.get_weights()
    mean = np.asarray(VGG_MEAN_BGR, np.float64)
    new_kernel = 255.0 * kernel.astype(np.float64)[:, :, ::-1, :]
    new_bias = bias.astype(np.float64) - np.einsum("hwco,c->o", kernel.astype(np.float64), mean)
    replacement["conv"].set_weights([new_kernel.astype(kernel.dtype), new_bias.astype(bias.dtype)])
    return out, conv.name


def equalize_concat_inputs(model, images):
    """Rebalance concatenation inputs for quantization (see the module docstring).

    images: calibration images, float32 (H,W,3) RGB [0,1] each (a list, or an (N,H,W,3)
    array; sizes may differ). Returns ``(new_model, report)``
    with report a list of (concat name, [max |x| per input], [scale per input]). Weights not
    touched by the rewrite are shared; the compensated convs get new (copied) weights.
    Raises RuntimeError if the rewritten model's output differs from the original.
    """
    plan = concat_plan(model)
    if not plan:
        return model, []
    probe = keras.Model(model.inputs[0], [t for _, ins, _ in plan for t in ins])
    images = [np.asarray(im, np.float32) for im in images]
    if not images:
        raise ValueError("equalize_concat_inputs needs at least one calibration image")
    maxima = None
    for im in images:
        outs = probe(im[None], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        m = np.array([float(np.max(np.abs(np.asarray(o)))) for o in outs])
        maxima = m if maxima is None else np.maximum(maxima, m)
    scales, report, k = {}, [], 0
    for concat, ins, conv in plan:
        mx = maxima[k:k + len(ins)]
        k += len(ins)
        target = mx[0] if mx[0] > 0 else max(mx.max(), 1.0)
        s = [float(target / v) if v > 0 else 1.0 for v in mx]
        scales[concat.name] = s
        report.append((concat.name, [float(v) for v in mx], s))

    convs = {conv.name: (concat, ins, conv) for concat, ins, conv in plan}
    new_convs = {}

    def clone(layer):
        if layer.name in scales and isinstance(layer, keras.layers.Concatenate):
            return ScaledConcatenate(scales[layer.name], axis=layer.axis, name=layer.name)
        if layer.name in convs and layer is convs[layer.name][2]:
            new = keras.layers.Conv2D.from_config(layer.get_config())
            new_convs[layer.name] = new
            return new
        return layer

    out = keras.models.clone_model(model, clone_function=clone)
    for name, (concat, ins, conv) in convs.items():
        kernel, *rest = conv.get_weights()
        kernel = kernel.copy()
        start = 0
        for t, s in zip(ins, scales[concat.name]):
            c = int(t.shape[-1])
            kernel[:, :, start:start + c, :] /= s
            start += c
        if start != kernel.shape[2]:
            raise RuntimeError(f"{conv.name}: kernel depth {kernel.shape[2]} != concat width {start}")
        new_convs[name].set_weights([kernel, *rest])

    check_same_function(model, out, images[0], "concat equalization")
    return out, report


def check_same_function(model, rewritten, image, what, atol=1e-4):
    """Raise RuntimeError if ``rewritten`` differs from ``model`` on ``image`` (H,W,3) by more
    than ``atol`` (native output units)."""
    x = np.asarray(image, np.float32)[None]
    ref = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
    got = np.asarray(keras.ops.convert_to_numpy(rewritten(x, training=False)))
    err = float(np.max(np.abs(ref - got)))
    if not err <= atol:
        raise RuntimeError(f"{model.name}: {what} changed the output by {err:.3g} (> {atol:g})")
