"""Where does a model's sigma error come from? Error by true-sigma bin and by local contrast.

On a SYNDOF-layout set with true sigma (the validation set, ``configs/validation_set.flags``),
for each model: mean true and predicted sigma [px] and MAE [px] per bin of true sigma, and for
smooth pixels (local grey std < 2 levels in 15x15, ``metrics.SMOOTH_STD_MAX``: blur there is
not visible, only the scene layout can tell it) against textured pixels. With ``--pool_dir``
the label distribution of a training pool (``~/.cache/tf_defocus/pools/...``) is printed
beside the set's, at the pool's native scale and after a rescale factor ``--pool_scale``
(what ``--scale_mode=random`` does to the labels on average). With ``--photos`` the share of
smooth pixels in the set's all-in-focus scenes is printed beside that of real photos (the
package photos of ``tf_defocus.data.photos``, training split, shrunk to at most 640 px).

Issue 11 finding it was written for: the first default-model run predicted ~2.5 px everywhere
and 2.6 px on average for true sigma >= 5 px; its random rescale had shrunk the training labels
to a mean of 2.05 px against 2.91 px on the validation set.

    python benchmarks/error_breakdown.py --data_dir=data/val_realistic --model=candidate=runs/snap/default.keras
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

SIGMA_BINS_PX = (0.0, 1.0, 3.0, 5.0, 7.01)


def _load_set(root):
    from smooth_in_focus import load_validation_set
    from tf_defocus import metrics
    return [(image, sigma, metrics.smooth_pixels(image))
            for _, image, sigma in load_validation_set(root)]


def smooth_share(image):
    """Share of smooth pixels (``metrics.smooth_pixels``) of an image."""
    from tf_defocus import metrics
    return float(metrics.smooth_pixels(image).mean())


def photo_smooth_shares(max_side=640):
    """Smooth shares of the real package photos (training split), shrunk to <= ``max_side``."""
    import cv2
    from tf_defocus.data import photos
    out = []
    for im in photos.library("train").images():
        im = np.asarray(im, np.float32)
        im = im / 255.0 if im.max() > 1.5 else im
        im = np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im[..., :3]
        scale = max_side / max(im.shape[:2])
        if scale < 1:
            im = cv2.resize(im, (round(im.shape[1] * scale), round(im.shape[0] * scale)),
                            interpolation=cv2.INTER_AREA)
        out.append(smooth_share(im))
    return out


def _label_stats(name, sigma):
    s = np.concatenate([x.ravel() for x in sigma])
    print(f"{name:>24}: mean {s.mean():.2f} px, std {s.std():.2f}, < 1 px {100 * (s < 1).mean():.0f}%, "
          f">= 5 px {100 * (s >= 5).mean():.0f}%")


def _breakdown(name, truth, pred, smooth):
    t, p, m = (np.concatenate([x.ravel() for x in a]) for a in (truth, pred, smooth))
    err = np.abs(p - t)
    print(f"{name}: MAE {err.mean():.2f} px, mean true {t.mean():.2f} px, mean predicted {p.mean():.2f} px")
    print(f"  {'pixels':>18} {'share %':>8} {'true px':>8} {'pred px':>8} {'MAE px':>7}")
    rows = [(f"sigma [{lo:g}, {hi:.0f})", (t >= lo) & (t < hi))
            for lo, hi in zip(SIGMA_BINS_PX[:-1], SIGMA_BINS_PX[1:])]
    rows += [("smooth", m), ("textured", ~m)]
    for label, sel in rows:
        if sel.any():
            print(f"  {label:>18} {100 * sel.mean():8.1f} {t[sel].mean():8.2f} {p[sel].mean():8.2f} "
                  f"{err[sel].mean():7.2f}")


def main(args):
    from tf_defocus import inference
    root = Path(args.data_dir)
    data = _load_set(root)
    _label_stats(f"{root.name} labels", [s for _, s, _ in data])
    if args.pool_dir:
        from tf_defocus.data.synthesize import read_syndof_sigma
        pool = [read_syndof_sigma(p) for p in sorted(Path(args.pool_dir, "blur_map").glob("*.png"))]
        if not pool:
            raise SystemExit(f"{args.pool_dir}: no blur_map/*.png")
        _label_stats("pool labels", pool)
        _label_stats(f"pool labels x {args.pool_scale:g}", [s * args.pool_scale for s in pool])
    if args.photos:
        aif = [smooth_share(image) for image, sigma, _ in data if sigma.max() < 0.5]
        real = photo_smooth_shares()
        print(f"smooth-pixel share: {100 * np.mean(aif):.0f}% in the {len(aif)} all-in-focus scenes "
              f"of {root.name}, {100 * np.mean(real):.0f}% in {len(real)} real package photos")
    for spec in args.model:
        name, _, path = spec.partition("=")
        est = inference.load_estimator(path or None)
        preds = [est.predict(image) for image, _, _ in data]
        _breakdown(name, [s for _, s, _ in data], preds, [m for _, _, m in data])


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", default="data/val_realistic")
    p.add_argument("--model", action="append", default=[],
                   help="name=PATH, or 'default' for the built-in model (repeatable)")
    p.add_argument("--pool_dir", default=None, help="a training pool folder (SYNDOF layout)")
    p.add_argument("--photos", action="store_true",
                   help="compare the share of smooth pixels with real package photos")
    p.add_argument("--pool_scale", type=float, default=0.7,
                   help="rescale factor applied to the pool labels in the second line")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
