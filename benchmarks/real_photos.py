"""Qualitative comparison on real photographs (issue 11): the default model beside the classical
methods a user would otherwise pick, on held-out package photos (never used in training:
``tf_defocus.data.photos.VAL_PHOTOS``), some with a real shallow depth of field, some all in
focus with large smooth surfaces.

    python benchmarks/real_photos.py --out=docs/assets/real_photos.png [--model=name=PATH ...]
    python benchmarks/real_photos.py --photo=seeding_by_Clements_Engelhardt.jpg --long_side=0 \
        --max_side=0 --scale=1 --scale=0.25 --no-classical --panel_side=480 \
        --out=docs/assets/large_photo.jpg

Rows: photos. Columns: photo | each model's sigma map at each ``--scale`` (rainbow, red = in
focus, blue = 7 px, or 7/S px at scale S) | LBP sharpness | HiFST (focus scores, red = sharp).
Also prints, per photo and method, the fraction of pixels called blurred (sigma > 1 px; for
the scores: score < 0.5), the seconds taken and the quartiles of a model's sigma [px].
``--long_side=0`` reads the photos at their own size (the second command: a 16 MP photo read as
it is and at 1/4, status item 82; ``--max_side=0`` turns off the models' cap on the long side,
which would read it at 1280 / 5312 by default).
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


def _resized(img, long_side):
    s = long_side / max(img.shape[:2])
    return cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)),
                      interpolation=cv2.INTER_AREA)


def main(args):
    from tf_defocus import classical, inference, visualize
    from tf_defocus.data import photos
    from tf_defocus.imageio import read_image, write_image
    paths = {p.name: p for p in photos.package_photos("val")}
    unknown = [n for n in args.photo or () if n not in paths]
    if unknown:
        raise SystemExit(f"--photo {', '.join(unknown)}: not among the installed held-out "
                         f"package photos ({', '.join(sorted(paths))})")
    chosen = [paths[n] for n in args.photo or PHOTOS if n in paths]
    if not chosen:
        raise SystemExit("no held-out package photos installed (pip install scikit-image; "
                         "apt-get install " + " ".join(photos.APT_PACKAGES) + ")")
    max_side = inference.DEFAULT_MAX_SIDE if args.max_side is None else args.max_side
    models = []
    for spec in args.model or ["default"]:
        name, _, path = spec.partition("=")
        for scale in args.scale or [1.0]:
            label = f"{name} (sigma)" if not args.scale else f"{name} (sigma, scale {scale:g})"
            models.append((label, inference.load_estimator(path or None, scale=scale,
                                                           max_side=max_side)))
    rows = []
    print(f"{'photo':>34} {'method':>12} {'blurred %':>9} {'seconds':>8} "
          f"{'sigma px: 25th / 50th / 75th percentile':>40}")
    for p in chosen:
        img = read_image(p)
        if args.long_side:
            img = _resized(img, args.long_side)
        panel = (lambda a: _resized(a, args.panel_side)) if args.panel_side else (lambda a: a)
        size = f"{img.shape[1]}x{img.shape[0]}"
        panels = [_label(panel(visualize.to_uint8_rgb(img)), f"{p.name} ({size})")]
        for label, est in models:
            t = time.perf_counter()
            sigma = est.predict(img)
            dt = time.perf_counter() - t
            q = " / ".join(f"{v:.2f}" for v in np.percentile(sigma, (25, 50, 75)))
            print(f"{p.name:>34} {label:>12} {100 * (sigma > 1.0).mean():9.1f} {dt:8.2f} {q:>40}")
            panels.append(_label(visualize.colorize_sigma(
                panel(sigma), legend=bool(args.scale),
                sigma_max_px=est.sigma_max_px(*img.shape[:2])), label))
        classical_methods = (("lbp", classical.lbp_sharpness), ("hifst", classical.hifst_sharpness))
        for name, fn in classical_methods if args.classical else ():
            t = time.perf_counter()
            score = fn(img)
            dt = time.perf_counter() - t
            print(f"{p.name:>34} {name:>12} {100 * (score < 0.5).mean():9.1f} {dt:8.2f}")
            panels.append(_label(panel(visualize.colorize(score)), f"{name} (score)"))
        rows.append(visualize.side_by_side(*panels, gap=4))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    grid = np.vstack(rows)
    write_image(args.out, grid)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}); red = in focus / sharp, "
          f"blue = sigma 7 px (7/S at scale S) / score 0")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/assets/real_photos.png")
    p.add_argument("--model", action="append", help="name=PATH (default: the built-in model)")
    p.add_argument("--long_side", type=int, default=384,
                   help="photos are resized to this [px] before any method reads them (0: as they are)")
    p.add_argument("--photo", action="append", help=f"a file name among {PHOTOS} (repeatable)")
    p.add_argument("--scale", action="append", type=float,
                   help="reading scale of the models (repeatable; load_estimator(scale=)); given, "
                        "each map gets its own legend in px")
    p.add_argument("--max_side", type=int, default=None,
                   help="models read photos longer than this [px] downscaled to it "
                        "(load_estimator(max_side=); 0: never; default "
                        "tf_defocus.inference.DEFAULT_MAX_SIDE, 1280)")
    p.add_argument("--classical", action=argparse.BooleanOptionalAction, default=True,
                   help="add the LBP and HiFST columns")
    p.add_argument("--panel_side", type=int, default=0,
                   help="each panel of the montage resized to this long side [px] (0: as read)")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
