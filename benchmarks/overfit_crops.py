"""Can B memorise a few training images? Fixed crops against random crops (issue 11).

Loads the first ``--images`` images of a training pool (SYNDOF layout, e.g.
``~/.cache/tf_defocus/pools/disc_512x384_n8_<key>``, made by any ``train --pool_size=8`` run)
and trains a fresh ``BlurEstimator`` on the MSE of its ``defocus`` output (sigma / 7) alone with
Adam:

* ``--mode=fixed``: the same 128 x 128 crop of every image at every step (batch = the images);
* ``--mode=random``: the training augmentation (``data.augment.augment_pair``: random crop,
  flip, rotation) of random images, ``--batch`` per step.

Every 50 steps it prints the mean training MSE of those steps and the MSE on the fixed crops
(inference mode). A network that memorises fixed crops but not random crops of the same images
can fit per-position maps but has not learnt a blur measure that holds wherever the crop falls.

    python benchmarks/overfit_crops.py --pool_dir=POOL --mode=fixed --steps=150
    python benchmarks/overfit_crops.py --pool_dir=POOL --mode=random --batch=3 --steps=400
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

PATCH = 128


def load_pool(root, count):
    """(images (N,H,W,3) float32 [0,1], sigma labels (N,H,W,1) [px]) of a pool's first images."""
    from tf_defocus.data.readers import decode_syndof_sigma
    from tf_defocus.imageio import read_image
    root = Path(root).expanduser()
    images, labels = [], []
    for path in sorted((root / "image").glob("*"))[:count]:
        images.append(read_image(str(path)).astype(np.float32))
        labels.append(decode_syndof_sigma(str(root / "blur_map" / f"{path.stem}.png"), "sigma10")[..., None])
    return np.stack(images), np.stack(labels)


def main(args):
    import keras
    import tensorflow as tf
    from tf_defocus.data.augment import augment_pair
    from tf_defocus.models import BlurEstimator
    from tf_defocus.units import SIGMA_MAX_PX
    images, labels = load_pool(args.pool_dir, args.images)
    print(f"{len(images)} images, label mean {labels.mean():.2f} px, "
          f"{100 * (labels > 5).mean():.0f}% above 5 px", flush=True)
    keras.utils.set_random_seed(args.seed)
    model = BlurEstimator(width=args.width, norm=args.norm, cues=args.cues)
    opt = keras.optimizers.Adam(args.learning_rate)
    h, w = images.shape[1:3]
    y0, x0 = (h - PATCH) // 2, (w - PATCH) // 2
    fixed_x = tf.constant(images[:, y0:y0 + PATCH, x0:x0 + PATCH])
    fixed_y = tf.constant(labels[:, y0:y0 + PATCH, x0:x0 + PATCH] / SIGMA_MAX_PX)
    rng = np.random.default_rng(args.seed)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True)["defocus"] - y))
        grads = tape.gradient(loss, model.trainable_variables)
        # The auxiliary heads get no gradient from this loss.
        opt.apply_gradients([(g, v) for g, v in zip(grads, model.trainable_variables)
                             if g is not None])
        return loss

    def random_batch():
        xs, ys = [], []
        for _ in range(args.batch):
            i = int(rng.integers(len(images)))
            seed = tf.constant(rng.integers(0, 2**31, 2), tf.int64)
            x, y = augment_pair(tf.constant(images[i]), tf.constant(labels[i]), seed,
                                patch_size=PATCH, short_side_range=(PATCH + 1, 800),
                                label_kind="sigma")
            xs.append(x)
            ys.append(y / SIGMA_MAX_PX)
        return tf.stack(xs), tf.stack(ys)

    start, losses = time.time(), []
    for s in range(1, args.steps + 1):
        x, y = (fixed_x, fixed_y) if args.mode == "fixed" else random_batch()
        losses.append(float(step(x, y)))
        if s % 50 == 0:
            pred = model(fixed_x, training=False)["defocus"]
            print(f"step {s} train_mse {np.mean(losses):.4f} fixed_crops_mse "
                  f"{float(tf.reduce_mean(tf.square(pred - fixed_y))):.4f} "
                  f"({time.time() - start:.0f} s)", flush=True)
            losses = []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool_dir", required=True, help="a training pool folder (SYNDOF layout)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--mode", choices=("fixed", "random"), default="fixed")
    parser.add_argument("--batch", type=int, default=3, help="random mode: crops per step")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--norm", choices=("batch", "group"), default="batch")
    parser.add_argument("--cues", action="store_true",
                        help="B with re-blur gradient ratio inputs (models/blur_cues.py)")
    parser.add_argument("--seed", type=int, default=0)
    main(parser.parse_args())
