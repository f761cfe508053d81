"""Does DoFNet train better on the weight map W or on the weighted image W x I? (KCI 2020 claim)

The KCI paper (KCI 2020 summer conference paper on DoF regions) reports that an SRCNN trained on (image, weight map W) did
not converge (a greyscale-looking output after 15,000 iterations), while training on the
weighted image W' = W x I found the DoF region after about 1,400 iterations with 425 images.

This benchmark trains both targets on the same pool, patches, seed, initial weights of the
shared layers and iteration budget, and every ``--eval_every`` iterations compares the focus
map recovered from the network (``DoFNet.inference_model``, i.e. W' divided back by the image
in-graph for the weighted target) with the classical smoothed map W_s on held-out whole
images:

* ``corr``: Pearson correlation per image, averaged (the quality threshold is
  ``corr >= --corr_threshold``, default 0.8: the map's shape is right);
* ``mae``: mean |focus - W_s| per image, averaged (threshold ``--mae_threshold``, 0.1);
* ``auc``: for built-in procedural images, the ROC AUC of (1 - focus) against the renderer's
  true blur mask (1 = blurred) — does the map find the real DoF region? The classical map's
  own AUC is printed as the ceiling a perfect imitation would reach;
* ``target_corr``: correlation of the raw output with its own training target (W_s or
  W_s x I): how much the prediction *looks like* the label. For W' most of it comes from the
  image itself (printed: the correlation of the input image with W_s x I), so a W' prediction
  can look right while carrying no focus information.

``--recipe=srcnn`` trains with SRCNN's own recipe instead of Adam (see ``srcnn_step``).

Outputs in ``--out_dir``: ``dof_convergence.csv`` (one row per target and evaluation),
``dof_convergence.png`` (curves drawn with OpenCV) and ``config.json``. Prints the first
iteration each target reaches each threshold.

    python benchmarks/dof_convergence.py --iterations=3000 --eval_every=100
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--patch_size", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--kernel_sizes", default="9,1,5")
    p.add_argument("--filters", default="64,32")
    p.add_argument("--recipe", default="adam", choices=["adam", "srcnn"],
                   help="adam: the library's training (Adam, Glorot init); srcnn: SRCNN's own "
                   "recipe (SGD momentum 0.9, weights N(0, 0.001), zero biases, last layer's "
                   "learning rate / 10)")
    p.add_argument("--learning_rate", type=float, default=None,
                   help="default 1e-3 (adam) or 1e-4 (srcnn)")
    p.add_argument("--mask_size", type=int, default=15)
    p.add_argument("--image_dir", default=None, help="training photos (default: procedural)")
    p.add_argument("--pool_size", type=int, default=441,
                   help="procedural images incl. the held-out ones (the paper trained on 425)")
    p.add_argument("--source_size", type=int, default=128, help="procedural image side [px]")
    p.add_argument("--val_images", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corr_threshold", type=float, default=0.8)
    p.add_argument("--mae_threshold", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--targets", default="weight,weighted_image")
    p.add_argument("--out_dir", default="benchmarks/results/dof_convergence")
    p.add_argument("--plot_only", action="store_true",
                   help="redraw the PNG from the CSV in --out_dir (use the run's --iterations "
                   "and thresholds) without training")
    return p.parse_args(argv)


def pearson(a, b):
    a = a.ravel().astype(np.float64) - a.mean()
    b = b.ravel().astype(np.float64) - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def _label(target, img, w):
    return w[..., None] if target == "weight" else w[..., None] * img


def evaluate(infer, held_out, target):
    """Mean per-image (corr, mae, auc, target_corr) on the held-out images.

    corr / mae: recovered focus map vs W_s; auc: (1 - focus) vs the true blur mask;
    target_corr: Pearson correlation of the raw network output with its training target
    (W_s, or W_s x I), i.e. how similar the prediction *looks* to the label.
    """
    from tf_defocus.metrics import roc_auc
    corrs, maes, aucs, tcorrs = [], [], [], []
    for i, (im, w) in enumerate(zip(held_out.images, held_out.weights)):
        img = im.astype(np.float32) / 255.0
        raw, focus = infer(img[None])
        raw, focus = np.asarray(raw)[0], np.asarray(focus)[0, ..., 0]
        w = w.astype(np.float32)
        corrs.append(pearson(focus, w))
        maes.append(float(np.abs(focus - w).mean()))
        tcorrs.append(pearson(raw, _label(target, img, w)))
        if held_out.masks is not None:
            aucs.append(roc_auc(1.0 - focus, held_out.masks[i]))
    auc = float(np.nanmean(aucs)) if aucs and not np.all(np.isnan(aucs)) else float("nan")
    return float(np.mean(corrs)), float(np.mean(maes)), auc, float(np.mean(tcorrs))


def image_only_corr(held_out, target):
    """Correlation with the training target reached by a 'network' that ignores focus
    entirely and outputs the input (its grey level for the 1-channel W target)."""
    vals = []
    for im, w in zip(held_out.images, held_out.weights):
        img = im.astype(np.float32) / 255.0
        guess = img.mean(-1, keepdims=True) if target == "weight" else img
        vals.append(pearson(guess, _label(target, img, w.astype(np.float32))))
    return float(np.mean(vals))


def classical_auc(held_out):
    from tf_defocus.metrics import roc_auc
    if held_out.masks is None:
        return float("nan")
    vals = [roc_auc(1.0 - w.astype(np.float32), m) for w, m in zip(held_out.weights, held_out.masks)]
    return float(np.nanmean(vals))


def train_one(target, base_cfg, train_pool, held_out, args, log):
    import tensorflow as tf
    from tf_defocus.training import dof_task

    cfg = cfglib.replace(base_cfg, dof_target=target)
    trainer = dof_task.make_trainer(cfg, seed=cfg.data.seed)

    def both(x):
        raw = trainer.net(x, training=False)
        return raw, trainer.focus([raw, x])
    infer = tf.function(both, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    step = tf.function(trainer.train_step if args.recipe == "adam"
                       else srcnn_step(trainer, cfg))
    batches = dof_task.patch_batches(train_pool, cfg, cfg.data.seed)
    rows, losses = [], []
    t0 = time.perf_counter()
    train_time = 0.0
    for it in range(args.iterations + 1):
        if it % args.eval_every == 0 or it == args.iterations:
            corr, mae, auc, tcorr = evaluate(infer, held_out, target)
            mse = float(np.mean(losses)) if losses else float("nan")
            rows.append(dict(target=target, iteration=it, train_mse=mse, corr=corr, mae=mae,
                             auc=auc, target_corr=tcorr, train_seconds=round(train_time, 2)))
            log(f"  {target:>14s} it {it:5d}  train MSE {mse:.5f}  corr {corr:.3f}  "
                f"MAE {mae:.3f}  AUC {auc:.3f}  output~target corr {tcorr:.3f}  "
                f"({time.perf_counter() - t0:.0f} s)")
            losses = []
        if it == args.iterations:
            break
        batch = {k: tf.constant(v) for k, v in next(batches).items()}
        ts = time.perf_counter()
        out = step(batch)
        losses.append(float(out["loss"]))
        train_time += time.perf_counter() - ts
        trainer.reset_train_metrics()
    return rows, trainer, infer


def srcnn_step(trainer, cfg):
    """SRCNN's training recipe (Dong et al., ECCV 2014, section 4): weights drawn from
    N(0, 0.001^2), biases 0, SGD with momentum 0.9 (their Caffe solver), learning rate
    ``cfg.learning_rate`` for the first two layers and a tenth of it for the last one."""
    import keras
    import tensorflow as tf
    rng = np.random.default_rng(cfg.data.seed)
    for conv in (trainer.net.conv1, trainer.net.conv2, trainer.net.conv3):
        conv.kernel.assign(rng.normal(0.0, 1e-3, conv.kernel.shape).astype(np.float32))
        conv.bias.assign(np.zeros(conv.bias.shape, np.float32))
    opt = keras.optimizers.SGD(learning_rate=cfg.optimizer.learning_rate, momentum=0.9)
    variables = trainer.net.trainable_variables
    opt.build(variables)
    last = {id(v) for v in trainer.net.conv3.trainable_variables}

    def step(data):
        with tf.GradientTape() as tape:
            pred, per_example = trainer._forward(data, training=True)
            loss = tf.reduce_mean(per_example)
        grads = tape.gradient(loss, variables)
        grads = [g * 0.1 if id(v) in last else g for g, v in zip(grads, variables)]
        opt.apply(grads, variables)
        return trainer._update(trainer.train_trackers, data, pred, per_example)
    return step


def first_reaching(rows, key, threshold, larger_is_better):
    for r in rows:
        v = r[key]
        if np.isfinite(v) and ((v >= threshold) if larger_is_better else (v <= threshold)):
            return r["iteration"]
    return None


# ----------------------------------------------------------------------------- plot

def read_csv(path):
    """dof_convergence.csv -> {target: [row dict]} with numeric values."""
    lines = open(path).read().splitlines()
    keys = lines[0].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(keys, line.split(",")))
        for k in keys[1:]:
            row[k] = float(row[k])
        row["iteration"] = int(row["iteration"])
        out.setdefault(row["target"], []).append(row)
    return out


COLORS = {"weight": (40, 40, 220), "weighted_image": (200, 110, 0)}  # BGR


def plot(rows_by_target, args, path):
    """Two panels (corr, MAE vs iteration) drawn with OpenCV; writes PNG atomically."""
    from tf_defocus.imageio import write_image
    pw, ph, ml, mt, mb = 560, 340, 70, 40, 50
    canvas = np.full((ph + mt + mb, 2 * (pw + ml) + 60, 3), 255, np.uint8)
    panels = [("corr", "corr. of recovered map with W_s (thin: output vs own target)", -0.2, 1.0,
               args.corr_threshold),
              ("mae", "MAE vs W_s (held-out)", 0.0, None, args.mae_threshold)]
    font = cv2.FONT_HERSHEY_SIMPLEX
    for pi, (key, title, lo, hi, thr) in enumerate(panels):
        x0 = ml + pi * (pw + ml + 20)
        vals = [r[key] for rows in rows_by_target.values() for r in rows if np.isfinite(r[key])]
        top = hi if hi is not None else max(max(vals, default=1.0), thr) * 1.05
        its = args.iterations or 1
        to_px = lambda it, v: (int(x0 + pw * it / its),
                               int(mt + ph - ph * (np.clip(v, lo, top) - lo) / (top - lo)))
        cv2.rectangle(canvas, (x0, mt), (x0 + pw, mt + ph), (0, 0, 0), 1)
        for frac in np.linspace(0, 1, 5):
            y = int(mt + ph - ph * frac)
            cv2.line(canvas, (x0 - 4, y), (x0, y), (0, 0, 0), 1)
            cv2.putText(canvas, f"{lo + frac * (top - lo):.2f}", (x0 - 60, y + 4), font, 0.4,
                        (0, 0, 0), 1, cv2.LINE_AA)
            xi = int(x0 + pw * frac)
            cv2.line(canvas, (xi, mt + ph), (xi, mt + ph + 4), (0, 0, 0), 1)
            cv2.putText(canvas, f"{int(frac * its)}", (xi - 14, mt + ph + 18), font, 0.4,
                        (0, 0, 0), 1, cv2.LINE_AA)
        ythr = to_px(0, thr)[1]
        for xs in range(x0, x0 + pw, 12):
            cv2.line(canvas, (xs, ythr), (min(xs + 6, x0 + pw), ythr), (120, 120, 120), 1)
        cv2.putText(canvas, title, (x0, mt - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(canvas, "iteration", (x0 + pw // 2 - 30, mt + ph + 40), font, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        for ti, (target, rows) in enumerate(rows_by_target.items()):
            color = COLORS.get(target, (0, 0, 0))
            pts = [to_px(r["iteration"], r[key]) for r in rows if np.isfinite(r[key])]
            if len(pts) > 1:
                cv2.polylines(canvas, [np.array(pts, np.int32)], False, color, 2, cv2.LINE_AA)
            if key == "corr":  # thin: raw output vs its own training target
                pts = [to_px(r["iteration"], r["target_corr"]) for r in rows
                       if np.isfinite(r["target_corr"])]
                if len(pts) > 1:
                    cv2.polylines(canvas, [np.array(pts, np.int32)], False, color, 1, cv2.LINE_AA)
            if pi == 0:
                ly = mt + ph - 44 + 18 * ti
                cv2.line(canvas, (x0 + pw - 170, ly - 4), (x0 + pw - 145, ly - 4),
                         COLORS.get(target, (0, 0, 0)), 2)
                cv2.putText(canvas, target, (x0 + pw - 140, ly), font, 0.45, (0, 0, 0), 1,
                            cv2.LINE_AA)
    write_image(path, cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))


# ----------------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cv2.setNumThreads(args.threads)
    from tf_defocus.imageio import write_text
    from tf_defocus import config as cfglib
    from tf_defocus.training import dof_task
    from tf_defocus.training.config import DoFNetConfig

    log = lambda m: print(m, flush=True)
    if args.learning_rate is None:
        args.learning_rate = 1e-3 if args.recipe == "adam" else 1e-4
    targets = [t for t in args.targets.split(",") if t]
    base = cfglib.from_flat(DoFNetConfig, dict(
        dof_target=targets[0], dof_image_dir=args.image_dir, dof_mask_size=args.mask_size,
        dof_kernel_sizes=args.kernel_sizes, dof_filters=args.filters, width=args.width,
        dof_pool_size=args.pool_size, dof_source_size=args.source_size,
        dof_val_images=args.val_images, patch_size=args.patch_size,
        dof_batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed))
    csv_path = os.path.join(args.out_dir, "dof_convergence.csv")
    png_path = os.path.join(args.out_dir, "dof_convergence.png")
    if args.plot_only:
        plot(read_csv(csv_path), args, png_path)
        log(f"wrote {png_path}")
        return 0
    os.makedirs(args.out_dir, exist_ok=True)
    write_text(os.path.join(args.out_dir, "config.json"),
               json.dumps(dict(vars(args), task=cfglib.to_dict(base)), indent=2, default=str))
    t0 = time.perf_counter()
    pool = dof_task.build_pool(base, verbose=True)  # procedural pools are cached on disk
    train_pool, held_out = dof_task.split_pool(pool, base.val_images)
    log(f"pool: {len(train_pool)} training + {len(held_out)} held-out images "
        f"({time.perf_counter() - t0:.0f} s); patches {base.patch_size} px, batch "
        f"{base.batch_size}, {args.iterations} iterations, recipe {args.recipe} lr "
        f"{base.learning_rate}, "
        f"DoFNet {base.kernel_sizes} {base.filters} width {base.width}")
    ceiling = classical_auc(held_out)
    if np.isfinite(ceiling):
        log(f"classical map W_s itself: AUC vs true blur mask {ceiling:.3f} (ceiling)")

    rows_by_target = {}
    for target in targets:
        log(f"training target={target} (outputting the input image itself would give "
            f"output~target corr {image_only_corr(held_out, target):.3f})")
        rows, _, _ = train_one(target, base, train_pool, held_out, args, log)
        rows_by_target[target] = rows

    keys = ["target", "iteration", "train_mse", "corr", "mae", "auc", "target_corr",
            "train_seconds"]
    lines = [",".join(keys)] + [",".join(str(r[k]) for k in keys)
                                for rows in rows_by_target.values() for r in rows]
    write_text(csv_path, "\n".join(lines) + "\n")
    plot(rows_by_target, args, png_path)

    log("")
    log(f"quality thresholds: corr >= {args.corr_threshold} / MAE <= {args.mae_threshold} "
        f"(recovered focus vs classical W_s, mean over {len(held_out)} held-out images)")
    for target, rows in rows_by_target.items():
        ic = first_reaching(rows, "corr", args.corr_threshold, True)
        im = first_reaching(rows, "mae", args.mae_threshold, False)
        last = rows[-1]
        log(f"  {target:>14s}: corr threshold at iteration {ic if ic is not None else 'never'}, "
            f"MAE threshold at {im if im is not None else 'never'}; final corr {last['corr']:.3f}, "
            f"MAE {last['mae']:.3f}, AUC {last['auc']:.3f}, {last['train_seconds']:.0f} s of "
            f"training")
    log(f"wrote {csv_path} and {png_path} (total {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
