"""Does a model measure blur? Whole held-out photos blurred uniformly with a known disc PSF.

Each held-out package photograph (``tf_defocus.data.photos.VAL_PHOTOS``, never used in
training) is blurred over its whole frame with the data engine's disc aperture of sigma
0, 1, ..., 7 px in linear light (``render.aperture_kernel``), turned back to 8-bit sRGB, and
given to each model. Printed per model and sigma: the median raw predicted sigma [px] over the
pixels where the unblurred photo has visible texture (``metrics.smooth_pixels`` false; a 32 px
border left out), averaged over the photos; then the mean absolute error [px] over all
sigmas. A model that measures blur reads a rising line; a compressed one reads a flat one.
"Sigma 0" is the photo as taken (its own slight blur included), so the first column is an
upper bound on what a perfect model would read there.

    python benchmarks/uniform_blur.py --model=default --model=name=PATH.keras [--threads=2]
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png")
"""Held-out photographs that are mostly in focus (the other held-out files have a real shallow
depth of field or are illustrations)."""
SIGMAS_PX = (0, 1, 2, 3, 4, 5, 6, 7)
SIZE = (448, 288)
"""Centre crop W, H [px] of each photo."""
BORDER_PX = 32


def disc_blur(x, sigma_px):
    """(H, W, C) float32 -> the same convolved with the data engine's disc PSF of ``sigma_px``
    (``render.aperture_kernel``; 0: unchanged), borders reflected."""
    import cv2
    from tf_defocus.data import render
    if sigma_px == 0:
        return x
    k = render.aperture_kernel(float(sigma_px)).astype(np.float32)
    out = cv2.filter2D(np.ascontiguousarray(x, np.float32), -1, k, borderType=cv2.BORDER_REFLECT)
    return out.reshape(x.shape)


def blurred(photo, sigma_px):
    """(H, W, 3) sRGB [0, 1] -> the same blurred by the disc PSF of ``sigma_px`` in linear
    light, quantised to 8 bits."""
    from tf_defocus.data import render
    lin = disc_blur(render.srgb_to_linear(photo), sigma_px)
    out = np.clip(render.linear_to_srgb(lin), 0.0, 1.0)
    return (np.round(out * 255.0) / 255.0).astype(np.float32)


def model_path(spec):
    """``--model`` value 'default' or name=PATH.keras -> (name, path)."""
    from tf_defocus.weights import DEFAULT_MODEL
    name, _, path = spec.partition("=")
    path = path or (str(DEFAULT_MODEL) if name == "default" else "")
    if not path:
        raise SystemExit(f"--model={spec}: give name=PATH or 'default'")
    return name, path


def load_photos():
    """name -> (H, W, 3) float32 sRGB centre crop of ``SIZE``."""
    from tf_defocus import imageio
    from tf_defocus.data import photos
    paths = {p.name: p for p in photos.package_photos("val")}
    missing = [n for n in PHOTOS if n not in paths]
    if missing:
        raise SystemExit(f"held-out photos not found: {missing} (pip install scikit-image)")
    out = {}
    w, h = SIZE
    for name in PHOTOS:
        im = imageio.to_rgb_float(imageio.read_image(paths[name]), name)
        y0, x0 = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
        if y0 < 0 or x0 < 0:
            raise SystemExit(f"{name} is smaller than {SIZE}")
        out[name] = np.ascontiguousarray(im[y0:y0 + h, x0:x0 + w])
    return out


def prepare(images):
    """-> [(textured-pixel mask (H, W), [photo blurred by each of SIGMAS_PX])] per photo,
    computed once for every model."""
    from tf_defocus import metrics
    out = []
    for photo in images.values():
        visible = ~metrics.smooth_pixels(photo)
        b = BORDER_PX
        visible[:b], visible[-b:], visible[:, :b], visible[:, -b:] = False, False, False, False
        out.append((visible, [blurred(photo, s) for s in SIGMAS_PX]))
    return out


def readings(predict, prepared):
    """-> (len(SIGMAS_PX),) mean over photos of the median predicted sigma on textured pixels."""
    rows = [[float(np.median(predict(image)[visible])) for image in stack]
            for visible, stack in prepared]
    return np.mean(np.array(rows), axis=0)


def model_args(argv, description):
    """Parse ``--model`` (repeatable: 'default' or name=PATH.keras) and ``--threads``, and set
    TensorFlow's thread pools to ``--threads``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", action="append", required=True,
                   help="'default' (the shipped model) or name=PATH.keras; repeatable")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import tf_defocus  # noqa: F401  (hides TensorFlow's start-up lines)
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    return args


def main(argv=None):
    args = model_args(argv, __doc__.splitlines()[0])
    from visible_error import raw_predictor

    prepared = prepare(load_photos())
    print(f"held-out photos {', '.join(PHOTOS)} ({SIZE[0]}x{SIZE[1]} centre crops), uniform "
          f"disc blur; median raw prediction [px] on textured pixels")
    print(f"{'model':>24} " + " ".join(f"{f's={s}':>6}" for s in SIGMAS_PX) + "  MAE px")
    for spec in args.model:
        name, path = model_path(spec)
        r = readings(raw_predictor(path), prepared)
        mae = float(np.mean(np.abs(r - np.array(SIGMAS_PX, float))))
        print(f"{name:>24} " + " ".join(f"{v:6.2f}" for v in r) + f"  {mae:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
