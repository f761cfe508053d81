"""DoFNet training task (KCI 2020 paper) for ``tf_defocus.train --task=dofnet``.

Data: a pool of images loaded once — every image of ``image_dir`` (unreadable files are
reported by name and skipped) or ``pool_size`` built-in procedural defocused scenes
(``tf_defocus.data.synthesize.synthesize``, Gaussian PSF, rendered once in parallel and cached
by ``tf_defocus.data.pipeline.ensure_pool``) — with the label of each whole image computed once
by ``tf_defocus.dof.dof_training_target`` (so patches carry no border artefacts of their own).
The last ``val_images`` images of the pool are held out for validation. Training elements are
random patches with random flips / 90-degree rotations (the weight map is isotropic, so labels
stay valid), as dicts

    {"image": (B,P,P,3) float32 RGB [0,1],
     "label": (B,P,P,C) the training target (C = 1 for "weight", 3 for "weighted_image"),
     "weight": (B,P,P,1) the smoothed weight map W_s in [0,1] (for the focus error metric)}.

Objective: MSE between the network output and ``label`` (the paper's objective). Reported
metrics: ``loss`` (that MSE) and ``focus_mae`` (mean |recovered focus - W_s|, comparable
between the two targets).
"""

import dataclasses
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_defocus import dof
from tf_defocus.models.dofnet import DoFNet, FocusFromPrediction
from tf_defocus.training.task import TrainingTask

DEFAULTS = dict(
    target="weighted_image",
    image_dir=None,
    mask_size=dof.DEFAULT_MASK_SIZE,
    kernel_sizes=(9, 1, 5),
    filters=(64, 32),
    padding="symmetric",
    width=1.0,
    pool_size=256,
    source_size=192,
    max_side=512,
    val_images=16,
    val_patch_size=96,
    patch_size=48,
    batch_size=16,
    learning_rate=1e-3,
    seed=0,
    cache_dir=None,
    pool_workers=0,
)


@dataclasses.dataclass(frozen=True)
class DoFTaskConfig:
    """Settings of the DoF task (all sizes in px).

    target: "weight" (naive W) or "weighted_image" (the paper's W' = W x I).
    image_dir: folder of training photos, or None for built-in procedural scenes.
    mask_size: Gaussian mask of the weight map (odd >= 3; the paper's 15).
    kernel_sizes, filters, padding, width: DoFNet architecture (SRCNN 9-1-5, 64/32 channels,
      mirror padding).
    pool_size: number of procedural images, or the most folder images used (0 = all).
    source_size: side of each procedural image; max_side: folder images with a longer side
      are downscaled (INTER_AREA) before their labels are computed (0 = never).
    val_images: images of the pool held out for validation; val_patch_size: their crop side.
    patch_size, batch_size: training patches; learning_rate: Adam step; seed: data and init.
    cache_dir, pool_workers: where the procedural pool is cached (default
      ``$TF_DEFOCUS_CACHE`` or ``~/.cache/tf_defocus``) and how many processes render it
      (0 = one per core), as for DMENet's pools.
    """
    target: str = DEFAULTS["target"]
    image_dir: str | None = DEFAULTS["image_dir"]
    mask_size: int = DEFAULTS["mask_size"]
    kernel_sizes: tuple = DEFAULTS["kernel_sizes"]
    filters: tuple = DEFAULTS["filters"]
    padding: str = DEFAULTS["padding"]
    width: float = DEFAULTS["width"]
    pool_size: int = DEFAULTS["pool_size"]
    source_size: int = DEFAULTS["source_size"]
    max_side: int = DEFAULTS["max_side"]
    val_images: int = DEFAULTS["val_images"]
    val_patch_size: int = DEFAULTS["val_patch_size"]
    patch_size: int = DEFAULTS["patch_size"]
    batch_size: int = DEFAULTS["batch_size"]
    learning_rate: float = DEFAULTS["learning_rate"]
    seed: int = DEFAULTS["seed"]
    cache_dir: str | None = DEFAULTS["cache_dir"]
    pool_workers: int = DEFAULTS["pool_workers"]

    def __post_init__(self):
        object.__setattr__(self, "kernel_sizes", _int_tuple(self.kernel_sizes, "kernel_sizes"))
        object.__setattr__(self, "filters", _int_tuple(self.filters, "filters"))
        if self.target not in dof.TARGETS:
            raise ValueError(f"dof target must be one of {dof.TARGETS}, got {self.target!r}")
        dof.check_mask_size(self.mask_size)
        for name in ("patch_size", "batch_size", "val_patch_size", "source_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pool_size < 0 or self.val_images < 0 or self.max_side < 0:
            raise ValueError("pool_size, val_images and max_side must be >= 0")
        if self.image_dir is None and self.pool_size < 1:
            raise ValueError("pool_size must be >= 1 for built-in procedural images")
        if self.image_dir is None and self.source_size < self.patch_size:
            raise ValueError(f"source_size ({self.source_size}) must be >= patch_size "
                             f"({self.patch_size})")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


def config_from(config):
    """A ``DoFTaskConfig`` from the train CLI's config (or a DoFTaskConfig itself).

    The CLI's DoF fields are named ``dof_<field>``; generic fields (``batch_size``,
    ``patch_size``, ``learning_rate``, ``seed``, ``width``) are shared with DMENet and used when
    no ``dof_`` variant exists. Missing fields keep the defaults above.
    """
    if isinstance(config, DoFTaskConfig):
        return config
    values = {}
    for f in dataclasses.fields(DoFTaskConfig):
        for key in (f"dof_{f.name}", f.name if f.name in _SHARED else None):
            if key is not None and hasattr(config, key) and getattr(config, key) is not None:
                values[f.name] = getattr(config, key)
                break
    for key in ("kernel_sizes", "filters"):
        if key in values:
            values[key] = _int_tuple(values[key], key)
    if values.get("image_dir") in ("", None):
        values["image_dir"] = None
    return DoFTaskConfig(**values)


_SHARED = ("batch_size", "patch_size", "learning_rate", "seed", "width", "cache_dir",
           "pool_workers")


def _int_tuple(v, name):
    if isinstance(v, str):
        v = [s for s in v.replace("x", ",").split(",") if s.strip()]
    try:
        return tuple(int(s) for s in v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a list of integers, got {v!r}") from e


# ----------------------------------------------------------------------------- data pool

@dataclasses.dataclass
class Pool:
    """Images (uint8 (H,W,3)) and their smoothed weight maps W_s (float16 (H,W)), the names of
    the files that could not be used, and for procedural images the true blur masks (bool
    (H,W), 1 = blurred, from ``synthesize``; None for folder images)."""
    images: list
    weights: list
    names: list
    skipped: list
    masks: list = None

    def __len__(self):
        return len(self.images)


def _progress(total, label):
    bar = keras.utils.Progbar(total, unit_name=label)
    return lambda i: bar.update(i)


def _pool_entry(rgb, mask_size):
    u8 = np.round(np.clip(rgb, 0, 1) * 255.0).astype(np.uint8)
    w = dof.dof_training_target(u8, "weight", mask_size)[..., 0]
    return u8, w.astype(np.float16)


POOL_STREAM = 21
"""Seed stream of DoFNet's procedural pool (DMENet's pools use 1-12; see data.pipeline)."""


def _warn(message):
    print(f"dofnet: {message}", file=sys.stderr, flush=True)


def build_pool(cfg, verbose=True, log=print):
    """Load or synthesise the image pool and compute each image's label once.

    Unusable folder images are reported on stderr by name, listed in ``Pool.skipped`` and
    skipped; ValueError if none is usable.
    """
    import cv2
    from tf_defocus.imageio import ImageReadError, list_images, read_image

    images, weights, names, skipped, masks = [], [], [], [], []
    if cfg.image_dir:
        paths = list_images([cfg.image_dir])
        if cfg.pool_size and len(paths) > cfg.pool_size:
            _warn(f"using the first {cfg.pool_size} of the {len(paths)} images in "
                  f"{cfg.image_dir} (pool_size; 0 = all)")
            paths = paths[:cfg.pool_size]
        if verbose:
            log(f"dofnet: loading {len(paths)} images from {cfg.image_dir}")
        tick = _progress(len(paths), "images") if verbose else (lambda i: None)
        for i, p in enumerate(paths):
            try:
                rgb = read_image(p)
            except (ImageReadError, OSError) as e:
                skipped.append(str(p))
                _warn(f"skipping {e}")
                tick(i + 1)
                continue
            h, w = rgb.shape[:2]
            if cfg.max_side and max(h, w) > cfg.max_side:
                s = cfg.max_side / max(h, w)
                rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                 interpolation=cv2.INTER_AREA)
            if min(rgb.shape[:2]) < cfg.patch_size:
                skipped.append(str(p))
                _warn(f"skipping {p}: {rgb.shape[1]}x{rgb.shape[0]} px is smaller than the "
                      f"{cfg.patch_size} px patch")
                tick(i + 1)
                continue
            u8, w_s = _pool_entry(rgb, cfg.mask_size)
            images.append(u8)
            weights.append(w_s)
            names.append(str(p))
            tick(i + 1)
        if not images:
            raise ValueError(f"{cfg.image_dir}: none of the {len(paths)} images is usable for "
                             f"DoF training (see the messages above)")
        if skipped:
            _warn(f"{len(skipped)} of {len(paths)} images skipped: {', '.join(skipped)}")
    else:
        # The data engine's cached, parallel pool renderer (the same files as
        # ``python -m tf_defocus.generate --psf=gaussian``), so reruns and resumes reuse it.
        from tf_defocus.data import pipeline, readers
        from tf_defocus.data.synthesize import DEFAULT_MASK_THRESHOLD_PX
        folder = pipeline.ensure_pool("gaussian", cfg.source_size, cfg.source_size,
                                      cfg.pool_size, cfg.seed, POOL_STREAM,
                                      cache_dir=cfg.cache_dir, workers=cfg.pool_workers)
        source = readers.syndof(folder, "sigma10")
        if len(source) != cfg.pool_size:
            raise ValueError(f"{folder}: procedural pool holds {len(source)} images, expected "
                             f"{cfg.pool_size}; delete the folder to render it again")
        if verbose:
            log(f"dofnet: labelling {cfg.pool_size} procedural {cfg.source_size}x"
                f"{cfg.source_size} images from {folder}")
        tick = _progress(cfg.pool_size, "images") if verbose else (lambda i: None)
        for i, example in enumerate(source.examples):
            rgb, sigma_px = source.load(example)
            u8, w_s = _pool_entry(rgb, cfg.mask_size)
            images.append(u8)
            weights.append(w_s)
            names.append(str(example.image))
            masks.append(sigma_px > DEFAULT_MASK_THRESHOLD_PX)
            tick(i + 1)
    return Pool(images, weights, names, skipped, masks if masks else None)


def split_pool(pool, val_images):
    """(train pool, val pool): the last ``val_images`` images are held out (at least one image
    always stays for training)."""
    n_val = min(val_images, len(pool) - 1)
    cut = len(pool) - n_val
    take = lambda a, b: Pool(pool.images[a:b], pool.weights[a:b], pool.names[a:b], [],
                             pool.masks[a:b] if pool.masks else None)
    return take(0, cut), take(cut, len(pool))


def _element(images, weights, target):
    img = images.astype(np.float32) / 255.0
    w = weights.astype(np.float32)[..., None]
    label = w if target == "weight" else w * img
    return {"image": img, "label": label, "weight": w}


def patch_batches(pool, cfg, seed):
    """Infinite generator of training batches (dicts of NumPy arrays, see module docstring)."""
    rng = np.random.default_rng(seed)
    p, b = cfg.patch_size, cfg.batch_size
    usable = [i for i, im in enumerate(pool.images) if min(im.shape[:2]) >= p]
    if not usable:
        raise ValueError(f"no training image is at least {p} px on each side")
    while True:
        imgs = np.empty((b, p, p, 3), np.uint8)
        ws = np.empty((b, p, p), np.float16)
        for j, i in enumerate(rng.choice(usable, size=b)):
            im, w = pool.images[i], pool.weights[i]
            y = rng.integers(0, im.shape[0] - p + 1)
            x = rng.integers(0, im.shape[1] - p + 1)
            ci, cw = im[y:y + p, x:x + p], w[y:y + p, x:x + p]
            k = int(rng.integers(0, 4))
            if rng.random() < 0.5:
                ci, cw = ci[:, ::-1], cw[:, ::-1]
            imgs[j] = np.rot90(ci, k)
            ws[j] = np.rot90(cw, k)
        yield _element(imgs, ws, cfg.target)


def val_patches(pool, cfg):
    """Deterministic validation crops: up to 4 crops of ``val_patch_size`` (clipped to the
    image) per held-out image, at the four quadrant centres. Returns a dict of arrays."""
    imgs, ws = [], []
    s = cfg.val_patch_size
    for im, w in zip(pool.images, pool.weights):
        h, wd = im.shape[:2]
        side = min(s, h, wd)
        for fy, fx in ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)):
            y = int(np.clip(round(fy * h - side / 2), 0, h - side))
            x = int(np.clip(round(fx * wd - side / 2), 0, wd - side))
            if side == s:
                imgs.append(im[y:y + s, x:x + s])
                ws.append(w[y:y + s, x:x + s])
    if not imgs:
        return None
    return _element(np.stack(imgs), np.stack(ws), cfg.target)


def make_datasets(pool, cfg):
    """(train tf.data.Dataset (infinite, batched), val tf.data.Dataset or None)."""
    train_pool, held_out = split_pool(pool, cfg.val_images)
    c = 1 if cfg.target == "weight" else 3
    p = cfg.patch_size
    sig = {"image": tf.TensorSpec((None, p, p, 3), tf.float32),
           "label": tf.TensorSpec((None, p, p, c), tf.float32),
           "weight": tf.TensorSpec((None, p, p, 1), tf.float32)}
    train = tf.data.Dataset.from_generator(lambda: patch_batches(train_pool, cfg, cfg.seed),
                                           output_signature=sig).prefetch(2)
    val = None
    if len(held_out):
        v = val_patches(held_out, cfg)
        if v is not None:
            val = tf.data.Dataset.from_tensor_slices(v).batch(cfg.batch_size)
    return train, val


# ----------------------------------------------------------------------------- trainer

class DoFTrainer(keras.Model):
    """Wraps a ``DoFNet``; ``train_step`` / ``test_step`` minimise the MSE to the target.

    ``optimizers`` lists the single Adam optimizer (for the loop's checkpoint). The loss is
    divided by the global batch (``tf.nn.compute_average_loss``), so MirroredStrategy gives the
    single-device gradients; metrics are example-weighted means since the last reset.
    """

    def __init__(self, net, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.focus = FocusFromPrediction(net.target, name="focus", dtype="float32")
        self.train_trackers = [keras.metrics.Mean(name="loss"),
                               keras.metrics.Mean(name="focus_mae")]
        self.val_trackers = [keras.metrics.Mean(name="val_loss"),
                             keras.metrics.Mean(name="val_focus_mae")]

    @property
    def optimizers(self):
        return [self.optimizer]

    @property
    def metrics(self):
        return self.train_trackers + self.val_trackers

    def reset_train_metrics(self):
        for m in self.train_trackers:
            m.reset_state()

    def reset_val_metrics(self):
        for m in self.val_trackers:
            m.reset_state()

    def call(self, image, training=False):
        return self.net(image, training=training)

    def _forward(self, data, training):
        pred = tf.cast(self.net(data["image"], training=training), tf.float32)
        per_example = tf.reduce_mean(tf.square(pred - data["label"]), axis=[1, 2, 3])
        return pred, per_example

    def _update(self, trackers, data, pred, per_example):
        focus = self.focus([pred, data["image"]])
        count = tf.cast(tf.shape(per_example)[0], tf.float32)
        mae = tf.reduce_mean(tf.abs(focus - data["weight"]))
        trackers[0].update_state(tf.reduce_mean(per_example), sample_weight=count)
        trackers[1].update_state(mae, sample_weight=count)
        return {"loss": trackers[0].result(), "focus_mae": trackers[1].result()}

    def train_step(self, data):
        variables = self.net.trainable_variables
        with tf.GradientTape() as tape:
            pred, per_example = self._forward(data, training=True)
            loss = tf.nn.compute_average_loss(per_example)
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        return self._update(self.train_trackers, data, pred, per_example)

    def test_step(self, data):
        pred, per_example = self._forward(data, training=False)
        return self._update(self.val_trackers, data, pred, per_example)


def make_trainer(cfg, jit_compile=False, seed=None):
    """A compiled ``DoFTrainer`` for ``cfg`` with its weights and Adam optimizer built (so it is
    MirroredStrategy-safe when called inside ``strategy.scope()``). seed: if given,
    ``keras.utils.set_random_seed(seed)`` first (process-wide; ``build_task`` passes
    ``cfg.seed``). Under the ``mixed_float16`` policy the optimizer is wrapped in a
    LossScaleOptimizer."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    net = DoFNet(width=cfg.width, kernel_sizes=cfg.kernel_sizes, filters=cfg.filters,
                 target=cfg.target, padding=cfg.padding)
    trainer = DoFTrainer(net, name="dofnet_trainer")
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    trainer.compile(optimizer=optimizer, jit_compile=bool(jit_compile), auto_scale_loss=False)
    optimizer.build(net.trainable_variables)
    return trainer


def image_panels_fn(trainer, max_images=3):
    """callable(element) -> {"input | target W_s | prediction": uint8 (N, P, 3P, 3)}."""
    from tf_defocus.visualize import colorize

    def panels(element):
        img = np.asarray(element["image"])[:max_images]
        w = np.asarray(element["weight"])[:max_images, ..., 0]
        pred = np.asarray(trainer.focus([trainer.net(img, training=False), img]))[..., 0]
        rows = [np.concatenate([np.round(im * 255).astype(np.uint8), colorize(a), colorize(b)],
                               axis=1) for im, a, b in zip(img, w, pred)]
        return {"input | target W_s | prediction": np.stack(rows)}
    return panels


def build_task(config, verbose=True):
    """``TrainingTask`` for DoFNet from the train CLI's config (see ``config_from``).

    Call inside the strategy scope; the batch must divide by the number of replicas.
    """
    cfg = config_from(config)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if cfg.batch_size % replicas:
        raise ValueError(f"dof batch_size {cfg.batch_size} must be a multiple of the "
                         f"{replicas} replicas")
    pool = build_pool(cfg, verbose=verbose)
    train, val = make_datasets(pool, cfg)
    trainer = make_trainer(cfg, jit_compile=bool(getattr(config, "jit_compile", False)),
                           seed=cfg.seed)
    return TrainingTask(trainer=trainer, train_dataset=train, val_dataset=val,
                        inference_model=trainer.net.inference_model,
                        image_panels=image_panels_fn(trainer))
