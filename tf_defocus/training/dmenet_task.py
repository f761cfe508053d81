"""The DMENet ``TrainingTask``: networks, trainer, data pipelines and TensorBoard panels.

``build_task(config)`` must run inside the ``tf.distribute`` strategy scope (and after the
mixed-precision policy is set); ``config`` is the train CLI's frozen config or any object with
the attributes of :class:`DMENetTaskConfig` (missing ones keep its defaults).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_defocus.data import pipeline
from tf_defocus.data.synthesize import DEFAULT_MASK_THRESHOLD_PX
from tf_defocus.models import BlurEstimator, ContentLoss, DomainDiscriminator, SharpnessCalibrator
from tf_defocus.training.dmenet_trainer import DMENetTrainer, LossWeights, resolve_variant
from tf_defocus.training.task import TrainingTask
from tf_defocus.units import SIGMA_MAX_PX
from tf_defocus.visualize import colorize


@dataclasses.dataclass(frozen=True)
class DMENetTaskConfig:
    """Settings of the DMENet task (sizes in px). Defaults: the authors' (github.com/codeslake/DMENet config.py).

    Model: width (channel multiplier), vgg_weights (local Keras VGG19 notop .h5 or None),
    variant (B | BD | BDC | BDSC_noaux | BDSC) with optional per-module overrides
    use_discriminator / use_calibrator / use_content / use_aux (None = from the variant).
    Losses: aux_weight, content_weight, calibration_weight, adversarial_weight.
    Training: learning_rate (Adam, beta1 0.9; both optimizers), pretrain_steps, jit_compile, seed.
    Data: see ``tf_defocus.data.pipeline.PipelineConfig`` (dirs None = built-in procedural).
    Validation: val_synthetic_dir / val_mask_dir (None = procedural), val_num_images
    procedural images of val_image_size (W, H) per set (0 = no procedural validation).
    """
    width: float = 1.0
    vgg_weights: str | None = None
    variant: str = "BDSC"
    use_discriminator: bool | None = None
    use_calibrator: bool | None = None
    use_content: bool | None = None
    use_aux: bool | None = None
    aux_weight: float = LossWeights.aux
    content_weight: float = LossWeights.content
    calibration_weight: float = LossWeights.calibration
    adversarial_weight: float = LossWeights.adversarial
    learning_rate: float = 1e-4
    pretrain_steps: int = 0
    jit_compile: bool = False
    seed: int = 0
    patch_size: int = 240
    batch_synthetic: int = 3
    batch_real_mask: int = 3
    batch_real_unlabelled: int = 3
    synthetic_dir: str | None = None
    synthetic_tfrecords: str | None = None
    syndof_label_convention: str = "sigma10"
    real_mask_dir: str | None = None
    real_mask_layout: str = "cuhk"
    real_mask_blurred_value: int | None = None
    unlabelled_dir: str | None = None
    pool_size: int = 32
    pool_width: int = 640
    pool_height: int = 480
    pool_workers: int = 0
    pool_scene: str = "dead_leaves"
    pool_isp: str = "basic"
    synthetic_psf: str = "gaussian"
    unlabelled_photos: bool = False
    cache_dir: str | None = None
    min_short_side: int = 0
    max_short_side: int = 800
    scale_mode: str = "clamp"
    deterministic: bool = False
    skip_bad: bool = False
    val_synthetic_dir: str | None = None
    val_mask_dir: str | None = None
    val_mask_layout: str = "cuhk"
    val_mask_blurred_value: int | None = None
    val_num_images: int = 8
    val_image_size: tuple = (320, 240)

    @classmethod
    def from_any(cls, config):
        """Take every field that ``config`` has (and is not None for defaulted settings)."""
        if isinstance(config, cls):
            return config
        values = {}
        for f in dataclasses.fields(cls):
            if not hasattr(config, f.name):
                continue
            v = getattr(config, f.name)
            if v is None and f.default is not None:
                continue   # CLI "unset" -> this task's default
            values[f.name] = v
        if "val_image_size" in values:
            values["val_image_size"] = tuple(int(s) for s in values["val_image_size"])
        return cls(**values)

    @property
    def variant_spec(self):
        return resolve_variant(self.variant, discriminator=self.use_discriminator,
                               calibrator=self.use_calibrator, content=self.use_content,
                               aux=self.use_aux)

    @property
    def loss_weights(self):
        return LossWeights(aux=self.aux_weight, content=self.content_weight,
                           calibration=self.calibration_weight,
                           adversarial=self.adversarial_weight)

    def pipeline_config(self):
        def dirs(d):
            return () if not d else (d,)
        return pipeline.PipelineConfig(
            patch_size=self.patch_size, batch_synthetic=self.batch_synthetic,
            batch_real_mask=self.batch_real_mask,
            batch_real_unlabelled=self.batch_real_unlabelled,
            min_short_side=self.min_short_side, max_short_side=self.max_short_side,
            scale_mode=self.scale_mode, synthetic_dirs=dirs(self.synthetic_dir),
            synthetic_tfrecords=dirs(self.synthetic_tfrecords),
            synthetic_label_convention=self.syndof_label_convention,
            real_mask_dirs=dirs(self.real_mask_dir), real_mask_layout=self.real_mask_layout,
            real_mask_blurred_value=self.real_mask_blurred_value,
            real_unlabelled_dirs=dirs(self.unlabelled_dir), pool_size=self.pool_size,
            pool_width=self.pool_width, pool_height=self.pool_height,
            pool_workers=self.pool_workers, pool_scene=self.pool_scene, pool_isp=self.pool_isp,
            synthetic_psf=self.synthetic_psf, unlabelled_photos=self.unlabelled_photos,
            cache_dir=self.cache_dir, seed=self.seed,
            deterministic=self.deterministic, skip_bad=self.skip_bad)


def needed_domains(variant):
    """Domains a variant's joint step reads (B alone needs only synthetic batches)."""
    domains = ["synthetic"]
    if variant.discriminator or variant.calibrator:
        domains.append("real_mask")
    if variant.discriminator:
        domains.append("real_unlabelled")
    return tuple(domains)


def check_batches_divide(cfg, replicas):
    """Each domain batch must split evenly over the replicas (exact global-batch scaling)."""
    for name in ("batch_synthetic", "batch_real_mask", "batch_real_unlabelled"):
        b = int(getattr(cfg, name))
        if b % replicas:
            raise ValueError(f"--{name}={b} is not divisible by the {replicas} replicas of the "
                             f"distribution strategy; use a multiple of {replicas}")


def make_train_dataset(cfg, variant):
    """Infinite zipped dataset with one batch of every domain the variant needs."""
    pcfg = cfg.pipeline_config()
    parts = {d: pipeline.make_domain_dataset(pcfg, d) for d in needed_domains(variant)}
    ds = tf.data.Dataset.zip(parts).prefetch(tf.data.AUTOTUNE)
    opts = tf.data.Options()
    opts.deterministic = bool(cfg.deterministic)
    return ds.with_options(opts)


def make_val_datasets(cfg, variant):
    """dict name -> finite dataset: "synthetic" (MSE/MAE) and "real_mask" (accuracy/AUC)."""
    out = {}
    common = dict(num_images=cfg.val_num_images, image_size=cfg.val_image_size,
                  cache_dir=cfg.cache_dir, workers=cfg.pool_workers, skip_bad=cfg.skip_bad)
    if cfg.val_synthetic_dir or cfg.val_num_images > 0:
        out["synthetic"] = pipeline.make_synthetic_eval_dataset(
            cfg.val_synthetic_dir, label_convention=cfg.syndof_label_convention, **common)
    if cfg.val_mask_dir or cfg.val_num_images > 0:
        out["real_mask"] = pipeline.make_mask_eval_dataset(
            cfg.val_mask_dir, layout=cfg.val_mask_layout,
            blurred_value=cfg.val_mask_blurred_value, **common)
    return out or None


def build_trainer(cfg, seed=None):
    """Networks + compiled ``DMENetTrainer`` (optimizers built). Call inside strategy.scope().

    seed: if given, ``keras.utils.set_random_seed(seed)`` first -- process-wide (Python, NumPy
    and TF global RNGs), so the initial weights follow it; ``build_task`` passes ``cfg.seed``.
    None leaves the global RNGs alone."""
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    variant = cfg.variant_spec
    blur = BlurEstimator(width=cfg.width, vgg_weights=cfg.vgg_weights)
    disc = DomainDiscriminator(width=cfg.width) if variant.discriminator else None
    calib = SharpnessCalibrator(width=cfg.width) if variant.calibrator else None
    content = ContentLoss(vgg_weights=cfg.vgg_weights, width=cfg.width) if variant.content else None
    trainer = DMENetTrainer(
        blur, disc, calib, content, weights=cfg.loss_weights, use_aux=variant.aux,
        pretrain_steps=cfg.pretrain_steps,
        mask_threshold=DEFAULT_MASK_THRESHOLD_PX / SIGMA_MAX_PX)
    adam = lambda name: keras.optimizers.Adam(cfg.learning_rate, beta_1=0.9, name=name)
    trainer.compile(b_optimizer=adam("b_adam"),
                    d_optimizer=adam("d_adam") if disc is not None else None,
                    jit_compile=cfg.jit_compile)
    return trainer


def float32_inference_model(blur_estimator):
    """A float32 copy of B's inference model (``blur_estimator``), independent of the
    training strategy and mixed-precision policy."""
    policy = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("float32")
        clone = BlurEstimator(width=blur_estimator.width)
        clone.set_weights([np.asarray(w) for w in blur_estimator.get_weights()])
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return clone.inference_model()


def _to_u8(image):
    return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def image_panels_fn(trainer, max_images=3):
    """callable(element) -> uint8 panels (N, P, 3P, 3): input | ground truth | prediction.

    Maps are drawn as focus (1 - sigma/7; red = sharp, blue = blurred); real masks as
    1 - mask, predictions on real images as 1 - blur score.
    """
    def row(images, truth_focus, pred_focus):
        return np.stack([np.concatenate([_to_u8(im), colorize(t), colorize(p)], axis=1)
                         for im, t, p in zip(images, truth_focus, pred_focus)])

    def panels(element):
        out = {}
        syn = element["synthetic"]
        img = np.asarray(syn["image"])[:max_images]
        pred = np.asarray(trainer.blur_estimator(img, training=False)["defocus"])[..., 0]
        truth = np.asarray(syn["sigma_norm"])[:max_images, ..., 0]
        out["synthetic: input | ground truth | prediction"] = row(img, 1 - truth, 1 - pred)
        if "real_mask" in element:
            rm = element["real_mask"]
            img = np.asarray(rm["image"])[:max_images]
            score = np.asarray(trainer.blur_score(img))[..., 0]
            mask = np.asarray(rm["mask"])[:max_images, ..., 0]
            out["real_mask: input | mask | blur score"] = row(img, 1 - mask, 1 - score)
        return out
    return panels


def build_task(config, *, with_validation=True):
    """``TrainingTask`` for DMENet from ``config`` (see ``DMENetTaskConfig.from_any``)."""
    cfg = DMENetTaskConfig.from_any(config)
    strategy = tf.distribute.get_strategy()
    check_batches_divide(cfg, strategy.num_replicas_in_sync)
    variant = cfg.variant_spec
    trainer = build_trainer(cfg, seed=cfg.seed)
    train = make_train_dataset(cfg, variant)
    val = make_val_datasets(cfg, variant) if with_validation else None
    return TrainingTask(trainer=trainer, train_dataset=train, val_dataset=val,
                        inference_model=lambda: float32_inference_model(trainer.blur_estimator),
                        image_panels=image_panels_fn(trainer))
