"""LiteRT (TFLite) helpers shared by inference and export: how images enter a model's input
tensor, how its outputs are read back, and which operators a ``.tflite`` file uses.

NumPy only; ``ai_edge_litert`` is imported by the functions that parse model files.
"""

import functools
from pathlib import Path

import numpy as np


def tflite_input(x, details):
    """Images ``x`` (float, RGB in [0,1]) in the encoding of a TFLite input tensor: float32
    for float inputs; integer inputs (int8 exports: uint8 with scale 1/255, zero point 0) are
    quantized with the tensor's scale and zero point, or take the raw 0..255 pixel values when
    it has none. details: a LiteRT input detail dict (``dtype``, ``quantization``)."""
    dtype = details["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return np.asarray(x, np.float32)
    scale, zero = details["quantization"]
    x = np.asarray(x, np.float32)
    x = x / scale + zero if scale else x * 255.0
    info = np.iinfo(dtype)
    return np.clip(np.round(x), info.min, info.max).astype(dtype)


def tflite_output(y, details):
    """An output tensor value ``y`` as float32: integer outputs are dequantized with the
    tensor's scale (1 when it has none) and zero point. details: a LiteRT output detail dict."""
    if np.issubdtype(y.dtype, np.integer):
        scale, zero = details["quantization"]
        y = (y.astype(np.float32) - zero) * (scale if scale else 1.0)
    return y.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _builtin_names():
    from ai_edge_litert import schema_py_generated as schema
    return {v: k for k, v in vars(schema.BuiltinOperator).items()
            if not k.startswith("_") and isinstance(v, int)}


def opcode_name(builtin_code, deprecated_code, custom_code=None):
    """Name of a TFLite operator code: its schema name (``CONV_2D`` ...) or ``CUSTOM:<code>``.
    Codes >= 127 live in builtin_code; older files use deprecated_builtin_code (int8)."""
    from ai_edge_litert import schema_py_generated as schema
    code = max(builtin_code, deprecated_code)
    if code == schema.BuiltinOperator.CUSTOM:
        custom = custom_code.decode() if isinstance(custom_code, bytes) else custom_code
        return "CUSTOM:" + (custom or "?")
    return _builtin_names().get(code, f"BUILTIN_{code}")


def tflite_op_names(model):
    """Sorted names of the operators a ``.tflite`` model (path or bytes) uses.

    Builtins by their schema name (``CONV_2D``, ``MIRROR_PAD`` ...); custom and Flex (TF Select)
    ops as ``CUSTOM:<code>`` (e.g. ``CUSTOM:FlexConv2D``). Parsed with the flatbuffer schema
    shipped in ``ai_edge_litert``.
    """
    from ai_edge_litert import schema_py_generated as schema
    buf = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    m = schema.Model.GetRootAs(buf, 0)
    codes = [opcode_name(oc.BuiltinCode(), oc.DeprecatedBuiltinCode(), oc.CustomCode())
             for oc in (m.OperatorCodes(i) for i in range(m.OperatorCodesLength()))]
    used = set()
    for s in range(m.SubgraphsLength()):
        sub = m.Subgraphs(s)
        for o in range(sub.OperatorsLength()):
            used.add(codes[sub.Operators(o).OpcodeIndex()])
    return tuple(sorted(used))


def non_builtin_ops(model):
    """Op names of ``model`` that are not TFLite builtins (custom or Flex); empty if all are."""
    return tuple(n for n in tflite_op_names(model) if n.startswith("CUSTOM:"))
