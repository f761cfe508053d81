"""Exported-model latency, size and accuracy: Keras vs SavedModel vs TFLite (issue 5).

Prints, measured in one run at ``--size`` (default 512x512) with ``--threads`` (default 2):

1. latency (median of ``--repeats`` after one warm-up) of the Keras model
   (``predict_on_batch``), the SavedModel ``serve`` signature (float input) and
   ``serving_default`` (JPEG bytes, decode included), and the fixed-size TFLite files
   (float32, float16, dynamic-range, int8; int8 twice more with the per-tensor minimum-MSE
   activation ranges alone and with TF's plain min/max ranges instead of the default searched
   ones) run with LiteRT's default CPU path (XNNPACK), and the int8 file once more with
   TFLite's reference kernels (no XNNPACK, as runtimes without that delegate execute it); each
   as a ratio to Keras;
2. file sizes (SavedModel directory, each .tflite);
3. accuracy on ``--num_eval`` data-engine images (``tf_defocus.data.synthesize``, seeds apart
   from calibration): max |diff| and MAE against Keras in sigma/7 units, and MAE against the
   rendered ground truth, with the export targets (float32 max <= 1e-4, float16 max <= 5e-3,
   int8 MAE <= 0.02) marked PASS / FAIL.

Model: ``--model=PATH`` (a trained ``blur_estimator.keras``, e.g. from
``python -m tf_defocus.train --flagfile=configs/quickstart.flags --model_dir=DIR``). Without it a
randomly initialised ``BlurEstimator(width=--width)`` with BatchNorm statistics from synthetic
images is used, and the run says so: its latencies are representative for that width, its
quantization errors are not (a random deep net is far more sensitive to int8 than a trained
one).

    python benchmarks/export.py --model=runs/quick/blur_estimator.keras [--size=512]
        [--threads=2] [--repeats=5] [--num_eval=8] [--num_calibration=32]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIGMA_MAX_PX = 7.0
TARGETS = {"float32": ("max", 1e-4), "float16": ("max", 5e-3), "int8": ("mae", 0.02)}
QUANT_LABEL = {"none": "float32", "float16": "float16", "dynamic": "dynamic", "int8": "int8"}


def parse_size(text):
    parts = text.lower().split("x")
    h, w = (int(parts[0]), int(parts[-1]))
    if h % 16 or w % 16:
        raise SystemExit(f"--size={text}: multiples of 16 only")
    return h, w


def dir_size(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def timed(fn, repeats):
    """Median wall time [s] of ``fn()`` over ``repeats`` runs after one warm-up; its last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def build_model(args, calib_images):
    import keras
    from tf_defocus.export.model_io import load_inference_model
    if args.model:
        model, kind, _ = load_inference_model(args.model)
        if kind != "defocus":
            raise SystemExit(f"{args.model}: a {kind} model; this benchmark measures blur_estimator")
        return model, f"trained model {args.model}"
    from tf_defocus.models import BlurEstimator
    from tests.export_checks import conditioned
    keras.utils.set_random_seed(0)
    model = BlurEstimator(width=args.width).inference_model()
    conditioned(model, calib_images[:4])
    return model, (f"NO --model GIVEN: randomly initialised BlurEstimator(width={args.width}) with "
                   f"BatchNorm statistics from synthetic images. Latencies are representative; "
                   f"quantization errors are NOT (random deep nets are chaotic under int8)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="trained blur_estimator.keras")
    p.add_argument("--width", type=float, default=0.25, help="width of the fallback random model")
    p.add_argument("--size", default="512x512", help="HxW of the benchmark input [px]")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--num_eval", type=int, default=8, help="data-engine images for accuracy")
    p.add_argument("--num_calibration", type=int, default=32, help="int8 calibration images")
    p.add_argument("--out_dir", default=None, help="keep the exports here (default: temp dir)")
    p.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = p.parse_args()
    h, w = parse_size(args.size)

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(args.threads, 2))
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tf_defocus.litert import tflite_input
    from tf_defocus.data.synthesize import synthesize
    from tf_defocus.export import convert_tflite_many, export_saved_model
    from tf_defocus.export.tflite import builtin_calibration_images

    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="tfd_export_bench_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"rendering {args.num_calibration} calibration + {args.num_eval} evaluation images "
          f"({w}x{h}) with the data engine ...", flush=True)
    calib = list(builtin_calibration_images(args.num_calibration, (h, w)))
    evals = [synthesize(9_000_000 + i, w, h, psf="gaussian" if i % 2 == 0 else "disc")
             for i in range(args.num_eval)]
    images = np.stack([s.image for s in evals]).astype(np.float32)
    truth = np.clip(np.stack([s.sigma_px for s in evals]) / SIGMA_MAX_PX, 0, 1)[..., None]
    print(f"  {time.perf_counter() - t0:.1f} s", flush=True)

    model, what = build_model(args, calib)
    print(f"model: {what}; {model.count_params():,} parameters", flush=True)

    t0 = time.perf_counter()
    sm_dir = export_saved_model(model, out_dir / "serving", overwrite=True,
                                source_model=args.model or "random")
    t_sm = time.perf_counter() - t0
    print(f"SavedModel written in {t_sm:.1f} s: {sm_dir}", flush=True)
    jobs = [(q, out_dir / f"blur_estimator_{QUANT_LABEL[q]}_{h}x{w}.tflite")
            for q in ("none", "float16", "dynamic", "int8")]
    t0 = time.perf_counter()
    results = convert_tflite_many(model, jobs, input_size=(h, w), calibration_images=calib,
                                  overwrite=True, source_model=args.model or "random",
                                  progress=lambda m: print("  " + m, flush=True))
    print(f"TFLite conversions (4 variants) in {time.perf_counter() - t0:.1f} s", flush=True)
    variants = [(f"TFLite {QUANT_LABEL[r.info.quantization]}", r) for r in results]
    # The same int8 model with the per-tensor minimum-MSE ranges alone and with TF's plain
    # min/max activation ranges, for comparison.
    for ranges, label in (("mse", "minimum-MSE ranges"), ("minmax", "min/max ranges")):
        other = convert_tflite_many(
            model, [("int8", out_dir / f"blur_estimator_int8_{ranges}_{h}x{w}.tflite")],
            input_size=(h, w), calibration_images=calib, overwrite=True,
            source_model=args.model or "random", int8_ranges=ranges,
            progress=lambda m: print("  " + m, flush=True))
        variants.append((f"TFLite int8, {label}", other[0]))

    x1 = images[:1]
    rows = []

    # Keras
    keras_ref = np.concatenate([np.asarray(model.predict_on_batch(images[i:i + 1]))
                                for i in range(len(images))])
    lat, _ = timed(lambda: model.predict_on_batch(x1), args.repeats)
    rows.append({"variant": "Keras (predict_on_batch)", "latency_s": lat, "bytes": None,
                 "native": keras_ref})
    keras_lat = lat

    # SavedModel
    loaded = tf.saved_model.load(str(sm_dir))
    serve = loaded.signatures["serve"]
    sm_native = np.concatenate([serve(image=tf.constant(images[i:i + 1]))["sigma_px"].numpy()
                                for i in range(len(images))]) / SIGMA_MAX_PX
    lat, _ = timed(lambda: serve(image=tf.constant(x1))["sigma_px"].numpy(), args.repeats)
    rows.append({"variant": "SavedModel serve (float32)", "latency_s": lat,
                 "bytes": dir_size(sm_dir), "native": sm_native})
    jpeg = tf.io.encode_jpeg(tf.constant((x1[0] * 255 + 0.5).astype(np.uint8)), quality=95)
    sd = loaded.signatures["serving_default"]
    lat, _ = timed(lambda: sd(image_bytes=tf.reshape(jpeg, [1]))["sigma_px"].numpy(), args.repeats)
    rows.append({"variant": "SavedModel serving_default (JPEG)", "latency_s": lat, "bytes": None,
                 "native": None})

    # TFLite: LiteRT's default CPU path (XNNPACK delegate); the int8 file once more with
    # TFLite's own reference kernels, as runtimes without XNNPACK execute it.
    reference = [("TFLite int8, no XNNPACK", r, True) for r in results
                 if r.info.quantization == "int8"]
    for label, r, builtin in [(label, r, False) for label, r in variants] + reference:
        resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin
                    else OpResolverType.AUTO)
        interp = Interpreter(model_path=str(r.path), num_threads=args.threads,
                             experimental_op_resolver_type=resolver)
        runner = interp.get_signature_runner("serve")
        (name, d), = runner.get_input_details().items()
        native = np.concatenate([runner(**{name: tflite_input(images[i:i + 1], d)})["sigma_px"]
                                 for i in range(len(images))]) / SIGMA_MAX_PX
        xq = tflite_input(x1, d)
        lat, _ = timed(lambda: runner(**{name: xq}), args.repeats)
        rows.append({"variant": label, "latency_s": lat,
                     "bytes": r.size_bytes, "native": native,
                     "quant": None if builtin else r.info.quantization})

    print()
    print(f"Export benchmark: input 1x{h}x{w}x3, {args.threads} threads, median of "
          f"{args.repeats}; accuracy on {len(images)} data-engine images, sigma/7 units")
    print(f"model: {what}")
    header = (f"{'variant':36s} {'size MB':>8s} {'latency ms':>11s} {'x Keras':>8s} "
              f"{'max|d| vs Keras':>16s} {'MAE vs Keras':>13s} {'MAE vs truth':>13s}  target")
    print(header)
    print("-" * len(header))
    summary = []
    for row in rows:
        native = row["native"]
        size = f"{row['bytes'] / 1e6:8.2f}" if row["bytes"] else f"{'':8s}"
        acc = f"{'':16s} {'':13s} {'':13s}"
        verdict = ""
        entry = {"variant": row["variant"], "latency_ms": row["latency_s"] * 1e3,
                 "ratio_to_keras": row["latency_s"] / keras_lat, "bytes": row["bytes"]}
        if native is not None:
            d = np.abs(native - keras_ref)
            mx, mae = float(d.max()), float(d.mean())
            mae_truth = float(np.abs(native - truth).mean())
            acc = f"{mx:16.2e} {mae:13.5f} {mae_truth:13.5f}"
            entry.update(max_abs_vs_keras=mx, mae_vs_keras=mae, mae_vs_truth=mae_truth)
            label = QUANT_LABEL.get(row.get("quant"), "")
            if label in TARGETS:
                kind, bound = TARGETS[label]
                value = mx if kind == "max" else mae
                verdict = f"{'PASS' if value <= bound else 'FAIL'} ({kind} <= {bound:g})"
                entry["target"] = verdict
        print(f"{row['variant']:36s} {size} {row['latency_s'] * 1e3:11.1f} "
              f"{row['latency_s'] / keras_lat:8.2f} {acc}  {verdict}")
        summary.append(entry)
    int8 = {e["variant"]: e.get("mae_vs_keras") for e in summary}
    a, b = int8.get("TFLite int8"), int8.get("TFLite int8, min/max ranges")
    c = int8.get("TFLite int8, minimum-MSE ranges")
    if a is not None and b and c:
        print(f"\nint8 MAE vs Keras, searched / minimum-MSE / min-max activation ranges: "
              f"{a:.5f} / {c:.5f} / {b:.5f}; searched / min-max = {a / b:.2f}, "
              f"searched / minimum-MSE = {a / c:.2f}")
    print(f"\nexports kept in {out_dir}" if args.out_dir else "")
    if args.json:
        Path(args.json).write_text(json.dumps({"size": [h, w], "threads": args.threads,
                                               "model": what, "rows": summary}, indent=2))


if __name__ == "__main__":
    main()
