"""The contract between the train CLI and a trainable task (DMENet or DoFNet).

A task factory turns a frozen config into a ``TrainingTask``; the one training loop
(``tf_defocus.training.loop.run_training``) then runs any task the same way: checkpoints over
the trainer and every optimizer, resume, NaN stop, TensorBoard, inference-model export.
"""

import dataclasses
from typing import Callable, Optional



@dataclasses.dataclass
class TrainingTask:
    """Everything the loop needs.

    trainer: compiled ``keras.Model`` with custom ``train_step`` / ``test_step``; it exposes
      ``optimizers`` (list of every optimizer it steps) so the checkpoint covers all of them.
    train_dataset: infinite ``tf.data.Dataset`` of training elements (global batches, split
      over the replicas), or callable(``tf.distribute.InputContext``) -> the infinite dataset of
      one input pipeline (worker): its own shard, in per-replica batches
      (``strategy.distribute_datasets_from_function``).
    val_dataset: finite ``tf.data.Dataset`` for ``test_step`` or None.
    inference_model: callable returning the inference ``keras.Model`` (name ``blur_estimator``
      or ``dofnet``) that shares the trainer's weights; the loop saves it as
      ``<model_dir>/<name>.keras``.
    image_panels: optional callable(element) -> dict name -> uint8 (N, H, W', 3) images for
      TensorBoard (e.g. input | ground truth | prediction, colour-mapped).
    train_dataset_from: optional callable(batch) -> ``train_dataset`` starting at that batch of
      its stream, built without computing the batches before it (``train_dataset_at``).
    """
    trainer: object
    train_dataset: object
    val_dataset: Optional[object]
    inference_model: Callable[[], object]
    image_panels: Optional[Callable[[object], dict]] = None
    train_dataset_from: Optional[Callable[[int], object]] = None

    def train_dataset_at(self, batch):
        """``train_dataset`` positioned at global batch (step) ``batch`` of its stream, where a
        resumed run goes on:
        ``train_dataset_from(batch)``, or else ``Dataset.skip`` (which computes every skipped
        batch)."""
        if not batch:
            return self.train_dataset
        if self.train_dataset_from is not None:
            return self.train_dataset_from(batch)
        if callable(self.train_dataset):
            return lambda input_context: self.train_dataset(input_context).skip(
                batch * replicas_per_pipeline(input_context))
        return self.train_dataset.skip(batch)


def replicas_per_pipeline(input_context):
    """Per-replica batches one input pipeline gives for each global step."""
    return input_context.num_replicas_in_sync // input_context.num_input_pipelines
