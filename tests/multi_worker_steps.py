"""A few DMENet steps (BDSC, synchronised BatchNorm) on the same global batches from the same
initial weights (seed 0) under several strategies; prints ``RESULT <json>`` (strategy -> per-step logs)
and saves the trainable variables before and after to OUT_<strategy>.npz (``initial_<i>``,
``trained_<i>``). Used by test_multi_worker.py.

    python tests/multi_worker_steps.py local OUT    # one device, then 1 worker x 2 CPU devices
    TF_CONFIG=... python tests/multi_worker_steps.py multi_worker OUT   # 1 replica per worker
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

MODE, OUT = sys.argv[1], sys.argv[2]
if MODE == "local":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategies = {"one_device": tf.distribute.get_strategy(),
                  "local_2_devices": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
else:
    from tf_defocus.training import distribute
    strategies = {"multi_worker": distribute.multi_worker_strategy("ring")}

from tf_defocus import config as cfglib  # noqa: E402  (after the strategy, as the CLI)
from tf_defocus.training import distribute  # noqa: E402
from tf_defocus.training.config import DMENetConfig  # noqa: E402
from tf_defocus.training.dmenet_task import build_trainer  # noqa: E402

P, STEPS, GLOBAL = 32, 2, 2
rng = np.random.default_rng(0)
# Global batches: every domain GLOBAL examples per step, all different.
steps = [{"synthetic": {"image": rng.random((GLOBAL, P, P, 3), np.float32),
                        "sigma_norm": rng.random((GLOBAL, P, P, 1), np.float32)},
          "real_mask": {"image": rng.random((GLOBAL, P, P, 3), np.float32),
                        "mask": (rng.random((GLOBAL, P, P, 1)) > 0.5).astype(np.float32)},
          "real_unlabelled": {"image": rng.random((GLOBAL, P, P, 3), np.float32)}}
         for _ in range(STEPS)]


def replica_batches(context):
    """This input pipeline's per-replica batches: global replica r of R gets examples
    [r * GLOBAL / R, (r + 1) * GLOBAL / R) of every step."""
    size = context.get_per_replica_batch_size(GLOBAL)
    per_pipeline = context.num_replicas_in_sync // context.num_input_pipelines
    first = context.input_pipeline_id * per_pipeline
    items = [tf.nest.map_structure(lambda a: a[r * size:(r + 1) * size], s)
             for s in steps for r in range(first, first + per_pipeline)]
    return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda *a: np.stack(a), *items))


cfg = cfglib.from_flat(DMENetConfig, dict(
    width=0.0625, patch_size=P, variant="BDSC", batch_synthetic=GLOBAL, batch_real_mask=GLOBAL,
    batch_real_unlabelled=GLOBAL, learning_rate=1e-3, sync_batch_norm=True))


def train(strategy):
    """Per-step logs of STEPS steps (initial weights from seed 0); the trainable variables
    before and after."""
    with strategy.scope():
        trainer = build_trainer(cfg, seed=0)
        # SGD: its update is proportional to the gradient, so a gradient-scaling error shows
        # (Adam normalises it away, and turns round-off in ~0 gradients into full steps).
        trainer.compile(b_optimizer=keras.optimizers.SGD(0.05),
                        d_optimizer=keras.optimizers.SGD(0.05), run_eagerly=True)
    variables = trainer.generator_variables + trainer.discriminator_variables
    initial = [np.asarray(v) for v in variables]
    trainer.run_eagerly = True   # tracing costs more than these steps
    trainer.set_phase("joint")
    step = distribute.step_function(trainer)
    data = iter(strategy.distribute_datasets_from_function(replica_batches))
    logs = []
    for _ in range(STEPS):
        trainer.reset_train_metrics()
        logs.append({k: float(v) for k, v in step(next(data)).items()})
    trained = [np.asarray(v) for v in variables]
    return logs, {**{f"initial_{i}": a for i, a in enumerate(initial)},
                  **{f"trained_{i}": a for i, a in enumerate(trained)}}


results = {}
for name, strategy in strategies.items():
    results[name], arrays = train(strategy)
    np.savez(f"{OUT}_{name}.npz", **arrays)
print("RESULT " + json.dumps(results), flush=True)
