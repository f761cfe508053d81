"""Data-engine benchmark: generation speed and tf.data throughput (issue 2).

Prints, measured in one run:
1. generation images/s at 640x480 (``synthesize``, gaussian PSF, >= 200 depth layers) in one
   process and in ``--workers`` processes (target >= 1 image/s on 2 cores);
2. training-patch throughput (240x240 crops with the DMENet augmentation) of the tf.data
   pipeline reading the written SYNDOF files, beside a plain Python loop doing the same work
   (read_image + label decode + crop/flip/rot90), and their ratio (target >= 200 patches/s).

    python benchmarks/data_engine.py [--num_images=8 --workers=2 --seconds=15]
"""

import concurrent.futures
import multiprocessing
import os
import resource
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 8, "Images rendered (and written) for the benchmark.")
flags.DEFINE_integer("width", 640, "Rendered width [px].")
flags.DEFINE_integer("height", 480, "Rendered height [px].")
flags.DEFINE_integer("workers", 0, "Processes for parallel generation (0 = CPU count).")
flags.DEFINE_integer("patch_size", 240, "Training patch size [px].")
flags.DEFINE_integer("batch_size", 9, "Patches per batch for the tf.data measurement.")
flags.DEFINE_float("seconds", 15.0, "Measurement time per throughput figure [s].")
flags.DEFINE_string("out_dir", None, "Where to write the SYNDOF files (default: a temp dir).")


def _render(args):
    seed, width, height = args
    from tf_defocus.data import synthesize

    t0 = time.perf_counter()
    sample = synthesize.synthesize(seed, width, height, psf="gaussian")
    return sample, time.perf_counter() - t0


def _cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return r.ru_utime + r.ru_stime


def _python_loop_patches(source, patch, seconds, rng):
    """Plain Python: decode files in order, DMENet-augment one crop each.

    Returns (patches/s, CPU ms per patch)."""
    import numpy as np

    n, t0, c0 = 0, time.perf_counter(), _cpu_s()
    while time.perf_counter() - t0 < seconds:
        ex = source.examples[n % len(source.examples)]
        image, sigma = source.load(ex)
        h, w = sigma.shape
        y, x = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
        im, lab = image[y:y + patch, x:x + patch], sigma[y:y + patch, x:x + patch]
        if rng.random() < 0.5:
            im, lab = im[:, ::-1], lab[:, ::-1]
        k = int(rng.integers(0, 4))
        im, lab = np.ascontiguousarray(np.rot90(im, k)), np.ascontiguousarray(np.rot90(lab, k))
        _ = np.clip(lab / 7.0, 0.0, 1.0)
        n += 1
    return n / (time.perf_counter() - t0), (_cpu_s() - c0) / n * 1e3


def _tfdata_patches(cfg, seconds, batch):
    from tf_defocus.data import pipeline

    ds = pipeline.make_domain_dataset(cfg, "synthetic", batch_size=batch).prefetch(4)
    it = iter(ds)
    for _ in range(3):  # warm-up: tracing, thread pools, autotuning
        next(it)
    n, t0, c0 = 0, time.perf_counter(), _cpu_s()
    while time.perf_counter() - t0 < seconds:
        el = next(it)
        n += int(el["image"].shape[0])
    # CPU time includes prefetched-but-unconsumed work: a slight overestimate per patch.
    return n / (time.perf_counter() - t0), (_cpu_s() - c0) / n * 1e3


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from tf_defocus.data import pipeline, readers, synthesize

    cores = os.cpu_count() or 1
    workers = FLAGS.workers or cores
    w, h, n = FLAGS.width, FLAGS.height, FLAGS.num_images
    print(f"machine: {cores} CPU core(s); load average before the run {os.getloadavg()[0]:.1f}; "
          f"TensorFlow {tf.__version__}")

    # 1. Generation.
    print(f"\n[1] generation: synthesize(seed, {w}, {h}, psf='gaussian')")
    t0 = time.perf_counter()
    first, t_first = _render((0, w, h))
    layers = first.camera.get("num_layers")
    single = [t_first]
    for seed in range(1, min(n, 3)):
        single.append(_render((seed, w, h))[1])
    single_ips = len(single) / sum(single)
    print(f"  one process : {single_ips:.2f} images/s ({np.mean(single):.2f} s/image over {len(single)}), "
          f"depth layers: {layers}")
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(_render, [(10_000 + i, 64, 48) for i in range(workers)]))  # start workers
        t0 = time.perf_counter()
        samples = list(pool.map(_render, [(seed, w, h) for seed in range(n)]))
        par_s = time.perf_counter() - t0
    par_ips = n / par_s
    print(f"  {workers} processes: {par_ips:.2f} images/s ({n} images in {par_s:.1f} s); "
          f"speed-up x{par_ips / single_ips:.2f}")
    ok_gen = par_ips >= 1.0 and (layers or 0) >= 200
    print(f"  target >= 1 image/s with >= 200 layers: {'MET' if ok_gen else 'NOT MET'}")

    # 2. tf.data throughput from written files.
    out = FLAGS.out_dir or tempfile.mkdtemp(prefix="tf_defocus_bench_")
    for i, (sample, _) in enumerate(samples):
        synthesize.write_syndof_sample(out, f"{i:05d}", sample)
    print(f"\n[2] training patches {FLAGS.patch_size}x{FLAGS.patch_size} from {n} SYNDOF files in {out}")
    source = readers.syndof(out, "sigma10")
    print(f"  (CPU ms/patch is insensitive to other load; 'free-core bound' = {cores} cores x 1000 / CPU ms)")
    py, py_cpu = _python_loop_patches(source, FLAGS.patch_size, FLAGS.seconds, np.random.default_rng(0))
    print(f"  plain Python loop (read_image + label decode + crop/flip/rot90): {py:.1f} patches/s, "
          f"{py_cpu:.1f} CPU ms/patch")
    base = dict(patch_size=FLAGS.patch_size, synthetic_dir=(out,), seed=0, deterministic=False)
    rows = [("streaming decode, 1 crop per decoded file (crops_per_image=1)", {"crops_per_image": 1}),
            ("streaming decode, 2 crops per decoded file (default)", {}),
            ("streaming decode, 4 crops per decoded file (crops_per_image=4)", {"crops_per_image": 4}),
            ("in memory (in_memory=True; how procedural pools run)", {"in_memory": True})]
    results = {}
    for label, extra in rows:
        rate, cpu = _tfdata_patches(pipeline.DataConfig(**base, **extra), FLAGS.seconds, FLAGS.batch_size)
        results[label] = rate
        print(f"  tf.data, {label}: {rate:.1f} patches/s = x{rate / py:.2f} the Python loop; "
              f"{cpu:.1f} CPU ms/patch -> free-core bound {cores * 1000 / cpu:.0f} patches/s")
    stream = results[rows[1][0]]
    best = max(results.values())
    print(f"  target >= 200 patches/s: default {'MET' if stream >= 200 else 'NOT MET'} "
          f"({stream:.0f}), best mode {'MET' if best >= 200 else 'NOT MET'} ({best:.0f}); "
          f"a DMENet step uses 9 patches")


if __name__ == "__main__":
    app.run(main)
