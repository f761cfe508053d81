"""The one training loop for every ``TrainingTask`` (DMENet, DoFNet).

``run_training`` drives ``trainer.train_step`` step by step (through
``distribute.step_function``, so ``tf.distribute`` -- one device, mirrored or multi-worker --
and ``jit_compile`` work as in ``fit``) and adds what long runs need:

* ``tf.train.Checkpoint`` + ``CheckpointManager`` over the trainer (all its networks and
  metrics), every optimizer and the step counter, saved every ``checkpoint_every`` steps, on
  Ctrl-C and at the end; ``train_steps`` is the total, so rerunning the same command after a
  kill resumes from the last checkpoint ("resuming from step N") and stops at the total
  (the input stream goes on at the resumed step's batch of its cycle, ``TrainingTask.train_dataset_at``,
  so it does not replay the batches the run has already trained on);
* a non-finite loss, or non-finite weights / optimizer slots after a step (checked after every
  step and again before every save, so a finite loss with poisoned weights is caught too), stop
  training with :class:`NonFiniteLossError`; non-finite state is never saved, the last good
  checkpoint stays the latest;
* leftovers of a run killed while saving (``checkpoints/ckpt-N_temp/``, temporary files of the
  atomic writes) are removed at the start;
* TensorBoard under ``<model_dir>/logs`` (``train/``: one scalar per loss term, learning rate,
  steps/s, image panels; ``val/``: validation metrics);
* a ``keras.utils.Progbar`` with ETA when stdout is a terminal; otherwise (redirected to a file
  or pipe) one plain log line per ``log_every`` steps;
* warm restarts (``cycle_steps``): the schedule (learning-rate decay, the trainer's phases)
  repeats every ``cycle_steps`` steps; at each restart every optimizer's state is reset and the
  input stream starts over from its seed, so one run of K cycles computes what K chained runs
  (each warm-started from the last one's weights with a new optimizer) compute;
* at the end the inference model ``<model_dir>/<name>.keras`` (written atomically) plus its
  ``ModelInfo`` sidecar;
* multi-worker: every worker runs the same loop (checkpoint saves run collective ops), the
  chief writes ``model_dir`` and the others a private ``write_dir``; all resume from
  ``model_dir``'s last checkpoint (``training.cluster``).

Optional trainer hooks (duck-typed): ``phase_for_step(step) -> str`` and ``set_phase(phase)``
(the loop retraces the train function when the phase changes, e.g. DMENet's MSE-only
pre-training), ``reset_train_metrics()`` / ``reset_val_metrics()`` (otherwise every
``trainer.metrics`` is reset after each log line and around validation).
"""

import contextlib
import dataclasses
import math
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

import tf_defocus
from tf_defocus.artifacts import FORM_KERAS, MODEL_NAME_TO_KIND, model_info, write_info
from tf_defocus.imageio import atomic_path
from tf_defocus.models.layers import suggested_tile_size
from tf_defocus.training import distribute

CHECKPOINT_SUBDIR = "checkpoints"
LOG_SUBDIR = "logs"
# What a run killed mid-write leaves behind: TF's sharded checkpoint staging directory
# (``ckpt-N_temp/``, merged into ``ckpt-N.*`` and removed when a save completes) and
# ``imageio.atomic_path`` temporaries of the model, its sidecar and config.json.
_CHECKPOINT_TEMP = re.compile(r"^ckpt-\d+_temp$")
_ATOMIC_TEMP = re.compile(r"^\.(config|blur_estimator|dofnet)(\.keras)?\.[a-z0-9_]{8}"
                          r"\.tmp\.(json|keras)$")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss, or NaN/Inf weights or optimizer state (then
    ``bad_variables`` names them); ``last_checkpoint`` is the last good state (or None)."""

    def __init__(self, step, logs, last_checkpoint, bad_variables=()):
        self.step = step
        self.logs = dict(logs)
        self.last_checkpoint = last_checkpoint
        self.bad_variables = tuple(bad_variables)
        bad = sorted(k for k, v in self.logs.items() if not math.isfinite(v))
        where = (f"the last good checkpoint is {last_checkpoint}" if last_checkpoint
                 else "no checkpoint was written yet")
        if bad:
            values = ", ".join(f"{k}={self.logs[k]}" for k in bad)
            what = f"non-finite loss at step {step} ({values})"
        else:
            shown = ", ".join(self.bad_variables[:3])
            more = len(self.bad_variables) - 3
            what = (f"non-finite weights or optimizer state after step {step} (the loss was "
                    f"finite; {len(self.bad_variables)} variables, e.g. {shown}"
                    + (f" and {more} more" if more > 0 else "") + ")")
        super().__init__(
            f"{what}; training stopped and nothing was saved for this step; {where}. Lower the "
            f"learning rate or check the data, then rerun to resume from that checkpoint.")


class _FiniteState:
    """Finds NaN/Inf in every floating variable that a checkpoint saves (the trainer's weights,
    every optimizer's slots); one compiled reduction per call, retraced only when the set of
    variables changes (optimizer slots are created lazily)."""

    def __init__(self, trainer, optimizers):
        self._trainer = trainer
        self._optimizers = optimizers
        self._key = None
        self._fn = None
        self._variables = []

    def _collect(self):
        seen, out = set(), []
        for v in list(self._trainer.weights) + [v for o in self._optimizers for v in o.variables]:
            if id(v) in seen or not tf.as_dtype(v.dtype).is_floating:
                continue
            seen.add(id(v))
            out.append(v)
        return out

    def bad_variables(self):
        """Names of the variables holding NaN or Inf (empty when all are finite)."""
        variables = self._collect()
        key = tuple(id(v) for v in variables)
        if key != self._key:
            captured = list(variables)

            @tf.function(autograph=False)
            def finite():
                return tf.stack([tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v)))
                                 for v in captured])

            self._key, self._fn, self._variables = key, finite, captured
        if not self._variables:
            return []
        ok = self._fn().numpy()
        return [getattr(v, "path", None) or v.name for v, good in zip(self._variables, ok)
                if not good]


@dataclasses.dataclass
class TrainingResult:
    """What ``run_training`` did. step: final step; logs: last training metrics (floats)."""
    step: int
    start_step: int
    logs: dict
    val_logs: dict
    model_path: Path | None
    checkpoint: str | None
    seconds: float


def learning_rate_at(step, learning_rate, decay_steps=0, decay_rate=1.0):
    """Staircase decay: ``learning_rate * decay_rate ** floor(step / decay_steps)``."""
    if not decay_steps or decay_steps <= 0:
        return float(learning_rate)
    return float(learning_rate) * float(decay_rate) ** (int(step) // int(decay_steps))


def schedule_step(step, cycle_steps=0):
    """Position of global ``step`` in a schedule repeated every ``cycle_steps`` (0 = never)."""
    return int(step) % int(cycle_steps) if cycle_steps else int(step)


def reset_optimizer_state(optimizer):
    """Give ``optimizer`` the state of a new one: its step counter and slots (Adam's moments)
    set to zero; the learning rate (and a LossScaleOptimizer's loss scale) are kept."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    for v in inner.variables:
        if v.path.rsplit("/", 1)[-1] != "learning_rate":
            v.assign(tf.zeros(v.shape, v.dtype))


def default_model_info(model):
    """``ModelInfo`` for an inference model named ``blur_estimator`` or ``dofnet``; a DMENet's
    suggests the tile of its width (``models.layers.suggested_tile_size``)."""
    kind = MODEL_NAME_TO_KIND.get(model.name)
    if kind is None:
        raise ValueError(f"inference model name {model.name!r} is not one of "
                         f"{sorted(MODEL_NAME_TO_KIND)}")
    return model_info(kind, FORM_KERAS, source_model="tf_defocus.train",
                      tf_defocus_version=tf_defocus.__version__,
                      tile_size=suggested_tile_size(model))


def _to_float_logs(logs):
    return {k: float(np.asarray(v)) for k, v in logs.items()}


def _first_replica(strategy, element):
    """A plain (non-distributed) copy of this replica-0 part of a distributed element."""
    return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], element)


def remove_orphans(model_dir):
    """Delete the leftovers of an interrupted save in ``model_dir`` (``checkpoints/ckpt-N_temp/``
    directories, temporary files of the atomic writes); returns the removed paths. Call it only
    when no other process trains in the same directory."""
    model_dir = Path(model_dir)
    removed = []
    ckpt_dir = model_dir / CHECKPOINT_SUBDIR
    if ckpt_dir.is_dir():
        for p in sorted(ckpt_dir.iterdir()):
            if p.is_dir() and not p.is_symlink() and _CHECKPOINT_TEMP.match(p.name):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    if model_dir.is_dir():
        for p in sorted(model_dir.iterdir()):
            if p.is_file() and _ATOMIC_TEMP.match(p.name):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def save_inference_model(model, model_dir, model_info=None, path=None):
    """Write ``<model_dir>/<model.name>.keras`` (or ``path``) atomically plus its ModelInfo
    sidecar; returns the path."""
    path = Path(path) if path is not None else Path(model_dir) / f"{model.name}.keras"
    with atomic_path(path) as tmp:
        model.save(tmp)
    write_info(path, model_info or default_model_info(model))
    return path


def run_training(task, model_dir, train_steps, *, checkpoint_every=1000, log_every=50,
                 image_every=None, val_every=None, learning_rate=None, lr_decay_steps=0,
                 lr_decay_rate=1.0, cycle_steps=0, max_to_keep=3, model_info=None, verbose=1,
                 log=print, write_dir=None):
    """Train ``task.trainer`` until the step counter reaches ``train_steps`` (the total).

    task: ``TrainingTask`` whose trainer is compiled inside its strategy scope.
    model_dir: output directory (``checkpoints/``, ``logs/``, ``<name>.keras``); training
      resumes from its last checkpoint.
    write_dir: where this process writes those (default ``model_dir``); a non-chief worker of a
      multi-worker run passes its private directory (``cluster.write_dir``).
    checkpoint_every / log_every / image_every / val_every: periods in steps (None or 0 =
      only at the end; image_every defaults to ``log_every * 10``, val_every to
      ``checkpoint_every``). val_dataset may be one finite dataset or a dict name -> dataset.
    learning_rate: if given, every optimizer's learning rate is set to
      ``learning_rate * lr_decay_rate ** floor(step / lr_decay_steps)`` before each step.
    cycle_steps: repeat the schedule every N steps (0 = once): ``step`` above and the trainer's
      ``phase_for_step`` count within the cycle; at each restart every optimizer's state is
      reset and the input stream restarts.
    verbose: 1 = progress bar (plain log lines when stdout is not a terminal), 0 = only the
      log lines. log: callable for one-line messages.
    Raises NonFiniteLossError on NaN/Inf loss (after keeping the last good checkpoint).
    """
    t_start = time.time()
    bar_line_open = [False]   # the progress bar has an unterminated line on stdout
    user_log = log

    def log(message):
        if bar_line_open[0]:
            print(flush=True)
            bar_line_open[0] = False
        user_log(message)

    resume_dir = Path(model_dir) / CHECKPOINT_SUBDIR
    model_dir = Path(write_dir if write_dir is not None else model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    orphans = remove_orphans(model_dir)
    if orphans:
        log(f"removed {len(orphans)} leftover(s) of an interrupted save: "
            + ", ".join(str(p.relative_to(model_dir)) for p in orphans))
    trainer = task.trainer
    strategy = trainer.distribute_strategy
    optimizers = list(getattr(trainer, "optimizers", None) or [])
    if not optimizers:
        raise ValueError("task.trainer must be compiled and expose its optimizers")
    train_steps = int(train_steps)
    if image_every is None:
        image_every = log_every * 10 if log_every else 0
    if val_every is None:
        val_every = checkpoint_every

    with strategy.scope():
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    objects = {"trainer": trainer, "step": step_var}
    for i, opt in enumerate(optimizers):
        objects[f"optimizer_{i}"] = opt
    ckpt = tf.train.Checkpoint(**objects)
    ckpt_dir = model_dir / CHECKPOINT_SUBDIR
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=max_to_keep,
                                         checkpoint_name="ckpt")
    resume_from = tf.train.latest_checkpoint(str(resume_dir))
    if resume_from:
        try:
            ckpt.restore(resume_from).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise RuntimeError(
                f"{resume_from}: checkpoint does not match this model/optimizers "
                f"(was it written with other --width/--variant/--task settings?). Use a new "
                f"--model_dir or the original settings. Details: {e}") from e
        log(f"resuming from step {int(step_var.numpy())} ({resume_from})")
    start_step = step = int(step_var.numpy())
    last_saved = step if resume_from else None

    writer = tf.summary.create_file_writer(str(model_dir / LOG_SUBDIR / "train"))
    val_writer = tf.summary.create_file_writer(str(model_dir / LOG_SUBDIR / "val"))
    logs, val_logs = {}, {}

    finite_state = _FiniteState(trainer, optimizers)
    checked = [None]   # the step whose state was last found finite

    def check_finite(at_step):
        """Raise NonFiniteLossError (naming the last good checkpoint) on non-finite state."""
        if checked[0] == at_step:
            return
        bad = finite_state.bad_variables()
        if bad:
            writer.flush()
            raise NonFiniteLossError(at_step, logs, manager.latest_checkpoint, bad)
        checked[0] = at_step

    def save(at_step):
        nonlocal last_saved
        if last_saved == at_step:
            return
        check_finite(at_step)   # never write non-finite state as the "last good" checkpoint
        step_var.assign(at_step)
        manager.save(checkpoint_number=at_step)
        last_saved = at_step

    if step >= train_steps:
        log(f"step {step} already >= train_steps {train_steps}; nothing to train")
    else:
        phase = None
        lr_now = None
        train_fn = None
        def distribute_input(dataset):
            if callable(dataset):   # per input pipeline (worker): its own shard
                return strategy.distribute_datasets_from_function(dataset)
            return strategy.experimental_distribute_dataset(dataset)

        iterator = None
        # Target = steps of this run (Progbar's ETA assumes it started at 0); every value
        # shown is already a running mean, so all are "stateful" (shown as given). The bar
        # redraws its line with "\r" (on Linux Keras does so even into a file): only on a
        # terminal; otherwise the plain log line every log_every steps.
        progbar = keras.utils.Progbar(train_steps - start_step, verbose=verbose,
                                      stateless_metrics=(), unit_name="step") \
            if verbose and _stdout_is_terminal() else None
        _reset_metrics(trainer, "train")
        t_interval, steps_interval = time.time(), 0
        if verbose:
            log(f"training steps {start_step} -> {train_steps} in {model_dir}")
        interrupts = _Interrupts()
        try:
            while step < train_steps:
                at = schedule_step(step, cycle_steps)
                restart = at == 0 and step > 0
                if restart:
                    # A checkpoint at a restart holds the end of the last cycle: reset now.
                    for opt in optimizers:
                        reset_optimizer_state(opt)
                    log(f"cycle {step // cycle_steps + 1} of "
                        f"{math.ceil(train_steps / cycle_steps)} from step {step}: optimizer "
                        f"state reset, input stream restarted")
                if iterator is None or restart:
                    iterator = iter(distribute_input(task.train_dataset_at(at)))
                    if at:
                        log(f"input stream resumed at batch {at} of its cycle")
                if hasattr(trainer, "phase_for_step"):
                    new_phase = trainer.phase_for_step(at)
                    if new_phase != phase:
                        trainer.set_phase(new_phase)
                        train_fn = distribute.step_function(trainer)
                        if phase is not None or step > 0:
                            log(f"phase '{new_phase}' from step {step}")
                        phase = new_phase
                elif train_fn is None:
                    train_fn = distribute.step_function(trainer)
                if learning_rate is not None:
                    lr = learning_rate_at(at, learning_rate, lr_decay_steps, lr_decay_rate)
                    if lr != lr_now:
                        for opt in optimizers:
                            opt.learning_rate = lr
                        lr_now = lr
                data = next(iterator)
                with interrupts.deferred():   # an interrupt saves a counted step only
                    raw = train_fn(data)
                    logs = _to_float_logs(raw)
                    step += 1
                    steps_interval += 1
                    step_var.assign(step)
                if not all(math.isfinite(v) for v in logs.values()):
                    writer.flush()
                    raise NonFiniteLossError(step, logs, manager.latest_checkpoint)
                check_finite(step)
                if progbar is not None:
                    progbar.update(step - start_step, values=list(logs.items()),
                                   finalize=step == train_steps)
                    bar_line_open[0] = step < train_steps

                if (log_every and step % log_every == 0) or step == train_steps:
                    now = time.time()
                    rate = steps_interval / max(now - t_interval, 1e-9)
                    with writer.as_default(step=step):
                        for k, v in logs.items():
                            tf.summary.scalar(f"loss/{k}", v)
                        tf.summary.scalar("learning_rate",
                                          float(np.asarray(optimizers[0].learning_rate)))
                        tf.summary.scalar("steps_per_second", rate)
                    if progbar is None:
                        log(f"step {step}/{train_steps} " + " ".join(
                            f"{k}={v:.4g}" for k, v in logs.items()) + f" ({rate:.2f} steps/s)")
                    t_interval, steps_interval = now, 0
                    _reset_metrics(trainer, "train")
                # Before panels and validation: an error in them keeps this step's checkpoint.
                if checkpoint_every and step % checkpoint_every == 0:
                    save(step)
                if task.image_panels is not None and (
                        (image_every and step % image_every == 0) or step == train_steps):
                    _write_panels(task, writer, data, strategy, step)
                if task.val_dataset is not None and (
                        (val_every and step % val_every == 0) or step == train_steps):
                    val_logs = _validate(task, strategy, val_writer, step)
                    log(f"validation at step {step}: " + " ".join(
                        f"{k}={v:.4g}" for k, v in val_logs.items()))
        except KeyboardInterrupt:
            # The last completed step is consistent (train_fn has returned). Not on one worker
            # of several: its save would wait forever for the others' collective ops.
            if logs and all(math.isfinite(v) for v in logs.values()) and step > start_step \
                    and not distribute.is_multi_worker(strategy):
                try:
                    save(step)
                    log(f"interrupted; saved checkpoint at step {step}; rerun the same "
                        f"command to resume")
                except NonFiniteLossError as e:
                    log(f"interrupted; not saved: {e}")
            raise
        finally:
            interrupts.restore()
            writer.flush()
            val_writer.flush()
        save(step)

    model = task.inference_model()
    model_path = save_inference_model(model, model_dir, model_info)
    log(f"saved {model_path}")
    return TrainingResult(step=step, start_step=start_step, logs=logs, val_logs=val_logs,
                          model_path=model_path, checkpoint=manager.latest_checkpoint,
                          seconds=time.time() - t_start)


class TerminationRequested(KeyboardInterrupt):
    """SIGTERM during training (``kill``, a scheduler's preemption or time limit): handled like
    Ctrl-C, so the loop saves the last completed step before it stops."""


class _Interrupts:
    """SIGTERM raises ``TerminationRequested`` (and SIGINT ``KeyboardInterrupt``) in the
    training loop, but not inside ``with interrupts.deferred():`` (from the train call to the
    step counter's update), where it waits until the block ends. Python runs signal handlers
    between bytecodes of the main thread, i.e. as soon as the train step's C++ call returns:
    raised there, the checkpoint saved on the way out would hold one update more than its step
    counter. Off the main thread (where handlers cannot be set) nothing changes; ``restore()``
    puts the previous handlers back."""

    def __init__(self):
        self.pending, self.deferring, self.previous = None, False, {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        error = (KeyboardInterrupt() if signum == signal.SIGINT else
                 TerminationRequested(f"stopped by signal {signal.Signals(signum).name}"))
        if self.deferring:
            self.pending = error
        else:
            raise error

    @contextlib.contextmanager
    def deferred(self):
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending is not None:
            error, self.pending = self.pending, None
            raise error

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _stdout_is_terminal():
    """True when a redrawn progress bar can be shown: stdout is a terminal (or a notebook)."""
    try:
        if sys.stdout is not None and sys.stdout.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    return "ipykernel" in sys.modules


def _write_panels(task, writer, data, strategy, step):
    element = data
    if strategy.num_replicas_in_sync > 1:
        element = _first_replica(strategy, data)
    panels = task.image_panels(element)
    with writer.as_default(step=step):
        for name, images in panels.items():
            tf.summary.image(name, np.asarray(images, np.uint8), max_outputs=8)


def _validate(task, strategy, writer, step):
    """Run ``test_step`` over every validation dataset; log and return name -> float.

    Validation batches are not split over replicas (small batches of whole images would leave
    some replicas empty): ``test_step`` runs once per batch, reading the mirrored variables.
    """
    trainer = task.trainer
    datasets = task.val_dataset
    if not isinstance(datasets, dict):
        datasets = {"": datasets}
    fn = getattr(trainer, "_tf_defocus_val_fn", None)
    if fn is None:
        fn = trainer.test_step
        if not trainer.run_eagerly:
            fn = tf.function(fn, reduce_retracing=True)
        trainer._tf_defocus_val_fn = fn
    results = {}
    for name, ds in datasets.items():
        _reset_metrics(trainer, "val")
        out = None
        for batch in ds:
            out = fn(batch)
        if out is None:
            continue
        prefix = f"{name}/" if name else ""
        results.update({prefix + k: v for k, v in _to_float_logs(out).items()})
    if not hasattr(trainer, "reset_val_metrics"):
        _reset_metrics(trainer, "train")   # shared trackers: do not mix val into train logs
    with writer.as_default(step=step):
        for k, v in results.items():
            tf.summary.scalar(k, v)
    return results


def _reset_metrics(trainer, kind):
    """``trainer.reset_<kind>_metrics()`` if it has one, else reset every ``trainer.metrics``."""
    hook = getattr(trainer, f"reset_{kind}_metrics", None)
    if hook is not None:
        hook()
        return
    for m in trainer.metrics:
        m.reset_state()
