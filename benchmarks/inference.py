"""Inference speed and memory of the blur estimator, whole-image vs tiled (issue 4).

Prints, measured in one run (every figure from its own subprocess, peak RSS = its ru_maxrss):

1. for square inputs of ``--sizes`` (default 256..2048): seconds per megapixel and peak RSS of a
   whole-image pass (up to ``--max_whole``) and of tiled inference (``--tile_size`` /
   ``--tile_overlap``), and the achieved GFLOP/s (conv FLOPs counted analytically from the
   model's Conv2D layers: 2 * H_out * W_out * k_h * k_w * C_in * C_out, summed over the tiles
   actually run) beside TensorFlow's float32 matmul GFLOP/s measured in the same run;
2. tiled vs whole-image agreement (MAE and max |diff| in sigma/7 units) at the largest
   whole-image size, for the default tiling and a small-tile setting;
3. a 24-megapixel photo (6000x4000 JPEG read from disk) with tiling: seconds and peak RSS
   against the 4 GB budget.

Model: ``--model=PATH`` (a trained ``blur_estimator.keras``), else a ``BlurEstimator`` of
``--width`` (default 1.0 = the paper) with random conv weights and BatchNorm statistics
calibrated on synthetic images (so activations have a realistic scale). Full width costs about
2.5 TFLOP per megapixel: on 2 shared cores the whole run takes ~10-15 minutes; ``--width=0.25``
or ``--skip_24mp`` make it quick.

``--train_steps=400`` adds item 4: a small model trained briefly on synthetic data, whose tiled
and whole-image maps are compared the same way (a trained network may use wider context than a
random one).

    python benchmarks/inference.py [--width=1.0] [--sizes=256,512,1024,2048] [--threads=2]
                                   [--train_steps=400]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Importing tf_defocus loads TensorFlow; a worker's BFC setting is already in its environment
# (run_worker), so TensorFlow reads it here.
from tf_defocus.cli import BFC_ENV  # noqa: E402

BUDGET_MB = 4096


# ----------------------------------------------------------------------------- helpers

def set_threads(n):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(min(n, 2))


def matmul_gflops(n=2048, repeats=5):
    """Best-of-``repeats`` TF float32 matmul GFLOP/s (2 n^3 FLOPs per product)."""
    import tensorflow as tf
    a = tf.random.uniform((n, n), dtype=tf.float32)
    b = tf.random.uniform((n, n), dtype=tf.float32)
    mm = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    mm(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def conv_gflop(model, h, w):
    """Analytic conv FLOPs [GFLOP] of ``model`` on one (h, w) input."""
    import keras
    inp = keras.Input(shape=(h, w, 3), batch_size=1)
    clone = keras.models.clone_model(model, input_tensors=inp)
    total = 0
    for layer in clone.layers:
        if isinstance(layer, keras.layers.Conv2D):
            oh, ow, co = layer.output.shape[1:]
            kh, kw, ci, _ = layer.kernel.shape
            total += 2 * oh * ow * kh * kw * ci * co
    return total / 1e9


def make_model(width, out_path, seed=1, passes=12):
    """Random-weight BlurEstimator with BatchNorm statistics calibrated on synthetic images."""
    import keras
    from tf_defocus.data.synthesize import synthesize
    from tf_defocus.models import BlurEstimator
    keras.utils.set_random_seed(seed)
    trainable = BlurEstimator(width=width)
    batch = np.stack([synthesize(100 + i, 64, 64).image for i in range(4)])
    for _ in range(passes):
        trainable(batch, training=True)
    model = trainable.inference_model()
    model.save(out_path)
    return model


def test_image(base, h, w):
    """(h, w, 3) float32: the base scene mirrored/cropped to size."""
    reps = (int(np.ceil(h / base.shape[0])), int(np.ceil(w / base.shape[1])))
    rows = [np.concatenate([base if (i + j) % 2 == 0 else base[:, ::-1] for j in range(reps[1])], 1)
            for i in range(reps[0])]
    return np.ascontiguousarray(np.concatenate(rows, 0)[:h, :w])


def trained_agreement(args, settings):
    """Briefly train a small BlurEstimator on synthetic crops, then compare tiled and whole maps.

    Returns (train seconds, final loss, whole-map MAE vs ground truth, constant-map MAE, rows of
    (tile, overlap, MAE, max)) in sigma/7 units.
    """
    import keras
    import tensorflow as tf
    from tf_defocus.data.synthesize import synthesize
    from tf_defocus.inference import load_estimator
    from tf_defocus.models import BlurEstimator
    from tf_defocus.units import SIGMA_MAX_PX
    n, size, crop, batch = 48, 128, 96, 8
    samples = [synthesize(1000 + i, size, size) for i in range(n)]
    x_all = np.stack([s.image for s in samples])
    y_all = np.stack([s.sigma_px for s in samples])[..., None] / SIGMA_MAX_PX

    def gen():
        rng = np.random.default_rng(0)
        while True:
            idx = rng.integers(0, n, batch)
            y0, x0 = rng.integers(0, size - crop + 1, 2)
            xb, yb = x_all[idx, y0:y0 + crop, x0:x0 + crop], y_all[idx, y0:y0 + crop, x0:x0 + crop]
            if rng.random() < 0.5:
                xb, yb = xb[:, :, ::-1], yb[:, :, ::-1]
            yield np.ascontiguousarray(xb), np.ascontiguousarray(yb)

    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec((batch, crop, crop, 3), tf.float32),
        tf.TensorSpec((batch, crop, crop, 1), tf.float32)))
    keras.utils.set_random_seed(0)
    model = BlurEstimator(width=args.train_width).inference_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    t0 = time.perf_counter()
    hist = model.fit(ds, steps_per_epoch=args.train_steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - t0
    path = Path(tempfile.mkdtemp(prefix="tfd_bench_trained_")) / "blur_estimator.keras"
    model.save(path)
    test = synthesize(5, 512, 384)
    gt = test.sigma_px / SIGMA_MAX_PX
    est = load_estimator(path, tile_size=0, tile_overlap=0)
    whole = est.predict_native(test.image)
    rows = []
    for ts, ov in settings:
        est.tile_size, est.tile_overlap = ts, ov
        d = np.abs(est.predict_native(test.image) - whole)
        rows.append((ts, ov, float(d.mean()), float(d.max())))
    return (seconds, hist.history["loss"][-1], float(np.abs(whole - gt).mean()),
            float(np.abs(gt - gt.mean()).mean()), rows)


# ----------------------------------------------------------------------------- worker

def worker(spec):
    """Run one measurement in this (fresh) process; prints one JSON line."""
    set_threads(spec["threads"])
    from tf_defocus.imageio import read_image
    from tf_defocus.inference import load_estimator
    # max_side=0: the photo is read at its own size (no cap on the long side), so the figures
    # are the model's seconds per megapixel of input it reads
    est = load_estimator(spec["model"], spec["tile_size"], spec["tile_overlap"],
                         flips=spec.get("flips", 1), max_side=0)
    if spec.get("image_file"):
        t_read = time.perf_counter()
        img = read_image(spec["image_file"])
        t_read = time.perf_counter() - t_read
    elif spec.get("image_npy"):  # an exact image (benchmarks/default_model.py)
        t_read = 0.0
        img = np.load(spec["image_npy"])
    else:
        t_read = 0.0
        img = test_image(np.load(spec["base"]), spec["size"], spec["size"])
    (th, tw), ys, xs, (hp, wp) = est.tiles(*img.shape[:2])
    # warm-up (traces the function): one tile's worth of pixels
    est.predict_native(np.zeros((th, tw, 3), np.float32))
    hwm_reset = _reset_peak_rss()
    times = []
    for _ in range(max(1, int(spec.get("repeats", 1)))):   # median of ``repeats`` timings
        t0 = time.perf_counter()
        native = est.predict_native(img)
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    if spec.get("save_map"):
        np.save(spec["save_map"], native)
    print(json.dumps({"seconds": seconds, "read_seconds": t_read, "tiles": len(ys) * len(xs),
                      "tile_hw": [th, tw], "padded": [hp, wp], "shape": list(img.shape[:2]),
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "inference_peak_rss_mb": _peak_rss_mb() if hwm_reset else None}))


def _reset_peak_rss():
    """Reset this process's peak RSS (Linux: ``5`` to /proc/self/clear_refs); True if done, so
    ``_peak_rss_mb`` then measures the inference alone, not the start-up (TF import) peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb():
    """VmHWM of /proc/self/status [MB]."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run_worker(spec):
    """Run ``worker(spec)`` in a fresh process; returns its JSON result. ``spec["bfc"]`` (default
    True, as the predict / evaluate CLIs do: ``tf_defocus.cli.bfc_allocator_for_inference_commands``)
    sets TensorFlow's BFC CPU allocator on or off in that process."""
    env = {**os.environ, BFC_ENV: "true" if spec.get("bfc", True) else "false"}
    cmd = [sys.executable, __file__, "--_worker", json.dumps(spec)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"worker failed ({spec}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main

def main(args):
    set_threads(args.threads)
    import keras
    from tf_defocus.data.synthesize import synthesize
    tmp = Path(tempfile.mkdtemp(prefix="tfd_bench_inference_"))
    t_setup = time.perf_counter()
    if args.model:
        model_path = args.model
        from tf_defocus.export.model_io import load_inference_model
        model = load_inference_model(model_path)[0]
        what = f"trained model {model_path}"
    else:
        model_path = str(tmp / "blur_estimator.keras")
        model = make_model(args.width, model_path)
        what = (f"BlurEstimator width {args.width:g}, random conv weights, BatchNorm calibrated "
                f"on synthetic images")
    base = synthesize(7, 1024, 768).image
    np.save(tmp / "base.npy", base)
    print(f"model: {what}; {model.count_params() / 1e6:.2f} M parameters; threads {args.threads}; "
          f"tiles {args.tile_size} px, overlap {args.tile_overlap} px "
          f"(setup {time.perf_counter() - t_setup:.0f} s)", flush=True)

    mm0 = matmul_gflops()
    gflop_per_mp = conv_gflop(model, 256, 256) / (256 * 256 / 1e6)
    print(f"TF float32 matmul (2048^2): {mm0:.1f} GFLOP/s; model conv FLOPs: "
          f"{gflop_per_mp:.0f} GFLOP per megapixel\n", flush=True)
    del keras

    spec0 = {"model": model_path, "threads": args.threads, "base": str(tmp / "base.npy")}
    flops_cache = {}

    def gflop(hw):
        if hw not in flops_cache:
            flops_cache[hw] = conv_gflop(model, *hw)
        return flops_cache[hw]

    def row_fields(r):
        mp = r["shape"][0] * r["shape"][1] / 1e6
        work = gflop(tuple(r["tile_hw"])) * r["tiles"]
        rate = work / r["seconds"]
        return mp, f"{r['seconds'] / mp:8.2f} {r['rss_mb']:8.0f} {rate:7.1f} {100 * rate / mm0:5.0f}%"

    header = (f"{'size':>10} {'MP':>6} | {'whole: s/MP':>11} {'RSS MB':>8} {'GFLOP/s':>7} {'%mm':>6}"
              f" | {'tiled: s/MP':>11} {'RSS MB':>8} {'GFLOP/s':>7} {'%mm':>6} {'tiles':>5}")
    print(header)
    print("-" * len(header), flush=True)
    whole_maps = {}
    for size in args.sizes:
        cells = []
        if size <= args.max_whole:
            save = str(tmp / f"whole_{size}.npy")
            r = run_worker({**spec0, "size": size, "tile_size": 0, "tile_overlap": 0,
                            "save_map": save})
            whole_maps[size] = save
            mp, txt = row_fields(r)
            cells.append(f"{txt:>36}")
        else:
            mp = size * size / 1e6
            cells.append(f"{'(skipped: --max_whole)':>36}")
        r = run_worker({**spec0, "size": size, "tile_size": args.tile_size,
                        "tile_overlap": args.tile_overlap,
                        "save_map": str(tmp / f"tiled_{size}.npy")})
        _, txt = row_fields(r)
        print(f"{f'{size}x{size}':>10} {mp:6.2f} | {cells[0]} | {txt:>36} {r['tiles']:5d}", flush=True)

    if whole_maps:
        size = max(whole_maps)
        ref = np.load(whole_maps[size])
        print(f"\ntiled vs whole at {size}x{size} (sigma/7 units; budget MAE <= 0.01):")
        settings = [(args.tile_size, args.tile_overlap)] + [
            tuple(int(v) for v in s.split(":")) for s in args.agreement_tiles]
        for ts, ov in settings:
            path = tmp / f"agree_{size}_{ts}_{ov}.npy"
            if (ts, ov) == (args.tile_size, args.tile_overlap):
                path = tmp / f"tiled_{size}.npy"
            else:
                run_worker({**spec0, "size": size, "tile_size": ts, "tile_overlap": ov,
                            "save_map": str(path)})
            d = np.abs(np.load(path) - ref)
            print(f"  tile {ts:4d} overlap {ov:3d}: MAE {d.mean():.5f}  max {d.max():.4f}  "
                  f"(whole-map std {ref.std():.3f})", flush=True)

    if args.train_steps:
        settings = [(256, 64), (128, 64), (128, 32), (128, 0)]
        secs, loss, mae_gt, mae_const, rows = trained_agreement(args, settings)
        print(f"\ntrained check: BlurEstimator width {args.train_width:g}, {args.train_steps} Adam "
              f"steps on 96 px synthetic crops ({secs:.0f} s, final MSE {loss:.4f}); on a 512x384 "
              f"synthetic image its map has MAE {mae_gt:.3f} vs ground truth (constant map: "
              f"{mae_const:.3f}). Tiled vs whole (sigma/7):")
        for ts, ov, mae, mx in rows:
            print(f"  tile {ts:4d} overlap {ov:3d}: MAE {mae:.5f}  max {mx:.4f}", flush=True)

    if not args.skip_24mp:
        import cv2
        h, w = 4000, 6000
        jpg = tmp / "photo_24mp.jpg"
        cv2.imwrite(str(jpg), np.round(test_image(base, h, w) * 255).astype(np.uint8)[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        r = run_worker({**spec0, "image_file": str(jpg), "tile_size": args.tile_size,
                        "tile_overlap": args.tile_overlap})
        mp = h * w / 1e6
        work = gflop(tuple(r["tile_hw"])) * r["tiles"]
        verdict = "within" if r["rss_mb"] <= BUDGET_MB else "OVER"
        print(f"\n24 MP photo ({w}x{h} JPEG, read from disk, {r['tiles']} tiles of "
              f"{r['tile_hw'][1]}x{r['tile_hw'][0]}): {r['seconds']:.0f} s "
              f"({r['seconds'] / mp:.2f} s/MP, read {r['read_seconds']:.1f} s), "
              f"{work / r['seconds']:.1f} GFLOP/s, peak RSS {r['rss_mb']:.0f} MB - {verdict} the "
              f"{BUDGET_MB} MB budget", flush=True)

    mm1 = matmul_gflops()
    print(f"\nTF float32 matmul again at the end: {mm1:.1f} GFLOP/s (start {mm0:.1f}; the CPU is "
          f"shared, so differences show contention)")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="", help="trained blur_estimator.keras (default: random)")
    p.add_argument("--width", type=float, default=1.0, help="width of the random model")
    p.add_argument("--sizes", default="256,512,1024,2048",
                   type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--max_whole", type=int, default=1024,
                   help="largest size run as one whole image (2048^2 at width 1 needs ~10 GB)")
    p.add_argument("--tile_size", type=int, default=768)
    p.add_argument("--tile_overlap", type=int, default=128)
    p.add_argument("--agreement_tiles", default="256:64,256:0",
                   type=lambda s: [v for v in s.split(",") if v],
                   help="extra tile:overlap settings compared with the whole-image map")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip_24mp", action="store_true")
    p.add_argument("--train_steps", type=int, default=0,
                   help="also train a small model this many steps and report its tiled vs "
                        "whole agreement (400 steps: ~2-3 min)")
    p.add_argument("--train_width", type=float, default=0.125)
    p.add_argument("--_worker", default="", help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse(sys.argv[1:])
    if a._worker:
        worker(json.loads(a._worker))
    else:
        main(a)
