"""Export trained tf_defocus models for TF Serving (SavedModel) and phones (TFLite / LiteRT).

``export_saved_model(model, out_dir)`` -> ``out_dir/<model_name>/<version>/`` with signatures
``serving_default`` (encoded image bytes) and ``serve`` (float32 NHWC RGB [0,1]), outputs
``sigma_px`` / ``focus`` (N,H,W,1). ``convert_tflite(model, path, quantize=..., input_size=...)``
-> builtin-ops-only ``.tflite`` plus sidecar ``<stem>.json``. ``ExportConfig`` /
``run_export(config)``: one export job, what the CLI ``python -m tf_defocus.export`` runs.

Names are imported lazily so the CLI can reject bad flags without loading TensorFlow.
"""

import importlib

_EXPORTS = {
    "ExportError": "model_io", "export_friendly": "model_io", "load_inference_model": "model_io",
    "export_saved_model": "saved_model", "ExportConfig": "job", "run_export": "job",
    "QUANTIZATIONS": "tflite", "TFLiteExport": "tflite", "convert_tflite": "tflite",
    "convert_tflite_many": "tflite", "non_builtin_ops": "tflite", "tflite_op_names": "tflite",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tf_defocus.export.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tf_defocus.export' has no attribute {name!r}")
