"""Qualitative comparison on real photographs (issue 11): the default model beside the classical
methods a user would otherwise pick, on held-out package photos (never used in training:
``tf_defocus.data.photos.VAL_PHOTOS``), some with a real shallow depth of field, some all in
focus with large smooth surfaces.

    python benchmarks/real_photos.py --out=docs/assets/real_photos.png [--model=name=PATH ...]

Rows: photos. Columns: photo | each model's sigma map (rainbow, red = in focus, blue = 7 px)
| LBP sharpness | HiFST (focus scores, red = sharp). Also prints, per photo and method, the
fraction of pixels called blurred (sigma > 1 px; for the scores: score < 0.5) and the seconds
taken.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PHOTOS = ("TwoWings.jpg", "seeding_by_Clements_Engelhardt.jpg", "Dragonfly_by_Bolly.jpg",
          "Dune.jpg", "Wine_by_Jakkub_Mede.jpg", "friends_by_Aitzol_Berasategi.jpg",
          "Picture_0B_by_freespace.jpg", "coffee.png")
"""Real photographs among the held-out package photos: three with a real shallow depth of
field (mate-backgrounds, lomiri-wallpapers-16.04), then mostly in focus with large smooth
surfaces (a dune, a room, a house wall, a plate on concrete, a cup)."""


def _label(img, text):
    out = img.copy()
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 8 + 8 * len(text)), 18), (255, 255, 255), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def main(args):
    from tf_defocus import classical, inference, visualize
    from tf_defocus.data import photos
    from tf_defocus.imageio import read_image, write_image
    paths = {p.name: p for p in photos.package_photos("val")}
    chosen = [paths[n] for n in PHOTOS if n in paths]
    if not chosen:
        raise SystemExit("no held-out package photos installed (pip install scikit-image; "
                         "apt-get install " + " ".join(photos.APT_PACKAGES) + ")")
    models = []
    for spec in args.model or ["default"]:
        name, _, path = spec.partition("=")
        models.append((name, inference.load_estimator(path or None)))
    rows = []
    print(f"{'photo':>34} {'method':>12} {'blurred %':>9} {'seconds':>8}")
    for p in chosen:
        img = read_image(p)
        s = args.long_side / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        panels = [_label(visualize.to_uint8_rgb(img), p.name)]
        for name, est in models:
            t = time.perf_counter()
            sigma = est.predict(img)
            dt = time.perf_counter() - t
            print(f"{p.name:>34} {name:>12} {100 * (sigma > 1.0).mean():9.1f} {dt:8.2f}")
            panels.append(_label(visualize.colorize_sigma(sigma, legend=False), f"{name} (sigma)"))
        for name, fn in (("lbp", classical.lbp_sharpness), ("hifst", classical.hifst_sharpness)):
            t = time.perf_counter()
            score = fn(img)
            dt = time.perf_counter() - t
            print(f"{p.name:>34} {name:>12} {100 * (score < 0.5).mean():9.1f} {dt:8.2f}")
            panels.append(_label(visualize.colorize(score), f"{name} (score)"))
        rows.append(visualize.side_by_side(*panels, gap=4))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    grid = np.vstack(rows)
    write_image(args.out, grid)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}); red = in focus / sharp, "
          f"blue = sigma 7 px / score 0")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/assets/real_photos.png")
    p.add_argument("--model", action="append", help="name=PATH (default: the built-in model)")
    p.add_argument("--long_side", type=int, default=384, help="photos are resized to this [px]")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
