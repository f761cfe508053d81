"""tf.data pipelines for DMENet training and evaluation.

Training element (``make_domain_datasets``), one batch per domain as DMENet trains::

    {"synthetic":       {"image": (Bs, P, P, 3) float32 RGB [0, 1],
                         "sigma_norm": (Bs, P, P, 1) float32 sigma / 7 clipped to [0, 1]},
     "real_mask":       {"image": (Bm, P, P, 3), "mask": (Bm, P, P, 1) float32, 1 = blurred},
     "real_unlabelled": {"image": (Bu, P, P, 3)}}

DMENet defaults: Bs = Bm = Bu = 3, P = 240. Each domain reads its own data: SYNDOF-layout
folders or ``tf_defocus.generate`` TFRecord shards (synthetic), CUHK / DUT-DBD folders
(real_mask), flat photo folders (real_unlabelled). A domain without user data falls back to
the built-in procedural source: a finite pool of ``synthesize`` renders (``psf="gaussian"`` for
synthetic, ``psf="disc"`` for both real domains, with the renderer's sigma-threshold mask as
the binary label), written once by the generator (``tf_defocus.data.generate``, in parallel worker
processes) into ``cache_dir`` under a name keyed by its parameters, then held in memory and
sampled as random augmented crops. So training always runs. Rendering costs about a second per
640x480 image and core; ``pool_size`` trades that one-time cost against variety.

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
Bad input (corrupt/truncated file, missing pair, size mismatch): ``skip_bad=False`` fails on
the first one with an error naming the file; ``skip_bad=True`` logs a warning naming the file
(once) and continues without it.

Multi-worker input (``make_domain_dataset(..., shard=(index, count))``, one shard per worker):
user files and TFRecord shards are split by file (``files[index::count]``; every shard needs
at least one file); every shard but 0 also seeds its random streams differently, so procedural
pools and package photos (the same images on every worker) give each worker other crops.
Shard 0 is exactly the single-worker pipeline.
"""

import dataclasses
import hashlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import tf_defocus
from tf_defocus.config import Section, setting
from tf_defocus.data import photos, readers, render, scenes, synthesize
from tf_defocus.data.synthesize import parse_tfrecord  # the generator's TFRecord format
from tf_defocus.units import SIGMA_MAX_PX

log = logging.getLogger(__name__)

DOMAINS = ("synthetic", "real_mask", "real_unlabelled")
LABEL_KEYS = {"synthetic": "sigma_norm", "real_mask": "mask", "real_unlabelled": None}
"""Key of each domain's label in its element dict (None: unlabelled)."""
LABEL_KINDS = {"synthetic": "sigma", "real_mask": "mask", "real_unlabelled": None}
POOL_PSF = {"synthetic": "gaussian", "real_mask": "disc", "real_unlabelled": "disc"}
# Seed streams keep the pools and the per-element random streams of the domains independent.
_STREAM = {"synthetic": 1, "real_mask": 2, "real_unlabelled": 3, "eval_synthetic": 11, "eval_mask": 12}
EVAL_SEED = 20190601
POOL_FORMAT_VERSION = 1


def default_cache_dir():
    """``$TF_DEFOCUS_CACHE`` or ``~/.cache/tf_defocus``."""
    return os.environ.get("TF_DEFOCUS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tf_defocus")


_DIRS = "one or more folders, comma-separated"


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
    """DMENet training-data settings (sizes in px); the ``data`` section of
    ``tf_defocus.training.config.DMENetConfig``. Dir settings empty: built-in procedural data."""
    patch_size: int = setting(240, "Training patch side P [px] (DMENet 240).", low=1)
    batch_synthetic: int = setting(3, "Synthetic patches per step.", low=0)
    batch_real_mask: int = setting(3, "Real patches with blur masks per step.", low=0)
    batch_real_unlabelled: int = setting(3, "Unlabelled real patches per step.", low=0)
    synthetic_dir: tuple[str, ...] = setting(
        (), f"SYNDOF-layout data ({_DIRS}); default: built-in procedural pool.", path="dir")
    synthetic_tfrecords: tuple[str, ...] = setting(
        (), "tf_defocus.generate TFRecord shards (files, dirs or globs, comma-separated) "
        "instead of --synthetic_dir.")
    syndof_label_convention: str = setting(
        "sigma10", "blur_map encoding: sigma10 (public generator) or released (DMENet's "
        "SYNDOF).", choices=readers.LABEL_CONVENTIONS)
    real_mask_dir: tuple[str, ...] = setting(
        (), f"CUHK / DUT-DBD roots ({_DIRS}); default: procedural masks.", path="dir")
    real_mask_layout: str = setting("cuhk", "Layout of --real_mask_dir.", choices=("cuhk", "dut"))
    real_mask_blurred_value: int | None = setting(
        None, "Mask value meaning blurred: 255 or 0 (required with --real_mask_dir; polarity "
        "differs between copies).", choices=readers.BLURRED_VALUES)
    unlabelled_dir: tuple[str, ...] = setting(
        (), f"Flat folders of real photos ({_DIRS}); default: procedural.", path="dir")
    unlabelled_photos: bool = setting(
        False, "Without --unlabelled_dir, feed the unlabelled real domain with the photos "
        "installed packages ship (scikit-image, Debian mate-backgrounds / ukui-wallpapers; "
        "tf_defocus.data.photos).")
    pool_size: int = setting(32, "Images per built-in procedural pool.", low=1)
    pool_width: int = setting(640, "Width of procedural pool images [px].", low=1)
    pool_height: int = setting(480, "Height of procedural pool images [px].", low=1)
    pool_workers: int = setting(0, "Processes rendering pools (0 = one per core).", low=0)
    pool_scene: str = setting(
        "dead_leaves", "Scenes of the built-in pools: dead_leaves, layered (real-photo and "
        "smooth surfaces, ground/walls/sky, thin structures; tf_defocus.data.scenes) or mixed "
        "(half each).",
        choices=synthesize.SCENES)
    pool_isp: str = setting(
        "basic", "Camera pipeline of disc-PSF pools: basic, or varied (noise levels, tone "
        "curve, sharpening, downscaling, JPEG 40-98).", choices=render.ISP_PROFILES)
    synthetic_psf: str = setting(
        "gaussian", "PSF of the synthetic domain's pool: gaussian (SYNDOF) or disc "
        "(camera-like, like the real pools).", choices=render.PSFS)
    cache_dir: str | None = setting(None, "Pool cache (default $TF_DEFOCUS_CACHE or "
                                          "~/.cache/tf_defocus).")
    min_short_side: int = setting(0, "Augmentation: min short side after rescaling [px] "
                                     "(0 = patch_size + 1).", low=0)
    max_short_side: int = setting(800, "Augmentation: max short side after rescaling [px].",
                                  low=1)
    scale_mode: str = setting("clamp", "Augmentation rescaling: clamp (only out-of-range "
                                       "images, the authors' code) or random (every crop).",
                              choices=("clamp", "random"))
    scale_sigma: bool = setting(True, "Multiply sigma labels by the rescale factor (the "
                                      "authors' code does not).")
    in_memory: bool = setting(False, "Decode user files once and sample crops from RAM "
                                     "(small data sets only).")
    crops_per_image: int = setting(
        2, "Random crops per decoded user file (streaming only; decoding a 640x480 PNG + "
        "16-bit label costs ~8 CPU ms; 1 = DMENet's one crop per visit).", low=1)
    shuffle_buffer: int = setting(10000, "File-order shuffle buffer (file names).", low=1)
    seed: int = setting(0, "Seed of weight initialisation and data.")
    deterministic: bool = setting(False, "Reproducible element order (slower input).")
    skip_bad: bool = setting(False, "Skip unreadable training files (warning names them) "
                                    "instead of stopping.")

    def check(self):
        if self.min_short_side and self.min_short_side < self.patch_size:
            raise ValueError(f"--min_short_side ({self.min_short_side}) must be >= --patch_size "
                             f"({self.patch_size})")
        if self.max_short_side < self.short_side_range[0]:
            raise ValueError(f"--max_short_side ({self.max_short_side}) must be >= "
                             f"--min_short_side ({self.short_side_range[0]})")
        if self.batch_synthetic + self.batch_real_mask + self.batch_real_unlabelled < 1:
            raise ValueError("--batch_synthetic, --batch_real_mask and --batch_real_unlabelled "
                             "are all 0: nothing to train on")
        if self.real_mask_dir and self.real_mask_blurred_value is None:
            raise ValueError("--real_mask_blurred_value=255|0 is required with --real_mask_dir "
                             "(255: white = blurred, 0: black = blurred; polarity differs "
                             "between copies)")
        if self.synthetic_dir and self.synthetic_tfrecords:
            raise ValueError("give --synthetic_dir or --synthetic_tfrecords, not both")

    @property
    def short_side_range(self):
        """(lo, hi) bounds of the short side after rescaling [px]."""
        lo = self.min_short_side or self.patch_size + 1
        return lo, self.max_short_side

    def batch_size(self, domain):
        return {"synthetic": self.batch_synthetic, "real_mask": self.batch_real_mask,
                "real_unlabelled": self.batch_real_unlabelled}[domain]


# ----------------------------------------------------------------------------------------------
# Augmentation (pure TF, shared by every source)


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


def _finish(domain, image, label):
    """Augmented image/label -> the domain's element dict (labels in network units)."""
    out = {"image": image}
    if domain == "synthetic":
        out["sigma_norm"] = tf.clip_by_value(label / SIGMA_MAX_PX, 0.0, 1.0)
    elif domain == "real_mask":
        out["mask"] = label
    return out


def _element_seed(base, index):
    return tf.stack([tf.constant(base, tf.int64), tf.cast(index, tf.int64)])


def _domain_seed(seed, stream, shard_index=0):
    """Base seed of one domain's random stream; shard 0 keeps the single-worker seed."""
    entropy = [int(seed) & 0xFFFFFFFF, stream] + ([int(shard_index)] if shard_index else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 2)


def _shard(items, shard, what):
    """This worker's files ``items[index::count]`` of ``shard = (index, count)``."""
    index, count = shard
    mine = list(items)[index::count]
    if not mine:
        raise readers.DataError(f"{what}: {len(items)} file(s) cannot be split over {count} "
                                f"workers (each needs at least one)")
    return mine


# ----------------------------------------------------------------------------------------------
# Decoding files (Python, called through tf.numpy_function)


class _Decoder:
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


def _decode_op(decoder, image_path, label_path):
    image, label, ok = tf.numpy_function(decoder, [image_path, label_path],
                                         [tf.float32, tf.float32, tf.bool], stateful=False)
    image.set_shape([None, None, 3])
    label.set_shape([None, None, 1])
    ok.set_shape([])
    return image, label, ok


# ----------------------------------------------------------------------------------------------
# Element datasets (unbatched, infinite) per kind of source


def _aug_kwargs(cfg, domain):
    return dict(patch_size=cfg.patch_size, short_side_range=cfg.short_side_range,
                scale_mode=cfg.scale_mode, label_kind=LABEL_KINDS[domain], scale_sigma=cfg.scale_sigma)


def _streaming_dataset(source, cfg, domain, base_seed):
    """Infinite dataset decoding files on the fly (parallel) and cropping each one."""
    images = [e.image for e in source.examples]
    labels = [e.label or "" for e in source.examples]
    n = len(images)
    decoder = _Decoder(source, cfg.skip_bad)
    labelled = LABEL_KINDS[domain] is not None
    k_crops = int(cfg.crops_per_image)
    kw = _aug_kwargs(cfg, domain)

    files = tf.data.Dataset.from_tensor_slices((images, labels))
    files = files.shuffle(min(n, cfg.shuffle_buffer), seed=base_seed, reshuffle_each_iteration=True).repeat()
    files = tf.data.Dataset.zip((files, tf.data.Dataset.counter()))

    def load_and_crop(paths, index):
        image, label, ok = _decode_op(decoder, paths[0], paths[1])
        # A skipped file decodes to a 1x1 dummy: give it patch size so augmentation runs (the
        # crops are filtered out below).
        image, label = tf.cond(ok, lambda: (image, label),
                               lambda: (tf.zeros([cfg.patch_size, cfg.patch_size, 3]),
                                        tf.zeros([cfg.patch_size, cfg.patch_size, 1])))
        crops_i, crops_l = [], []
        for j in range(k_crops):
            seed = _element_seed(base_seed, index * k_crops + j)
            im, lab = augment_pair(image, label if labelled else None, seed, **kw)
            crops_i.append(im)
            crops_l.append(lab if labelled else tf.zeros([cfg.patch_size, cfg.patch_size, 1]))
        return tf.stack(crops_i), tf.stack(crops_l), ok

    def finish(image, label):
        return _finish(domain, image, label if labelled else None)

    ds = files.map(load_and_crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=cfg.deterministic)
    ds = ds.filter(_is_ok).map(_drop_ok).unbatch()
    if k_crops > 1:
        ds = ds.shuffle(8 * k_crops, seed=base_seed + 1)
    return ds.map(finish)


def _is_ok(*args):
    return args[-1]


def _drop_ok(*args):
    return args[0] if len(args) == 2 else args[:-1]


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


def _in_memory_dataset(images, labels, cfg, domain, base_seed):
    """Infinite dataset of random augmented crops of in-memory images."""
    store = _RaggedStore(images, labels if LABEL_KINDS[domain] else None)
    log.info("%s: %d images in memory (%.0f MB)", domain, store.count, store.nbytes / 2**20)
    kw = _aug_kwargs(cfg, domain)

    def crop(index):
        seed = _element_seed(base_seed, index)
        pick_seed = tf.random.experimental.stateless_fold_in(seed, 7)
        idx = tf.random.stateless_uniform([], pick_seed, 0, store.count, dtype=tf.int32)
        image, label = store.get(idx)
        image, label = augment_pair(image, label, seed, **kw)
        return _finish(domain, image, label)

    return tf.data.Dataset.counter().map(crop, num_parallel_calls=tf.data.AUTOTUNE,
                                         deterministic=cfg.deterministic)


# ----------------------------------------------------------------------------------------------
# Generator TFRecord shards


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


def _tfrecord_dataset(patterns, cfg, base_seed, shard):
    """Infinite synthetic dataset from ``tf_defocus.generate`` GZIP shards.

    Every shard's first record is checked up front (bad shards named). With ``skip_bad`` a
    corrupt region or record found later is dropped (TensorFlow logs the error); otherwise the
    first one stops the pipeline.
    """
    files = _shard(_check_shards(_expand_files(patterns), cfg.skip_bad), shard, "TFRecord shards")
    log.info("synthetic domain: %d TFRecord shard(s)", len(files))
    kw = _aug_kwargs(cfg, "synthetic")

    def read(path):
        ds = tf.data.TFRecordDataset(path, compression_type="GZIP")
        if cfg.skip_bad:
            ds = ds.ignore_errors(log_warning=True)
        return ds

    ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=base_seed).repeat()
    ds = ds.interleave(read, cycle_length=min(4, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=cfg.deterministic)
    ds = ds.shuffle(64, seed=base_seed + 1)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.counter()))

    def crop(serialized, index):
        image, sigma, _ = parse_tfrecord(serialized)
        image, sigma = augment_pair(image, sigma, _element_seed(base_seed, index), **kw)
        return _finish("synthetic", image, sigma)

    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=cfg.deterministic)
    if cfg.skip_bad:
        ds = ds.ignore_errors(log_warning=True)
    return ds


# ----------------------------------------------------------------------------------------------
# Procedural pools


def _pool_seed(seed, stream):
    """Generator data-set seed (31 bit) of one pool, from the config seed and the pool's stream."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(stream)]).generate_state(1)[0] >> 1)


def pool_dir(cache_dir, psf, width, height, count, seed, stream, scene="dead_leaves", isp="basic"):
    """Cache folder of one procedural pool and the key it is named after (a hash of everything
    that shapes the pool, including the photo files of layered scenes). Returns (Path, key)."""
    key = {"psf": psf, "width": int(width), "height": int(height), "count": int(count),
           "generator_seed": _pool_seed(seed, stream), "format": POOL_FORMAT_VERSION,
           "tf_defocus": tf_defocus.__version__}
    if scene != "dead_leaves" or isp != "basic":
        key.update(scene=scene, isp=isp)
    if scene in ("layered", "mixed"):
        key["photos"] = photos.fingerprint(photos.package_photos("train"))
        key["scene_version"] = scenes.SCENE_VERSION
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / "pools" / f"{psf}_{width}x{height}_n{count}_{digest}", key


def _generate_pool(out_dir, key, workers):
    """Write the pool with the generator (``data.generate.run_generation``) in ``workers``
    spawned processes (in this process for one)."""
    from tf_defocus.data import generate

    gcfg = generate.GenerateConfig(out_dir=str(out_dir), source="procedural", num_images=key["count"],
                                   image_size=f"{key['width']}x{key['height']}", psf=key["psf"],
                                   seed=key["generator_seed"], format="syndof", num_workers=workers,
                                   scene=key.get("scene", "dead_leaves"), isp=key.get("isp", "basic"))
    result = generate.run_generation(gcfg)
    if result["bad"]:
        raise RuntimeError(f"{out_dir}: rendering failed for {', '.join(n for n, _ in result['bad'])}: "
                           f"{result['bad'][0][1].splitlines()[0]}")


def ensure_pool(psf, width, height, count, seed, stream, cache_dir=None, workers=0,
                scene="dead_leaves", isp="basic"):
    """Render (or reuse) a procedural pool; returns its SYNDOF-layout folder.

    The pool is exactly the data set ``python -m tf_defocus.generate --psf=<psf>
    --image_size=<W>x<H> --num_images=<count> --seed=<pool seed>`` writes (``pool.json`` holds
    the key). Files are written atomically and an interrupted run resumes where it stopped.
    ``workers``: processes (0 = one per CPU core).
    """
    out_dir, key = pool_dir(cache_dir, psf, width, height, count, seed, stream, scene, isp)
    marker = out_dir / "pool.json"
    if marker.is_file():
        return out_dir
    workers = max(1, min(int(workers) or os.cpu_count() or 1, int(count)))
    print(f"tf_defocus: rendering {count} procedural {scene} {psf} images ({width}x{height}) into {out_dir} "
          f"with {workers} process(es); cached for later runs", file=sys.stderr, flush=True)
    t0 = time.time()
    _generate_pool(out_dir, key, workers)
    from tf_defocus.imageio import write_text
    write_text(marker, json.dumps(key, indent=2, sort_keys=True) + "\n")
    log.info("procedural pool %s ready in %.1f s", out_dir, time.time() - t0)
    return out_dir


def _pool_source(domain, cfg):
    psf = cfg.synthetic_psf if domain == "synthetic" else POOL_PSF[domain]
    stream = _STREAM[domain]
    if domain == "real_mask" and cfg.synthetic_psf == "disc":
        stream = _STREAM["synthetic"]  # the same camera-like renders: sigma labels, here masks
    folder = ensure_pool(psf, cfg.pool_width, cfg.pool_height, cfg.pool_size, cfg.seed,
                         stream, cache_dir=cfg.cache_dir, workers=cfg.pool_workers,
                         scene=cfg.pool_scene, isp=cfg.pool_isp)
    return _pool_file_source(folder, LABEL_KINDS[domain])


def _pool_file_source(folder, label_kind):
    folder = Path(folder)
    if label_kind == "sigma":
        return readers.syndof(folder, "sigma10")
    if label_kind == "mask":
        # The generator's blur_map_binary: 255 = blurred.
        return readers.blur_masks(folder / "image", folder / "blur_map_binary", 255,
                                  name=f"procedural masks {folder}")
    return readers.unlabelled(folder / "image")


# ----------------------------------------------------------------------------------------------
# Public builders


def _user_source(domain, cfg, shard):
    if domain == "synthetic" and cfg.synthetic_dir:
        sources = [readers.syndof(d, cfg.syndof_label_convention, skip_bad=cfg.skip_bad)
                   for d in cfg.synthetic_dir]
    elif domain == "real_mask" and cfg.real_mask_dir:
        sources = [readers.mask_source(d, cfg.real_mask_layout, cfg.real_mask_blurred_value,
                                       skip_bad=cfg.skip_bad) for d in cfg.real_mask_dir]
    elif domain == "real_unlabelled" and cfg.unlabelled_dir:
        sources = [readers.unlabelled(list(cfg.unlabelled_dir), skip_bad=cfg.skip_bad)]
    else:
        return None
    name = " + ".join(s.name for s in sources)
    examples = tuple(e for s in sources for e in s.examples)
    return dataclasses.replace(sources[0], name=name, examples=tuple(_shard(examples, shard, name)))


def make_domain_dataset(cfg, domain, batch_size=None, shard=(0, 1)):
    """Infinite dataset of batches of one domain: dict as in the module docstring.

    ``batch_size`` defaults to the domain's batch size in ``cfg``. ``shard``: (index, count),
    this worker's input shard (see the module docstring).
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    base_seed = _domain_seed(cfg.seed, _STREAM[domain], shard[0])
    if domain == "synthetic" and cfg.synthetic_tfrecords:
        ds = _tfrecord_dataset(cfg.synthetic_tfrecords, cfg, base_seed, shard)
    else:
        source = _user_source(domain, cfg, shard)
        if source is None and domain == "real_unlabelled" and cfg.unlabelled_photos:
            lib = photos.library("train")
            if not len(lib):
                raise ValueError("unlabelled_photos: no package photos are installed (pip install "
                                 "scikit-image; apt-get install mate-backgrounds ukui-wallpapers)")
            log.info("%s domain: %d package photos", domain, len(lib))
            ds = _in_memory_dataset(lib.images(), None, cfg, domain, base_seed)
        else:
            if source is None:
                source = _pool_source(domain, cfg)
                in_memory = True
            else:
                log.info("%s domain: %s (%d examples)", domain, source.name, len(source))
                in_memory = cfg.in_memory
            if in_memory:
                images, labels, _ = load_all(source, skip_bad=cfg.skip_bad)
                ds = _in_memory_dataset(images, labels, cfg, domain, base_seed)
            else:
                ds = _streaming_dataset(source, cfg, domain, base_seed)
    ds = ds.batch(batch_size or cfg.batch_size(domain), drop_remainder=True)
    return ds.with_options(_options(cfg.deterministic))


def make_domain_datasets(cfg):
    """Infinite dataset zipping one batch of each domain (see module docstring)."""
    parts = {d: make_domain_dataset(cfg, d) for d in DOMAINS}
    ds = tf.data.Dataset.zip(parts).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(cfg.deterministic))


def _options(deterministic):
    opts = tf.data.Options()
    opts.deterministic = bool(deterministic)
    return opts


def _eval_dataset(source, label_key, label_kind, *, batch_size, crop_size, multiple, skip_bad):
    """Finite, ordered dataset of whole images (cropped) with their labels, no augmentation."""
    if batch_size > 1 and crop_size is None:
        raise ValueError("batch_size > 1 needs crop_size: evaluation images may differ in size")
    multiple = max(1, int(multiple))
    min_hw = (int(crop_size[1]), int(crop_size[0])) if crop_size is not None else (multiple, multiple)
    decoder = _Decoder(source, skip_bad, min_hw=min_hw)
    images = [e.image for e in source.examples]
    labels = [e.label or "" for e in source.examples]

    def load(image_path, label_path):
        image, label, ok = _decode_op(decoder, image_path, label_path)
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
        out = {"image": image}
        if label_kind == "sigma":
            out[label_key] = tf.clip_by_value(label / SIGMA_MAX_PX, 0.0, 1.0)
        elif label_kind == "mask":
            out[label_key] = label
        return out, ok

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(_is_ok).map(_drop_ok)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(True))


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
                             seed, _STREAM["eval_synthetic"], cache_dir=cache_dir, workers=workers)
        source = readers.syndof(folder, "sigma10")
    else:
        source = readers.syndof(data_dir, label_convention, skip_bad=skip_bad)
    return _eval_dataset(source, "sigma_norm", "sigma", batch_size=batch_size, crop_size=crop_size,
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
                             seed, _STREAM["eval_mask"], cache_dir=cache_dir, workers=workers)
        source = _pool_file_source(folder, "mask")
    else:
        source = readers.mask_source(data_dir, layout, blurred_value, skip_bad=skip_bad)
    return _eval_dataset(source, "mask", "mask", batch_size=batch_size, crop_size=crop_size,
                         multiple=multiple, skip_bad=skip_bad)


# ----------------------------------------------------------------------------------------------


def _progress(total, unit_name="item"):
    """Progress bar with ETA on stdout (``keras.utils.Progbar``); returns update(done)."""
    if total <= 1:
        return lambda done: None
    import keras

    bar = keras.utils.Progbar(total, unit_name=unit_name)
    return bar.update
