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
version directory, ``<stem>.export_config.json`` beside a .tflite file).
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

from absl import app, flags

from tf_defocus import cli   # TensorFlow's start-up lines are hidden by tf_defocus/__init__
from tf_defocus.model_kinds import MAX_SIZE_MULTIPLE

FORMATS = ("saved_model", "tflite")
CALIBRATIONS = ("builtin", "dir")


def define_flags(fv):
    """Define the export flags in ``fv`` (a ``FlagValues``); returns it."""
    flags.DEFINE_string("model", None, "Trained .keras inference model (or a training model_dir); "
                        "default: the built-in default model.", flag_values=fv)
    flags.DEFINE_enum("format", "saved_model", FORMATS, "Export format.", flag_values=fv)
    flags.DEFINE_string("out", None, "saved_model: root directory (OUT/<model_name>/<version>/); "
                        "tflite: the .tflite file to write.", flag_values=fv)
    flags.DEFINE_enum("quantize", "none", ("none", "float16", "dynamic", "int8"),
                      "TFLite quantization (saved_model: none only).", flag_values=fv)
    flags.DEFINE_string("input_size", None, "TFLite input HxW in px (multiples of 16) or "
                        "'dynamic'; "
                        "default 512x512. Not used for saved_model (always any size).",
                        flag_values=fv)
    flags.DEFINE_enum("calibration", None, CALIBRATIONS, "int8 calibration images: builtin "
                      "(procedural data engine) or dir (--calibration_dir). Default: dir if "
                      "--calibration_dir is given, else builtin.", flag_values=fv)
    flags.DEFINE_string("calibration_dir", None, "Folder of photos for int8 calibration.",
                        flag_values=fv)
    flags.DEFINE_integer("num_calibration", 32, "Number of int8 calibration images.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_enum("int8_ranges", "search", ("search", "mse", "minmax"),
                      "int8 activation ranges: "
                      "'mse' shrinks each calibrated min/max range to the one with least "
                      "quantization error; 'search' then shrinks them all by the common factor "
                      "with the least output error on calibration images; 'minmax' keeps TF's "
                      "calibrated min/max.", flag_values=fv)
    flags.DEFINE_string("model_name", None, "saved_model: servable name (default: the model's "
                        "name, "
                        "blur_estimator or dofnet).", flag_values=fv)
    flags.DEFINE_integer("version", 1, "Model version (saved_model directory name; recorded in the "
                         "sidecar of both formats).", lower_bound=1, flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing output.", flag_values=fv)
    cli.define_verbose_flag(fv)
    return fv


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Parsed export flags; ``input_size`` (H, W) or None for dynamic (tflite only)."""
    model: str
    format: str
    out: str
    quantize: str = "none"
    input_size: tuple | None = (512, 512)
    calibration: str = "builtin"
    calibration_dir: str | None = None
    num_calibration: int = 32
    int8_ranges: str = "search"
    model_name: str | None = None
    version: int = 1
    overwrite: bool = False

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


class UsageError(ValueError):
    """Inconsistent flags."""


def parse_input_size(text):
    """'HxW' -> (H, W); 'dynamic' / 'none' -> None."""
    if text is None:
        return (512, 512)
    t = text.strip().lower()
    if t in ("dynamic", "none", "any"):
        return None
    parts = t.replace("*", "x").replace(",", "x").split("x")
    if len(parts) != 2:
        raise UsageError(f"--input_size={text!r}: expected HxW (e.g. 512x512) or 'dynamic'")
    try:
        h, w = int(parts[0]), int(parts[1])
    except ValueError:
        raise UsageError(f"--input_size={text!r}: expected HxW (e.g. 512x512) or 'dynamic'") from None
    m = MAX_SIZE_MULTIPLE
    if h <= 0 or w <= 0 or h % m or w % m:
        raise UsageError(f"--input_size={text}: height and width must be positive multiples of {m} "
                         f"(the network downsamples by {m}), e.g. {max(m, -(-h // m) * m)}x"
                         f"{max(m, -(-w // m) * m)}")
    return h, w


def config_from_flags(f):
    """Build and check an ExportConfig from parsed absl flags (raises UsageError)."""
    model = f.model
    if not model:
        from tf_defocus.inference import ModelLoadError, default_model_path
        try:
            model = str(default_model_path())
        except ModelLoadError as e:
            raise UsageError(str(e)) from e
    if not f.out:
        raise UsageError("--out is required")
    if f.format == "saved_model":
        if f.quantize != "none":
            raise UsageError("--quantize applies to --format=tflite only (a SavedModel is float32)")
        if f.input_size is not None:
            raise UsageError("--input_size applies to --format=tflite only (the SavedModel takes "
                             "any size)")
        if f.calibration or f.calibration_dir:
            raise UsageError("--calibration/--calibration_dir apply to --format=tflite "
                             "--quantize=int8 only")
    calibration = f.calibration or ("dir" if f.calibration_dir else "builtin")
    if f.format == "tflite":
        if not f.out.endswith(".tflite"):
            raise UsageError(f"--out={f.out}: a TFLite export is one file ending in .tflite")
        if f.model_name:
            raise UsageError("--model_name applies to --format=saved_model only")
        if (f.calibration or f.calibration_dir) and f.quantize != "int8":
            raise UsageError("--calibration/--calibration_dir apply to --quantize=int8 only")
        if f["int8_ranges"].present and f.quantize != "int8":
            raise UsageError("--int8_ranges applies to --quantize=int8 only")
        if calibration == "dir" and not f.calibration_dir:
            raise UsageError("--calibration=dir needs --calibration_dir=DIR (a folder of photos)")
        if calibration == "builtin" and f.calibration_dir:
            raise UsageError("--calibration_dir given with --calibration=builtin; drop one")
        if f.calibration_dir and not Path(f.calibration_dir).is_dir():
            raise UsageError(f"--calibration_dir={f.calibration_dir}: no such directory")
    input_size = parse_input_size(f.input_size) if f.format == "tflite" else None
    return ExportConfig(model=model, format=f.format, out=f.out, quantize=f.quantize,
                        input_size=input_size, calibration=calibration,
                        calibration_dir=f.calibration_dir, num_calibration=f.num_calibration,
                        int8_ranges=f.int8_ranges,
                        model_name=f.model_name, version=f.version, overwrite=f.overwrite)


def _say(msg):
    print(f"[export {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _progress(label):
    def report(done, total):
        if done == total or done % max(1, total // 8) == 0:
            _say(f"{label}: {done}/{total}")
    return report


def run_export(cfg):
    """Do the export described by ``cfg``; returns the written path."""
    from tf_defocus.export.model_io import load_inference_model, resolve_model_path

    out = Path(cfg.out)
    if cfg.format == "tflite" and out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    if cfg.format == "saved_model" and cfg.model_name:
        target = out / cfg.model_name / str(cfg.version)
        if target.exists() and not cfg.overwrite:
            raise FileExistsError(f"{target}: already exists; pass --overwrite to replace it or "
                                  f"--version={_next_version(out / cfg.model_name)} to add a version")
    calibration_images = None
    if cfg.format == "tflite" and cfg.quantize == "int8" and cfg.calibration == "dir":
        from tf_defocus.export.tflite import DEFAULT_CALIBRATION_SIZE, directory_calibration_images
        size = cfg.input_size or DEFAULT_CALIBRATION_SIZE
        _say(f"reading up to {cfg.num_calibration} calibration photos from {cfg.calibration_dir}")
        calibration_images, bad = directory_calibration_images(
            cfg.calibration_dir, cfg.num_calibration, size, progress=_progress("calibration photos"))
        for msg in bad:
            _say(f"skipped unreadable calibration image {msg}")
        _say(f"{len(calibration_images)} calibration photos, {len(bad)} skipped")

    model_path = resolve_model_path(cfg.model)
    _say(f"loading {model_path}")
    model, kind, _ = load_inference_model(model_path)
    _say(f"model {model.name!r} (kind {kind}, {model.count_params():,} parameters)")

    if cfg.format == "saved_model":
        from tf_defocus.export.saved_model import export_saved_model
        name = cfg.model_name or model.name
        target = out / name / str(cfg.version)
        if target.exists() and not cfg.overwrite:
            raise FileExistsError(f"{target}: already exists; pass --overwrite to replace it or "
                                  f"--version={_next_version(out / name)} to add a version")
        _say(f"writing SavedModel {target} (signatures serving_default [image bytes] and serve "
             f"[float32 NHWC])")
        path = export_saved_model(model, out, model_name=name, version=cfg.version,
                                  overwrite=cfg.overwrite, source_model=str(model_path),
                                  extra_files={"export_config.json": cfg.to_json()})
        _say(f"wrote {path}")
        return path

    from tf_defocus.export.tflite import convert_tflite
    result = convert_tflite(model, out, quantize=cfg.quantize, input_size=cfg.input_size,
                            calibration_images=calibration_images,
                            num_calibration=cfg.num_calibration, int8_ranges=cfg.int8_ranges,
                            version=cfg.version,
                            source_model=str(model_path), overwrite=cfg.overwrite,
                            extra_files={f"{out.stem}.export_config.json": cfg.to_json()},
                            progress=_say)
    _say(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, input "
         f"{result.info.normalisation}); sidecar {result.info_path}")
    _say(f"ops: {', '.join(result.ops)}")
    return result.path


def _next_version(model_dir):
    versions = [int(p.name) for p in Path(model_dir).iterdir() if p.name.isdigit()] \
        if Path(model_dir).is_dir() else []
    return max(versions, default=0) + 1


def main(argv, flag_values=None):
    """Export with the parsed flags (absl's global FLAGS by default); returns the exit code."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tf_defocus.export.model_io import ExportError
    try:
        cfg = config_from_flags(flags.FLAGS if flag_values is None else flag_values)
        run_export(cfg)
    except (UsageError, ExportError, FileExistsError, FileNotFoundError) as e:
        print(f"tf-defocus-export: error: {e}", file=sys.stderr)
        return 2
    return 0


def run():
    """Console-script entry point (``tf-defocus-export``); ``--help`` exits 0."""
    define_flags(flags.FLAGS)
    cli.run_app(main)


if __name__ == "__main__":
    run()
