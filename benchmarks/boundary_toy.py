"""Toy scenes whose blur shows only at surface boundaries (issue 11).

Writes ``--num`` 320x240 scenes in the SYNDOF layout (``image/``, ``blur_map/`` sigma10): a smooth
background plane (``procedural.smooth_surface``, 3-30 m) and 1-3 large smooth ellipses
(0.5-3 m), thin-lens Gaussian defocus (``render.render_defocus``, camera from
``optics.sample_camera``). Inside a smooth surface the blur cannot be seen; a network can only
read it from the surface's boundary. Train on them to test that mechanism, e.g. at two crop sizes:

    python benchmarks/boundary_toy.py --out=/tmp/toy/train --num=300 --seed=0
    python benchmarks/boundary_toy.py --out=/tmp/toy/val --num=24 --seed=100000
    python -m tf_defocus.train --flagfile=configs/quickstart.flags --model_dir=/tmp/toy/run128 --synthetic_dir=/tmp/toy/train --in_memory=true --patch_size=128 --train_steps=1200 --pretrain_steps=1200 --val_synthetic_dir=/tmp/toy/val --val_every=600
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WIDTH, HEIGHT = 320, 240


def toy_scene(rng):
    """(image sRGB float32 (H, W, 3), depth_mm float32 (H, W)) of one toy scene."""
    from tf_defocus.data import procedural
    fields, fine = procedural.scene_fields(rng, WIDTH, HEIGHT)
    colours = procedural._sample_colours(rng, 4)
    image = procedural.smooth_surface(rng, HEIGHT, WIDTH, colours[0][0], fields, fine)
    depth = np.full((HEIGHT, WIDTH), np.exp(rng.uniform(np.log(3000), np.log(30000))), np.float32)
    for j in range(int(rng.integers(1, 4))):
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        centre = (int(rng.uniform(0, WIDTH)), int(rng.uniform(0, HEIGHT)))
        axes = (int(rng.uniform(40, 110)), int(rng.uniform(40, 110)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        surface = procedural.smooth_surface(rng, HEIGHT, WIDTH, colours[j + 1][0], fields, fine)
        alpha = mask[..., None] / 255.0
        image = image * (1 - alpha) + surface * alpha
        depth[mask >= 128] = np.exp(rng.uniform(np.log(500), np.log(3000)))
    return image.astype(np.float32), depth


def main(args):
    from tf_defocus.data import optics, readers, render
    from tf_defocus.imageio import write_image
    out = Path(args.out)
    for k in range(args.num):
        rng = np.random.default_rng(args.seed + k)
        image, depth = toy_scene(rng)
        camera = optics.sample_camera(depth, rng, image_width_px=WIDTH)
        blurred, sigma = render.render_defocus(image, depth, camera, psf="gaussian")
        write_image(out / "image" / f"{k:08d}.png", np.round(blurred * 255).astype(np.uint8))
        write_image(out / "blur_map" / f"{k:08d}.png", readers.encode_syndof_sigma(sigma))
    print(f"wrote {args.num} toy scenes to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (SYNDOF layout)")
    parser.add_argument("--num", type=int, default=300, help="scenes to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    main(parser.parse_args())
