"""Does a model call smooth in-focus surfaces blurred? (the quickstart model's failure, issue 11)

On the validation set (``configs/validation_set.flags``), for every model: the median predicted
sigma [px] over the smooth in-focus pixels (``metrics.smooth_in_focus_pixels``: true sigma <=
0.5 px, local grey std < 2 levels) of (a) the all-in-focus scenes and (b) every scene, and the
fraction of those pixels predicted blurred (sigma > 1 px). Target for the default model: (a) at
most 1 px. ``--flips=F`` reads every model with test-time flip averaging
(``inference.flip_averaged``).

    python benchmarks/smooth_in_focus.py --data_dir=data/val_realistic --model=default --model=quickstart=runs/quickstart/blur_estimator.keras
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


def load_validation_set(root, limit=None):
    """[(meta dict, image float32 (H, W, 3) [0, 1], true sigma [px] (H, W))] of a generated set
    (its first ``limit`` scenes if given)."""
    from tf_defocus.data.synthesize import read_syndof_sigma
    from tf_defocus.imageio import read_image
    metas = [json.loads(p.read_text()) for p in sorted((Path(root) / "meta").glob("*.json"))[:limit]]
    if not metas:
        raise SystemExit(f"{root}: no meta/*.json (generate it with configs/validation_set.flags)")
    return [(m, read_image(Path(root) / "image" / f"{m['id']}.png"),
             read_syndof_sigma(Path(root) / "blur_map" / f"{m['id']}.png")) for m in metas]


def main(args):
    from tf_defocus import inference, metrics
    root = Path(args.data_dir)
    data = [(m["max_coc_px"] < 2.0, image, metrics.smooth_in_focus_pixels(image, sigma))
            for m, image, sigma in load_validation_set(root)]
    n_aif = sum(a for a, _, _ in data)
    print(f"{root}: {len(data)} scenes, {n_aif} all in focus; smooth in-focus pixels: "
          f"{sum(int(s.sum()) for a, _, s in data if a)} in all-in-focus scenes, "
          f"{sum(int(s.sum()) for _, _, s in data)} in all")
    print(f"{'model':>12} {'AIF median px':>14} {'AIF blurred %':>14} {'all median px':>14} {'all blurred %':>14}")
    for spec in args.model:
        name, _, path = spec.partition("=")
        est = inference.load_estimator(path or None, flips=args.flips)
        aif, every = [], []
        for is_aif, image, smooth in data:
            if not smooth.any():
                continue
            values = est.predict(image)[smooth]
            every.append(values)
            if is_aif:
                aif.append(values)
        a, e = np.concatenate(aif) if aif else np.array([np.nan]), np.concatenate(every)
        print(f"{name:>12} {np.median(a):14.2f} {100 * (a > 1).mean():14.1f} {np.median(e):14.2f} "
              f"{100 * (e > 1).mean():14.1f}")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", default="data/val_realistic")
    p.add_argument("--model", action="append", default=None,
                   help="name=PATH, or 'default' for the built-in model (repeatable)")
    p.add_argument("--flips", type=int, default=1, choices=(1, 2, 4),
                   help="test-time flip averaging views")
    a = p.parse_args(argv)
    a.model = a.model or ["default"]
    return a


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
