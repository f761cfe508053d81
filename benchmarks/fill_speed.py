"""The fills of smooth surfaces: pull-push (``propagation.fill_smooth``) against the
edge-aware ``propagation.guided_fill`` at grid scales 1, 2, 4 and 8 and the ``guided_edges``
method (grid x4, the built-in model's fill), in one run.

The fill runs on the whole filled map of every prediction (``FillSmooth``), so its cost adds to
the model's seconds per megapixel (issue 11's budget: 3 s/MP on 2 threads). Printed per image
size: milliseconds per call of each (a traced ``tf.function``; the median of ``--repeats``
calls), each guided fill's ratio to pull-push, and seconds per megapixel.

    python benchmarks/fill_speed.py [--sizes=768x1024,1536x2048] [--scales=1,2,4,8] [--repeats=3]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="768x1024,1536x2048", help="comma-separated HxW")
    p.add_argument("--scales", default="1,2,4,8", help="guided_fill grid scales to time")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per fill")
    p.add_argument("--threads", type=int, default=2, help="TF intra/inter-op threads")
    return p.parse_args(argv)


def scene(h, w, seed=0):
    """(1,H,W,1) sigma [px] and (1,H,W,3) image: flat colour regions with textured strips, so
    about half the pixels are smooth and take the fill."""
    rng = np.random.default_rng(seed)
    image = np.repeat(np.repeat(rng.uniform(0.2, 0.8, (1, h // 64 + 1, w // 64 + 1, 3)), 64, 1),
                      64, 2)[:, :h, :w].astype(np.float32)
    image[:, :, ::128] = rng.random(image[:, :, ::128].shape)
    image[:, :, :w // 2] += 0.05 * rng.standard_normal((1, h, w // 2, 3)).astype(np.float32)
    return rng.uniform(0, 7, (1, h, w, 1)).astype(np.float32), np.clip(image, 0, 1)


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from machine import cpu_model
    print(f"CPU: {cpu_model()}; threads {args.threads}; median of {args.repeats} calls")
    compare(args.sizes, args.scales, args.repeats)


def compare(sizes, scales, repeats):
    """Print one row per fill and HxW in ``sizes`` (comma-separated; ``scales`` likewise)."""
    import tensorflow as tf
    from tf_defocus import propagation as P
    fills = {"pull-push": tf.function(P.fill_smooth)}
    fills.update({f"guided x{s}": tf.function(lambda v, im, s=s: P.guided_fill(v, im, scale=s))
                  for s in (int(v) for v in scales.split(","))})
    fills["guided_edges"] = tf.function(lambda v, im: P.fill_smooth(v, im, "guided_edges"))
    print(f"{'H x W':>11} {'fill':>11} {'ms':>9} {'x pull-push':>12} {'s/MP':>7}")
    for size in sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        sigma, image = (tf.constant(a) for a in scene(h, w))
        ms = {}
        for name, fn in fills.items():
            fn(sigma, image)   # trace
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn(sigma, image).numpy()
                times.append(time.perf_counter() - t)
            ms[name] = statistics.median(times) * 1000.0
            print(f"{size:>11} {name:>11} {ms[name]:9.1f} {ms[name] / ms['pull-push']:11.1f}x "
                  f"{ms[name] / 1000.0 / (h * w / 1e6):7.3f}", flush=True)


if __name__ == "__main__":
    main()
