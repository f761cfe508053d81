"""An export job: ``ExportConfig`` (one field per flag of ``python -m tf_defocus.export``) and
``run_export(config)``, the SavedModel or TFLite export it describes."""

import dataclasses
import json
import time
from pathlib import Path

from tf_defocus import config as cfglib
from tf_defocus.config import Section, setting
from tf_defocus.export.model_io import load_inference_model, resolve_model_path
from tf_defocus.export.saved_model import export_saved_model
from tf_defocus.export.tflite import (DEFAULT_CALIBRATION_SIZE, DEFAULT_INPUT_SIZE, INT8_RANGES,
                                      QUANTIZATIONS, convert_tflite, directory_calibration_images)
from tf_defocus.inference import default_model_path
from tf_defocus.model_kinds import MAX_SIZE_MULTIPLE

FORMATS = ("saved_model", "tflite")
CALIBRATIONS = ("builtin", "dir")
DYNAMIC = "dynamic"
"""``input_size`` of the any-size TFLite model."""


@dataclasses.dataclass(frozen=True)
class ExportConfig(Section):
    """One export; each field is a flag of the same name, written as JSON beside the output.
    On construction a tflite ``input_size`` becomes "HxW" [px] (default 512x512) or "dynamic",
    ``calibration`` defaults to dir when ``calibration_dir`` is given, else builtin."""
    model: str | None = setting(None, "Trained .keras inference model (or a training "
                                      "model_dir); default: the built-in default model.")
    format: str = setting("saved_model", "Export format.", choices=FORMATS)
    out: str = setting(None, "saved_model: root directory (OUT/<model_name>/<version>/); "
                             "tflite: the .tflite file to write.")
    quantize: str = setting("none", "TFLite quantization (saved_model: none only).",
                            choices=QUANTIZATIONS)
    input_size: str | None = setting(None, f"TFLite input HxW in px (multiples of "
                                           f"{MAX_SIZE_MULTIPLE}) or '{DYNAMIC}'; default "
                                           f"{DEFAULT_INPUT_SIZE[0]}x{DEFAULT_INPUT_SIZE[1]}. "
                                           "Not used for saved_model (always any size).")
    calibration: str | None = setting(None, "int8 calibration images: builtin (procedural data "
                                            "engine) or dir (--calibration_dir). Default: dir if "
                                            "--calibration_dir is given, else builtin.",
                                      choices=CALIBRATIONS)
    calibration_dir: str | None = setting(None, "Folder of photos for int8 calibration.")
    num_calibration: int = setting(32, "Number of int8 calibration images.", low=1)
    int8_ranges: str = setting("search", "int8 activation ranges: 'mse' shrinks each calibrated "
                               "min/max range to the one with least quantization error; "
                               "'search' then shrinks them all by the common factor with the "
                               "least output error on calibration images; 'minmax' keeps TF's "
                               "calibrated min/max.", choices=INT8_RANGES)
    model_name: str | None = setting(None, "saved_model: servable name (default: the model's "
                                           "name, blur_estimator or dofnet).")
    version: int = setting(1, "Model version (saved_model directory name; recorded in the "
                              "sidecar of both formats).", low=1)
    overwrite: bool = setting(False, "Replace an existing output.")

    def __post_init__(self):
        if self.format == "tflite":
            size = parse_input_size(self.input_size)
            object.__setattr__(self, "input_size", f"{size[0]}x{size[1]}" if size else DYNAMIC)
        if self.calibration is None:
            object.__setattr__(self, "calibration", "dir" if self.calibration_dir else "builtin")
        super().__post_init__()

    @property
    def size(self):
        """(H, W) [px] of the TFLite input; None: any size (dynamic, or a SavedModel)."""
        return parse_input_size(self.input_size) if self.format == "tflite" else None

    def check(self):
        if self.int8_ranges != "search" and self.quantize != "int8":
            raise ValueError("--int8_ranges applies to --quantize=int8 only")
        if self.format == "saved_model":
            if self.quantize != "none":
                raise ValueError("--quantize applies to --format=tflite only (a SavedModel is "
                                 "float32)")
            if self.input_size is not None:
                raise ValueError("--input_size applies to --format=tflite only (the SavedModel "
                                 "takes any size)")
            if self.calibration != "builtin" or self.calibration_dir:
                raise ValueError("--calibration/--calibration_dir apply to --format=tflite "
                                 "--quantize=int8 only")
            return
        if not self.out.endswith(".tflite"):
            raise ValueError(f"--out={self.out}: a TFLite export is one file ending in .tflite")
        if self.model_name:
            raise ValueError("--model_name applies to --format=saved_model only")
        if self.calibration_dir and self.quantize != "int8":
            raise ValueError("--calibration/--calibration_dir apply to --quantize=int8 only")
        if self.calibration == "dir" and not self.calibration_dir:
            raise ValueError("--calibration=dir needs --calibration_dir=DIR (a folder of photos)")
        if self.calibration == "builtin" and self.calibration_dir:
            raise ValueError("--calibration_dir given with --calibration=builtin; drop one")
        if self.calibration_dir and not Path(self.calibration_dir).is_dir():
            raise ValueError(f"--calibration_dir={self.calibration_dir}: no such directory")


def parse_input_size(text):
    """'HxW' -> (H, W) [px], multiples of ``MAX_SIZE_MULTIPLE``; 'dynamic' / 'none' / 'any' ->
    None; None -> ``DEFAULT_INPUT_SIZE``. ValueError naming --input_size otherwise."""
    if text is None:
        return DEFAULT_INPUT_SIZE
    t = text.strip().lower()
    if t in (DYNAMIC, "none", "any"):
        return None
    parts = t.replace("*", "x").replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--input_size={text!r}: expected HxW (e.g. 512x512) or "
                         f"'{DYNAMIC}'") from None
    m = MAX_SIZE_MULTIPLE
    if h <= 0 or w <= 0 or h % m or w % m:
        raise ValueError(f"--input_size={text}: height and width must be positive multiples of "
                         f"{m} (the network downsamples by {m}), e.g. {max(m, -(-h // m) * m)}x"
                         f"{max(m, -(-w // m) * m)}")
    return h, w


def config_json(config):
    """``config`` as the JSON text written beside the output."""
    return json.dumps(cfglib.to_dict(config), indent=2, sort_keys=True)


def _say(msg):
    print(f"[export {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _progress(label):
    def report(done, total):
        if done == total or done % max(1, total // 8) == 0:
            _say(f"{label}: {done}/{total}")
    return report


def run_export(cfg):
    """Do the export described by ``cfg``; returns the written path. Raises ExportError (not
    an exportable model), FileNotFoundError, FileExistsError (output exists, no overwrite) and
    ``inference.ModelLoadError`` (no built-in default model) before writing anything."""
    if cfg.model is None:
        cfg = cfglib.replace(cfg, model=str(default_model_path()))
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
        size = cfg.size or DEFAULT_CALIBRATION_SIZE
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
        name = cfg.model_name or model.name
        target = out / name / str(cfg.version)
        if target.exists() and not cfg.overwrite:
            raise FileExistsError(f"{target}: already exists; pass --overwrite to replace it or "
                                  f"--version={_next_version(out / name)} to add a version")
        _say(f"writing SavedModel {target} (signatures serving_default [image bytes] and serve "
             f"[float32 NHWC])")
        path = export_saved_model(model, out, model_name=name, version=cfg.version,
                                  overwrite=cfg.overwrite, source_model=str(model_path),
                                  extra_files={"export_config.json": config_json(cfg)})
        _say(f"wrote {path}")
        return path

    result = convert_tflite(model, out, quantize=cfg.quantize, input_size=cfg.size,
                            calibration_images=calibration_images,
                            num_calibration=cfg.num_calibration, int8_ranges=cfg.int8_ranges,
                            version=cfg.version,
                            source_model=str(model_path), overwrite=cfg.overwrite,
                            extra_files={f"{out.stem}.export_config.json": config_json(cfg)},
                            progress=_say)
    _say(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, input "
         f"{result.info.normalisation}); sidecar {result.info_path}")
    _say(f"ops: {', '.join(result.ops)}")
    return result.path


def _next_version(model_dir):
    versions = [int(p.name) for p in Path(model_dir).iterdir() if p.name.isdigit()] \
        if Path(model_dir).is_dir() else []
    return max(versions, default=0) + 1


