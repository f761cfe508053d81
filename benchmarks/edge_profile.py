"""How far from a depth edge does a model's reading go wrong? Straight occlusion edges between
two held-out photographs with known blur on either side (issue 11, status.md items 57-64).

Each ordered pair of the held-out photos of ``uniform_blur.py`` (6 pairs, 448x288 centre
crops) is composited in linear light with a vertical edge at the middle column: the *front*
photo covers the left half and occludes the *back* photo, each blurred by the data engine's
disc PSF (``render.aperture_kernel``) of its own sigma, the front together with its coverage
(``out = disc(front * a) + (1 - disc(a)) * disc(back)``, ``a`` the left-half mask), then
quantised to 8-bit sRGB. Two cases per sigma s: ``sharp front`` (front 0 px, back s px: the
back's texture is blurred right up to the sharp edge, so a reader of texture can read s
there) and ``blurred front`` (front s px, back 0 px: the front's blur spills over the back
within its disc radius, 2s px). Printed per model, case and s: the raw reading [px] at k px
from the edge on each side (front column ``edge - 1 - k``, back column ``edge + k``), the median
over the rows (a 32 px border left out) of the pixels whose own photo is textured
(``metrics.smooth_pixels`` false), averaged over the pairs; the truth is 0 and s.

    python benchmarks/edge_profile.py --model=default --model=name=PATH.keras [--threads=2]
"""

import itertools
import sys

import numpy as np

# Sets TF_CPP_MIN_LOG_LEVEL and puts the repository on sys.path (this folder is, as the
# script's own).
from uniform_blur import PHOTOS, disc_blur, load_photos, model_args, model_path

SIGMAS_PX = (2.0, 4.0, 6.0)
OFFSETS_PX = (32, 16, 8, 4, 2, 0)
"""Distances k [px] from the edge at which the profile is printed, on either side."""
BORDER_PX = 32


def composite(front, back, sigma_front, sigma_back):
    """(H, W, 3) sRGB [0, 1] photos -> the front's left half occluding the back, each blurred
    by the disc PSF of its sigma [px] in linear light, quantised to 8 bits; the edge is at
    column W // 2."""
    from tf_defocus.data import render
    h, w = front.shape[:2]
    a = np.zeros((h, w, 1), np.float32)
    a[:, :w // 2] = 1.0
    lin_f, lin_b = render.srgb_to_linear(front), render.srgb_to_linear(back)
    out = disc_blur(lin_f * a, sigma_front) + (1.0 - disc_blur(a, sigma_front)) * disc_blur(
        lin_b, sigma_back)
    out = np.clip(render.linear_to_srgb(out), 0.0, 1.0)
    return (np.round(out * 255.0) / 255.0).astype(np.float32)


def prepare(images):
    """-> [(case, sigma px, [(composite (H, W, 3), textured mask (H, W))] per photo pair)]."""
    from tf_defocus import metrics
    textured = {n: ~metrics.smooth_pixels(p) for n, p in images.items()}
    out = []
    for case, s in itertools.product(("sharp front", "blurred front"), SIGMAS_PX):
        sf, sb = (0.0, s) if case == "sharp front" else (s, 0.0)
        scenes = []
        for f, b in itertools.permutations(images, 2):
            w = images[f].shape[1]
            mask = np.concatenate([textured[f][:, :w // 2], textured[b][:, w // 2:]], axis=1)
            scenes.append((composite(images[f], images[b], sf, sb), mask))
        out.append((case, s, scenes))
    return out


def profile(predict, scenes):
    """-> (front readings, back readings) [px] at ``OFFSETS_PX`` from the edge, each the
    median over textured rows, averaged over ``scenes``."""
    front, back = [], []
    for image, mask in scenes:
        pred = predict(image)
        e = image.shape[1] // 2
        rows = slice(BORDER_PX, image.shape[0] - BORDER_PX)

        def at(col):
            m = mask[rows, col]
            return float(np.median(pred[rows, col][m])) if m.any() else np.nan
        front.append([at(e - 1 - k) for k in OFFSETS_PX])
        back.append([at(e + k) for k in OFFSETS_PX[::-1]])
    return np.nanmean(front, axis=0), np.nanmean(back, axis=0)


def main(argv=None):
    args = model_args(argv, __doc__.splitlines()[0])
    from visible_error import raw_predictor

    prepared = prepare(load_photos())
    print(f"held-out photos {', '.join(PHOTOS)}: each ordered pair, front (left) occluding back "
          "at a vertical edge; median raw reading [px] on textured pixels k px from the edge")
    head = (" ".join(f"{f'f{k}':>5}" for k in OFFSETS_PX) + " |"
            + " ".join(f"{f'b{k}':>5}" for k in OFFSETS_PX[::-1]))
    print(f"{'model':>16} {'case':>13} {'front':>5} {'back':>5}  {head}")
    for spec in args.model:
        name, path = model_path(spec)
        predict = raw_predictor(path)
        for case, s, scenes in prepared:
            front, back = profile(predict, scenes)
            sf, sb = (0.0, s) if case == "sharp front" else (s, 0.0)
            print(f"{name:>16} {case:>13} {sf:5g} {sb:5g}  "
                  + " ".join(f"{v:5.2f}" for v in front) + " |"
                  + " ".join(f"{v:5.2f}" for v in back), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
