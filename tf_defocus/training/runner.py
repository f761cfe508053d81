"""``train(config)``: run one training job of any task config (``tf_defocus.training.config``).

Writes ``<model_dir>/config.json`` (one line names the settings that changed since the last run
in the same directory), sets the dtype policy, builds the task inside the distribution strategy
and runs the one training loop (resume, checkpoints, TensorBoard, inference model). With
``--strategy=multi_worker`` every worker runs it: the chief writes ``model_dir``, the others a
private directory (``training.cluster``); docs/MULTI_WORKER.md.
"""

import contextlib
import dataclasses
from pathlib import Path

from tf_defocus import config as cfglib
from tf_defocus.training import cluster
from tf_defocus.training import config as tcfg


def setup_devices(runtime):
    """The ``tf.distribute`` strategy of a ``RuntimeConfig`` (logical CPUs split first;
    multi_worker: before any other TensorFlow op of the process)."""
    import tensorflow as tf

    if runtime.strategy == "multi_worker":
        from tf_defocus.training import distribute
        return distribute.multi_worker_strategy(
            runtime.collective_implementation, runtime.collective_bytes_per_pack,
            runtime.collective_timeout)
    if runtime.num_cpu_devices > 1:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * runtime.num_cpu_devices)
    if runtime.strategy == "mirrored":
        devices = None
        if runtime.num_cpu_devices > 1 and not tf.config.list_physical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def write_config(config, log=print):
    """Write ``<model_dir>/config.json``; report what changed since an earlier one."""
    from tf_defocus.imageio import write_text

    path = Path(config.checkpointing.model_dir) / "config.json"
    if path.is_file():
        tcfg.report_changes(path.read_text(), config, log=lambda m: log(m, flush=True))
    write_text(path, tcfg.to_json(config) + "\n")


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' process-wide dtype policy set to ``name`` for the block, then restored: the one
    place tf_defocus sets it (the run's policy; float32 inference copies)."""
    import keras

    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


def build_task(config):
    """The ``TrainingTask`` of ``config`` (call inside the strategy scope)."""
    if isinstance(config, tcfg.DMENetConfig):
        from tf_defocus.training import dmenet_task
        return dmenet_task.build_task(config)
    from tf_defocus.training import dof_task
    return dof_task.build_task(config)


def check_runnable(config):
    """ValueError unless ``config`` can start: model_dir set, input files and folders exist,
    multi_worker: a well-formed ``TF_CONFIG`` (``cluster.TFConfigError``)."""
    if not config.checkpointing.model_dir:
        raise ValueError("--model_dir is required")
    cfglib.validate(config, paths=True)
    if config.runtime.strategy == "multi_worker":
        cluster.role_from_environ()


def train(config):
    """Run the training job ``config`` (a ``DMENetConfig`` or ``DoFNetConfig`` with
    ``model_dir`` set); returns the loop's ``TrainingResult``."""
    from tf_defocus.training.loop import run_training

    check_runnable(config)
    role = cluster.role_from_environ() if config.runtime.strategy == "multi_worker" else None
    Path(config.checkpointing.model_dir).mkdir(parents=True, exist_ok=True)
    strategy = setup_devices(config.runtime)
    if role is None or role.is_chief:
        write_config(config)
    s, c, o = config.schedule, config.checkpointing, config.optimizer
    with dtype_policy(config.runtime.dtype_policy):
        with strategy.scope():
            task = build_task(config)
        if config.runtime.run_eagerly:
            task.trainer.run_eagerly = True
        with cluster.write_dir(c.model_dir, role) as write_dir:
            result = run_training(
                task, c.model_dir, s.train_steps, checkpoint_every=c.checkpoint_every,
                log_every=s.log_every, image_every=s.image_every, val_every=s.val_every,
                learning_rate=o.learning_rate, lr_decay_steps=o.lr_decay_steps,
                lr_decay_rate=o.lr_decay_rate, cycle_steps=s.cycle_steps,
                max_to_keep=c.max_to_keep,
                verbose=1 if s.progress else 0, write_dir=write_dir)
    if role is None:
        return result
    _report_worker(role, task.trainer)
    # The model of the run is the chief's (a non-chief wrote a removed copy).
    return dataclasses.replace(result, model_path=Path(c.model_dir) / result.model_path.name)


def _report_worker(role, trainer):
    """One line per worker; equal digests across the workers' logs = identical state."""
    from tf_defocus.training import distribute

    print(f"{role.name} of {role.num_workers} workers: weights and optimizer state sha256 "
          f"{distribute.state_digest(trainer)}", flush=True)
