"""Sensor-noise level of the rendered training scenes against real photos (issue 11).

Estimates the noise std of every image with Immerkaer's operator (J. Immerkaer, "Fast noise
variance estimation", CVIU 64(2), 1996: sigma = sqrt(pi/2) / 6 * mean |I * N|, N the 3x3
difference of two Laplacians), on grey levels 0-255, over the flattest half of the pixels (lowest
Sobel magnitude) so that texture does not count as noise. Prints percentiles for:

* the real package photos (``tf_defocus.data.photos``, train and validation split, shrunk to at
  most 640 px like a user's resized photo);
* ``--scenes`` layered scenes rendered with the varied camera pipeline
  (``render.sample_varied_options``, 640x480, disc PSF), as the training pool renders them.

The noise ranges of ``sample_varied_options`` were chosen with it: the first ranges (shot
variance up to 5e-3, read std up to 1e-2) gave renders several times noisier than any package
photo at the 90th percentile (3.3 grey levels against 1.7); the current ones give 0.95.

    python benchmarks/noise_level.py --scenes=32
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

IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
PERCENTILES = (10, 50, 90, 99)


def noise_std(image):
    """Noise std [grey levels of 255] of an RGB float image (H, W, 3) in [0, 1] (Immerkaer 1996,
    over the flattest half of the pixels)."""
    grey = cv2.cvtColor(np.asarray(image, np.float32), cv2.COLOR_RGB2GRAY) * 255.0
    response = np.abs(cv2.filter2D(grey, -1, IMMERKAER))[1:-1, 1:-1]
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)[1:-1, 1:-1]
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)[1:-1, 1:-1]
    magnitude = np.hypot(gx, gy)
    flat = magnitude <= np.median(magnitude)
    return float(np.sqrt(np.pi / 2.0) / 6.0 * response[flat].mean())


def photo_noise(max_side=640):
    """Noise std of every package photo, shrunk to at most ``max_side`` px."""
    from tf_defocus import imageio
    from tf_defocus.data import photos
    out = []
    for path in photos.package_photos("all"):
        image = imageio.to_rgb_float(imageio.read_image(str(path)), str(path))
        scale = max_side / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(noise_std(image))
    return np.array(out)


def render_noise(num_scenes, seed=0):
    """Noise std of ``num_scenes`` layered scenes rendered with the varied camera pipeline."""
    from tf_defocus.data import synthesize
    return np.array([noise_std(synthesize.synthesize(seed + i, 640, 480, psf="disc",
                                                     scene="layered", isp="varied").image)
                     for i in range(num_scenes)])


def describe(name, values):
    cols = "  ".join(f"p{p} {np.percentile(values, p):5.2f}" for p in PERCENTILES)
    return f"{name:>28s} ({len(values):3d} images): {cols}"


def main(args):
    real = photo_noise()
    print(describe("package photos", real))
    rendered = render_noise(args.scenes, args.seed)
    print(describe("layered scenes, varied ISP", rendered))
    print(f"ratio of medians (rendered / photos): "
          f"{np.median(rendered) / np.median(real):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=32, help="Layered scenes to render.")
    parser.add_argument("--seed", type=int, default=0, help="First scene seed.")
    main(parser.parse_args())
