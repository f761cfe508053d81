"""Convert a tf_defocus inference model to TFLite / LiteRT for phones.

The model is first written as a SavedModel with only the ``serve`` signature (fixed
(1, H, W, 3) input for the mobile variant, (N, H, W, 3) with unknown sizes for the dynamic one)
and converted with ``TFLiteConverter.from_saved_model(dir, signature_keys=["serve"])`` (Keras 3
models give empty NaN models through ``from_concrete_functions``). Only builtin ops are allowed
(``TFLITE_BUILTINS``, or ``TFLITE_BUILTINS_INT8`` for full int8): conversion fails loudly on
anything else, and the written file is re-checked op by op.

Quantization (https://ai.google.dev/edge/litert/models/post_training_quantization):
  ``none``     float32 weights and activations;
  ``float16``  float16 weights, float32 compute (dequantised at load on CPU);
  ``dynamic``  int8 weights, activations quantised on the fly where kernels allow;
  ``int8``     full integer: int8 weights and activations calibrated on representative images
               (the data engine's procedural images, or photos from a folder); input uint8 RGB
               (the raw 8-bit pixel values: input scale 1/255, zero point 0), outputs float32.
               Activation ranges (``tf_defocus.export.ranges``): ``mse`` shrinks each
               calibrated min/max range to the one with least quantization error; ``search``
               (default) then also shrinks them all by the common factor that gives the least
               output error on calibration images; ``minmax`` keeps TF's calibrated min/max.

Before tracing, ``tf_defocus.export.rewrite`` swaps layers for TFLite-friendly equivalents and,
for dynamic / int8, folds the input preprocessing into the first conv and rebalances the
decoder concatenations (all exact in float; see that module for why).

Sidecar ``<stem>.json`` (``tf_defocus.artifacts.ModelInfo``): kind, input size, normalisation,
output names, units, quantization, version, source model. Outputs of signature ``serve``:
``sigma_px`` (N,H,W,1) [px] and ``focus`` (N,H,W,1) (dof_weight kind: ``focus`` only).
"""

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tf_defocus import __version__, artifacts, cli, model_kinds
from tf_defocus.export import graph
from tf_defocus.export.model_io import (ExportError, check_inference_model, export_friendly,
                                        load_inference_model)
from tf_defocus.export.ranges import refined_calibration
from tf_defocus.export.saved_model import saved_model_info, write_serving_archive
from tf_defocus.litert import non_builtin_ops, tflite_input, tflite_op_names
from tf_defocus.models.layers import suggested_tile_size

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
DEFAULT_INPUT_SIZE = (512, 512)
DEFAULT_CALIBRATION_SIZE = (256, 256)   # calibration image size [px] for the dynamic variant
DEFAULT_NUM_CALIBRATION = 32
CALIBRATION_SEED = 2_000_000            # data-engine seeds kept apart from training's
EQUALIZE_IMAGES = 8                     # images measuring concat ranges for dynamic-range only
INT8_RANGES = ("search", "mse", "minmax")   # activation range setting of full-int8 models


@dataclasses.dataclass(frozen=True)
class TFLiteExport:
    """What ``convert_tflite`` wrote: the model path, its sidecar, size [bytes], op names, the
    ModelInfo and, for int8 with refined ranges, the range report (``ranges.refined_calibration``:
    tensors, shrunk, median_alpha; with search also gamma and search_errors {gamma: error})."""
    path: Path
    info_path: Path
    size_bytes: int
    ops: tuple
    info: artifacts.ModelInfo
    int8_ranges_report: dict | None = None


# ----------------------------------------------------------------------------- calibration

def builtin_calibration_images(count=DEFAULT_NUM_CALIBRATION, size=DEFAULT_CALIBRATION_SIZE,
                               seed=CALIBRATION_SEED, progress=None):
    """Yield ``count`` data-engine images (``tf_defocus.data.synthesize``), float32 (H,W,3) [0,1].

    size: (H, W) [px]. Half are rendered with the Gaussian PSF (SYNDOF domain), half with the
    camera-like disc PSF (noise, JPEG), so activations cover both.
    """
    from tf_defocus.data.synthesize import synthesize
    h, w = size
    for i in range(count):
        psf = "gaussian" if i % 2 == 0 else "disc"
        yield synthesize(seed + i, w, h, psf=psf).image
        if progress:
            progress(i + 1, count)


def fit_image(image, size):
    """Centre-crop to the aspect of ``size`` (H, W) and resize (area) -> float32 (H, W, 3)."""
    import cv2
    th, tw = size
    h, w = image.shape[:2]
    scale = min(h / th, w / tw)
    ch, cw = int(round(th * scale)), int(round(tw * scale))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = image[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(crop, (tw, th), interpolation=interp), np.float32)


def directory_calibration_images(folder, count=DEFAULT_NUM_CALIBRATION,
                                 size=DEFAULT_CALIBRATION_SIZE, progress=None):
    """Load up to ``count`` photos from ``folder`` fitted to ``size``; returns (images, bad)
    with ``bad`` a list of "path: reason" for files that could not be read."""
    from tf_defocus.imageio import ImageReadError, list_images, read_image
    try:
        paths = list_images([folder])
    except FileNotFoundError as e:
        raise ExportError(f"calibration images: {e}") from e
    images, bad = [], []
    for p in paths:
        if len(images) >= count:
            break
        try:
            images.append(fit_image(read_image(p), size))
        except ImageReadError as e:
            bad.append(str(e))
        if progress:
            progress(len(images), min(count, len(paths)))
    if not images:
        raise ExportError(f"{folder}: no readable calibration images ({len(bad)} bad: "
                          f"{'; '.join(bad[:3])})")
    return images, bad


def _range_anchor(size):
    """A horizontal 0..1 ramp (float32 (H,W,3)) fed first to the calibrator so the uint8 input
    is quantised over exactly [0, 1] (scale 1/255, zero point 0)."""
    h, w = size
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)
    return np.repeat(np.repeat(ramp[None, :, None], h, 0), 3, 2)


# ----------------------------------------------------------------------------- conversion

def check_input_size(input_size, kind=artifacts.KIND_DEFOCUS):
    """Validate (H, W) [px] of a fixed-size variant; None = dynamic. Returns a tuple or None."""
    if input_size is None:
        return None
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ExportError(f"input size must be (H, W), got {input_size!r}") from None
    m = model_kinds.spec(kind).size_multiple
    if h <= 0 or w <= 0 or h % m or w % m:
        raise ExportError(f"input size {h}x{w}: height and width must be positive multiples of "
                          f"{m} (the network downsamples by {m})")
    return h, w


def tflite_info(kind, input_size, quantize, input_details=None, version=1, source_model="",
                tile_size=None):
    """The sidecar ModelInfo of a converted model (tile_size: the model's suggested tile [px],
    kept for a model of any size only: a fixed-size model's tiles are its input size)."""
    base = saved_model_info(kind, version, source_model,
                            tile_size=None if input_size else tile_size)
    shape = f"[1, {input_size[0]}, {input_size[1]}, 3]" if input_size else "[N, H, W, 3], any H/W"
    if quantize == "int8":
        scale, zero = (input_details or {}).get("quantization", (1 / 255.0, 0))
        norm = (f"uint8 RGB NHWC {shape}: the raw 8-bit pixel values (input quantization scale "
                f"{scale:.8g}, zero point {zero} maps them to [0,1])")
    else:
        norm = f"float32 RGB in [0,1], NHWC {shape}"
    return dataclasses.replace(
        base, input_size=tuple(input_size) if input_size else None, normalisation=norm,
        quantization=quantize, tf_defocus_version=__version__, max_pixels=None)


def _converter(saved_model_dir, quantize, representative):
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir),
                                                    signature_keys=[graph.SERVE_SIGNATURE])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.representative_dataset = representative
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.float32
    return conv


def _summarise_converter_error(error, limit=1500):
    """The informative lines of a converter error (which ops failed and why)."""
    lines = [ln.rstrip() for ln in str(error).splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.lstrip().startswith(("%", "loc(", "^bb", "}", '"func'))]
    text = "\n".join(keep) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _smoke_run(content, kind, image):
    """Run the converted model once in LiteRT; returns the input details. Raises ExportError
    for missing outputs or non-finite values."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=content, num_threads=1)
    runner = interp.get_signature_runner(graph.SERVE_SIGNATURE)
    (name, details), = runner.get_input_details().items()
    out = runner(**{name: tflite_input(image[None], details)})
    want = set(model_kinds.spec(kind).signature_output_names)
    if set(out) != want:
        raise ExportError(f"converted model outputs {sorted(out)}, expected {sorted(want)}")
    for k, v in out.items():
        if not np.all(np.isfinite(v)):
            raise ExportError(f"converted model gives non-finite values in {k!r}")
    return details


def convert_tflite(model, out_path, quantize="none", input_size=DEFAULT_INPUT_SIZE,
                   calibration_images=None, num_calibration=DEFAULT_NUM_CALIBRATION,
                   version=1, source_model="", overwrite=False, extra_files=None, progress=None,
                   equalize=True, int8_ranges="search"):
    """Convert ``model`` (keras inference model or ``.keras`` path) to ``out_path`` (.tflite).

    quantize: none | float16 | dynamic | int8. input_size: (H, W) [px], multiples of 16, for
    the fixed-size (1, H, W, 3) mobile variant, or None for the dynamic-size variant.
    calibration_images: for int8, an iterable of float32 (H, W, 3) RGB [0,1] images (of size
    ``input_size`` for the fixed variant, any size for the dynamic one); default:
    ``num_calibration`` data-engine procedural images (``input_size`` or 256x256).
    extra_files: {file name: text} written beside the model. progress: callable(message).
    equalize: before quantizing (dynamic, int8), fold the input preprocessing into the first
    conv and rebalance concatenation inputs (float-exact rewrites, ``tf_defocus.export.rewrite``).
    int8_ranges: ``search`` (minimum-error activation ranges shrunk by the common factor with
    the least output error, ``tf_defocus.export.ranges``), ``mse`` (the minimum-error ranges
    alone) or ``minmax`` (TF's calibrated ranges as they are).
    Writes ``out_path`` and its sidecar ``<stem>.json`` atomically; refuses an existing
    ``out_path`` unless ``overwrite``. Returns a ``TFLiteExport``.
    """
    (result,) = convert_tflite_many(
        model, [(quantize, out_path)], input_size=input_size,
        calibration_images=calibration_images, num_calibration=num_calibration, version=version,
        source_model=source_model, overwrite=overwrite,
        extra_files={out_path: extra_files} if extra_files else None, progress=progress,
        equalize=equalize, int8_ranges=int8_ranges)
    return result


def convert_tflite_many(model, jobs, input_size=DEFAULT_INPUT_SIZE, calibration_images=None,
                        num_calibration=DEFAULT_NUM_CALIBRATION, version=1, source_model="",
                        overwrite=False, extra_files=None, progress=None, equalize=True,
                        int8_ranges="search"):
    """Convert ``model`` once traced to several quantizations of one input size.

    jobs: list of (quantize, out_path). extra_files: {out_path: {file name: text}}. Other
    arguments as in ``convert_tflite``. Every output is checked before any work; each finished
    file is published as soon as it is converted. Float variants (none, float16) are traced
    from the model as is (after the layer swaps of ``export_friendly``); quantized ones
    (dynamic, int8) from a float-equivalent copy with the input preprocessing folded into the
    first conv and the concatenation inputs rebalanced on the calibration images
    (``equalize``, see ``tf_defocus.export.rewrite``). Returns a list of ``TFLiteExport``.
    """
    say = progress or (lambda msg: None)
    jobs = [(q, Path(p)) for q, p in jobs]
    if int8_ranges not in INT8_RANGES:
        raise ExportError(f"int8_ranges must be one of {INT8_RANGES}, got {int8_ranges!r}")
    for quantize, out_path in jobs:
        if quantize not in QUANTIZATIONS:
            raise ExportError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
        if out_path.suffix != ".tflite":
            raise ExportError(f"{out_path}: output file must end in .tflite")
        if out_path.is_dir():
            raise ExportError(f"{out_path}: is a directory")
        if out_path.exists() and not overwrite:
            raise FileExistsError(f"{out_path}: already exists; pass overwrite=True (--overwrite) "
                                  f"to replace it")
    if len({p.resolve() for _, p in jobs}) != len(jobs):
        raise ExportError("two conversions would write the same file")
    extra_files = {Path(k): v for k, v in (extra_files or {}).items()}
    if isinstance(model, (str, Path)):
        source_model = source_model or str(model)
        model, kind, _ = load_inference_model(model)
    else:
        kind = check_inference_model(model)
    tile_size = suggested_tile_size(model)
    input_size = check_input_size(input_size, kind)
    calib_size = input_size or DEFAULT_CALIBRATION_SIZE

    quantized = [q for q, _ in jobs if q in ("int8", "dynamic")]
    work = Path(tempfile.mkdtemp(prefix="tf_defocus_tflite_"))   # scratch SavedModels
    results = []
    try:
        calib = None
        if "int8" in quantized or (quantized and equalize):
            count = num_calibration if "int8" in quantized else min(num_calibration,
                                                                   EQUALIZE_IMAGES)
            if calibration_images is None:
                say(f"rendering {count} procedural calibration images "
                    f"({calib_size[0]}x{calib_size[1]})")
                calibration_images = builtin_calibration_images(count, calib_size)
            calib = [np.asarray(im, np.float32) for im in calibration_images]
            if not calib:
                raise ExportError("quantization needs at least one calibration image")
            for i, im in enumerate(calib):
                ok = im.ndim == 3 and im.shape[-1] == 3 and (
                    input_size is None or im.shape[:2] == tuple(input_size))
                if not ok:
                    raise ExportError(f"calibration image {i} has shape {im.shape}; expected "
                                      f"{(calib_size[0], calib_size[1], 3) if input_size else '(H, W, 3)'}")
            calib.insert(0, _range_anchor(calib[0].shape[:2]))
        probe = calib[1] if calib else _range_anchor(calib_size) * 0.5 + 0.25
        shape = (1,) + tuple(input_size) if input_size else (None, None, None)
        saved = {}

        def traced(for_quantized):
            from tf_defocus.export.rewrite import (check_same_function, equalize_concat_inputs,
                                                   fold_input_preprocessing)
            if for_quantized not in saved:
                m = export_friendly(model, tflite=True)
                if for_quantized and equalize:
                    m, folded = fold_input_preprocessing(m)
                    if folded:
                        say(f"  folded the caffe preprocessing into {folded}")
                    m, report = equalize_concat_inputs(m, calib[1:])
                    for name, maxima, scales in report:
                        say(f"  equalized {name}: input max |x| "
                            f"{', '.join(f'{v:.3g}' for v in maxima)} -> scales "
                            f"{', '.join(f'{v:.3g}' for v in scales)}")
                if m is not model:
                    # Folding x255 into conv1 reorders float32 sums: a deep random net moved
                    # by 1.8e-4; a wrong rewrite moves it by ~0.1; the int8 output step is 1/256.
                    check_same_function(model, m, probe, "the TFLite graph rewrites",
                                        atol=1e-3 if for_quantized and equalize else 1e-4)
                say(f"tracing the 'serve' signature with input {list(shape) + [3]}"
                    f"{' (rewritten for quantization)' if for_quantized and equalize else ''}")
                saved[for_quantized] = work / f"saved_model_{int(for_quantized)}"
                write_serving_archive(m, kind, saved[for_quantized], image_shape=shape,
                                      include_bytes=False, tflite=True)
            return saved[for_quantized]

        for quantize, out_path in jobs:
            sm = traced(quantize in ("int8", "dynamic"))
            say(f"converting to TFLite (quantize={quantize}, builtin ops only) -> {out_path}")
            content, report = _convert(sm, quantize, calib, int8_ranges, say)
            with cli.quiet_native_output():   # "INFO: Created TensorFlow Lite XNNPACK ..."
                details = _smoke_run(content, kind, probe)
            info = tflite_info(kind, input_size, quantize, details, version, source_model,
                               tile_size)
            _publish(out_path, content, info, extra_files.get(out_path) or {})
            results.append(TFLiteExport(path=out_path, info_path=artifacts.info_path(out_path),
                                        size_bytes=len(content), ops=tflite_op_names(content),
                                        info=info, int8_ranges_report=report))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _convert(saved_model_dir, quantize, calib, int8_ranges="search", say=None):
    """SavedModel ``serve`` -> (TFLite bytes, int8 range report or None); ExportError on failure
    or non-builtin ops. calib: float32 (H,W,3) images (int8 and dynamic); int8_ranges: see
    ``convert_tflite``."""
    import contextlib
    import warnings

    def representative():
        for im in calib:
            yield {graph.IMAGE_INPUT: im[None]}

    refine = quantize == "int8" and int8_ranges in ("search", "mse")
    search = int8_ranges == "search"
    try:
        with warnings.catch_warnings(), (
                refined_calibration(calib[1:], search=search, progress=say and (
                    lambda message: say("  " + message)))
                if refine else contextlib.nullcontext()) as state:
            # The converter's own calibrator still uses the deprecated tf.lite.Interpreter.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            with cli.quiet_native_output():   # "fully_quantize: ..." per quantization
                content = _converter(saved_model_dir, quantize, representative).convert()
    except Exception as e:  # noqa: BLE001 (ConverterError and friends)
        raise ExportError(f"TFLite conversion failed (only builtin ops are allowed): "
                          f"{_summarise_converter_error(e)}") from e
    report = state["report"] if refine else None
    if report and say:
        say(f"  int8 activation ranges: {report['shrunk']} of {report['tensors']} shrunk to "
            f"their minimum-MSE range (median factor {report['median_alpha']:.2f} of min/max)")
        if search:
            say(f"  common shrink factor {report['gamma']:g} on top (least output error)")
    bad = non_builtin_ops(content)
    if bad:
        raise ExportError(f"converted model uses non-builtin ops {bad}")
    return content, report


def _publish(out_path, content, info, extra_files):
    """Write the model, its sidecar and extra files via temporary names, the model last (a
    present .tflite always has its sidecar)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.stem}.tmp-", dir=out_path.parent))
    try:
        staged = []
        for name, text in list(extra_files.items()) + [(artifacts.info_path(out_path).name,
                                                        info.to_json())]:
            (tmp / name).write_text(text)
            staged.append((tmp / name, out_path.parent / name))
        (tmp / out_path.name).write_bytes(content)
        staged.append((tmp / out_path.name, out_path))
        for src, dst in staged:
            os.replace(src, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
