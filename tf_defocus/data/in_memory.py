"""Images held in memory (procedural pools, package photos, ``in_memory`` user data) and the
element dataset of random augmented crops of them.

Images of different sizes are packed into flat tensors (``uint8`` when every image is 8-bit,
else ``uint16``: both lossless) and gathered in-graph, so the data set is held in one copy.
"""

import logging

import numpy as np
import tensorflow as tf

from tf_defocus.data import readers
from tf_defocus.data.augment import augment_kwargs, augment_pair, element_seed
from tf_defocus.data.domains import LABEL_KINDS, element

log = logging.getLogger(__name__)


def _hold(array):
    """A tensor holding ``array`` in one copy: outside ``tf.distribute`` a non-trainable Variable
    (tf.data functions capture it by reference; a captured constant kept a second copy, +2.4x
    RSS measured on a 2.2 GB pool), else a constant (a Variable would be mirrored per device)."""
    if tf.distribute.has_strategy():
        return tf.constant(array)
    with tf.device("/cpu:0"):
        return tf.Variable(array, trainable=False)


class _RaggedStore:
    """Images (and labels) of different sizes packed into flat tensors for in-graph gathering."""

    def __init__(self, images, labels):
        self.count = len(images)
        shapes = np.array([im.shape[:2] for im in images], np.int32)
        sizes = shapes[:, 0].astype(np.int64) * shapes[:, 1]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        # uint8 when every image is 8-bit (k / 255 exactly, e.g. PNG pools), else uint16: both
        # lossless, at 1/4 or 1/2 the memory of float32.
        eight_bit = all(np.array_equal(np.round(im * 255.0) / 255.0, im) for im in images)
        dtype, self.scale = (np.uint8, 255.0) if eight_bit else (np.uint16, 65535.0)
        flat = np.concatenate([np.round(im.reshape(-1, 3) * self.scale).astype(dtype) for im in images])
        self.images = _hold(flat)
        self.labels = None if labels is None else _hold(
            np.concatenate([lab.reshape(-1).astype(np.float32) for lab in labels]))
        self.shapes = tf.constant(shapes)
        self.offsets = tf.constant(offsets)
        self.nbytes = flat.nbytes + (0 if labels is None else sizes.sum() * 4)

    def get(self, idx):
        h, w = self.shapes[idx][0], self.shapes[idx][1]
        off = self.offsets[idx]
        size = tf.cast(h, tf.int64) * tf.cast(w, tf.int64)
        image = tf.reshape(self.images[off:off + size], [h, w, 3])
        image = tf.cast(image, tf.float32) / self.scale
        label = None
        if self.labels is not None:
            label = tf.reshape(self.labels[off:off + size], [h, w, 1])
        return image, label


def _progress(total, unit_name="item"):
    """Progress bar with ETA on stdout (``keras.utils.Progbar``); returns update(done)."""
    if total <= 1:
        return lambda done: None
    import keras

    bar = keras.utils.Progbar(total, unit_name=unit_name)
    return bar.update


def load_all(source, skip_bad=False):
    """Decode every example of ``source`` -> (images list, labels list or None, bad names).

    Bad files raise (``skip_bad=False``) or are logged by name and left out.
    """
    images, labels, bad = [], [], []
    progbar = _progress(len(source) if len(source) >= 100 else 0, "image")
    for i, ex in enumerate(source.examples):
        try:
            image, label = source.load(ex)
        except (ValueError, OSError) as e:
            if not skip_bad:
                raise
            log.warning("skipping bad example: %s", e)
            bad.append(ex.image)
            continue
        images.append(image)
        labels.append(label)
        progbar(i + 1)
    if not images:
        raise readers.DataError(f"{source.name}: no readable examples")
    return images, (None if source.label_kind is None else labels), bad


def in_memory_dataset(images, labels, cfg, domain, base_seed, start=0):
    """Infinite element dataset of random augmented crops of in-memory images, from element
    ``start`` of the stream (a resumed run continues where it stopped)."""
    label_kind = LABEL_KINDS[domain]
    store = _RaggedStore(images, labels if label_kind else None)
    log.info("%s: %d images in memory (%.0f MB)", domain, store.count, store.nbytes / 2**20)
    kw = augment_kwargs(cfg, domain)

    def crop(index):
        seed = element_seed(base_seed, index)
        pick_seed = tf.random.experimental.stateless_fold_in(seed, 7)
        idx = tf.random.stateless_uniform([], pick_seed, 0, store.count, dtype=tf.int32)
        image, label = store.get(idx)
        image, label = augment_pair(image, label, seed, **kw)
        return element(image, label, label_kind)

    return tf.data.Dataset.counter(start).map(crop, num_parallel_calls=tf.data.AUTOTUNE,
                                         deterministic=cfg.deterministic)
