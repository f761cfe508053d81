"""DMENet training system: losses, trainer, loop (checkpoints, resume, NaN stop), strategy, CLI.

Tiny networks (width 1/16) on 32 px patches; most steps run eagerly (tracing the full BDSC step
costs far more than running it at this size).
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import model_checks
from tf_defocus.models.blur_cues import NUM_CUES
from tf_defocus.training import losses
from tf_defocus import config as cfglib
from tf_defocus.training.config import DMENetConfig
from tf_defocus.training.dmenet_task import build_trainer, float32_inference_model
from tf_defocus.training.dmenet_trainer import VARIANTS, DMENetTrainer, LossWeights
from tf_defocus.training.loop import NonFiniteLossError, TerminationRequested, run_training
from tf_defocus.training.task import TrainingTask

P = 32
WIDTH = 0.0625
REPO = Path(__file__).resolve().parents[1]


def tiny_cfg(**kw):
    base = dict(width=WIDTH, patch_size=P, batch_synthetic=2, batch_real_mask=2,
                batch_real_unlabelled=2, variant="BDSC")
    base.update(kw)
    return cfglib.from_flat(DMENetConfig, base)


def make_element(seed=0, batch=2, size=P):
    """One training element with a learnable synthetic label (blur grows to the right)."""
    rng = np.random.default_rng(seed)
    ramp = np.tile(np.linspace(0.0, 1.0, size, dtype=np.float32), (size, 1))
    sigma = np.stack([np.roll(ramp, 3 * i, axis=1) for i in range(batch)])[..., None]
    image = rng.random((batch, size, size, 3), np.float32) * (1.0 - 0.7 * sigma)
    return {"synthetic": {"image": image, "sigma_norm": sigma},
            "real_mask": {"image": rng.random((batch, size, size, 3), np.float32),
                          "mask": (rng.random((batch, size, size, 1)) > 0.5).astype(np.float32)},
            "real_unlabelled": {"image": rng.random((batch, size, size, 3), np.float32)}}


def trainable_snapshot(model):
    return [np.array(v) for v in model.trainable_variables] if model is not None else []


def changed(before, model):
    return any(not np.array_equal(a, np.asarray(v))
               for a, v in zip(before, model.trainable_variables))


def dataset_of(elements):
    stacked = tf.nest.map_structure(lambda *a: np.stack(a), *elements)
    return tf.data.Dataset.from_tensor_slices(stacked)


def task_for(trainer, elements, repeat=True):
    ds = dataset_of(elements)
    return TrainingTask(trainer=trainer, train_dataset=ds.repeat() if repeat else ds,
                        val_dataset=None,
                        inference_model=lambda: float32_inference_model(trainer.blur_estimator))


# ------------------------------------------------------------------------------------- losses

def test_aux_targets_use_tf1_align_corners_nearest():
    rng = np.random.default_rng(0)
    for h, w in ((48, 48), (240, 240), (64, 96), (32, 16)):
        y = rng.random((2, h, w, 1)).astype(np.float32)
        for factor in (2, 4, 8, 16):
            if h % factor or w % factor:
                continue
            out = np.asarray(losses.downsample_nearest_aligned(tf.constant(y), factor))
            size = [h // factor, w // factor]
            # The TF1 kernel the authors used (DownSampling2dLayer, method 1, align_corners).
            ref = tf.compat.v1.image.resize_nearest_neighbor(y, size, align_corners=True)
            np.testing.assert_array_equal(out, np.asarray(ref), err_msg=f"{h}x{w} / {factor}")
    y = rng.random((1, 240, 240, 1)).astype(np.float32)
    out = np.asarray(losses.downsample_nearest_aligned(y, 16))
    assert not np.array_equal(out, np.asarray(tf.image.resize(y, (15, 15), "nearest")))
    np.testing.assert_array_equal(losses.downsample_nearest_aligned(y, 1), y)


def test_per_example_losses_and_replica_mean():
    a = np.zeros((2, 4, 4, 1), np.float32)
    b = np.stack([np.full((4, 4, 1), 0.5), np.full((4, 4, 1), 1.0)]).astype(np.float32)
    np.testing.assert_allclose(losses.mse_per_example(a, b), [0.25, 1.0])
    np.testing.assert_allclose(losses.replica_mean(losses.mse_per_example(a, b)), 0.625)
    logits = np.array([[[[0.0]]], [[[100.0]]]], np.float32)
    bce = np.asarray(losses.bce_logits_per_example(logits, 1.0))
    np.testing.assert_allclose(bce, [np.log(2.0), 0.0], atol=1e-6)
    acc = np.asarray(losses.domain_accuracy_per_example(logits, 1.0))
    np.testing.assert_allclose(acc, [0.0, 1.0])


# ------------------------------------------------------------------------------------ trainer

def test_each_optimizer_touches_only_its_networks():
    t = build_trainer(tiny_cfg(), seed=0)
    t.set_phase("joint")
    ids = lambda vs: {id(v) for v in vs}
    b_ids = ids(t.blur_estimator.trainable_variables) | ids(t.calibrator.trainable_variables)
    assert ids(t.generator_variables) == b_ids
    assert ids(t.discriminator_variables) == ids(t.discriminator.trainable_variables)
    assert not (ids(t.generator_variables) & ids(t.discriminator_variables))
    assert not t.content.trainable_variables
    c_before = [np.array(v) for v in t.content.weights]
    el = make_element()

    # B's optimizer frozen (lr 0): only D may change.
    t.b_optimizer.learning_rate = 0.0
    snaps = {k: trainable_snapshot(getattr(t, k))
             for k in ("blur_estimator", "calibrator", "discriminator")}
    t.train_step(el)
    assert changed(snaps["discriminator"], t.discriminator)
    assert not changed(snaps["blur_estimator"], t.blur_estimator)
    assert not changed(snaps["calibrator"], t.calibrator)

    # D's optimizer frozen: B and S change, D does not.
    t.b_optimizer.learning_rate = 1e-3
    t.d_optimizer.learning_rate = 0.0
    snaps = {k: trainable_snapshot(getattr(t, k))
             for k in ("blur_estimator", "calibrator", "discriminator")}
    t.train_step(el)
    assert changed(snaps["blur_estimator"], t.blur_estimator)
    assert changed(snaps["calibrator"], t.calibrator)
    assert not changed(snaps["discriminator"], t.discriminator)
    for a, v in zip(c_before, t.content.weights):
        np.testing.assert_array_equal(a, np.asarray(v))
    assert [int(o.iterations) for o in t.optimizers] == [2, 2]


def test_pretrain_phase_trains_b_alone_with_mse():
    t = build_trainer(tiny_cfg(pretrain_steps=5), seed=0)
    assert t.phase_for_step(0) == "pretrain" and t.phase_for_step(5) == "joint"
    t.set_phase("pretrain")
    d0, s0 = trainable_snapshot(t.discriminator), trainable_snapshot(t.calibrator)
    b0 = trainable_snapshot(t.blur_estimator)
    logs = t.train_step(make_element())
    assert sorted(logs) == ["mse", "total"]
    assert changed(b0, t.blur_estimator)
    assert not changed(d0, t.discriminator) and not changed(s0, t.calibrator)
    assert int(t.d_optimizer.iterations) == 0


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_ablation_variant_runs_one_step(name):
    variant = VARIANTS[name]
    t = build_trainer(tiny_cfg(variant=name), seed=0)
    t.set_phase("joint")
    assert (t.discriminator is not None) == variant.discriminator
    assert (t.calibrator is not None) == variant.calibrator
    assert (t.content is not None) == variant.content
    assert len(t.optimizers) == (2 if variant.discriminator else 1)
    logs = {k: float(v) for k, v in t.train_step(make_element()).items()}
    expected = {"total", "mse"}
    expected |= {"aux_mse"} if variant.aux else set()
    expected |= {"content"} if variant.content else set()
    expected |= {"calibration_bce"} if variant.calibrator else set()
    expected |= {"adversarial_bce", "d_bce", "d_accuracy"} if variant.discriminator else set()
    assert set(logs) == expected
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["total"] >= logs["mse"]
    assert t.variant.name == name


def test_tiny_overfit_halves_the_mse():
    keras.utils.set_random_seed(0)
    t = build_trainer(tiny_cfg(variant="B", learning_rate=2e-3), seed=0)
    t.set_phase("joint")
    t.make_train_function(force=True)    # graph mode, as in real training
    el = tf.nest.map_structure(tf.constant, make_element(batch=2))
    mses = []
    for _ in range(30):
        t.reset_train_metrics()
        mses.append(float(t.train_function([el])["mse"]))
    assert mses[-1] < 0.5 * mses[0], mses


def test_mixed_float16_wraps_optimizers_and_keeps_float32_losses():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        t = build_trainer(tiny_cfg(variant="BDSC"), seed=0)
        assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in t.optimizers)
        t.set_phase("joint")
        logs = t.train_step(make_element())
        assert all(v.dtype == tf.float32 and np.isfinite(float(v)) for v in logs.values())
        out = t.blur_estimator(make_element()["synthetic"]["image"])
        assert out["defocus"].dtype == tf.float32
        model = float32_inference_model(t.blur_estimator)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert all(l.dtype_policy.name == "float32" for l in model.layers)


# ------------------------------------------------------------------------------------ loop

def test_checkpoint_restores_every_network_and_optimizer(tmp_path):
    messages = []
    t = build_trainer(tiny_cfg(variant="BDSC", pretrain_steps=1), seed=0)
    t.run_eagerly = True
    res = run_training(task_for(t, [make_element(0), make_element(1)]), tmp_path, 2,
                       checkpoint_every=1, log_every=1, verbose=0, log=messages.append)
    assert res.step == 2
    assert any("phase 'joint' from step 1" in m for m in messages)
    assert [int(o.iterations) for o in t.optimizers] == [2, 1]   # D skips the pretrain step
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index")) == [
        "ckpt-1.index", "ckpt-2.index"]
    model = keras.saving.load_model(tmp_path / "blur_estimator.keras")
    assert model.name == "blur_estimator"
    x = make_element()["synthetic"]["image"]
    np.testing.assert_allclose(model(x), t.blur_estimator(x, training=False)["defocus"],
                               atol=1e-6)
    assert json.loads((tmp_path / "blur_estimator.keras.json").read_text())["kind"] == "defocus"

    # A fresh trainer (other initial weights) restored from the directory: identical state.
    keras.utils.set_random_seed(123)
    t2 = build_trainer(tiny_cfg(variant="BDSC", pretrain_steps=1), seed=0)
    t2.run_eagerly = True
    messages.clear()
    res2 = run_training(task_for(t2, [make_element(0)]), tmp_path, 2, verbose=0,
                        log=messages.append)
    assert (res2.start_step, res2.step) == (2, 2)
    assert any("resuming from step 2" in m for m in messages)
    for o1, o2 in zip(t.optimizers, t2.optimizers):
        assert len(o1.variables) == len(o2.variables)
        for a, b in zip(o1.variables, o2.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    for net in ("blur_estimator", "discriminator", "calibrator", "content"):
        for a, b in zip(getattr(t, net).weights, getattr(t2, net).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)

    # A larger total continues from step 2 with the restored optimizers; the learning rate
    # follows the global step (1e-3 x 0.5^floor(2 / 2) for step 3) on every optimizer.
    res3 = run_training(task_for(t2, [make_element(0)]), tmp_path, 3, verbose=0,
                        log=messages.append, learning_rate=1e-3, lr_decay_steps=2,
                        lr_decay_rate=0.5)
    assert (res3.start_step, res3.step) == (2, 3)
    assert [int(o.iterations) for o in t2.optimizers] == [3, 2]
    assert [float(o.learning_rate) for o in t2.optimizers] == pytest.approx([5e-4, 5e-4])


def eager_trainer(**kw):
    """A seeded tiny DMENet trainer (``tiny_cfg(**kw)``) that runs eagerly."""
    t = build_trainer(tiny_cfg(**kw), seed=0)
    t.run_eagerly = True
    return t


def test_a_run_resumed_mid_cycle_reads_on_and_ends_as_an_uninterrupted_one(tmp_path):
    """Stopped at step 2 and resumed, the input stream goes on at batch 2 (or 2 of its cycle)
    rather than replaying batches 0 and 1, so the weights equal an uninterrupted run's."""
    elements = [make_element(i) for i in range(4)]
    sched = dict(learning_rate=1e-3, verbose=0, checkpoint_every=0)

    def trainer():
        return eager_trainer(variant="B")

    for cycle_steps, total in ((0, 4), (3, 5)):
        straight = trainer()
        run_training(task_for(straight, elements), tmp_path / f"straight{cycle_steps}", total,
                     cycle_steps=cycle_steps, **sched)
        messages = []
        for steps in (2 if not cycle_steps else 4, total):
            resumed = trainer()
            run_training(task_for(resumed, elements), tmp_path / f"resumed{cycle_steps}", steps,
                         cycle_steps=cycle_steps, log=messages.append, **sched)
        at = 2 if not cycle_steps else 1
        assert f"input stream resumed at batch {at} of its cycle" in messages
        for a, b in zip(straight.blur_estimator.weights, resumed.blur_estimator.weights):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)
    # A stream that starts over on resume (what the loop did before) ends elsewhere.
    replayed = trainer()
    run_training(task_for(replayed, elements), tmp_path / "replayed", 2, **sched)
    replayed = trainer()
    task = task_for(replayed, elements)
    task.train_dataset_from = lambda batch: task.train_dataset
    run_training(task, tmp_path / "replayed", 4, **sched)
    assert any(np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4
               for a, b in zip(straight.blur_estimator.weights, replayed.blur_estimator.weights))


def test_training_task_positions_its_stream_at_a_batch():
    ds = tf.data.Dataset.range(10)
    task = TrainingTask(trainer=None, train_dataset=ds, val_dataset=None, inference_model=None)
    assert task.train_dataset_at(0) is ds
    assert list(task.train_dataset_at(3).take(2).as_numpy_iterator()) == [3, 4]
    # Per input pipeline: each step takes one per-replica batch of each of its 2 replicas.
    task.train_dataset = lambda input_context: tf.data.Dataset.range(20)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                         num_replicas_in_sync=2)
    assert list(task.train_dataset_at(8)(context).as_numpy_iterator()) == [16, 17, 18, 19]
    task.train_dataset_from = lambda batch: ds.skip(2 * batch)
    assert list(task.train_dataset_at(4).as_numpy_iterator()) == [8, 9]


def test_cycles_repeat_the_schedule_like_chained_warm_started_runs(tmp_path):
    """--cycle_steps: the learning-rate decay and the phases start over at every restart, the
    optimizer state is reset and the input stream restarts, so one run of two cycles ends with
    the weights of two chained runs (the second warm-started from the first's B with a new
    optimizer), also when it resumes from the checkpoint at the restart."""
    kw = dict(variant="B", use_aux=True, pixel_loss="l1", pixel_loss_step=2,
              freeze_norm_step=2)
    elements = [make_element(i) for i in range(4)]   # 4 elements: a restart changes the batches
    sched = dict(learning_rate=1e-3, lr_decay_steps=1, lr_decay_rate=0.5, verbose=0,
                 checkpoint_every=0)

    def trainer():
        return eager_trainer(**kw)

    messages = []
    one = trainer()
    run_training(task_for(one, elements), tmp_path / "one", 6, cycle_steps=3,
                 log=messages.append, **sched)
    assert [m for m in messages if m.startswith(("phase", "cycle"))] == [
        "phase 'joint_frozen_norm' from step 2",
        "cycle 2 of 2 from step 3: optimizer state reset, input stream restarted",
        "phase 'joint_mse' from step 3", "phase 'joint_frozen_norm' from step 5"]
    assert int(one.b_optimizer.iterations) == 3
    assert float(one.b_optimizer.learning_rate) == pytest.approx(2.5e-4)

    first = trainer()
    run_training(task_for(first, elements), tmp_path / "first", 3, log=messages.append, **sched)
    second = trainer()
    second.blur_estimator.set_weights(first.blur_estimator.get_weights())
    run_training(task_for(second, elements), tmp_path / "second", 3, log=messages.append,
                 **sched)
    # Stopped at the restart (its checkpoint holds the end of cycle 1), then resumed.
    stopped = trainer()
    run_training(task_for(stopped, elements), tmp_path / "resumed", 3, cycle_steps=3,
                 log=messages.append, **sched)
    resumed = trainer()
    run_training(task_for(resumed, elements), tmp_path / "resumed", 6, cycle_steps=3,
                 log=messages.append, **sched)
    for other in (second, resumed):
        for a, b in zip(one.blur_estimator.weights, other.blur_estimator.weights):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)
    # Without the restart the second cycle ends elsewhere.
    straight = trainer()
    run_training(task_for(straight, elements), tmp_path / "straight", 6, log=messages.append,
                 **sched)
    assert any(np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4
               for a, b in zip(one.blur_estimator.weights, straight.blur_estimator.weights))
    for bad, match in ((dict(cycle_steps=2, freeze_norm_step=0), "pixel_loss_step"),
                       (dict(cycle_steps=3, freeze_norm_step=3, pixel_loss_step=0),
                        "freeze_norm_step"),
                       (dict(cycle_steps=7, train_steps=6), "cycle_steps")):
        with pytest.raises(ValueError, match=match):
            tiny_cfg(**{**kw, **bad})


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    t = build_trainer(tiny_cfg(variant="B"), seed=0)
    t.run_eagerly = True
    bad = make_element(2)
    bad["synthetic"]["image"][0, 0, 0, 0] = np.nan
    task = task_for(t, [make_element(0), make_element(1), bad, make_element(3)], repeat=False)
    with pytest.raises(NonFiniteLossError) as info:
        run_training(task, tmp_path, 10, checkpoint_every=1, log_every=1, verbose=0,
                     log=lambda m: None)
    assert info.value.step == 3
    assert "non-finite loss at step 3" in str(info.value)
    assert info.value.last_checkpoint.endswith("ckpt-2")
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    assert not (tmp_path / "blur_estimator.keras").exists()
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-2"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 2
    for name, _ in tf.train.list_variables(str(tmp_path / "checkpoints" / "ckpt-2")):
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name


def test_an_error_in_validation_keeps_that_steps_checkpoint(tmp_path):
    """The checkpoint of a step is written before its image panels and validation, so an
    error in them (here a validation set of the wrong structure) loses no training."""
    t = build_trainer(tiny_cfg(variant="B"), seed=0)
    t.run_eagerly = True
    task = task_for(t, [make_element(0), make_element(1)])
    task.val_dataset = tf.data.Dataset.from_tensor_slices({"not_a_batch": [1.0]})
    with pytest.raises(Exception):
        run_training(task, tmp_path, 4, checkpoint_every=2, val_every=2, log_every=1,
                     verbose=0, log=lambda m: None)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, numpy as np, tensorflow as tf
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tf_defocus import config as cfglib
    from tf_defocus.training.config import DMENetConfig
    from tf_defocus.training.dmenet_task import build_trainer

    P = 32
    rng = np.random.default_rng(0)

    def twice(shape, binary=False):
        # Both replicas get the same half, so per-replica BatchNorm statistics equal the
        # statistics of the whole batch on one device: the losses must then agree exactly
        # (synchronised BatchNorm is off: test_multi_worker.py checks it).
        a = rng.random(shape).astype(np.float32)
        a = (a > 0.5).astype(np.float32) if binary else a
        return np.concatenate([a, a], axis=0)

    elements = [{"synthetic": {"image": twice((1, P, P, 3)), "sigma_norm": twice((1, P, P, 1))},
                 "real_mask": {"image": twice((1, P, P, 3)), "mask": twice((1, P, P, 1), True)},
                 "real_unlabelled": {"image": twice((1, P, P, 3))}} for _ in range(2)]
    cfg = cfglib.from_flat(DMENetConfig, dict(width=0.0625, patch_size=P, variant="BDSC",
                           batch_synthetic=2, batch_real_mask=2, batch_real_unlabelled=2,
                           sync_batch_norm=False))

    def run(strategy, init=None):
        with strategy.scope():
            t = build_trainer(cfg, seed=cfg.data.seed)
            # SGD: unlike Adam, its update is proportional to the gradient scale.
            t.compile(b_optimizer=keras.optimizers.SGD(0.01),
                      d_optimizer=keras.optimizers.SGD(0.01), run_eagerly=True)
            if init is not None:
                for v, value in zip(t.weights, init):
                    v.assign(value)
        initial = [np.asarray(v) for v in t.weights]
        start = {id(v): w for v, w in zip(t.weights, initial)}
        train_vars = t.generator_variables + t.discriminator_variables
        before = [start[id(v)] for v in train_vars]
        t.set_phase("joint")
        t.make_train_function(force=True)
        ds = tf.data.Dataset.from_tensor_slices(
            tf.nest.map_structure(lambda *a: np.stack(a), *elements))
        it = iter(strategy.experimental_distribute_dataset(ds))
        logs = []
        for _ in range(2):
            t.reset_train_metrics()
            logs.append({k: float(v) for k, v in t.train_function([next(it)]).items()})
        after = [np.asarray(v) for v in train_vars]
        return initial, before, after, logs

    init, before, one_after, one = run(tf.distribute.get_strategy())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    _, _, two_after, two = run(strategy, init)
    norm = lambda xs: float(np.sqrt(sum(np.sum(np.square(x)) for x in xs)))
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync, "one": one, "two": two,
        "update": norm([a - b for a, b in zip(one_after, before)]),
        "diff": norm([a - b for a, b in zip(one_after, two_after)])}))
""")


def test_mirrored_strategy_matches_one_device():
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    r = json.loads(lines[-1][len("RESULT "):])
    assert r["replicas"] == 2
    for one, two, rtol in ((r["one"][0], r["two"][0], 1e-4), (r["one"][1], r["two"][1], 1e-3)):
        assert set(one) == set(two)
        for k in one:
            np.testing.assert_allclose(two[k], one[k], rtol=rtol, atol=1e-6, err_msg=k)
    # Same updates (a replica-scaling error would change them by a factor of 2).
    assert r["update"] > 0
    assert r["diff"] < 0.05 * r["update"], r


# ------------------------------------------------------------------------------------ CLI

TINY_FLAGS = """\
--task=dmenet
--variant=B
--width=0.0625
--patch_size=32
--batch_synthetic=2
--train_steps=100000
--checkpoint_every=1
--log_every=1
--image_every=2
--pool_size=3
--pool_width=48
--pool_height=48
--pool_workers=1
--val_num_images=0
--run_eagerly
"""


def _cli(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "tf_defocus.train", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


def _latest_step(ckpt_dir):
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    if latest is None:
        return None
    return int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def test_cli_sigkill_then_resume_end_to_end(tmp_path):
    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text(TINY_FLAGS)
    model_dir = tmp_path / "run"
    common = [f"--flagfile={flagfile}", f"--model_dir={model_dir}",
              f"--cache_dir={tmp_path / 'cache'}", "--noprogress"]
    proc = _cli(common)
    ckpt_dir = model_dir / "checkpoints"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            step = _latest_step(ckpt_dir) if (ckpt_dir / "checkpoint").exists() else None
            if step is not None and step >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = _latest_step(ckpt_dir)
    assert killed_at >= 2
    assert not (model_dir / "blur_estimator.keras").exists()
    config = json.loads((model_dir / "config.json").read_text())
    assert config["task"] == "dmenet"
    assert config["model"]["variant"] == "B" and config["model"]["width"] == 0.0625

    # Rerun with a total a little above the checkpoint (flag after the flagfile wins).
    total = killed_at + 2
    proc = _cli(common + [f"--train_steps={total}"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert f"resuming from step {killed_at}" in out
    assert f"input stream resumed at batch {killed_at} of its cycle" in out
    assert _latest_step(ckpt_dir) == total
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    assert tf.train.load_variable(latest, "optimizer_0/_iterations/.ATTRIBUTES/VARIABLE_VALUE") \
        == total
    assert json.loads((model_dir / "config.json").read_text())["schedule"]["train_steps"] == total
    assert f"config changed since the last run in {model_dir}: train_steps: 100000 -> {total}" \
        in out
    tags = set()
    for event_file in (model_dir / "logs" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {v.tag for v in event.summary.value}
    assert {"loss/mse", "loss/total", "learning_rate", "steps_per_second"} <= tags, tags
    assert any(t.startswith("synthetic: input | ground truth | prediction") for t in tags), tags
    model = keras.saving.load_model(model_dir / "blur_estimator.keras")
    y = np.asarray(model(np.zeros((1, 32, 48, 3), np.float32)))
    assert y.shape == (1, 32, 48, 1) and np.all((y >= 0) & (y <= 1))
    assert (model_dir / "blur_estimator.keras.json").is_file()


def test_cli_sigterm_saves_the_last_step_and_exits_143(tmp_path):
    """SIGTERM (kill, a scheduler's preemption) saves the last completed step, as Ctrl-C does;
    with checkpoints every 1,000 steps that save is the only checkpoint."""
    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text(TINY_FLAGS)
    model_dir = tmp_path / "run"
    proc = _cli([f"--flagfile={flagfile}", f"--model_dir={model_dir}",
                 f"--cache_dir={tmp_path / 'cache'}", "--noprogress", "--checkpoint_every=1000"])
    lines = []
    try:
        for line in proc.stdout:   # log_every=1: one line per step
            lines.append(line)
            if line.startswith("step 3/"):
                proc.send_signal(signal.SIGTERM)
                break
        out = "".join(lines) + proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, out
    saved = re.search(r"interrupted; saved checkpoint at step (\d+)", out)
    assert saved, out
    assert "stopped by signal SIGTERM" in out
    step = int(saved.group(1))
    assert step >= 3 and _latest_step(model_dir / "checkpoints") == step
    assert not (model_dir / "blur_estimator.keras").exists()


def test_sigterm_during_a_step_saves_that_step_with_its_update_counted(tmp_path):
    """A signal in the middle of a train step (Python runs the handler as soon as the step
    returns) waits until the step is counted: the saved step equals the optimizer's updates."""
    t = eager_trainer(variant="B")
    step, calls = t.train_step, []

    def train_step_then_sigterm(element):
        out = step(element)
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGTERM)
        return out

    t.train_step = train_step_then_sigterm
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TerminationRequested):
        run_training(task_for(t, [make_element(0)]), tmp_path, 10, verbose=0, log=lambda m: None)
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert tf.train.load_variable(latest, "optimizer_0/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert signal.getsignal(signal.SIGTERM) == before   # the handler is put back


def test_then_runs_later_stages_in_the_same_model_dir_and_a_rerun_skips_them(tmp_path, capsys):
    """--then: a second stage resumes the first's last checkpoint (step counter and optimizer
    state) under its own settings; rerunning the command trains nothing more; a bad stage
    fails before the first stage trains."""
    from tf_defocus import train
    cache = tmp_path / "cache"
    first, second = tmp_path / "first.flags", tmp_path / "second.flags"
    second.write_text(TINY_FLAGS + f"--train_steps=4\n--learning_rate=1e-5\n--cache_dir={cache}\n"
                      "--noprogress\n")
    first.write_text(TINY_FLAGS + f"--train_steps=2\n--cache_dir={cache}\n--noprogress\n"
                     f"--then={second}\n")
    model_dir = tmp_path / "run"
    argv = ["train", f"--flagfile={first}", f"--model_dir={model_dir}"]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert f"stage {second}: resuming in {model_dir}" in out
    assert "resuming from step 2" in out and "step 4/4" in out
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    assert _latest_step(model_dir / "checkpoints") == 4
    assert tf.train.load_variable(latest, "optimizer_0/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 4
    config = json.loads((model_dir / "config.json").read_text())   # the last stage's
    assert config["schedule"]["train_steps"] == 4 and config["optimizer"]["learning_rate"] == 1e-5
    assert config["schedule"]["then"] == []
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "step 1/" not in out and "step 3/" not in out and out.count("done: step 4") == 2

    looped = tmp_path / "looped.flags"
    looped.write_text(TINY_FLAGS + f"--then={second}\n")
    bad_first = tmp_path / "bad_first.flags"
    bad_first.write_text(TINY_FLAGS + f"--train_steps=2\n--then={looped}\n")
    fresh = tmp_path / "fresh"
    assert train.main(["train", f"--flagfile={bad_first}", f"--model_dir={fresh}"]) == 2
    assert "a later stage cannot name stages itself" in capsys.readouterr().err
    assert train.main(["train", f"--flagfile={first}", f"--model_dir={fresh}",
                       f"--then={tmp_path / 'missing.flags'}"]) == 2
    assert "missing.flags" in capsys.readouterr().err
    assert not fresh.exists()


MY_CONFIGS = ["dmenet", "quickstart", "ablation_B", "ablation_BD", "ablation_BDC",
              "ablation_BDSC_noaux", "ablation_BDSC"]


@pytest.mark.parametrize("name", MY_CONFIGS)
def test_flagfiles_parse_and_command_line_overrides(name, tmp_path):
    from absl import flags

    from tf_defocus import train

    flagfile = REPO / "configs" / f"{name}.flags"
    fv = train.define_flags(flags.FlagValues())
    fv(["train", f"--flagfile={flagfile}", f"--model_dir={tmp_path}", "--seed=7"])
    cfg = train.config_from_flags(fv)
    assert isinstance(cfg, DMENetConfig)
    assert cfg.data.seed == 7 and cfg.checkpointing.model_dir == str(tmp_path)
    if name.startswith("ablation_"):
        assert cfg.model.variant == name[len("ablation_"):]
        assert cfg.model.variant_spec == VARIANTS[cfg.model.variant]
    if name in ("dmenet", "ablation_BDSC"):
        assert (cfg.model.width, cfg.data.patch_size, cfg.optimizer.learning_rate,
                cfg.model.variant) == (1.0, 240, 1e-4, "BDSC")
        assert (cfg.data.batch_synthetic, cfg.data.batch_real_mask,
                cfg.data.batch_real_unlabelled) == (3, 3, 3)
        assert cfg.optimizer.lr_decay_rate == 0.8 and cfg.schedule.pretrain_steps > 0


def test_every_setting_is_one_flag_and_round_trips_through_config_json(tmp_path):
    """Each leaf of every task config is a flag of the same name; a config written to
    config.json reads back equal; an older flat config.json (null = task default, the other
    task's settings) still reads."""
    from absl import flags

    from tf_defocus import train
    from tf_defocus.training import config as tcfg

    fv = train.define_flags(flags.FlagValues())
    for cls in tcfg.TASKS.values():
        for name, *_ in cfglib.leaves(cls):
            assert name in fv, name
    fv(["train", "--task=dmenet", "--crops_per_image=3", "--synthetic_dir=a,b",
        "--val_image_size=64,48", "--nouse_aux"])
    cfg = train.config_from_flags(fv)
    assert cfg.data.crops_per_image == 3 and cfg.data.synthetic_dir == ("a", "b")
    assert cfg.validation.val_image_size == (64, 48) and cfg.model.use_aux is False
    assert tcfg.from_json(tcfg.to_json(cfg)) == (cfg, [])
    old = {"task": "dmenet", "width": None, "patch_size": None, "learning_rate": 0.002,
           "synthetic_dir": None, "val_image_size": [320, 240], "dof_target": "weight"}
    cfg, ignored = tcfg.from_json(json.dumps(old))
    assert (cfg.model.width, cfg.data.patch_size, cfg.optimizer.learning_rate) == (1.0, 240, 0.002)
    assert ignored == ["dof_target"]
    fv = train.define_flags(flags.FlagValues())
    fv(["train", "--task=dmenet", "--dof_target=weight"])
    with pytest.raises(ValueError, match="--dof_target is not a setting of dmenet"):
        train.config_from_flags(fv)
    fv = train.define_flags(flags.FlagValues())
    fv(["train", "--task=dofnet"])
    dof_cfg = train.config_from_flags(fv)
    assert (dof_cfg.data.patch_size, dof_cfg.optimizer.learning_rate) == (48, 1e-3)


def test_snapshot_restores_the_networks_of_a_checkpoint(tmp_path, capsys):
    """training.snapshot: B's inference model from a checkpoint equals the run's final model,
    both ending with the fill of --fill_method (--smooth_weight < 1)."""
    from tf_defocus.training import snapshot
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "tf_defocus.train", "--task=dmenet", "--variant=B", "--width=0.0625",
           "--smooth_weight=0.1", "--fill_method=guided",
           "--patch_size=32", "--batch_synthetic=2", "--train_steps=2", "--checkpoint_every=2",
           "--pool_size=2", "--pool_width=64", "--pool_height=48", f"--cache_dir={tmp_path / 'cache'}",
           "--val_num_images=0", f"--model_dir={run}", "--progress=false"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "snap.keras"
    # In process (the CLI's main): one TensorFlow start-up less than a subprocess.
    assert snapshot.main(["snapshot", f"--model_dir={run}", f"--out={out}"]) == 0
    assert "ckpt-2" in capsys.readouterr().out
    x = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    final = keras.saving.load_model(run / "blur_estimator.keras")
    snap = keras.saving.load_model(out)
    assert final.layers[-1].method == snap.layers[-1].method == "guided"
    np.testing.assert_allclose(snap(x), final(x), atol=1e-6)
    assert snapshot.main(["snapshot", f"--model_dir={run}", f"--out={out}", "--step=7"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_visibility_weighted_mse():
    """--smooth_weight: pixels of smooth surfaces weigh less; all-ones weights are the MSE."""
    import tensorflow as tf
    rng = np.random.default_rng(0)
    image = rng.uniform(0.2, 0.8, (2, 32, 32, 3)).astype(np.float32)
    image[:, :, :16] = 0.5                                   # left half smooth
    pred = rng.uniform(size=(2, 32, 32, 1)).astype(np.float32)
    true = rng.uniform(size=(2, 32, 32, 1)).astype(np.float32)
    w = losses.visibility_weights(image, 0.1).numpy()
    assert set(np.unique(w)) == {np.float32(0.1), np.float32(1.0)}
    assert (w[:, :, :8] == np.float32(0.1)).all() and (w[:, :, 24:] == 1.0).all()
    np.testing.assert_allclose(losses.mse_per_example(pred, true, tf.ones_like(pred)),
                               losses.mse_per_example(pred, true), rtol=1e-6)
    sq = (pred - true) ** 2
    want = (w * sq).sum(axis=(1, 2, 3)) / w.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(losses.mse_per_example(pred, true, w), want, rtol=1e-5)


def test_l1_pixel_loss_trains_the_map_and_aux_and_logs_the_mse():
    """--pixel_loss=l1: the weighted mean absolute error replaces the MSE in the map and aux
    terms of the total; the logged ``mse`` stays the MSE."""
    rng = np.random.default_rng(1)
    pred = rng.uniform(size=(2, 16, 16, 1)).astype(np.float32)
    true = rng.uniform(size=(2, 16, 16, 1)).astype(np.float32)
    w = rng.choice([0.1, 1.0], size=(2, 16, 16, 1)).astype(np.float32)
    want = (w * np.abs(pred - true)).sum(axis=(1, 2, 3)) / w.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(losses.pixel_loss_per_example(pred, true, w, "l1"), want,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="l1"):
        losses.pixel_loss_per_example(pred, true, kind="huber")

    t = build_trainer(tiny_cfg(variant="B", use_aux=True, pixel_loss="l1", smooth_weight=0.5),
                      seed=0)
    t.set_phase("joint")
    el = make_element()
    syn = {k: tf.constant(v) for k, v in el["synthetic"].items()}
    out = t.blur_estimator(syn["image"], training=True)      # the step's forward pass
    weights = losses.visibility_weights(syn["image"], 0.5)
    l1 = losses.pixel_loss_per_example(out["defocus"], syn["sigma_norm"], weights, "l1")
    aux = losses.aux_per_example(out, syn["sigma_norm"], weights, "l1")
    mse = losses.mse_per_example(out["defocus"], syn["sigma_norm"], weights)
    logs = {k: float(v) for k, v in t.train_step(el).items()}
    np.testing.assert_allclose(logs["total"], float(tf.reduce_mean(l1 + aux)), rtol=1e-4)
    np.testing.assert_allclose(logs["aux_l1"], float(tf.reduce_mean(aux)), rtol=1e-4)
    np.testing.assert_allclose(logs["mse"], float(tf.reduce_mean(mse)), rtol=1e-4)
    assert abs(float(tf.reduce_mean(l1)) - logs["mse"]) > 1e-3     # the two losses differ here

    # The pretrain step (B alone, map loss only) trains and logs the L1 as its total too.
    t = build_trainer(tiny_cfg(variant="B", pixel_loss="l1", pretrain_steps=2), seed=0)
    t.set_phase("pretrain")
    out = t.blur_estimator(syn["image"], training=True)
    l1 = losses.pixel_loss_per_example(out["defocus"], syn["sigma_norm"], kind="l1")
    logs = {k: float(v) for k, v in t.train_step(el).items()}
    np.testing.assert_allclose(logs["total"], float(tf.reduce_mean(l1)), rtol=1e-4)


def test_depth_step_bounds_accept_either_side_within_the_disc_radius():
    """lo: the smallest sigma within a pixel's own disc radius (2 sigma); hi: the largest
    sigma whose disc reaches the pixel; both exact off depth steps (gentle slopes, flat)."""
    sigma = np.zeros((1, 40, 60, 1), np.float32)
    sigma[:, :, 30:] = 5.0                       # sharp left, 5 px right: disc radius 10 px
    lo, hi = (b.numpy()[0, :, :, 0] for b in losses.depth_step_bounds(sigma))
    s = sigma[0, :, :, 0]
    np.testing.assert_array_equal(lo[:, :30], 0.0)
    np.testing.assert_array_equal(lo[:, 30:40], 0.0)   # its disc reaches the sharp side
    np.testing.assert_array_equal(lo[:, 40:], 5.0)
    np.testing.assert_array_equal(hi[:, :20], 0.0)
    np.testing.assert_array_equal(hi[:, 20:30], 5.0)   # within the blurred side's disc
    np.testing.assert_array_equal(hi[:, 30:], 5.0)
    assert (lo <= s).all() and (hi >= s).all()
    gentle = np.tile(np.linspace(0.0, 2.0, 60, dtype=np.float32), (1, 40, 1))[..., None]
    for b in losses.depth_step_bounds(gentle):
        np.testing.assert_array_equal(b.numpy(), gentle)
    small = np.zeros((1, 8, 8, 1), np.float32)
    small[:, :, 4:] = 1.5                              # a step no larger than DEPTH_STEP_PX
    for b in losses.depth_step_bounds(small, step_px=1.5):
        np.testing.assert_array_equal(b.numpy(), small)


def test_hidden_side_weights_mark_the_blurred_side_within_its_disc_of_a_sharper_edge():
    """--hidden_side_weight: the weight lands where depth_step_bounds' lo is below the truth
    (the blurred side, within its own disc radius of the sharp side), 1 elsewhere; the trainer
    multiplies it with the smooth-surface weights in the map and aux terms."""
    sigma = np.zeros((1, 40, 60, 1), np.float32)
    sigma[:, :, 30:] = 5.0                       # sharp left, 5 px right: disc radius 10 px
    w = losses.hidden_side_weights(sigma, 3.0).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(w[:, 30:40], 3.0)
    np.testing.assert_array_equal(w[:, :30], 1.0)     # the sharp side looks as sharp as it is
    np.testing.assert_array_equal(w[:, 40:], 1.0)     # beyond the disc radius
    lo, _ = losses.depth_step_bounds(sigma)
    np.testing.assert_array_equal(w == 3.0, (lo.numpy() < sigma)[0, :, :, 0])
    gentle = np.tile(np.linspace(0.0, 2.0, 60, dtype=np.float32), (1, 40, 1))[..., None]
    np.testing.assert_array_equal(losses.hidden_side_weights(gentle, 3.0).numpy(), 1.0)

    t = build_trainer(tiny_cfg(variant="B", use_aux=True, smooth_weight=0.5,
                               hidden_side_weight=4.0), seed=0)
    t.set_phase("joint")
    el = make_element()                 # the second crop's ramp is rolled: a 7 px depth step
    syn = {k: tf.constant(v) for k, v in el["synthetic"].items()}
    hidden = losses.hidden_side_weights(syn["sigma_norm"] * 7.0, 4.0)
    assert float(tf.reduce_max(hidden)) == 4.0
    weights = losses.visibility_weights(syn["image"], 0.5) * hidden
    out = t.blur_estimator(syn["image"], training=True)      # the step's forward pass
    mse = losses.mse_per_example(out["defocus"], syn["sigma_norm"], weights)
    aux = losses.aux_per_example(out, syn["sigma_norm"], weights)
    logs = {k: float(v) for k, v in t.train_step(el).items()}
    np.testing.assert_allclose(logs["total"], float(tf.reduce_mean(mse + aux)), rtol=1e-4)
    np.testing.assert_allclose(logs["mse"], float(tf.reduce_mean(mse)), rtol=1e-4)


def test_depth_step_tolerance_trains_to_the_nearest_accepted_sigma_and_logs_the_mse():
    """--depth_step_tolerance: map and aux terms measure the distance to [lo, hi] (zero inside,
    gradient towards the interval); the logged mse is still the MSE to the true sigma."""
    pred = tf.constant([[[[0.1], [0.5], [0.9]]]])
    bounds = (tf.constant([[[[0.2], [0.2], [0.2]]]]), tf.constant([[[[0.6], [0.6], [0.6]]]]))
    with tf.GradientTape() as tape:
        tape.watch(pred)
        loss = losses.mse_per_example(pred, losses.tolerant_target(pred, bounds))
    np.testing.assert_allclose(loss, [(0.1 ** 2 + 0.3 ** 2) / 3], rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(loss, pred)[0, 0, :, 0],
                               [2 * -0.1 / 3, 0.0, 2 * 0.3 / 3], rtol=1e-5, atol=1e-7)

    t = build_trainer(tiny_cfg(variant="B", use_aux=True, depth_step_tolerance=True), seed=0)
    t.set_phase("joint")
    el = make_element()                 # the second crop's ramp is rolled: a 7 px depth step
    syn = {k: tf.constant(v) for k, v in el["synthetic"].items()}
    lo, hi = losses.depth_step_bounds(syn["sigma_norm"] * 7.0)
    assert float(tf.reduce_sum(hi - lo)) > 0.0
    bounds = (lo / 7.0, hi / 7.0)
    out = t.blur_estimator(syn["image"], training=True)      # the step's forward pass
    pixel = losses.mse_per_example(out["defocus"], losses.tolerant_target(out["defocus"], bounds))
    aux = losses.aux_per_example(out, syn["sigma_norm"], bounds=bounds)
    mse = losses.mse_per_example(out["defocus"], syn["sigma_norm"])
    logs = {k: float(v) for k, v in t.train_step(el).items()}
    np.testing.assert_allclose(logs["total"], float(tf.reduce_mean(pixel + aux)), rtol=1e-4)
    np.testing.assert_allclose(logs["aux_mse"], float(tf.reduce_mean(aux)), rtol=1e-4)
    np.testing.assert_allclose(logs["mse"], float(tf.reduce_mean(mse)), rtol=1e-4)
    assert float(tf.reduce_mean(pixel)) < logs["mse"] - 1e-4   # the step's pixels cost less


def test_pixel_loss_step_trains_with_the_mse_before_it():
    """--pixel_loss_step: the MSE trains map and aux terms (phases ``*_mse``, aux logged as
    aux_mse) before that step, --pixel_loss from it; one flagfile runs both stages."""
    t = build_trainer(tiny_cfg(variant="B", use_aux=True, pixel_loss="l1", pixel_loss_step=3,
                               freeze_norm_step=3), seed=0)
    assert [t.phase_for_step(s) for s in (0, 2, 3)] == ["joint_mse", "joint_mse",
                                                        "joint_frozen_norm"]
    el = make_element()
    t.set_phase("joint_mse")
    assert t.pixel_loss == "mse"
    out = t.blur_estimator(el["synthetic"]["image"], training=True)
    aux = losses.aux_per_example(out, el["synthetic"]["sigma_norm"], kind="mse")
    logs = {k: float(v) for k, v in t.train_step(el).items()}
    assert "aux_l1" not in logs
    np.testing.assert_allclose(logs["aux_mse"], float(tf.reduce_mean(aux)), rtol=1e-4)
    np.testing.assert_allclose(logs["total"], logs["mse"] + logs["aux_mse"], rtol=1e-4)

    t.set_phase("joint_frozen_norm")
    t.reset_train_metrics()
    assert t.pixel_loss == "l1"
    out = t.blur_estimator(el["synthetic"]["image"], training=False)   # the frozen step's pass
    l1 = losses.pixel_loss_per_example(out["defocus"], el["synthetic"]["sigma_norm"], kind="l1")
    logs = {k: float(v) for k, v in t.train_step(el).items()}
    assert "aux_mse" not in logs
    np.testing.assert_allclose(logs["total"], float(tf.reduce_mean(l1)) + logs["aux_l1"],
                               rtol=1e-4)
    with pytest.raises(ValueError, match="pixel_loss_step"):
        tiny_cfg(pixel_loss_step=2)                      # the MSE from step 2: nothing to switch
    with pytest.raises(ValueError, match="phase"):
        build_trainer(tiny_cfg(variant="B"), seed=0).set_phase("joint_mse")


def test_frozen_norm_phase_trains_beta_on_the_moving_statistics():
    """--freeze_norm_step: from that step the joint step runs B's BatchNorm on its moving
    statistics (they stay put) while the betas and every other weight still train."""
    t = build_trainer(tiny_cfg(variant="B", freeze_norm_step=3), seed=0)
    assert [t.phase_for_step(s) for s in (0, 2, 3, 9)] == ["joint", "joint",
                                                           "joint_frozen_norm",
                                                           "joint_frozen_norm"]
    bns = [l for l in t.blur_estimator.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns
    el = make_element()
    t.set_phase("joint")
    before = [np.array(l.moving_mean) for l in bns]
    t.train_step(el)
    assert any(not np.array_equal(a, np.asarray(l.moving_mean)) for a, l in zip(before, bns))

    t.set_phase("joint_frozen_norm")
    before = [np.array(l.moving_mean) for l in bns]
    beta = [np.array(l.beta) for l in bns]
    out = t.blur_estimator(el["synthetic"]["image"], training=False)
    mse = losses.mse_per_example(out["defocus"], el["synthetic"]["sigma_norm"])
    t.reset_train_metrics()
    logs = t.train_step(el)
    np.testing.assert_allclose(float(logs["mse"]), float(tf.reduce_mean(mse)), rtol=1e-4)
    for a, l in zip(before, bns):
        np.testing.assert_array_equal(a, np.asarray(l.moving_mean))
    assert any(not np.array_equal(b, np.asarray(l.beta)) for b, l in zip(beta, bns))
    with pytest.raises(ValueError, match="freeze_norm_step"):
        tiny_cfg(pretrain_steps=5, freeze_norm_step=2)


def test_init_checkpoint_warm_starts_one_two_and_three_scale_b(tmp_path):
    """--init_checkpoint copies B (auxiliary heads included) from a run's latest checkpoint; a
    two-scale B starts as exactly that B (its fusion's last conv is zero), a three-scale B as
    exactly a two-scale run's B, and a B of another width is refused by name."""
    source = build_trainer(tiny_cfg(variant="B", use_aux=True), seed=3)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(trainer=source),
                                         str(tmp_path / "checkpoints"), max_to_keep=1,
                                         checkpoint_name="ckpt")
    manager.save(checkpoint_number=5)
    x = np.random.default_rng(2).random((1, 48, 80, 3)).astype(np.float32)   # half: 24x40
    want = source.blur_estimator(x, training=False)
    for scales in (1, 2):
        t = build_trainer(tiny_cfg(variant="B", use_aux=True, scales=scales,
                                   init_checkpoint=str(tmp_path)), seed=4)
        got = t.blur_estimator(x, training=False)
        for name in ("defocus", "aux_2", "feature"):
            np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
        np.testing.assert_allclose(float32_inference_model(t.blur_estimator)(x),
                                   want["defocus"], atol=1e-6)
    with pytest.raises(ValueError, match="B of width"):
        build_trainer(tiny_cfg(variant="B", width=2 * WIDTH, init_checkpoint=str(tmp_path)))
    # A three-scale B from a two-scale run starts as exactly that two-scale B (fusion included).
    two = build_trainer(tiny_cfg(variant="B", use_aux=True, scales=2), seed=5)
    model_checks.randomize_weights(two.blur_estimator.get_layer("fuse_out"), seed=6)
    tf.train.CheckpointManager(tf.train.Checkpoint(trainer=two), str(tmp_path / "two"),
                               max_to_keep=1, checkpoint_name="ckpt").save(checkpoint_number=7)
    want = two.blur_estimator(x, training=False)
    t = build_trainer(tiny_cfg(variant="B", use_aux=True, scales=3,
                               init_checkpoint=str(tmp_path / "two")), seed=4)
    got = t.blur_estimator(x, training=False)
    assert np.abs(want["defocus"] - source.blur_estimator(x, training=False)["defocus"]).max() > 1e-4
    for name in ("defocus", "aux_2", "feature"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        build_trainer(tiny_cfg(variant="B", init_checkpoint=str(tmp_path / "checkpoints" / "x")))


def test_init_checkpoint_warm_starts_a_cue_b_from_a_b_without_cues(tmp_path):
    """--cues with --init_checkpoint of a run without cues: the cue inputs start at zero, so
    the new B computes exactly the run's B (two-scale, the default model's form); then the cue
    weights train."""
    source = build_trainer(tiny_cfg(variant="B", use_aux=True, scales=2), seed=3)
    model_checks.randomize_weights(source.blur_estimator.get_layer("fuse_out"), seed=6)
    tf.train.CheckpointManager(tf.train.Checkpoint(trainer=source), str(tmp_path),
                               max_to_keep=1, checkpoint_name="ckpt").save(checkpoint_number=5)
    x = np.random.default_rng(2).random((1, 48, 80, 3)).astype(np.float32)
    want = source.blur_estimator(x, training=False)
    t = build_trainer(tiny_cfg(variant="B", use_aux=True, scales=2, cues=True,
                               init_checkpoint=str(tmp_path)), seed=4)
    got = t.blur_estimator(x, training=False)
    for name in ("defocus", "aux_2", "feature"):
        # The first convolution sums 3 + cue channels where the source summed 3: oneDNN picks
        # kernels by shape and CPU, so float32 rounding differs (up to 2.5e-4 at 4 of 3,840
        # pixels on an AVX2 machine, mean 1.3e-5 for the features; none on another); a B that
        # is not the source's differs everywhere.
        diff = np.abs(np.asarray(got[name]) - np.asarray(want[name]))
        assert diff.max() < 1e-3 and diff.mean() < 1e-4, (name, diff.max(), diff.mean())
    first = next(l for l in t.blur_estimator._flatten_layers() if l.name == "block1_conv1")
    kernel = np.asarray(first.kernel)
    assert kernel.shape[2] == 3 + NUM_CUES and not kernel[:, :, 3:].any()
    t.train_step(make_element())
    assert np.asarray(first.kernel)[:, :, 3:].any()


def test_step_bounds_head_trains_on_depth_step_bounds_and_warm_starts_from_a_b_without_it(
        tmp_path):
    """--step_bounds_weight: B (two-scale, the default model's form) gets a 2-channel head
    whose pixel loss against depth_step_bounds' (lo, hi) / 7 joins the total; warm-started from
    a run's B without the head it computes exactly that B's map, its inference model has no
    head, and a weight without the head is refused."""
    source = build_trainer(tiny_cfg(variant="B", use_aux=True, scales=2), seed=3)
    tf.train.CheckpointManager(tf.train.Checkpoint(trainer=source), str(tmp_path),
                               max_to_keep=1, checkpoint_name="ckpt").save(checkpoint_number=5)
    t = build_trainer(tiny_cfg(variant="B", use_aux=True, scales=2, smooth_weight=0.5,
                               step_bounds_weight=2.0, init_checkpoint=str(tmp_path)), seed=4)
    x = np.random.default_rng(2).random((1, 48, 80, 3)).astype(np.float32)
    out = t.blur_estimator(x, training=False)
    assert out["step_bounds"].shape == (1, 48, 80, 2)
    np.testing.assert_allclose(out["defocus"], source.blur_estimator(x, training=False)["defocus"],
                               atol=1e-6)
    inf = float32_inference_model(t.blur_estimator)
    assert not any("us_c" in l.name for l in inf._flatten_layers())
    np.testing.assert_allclose(inf(x), out["defocus"], atol=1e-6)

    t.set_phase("joint")
    el = make_element()                 # the second crop's ramp is rolled: a 7 px depth step
    syn = {k: tf.constant(v) for k, v in el["synthetic"].items()}
    lo, hi = losses.depth_step_bounds(syn["sigma_norm"] * 7.0)
    assert float(tf.reduce_sum(hi - lo)) > 0.0
    weights = losses.visibility_weights(syn["image"], 0.5)
    head = t.blur_estimator.get_layer("one_scale").get_layer("us_c2")
    before = np.array(head.kernel)
    out = t.blur_estimator(syn["image"], training=True)      # the step's forward pass
    mse = losses.mse_per_example(out["defocus"], syn["sigma_norm"], weights)
    aux = losses.aux_per_example(out, syn["sigma_norm"], weights)
    step = losses.mse_per_example(out["step_bounds"], tf.concat([lo, hi], -1) / 7.0, weights)
    logs = {k: float(v) for k, v in t.train_step(el).items()}
    np.testing.assert_allclose(logs["step_bounds"], float(tf.reduce_mean(step)), rtol=1e-4)
    np.testing.assert_allclose(logs["total"], float(tf.reduce_mean(mse + aux + 2.0 * step)),
                               rtol=1e-4)
    assert not np.array_equal(before, np.array(head.kernel))
    with pytest.raises(ValueError, match="step_head"):
        DMENetTrainer(source.blur_estimator, weights=LossWeights(step_bounds=1.0))
