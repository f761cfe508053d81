"""The one place tf_defocus replaces TensorFlow internals, always for one ``with`` block.

``converter_hooks`` routes the TFLite converter's int8 calibration (``Calibrator.calibrate`` in
``tensorflow/lite/python/optimize/calibrator.py``) and quantization (``_mlir_quantize`` in
``tensorflow/lite/python/lite.py``) through callables of the caller (``export.ranges``) and
restores the originals when the block ends, also on an error. One block runs at a time in the
process (a lock): two threads converting at once would otherwise see each other's hooks. If a
TensorFlow release renames these functions, entering the block raises instead of converting
without the hooks.
"""

import contextlib
import threading

_LOCK = threading.Lock()


@contextlib.contextmanager
def converter_hooks(calibrate, quantize):
    """For the block, TF calls ``calibrate(original, calibrator, dataset_gen)`` instead of
    ``Calibrator.calibrate(calibrator, dataset_gen)`` and ``quantize(original, model_bytes,
    *args, **kwargs)`` instead of ``_mlir_quantize(model_bytes, *args, **kwargs)``."""
    from tensorflow.lite.python import lite
    from tensorflow.lite.python.optimize import calibrator

    targets = ((calibrator.Calibrator, "calibrate", calibrate), (lite, "_mlir_quantize", quantize))
    for owner, name, _ in targets:
        if not callable(getattr(owner, name, None)):
            raise RuntimeError(f"this TensorFlow has no {getattr(owner, '__name__', owner)}."
                               f"{name}; the int8 range hooks cannot be installed")
    with _LOCK:
        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
        try:
            for (owner, name, hook), (_, _, original) in zip(targets, originals):
                setattr(owner, name, _bind(hook, original))
            yield
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)


def _bind(hook, original):
    def call(*args, **kwargs):
        return hook(original, *args, **kwargs)
    return call
