"""Does a second reading at half scale carry what the full-scale reading misses? (status item 39)

The default model reads 5-8 px of blur as about 4.4 px (status items 35, 38). At half scale the
same blur is half as wide, inside the range the model reads well. This runs ``--model`` on the
first ``--pool_images`` images of a training pool and on the validation set, each at full scale
and at half scale (2 x 2 area downscale; the half-scale map is upsampled bilinearly and
doubled), fits two fusions of the two readings on the pool only, and scores them on the
validation set with ``visible_error``'s filled-map scores:

* ``table``: the median true sigma per cell of (full reading, half reading), cells of
  ``TABLE_STEP_PX`` with at least ``TABLE_MIN_PIXELS`` visible pool pixels (the L1-optimal
  per-pixel fusion; other cells keep the full-scale reading);
* ``refiner`` (``--refiner_steps`` > 0): a small U-Net at half resolution, inputs both
  readings, the local contrast and the grey image, whose output is added to the full-scale
  reading; L1 on random 192 px crops of the pool, smooth pixels weighted 0.1 as in training.

It prints, per map, Spearman / AUC / MAE / AIF smooth median (as ``visible_error.py``) and the
MAE [px] on visible pixels in all, blurred 5 px or more, and in focus (< 0.5 px).

    python benchmarks/two_scale.py --model=tf_defocus/weights/default_model.keras \\
        --pool_dir=~/.cache/tf_defocus/pools/disc_512x384_n1200_f1f1c14b88f0bfd8
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TABLE_STEP_PX = (0.25, 0.5)      # cell size along the full / half reading
TABLE_MIN_PIXELS = 30
CROP_PX, BATCH = 192, 8


def two_readings(predict, image):
    """(H, W) full-scale and half-scale readings [px] of ``predict`` (visible_error.raw_predictor)."""
    import cv2
    h, w = image.shape[:2]
    half = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    up = cv2.resize(predict(half), (w, h), interpolation=cv2.INTER_LINEAR)
    return predict(image), 2.0 * up


class Table:
    """Median true sigma per (full, half) reading cell, fitted on 1-D arrays [px]."""

    SIZE = 256   # cells per axis; readings beyond the last cell share it

    def __init__(self, truth, full, half):
        self.median = np.full((self.SIZE, self.SIZE), np.nan, np.float32)
        i, j = self._cells(full, half)
        key = i * self.SIZE + j
        order = np.argsort(key, kind="stable")
        keys, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
        for k, s, n in zip(keys, starts, counts):
            if n >= TABLE_MIN_PIXELS:
                self.median[k // self.SIZE, k % self.SIZE] = np.median(truth[order[s:s + n]])

    def _cells(self, full, half):
        return tuple(np.clip(r / step, 0, self.SIZE - 1).astype(np.int64)
                     for r, step in zip((full, half), TABLE_STEP_PX))

    @property
    def cells(self):
        return int(np.isfinite(self.median).sum())

    def __call__(self, full, half):
        fused = self.median[self._cells(full, half)]
        return np.where(np.isnan(fused), full, fused).astype(np.float32)


def refiner_features(images, full, half):
    """(N,H,W,3) float [0, 1], (N,H,W) full and half readings [px] -> (N,H,W,4) float32."""
    import tensorflow as tf
    from tf_defocus import propagation
    x = tf.convert_to_tensor(images, tf.float32)
    contrast = tf.minimum(propagation.local_grey_std(x) * (255.0 / 16.0), 4.0)
    return tf.concat([tf.convert_to_tensor(full, tf.float32)[..., None] / 7.0,
                      tf.convert_to_tensor(half, tf.float32)[..., None] / 7.0,
                      contrast, tf.reduce_mean(x, -1, keepdims=True)], -1)


def build_refiner():
    """Half-resolution U-Net (16-32-64-64 channels); output sigma/7 = full reading + residual."""
    import keras
    L = keras.layers

    def block(x, c):
        for _ in range(2):
            x = L.LeakyReLU(0.2)(L.Conv2D(c, 3, padding="same")(x))
        return x
    inp = keras.Input((None, None, 4))
    skips, x = [], L.AveragePooling2D(2)(inp)
    for c in (16, 32, 64):
        x = block(x, c)
        skips.append(x)
        x = L.MaxPool2D()(x)
    x = block(x, 64)
    for skip, c in zip(reversed(skips), (64, 32, 16)):
        x = block(L.Concatenate()([L.UpSampling2D()(x), skip]), c)
    residual = L.UpSampling2D(interpolation="bilinear")(L.Conv2D(1, 1, kernel_initializer="zeros")(x))
    return keras.Model(inp, L.Add()([L.Lambda(lambda t: t[..., :1])(inp), residual]))


def train_refiner(pool, steps, seed):
    """pool: [(image, truth, full, half)] of equal sizes -> trained refiner (Keras model)."""
    import keras
    import tensorflow as tf
    from tf_defocus.metrics import SMOOTH_STD_MAX
    keras.utils.set_random_seed(seed)
    model = build_refiner()
    opt = keras.optimizers.Adam(1e-3)
    arrays = [np.stack(a) for a in zip(*pool)]
    n, h, w = arrays[1].shape

    @tf.function
    def step(x, y):
        w_px = tf.where(x[..., 2:3] * (16.0 / 255.0) <= SMOOTH_STD_MAX, 0.1, 1.0)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(w_px * tf.abs(model(x, training=True) - y)) / tf.reduce_sum(w_px)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))
        return loss
    rng = np.random.default_rng(seed)
    t0, mean = time.time(), None
    for s in range(1, steps + 1):
        if s == int(0.75 * steps):
            opt.learning_rate = 1e-4
        idx, ys = rng.integers(0, n, BATCH), rng.integers(0, h - CROP_PX + 1, BATCH)
        xs = rng.integers(0, w - CROP_PX + 1, BATCH)
        flip = rng.random(BATCH) < 0.5
        crops = [np.stack([a[i, y:y + CROP_PX, x:x + CROP_PX][:, ::-1 if f else 1]
                           for i, y, x, f in zip(idx, ys, xs, flip)]) for a in arrays]
        loss = float(step(refiner_features(crops[0], crops[2], crops[3]),
                          tf.convert_to_tensor(crops[1][..., None] / 7.0, tf.float32)))
        mean = loss if mean is None else 0.98 * mean + 0.02 * loss
        if s % 500 == 0 or s == steps:
            print(f"refiner step {s}/{steps}: L1 {mean:.4f} ({s / (time.time() - t0):.1f} steps/s)",
                  flush=True)
    return model


def report(name, data, maps):
    from tf_defocus import metrics
    from visible_error import filled_map, scores
    filled, err, truth = {}, [], []
    for meta, image, sigma in data:
        m = np.clip(maps[meta["id"]], 0.0, None).astype(np.float32)
        filled[meta["id"]] = filled_map(m, image)
        visible = ~metrics.smooth_pixels(image)
        err.append(np.abs(m[visible] - sigma[visible]))
        truth.append(sigma[visible])
    s = scores(data, filled)
    err, truth = np.concatenate(err), np.concatenate(truth)
    print(f"{name:>8} {s[0]:9.3f} {s[1]:6.3f} {s[2]:7.4f} {s[5]:10.2f} {err.mean():12.2f} "
          f"{err[truth >= 5.0].mean():11.2f} {err[truth < 0.5].mean():12.2f}", flush=True)


def main(args):
    import tensorflow as tf
    from pool_fit import pool_samples
    from smooth_in_focus import load_validation_set
    from tf_defocus import metrics
    from visible_error import raw_predictor
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    predict = raw_predictor(args.model)
    t0 = time.time()
    pool = []
    for _, image, sigma in pool_samples(args.pool_dir, args.pool_images):
        pool.append((image, sigma, *two_readings(predict, image)))
    data = load_validation_set(args.data_dir)
    val = {m["id"]: two_readings(predict, image) for m, image, _ in data}
    print(f"readings of {len(pool)} pool images and {len(data)} validation scenes at two "
          f"scales: {time.time() - t0:.0f} s", flush=True)
    visible = [~metrics.smooth_pixels(image) for image, *_ in pool]
    table = Table(*(np.concatenate([a[v] for a, v in zip(arrays, visible)])
                    for arrays in ([p[1] for p in pool], [p[2] for p in pool], [p[3] for p in pool])))
    print(f"table: {table.cells} cells")
    maps = {"full": {k: f for k, (f, _) in val.items()},
            "half": {k: h for k, (_, h) in val.items()},
            "table": {k: table(f, h) for k, (f, h) in val.items()}}
    if args.refiner_steps:
        model = train_refiner(pool, args.refiner_steps, args.seed)
        images = {m["id"]: image for m, image, _ in data}
        maps["refiner"] = {k: 7.0 * model(refiner_features(images[k][None], f[None], h[None])
                                          ).numpy()[0, ..., 0] for k, (f, h) in val.items()}
    print(f"{args.data_dir}: filled map (visible_error.py) | raw map on visible pixels, MAE px")
    print(f"{'map':>8} {'Spearman':>9} {'AUC':>6} {'MAE':>7} {'AIF med px':>10} "
          f"{'visible all':>12} {'blurred >=5':>11} {'in focus <.5':>12}")
    for name, m in maps.items():
        report(name, data, m)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tf_defocus/weights/default_model.keras")
    p.add_argument("--pool_dir", required=True, help="a training pool folder (SYNDOF layout)")
    p.add_argument("--pool_images", type=int, default=300)
    p.add_argument("--data_dir", default="data/val_realistic")
    p.add_argument("--refiner_steps", type=int, default=3000, help="0 = the table only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
