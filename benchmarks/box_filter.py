"""The filters of ``propagation.local_grey_std``: TF's AvgPool vs 1-D convolutions vs shifted slices.

``local_grey_std`` runs in every training step (``--smooth_weight``: the loss weights of smooth
pixels) and in every filled map (``FillSmooth``, at full image size, in every tile). Measured in
one run, at ``--threads`` (default 2): milliseconds per call of the grey std (the sigma-1 px
Gaussian, then the 15 x 15 mean of the grey and of its square) implemented three ways:

* ``AvgPool``: the 15 x 15 mean as one ``tf.nn.avg_pool2d`` (before the twentieth session);
* ``1-D conv``: the Gaussian and the mean as two 1-channel 1-D ``conv2d`` passes each (the
  twentieth to twenty-third sessions);
* ``slices``: the package's ``propagation.separable_filter``, sums of shifted slices
  (twenty-fourth session);

the ratios of the first two to the package's, and the largest difference from the package's
result (levels of 255).

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
    """Print one row per NxHxW in ``shapes`` (comma-separated): the three timings, two ratios,
    the largest difference."""
    import tensorflow as tf
    from tf_defocus import propagation as P

    def reflect(x, k):
        return tf.pad(x, [[0, 0], [k, k], [k, k], [0, 0]], mode="REFLECT")

    def conv_filter(x, taps):
        """``taps`` along H, then W, as two 1-channel convolutions, borders reflected."""
        k = len(taps) // 2
        x = tf.nn.conv2d(reflect(x, k), tf.reshape(taps, [-1, 1, 1, 1]), 1, "VALID")
        return tf.nn.conv2d(x, tf.reshape(taps, [1, -1, 1, 1]), 1, "VALID")

    def grey_std(image, box):
        g = conv_filter(P.grey_bt601(image), P.gaussian_taps(P.NOISE_SIGMA_PX))
        mean = box(g)
        return tf.sqrt(tf.maximum(box(g * g) - mean * mean, 0.0))

    k = P.STD_WINDOW_PX // 2
    implementations = {
        "AvgPool": lambda image: grey_std(
            image, lambda x: tf.nn.avg_pool2d(reflect(x, k), P.STD_WINDOW_PX, 1, "VALID")),
        "1-D conv": lambda image: grey_std(
            image, lambda x: conv_filter(x, [1.0 / P.STD_WINDOW_PX] * P.STD_WINDOW_PX)),
        "slices": P.local_grey_std,
    }

    def timed(fn, x):
        fn(x)   # trace
        t = time.perf_counter()
        for _ in range(repeats):
            out = fn(x).numpy()
        return (time.perf_counter() - t) / repeats * 1000.0, out

    print(f"{'input NxHxW':>16} {'AvgPool ms':>11} {'1-D conv ms':>12} {'slices ms':>10} "
          f"{'AvgPool/slices':>15} {'conv/slices':>12} {'max diff [1/255]':>17}")
    rng = np.random.default_rng(0)
    for shape in shapes.split(","):
        n, h, w = (int(v) for v in shape.split("x"))
        x = tf.constant(rng.random((n, h, w, 3), dtype=np.float32))
        runs = {name: timed(tf.function(fn), x) for name, fn in implementations.items()}
        ref = runs["slices"][1]
        diff = max(float(np.abs(out - ref).max()) for _, out in runs.values()) * 255.0
        t = {name: ms for name, (ms, _) in runs.items()}
        print(f"{shape:>16} {t['AvgPool']:11.1f} {t['1-D conv']:12.1f} {t['slices']:10.1f} "
              f"{t['AvgPool'] / t['slices']:14.1f}x {t['1-D conv'] / t['slices']:11.1f}x "
              f"{diff:17.2e}")


if __name__ == "__main__":
    main()
