"""Decoding user files inside tf.data (Python, called through ``tf.numpy_function``) and the
streaming element dataset that crops each file as it is decoded.

Bad input (corrupt/truncated file, missing pair, size mismatch): ``skip_bad=False`` fails on
the first one with an error naming the file; ``skip_bad=True`` logs a warning naming the file
(once) and continues without it (the element carries ``ok = False`` and is filtered out).
"""

import logging

import numpy as np
import tensorflow as tf

from tf_defocus.data import readers
from tf_defocus.data.augment import augment_kwargs, augment_pair, element_seed
from tf_defocus.data.domains import LABEL_KINDS, element

log = logging.getLogger(__name__)


class Decoder:
    """Loads examples of a FileSource for tf.numpy_function; skip mode warns once per file."""

    def __init__(self, source, skip_bad, min_hw=(0, 0)):
        self.source = source
        self.skip_bad = skip_bad
        self.min_hw = tuple(int(v) for v in min_hw)
        self.warned = set()

    def __call__(self, image_path, label_path):
        image_path = image_path.decode() if isinstance(image_path, bytes) else str(image_path)
        label_path = label_path.decode() if isinstance(label_path, bytes) else str(label_path)
        example = readers.Example(image_path, label_path or None)
        try:
            image, label = self.source.load(example)
            if image.shape[0] < self.min_hw[0] or image.shape[1] < self.min_hw[1]:
                raise readers.DataError(f"{image_path}: image is {image.shape[1]}x{image.shape[0]} px; "
                                        f"need at least {self.min_hw[1]}x{self.min_hw[0]}")
        except (ValueError, OSError) as e:
            if not self.skip_bad:
                raise
            if image_path not in self.warned:
                self.warned.add(image_path)
                log.warning("skipping bad example: %s", e)
            return np.zeros((1, 1, 3), np.float32), np.zeros((1, 1, 1), np.float32), False
        if label is None:
            label = np.zeros(image.shape[:2], np.float32)
        return image, np.asarray(label, np.float32)[..., None], True


def decode_op(decoder, image_path, label_path):
    """(image (H, W, 3), label (H, W, 1), ok) tensors of one example decoded by ``decoder``."""
    image, label, ok = tf.numpy_function(decoder, [image_path, label_path],
                                         [tf.float32, tf.float32, tf.bool], stateful=False)
    image.set_shape([None, None, 3])
    label.set_shape([None, None, 1])
    ok.set_shape([])
    return image, label, ok


def is_ok(*args):
    """``Dataset.filter`` predicate: the last component is the ``ok`` flag."""
    return args[-1]


def drop_ok(*args):
    """The components without the trailing ``ok`` flag."""
    return args[0] if len(args) == 2 else args[:-1]


def streaming_dataset(source, cfg, domain, base_seed, start=0):
    """Infinite element dataset decoding files on the fly (parallel) and cropping each one, from
    the file that holds element ``start`` of the stream (file names are skipped undecoded)."""
    images = [e.image for e in source.examples]
    labels = [e.label or "" for e in source.examples]
    n = len(images)
    decoder = Decoder(source, cfg.skip_bad)
    label_kind = LABEL_KINDS[domain]
    labelled = label_kind is not None
    k_crops = int(cfg.crops_per_image)
    kw = augment_kwargs(cfg, domain)

    files = tf.data.Dataset.from_tensor_slices((images, labels))
    files = files.shuffle(min(n, cfg.shuffle_buffer), seed=base_seed, reshuffle_each_iteration=True).repeat()
    files = tf.data.Dataset.zip((files, tf.data.Dataset.counter())).skip(int(start) // k_crops)

    def load_and_crop(paths, index):
        image, label, ok = decode_op(decoder, paths[0], paths[1])
        # A skipped file decodes to a 1x1 dummy: give it patch size so augmentation runs (the
        # crops are filtered out below).
        image, label = tf.cond(ok, lambda: (image, label),
                               lambda: (tf.zeros([cfg.patch_size, cfg.patch_size, 3]),
                                        tf.zeros([cfg.patch_size, cfg.patch_size, 1])))
        crops_i, crops_l = [], []
        for j in range(k_crops):
            seed = element_seed(base_seed, index * k_crops + j)
            im, lab = augment_pair(image, label if labelled else None, seed, **kw)
            crops_i.append(im)
            crops_l.append(lab if labelled else tf.zeros([cfg.patch_size, cfg.patch_size, 1]))
        return tf.stack(crops_i), tf.stack(crops_l), ok

    def finish(image, label):
        return element(image, label, label_kind)

    ds = files.map(load_and_crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=cfg.deterministic)
    ds = ds.filter(is_ok).map(drop_ok).unbatch()
    if k_crops > 1:
        ds = ds.shuffle(8 * k_crops, seed=base_seed + 1)
    return ds.map(finish)
