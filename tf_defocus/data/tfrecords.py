"""Reading ``tf_defocus.generate`` TFRecord shards as the synthetic domain's element dataset.

The record format (``TFRECORD_SCHEMA``, ``parse_tfrecord``) is owned by
``tf_defocus.data.synthesize``; this module finds, checks, shards and reads the files.
"""

import logging
import os
import re
from pathlib import Path

import tensorflow as tf

from tf_defocus.data import readers
from tf_defocus.data.augment import augment_kwargs, augment_pair, element_seed
from tf_defocus.data.domains import LABEL_KINDS, element, shard_files
from tf_defocus.data.synthesize import parse_tfrecord  # the generator's TFRecord format

log = logging.getLogger(__name__)

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecord.gz", ".tfrecords", ".tfrecords.gz")


def _expand_files(patterns):
    """TFRecord files from files, folders (shards named ``*.tfrecord[.gz]``) or globs."""
    out = []
    for p in patterns:
        if os.path.isdir(p):
            found = sorted(str(x) for x in Path(p).iterdir()
                           if x.is_file() and not x.name.startswith(".") and x.name.endswith(TFRECORD_SUFFIXES))
            if not found:
                raise readers.DataError(f"{p}: folder holds no .tfrecord shards")
            out.extend(found)
        elif os.path.isfile(p):
            out.append(p)
        else:
            matches = sorted(tf.io.gfile.glob(p))
            if not matches:
                raise readers.DataError(f"{p}: no such TFRecord file, folder or glob match")
            out.extend(matches)
    return out


def _check_shards(files, skip_bad):
    """Read the first record of every shard: a non-GZIP, empty or garbage file is named here.

    Deeper corruption is caught while training: TensorFlow's error ("truncated record at N",
    "corrupted record") does not carry the file name.
    """
    good, problems = [], []
    for f in files:
        try:
            rec = next(iter(tf.data.TFRecordDataset(f, compression_type="GZIP").take(1)), None)
            if rec is None:
                raise readers.DataError("no records")
            parse_tfrecord(rec)
            good.append(f)
        except (tf.errors.OpError, readers.DataError, ValueError) as e:
            msg = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", getattr(e, "message", None) or str(e))
            problems.append(f"{f}: not a readable GZIP TFRecord shard of generator records ({msg.strip()[:200]})")
    readers._report(problems, skip_bad, "checking TFRecord shards")  # pylint: disable=protected-access
    if not good:
        raise readers.DataError(f"no readable TFRecord shards among {', '.join(files)}")
    return good


def tfrecord_dataset(patterns, cfg, base_seed, shard, start=0):
    """Infinite synthetic element dataset from ``tf_defocus.generate`` GZIP shards.

    patterns: files, folders or globs; cfg: ``pipeline.DataConfig``; shard: (index, count);
    start: first element of the stream (the records before it are read, not parsed).
    Every shard's first record is checked up front (bad shards named). With ``skip_bad`` a
    corrupt region or record found later is dropped (TensorFlow logs the error); otherwise the
    first one stops the pipeline.
    """
    files = shard_files(_check_shards(_expand_files(patterns), cfg.skip_bad), shard, "TFRecord shards")
    log.info("synthetic domain: %d TFRecord shard(s)", len(files))
    kw = augment_kwargs(cfg, "synthetic")

    def read(path):
        ds = tf.data.TFRecordDataset(path, compression_type="GZIP")
        if cfg.skip_bad:
            ds = ds.ignore_errors(log_warning=True)
        return ds

    ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=base_seed).repeat()
    ds = ds.interleave(read, cycle_length=min(4, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=cfg.deterministic)
    ds = ds.shuffle(64, seed=base_seed + 1)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.counter())).skip(int(start))

    def crop(serialized, index):
        image, sigma, _ = parse_tfrecord(serialized)
        image, sigma = augment_pair(image, sigma, element_seed(base_seed, index), **kw)
        return element(image, sigma, LABEL_KINDS["synthetic"])

    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=cfg.deterministic)
    if cfg.skip_bad:
        ds = ds.ignore_errors(log_warning=True)
    return ds
