"""The predict library: defocus / focus maps of photos on disk, written as files.

``PredictConfig`` (one field per flag of the ``tf_defocus.predict`` CLI, whose help describes
the outputs and exit codes), ``load_method(config)`` (the model or training-free method),
``predict_files(config)`` (run it over the inputs and write the outputs; returns a ``Summary``)
and ``run_config(config)``, the CLI's run: checks before any work, ``predict_files``, the
summary on stderr; returns the exit code. The output-folder helpers (``check_output_dir``,
``output_dir_session``: leftovers of interrupted runs removed, the run's config written) and
``OutputWriteError`` serve ``tf_defocus.evaluation`` too. Defines no flags, reads no FLAGS.
"""

import contextlib
import dataclasses
import errno
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from tf_defocus import __version__, artifacts, cli, dof, imageio, model_kinds
from tf_defocus import config as cfglib
from tf_defocus.cli import ConfigError
from tf_defocus.config import setting
from tf_defocus.inference import ReadingScale, RunSettings, scaled_size
from tf_defocus.model_kinds import MaskSettings

OUTPUT_KINDS = ("sigma", "color", "focus", "mask", "side_by_side")
DEFAULT_OUTPUTS = {artifacts.KIND_DEFOCUS: ("sigma", "color")}
DEFAULT_FOCUS_OUTPUTS = ("color", "focus")
"""--outputs when not given: by the kind of map (a focus weight / score has no sigma)."""
COLOR_SUFFIX = {artifacts.KIND_DEFOCUS: "_defocus.png"}
FOCUS_COLOR_SUFFIX = "_focus_color.png"
"""File name ending of the ``color`` output: a sigma map, or a focus weight / score map."""
MIN_LEGEND_HEIGHT = 40
"""Colour maps of photos lower than this [px] get no legend bar (its labels would not fit)."""
TRAINING_FREE = ("dof_weight", "lbp", "hifst")
"""Methods that need no --model and give a focus score with no blur unit."""
METHODS = ("model",) + TRAINING_FREE
CONFIG_FILENAME = "predict_config.json"


class OutputDirError(ConfigError):
    """The output folder cannot be created or written (reported before any work, exit 2)."""


class OutputWriteError(RuntimeError):
    """Writing one output file failed; the message names the file. ``errno``: the cause's."""

    def __init__(self, path, cause):
        super().__init__(f"{path}: cannot write: {_os_reason(cause)}")
        self.path = str(path)
        self.errno = getattr(cause, "errno", None)


# Write errors that every later file of the run would hit too: stop instead of failing each.
FATAL_WRITE_ERRNOS = frozenset(
    e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EACCES,
                errno.EPERM) if e is not None)


def _os_reason(e):
    """The reason of an OSError without the '[Errno N]' prefix and the file name."""
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def check_output_dir(path, flag="--output_dir"):
    """Raise OutputDirError unless ``path`` is, or can be created as, a writable folder.
    Creates nothing: checks the nearest existing ancestor."""
    target = Path(path)
    probe = target
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    where = f"{flag}={path}"
    if not os.path.isdir(probe):
        if probe == target:
            raise OutputDirError(f"{where}: exists and is not a folder")
        raise OutputDirError(f"{where}: cannot create the folder: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "the folder is" if probe == target else f"cannot create the folder: {probe} is"
        ro = _read_only_fs(probe)
        raise OutputDirError(f"{where}: {what} " + ("on a read-only file system" if ro else
                                                    "not writable (permission denied)"))


def _read_only_fs(path):
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


# imageio.atomic_path's temporary beside ``<stem><suffix>``: ".<stem>.<tempfile's 8 random
# characters>.tmp<suffix>", removed when the write ends - unless the process was killed.
_ATOMIC_TEMP = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[A-Za-z0-9]+)$")
_PNG_OUTPUT_ENDINGS = ("_defocus", "_focus", "_focus_color", "_mask", "_side_by_side")
LEFTOVER_MIN_AGE_S = 3600
"""Where file locks are unsupported, leftover temporaries younger than this are kept (they
could belong to a run writing into the same folder)."""


def is_predict_output(name):
    """True for the file names predict writes (``<stem>.npy``, ``<stem>_<kind>.png``, the
    config)."""
    stem, suffix = os.path.splitext(name)
    return (name == CONFIG_FILENAME or suffix == ".npy"
            or (suffix == ".png" and stem.endswith(_PNG_OUTPUT_ENDINGS)))


def leftover_temporaries(folder, is_ours, min_age_s=0.0):
    """Temporary files of interrupted atomic writes in ``folder`` (not recursive) whose target
    name satisfies ``is_ours``, at least ``min_age_s`` seconds old, sorted."""
    out, now = [], time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries:
        m = _ATOMIC_TEMP.match(entry.name)
        try:
            if (m and is_ours(m["stem"] + m["suffix"]) and entry.is_file(follow_symlinks=False)
                    and now - entry.stat(follow_symlinks=False).st_mtime >= min_age_s):
                out.append(Path(entry.path))
        except OSError:
            continue
    return sorted(out)


@contextlib.contextmanager
def claim_output_dir(folder, is_ours):
    """Hold ``folder`` for a run writing into it and first remove the leftovers of interrupted
    runs there: temporaries of atomic writes whose target ``is_ours``. Yields the removed paths.

    A run holds a shared ``flock`` on the folder; the leftovers are removed only under an
    exclusive one, i.e. when no other run writes there (its temporaries are live). Where file
    locks are unsupported, only temporaries older than LEFTOVER_MIN_AGE_S are removed."""
    fd = fcntl = None
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        pass
    try:
        alone = None                             # None: no lock on this system / file system
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False                    # another run is writing into this folder
            except OSError:
                pass
        removed = []
        if alone is not False:
            for p in leftover_temporaries(folder, is_ours, 0 if alone else LEFTOVER_MIN_AGE_S):
                try:
                    p.unlink()
                    removed.append(p)
                except FileNotFoundError:
                    pass
                except OSError:
                    continue                     # not ours to fix (read-only leftover, ...)
        if alone is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)       # waits only while another run cleans up
        yield removed
    finally:
        if fd is not None:
            os.close(fd)                         # releases the lock


@contextlib.contextmanager
def output_dir_session(path, config_name, config_text, is_ours, stream=None,
                       flag="--output_dir"):
    """For the duration of a run: create the output folder, claim it (``claim_output_dir``:
    leftovers of interrupted runs removed, reported in one line on ``stream``) and write the
    run's config file into it atomically. Raises OutputDirError (one line naming the folder or
    file) on any OSError; folders it created are removed again if the config cannot be
    written."""
    stream = stream or sys.stderr
    target = Path(path)
    created, p = [], target
    while not os.path.lexists(p) and p.parent != p:
        created.append(p)
        p = p.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputDirError(f"{flag}={path}: cannot create the folder: {_os_reason(e)}") from None
    with claim_output_dir(target, is_ours) as removed:
        if removed:
            names = ", ".join(p.name for p in removed[:5])
            more = f" and {len(removed) - 5} more" if len(removed) > 5 else ""
            stream.write(f"removed {len(removed)} leftover temporary file(s) of an interrupted "
                         f"run from {target}: {names}{more}\n")
        try:
            imageio.write_text(target / config_name, config_text)
        except OSError as e:
            for d in created:              # deepest first; only the empty folders we made
                try:
                    d.rmdir()
                except OSError:
                    break
            raise OutputDirError(f"{target / config_name}: cannot write: {_os_reason(e)}") \
                from None
        yield target


@dataclasses.dataclass(frozen=True)
class PredictConfig(RunSettings, MaskSettings):
    """Everything a predict run needs; each field is a flag of the same name; written as JSON
    next to the outputs (``CONFIG_FILENAME``). Tiles and threads: ``inference.RunSettings``;
    the mask rule: ``model_kinds.MaskSettings``."""
    input: tuple[str, ...] = setting((), "Image file, folder or glob; repeatable or a comma "
                                         "list. Positional arguments are inputs too.", multi=True)
    output_dir: str = setting(None, "Folder for the outputs.")
    model: str = setting("", "Model: .keras file, SavedModel directory or .tflite file "
                             "(default: the built-in default model, tf_defocus/weights).")
    method: str = setting("model", "model: the network of --model; training-free focus "
                          "scores: dof_weight (DoF weight map, KCI 2020), lbp (LBP sharpness, "
                          "Yi & Eramian 2016), hifst (HiFST, Golestaneh & Karam 2017).",
                          choices=METHODS)
    outputs: tuple[str, ...] | None = setting(
        None, f"Any of {','.join(OUTPUT_KINDS)} (default: sigma,color for a defocus model; "
        f"color,focus for a focus-weight model (DoFNet) and the training-free methods, which "
        f"have no sigma).", choices=OUTPUT_KINDS)
    mask_size: int = setting(dof.DEFAULT_MASK_SIZE, "dof_weight method: Gaussian mask size "
                                                    "[px], odd.")
    legend: bool = setting(True, f"Draw a legend bar on colour maps (of photos at least "
                                 f"{MIN_LEGEND_HEIGHT} px high).")

    def check(self):
        super().check()
        if not self.input:
            raise ConfigError("no input: give --input=PATH (files, folders or globs)")
        if self.outputs is not None and not self.outputs:
            raise ConfigError(f"--outputs is empty; choose from {','.join(OUTPUT_KINDS)}")
        if self.method in TRAINING_FREE and self.model:
            raise ConfigError(f"--method={self.method} is training-free; do not pass --model")
        if self.method in TRAINING_FREE and "sigma" in (self.outputs or ()):
            raise ConfigError(f"--method={self.method} gives a focus score with no blur unit, "
                              f"so there is no sigma map; drop 'sigma' from --outputs (use "
                              f"color, focus, mask)")
        if self.method == "dof_weight":
            check_dof_mask_size(self.mask_size)


def check_dof_mask_size(mask_size):
    """ConfigError naming ``--mask_size`` unless it is a valid dof_weight mask size [px]."""
    try:
        dof.check_mask_size(mask_size)
    except ValueError as e:
        raise ConfigError(f"--{e}") from None


@dataclasses.dataclass
class Summary:
    """Result of a run: processed paths, failures as (path, message), seconds, megapixels,
    inputs not processed because the run stopped (outputs could not be written)."""
    ok: list
    failed: list
    seconds: float
    megapixels: float
    not_processed: list = dataclasses.field(default_factory=list)

    def line(self):
        rate = self.megapixels / self.seconds if self.seconds > 0 else 0.0
        skipped = (f", {len(self.not_processed)} not processed" if self.not_processed else "")
        return (f"predict: {len(self.ok)} ok, {len(self.failed)} failed{skipped}, "
                f"{self.seconds:.1f} s, {self.megapixels:.2f} MP, {rate:.3f} MP/s")


def load_method(config):
    """The estimator for ``config`` (``Estimator``, ``DoFWeightMethod`` or a
    ``tf_defocus.classical`` method); ConfigError if the model cannot serve the requested
    outputs."""
    from tf_defocus import inference
    if config.method == "dof_weight":
        try:
            return inference.DoFWeightMethod(mask_size=config.mask_size)
        except NotImplementedError as e:
            raise ConfigError(str(e)) from e
    if config.method in TRAINING_FREE:
        from tf_defocus import classical
        return classical.make_method(config.method)
    inference.set_tf_threads(config.threads)   # process-wide TF pools (.keras, SavedModel)
    try:
        est = inference.load_estimator(config.model or None, config.tile_size, config.tile_overlap,
                                       threads=config.threads or None, flips=config.flips,
                                       scale=config.scale, max_side=config.max_side)
    except (inference.ModelLoadError, ValueError) as e:
        raise ConfigError(str(e)) from e
    if est.kind != artifacts.KIND_DEFOCUS and "sigma" in (config.outputs or ()):
        raise ConfigError(f"{config.model}: a {est.kind} model gives a focus weight with no blur "
                          f"unit; drop 'sigma' from --outputs")
    return est


def default_outputs(kind):
    """--outputs when not given, for a map of ``kind`` (``artifacts.KIND_*``)."""
    return DEFAULT_OUTPUTS.get(kind, DEFAULT_FOCUS_OUTPUTS)


def color_filename(stem, kind):
    """File name of the ``color`` output of a ``kind`` map."""
    return stem + COLOR_SUFFIX.get(kind, FOCUS_COLOR_SUFFIX)


def with_outputs(config, kind):
    """``config`` with ``outputs`` resolved for a map of ``kind`` (unchanged if given)."""
    if config.outputs is not None:
        return config
    return dataclasses.replace(config, outputs=default_outputs(kind))


def expand_inputs(inputs):
    """Inputs -> (list of image Paths, list of (input, message) for inputs matching nothing)."""
    files, missing, seen = [], [], set()
    for item in inputs:
        try:
            found = imageio.list_images([item])
        except FileNotFoundError as e:
            missing.append((str(item), str(e)))
            continue
        for p in found:
            key = os.path.abspath(p)
            if key not in seen:
                seen.add(key)
                files.append(p)
    return files, missing


def output_stems(paths):
    """Unique output stems: the file stem, or ``<stem>_<ext>`` (then ``_<n>``) on collisions."""
    counts = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    stems, used = [], set()
    for p in paths:
        stem = p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}"
        base, n = stem, 2
        while stem in used:
            stem, n = f"{base}_{n}", n + 1
        used.add(stem)
        stems.append(stem)
    return stems


def write_outputs(image, native, kind, stem, config):
    """Write the requested outputs of one photo. ``native``: (H, W) float32 sigma /
    ``config.sigma_max_px(H, W)`` (defocus; sigma/7 at scale 1) or focus weight (dof_weight).
    Returns the written paths; OutputWriteError naming the file if one cannot be written."""
    from tf_defocus import visualize
    out = Path(config.output_dir)
    sigma_max_px = config.sigma_max_px(*native.shape)
    maps = model_kinds.spec(kind).maps(native, config.mask_threshold_px,
                                       config.mask_threshold_weight, sigma_max_px)
    sigma, focus, mask = maps.sigma_px, maps.focus, maps.mask
    written = []
    legend = config.legend and native.shape[0] >= MIN_LEGEND_HEIGHT
    if sigma is not None:
        color = lambda: visualize.colorize_sigma(sigma, legend=legend,
                                                 sigma_max_px=sigma_max_px)
    else:
        color = lambda: visualize.colorize_weight(focus, legend=legend)
    for kind_out in config.outputs or default_outputs(kind):
        if kind_out == "sigma":
            path = out / f"{stem}.npy"
            data, write = sigma.astype(np.float32), imageio.write_npy
        elif kind_out == "color":
            path = out / color_filename(stem, kind)
            data, write = color(), imageio.write_image
        elif kind_out == "focus":
            path = out / f"{stem}_focus.png"
            data, write = np.round(focus * 255.0).astype(np.uint8), imageio.write_image
        elif kind_out == "mask":
            path = out / f"{stem}_mask.png"
            data, write = mask.astype(np.uint8) * 255, imageio.write_image
        else:  # side_by_side
            path = out / f"{stem}_side_by_side.png"
            data = visualize.side_by_side(visualize.to_uint8_rgb(image), color())
            write = imageio.write_image
        try:
            write(path, data)
        except OSError as e:
            raise OutputWriteError(path, e) from e
        written.append(path)
    return written


def predict_files(config, estimator=None, stream=None, inputs=None):
    """Run ``config`` (validated) over its inputs; returns a Summary. Does not raise for a bad
    image: it is reported on ``stream`` (default stderr) and listed in ``Summary.failed``.
    A write error that every later file would hit too (full disk, read-only or unwritable
    folder) stops the run (``Summary.not_processed``). Raises OutputDirError if the output
    folder cannot be created or the config written. ``inputs``: ``expand_inputs`` result, if
    already expanded (and its missing inputs reported)."""
    stream = stream or sys.stderr
    start = time.time()
    if inputs is None:
        files, failed = expand_inputs(config.input)
        for item, msg in failed:
            stream.write(f"error: {msg}\n")
    else:
        files, failed = inputs[0], list(inputs[1])
    if estimator is None:
        estimator = load_method(config)
    config = with_outputs(config, estimator.kind)
    with output_dir_session(config.output_dir, CONFIG_FILENAME, config_json(config, estimator),
                            is_predict_output, stream):
        progress = cli.FileProgress(len(files), stream)
        ok, megapixels, not_processed = [], 0.0, []
        for i, (path, stem) in enumerate(zip(files, output_stems(files))):
            t0 = time.time()
            try:
                image = imageio.read_image(path)
                native = estimator.predict_native(image, progress=progress.tile(path.name))
                write_outputs(image, native, estimator.kind, stem, config)
            except OutputWriteError as e:
                failed.append((str(path), str(e)))
                progress.file_done(path.name, "FAILED")
                stream.write(f"error: {e}\n")
                if e.errno in FATAL_WRITE_ERRNOS:
                    not_processed = [str(p) for p in files[i + 1:]]
                    stream.write(f"error: stopping: outputs cannot be written to "
                                 f"{config.output_dir}; {len(not_processed)} more input(s) not "
                                 f"processed\n")
                    break
                continue
            except Exception as e:  # noqa: BLE001  (report the file, go on with the others)
                text = (str(e) if isinstance(e, (ValueError, OSError))
                        else f"{type(e).__name__}: {e}")
                msg = text if str(path) in text else f"{path}: {text}"
                failed.append((str(path), msg))
                progress.file_done(path.name, "FAILED")
                stream.write(f"error: {msg}\n")
                continue
            h, w = image.shape[:2]
            megapixels += h * w / 1e6
            ok.append(str(path))
            progress.file_done(path.name, f"{w}x{h} px{_reading(estimator, h, w)}, "
                                          f"{time.time() - t0:.1f} s")
    return Summary(ok=ok, failed=failed, seconds=time.time() - start, megapixels=megapixels,
                   not_processed=not_processed)


def _reading(estimator, height, width):
    """', read at scale S (w x h px)' for a model that read the photo downscaled, else ''."""
    if not isinstance(estimator, ReadingScale):
        return ""
    scale = estimator.reading_scale(height, width)
    if scale == 1.0:
        return ""
    sh, sw = scaled_size(height, width, scale)
    return f", read at scale {scale:.3g} ({sw}x{sh} px)"


def config_json(config, estimator=None):
    """The run's config plus what was loaded, as JSON text."""
    d = cfglib.to_dict(config)
    d["tf_defocus_version"] = __version__
    if estimator is not None:
        d["model_kind"] = estimator.kind
        info = getattr(estimator, "info", None)
        d["model_info"] = dataclasses.asdict(info) if info is not None else None
        d["fixed_input_size"] = getattr(estimator, "fixed_size", None)
    return json.dumps(d, indent=2, sort_keys=True, default=list)


def run_config(config, stream=None):
    """Run, print the summary; returns the exit code (see ``tf_defocus.predict``: 0 ok, 1 some
    inputs missing or failed, 2 bad configuration: model or output folder)."""
    stream = stream or sys.stderr
    try:
        check_output_dir(config.output_dir)
    except ConfigError as e:
        stream.write(f"error: {e}\n")
        return 2
    files, missing = expand_inputs(config.input)
    for _, msg in missing:
        stream.write(f"error: {msg}\n")
    if not files:
        stream.write("error: no images to process; nothing written\n")
        return 1
    try:
        estimator = load_method(config)
        config = with_outputs(config, estimator.kind)
        summary = predict_files(config, estimator, stream, inputs=(files, missing))
    except ConfigError as e:
        stream.write(f"error: {e}\n")
        return 2
    stream.write(summary.line() + "\n")
    code = 0
    if summary.failed or summary.not_processed:
        stream.write("failed:\n" + "".join(f"  {p}\n" for p, _ in summary.failed))
        code = 1
    if not summary.ok:
        stream.write(f"error: no images were processed (only {CONFIG_FILENAME} written to "
                     f"{os.path.abspath(config.output_dir)})\n")
        return 1
    stream.write(f"predict: outputs of {len(summary.ok)} image(s) in "
                 f"{os.path.abspath(config.output_dir)}\n")
    return code

