"""The 15 x 15 local mean of ``propagation.local_grey_std``: TF's AvgPool vs two 1-D convolutions.

``local_grey_std`` runs in every training step (``--smooth_weight``: the loss weights of smooth
pixels) and in every filled map (``FillSmooth``, at full image size). Measured in one run, at
``--threads`` (default 2): milliseconds per call of the grey std with the 15 x 15 mean as one
``tf.nn.avg_pool2d`` (the implementation before the twentieth session) and as the package's two
1-D convolutions, their ratio, and the largest difference of the two results (levels of 255).

    python benchmarks/box_filter.py [--shapes=3x128x128,1x768x1024,1x1536x2048] [--repeats=5]
"""

import argparse
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="3x128x128,1x768x1024,1x1536x2048",
                   help="comma-separated NxHxW grey-std inputs (RGB images of that size)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per implementation")
    p.add_argument("--threads", type=int, default=2, help="TF intra/inter-op threads")
    return p.parse_args()


def main():
    args = parse_args()
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from machine import cpu_model
    print(f"CPU: {cpu_model()}; threads {args.threads}, {args.repeats} calls each; ms per call "
          f"of the local grey std")
    compare(args.shapes, args.repeats)


def compare(shapes, repeats):
    """Print one row per NxHxW in ``shapes`` (comma-separated): both timings, ratio, max diff."""
    import tensorflow as tf
    from tf_defocus import propagation as P

    def avg_pool_std(image):
        """The grey std with the 15 x 15 mean as one AvgPool (the earlier implementation)."""
        g = P.denoised_grey(image)
        k = P.STD_WINDOW_PX // 2
        box = lambda x: tf.nn.avg_pool2d(P._reflect(x, k), P.STD_WINDOW_PX, 1, "VALID")
        mean = box(g)
        return tf.sqrt(tf.maximum(box(g * g) - mean * mean, 0.0))

    def timed(fn, x):
        fn(x)   # trace
        t = time.perf_counter()
        for _ in range(repeats):
            out = fn(x).numpy()
        return (time.perf_counter() - t) / repeats * 1000.0, out

    print(f"{'input NxHxW':>16} {'AvgPool 15x15':>14} {'2 x 1-D conv':>13} {'ratio':>7} "
          f"{'max diff [1/255]':>17}")
    rng = np.random.default_rng(0)
    for shape in shapes.split(","):
        n, h, w = (int(v) for v in shape.split("x"))
        x = tf.constant(rng.random((n, h, w, 3), dtype=np.float32))
        t_pool, ref = timed(tf.function(avg_pool_std), x)
        t_conv, out = timed(tf.function(P.local_grey_std), x)
        diff = float(np.abs(out - ref).max()) * 255.0
        print(f"{shape:>16} {t_pool:14.1f} {t_conv:13.1f} {t_pool / t_conv:6.1f}x {diff:17.2e}")


if __name__ == "__main__":
    main()
