"""DMENet training augmentation (pure TF, shared by every source) and its stateless seeds.

Augmentation (DMENet ``utils.crop_pair_with_different_shape_images_2``), identical for image
and label: rescale so the short side lies in ``[min_short_side, max_short_side]`` (DMENet:
[241, 800]), random P x P crop, random flip, random 90-degree rotation (together all 8
symmetries of the square). ``scale_mode="clamp"`` rescales only images whose short side is
outside the range, to the nearest bound (what the authors' code does); ``"random"`` draws the
short side uniformly in the range for every crop. Images are resized bilinearly (antialiased
when shrinking), labels with nearest neighbour. A blur of sigma px becomes sigma * r px when an
image is resized by r, so sigma labels are multiplied by r (``scale_sigma=True``; the authors'
code leaves label values unchanged, which mislabels resized images); labels above 7 px after
upscaling are clipped by the sigma / 7 normalisation.

Randomness uses stateless ops seeded per element from ``(seed, domain, element index)``; with
``deterministic=True`` tf.data also keeps element order, so two runs give identical batches.
"""

import numpy as np
import tensorflow as tf

from tf_defocus.data.domains import LABEL_KINDS


def augment_pair(image, label, seed, *, patch_size, short_side_range, scale_mode="clamp",
                 label_kind=None, scale_sigma=True):
    """DMENet augmentation of one image and its label, applied identically to both.

    image: float32 (H, W, 3); label: float32 (H, W, 1) in ``label_kind`` units ("sigma" px or
    "mask") or None; seed: int (2,) stateless seed. Returns (image (P, P, 3), label (P, P, 1) or
    None). Sigma labels are multiplied by the rescale factor when ``scale_sigma``.
    """
    p = int(patch_size)
    lo, hi = (int(v) for v in short_side_range)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 6)
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    short = tf.minimum(h, w)
    if scale_mode == "random":
        target = tf.random.stateless_uniform([], seeds[0], lo, hi + 1, dtype=tf.int32)
    else:
        target = tf.clip_by_value(short, lo, hi)
    ratio = tf.cast(target, tf.float32) / tf.cast(short, tf.float32)
    new_h = tf.maximum(tf.cast(tf.round(tf.cast(h, tf.float32) * ratio), tf.int32), p)
    new_w = tf.maximum(tf.cast(tf.round(tf.cast(w, tf.float32) * ratio), tf.int32), p)
    resize = tf.logical_or(tf.not_equal(new_h, h), tf.not_equal(new_w, w))
    size = tf.stack([new_h, new_w])
    image = tf.cond(resize,
                    lambda: tf.image.resize(image, size, method="bilinear", antialias=True),
                    lambda: image)
    if label is not None:
        label = tf.cond(resize, lambda: tf.image.resize(label, size, method="nearest"), lambda: label)
        if label_kind == "sigma" and scale_sigma:
            # Actual per-axis factor (rounding makes it differ slightly from `ratio`).
            r = tf.sqrt(tf.cast(new_h * new_w, tf.float32) / tf.cast(h * w, tf.float32))
            label = label * r
    oy = tf.random.stateless_uniform([], seeds[1], 0, new_h - p + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([], seeds[2], 0, new_w - p + 1, dtype=tf.int32)
    flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
    k = tf.random.stateless_uniform([], seeds[4], 0, 4, dtype=tf.int32)

    def geometric(x, channels):
        x = x[oy:oy + p, ox:ox + p]
        x = tf.cond(flip, lambda: tf.reverse(x, axis=[1]), lambda: x)
        x = tf.image.rot90(x, k)
        x.set_shape([p, p, channels])
        return x

    image = tf.clip_by_value(geometric(image, 3), 0.0, 1.0)
    if label is not None:
        label = geometric(label, 1)
    return image, label


def augment_kwargs(cfg, domain):
    """``augment_pair`` keyword arguments of one domain from a ``pipeline.DataConfig``."""
    return dict(patch_size=cfg.patch_size, short_side_range=cfg.short_side_range,
                scale_mode=cfg.scale_mode, label_kind=LABEL_KINDS[domain], scale_sigma=cfg.scale_sigma)


def element_seed(base, index):
    """Stateless seed (2,) int64 of element ``index`` of the stream seeded by ``base``."""
    return tf.stack([tf.constant(base, tf.int64), tf.cast(index, tf.int64)])


def domain_seed(seed, stream, shard_index=0):
    """Base seed of one domain's random stream; shard 0 keeps the single-worker seed."""
    entropy = [int(seed) & 0xFFFFFFFF, stream] + ([int(shard_index)] if shard_index else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 2)
