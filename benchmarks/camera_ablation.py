"""How much of a model's error does the camera pipeline cause? The same validation scenes with
stages of the camera removed.

Renders the scenes of ``configs/validation_set.flags`` (first ``--num_images``) once per
variant with ``render.sample_varied_options`` wrapped: it draws exactly as before (so layout,
photos, focus, aperture and the noise draw are the same scene for scene) and then switches off
the variant's stages:

* ``as_is``: nothing removed (the validation set itself; checked pixel for pixel against
  ``--reference_dir`` when that holds the same scenes);
* ``no_noise``: shot and read noise 0; ``no_sharpen``: no unsharp mask; ``no_jpeg``: no JPEG;
* ``clean``: all three off (tone curve and downscaling stay: they do not hide blur).

Then scores each model's filled map per variant, as ``visible_error.py`` does (per-image
Spearman, AUC of true sigma > 1 px, sigma/7 MAE, MAE on smooth / visible pixels), the top
band's part of the MAE (true sigma >= 5 px) and the median reading [px] of the smooth in-focus
pixels of the all-in-focus scenes (AIF px, issue 11's <= 1 px). If MAE falls far with the
camera removed, the error is ambiguity the camera adds (noise grain read as texture, sharpened
blur read as sharp), which more capacity cannot remove; if not, it is the network's reading of
the scene.
``--denoise=2,4`` adds rows for the model run on each variant's images after OpenCV's
non-local means (``cv2.fastNlMeansDenoisingColored``, filter strength h in grey levels; the
fill still sees the original image): can denoising at inference recover what noise hides?

    python benchmarks/camera_ablation.py --model=default=tf_defocus/weights/default_model.keras

Rendered sets go to ``--out_root``/<variant> (kept for reuse; delete to re-render).
"""

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = {
    "as_is": {},
    "no_noise": {"shot_noise": 0.0, "read_noise": 0.0},
    "no_sharpen": {"sharpen_amount": 0.0},
    "no_jpeg": {"jpeg_quality": 0},
    "clean": {"shot_noise": 0.0, "read_noise": 0.0, "sharpen_amount": 0.0, "jpeg_quality": 0},
}
TOP_BAND_PX = 5.0


def render_variant(out_dir, variant, num_images, extra_flags=()):
    """Render the first ``num_images`` validation scenes into ``out_dir`` with
    ``VARIANTS[variant]`` switched off; ``extra_flags`` go to the generate CLI after the
    flagfile."""
    from visible_error import render_validation_scenes
    from tf_defocus.data import render
    original = render.sample_varied_options
    changes = VARIANTS[variant]

    def sample(rng):
        return dataclasses.replace(original(rng), **changes)
    render.sample_varied_options = sample
    try:
        render_validation_scenes(out_dir, num_images, *extra_flags)
    finally:
        render.sample_varied_options = original


def same_scenes(data, reference_dir):
    """Largest absolute difference [0, 1] between the images of ``data`` and the scenes of
    ``reference_dir`` with the same ids (None if it has none of them)."""
    from tf_defocus.imageio import read_image
    diffs = []
    for meta, image, _ in data:
        path = Path(reference_dir) / "image" / f"{meta['id']}.png"
        if path.exists():
            diffs.append(float(np.abs(read_image(path) - image).max()))
    return max(diffs) if diffs else None


def top_band_part(data, maps):
    """Part of the pixel-weighted MAE (sigma/7) from pixels with true sigma >= TOP_BAND_PX."""
    from visible_error import error_budget
    return sum(part for _, lo, _, _, _, _, part in error_budget(data, maps) if lo >= TOP_BAND_PX)


def denoise(image, h):
    """``image`` (H, W, 3) float [0, 1] after non-local means of strength ``h`` (grey levels)
    on its 8-bit values (search window 15 px, patch 5 px)."""
    import cv2
    u8 = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.fastNlMeansDenoisingColored(u8, None, h, h, 5, 15).astype(np.float32) / 255.0


def main(args):
    import tensorflow as tf
    from smooth_in_focus import load_validation_set
    from visible_error import filled_map, raw_predictor, scores
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    sets = {}
    for variant in args.variants:
        out = Path(args.out_root) / variant
        if not (out / "meta").is_dir() or len(list((out / "meta").glob("*.json"))) < args.num_images:
            print(f"rendering {variant} into {out} ...", flush=True)
            render_variant(out, variant, args.num_images)
        sets[variant] = load_validation_set(out, args.num_images)
    if "as_is" in sets and args.reference_dir:
        d = same_scenes(sets["as_is"], args.reference_dir)
        print(f"as_is against {args.reference_dir}: largest pixel difference "
              f"{'no common scenes' if d is None else f'{d:.2g}'}")
    print(f"{len(next(iter(sets.values())))} scenes per variant; filled map")
    print(f"{'model':>10} {'variant':>16} {'Spearman':>9} {'AUC':>6} {'MAE':>7} {'MAE smooth':>11} "
          f"{'MAE visible':>12} {'top band part':>14} {'AIF px':>9}")
    for spec in args.model:
        name, _, path = spec.partition("=")
        predict = raw_predictor(path)
        for variant, data in sets.items():
            for h in [0, *args.denoise]:
                filled = {m["id"]: filled_map(predict(denoise(image, h) if h else image), image,
                                              method=predict.fill_method)
                          for m, image, _ in data}
                s = scores(data, filled)
                label = f"{variant} NLM {h:g}" if h else variant
                print(f"{name:>10} {label:>16} {s[0]:9.3f} {s[1]:6.3f} {s[2]:7.4f} "
                      f"{s[3]:11.4f} {s[4]:12.4f} {top_band_part(data, filled):14.4f} "
                      f"{s[5]:9.2f}", flush=True)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True,
                   help="name=PATH of a .keras inference model (repeatable)")
    p.add_argument("--variants", type=lambda v: v.split(","), default=list(VARIANTS),
                   help="comma-separated, of " + ", ".join(VARIANTS))
    p.add_argument("--denoise", type=lambda v: [float(h) for h in v.split(",")], default=[],
                   help="comma-separated non-local-means strengths (grey levels) to try before "
                        "the model")
    p.add_argument("--num_images", type=int, default=64)
    p.add_argument("--out_root", default="data/val_camera")
    p.add_argument("--reference_dir", default="data/val_realistic",
                   help="the validation set the as_is variant must reproduce")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {sorted(VARIANTS)}")
    return args


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
