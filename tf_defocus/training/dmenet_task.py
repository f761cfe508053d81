"""The DMENet ``TrainingTask``: networks, trainer, data pipelines and TensorBoard panels
(``training.panels``).

``build_task(config)`` must run inside the ``tf.distribute`` strategy scope (and after the
mixed-precision policy is set); ``config`` is a ``tf_defocus.training.config.DMENetConfig``.
"""

import functools
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_defocus.data import evalsets, pipeline
from tf_defocus.data.domains import dataset_options
from tf_defocus.data.synthesize import DEFAULT_MASK_THRESHOLD_PX
from tf_defocus.models import (BlurEstimator, ContentLoss, DomainDiscriminator, SharpnessCalibrator,
                               TwoScaleBlurEstimator, copy_weights_by_name)
from tf_defocus.training import distribute
from tf_defocus.training.dmenet_trainer import DMENetTrainer
from tf_defocus.training.loop import CHECKPOINT_SUBDIR
from tf_defocus.training.panels import dmenet_panels_fn
from tf_defocus.training.runner import dtype_policy
from tf_defocus.training.task import TrainingTask, replicas_per_pipeline
from tf_defocus.units import SIGMA_MAX_PX


def needed_domains(variant):
    """Domains a variant's joint step reads (B alone needs only synthetic batches)."""
    domains = ["synthetic"]
    if variant.discriminator or variant.calibrator:
        domains.append("real_mask")
    if variant.discriminator:
        domains.append("real_unlabelled")
    return tuple(domains)


def check_batches_divide(data, variant, replicas):
    """Each domain batch of ``data`` (``DataConfig``) the variant uses must split evenly over
    the replicas (exact global-batch scaling)."""
    for name in (f"batch_{domain}" for domain in needed_domains(variant)):
        b = int(getattr(data, name))
        if b % replicas:
            raise ValueError(f"--{name}={b} is not divisible by the {replicas} replicas of the "
                             f"distribution strategy; use a multiple of {replicas}")


def make_train_dataset(data, variant, input_context=None, start_batch=0):
    """Infinite zipped dataset with one batch of every domain the variant needs.

    input_context: ``tf.distribute.InputContext`` of one input pipeline (worker): batches of
    one replica's share of each domain batch, from this pipeline's input shard.
    start_batch: first global batch (step) of the stream (a resumed run's position in its cycle).
    """
    if input_context is None:
        parts = {d: pipeline.make_domain_dataset(data, d, start_batch=start_batch)
                 for d in needed_domains(variant)}
    else:
        shard = (input_context.input_pipeline_id, input_context.num_input_pipelines)
        parts = {d: pipeline.make_domain_dataset(
                     data, d, input_context.get_per_replica_batch_size(data.batch_size(d)), shard,
                     start_batch * replicas_per_pipeline(input_context))
                 for d in needed_domains(variant)}
    ds = tf.data.Dataset.zip(parts).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(dataset_options(data.deterministic))


def make_val_datasets(cfg):
    """dict name -> finite dataset: "synthetic" (MSE/MAE) and "real_mask" (accuracy/AUC)."""
    out = {}
    v, data = cfg.validation, cfg.data
    common = dict(num_images=v.val_num_images, image_size=v.val_image_size,
                  cache_dir=data.cache_dir, workers=data.pool_workers, skip_bad=data.skip_bad)
    if v.val_synthetic_dir or v.val_num_images > 0:
        out["synthetic"] = evalsets.make_synthetic_eval_dataset(
            v.val_synthetic_dir, label_convention=data.syndof_label_convention, **common)
    if v.val_mask_dir or v.val_num_images > 0:
        out["real_mask"] = evalsets.make_mask_eval_dataset(
            v.val_mask_dir, layout=v.val_mask_layout,
            blurred_value=v.val_mask_blurred_value, **common)
    return out or None


def build_trainer(cfg, seed=None):
    """Networks + compiled ``DMENetTrainer`` (optimizers built). Call inside strategy.scope().

    seed: if given, ``keras.utils.set_random_seed(seed)`` first -- process-wide (Python, NumPy
    and TF global RNGs), so the initial weights follow it; ``build_task`` passes ``cfg.data.seed``.
    None leaves the global RNGs alone. ``cfg``: ``DMENetConfig``."""
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    m = cfg.model
    variant = m.variant_spec
    step_head = cfg.losses.step_bounds_weight > 0
    if m.scales > 1:
        blur = TwoScaleBlurEstimator(width=m.width, norm=m.norm, scales=m.scales, cues=m.cues,
                                     step_head=step_head)
    else:
        blur = BlurEstimator(width=m.width, norm=m.norm, cues=m.cues, vgg_weights=m.vgg_weights,
                             step_head=step_head)
    if m.init_checkpoint:
        init_blur_estimator(blur, m.init_checkpoint)
    disc = DomainDiscriminator(width=m.width) if variant.discriminator else None
    calib = SharpnessCalibrator(width=m.width) if variant.calibrator else None
    if distribute.use_sync_batch_norm(cfg.runtime.sync_batch_norm, tf.distribute.get_strategy()):
        distribute.synchronize_batch_norm(blur, disc, calib)
    content = ContentLoss(vgg_weights=m.vgg_weights, width=m.width) if variant.content else None
    trainer = DMENetTrainer(
        blur, disc, calib, content, weights=cfg.losses.weights, use_aux=variant.aux,
        pretrain_steps=cfg.schedule.pretrain_steps,
        freeze_norm_step=cfg.schedule.freeze_norm_step,
        pixel_loss_step=cfg.losses.pixel_loss_step,
        mask_threshold=DEFAULT_MASK_THRESHOLD_PX / SIGMA_MAX_PX)
    opt = cfg.optimizer
    adam = lambda name: keras.optimizers.Adam(opt.learning_rate, beta_1=opt.adam_beta1, name=name)
    trainer.compile(b_optimizer=adam("b_adam"),
                    d_optimizer=adam("d_adam") if disc is not None else None,
                    jit_compile=cfg.runtime.jit_compile)
    return trainer


def init_blur_estimator(blur, run_dir, log=print):
    """Copy B's weights (every layer, auxiliary heads included) from the latest checkpoint of
    the training run ``run_dir`` (its model_dir or its checkpoints/ folder) into ``blur`` (a
    ``BlurEstimator`` of the same width and norm, or a ``TwoScaleBlurEstimator``; the run's B
    may be one- or two-scale). A depth-step head (``step_head``) missing from the run's B
    keeps its initial weights."""
    path = (tf.train.latest_checkpoint(str(Path(run_dir) / CHECKPOINT_SUBDIR))
            or tf.train.latest_checkpoint(str(run_dir)))
    if path is None:
        raise FileNotFoundError(f"--init_checkpoint: no checkpoint in {run_dir}")
    errors = []
    # A one-scale B matches part of a two-scale one; a B without cues starts a B with them
    # (their input weights zero: it computes what the run's B did, then learns the cues).
    for cues in dict.fromkeys((blur.cues, False)):
        for make in (TwoScaleBlurEstimator, BlurEstimator):
            source = make(width=blur.width, norm=blur.norm, cues=cues)
            try:
                tf.train.Checkpoint(trainer=tf.train.Checkpoint(blur_estimator=source)).restore(
                    path).expect_partial().assert_existing_objects_matched()
                break
            except (AssertionError, ValueError) as e:
                errors.append(f"{make.__name__}(cues={cues}): {e}")
        else:
            continue
        break
    else:
        raise ValueError(f"--init_checkpoint {path}: not a one- or two-scale B of width "
                         f"{blur.width}, norm {blur.norm!r} ({'; '.join(errors)})")
    copy_weights_by_name(source, blur, widen_inputs=cues != blur.cues)
    log(f"B initialised from {path}" + (" (cue inputs zero)" if cues != blur.cues else ""))


def float32_inference_model(blur_estimator, fill_smooth=False, fill_method="pull_push"):
    """A float32 copy of B's inference model (``blur_estimator``), independent of the
    training strategy and mixed-precision policy; ``fill_smooth``, ``fill_method``: see
    ``BlurEstimator.inference_model`` (the train CLI sets them from --smooth_weight < 1 and
    --fill_method)."""
    with dtype_policy("float32"):
        clone = type(blur_estimator)(**{a: getattr(blur_estimator, a)
                                        for a in blur_estimator.ARCH_ARGS})
        clone.set_weights([np.asarray(w) for w in blur_estimator.get_weights()])
    return clone.inference_model(fill_smooth=fill_smooth, fill_method=fill_method)


def build_task(cfg, *, with_validation=True):
    """``TrainingTask`` for DMENet from a ``DMENetConfig``."""
    strategy = tf.distribute.get_strategy()
    variant = cfg.model.variant_spec
    check_batches_divide(cfg.data, variant, strategy.num_replicas_in_sync)
    trainer = build_trainer(cfg, seed=cfg.data.seed)
    train = functools.partial(make_train_dataset, cfg.data, variant)   # per input pipeline
    val = make_val_datasets(cfg) if with_validation else None
    return TrainingTask(trainer=trainer, train_dataset=train, val_dataset=val,
                        inference_model=lambda: float32_inference_model(
                            trainer.blur_estimator, fill_smooth=cfg.losses.fills_smooth,
                            fill_method=cfg.losses.fill_method),
                        image_panels=dmenet_panels_fn(trainer),
                        train_dataset_from=lambda batch: functools.partial(
                            make_train_dataset, cfg.data, variant, start_batch=batch))
