"""Export trained tf_defocus models for TF Serving (SavedModel) and phones (TFLite / LiteRT).

``export_saved_model(model, out_dir)`` -> ``out_dir/<model_name>/<version>/`` with signatures
``serving_default`` (encoded image bytes) and ``serve`` (float32 NHWC RGB [0,1]), outputs
``sigma_px`` / ``focus`` (N,H,W,1). ``convert_tflite(model, path, quantize=..., input_size=...)``
-> builtin-ops-only ``.tflite`` plus sidecar ``<stem>.json``. CLI: ``python -m tf_defocus.export``.
"""

from tf_defocus.export.model_io import ExportError, export_friendly, load_inference_model
from tf_defocus.export.saved_model import export_saved_model
from tf_defocus.export.tflite import (QUANTIZATIONS, TFLiteExport, convert_tflite,
                                      convert_tflite_many, non_builtin_ops, tflite_op_names)

__all__ = ["ExportError", "QUANTIZATIONS", "TFLiteExport", "convert_tflite",
           "convert_tflite_many", "export_friendly",
           "export_saved_model", "load_inference_model", "non_builtin_ops", "tflite_op_names"]
