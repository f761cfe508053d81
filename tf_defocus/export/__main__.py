"""Export a trained tf_defocus model for TF Serving (SavedModel) or phones (TFLite / LiteRT).

    python -m tf_defocus.export --model=runs/quick/blur_estimator.keras --format=saved_model \
        --out=exported                      # -> exported/blur_estimator/1/
    python -m tf_defocus.export --model=runs/quick/blur_estimator.keras --format=tflite \
        --out=mobile/blur_estimator_int8.tflite --quantize=int8 --input_size=512x512

--model: a ``.keras`` inference model (``blur_estimator.keras`` / ``dofnet.keras``) or the
training ``model_dir`` holding one. --format=saved_model writes ``OUT/<model_name>/<version>/``;
--format=tflite writes the ``.tflite`` file OUT and its sidecar ``<stem>.json``.
--input_size=HxW (multiples of 16; default 512x512) makes the fixed-size mobile variant,
--input_size=dynamic the any-size one. int8 is calibrated on the data engine's procedural images
(--calibration=builtin, default) or on photos (--calibration=dir --calibration_dir=DIR).
The flags are written as JSON beside the output (``export_config.json`` in the SavedModel
version directory, ``<stem>.export_config.json`` beside a .tflite file). Exit code 2: bad flags
(absl cannot parse them: 1), not an exportable model, an output that exists.
"""

from tf_defocus import cli   # TensorFlow's start-up lines are hidden by tf_defocus/__init__
from tf_defocus.export.job import ExportConfig, run_export
from tf_defocus.export.model_io import ExportError
from tf_defocus.inference import ModelLoadError

main, run = cli.config_app(ExportConfig, run_export, prog="tf-defocus-export",
                           errors={ExportError: 2, ModelLoadError: 2, FileExistsError: 2,
                                   FileNotFoundError: 2})
"""``main(argv, flag_values=None)`` -> exit code; ``run()``: the console script
(``tf-defocus-export``)."""


if __name__ == "__main__":
    run()
