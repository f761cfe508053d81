"""How well a model fits its own training pool, per scene kind (issue 11).

Runs ``--model`` (tiled ``Estimator``) on the first ``--images`` images of a training pool
(SYNDOF layout, e.g. ``~/.cache/tf_defocus/pools/disc_512x384_n1200_<key>``) and prints, per
scene kind of the pool's ``meta/*.json`` (``layered`` / ``procedural`` dead leaves): mean true
and predicted sigma [px], MAE [px], Spearman rho, and the mean prediction on sharp pixels
(true sigma < 1 px). A model that fits one kind and not the other shows here before it shows on
the validation set.

``--calibration`` adds, on visible pixels (not ``metrics.smooth_pixels``) of all kinds, the
median and quartiles of the true sigma per band of the prediction: a model whose median truth
equals its prediction in every band is calibrated on its training data (an L1-trained model
should be), so a monotone recalibration of its output cannot lower its error there.

    python benchmarks/pool_fit.py --model=runs/snap/v3_step5000.keras --pool_dir=POOL --images=24

``--depth_steps`` (no model needed) prints per scene kind the share of pixels near depth steps
(``visible_error.step_shares``); any folder in that layout works, the validation set too:

    python benchmarks/pool_fit.py --depth_steps --pool_dir=data/val_realistic --images=64
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pool_samples(pool_dir, count):
    """Yield (meta dict, image float32 (H, W, 3) [0, 1], true sigma [px] (H, W)) of the first
    ``count`` images of a training pool (SYNDOF layout, ``sigma10`` labels)."""
    from tf_defocus.data.readers import decode_syndof_sigma
    from tf_defocus.imageio import read_image
    root = Path(pool_dir).expanduser()
    metas = sorted((root / "meta").glob("*.json"))[:count]
    if not metas:
        raise SystemExit(f"{root}: no meta/*.json (not a training pool folder)")
    for meta_path in metas:
        stem = meta_path.stem
        yield (json.loads(meta_path.read_text()),
               read_image(str(next((root / "image").glob(stem + ".*")))),
               decode_syndof_sigma(str(root / "blur_map" / f"{stem}.png"), "sigma10"))


def print_depth_step_shares(samples):
    """Per scene kind, the share of pixels near depth steps (``visible_error.step_shares``)."""
    from visible_error import STEP_SHARES, step_shares
    counts = {}
    for meta, image, label in samples:
        kind = meta.get("source", "?")
        counts[kind] = counts.get(kind, 0) + step_shares(image, label)
    print(f"{'scene':>11s} {'pixels':>10s} " + " ".join(f"{n:>12s}" for n in STEP_SHARES))
    for kind, c in sorted(counts.items()):
        print(f"{kind:>11s} {int(c[0]):10d} " + " ".join(f"{v:12.3f}" for v in c[1:] / c[0]))


def main(args):
    if args.depth_steps:
        print_depth_step_shares(pool_samples(args.pool_dir, args.images))
    if not args.model:
        return
    from tf_defocus import inference, metrics
    est = inference.load_estimator(args.model)
    kinds, visible = {}, ([], [])
    for meta, image, label in pool_samples(args.pool_dir, args.images):
        kind = meta.get("source", "?")
        pred = est.predict(image)
        truth_pred = kinds.setdefault(kind, ([], []))
        truth_pred[0].append(label.ravel())
        truth_pred[1].append(pred.ravel())
        if args.calibration:
            v = ~metrics.smooth_pixels(image)
            visible[0].append(label[v])
            visible[1].append(pred[v])
    print(f"{'scene':>11s} {'images':>6s} {'true px':>8s} {'pred px':>8s} {'MAE px':>7s} "
          f"{'rho':>6s} {'sharp pred px':>13s}")
    for kind, (truth, pred) in sorted(kinds.items()):
        t, p = np.concatenate(truth), np.concatenate(pred)
        sharp = p[t < 1.0].mean() if (t < 1.0).any() else float("nan")
        print(f"{kind:>11s} {len(truth):6d} {t.mean():8.2f} {p.mean():8.2f} "
              f"{np.abs(t - p).mean():7.2f} {metrics.spearman(p, t):6.3f} {sharp:13.2f}")
    if args.calibration:
        print_calibration(np.concatenate(visible[0]), np.concatenate(visible[1]))


def print_calibration(truth, pred):
    """Median and quartiles of ``truth`` per 1-px band of ``pred`` (both sigma px, 1-D)."""
    print(f"visible pixels: {truth.size}, MAE {np.abs(truth - pred).mean():.2f} px")
    print(f"{'pred band px':>12s} {'share':>6s} {'mean pred':>9s} {'true q25':>8s} "
          f"{'true median':>11s} {'true q75':>8s}")
    for lo in range(8):
        k = (pred >= lo) & (pred < lo + 1)
        if k.any():
            q25, q50, q75 = np.percentile(truth[k], (25, 50, 75))
            print(f"{f'[{lo}, {lo + 1})':>12s} {k.mean():6.2f} {pred[k].mean():9.2f} "
                  f"{q25:8.2f} {q50:11.2f} {q75:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a .keras, SavedModel or .tflite model")
    parser.add_argument("--pool_dir", required=True, help="a training pool folder (SYNDOF layout)")
    parser.add_argument("--images", type=int, default=24, help="first N images of the pool")
    parser.add_argument("--calibration", action="store_true",
                        help="median true sigma per band of the prediction, visible pixels")
    parser.add_argument("--depth_steps", action="store_true",
                        help="share of pixels near depth steps per scene kind (no model needed)")
    parsed = parser.parse_args()
    if not (parsed.model or parsed.depth_steps):
        parser.error("give --model, --depth_steps or both")
    main(parsed)
