"""The three DMENet training domains and what their tf.data datasets share.

Names, label kinds, seed streams, the element dict (labels in network units), the multi-worker
file split and the tf.data options. Multi-worker input: user files and TFRecord shards are
split by file (``files[index::count]`` for ``shard = (index, count)``; every shard needs at
least one file); every shard but 0 also seeds its random streams differently
(``augment.domain_seed``), so procedural pools and package photos (the same images on every
worker) give each worker other crops. Shard 0 is exactly the single-worker pipeline.
"""

import tensorflow as tf

from tf_defocus.data import readers
from tf_defocus.units import SIGMA_MAX_PX

DOMAINS = ("synthetic", "real_mask", "real_unlabelled")
LABEL_KINDS = {"synthetic": "sigma", "real_mask": "mask", "real_unlabelled": None}
"""Label of each domain's source: sigma [px], binary mask (1 = blurred) or None (unlabelled)."""
LABEL_KEY_OF_KIND = {"sigma": "sigma_norm", "mask": "mask"}
"""Element key of each label kind (sigma labels become sigma / 7)."""
LABEL_KEYS = {d: LABEL_KEY_OF_KIND.get(k) for d, k in LABEL_KINDS.items()}
"""Key of each domain's label in its element dict (None: unlabelled)."""
STREAMS = {"synthetic": 1, "real_mask": 2, "real_unlabelled": 3, "eval_synthetic": 11, "eval_mask": 12}
"""Seed streams: they keep the pools and the per-element random streams of the domains (and
the evaluation sets) independent."""
EVAL_SEED = 20190601


def element(image, label, label_kind):
    """Image and label (``label_kind`` units, (H, W, 1)) -> element dict, labels in network
    units: ``{"image"}`` plus ``"sigma_norm"`` (sigma / 7 clipped to [0, 1]) or ``"mask"``."""
    out = {"image": image}
    if label_kind == "sigma":
        out["sigma_norm"] = tf.clip_by_value(label / SIGMA_MAX_PX, 0.0, 1.0)
    elif label_kind == "mask":
        out["mask"] = label
    return out


def shard_files(items, shard, what):
    """This worker's files ``items[index::count]`` of ``shard = (index, count)``."""
    index, count = shard
    mine = list(items)[index::count]
    if not mine:
        raise readers.DataError(f"{what}: {len(items)} file(s) cannot be split over {count} "
                                f"workers (each needs at least one)")
    return mine


def dataset_options(deterministic):
    """tf.data options; ``deterministic`` keeps element order."""
    opts = tf.data.Options()
    opts.deterministic = bool(deterministic)
    return opts
