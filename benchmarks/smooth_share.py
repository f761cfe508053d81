"""Share of smooth pixels (blur invisible) in layered scenes against real photos (issue 11).

Renders ``--scenes`` sharp layered scenes (``tf_defocus.data.scenes.layered_scene``, 640x480,
training photos) with the current surface mix and prints the mean share of smooth pixels
(``metrics.smooth_pixels``: grey std < 2 levels in 15x15) beside that of the real
package photos (training split, shrunk to at most 640 px). ``scenes.SURFACE_WEIGHTS`` was chosen
with it: the first mix (photo, smooth, procedural = 0.45, 0.4, 0.15) gave 47% against the photos'
31%, and the default model stayed at the constant-predictor loss on it.

    python benchmarks/smooth_share.py --scenes=48

``--data_dir=DIR`` (repeatable; a generated set or a training pool folder) instead prints, per
band of true sigma, the share of its pixels, the visible (not smooth) fraction of them, and
their share of the training loss weight when smooth pixels weigh ``--smooth_weight``: whether
a band of blur is starved in training.

    python benchmarks/smooth_share.py --data_dir=~/.cache/tf_defocus/pools/<pool> --data_dir=data/val_realistic
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


from visible_error import BANDS_PX  # noqa: E402  (benchmarks/visible_error.py)


def label_bands(root, images, smooth_weight):
    """Per sigma band of ``BANDS_PX``: (share of pixels, visible fraction, loss-weight share)
    over the first ``images`` images of a generated set."""
    from smooth_in_focus import load_validation_set
    from tf_defocus import metrics
    n = len(BANDS_PX) - 1
    total, visible = np.zeros(n), np.zeros(n)
    for _, image, sigma in load_validation_set(root, images):
        vis = ~metrics.smooth_pixels(image)
        band = np.clip(np.searchsorted(BANDS_PX, sigma, side="right") - 1, 0, n - 1)
        total += np.bincount(band.ravel(), minlength=n)
        visible += np.bincount(band[vis], minlength=n)
    weight = visible + smooth_weight * (total - visible)
    return total / total.sum(), visible / np.maximum(total, 1), weight / weight.sum()


def main(args):
    if args.data_dir:
        names = "  ".join(f"[{a:g}, {b:g})" for a, b in zip(BANDS_PX[:-1], BANDS_PX[1:]))
        for root in args.data_dir:
            share, vis, weight = label_bands(os.path.expanduser(root), args.images, args.smooth_weight)
            print(f"{root}: first {args.images} images; per true sigma band [px] {names}")
            for label, row in (("share of pixels", share), ("visible fraction", vis),
                               (f"loss-weight share (smooth x {args.smooth_weight:g})", weight)):
                print(f"  {label:>34s}  " + "  ".join(f"{v:7.3f}" for v in row))
        return
    from error_breakdown import photo_smooth_shares, smooth_share
    from tf_defocus.data import photos, procedural, scenes, synthesize
    lib = photos.library("train")
    rng = np.random.default_rng(args.seed)
    shares = [smooth_share(np.asarray(scenes.layered_scene(rng, 640, 480, lib)[0], np.float32))
              for _ in range(args.scenes)]
    leaves = [smooth_share(procedural.dead_leaves_scene(
        rng, 640, 480, smooth_share=synthesize.MIXED_SMOOTH_LEAF_SHARE)[0]) for _ in range(args.scenes)]
    real = photo_smooth_shares()
    print(f"smooth-pixel share: {100 * np.mean(shares):.0f}% in {args.scenes} sharp layered scenes "
          f"(surface weights {scenes.SURFACE_WEIGHTS}), {100 * np.mean(leaves):.0f}% in the mixed "
          f"pool's dead leaves (smooth_share {synthesize.MIXED_SMOOTH_LEAF_SHARE}), "
          f"{100 * np.mean(real):.0f}% in {len(real)} real package photos")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", type=int, default=48)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--data_dir", action="append", help="generated set or pool folder (repeatable)")
    p.add_argument("--images", type=int, default=64, help="images per --data_dir")
    p.add_argument("--smooth_weight", type=float, default=0.1, help="the recipe's --smooth_weight")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
