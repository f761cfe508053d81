"""Throughput of the DoF weight map and DoFNet beside DMENet's quickstart model, at 512x512.

Prints megapixels per second (median of ``--repeats`` timed runs after a warm-up) of

* ``dof_weight_map`` (OpenCV, training-free), also at 2048x1536;
* DoFNet's inference model (Keras, in a ``tf.function``) and its TFLite conversion by
  ``tf_defocus.export.convert_tflite`` (LiteRT, float32, fixed 1x512x512x3 input), the default
  architecture of ``configs/dof_srcnn.flags``;
* DMENet's blur estimator in Keras: ``--dmenet_model=PATH`` (a ``blur_estimator.keras``), else
  a ``BlurEstimator`` with random weights at the width of ``configs/quickstart.flags``
  (``--width``, or 1.0 if the file or the flag is missing) — said in the output,

and the ratios to DMENet. Threads: ``--threads`` (default 2) for OpenCV, TF and LiteRT.

    python benchmarks/dof.py [--dmenet_model=runs/quick/blur_estimator.keras]
"""

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512, help="square benchmark image side [px]")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dmenet_model", default=None, help="blur_estimator.keras to compare with")
    p.add_argument("--quickstart_flags", default=str(REPO / "configs" / "quickstart.flags"))
    p.add_argument("--kernel_sizes", default="9,1,5")
    p.add_argument("--filters", default="64,32")
    p.add_argument("--dof_width", type=float, default=1.0)
    p.add_argument("--target", default="weighted_image", choices=["weight", "weighted_image"])
    p.add_argument("--skip_tflite", action="store_true")
    return p.parse_args(argv)


def timed_round_robin(fns, repeats):
    """Median seconds per call of each function in ``fns`` (name -> callable), after one
    warm-up call each; the calls are interleaved (one of each per round) so that load from
    other processes on a shared machine hits every method alike and the ratios stay fair."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(v)) for name, v in times.items()}


def quickstart_width(path):
    """(width, source description) from a flag file's ``--width=``."""
    p = Path(path)
    if not p.is_file():
        return 1.0, f"{p} not found, width 1.0"
    for line in p.read_text().splitlines():
        m = re.match(r"\s*--width=([0-9.eE+-]+)", line)
        if m:
            return float(m.group(1)), f"--width={m.group(1)} from {p.name}"
    return 1.0, f"no --width in {p.name}, width 1.0"


def keras_runner(model, image):
    import tensorflow as tf
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    x = tf.constant(image[None])

    def run():
        y = fn(x)
        if isinstance(y, dict):
            y = y.get("defocus", next(iter(y.values())))
        return np.asarray(y)
    return run


def tflite_runner(model, image, threads, workdir):
    """LiteRT runner of ``model`` converted by the project's exporter (fixed 1xHxWx3 float32,
    builtin ops, export-friendly rewrites), and the file size [bytes]."""
    from ai_edge_litert.interpreter import Interpreter
    from tf_defocus.export import convert_tflite
    result = convert_tflite(model, os.path.join(workdir, "model.tflite"),
                            input_size=image.shape[:2])
    interp = Interpreter(model_path=str(result.path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    x = image[None].astype(np.float32)

    def run():
        interp.set_tensor(inp, x)
        interp.invoke()
        return interp.get_tensor(out)
    return run, result.size_bytes


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cv2.setNumThreads(args.threads)
    from tf_defocus.data.synthesize import synthesize
    from tf_defocus.dof import dof_weight_map
    from tf_defocus.models.dofnet import DoFNet

    s = args.size
    mp = s * s / 1e6
    image = synthesize(7, s, s).image.astype(np.float32)
    big = cv2.resize(image, (2048, 1536), interpolation=cv2.INTER_LINEAR)
    print(f"threads: {args.threads} (OpenCV, TF intra-op, LiteRT); image {s}x{s}; median of "
          f"{args.repeats} interleaved runs after a warm-up; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)

    ks = tuple(int(v) for v in args.kernel_sizes.split(","))
    fs = tuple(int(v) for v in args.filters.split(","))
    net = DoFNet(width=args.dof_width, kernel_sizes=ks, filters=fs, target=args.target)
    dof_model = net.inference_model()
    chans = (3, round(fs[0] * args.dof_width), round(fs[1] * args.dof_width),
             3 if args.target == "weighted_image" else 1)
    macs = sum(k * k * cin * cout for k, cin, cout in zip(ks, chans[:-1], chans[1:]))
    arch = "-".join(map(str, ks))
    fns = {"dof_weight_map (OpenCV)": lambda: dof_weight_map(image),
           f"DoFNet {arch} Keras": keras_runner(dof_model, image)}
    workdir = tempfile.TemporaryDirectory()
    tfl_size = None
    if not args.skip_tflite:
        fns[f"DoFNet {arch} TFLite"], tfl_size = tflite_runner(dof_model, image, args.threads,
                                                                workdir.name)
    if args.dmenet_model:
        import tf_defocus.models  # noqa: F401  (custom layers)
        dmenet = keras.saving.load_model(args.dmenet_model, compile=False)
        dm_label = f"DMENet {Path(args.dmenet_model).name}"
        dm_note = f"DMENet from {args.dmenet_model}"
    else:
        from tf_defocus.models.blur_estimator import BlurEstimator
        width, src = quickstart_width(args.quickstart_flags)
        dmenet = BlurEstimator(width=width).inference_model()
        dm_label = f"DMENet w={width:g} Keras"
        dm_note = f"DMENet: BlurEstimator with RANDOM weights ({src}); speed only"
    fns[dm_label] = keras_runner(dmenet, image)
    times = timed_round_robin(fns, args.repeats)
    big_time = timed_round_robin({"big": lambda: dof_weight_map(big)}, args.repeats)["big"]
    big_rate = 2048 * 1536 / 1e6 / big_time
    t_dm = times[dm_label]
    rows = [(name, t, mp) for name, t in times.items()]
    workdir.cleanup()

    print(f"DoFNet: {macs / 1e3:.1f} kMAC/px = {macs * s * s / 1e9:.2f} GMAC at {s}x{s}, "
          f"{net.count_params()} parameters" + (f", TFLite {tfl_size / 1e3:.0f} kB" if tfl_size
                                                  else ""))
    print(dm_note + f", {dmenet.count_params() / 1e6:.2f} M parameters")
    print(f"{'method':32s} {'ms/image':>10s} {'MP/s':>9s} {'x DMENet':>9s}")
    for name, t, m in rows:
        print(f"{name:32s} {t * 1e3:10.1f} {m / t:9.2f} {t_dm / t:9.1f}")
    print(f"dof_weight_map at 2048x1536: {big_rate:.1f} MP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
