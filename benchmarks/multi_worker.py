"""Multi-worker overhead benchmark (issue 14): DMENet steps/s with 1 vs 2 worker processes
under MultiWorkerMirroredStrategy (TF_CONFIG on 127.0.0.1, CPU ring all-reduce), and the share
of each step spent communicating.

Both runs live on THIS machine: with 2 CPU cores, 2 workers split the cores that 1 worker
uses alone, and their "network" is loopback gRPC. So this measures the overhead of the
multi-worker machinery (collectives, synchronised BatchNorm, per-replica input), not the
speed-up of several machines, which add their own cores and a real network.

Each worker trains the same per-worker batch (``--batch`` patches per domain; global batch =
workers x batch), on fixed in-memory patches (no input-pipeline cost), with traced steps
(timed in turn, medians):
1. the full train step with synchronised BatchNorm (the default for several replicas);
2. the same step with per-replica BatchNorm: the difference is the cost of BN's all-reduces;
3. the gradient all-reduce alone (one batched all-reduce per optimizer, tensors shaped like
   the trainable variables, as the Keras optimizers do).
Communication share = (gradient all-reduce + synchronised-BN cost) / full step.

    python benchmarks/multi_worker.py [--variant=BDSC --width=0.125 --patch=64 --batch=2
                                       --steps=10 --out=results.json]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="BDSC", help="DMENet variant (B, BD, BDC, BDSC)")
    p.add_argument("--width", type=float, default=0.125, help="channel multiplier (quickstart)")
    p.add_argument("--patch", type=int, default=64, help="patch size [px] (quickstart)")
    p.add_argument("--batch", type=int, default=2, help="patches per domain per worker")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--workers", default="1,2", help="worker counts to compare")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    p.add_argument("--worker_index", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--ports", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def median_seconds(fns, steps):
    """Median wall time [s] of each callable of ``fns`` (each returns a tensor to wait on),
    timed in turn ``steps`` times after one warm-up call each (interleaved, so a change in
    the machine's load hits all of them alike)."""
    for fn in fns:
        np.asarray(fn())
    times = [[] for _ in fns]
    for _ in range(steps):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            np.asarray(fn())
            t.append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def run_worker(args):
    """One worker: time the three measurements; the chief prints ``RESULT <json>``."""
    from tf_defocus.training import distribute

    strategy = distribute.multi_worker_strategy("ring")   # before any other TF op
    import keras
    import tensorflow as tf

    from tf_defocus import config as cfglib
    from tf_defocus.training.config import DMENetConfig
    from tf_defocus.training.dmenet_task import build_trainer, needed_domains

    workers = strategy.num_replicas_in_sync
    b = args.batch * workers
    cfg = cfglib.from_flat(DMENetConfig, dict(
        width=args.width, patch_size=args.patch, variant=args.variant, batch_synthetic=b,
        batch_real_mask=b, batch_real_unlabelled=b, sync_batch_norm=True))
    with strategy.scope():
        trainer = build_trainer(cfg, seed=0)
    trainer.set_phase("joint")
    rng = np.random.default_rng(args.worker_index)
    shape = (args.batch, args.patch, args.patch)
    patches = {"synthetic": {"image": rng.random(shape + (3,), np.float32),
                             "sigma_norm": rng.random(shape + (1,), np.float32)},
               "real_mask": {"image": rng.random(shape + (3,), np.float32),
                             "mask": (rng.random(shape + (1,)) > 0.5).astype(np.float32)},
               "real_unlabelled": {"image": rng.random(shape + (3,), np.float32)}}
    data = iter(strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensors(patches).repeat()))
    bn_layers = [l for net in (trainer.blur_estimator, trainer.discriminator, trainer.calibrator)
                 if net is not None for l in net.layers
                 if isinstance(l, keras.layers.BatchNormalization)]
    result = {"workers": workers, "patches_per_step": b * len(needed_domains(
        cfg.model.variant_spec))}
    steps = {}
    for sync in (True, False):   # each traced with its BatchNorm setting
        for layer in bn_layers:
            layer.synchronized = sync
        steps[sync] = distribute.step_function(trainer)
        t0 = time.perf_counter()
        np.asarray(steps[sync](next(data))["total"])
        result[f"first_step_s_sync_bn_{sync}"] = time.perf_counter() - t0

    groups = [trainer.generator_variables, trainer.discriminator_variables]

    @tf.function
    def all_reduce():
        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            out = [ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.ones_like(v) for v in g])
                   for g in groups if g]
            return tf.add_n([tf.reduce_sum(t[0]) for t in out])
        return strategy.experimental_local_results(strategy.run(replica_fn))[0]

    (result["step_s_sync_bn_True"], result["step_s_sync_bn_False"],
     result["grad_all_reduce_s"]) = median_seconds(
        [lambda: steps[True](next(data))["total"], lambda: steps[False](next(data))["total"],
         all_reduce], args.steps)
    result["gradient_megabytes"] = sum(int(np.prod(v.shape)) * 4 for g in groups
                                       for v in g) / 1e6
    if args.worker_index == 0:
        print("RESULT " + json.dumps(result), flush=True)


def run_cluster(args, workers):
    """Start ``workers`` processes of this script with their TF_CONFIG; the chief's result."""
    from tf_defocus.training.cluster import free_local_ports
    ports = free_local_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(workers):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                     "task": {"type": "worker", "index": i}}))
        cmd = [sys.executable, os.path.abspath(__file__), f"--variant={args.variant}",
               f"--width={args.width}", f"--patch={args.patch}", f"--batch={args.batch}",
               f"--steps={args.steps}", f"--worker_index={i}"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker failed:\n{outs[0][-3000:]}\n{outs[-1][-3000:]}")
    return json.loads(outs[0].split("RESULT ")[-1])


def main():
    args = parse_args()
    if args.worker_index is not None:
        run_worker(args)
        return
    import tensorflow as tf   # version line only

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, one machine (loopback "
          f"gRPC): overhead of the multi-worker machinery, not a speed-up measurement.")
    print(f"DMENet {args.variant}, width {args.width}, {args.patch} px patches, {args.batch} "
          f"patches per domain per worker, traced steps, median of {args.steps}")
    rows = [run_cluster(args, int(n)) for n in args.workers.split(",")]
    header = ("workers", "steps/s", "patches/s", "step s", "step s (BN per replica)",
              "grad all-reduce s", "sync-BN cost s", "communication share")
    print(" | ".join(header))
    for r in rows:
        step, local_bn = r["step_s_sync_bn_True"], r["step_s_sync_bn_False"]
        comm = r["grad_all_reduce_s"] + max(step - local_bn, 0.0)
        r.update(steps_per_s=1 / step, communication_share=comm / step,
                 patches_per_s=r["patches_per_step"] / step)
        print(f"{r['workers']} | {r['steps_per_s']:.3f} | {r['patches_per_s']:.2f} | {step:.3f} | "
              f"{local_bn:.3f} | {r['grad_all_reduce_s']:.4f} | {max(step - local_bn, 0):.3f} | "
              f"{100 * r['communication_share']:.0f}%")
    if len(rows) == 2:
        print(f"steps/s ratio {rows[1]['workers']} / {rows[0]['workers']} workers: "
              f"{rows[1]['steps_per_s'] / rows[0]['steps_per_s']:.2f}; patches/s ratio "
              f"{rows[1]['patches_per_s'] / rows[0]['patches_per_s']:.2f} (same cores)")
    print(f"gradients per all-reduce: {rows[0]['gradient_megabytes']:.2f} MB float32")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
