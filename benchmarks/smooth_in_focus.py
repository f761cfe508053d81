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


def smooth_shares(data, maps):
    """[(median px, share read > 1 px) of the smooth in-focus pixels of the all-in-focus scenes,
    the same of every scene] for ``maps`` (id -> sigma px (H, W)) of ``load_validation_set``'s
    ``data``."""
    from tf_defocus import metrics
    aif, every = [], []
    for meta, image, sigma in data:
        values = maps[meta["id"]][metrics.smooth_in_focus_pixels(image, sigma)]
        every.append(values)
        if meta["max_coc_px"] < 2.0:
            aif.append(values)
    return [(float(np.median(v)), float((v > 1).mean())) if len(v) else (np.nan, np.nan)
            for v in (np.concatenate(aif or [[]]), np.concatenate(every))]


def main(args):
    from tf_defocus import inference, metrics
    root = Path(args.data_dir)
    data = load_validation_set(root)
    smooth = [metrics.smooth_in_focus_pixels(image, sigma) for _, image, sigma in data]
    aif = [m["max_coc_px"] < 2.0 for m, _, _ in data]
    print(f"{root}: {len(data)} scenes, {sum(aif)} all in focus; smooth in-focus pixels: "
          f"{sum(int(s.sum()) for a, s in zip(aif, smooth) if a)} in all-in-focus scenes, "
          f"{sum(int(s.sum()) for s in smooth)} in all")
    print(f"{'model':>12} {'AIF median px':>14} {'AIF blurred %':>14} {'all median px':>14} {'all blurred %':>14}")
    for spec in args.model:
        name, _, path = spec.partition("=")
        est = inference.load_estimator(path or None, flips=args.flips)
        (am, ab), (em, eb) = smooth_shares(data, {m["id"]: est.predict(image)
                                                  for m, image, _ in data})
        print(f"{name:>12} {am:14.2f} {100 * ab:14.1f} {em:14.2f} {100 * eb:14.1f}")


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
