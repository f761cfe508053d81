"""Does a model read bokeh as focus? Point lights brighter than white on the validation set.

``configs/validation_set_lights.flags`` renders the scenes of ``configs/validation_set.flags``
(same seed: same scenes, cameras and labels) with point lights on about half of them
(``tf_defocus.data.highlights``). On the scenes with lights, the *footprint* of the lights is
where the two renders differ by more than 8 grey levels (the bokeh discs and clipped dots).
On those pixels, for each model, with and without the lights (same pixels, same labels):
MAE [px] and, of the pixels blurred by at least 2 px, the share read as in focus (< 1 px): the
failure of reading a bokeh disc's crisp rim as an edge in focus.

    python -m tf_defocus.generate --flagfile=configs/validation_set.flags --out_dir=data/val_realistic
    python -m tf_defocus.generate --flagfile=configs/validation_set_lights.flags --out_dir=data/val_lights
    python benchmarks/bokeh.py --model=default [--model=name=PATH ...]
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for p in (str(REPO), str(REPO / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

from smooth_in_focus import load_validation_set  # noqa: E402  (benchmarks/smooth_in_focus.py)

FOOTPRINT_LEVELS = 8
"""A pixel belongs to the lights' footprint where the lit render differs by more than this many
grey levels (of 255) in any channel."""


def footprints(lit_dir, plain_dir):
    """[(lit image, plain image, true sigma [px], footprint bool (H, W))] of the lit scenes."""
    plain = {m["id"]: image for m, image, _ in load_validation_set(plain_dir)}
    out = []
    for m, image, sigma in load_validation_set(lit_dir):
        if not m.get("point_lights"):
            continue
        if m["id"] not in plain:
            raise SystemExit(f"{plain_dir}: scene {m['id']} missing (generate both sets)")
        fp = (np.abs(image - plain[m["id"]]).max(axis=-1) * 255) > FOOTPRINT_LEVELS
        out.append((image, plain[m["id"]], sigma, fp))
    if not out:
        raise SystemExit(f"{lit_dir}: no scene with point lights (configs/validation_set_lights.flags)")
    return out


def scores(pred, sigma):
    """(MAE [px], share of pixels with sigma >= 2 px read < 1 px) over flat arrays."""
    blurred = sigma >= 2.0
    return float(np.abs(pred - sigma).mean()), float((pred[blurred] < 1.0).mean()) if blurred.any() else float("nan")


def main(args):
    from tf_defocus import inference
    data = footprints(args.lit_dir, args.plain_dir)
    n = sum(int(fp.sum()) for *_, fp in data)
    share = n / sum(fp.size for *_, fp in data)
    sig = np.concatenate([s[fp] for _, _, s, fp in data])
    print(f"{args.lit_dir}: {len(data)} scenes with lights; footprint {n} px ({100 * share:.1f}% of "
          f"their pixels), {100 * (sig >= 2).mean():.0f}% of it blurred >= 2 px")
    print(f"{'model':>14} {'MAE lit px':>10} {'MAE plain px':>12} {'read sharp lit %':>16} {'read sharp plain %':>18}")
    for spec in args.model:
        name, _, path = spec.partition("=")
        est = inference.load_estimator(path or None)
        lit = np.concatenate([est.predict(li)[fp] for li, _, _, fp in data])
        plain = np.concatenate([est.predict(pl)[fp] for _, pl, _, fp in data])
        (mae_l, sharp_l), (mae_p, sharp_p) = scores(lit, sig), scores(plain, sig)
        print(f"{name:>14} {mae_l:10.2f} {mae_p:12.2f} {100 * sharp_l:16.1f} {100 * sharp_p:18.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lit_dir", default="data/val_lights")
    p.add_argument("--plain_dir", default="data/val_realistic")
    p.add_argument("--model", action="append", required=True,
                   help="name=path to a .keras / SavedModel / .tflite, or 'default'")
    main(p.parse_args())
