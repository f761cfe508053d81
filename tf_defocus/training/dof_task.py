"""DoFNet training task (KCI 2020 paper) for ``tf_defocus.train --task=dofnet``.

Data (``training.dof_data``): patches of a pool of images loaded once, each whole image's label
computed once by ``tf_defocus.dof.dof_training_target``; elements are dicts ``{"image",
"label", "weight"}`` (the training target and the smoothed weight map W_s). TensorBoard panels:
``training.panels``.

Objective: MSE between the network output and ``label`` (the paper's objective). Reported
metrics: ``loss`` (that MSE) and ``focus_mae`` (mean |recovered focus - W_s|, comparable
between the two targets).
"""

import keras
import tensorflow as tf

from tf_defocus.models.dofnet import DoFNet, FocusFromPrediction
from tf_defocus.training.dof_data import (POOL_STREAM, Pool, build_pool, make_datasets,
                                          patch_batches, split_pool, val_patches)
from tf_defocus.training.panels import dof_panels_fn
from tf_defocus.training.task import TrainingTask

__all__ = [
    "DoFTrainer", "build_task", "make_trainer",
    # Re-exported from training.dof_data (importable from here as before the split):
    "POOL_STREAM", "Pool", "build_pool", "make_datasets", "patch_batches", "split_pool",
    "val_patches",
]


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
    ``cfg.data.seed``). Under the ``mixed_float16`` policy the optimizer is wrapped in a
    LossScaleOptimizer."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    net = DoFNet(width=cfg.model.width, kernel_sizes=cfg.model.dof_kernel_sizes, filters=cfg.model.dof_filters,
                 target=cfg.model.dof_target, padding=cfg.model.dof_padding)
    trainer = DoFTrainer(net, name="dofnet_trainer")
    optimizer = keras.optimizers.Adam(learning_rate=cfg.optimizer.learning_rate,
                                      beta_1=cfg.optimizer.adam_beta1)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    trainer.compile(optimizer=optimizer, jit_compile=bool(jit_compile), auto_scale_loss=False)
    optimizer.build(net.trainable_variables)
    return trainer


def build_task(cfg, verbose=True):
    """``TrainingTask`` for DoFNet from a ``tf_defocus.training.config.DoFNetConfig``.

    Call inside the strategy scope; the batch must divide by the number of replicas.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if cfg.data.dof_batch_size % replicas:
        raise ValueError(f"--dof_batch_size={cfg.data.dof_batch_size} must be a multiple of the "
                         f"{replicas} replicas")
    pool = build_pool(cfg, verbose=verbose)
    train, val = make_datasets(pool, cfg)
    trainer = make_trainer(cfg, jit_compile=cfg.runtime.jit_compile, seed=cfg.data.seed)
    return TrainingTask(trainer=trainer, train_dataset=train, val_dataset=val,
                        inference_model=trainer.net.inference_model,
                        image_panels=dof_panels_fn(trainer))
