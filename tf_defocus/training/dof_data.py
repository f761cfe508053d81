"""DoFNet training data (KCI 2020 paper): the image pool and its patch batches.

The pool is loaded once: every image of ``image_dir`` (unreadable files are reported by name and
skipped) or ``pool_size`` built-in procedural defocused scenes
(``tf_defocus.data.synthesize.synthesize``, Gaussian PSF, rendered once in parallel and cached
by ``tf_defocus.data.pools.ensure_pool``), with the label of each whole image computed once
by ``tf_defocus.dof.dof_training_target`` (so patches carry no border artefacts of their own).
The last ``val_images`` images of the pool are held out for validation. Training elements are
random patches with random flips / 90-degree rotations (the weight map is isotropic, so labels
stay valid), as dicts

    {"image": (B,P,P,3) float32 RGB [0,1],
     "label": (B,P,P,C) the training target (C = 1 for "weight", 3 for "weighted_image"),
     "weight": (B,P,P,1) the smoothed weight map W_s in [0,1] (for the focus error metric)}.
"""

import dataclasses
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_defocus import dof


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
"""Seed stream of DoFNet's procedural pool (DMENet's pools use 1-12; see data.domains.STREAMS)."""


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
    if cfg.data.dof_image_dir:
        paths = list_images([cfg.data.dof_image_dir])
        if cfg.data.dof_pool_size and len(paths) > cfg.data.dof_pool_size:
            _warn(f"using the first {cfg.data.dof_pool_size} of the {len(paths)} images in "
                  f"{cfg.data.dof_image_dir} (pool_size; 0 = all)")
            paths = paths[:cfg.data.dof_pool_size]
        if verbose:
            log(f"dofnet: loading {len(paths)} images from {cfg.data.dof_image_dir}")
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
            if cfg.data.dof_max_side and max(h, w) > cfg.data.dof_max_side:
                s = cfg.data.dof_max_side / max(h, w)
                rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                 interpolation=cv2.INTER_AREA)
            if min(rgb.shape[:2]) < cfg.data.patch_size:
                skipped.append(str(p))
                _warn(f"skipping {p}: {rgb.shape[1]}x{rgb.shape[0]} px is smaller than the "
                      f"{cfg.data.patch_size} px patch")
                tick(i + 1)
                continue
            u8, w_s = _pool_entry(rgb, cfg.data.dof_mask_size)
            images.append(u8)
            weights.append(w_s)
            names.append(str(p))
            tick(i + 1)
        if not images:
            raise ValueError(f"{cfg.data.dof_image_dir}: none of the {len(paths)} images is usable for "
                             f"DoF training (see the messages above)")
        if skipped:
            _warn(f"{len(skipped)} of {len(paths)} images skipped: {', '.join(skipped)}")
    else:
        # The data engine's cached, parallel pool renderer (the same files as
        # ``python -m tf_defocus.generate --psf=gaussian``), so reruns and resumes reuse it.
        from tf_defocus.data import pools, readers
        from tf_defocus.data.synthesize import DEFAULT_MASK_THRESHOLD_PX
        folder = pools.ensure_pool("gaussian", cfg.data.dof_source_size, cfg.data.dof_source_size,
                                   cfg.data.dof_pool_size, cfg.data.seed, POOL_STREAM,
                                   cache_dir=cfg.data.cache_dir, workers=cfg.data.pool_workers)
        source = readers.syndof(folder, "sigma10")
        if len(source) != cfg.data.dof_pool_size:
            raise ValueError(f"{folder}: procedural pool holds {len(source)} images, expected "
                             f"{cfg.data.dof_pool_size}; delete the folder to render it again")
        if verbose:
            log(f"dofnet: labelling {cfg.data.dof_pool_size} procedural {cfg.data.dof_source_size}x"
                f"{cfg.data.dof_source_size} images from {folder}")
        tick = _progress(cfg.data.dof_pool_size, "images") if verbose else (lambda i: None)
        for i, example in enumerate(source.examples):
            rgb, sigma_px = source.load(example)
            u8, w_s = _pool_entry(rgb, cfg.data.dof_mask_size)
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
    p, b = cfg.data.patch_size, cfg.data.dof_batch_size
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
        yield _element(imgs, ws, cfg.model.dof_target)


def val_patches(pool, cfg):
    """Deterministic validation crops: up to 4 crops of ``val_patch_size`` (clipped to the
    image) per held-out image, at the four quadrant centres. Returns a dict of arrays."""
    imgs, ws = [], []
    s = cfg.data.dof_val_patch_size
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
    return _element(np.stack(imgs), np.stack(ws), cfg.model.dof_target)


def make_datasets(pool, cfg):
    """(train tf.data.Dataset (infinite, batched), val tf.data.Dataset or None)."""
    train_pool, held_out = split_pool(pool, cfg.data.dof_val_images)
    c = 1 if cfg.model.dof_target == "weight" else 3
    p = cfg.data.patch_size
    sig = {"image": tf.TensorSpec((None, p, p, 3), tf.float32),
           "label": tf.TensorSpec((None, p, p, c), tf.float32),
           "weight": tf.TensorSpec((None, p, p, 1), tf.float32)}
    train = tf.data.Dataset.from_generator(lambda: patch_batches(train_pool, cfg, cfg.data.seed),
                                           output_signature=sig).prefetch(2)
    val = None
    if len(held_out):
        v = val_patches(held_out, cfg)
        if v is not None:
            val = tf.data.Dataset.from_tensor_slices(v).batch(cfg.data.dof_batch_size)
    return train, val
