"""DMENet training-step benchmark (issue 3).

Prints, measured in one run:
1. the step time of B alone (MSE + aux) vs the full BDSC step (D step + B/S step with content,
   calibration and adversarial losses) at the quickstart width and patch size, and their ratio;
2. the achieved GFLOP/s of a full-width B training step (VGG19 U-Net at 240x240, batch
   ``--full_batch``), with FLOPs counted analytically from B's conv layers (training step
   = 3 x forward: forward, input gradients, weight gradients), beside the GFLOP/s of a large
   float32 matmul measured in the same process: how far the training step is from this
   CPU's practical limit;
3. the step time of the default model's recipe (``--recipe``, the flagfile of its training
   command) and the hours its steps take on this machine: training time differs 5x between
   the machines behind this environment (AVX-512 vs AVX2 AMD EPYC, status.md item 84).

    python benchmarks/train_step.py [--steps=10 --full_batch=1 --threads=0 --recipe=configs/default_model.flags]
"""

import argparse
import os
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small_width", type=float, default=0.125, help="quickstart width")
    p.add_argument("--small_patch", type=int, default=64, help="quickstart patch size [px]")
    p.add_argument("--batch", type=int, default=3, help="patches per domain (3+3+3)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--full_batch", type=int, default=1, help="batch of the full-width step")
    p.add_argument("--full_patch", type=int, default=240, help="patch of the full-width step")
    p.add_argument("--full_steps", type=int, default=3, help="timed full-width steps")
    p.add_argument("--matmul_n", type=int, default=2048, help="matmul size n (n x n @ n x n)")
    p.add_argument("--threads", type=int, default=0,
                   help="TF intra/inter-op threads (0 = TensorFlow's default)")
    p.add_argument("--jit_compile", action="store_true", help="XLA-compile the train steps")
    p.add_argument("--recipe", default="configs/default_model.flags",
                   help="training flagfile whose step to time and project (empty: skip)")
    return p.parse_args()


def element(batch, size, seed=0):
    rng = np.random.default_rng(seed)
    img = lambda: rng.random((batch, size, size, 3), np.float32)
    return {"synthetic": {"image": img(), "sigma_norm": rng.random((batch, size, size, 1),
                                                                    np.float32)},
            "real_mask": {"image": img(),
                          "mask": (rng.random((batch, size, size, 1)) > 0.5).astype(np.float32)},
            "real_unlabelled": {"image": img()}}


def time_steps(trainer, el, steps):
    """(trace + first step seconds, median seconds per step) of the trainer's graph step."""
    import tensorflow as tf

    trainer.set_phase("joint")
    trainer.make_train_function(force=True)
    el = tf.nest.map_structure(tf.constant, el)
    t0 = time.perf_counter()
    trainer.train_function([el])
    first = time.perf_counter() - t0
    trainer.train_function([el])   # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        logs = trainer.train_function([el])
        float(logs["total"])   # wait for the result
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def conv_forward_flops(model, height, width):
    """Multiply-adds x 2 of every Conv2D of ``model`` for one (height, width) image."""
    import keras

    convs = [l for l in model._flatten_layers() if isinstance(l, keras.layers.Conv2D)]
    probe = keras.Model(model.inputs, [l.output for l in convs])
    outs = probe([np.zeros((1, height, width, 3), np.float32)])
    total = 0
    for layer, out in zip(convs, outs):
        kh, kw, cin, cout = layer.kernel.shape
        _, oh, ow, _ = out.shape
        total += 2 * oh * ow * kh * kw * cin * cout
    return total


def matmul_gflops(n, seconds=3.0):
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    mm = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    float(mm(a, b))
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or count < 3:
        float(mm(a, b))
        count += 1
    dt = (time.perf_counter() - t0) / count
    return 2.0 * n ** 3 / dt / 1e9, dt


def main():
    args = parse_args()
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from tf_defocus import config as cfglib
    from tf_defocus.training.config import DMENetConfig
    from tf_defocus.training.dmenet_task import build_trainer
    dmenet_config = lambda **values: cfglib.from_flat(DMENetConfig, values)

    from machine import cpu_model
    print(f"CPU: {cpu_model()}, TF {tf.__version__}, threads: "
          f"{args.threads or 'default'}, jit_compile: {args.jit_compile}")

    # 1. B alone vs full BDSC at the quickstart size.
    common = dict(width=args.small_width, patch_size=args.small_patch, jit_compile=args.jit_compile,
                  batch_synthetic=args.batch, batch_real_mask=args.batch,
                  batch_real_unlabelled=args.batch)
    el = element(args.batch, args.small_patch)
    b_trainer = build_trainer(dmenet_config(variant="B", use_aux=True, **common), seed=0)
    b_first, b_step = time_steps(b_trainer, el, args.steps)
    full_trainer = build_trainer(dmenet_config(variant="BDSC", **common), seed=0)
    f_first, f_step = time_steps(full_trainer, el, args.steps)
    print(f"\n[1] width {args.small_width}, {args.small_patch}x{args.small_patch}, batch "
          f"{args.batch}+{args.batch}+{args.batch} (median of {args.steps} steps)")
    print(f"  B alone (MSE + aux, synthetic batch only): {b_step * 1e3:8.1f} ms/step "
          f"(trace + first step {b_first:.1f} s)")
    print(f"  full BDSC (D step + B/S step, 3 domains):  {f_step * 1e3:8.1f} ms/step "
          f"(trace + first step {f_first:.1f} s)")
    print(f"  ratio BDSC / B: {f_step / b_step:.2f}x")
    del b_trainer, full_trainer

    # 2. Full-width B training step vs the matmul limit.
    p = args.full_patch
    big = build_trainer(dmenet_config(variant="B", use_aux=True, width=1.0, patch_size=p,
                                      batch_synthetic=args.full_batch,
                                      jit_compile=args.jit_compile), seed=0)
    fwd = conv_forward_flops(big.blur_estimator, p, p)
    step_flops = 3 * fwd * args.full_batch
    first, step = time_steps(big, element(args.full_batch, p), args.full_steps)
    achieved = step_flops / step / 1e9
    peak, mm_dt = matmul_gflops(args.matmul_n)
    params = sum(int(np.prod(v.shape)) for v in big.blur_estimator.trainable_variables)
    print(f"\n[2] full-width B ({params / 1e6:.1f} M trainable params), {p}x{p}, batch "
          f"{args.full_batch}")
    print(f"  conv FLOPs: forward {fwd / 1e9:.1f} GFLOP/image; training step {step_flops / 1e9:.1f} "
          f"GFLOP (3 x forward)")
    print(f"  step time: {step:.2f} s (median of {args.full_steps}; trace + first {first:.1f} s)")
    print(f"  achieved: {achieved:.1f} GFLOP/s")
    print(f"  float32 matmul {args.matmul_n}x{args.matmul_n}: {peak:.1f} GFLOP/s "
          f"({mm_dt * 1e3:.0f} ms each)")
    print(f"  training step / matmul: {achieved / peak:.2f} of the matmul rate")
    del big
    if args.recipe:
        time_recipe(args.recipe, args.steps)


def recipe_configs(flagfile):
    """The ``DMENetConfig`` of a train-CLI flagfile and of each later stage (``--then``),
    parsed as the train CLI parses them (input paths are not checked)."""
    from tf_defocus import train

    first = train.parse_flagfile(flagfile)
    return [first] + [train.parse_flagfile(stage) for stage in first.schedule.then]


def time_recipe(flagfile, steps):
    """Print the step time of ``flagfile``'s first stage (its network, patch and batch, on
    random data) and the hours of every stage's steps at that rate."""
    from tf_defocus.training.dmenet_task import build_trainer

    stages = recipe_configs(flagfile)
    cfg = stages[0]
    trainer = build_trainer(cfg, seed=0)
    d, m = cfg.data, cfg.model
    first, step = time_steps(trainer, element(d.batch_synthetic, d.patch_size), steps)
    total = stages[-1].schedule.train_steps   # a later stage continues the step counter
    print(f"\n[3] the recipe {flagfile}: variant {m.variant}, width {m.width}, scales "
          f"{m.scales}, {d.patch_size}x{d.patch_size}, batch {d.batch_synthetic}")
    print(f"  step time: {step * 1e3:.1f} ms/step (median of {steps}; trace + first "
          f"{first:.1f} s) = {1 / step:.2f} steps/s")
    print(f"  its {total:,} steps: {total * step / 3600:.1f} hours on this machine (steps only; "
          f"validation every {cfg.schedule.val_every} steps and checkpoints come on top)")


if __name__ == "__main__":
    main()
