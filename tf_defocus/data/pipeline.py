"""DMENet training data: ``DataConfig`` and the training datasets built from it.

Training element (``make_domain_datasets``), one batch per domain as DMENet trains::

    {"synthetic":       {"image": (Bs, P, P, 3) float32 RGB [0, 1],
                         "sigma_norm": (Bs, P, P, 1) float32 sigma / 7 clipped to [0, 1]},
     "real_mask":       {"image": (Bm, P, P, 3), "mask": (Bm, P, P, 1) float32, 1 = blurred},
     "real_unlabelled": {"image": (Bu, P, P, 3)}}

DMENet defaults: Bs = Bm = Bu = 3, P = 240. Each domain reads its own data: SYNDOF-layout
folders or ``tf_defocus.generate`` TFRecord shards (synthetic, ``data.tfrecords``), CUHK /
DUT-DBD folders (real_mask), flat photo folders (real_unlabelled), decoded on the fly
(``data.decoding``) or once into memory (``data.in_memory``). A domain without user data falls
back to the built-in procedural source (``data.pools``). Every source is cropped and augmented
by ``data.augment`` (stateless, seeded per element; ``deterministic=True`` also keeps element
order, so two runs give identical batches). Bad input: ``skip_bad`` (``data.decoding``).

Multi-worker input: ``make_domain_dataset(..., shard=(index, count))``, one shard per worker
(``data.domains``); shard 0 is exactly the single-worker pipeline. Evaluation sets:
``data.evalsets``.
"""

import dataclasses
import logging

import tensorflow as tf

from tf_defocus.config import Section, setting
from tf_defocus.data import photos, readers, render, synthesize
from tf_defocus.data.augment import augment_pair, domain_seed
from tf_defocus.data.decoding import streaming_dataset
from tf_defocus.data.domains import (DOMAINS, EVAL_SEED, LABEL_KEYS, LABEL_KINDS, STREAMS,
                                     dataset_options, shard_files)
from tf_defocus.data.evalsets import make_mask_eval_dataset, make_synthetic_eval_dataset
from tf_defocus.data.in_memory import in_memory_dataset, load_all
from tf_defocus.data.pools import (POOL_FORMAT_VERSION, POOL_PSF, default_cache_dir, ensure_pool,
                                   pool_dir, pool_source)
from tf_defocus.data.synthesize import parse_tfrecord
from tf_defocus.data.tfrecords import TFRECORD_SUFFIXES, tfrecord_dataset

__all__ = [
    "DataConfig", "make_domain_dataset", "make_domain_datasets",
    # Re-exported from the modules that own them (importable from here as before the split):
    "DOMAINS", "EVAL_SEED", "LABEL_KEYS", "LABEL_KINDS", "POOL_FORMAT_VERSION", "POOL_PSF",
    "TFRECORD_SUFFIXES", "augment_pair", "default_cache_dir", "ensure_pool", "load_all",
    "make_mask_eval_dataset", "make_synthetic_eval_dataset", "parse_tfrecord", "pool_dir",
]

log = logging.getLogger(__name__)


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
        "installed packages ship (scikit-image and Debian wallpaper packages; "
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
    pool_highlights: float = setting(
        0.0, "Disc-PSF pools: probability that a scene gets point lights brighter than white "
        "(bokeh when defocused; tf_defocus.data.highlights).", low=0, high=1)
    pool_all_in_focus: float = setting(
        synthesize.ALL_IN_FOCUS_PROB, "Share of the pools' layered scenes rendered all in focus.",
        low=0, high=1)
    pool_smooth_focus: float = setting(
        synthesize.SMOOTH_FOCUS_PROB, "Share of the pools' layered scenes focused on a large "
        "smooth surface (--pool_all_in_focus plus this at most 1).", low=0, high=1)
    pool_photos: str = setting(
        "train", "Package photos of the pools' layered scenes and of --unlabelled_photos: train, "
        "or train+plasma (adds the 11 photographs of Debian plasma-workspace-wallpapers; "
        "tf_defocus.data.photos).", choices=("train", "train+plasma"))
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
        synthesize.check_focus_shares(self.pool_all_in_focus, self.pool_smooth_focus,
                                      ("--pool_all_in_focus", "--pool_smooth_focus"))
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
    return dataclasses.replace(sources[0], name=name, examples=tuple(shard_files(examples, shard, name)))


def make_domain_dataset(cfg, domain, batch_size=None, shard=(0, 1), start_batch=0):
    """Infinite dataset of batches of one domain: dict as in the module docstring.

    ``batch_size`` defaults to the domain's batch size in ``cfg``. ``shard``: (index, count),
    this worker's input shard (see the module docstring). ``start_batch``: the first batch of
    the stream, so that a resumed run reads what an uninterrupted one would have read next
    (exactly for built-in pools, package photos and TFRecords; to the file for image folders).
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    base_seed = domain_seed(cfg.seed, STREAMS[domain], shard[0])
    batch_size = batch_size or cfg.batch_size(domain)
    start = int(start_batch) * batch_size   # first element
    if domain == "synthetic" and cfg.synthetic_tfrecords:
        ds = tfrecord_dataset(cfg.synthetic_tfrecords, cfg, base_seed, shard, start)
    else:
        source = _user_source(domain, cfg, shard)
        if source is None and domain == "real_unlabelled" and cfg.unlabelled_photos:
            photos.require_photos(cfg.pool_photos)
            lib = photos.library(cfg.pool_photos)
            if not len(lib):
                raise ValueError("unlabelled_photos: no package photos are installed (pip install "
                                 "scikit-image; apt-get install " + " ".join(photos.APT_PACKAGES) + ")")
            log.info("%s domain: %d package photos", domain, len(lib))
            ds = in_memory_dataset(lib.images(), None, cfg, domain, base_seed, start)
        else:
            if source is None:
                source = pool_source(domain, cfg)
                in_memory = True
            else:
                log.info("%s domain: %s (%d examples)", domain, source.name, len(source))
                in_memory = cfg.in_memory
            if in_memory:
                images, labels, _ = load_all(source, skip_bad=cfg.skip_bad)
                ds = in_memory_dataset(images, labels, cfg, domain, base_seed, start)
            else:
                ds = streaming_dataset(source, cfg, domain, base_seed, start)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.with_options(dataset_options(cfg.deterministic))


def make_domain_datasets(cfg):
    """Infinite dataset zipping one batch of each domain (see module docstring)."""
    parts = {d: make_domain_dataset(cfg, d) for d in DOMAINS}
    ds = tf.data.Dataset.zip(parts).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(dataset_options(cfg.deterministic))
