"""Which package photos the layered scenes' photo surfaces actually come from (issue 11).

``PhotoLibrary.crop`` rejects crops with too many blur-suspect pixels, so photos with a real
shallow depth of field are drawn less than their share of the library. This generates
``--scenes`` layered scenes per split (``scenes.layered_scene``, no rendering) with a recording
``choose_box`` and prints, per photo and per source package: share of photo crops, share of
photo-texture area, and the share of crops above ``MAX_SUSPECT_FRACTION`` (taken anyway as the
least suspect of their tries).

    python benchmarks/photo_usage.py [--scenes=200] [--width=512 --height=384]
"""

import argparse
import collections
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def source_package(path):
    """Which installed package a photo path comes from."""
    p = str(path)
    if "skimage" in p:
        return "scikit-image"
    if "/mate/" in p:
        return "mate-backgrounds"
    from tf_defocus.data import photos
    if p.startswith(photos.PLASMA_DIR + "/"):
        return photos.PLASMA_PACKAGE
    return "lomiri-wallpapers-16.04" if p in photos.LOMIRI_PHOTOS else "ukui-wallpapers"


def usage(split, scenes, width, height, seed):
    """[(Box, area px)] of the photo crops of ``scenes`` layered scenes of ``split``."""
    from tf_defocus.data import photos, scenes as scenes_mod
    lib = photos.PhotoLibrary(split=split)
    boxes = []
    choose = lib.choose_box

    def recording(rng, h, w, tries=8):
        box = choose(rng, h, w, tries)
        boxes.append((box, h * w))
        return box

    lib.choose_box = recording
    for i in range(scenes):
        scenes_mod.layered_scene(np.random.default_rng([seed, i]), width, height, lib)
    return lib, boxes


def report(split, lib, boxes):
    from tf_defocus.data.photos import MAX_SUSPECT_FRACTION, photo_name
    paths = {photo_name(p): p for p in lib.paths}
    total_area = sum(a for _, a in boxes)
    per_photo = collections.defaultdict(lambda: [0, 0, 0])
    for box, area in boxes:
        row = per_photo[box.name]
        row[0] += 1
        row[1] += area
        row[2] += box.suspect > MAX_SUSPECT_FRACTION
    print(f"\n{split}: {len(lib)} photos, {len(boxes)} photo crops")
    print(f"{'photo':>32s} {'package':>18s} {'crops %':>8s} {'area %':>7s} {'suspect>max %':>13s}")
    per_pkg = collections.defaultdict(lambda: [0, 0])
    for name in sorted(paths, key=lambda n: -per_photo[n][1] if n in per_photo else 0):
        n, area, bad = per_photo.get(name, (0, 0, 0))
        pkg = source_package(paths[name])
        per_pkg[pkg][0] += n
        per_pkg[pkg][1] += area
        print(f"{name:>32s} {pkg:>18s} {100 * n / max(1, len(boxes)):8.1f} "
              f"{100 * area / max(1, total_area):7.1f} {100 * bad / max(1, n):13.1f}")
    print(f"{'package':>32s} {'photos':>18s} {'crops %':>8s} {'area %':>7s}")
    for pkg, (n, area) in sorted(per_pkg.items()):
        count = sum(source_package(p) == pkg for p in lib.paths)
        print(f"{pkg:>32s} {count:18d} {100 * n / max(1, len(boxes)):8.1f} "
              f"{100 * area / max(1, total_area):7.1f}")


def main(args):
    for split in args.split:
        lib, boxes = usage(split, args.scenes, args.width, args.height, args.seed)
        report(split, lib, boxes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=200, help="layered scenes per split")
    parser.add_argument("--width", type=int, default=512, help="scene width [px] (the pool's)")
    parser.add_argument("--height", type=int, default=384, help="scene height [px]")
    parser.add_argument("--split", action="append", choices=("train", "train+plasma", "val"),
                        help="photo splits (repeatable; default both)")
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    a.split = a.split or ["train", "val"]
    main(a)
