"""The evaluate library: defocus models and training-free methods scored on the public
benchmark layouts.

``EvaluateConfig`` (one field per flag of the ``tf_defocus.evaluate`` CLI, whose help describes
the data sets, metrics, outputs and exit codes), ``open_dataset(config)``,
``load_methods(config)``, ``evaluate(config)`` (every method on every image: results, per-image
rows, failures), ``write_results`` (``per_image.csv``, ``results.json``, ``results.md``) and
``run_config(config)``, the CLI's run: checks before any work, ``evaluate``, the table on
stdout, the results written; returns the exit code. Defines no flags, reads no FLAGS.
"""

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from tf_defocus import __version__, cli, imageio, metrics, model_kinds
from tf_defocus import config as cfglib
from tf_defocus.cli import ConfigError
from tf_defocus.config import setting
from tf_defocus.data import readers
from tf_defocus.inference import RunSettings
from tf_defocus.model_kinds import MaskSettings
from tf_defocus.prediction import (OutputWriteError, PredictConfig, check_dof_mask_size,
                                   check_output_dir, output_dir_session)

DATASETS = ("syndof", "cuhk", "dut", "rtf")
TRAINING_FREE = ("dof_weight", "lbp", "hifst")
METHODS = ("model",) + TRAINING_FREE
SIGMA_METRICS = ("mse", "mae_norm", "mae_px")
RANK_METRICS = ("spearman",)
RTF_METRICS = ("rtf_mse", "rtf_mae")
DETECTION_METRICS = ("accuracy", "ap", "auc", "mae", "max_f", "iou")
METRIC_TITLES = {"mse": "MSE (sigma/7)", "mae_norm": "MAE (sigma/7)", "mae_px": "MAE [px]",
                 "spearman": "Spearman rho",
                 "rtf_mse": "RTF MSE", "rtf_mae": "RTF MAE", "accuracy": "acc", "ap": "mAP",
                 "auc": "AUC", "mae": "MAE (det.)", "max_f": "max F (b2=0.3)", "iou": "IoU"}


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(RunSettings, MaskSettings):
    """One evaluation run; each field is a flag of the same name; written as JSON next to the
    results. Tiles and threads: ``inference.RunSettings``; the mask rule (IoU, and the gt mask
    of sigma data sets): ``model_kinds.MaskSettings``."""
    model: tuple[str, ...] = setting((), "Model to evaluate (default: the built-in default "
                                         "model, named 'default'): PATH or name=PATH (.keras, "
                                         "SavedModel dir, .tflite); repeatable.", multi=True)
    dataset: str = setting(None, "Benchmark layout.", choices=DATASETS)
    data_dir: str = setting(None, "Root folder of the data set.")
    method: tuple[str, ...] = setting(("model",), "model (every --model) and/or the "
                                      "training-free dof_weight (KCI 2020), lbp (Yi & Eramian "
                                      "2016), hifst (Golestaneh & Karam 2017); repeatable.",
                                      choices=METHODS, multi=True)
    output: str = setting(None, "Folder for per_image.csv, results.json, results.md.")
    label_convention: str | None = setting(None, "SYNDOF label convention (required for "
                                                 "--dataset=syndof).",
                                           choices=readers.LABEL_CONVENTIONS)
    blurred_value: int | None = setting(None, "CUHK / DUT masks: grey level of blurred pixels, "
                                              "255 or 0 (required for cuhk and dut).",
                                        choices=(255, 0))
    mask_size: int = cfglib.like(PredictConfig, "mask_size")
    max_side: int = setting(0, "Read images whose long side exceeds this many px downscaled to "
                               "it, as predict's --max_side does by default; 0 (default) = never: "
                               "a labelled data set's blur lies within the labels' 7 px range at "
                               "its own size.", low=0)
    limit: int = setting(0, "Evaluate only the first N images (0 = all).", low=0)
    skip_bad: bool = setting(False, "Unpaired files (an image without a label, a label without "
                                    "an image) are skipped with a warning instead of counting "
                                    "as failures (exit code 1); the pairs are evaluated either "
                                    "way.")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "method", tuple(dict.fromkeys(self.method)))  # each once

    @property
    def models(self):
        """((name, path), ...) of ``model`` (``parse_models``)."""
        return parse_models(self.model)

    def check(self):
        super().check()
        if not self.method:
            raise ConfigError(f"--method must be one or more of {', '.join(METHODS)}")
        if "model" not in self.method and self.model:
            raise ConfigError("--model given but --method does not include 'model'")
        clash = [name for name, _ in self.models if name in TRAINING_FREE]
        if clash:
            raise ConfigError(f"--model name {clash[0]!r} is also a method name; name it with "
                              f"--model=NAME=PATH")
        if self.dataset == "syndof" and self.label_convention is None:
            raise ConfigError(f"--dataset=syndof needs --label_convention, one of "
                              f"{readers.LABEL_CONVENTIONS} (sigma10: blur_map = 10 sigma; "
                              f"released: the SYNDOF that trained DMENet, sigma = (v/10 - 1)/2)")
        if self.dataset in ("cuhk", "dut") and self.blurred_value is None:
            raise ConfigError(f"--dataset={self.dataset} needs --blurred_value=255 (white = "
                              f"blurred) or --blurred_value=0 (black = blurred); copies differ")
        if "dof_weight" in self.method:
            check_dof_mask_size(self.mask_size)


def parse_models(values):
    """``--model`` values (``PATH`` or ``name=PATH``) -> ((name, path), ...) with unique names
    (default name: the file stem, or the directory name)."""
    out, names = [], set()
    for v in values:
        if "=" in v and not Path(v).exists():
            name, path = v.split("=", 1)
        else:
            path = v
            p = Path(v.rstrip("/"))
            name = p.name if p.is_dir() else p.stem
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.add(name)
        out.append((name, path))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A listed data set: the readers' FileSource of the (image, label) pairs, and the files
    that could not be paired (an image without a label, a label without an image), as
    messages naming the file."""
    source: object
    unpaired: tuple = ()


@contextlib.contextmanager
def _collect_listing_problems():
    """Collect the problems ``tf_defocus.data.readers`` logs while listing with
    ``skip_bad=True`` (``log.warning("skipping %s", problem)``) instead of letting them reach
    the log handlers, so that evaluate reports each once, itself."""
    from tf_defocus.data import readers
    problems = []

    class Collect(logging.Handler):
        def emit(self, record):
            args = record.args if isinstance(record.args, tuple) else ()
            problems.append(str(args[0]) if record.msg == "skipping %s" and args
                            else record.getMessage())

    logger, handler = readers.log, Collect(logging.WARNING)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield problems
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def open_dataset(config):
    """List the data set of ``config`` -> Dataset; ConfigError on a layout problem (no such
    folder, no pair at all, ...). Unpaired files do not stop the run: they are left out and
    listed in ``Dataset.unpaired`` (``evaluate`` reports them)."""
    from tf_defocus.data import readers
    with _collect_listing_problems() as unpaired:
        try:
            if config.dataset == "syndof":
                source = readers.syndof(config.data_dir, config.label_convention, skip_bad=True)
            elif config.dataset == "cuhk":
                source = readers.cuhk(config.data_dir, config.blurred_value, skip_bad=True)
            elif config.dataset == "dut":
                source = readers.dut_dbd(config.data_dir, config.blurred_value, skip_bad=True)
            else:
                source = readers.rtf(config.data_dir, skip_bad=True)
        except (readers.DataError, ValueError) as e:
            more = (f" ({len(unpaired)} unpaired file(s), e.g. {unpaired[0]})" if unpaired
                    else "")
            raise ConfigError(f"{e}{more}") from e
    return Dataset(source, tuple(unpaired))


def _problem_path(message):
    """The file a listing problem names (its text up to the first ': ')."""
    return message.split(": ", 1)[0]


def load_methods(config):
    """[(name, estimator)] for every method of ``config``; ConfigError naming a bad model."""
    from tf_defocus import inference
    out = []
    if "model" in config.method:
        inference.set_tf_threads(config.threads)   # process-wide TF pools (.keras, SavedModel)
        for name, path in config.models or (("default", None),):  # None: the built-in model
            try:
                est = inference.load_estimator(path, config.tile_size, config.tile_overlap,
                                               threads=config.threads or None,
                                               flips=config.flips, scale=config.scale,
                                               max_side=config.max_side)
            except (inference.ModelLoadError, ValueError) as e:
                raise ConfigError(str(e)) from e
            out.append((name, est))
    if "dof_weight" in config.method:
        try:
            out.append(("dof_weight", inference.DoFWeightMethod(mask_size=config.mask_size)))
        except (NotImplementedError, ValueError) as e:
            raise ConfigError(str(e)) from e
    from tf_defocus import classical
    for name in config.method:                          # given order, each once
        if name in classical.METHODS:
            out.append((name, classical.make_method(name)))
    return out


def image_metrics(native, kind, label, label_kind, dataset, config):
    """Per-image metrics of one method.

    native: (H, W) sigma / ``config.sigma_max_px(H, W)`` (defocus kind; sigma/7 at scale 1) or
    focus weight / score (dof_weight kind). label:
    (H, W) sigma [px] (label_kind "sigma") or mask 1 = blurred ("mask"). Returns (dict of
    floats, F curve array).
    """
    maps = model_kinds.spec(kind).maps(np.asarray(native, np.float64), config.mask_threshold_px,
                                       config.mask_threshold_weight,
                                       config.sigma_max_px(*np.shape(native)))
    sigma, score, pred_mask = maps.sigma_px, maps.blur_score, maps.mask
    row = {}
    if label_kind == "sigma":
        if sigma is not None:
            e = metrics.defocus_errors(sigma, label)
            row.update(mse=e["mse"], mae_norm=e["mae"], mae_px=e["mae_px"])
            if dataset == "rtf":
                row.update(metrics.rtf_errors(sigma, label))
        row["spearman"] = metrics.spearman(score, label)
        mask = label > config.mask_threshold_px
    else:
        mask = label > 0.5
    det = metrics.blur_detection_metrics(score, mask, pred_mask)
    curve = det.pop("f_curve")
    row.update(det)
    return row, curve


def metric_names(dataset, label_kind):
    names = []
    if label_kind == "sigma":
        names += list(SIGMA_METRICS) + list(RANK_METRICS)
        if dataset == "rtf":
            names += list(RTF_METRICS)
    return names + list(DETECTION_METRICS)


def evaluate(config, methods=None, stream=None, dataset=None):
    """Run the evaluation; returns (results dict, per-image rows, list of (path, message)).

    dataset: ``open_dataset(config)``, if already listed. Its unpaired files are reported on
    ``stream`` once each: as failures, or with ``config.skip_bad`` as skipped (a warning, not
    a failure); the pairs are evaluated either way."""
    stream = stream or sys.stderr
    if dataset is None:
        dataset = open_dataset(config)
    source = dataset.source
    if methods is None:
        methods = load_methods(config)
    examples = list(source.examples)
    if config.limit:
        examples = examples[:config.limit]
    names = metric_names(config.dataset, source.label_kind)
    rows, failed = [], []
    for problem in dataset.unpaired:
        if config.skip_bad:
            stream.write(f"warning: skipping {problem} (--skip_bad)\n")
        else:
            stream.write(f"error: {problem}\n")
            failed.append((_problem_path(problem), problem))
    per_method = {name: {"rows": [], "curves": [], "failed": []} for name, _ in methods}
    progress = cli.FileProgress(len(examples), stream)
    start = time.time()
    for ex in examples:
        t0 = time.time()
        try:
            image, label = source.load(ex)
        except Exception as e:  # noqa: BLE001  (name the file, keep going)
            msg = str(e) if ex.image in str(e) or str(ex.label) in str(e) else f"{ex.image}: {e}"
            failed.append((ex.image, msg))
            progress.file_done(Path(ex.image).name, "FAILED")
            stream.write(f"error: {msg}\n")
            continue
        for name, est in methods:
            try:
                native = est.predict_native(image)
                row, curve = image_metrics(native, est.kind, label, source.label_kind,
                                           config.dataset, config)
            except Exception as e:  # noqa: BLE001
                msg = f"{ex.image}: method {name}: {type(e).__name__}: {e}"
                per_method[name]["failed"].append(ex.image)
                failed.append((ex.image, msg))
                stream.write(f"error: {msg}\n")
                continue
            per_method[name]["rows"].append(row)
            per_method[name]["curves"].append(curve)
            rows.append({"image": ex.image, "method": name,
                         **{k: row.get(k, float("nan")) for k in names}})
        progress.file_done(Path(ex.image).name,
                           f"{image.shape[1]}x{image.shape[0]} px, {time.time() - t0:.1f} s")
    results = {"dataset": config.dataset, "data_dir": config.data_dir,
               "num_images": len(examples), "seconds": round(time.time() - start, 3),
               "metrics": names, "methods": {}, "tf_defocus_version": __version__,
               "unpaired": list(dataset.unpaired), "unpaired_skipped": bool(config.skip_bad)}
    for name, est in methods:
        d = per_method[name]
        agg = {k: metrics.nanmean([r.get(k, float("nan")) for r in d["rows"]]) for k in names}
        if d["curves"]:
            agg["max_f"] = metrics.dataset_max_f_measure(d["curves"])
        results["methods"][name] = {
            "kind": est.kind, "path": getattr(est, "path", ""), "num_images": len(d["rows"]),
            "failed": d["failed"], "metrics": agg}
    return results, rows, failed


def _fmt(v):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def markdown_table(results):
    """Methods as rows, metrics as columns (n/a where a metric does not apply)."""
    names = results["metrics"]
    unpaired = len(results.get("unpaired") or ())
    lines = [f"Data set: {results['dataset']} ({results['data_dir']}), "
             f"{results['num_images']} images listed"
             + (f", {unpaired} unpaired file(s) left out" if unpaired else ""), "",
             "| method | kind | images | " + " | ".join(METRIC_TITLES[n] for n in names) + " |",
             "|---|---|---:|" + "---:|" * len(names)]
    for method, r in results["methods"].items():
        cells = [_fmt(r["metrics"].get(n)) for n in names]
        lines.append(f"| {method} | {r['kind']} | {r['num_images']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def per_image_csv(rows, names):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "method"] + list(names))
    for r in rows:
        w.writerow([r["image"], r["method"]] + [("" if math.isnan(r[k]) else f"{r[k]:.6g}")
                                                for k in names])
    return buf.getvalue()


def _json_safe(obj):
    """NaN / Inf -> None (JSON null), NumPy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_results(config, results, rows):
    """Write per_image.csv, results.json and results.md into ``config.output``; raises
    OutputWriteError naming the file that cannot be written."""
    out = Path(config.output)
    files = (("per_image.csv", lambda: per_image_csv(rows, results["metrics"])),
             ("results.json", lambda: json.dumps(_json_safe(results), indent=2, sort_keys=True,
                                                 allow_nan=False)),
             ("results.md", lambda: markdown_table(results)))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputWriteError(out, e) from e
    for name, text in files:
        try:
            imageio.write_text(out / name, text())
        except OSError as e:
            raise OutputWriteError(out / name, e) from e


EVALUATE_OUTPUTS = ("per_image.csv", "results.json", "results.md", "evaluate_config.json")


def run_config(config, stream=None):
    """Evaluate, write, print the table; returns the exit code (0 ok, 1 some images failed or
    the results could not be written, 2 bad configuration: data set layout, model or output
    folder, before any work)."""
    stream = stream or sys.stderr
    with contextlib.ExitStack() as stack:
        try:
            dataset = open_dataset(config)        # layout errors before loading models
            check_output_dir(config.output, "--output")
            methods = load_methods(config)
            config_text = json.dumps({**cfglib.to_dict(config), "models": config.models,
                                      "tf_defocus_version": __version__},
                                     indent=2, sort_keys=True, default=list)
            stack.enter_context(output_dir_session(
                config.output, "evaluate_config.json", config_text,
                EVALUATE_OUTPUTS.__contains__, stream, flag="--output"))
        except ConfigError as e:
            stream.write(f"error: {e}\n")
            return 2
        results, rows, failed = evaluate(config, methods, stream, dataset)
        print(markdown_table(results))
        try:
            write_results(config, results, rows)
        except OutputWriteError as e:
            stream.write(f"error: {e} (the results are only in the table above)\n")
            return 1
    stream.write(f"evaluate: {results['num_images']} images, {len(failed)} failures, "
                 f"{results['seconds']:.1f} s; results in {config.output}\n")
    if failed:
        paths = dict.fromkeys(p for p, _ in failed)          # each once, in order
        stream.write("failed:\n" + "".join(f"  {p}\n" for p in paths))
        return 1
    return 0

