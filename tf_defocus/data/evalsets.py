"""Evaluation / validation sets: finite, ordered batches of whole images, no augmentation.

``make_synthetic_eval_dataset`` gives ``{"image", "sigma_norm"}`` batches (SYNDOF folder or
procedural gaussian renders), ``make_mask_eval_dataset`` ``{"image", "mask"}`` batches (CUHK /
DUT-DBD or procedural disc renders with sigma-threshold masks). Procedural sets are cached like
the training pools (``tf_defocus.data.pools``).
"""

import tensorflow as tf

from tf_defocus.data import readers
from tf_defocus.data.decoding import Decoder, decode_op, drop_ok, is_ok
from tf_defocus.data.domains import EVAL_SEED, STREAMS, dataset_options, element
from tf_defocus.data.pools import ensure_pool, pool_file_source


def _eval_dataset(source, label_kind, *, batch_size, crop_size, multiple, skip_bad):
    """Finite, ordered dataset of whole images (cropped) with their labels, no augmentation."""
    if batch_size > 1 and crop_size is None:
        raise ValueError("batch_size > 1 needs crop_size: evaluation images may differ in size")
    multiple = max(1, int(multiple))
    min_hw = (int(crop_size[1]), int(crop_size[0])) if crop_size is not None else (multiple, multiple)
    decoder = Decoder(source, skip_bad, min_hw=min_hw)
    images = [e.image for e in source.examples]
    labels = [e.label or "" for e in source.examples]

    def load(image_path, label_path):
        image, label, ok = decode_op(decoder, image_path, label_path)
        shape = tf.shape(image)
        if crop_size is not None:
            ch, cw = min_hw
            # Centre crop (a skipped file is a 1x1 dummy: pad it, it is filtered out below).
            oy, ox = tf.maximum((shape[0] - ch) // 2, 0), tf.maximum((shape[1] - cw) // 2, 0)
            image = tf.image.pad_to_bounding_box(image[oy:oy + ch, ox:ox + cw], 0, 0, ch, cw)
            label = tf.image.pad_to_bounding_box(label[oy:oy + ch, ox:ox + cw], 0, 0, ch, cw)
        else:
            # Top-left crop to a multiple of `multiple` px, like DMENet's refine_image.
            h, w = shape[0] - shape[0] % multiple, shape[1] - shape[1] % multiple
            image, label = image[:h, :w], label[:h, :w]
        return element(image, label, label_kind), ok

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(is_ok).map(drop_ok)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(dataset_options(True))


def make_synthetic_eval_dataset(data_dir=None, *, label_convention="sigma10", num_images=16,
                                image_size=(320, 240), batch_size=1, crop_size=None, multiple=16,
                                seed=EVAL_SEED, cache_dir=None, workers=0, skip_bad=False):
    """Finite, ordered batches of ``{"image": (B,H,W,3), "sigma_norm": (B,H,W,1)}``.

    data_dir: SYNDOF-layout folder (``label_convention`` "sigma10" | "released"), or None for
    ``num_images`` procedural gaussian renders of ``image_size`` (W, H) with ``seed``
    (cached like the training pools). No augmentation; images are cropped top-left to a
    multiple of ``multiple`` px, or centre-cropped to ``crop_size`` (W, H) if given (needed for
    ``batch_size > 1`` with images of different sizes).
    """
    if data_dir is None:
        folder = ensure_pool("gaussian", int(image_size[0]), int(image_size[1]), int(num_images),
                             seed, STREAMS["eval_synthetic"], cache_dir=cache_dir, workers=workers)
        source = pool_file_source(folder, "sigma")
    else:
        source = readers.syndof(data_dir, label_convention, skip_bad=skip_bad)
    return _eval_dataset(source, "sigma", batch_size=batch_size, crop_size=crop_size,
                         multiple=multiple, skip_bad=skip_bad)


def make_mask_eval_dataset(data_dir=None, *, layout="cuhk", blurred_value=None, num_images=16,
                           image_size=(320, 240), batch_size=1, crop_size=None, multiple=16,
                           seed=EVAL_SEED, cache_dir=None, workers=0, skip_bad=False):
    """Finite, ordered batches of ``{"image": (B,H,W,3), "mask": (B,H,W,1) 1 = blurred}``.

    data_dir: CUHK (``layout="cuhk"``) or DUT-DBD (``"dut"``) root with explicit
    ``blurred_value`` (255 | 0), or None for ``num_images`` procedural disc renders with
    sigma-threshold masks. Cropping as in ``make_synthetic_eval_dataset``.
    """
    if data_dir is None:
        folder = ensure_pool("disc", int(image_size[0]), int(image_size[1]), int(num_images),
                             seed, STREAMS["eval_mask"], cache_dir=cache_dir, workers=workers)
        source = pool_file_source(folder, "mask")
    else:
        source = readers.mask_source(data_dir, layout, blurred_value, skip_bad=skip_bad)
    return _eval_dataset(source, "mask", batch_size=batch_size, crop_size=crop_size,
                         multiple=multiple, skip_bad=skip_bad)
