"""Which colours should guide the edge-aware fill? (``propagation.guided_fill``, status item 69)

The guided fill lets a smooth surface take the readings of visible pixels of its own colour. In
scenes with blur it can also carry a blurred neighbour's reading onto a smooth in-focus surface
of a similar colour. This benchmark scores guides other than RGB on one model's raw maps (read
once): an opponent space of luminance (R+G+B)/3 and chroma R-G, (R+G)/2-B, each weighted, so
that shading (luminance) or hue (chroma) counts more at the range sigma. Per guide: the filled
map's mean Spearman, AUC and sigma/7 MAE on the validation set, and the smooth in-focus pixels'
median reading [px] and share read above 1 px, in the all-in-focus scenes and in all scenes
(as ``smooth_in_focus.py``, but on the whole image rather than predict's tiles).
``--lean=K`` scores the RGB guide with each reading's weight in the spread times
exp(-K sigma [px]): sharp readings trusted more (a smooth region bounded by edges read sharp
takes their reading; status item 70).
``--variant=edge=E,keep=A,lean=K`` scores ``guided_fill``'s other knobs (status item 76):
sharp edges parting more (``edge_contrast``), visible pixels taking part of the spread
(``keep``); ``edge=0.3,keep=0.5,lean=0.1`` is the ``guided_edges`` fill.

    python benchmarks/fill_guides.py --model=runs/cycle6/blur_estimator.keras --guide=rgb,0.3 --guide=opponent,3,1,0.3
    python benchmarks/fill_guides.py --model=tf_defocus/weights/default_model.keras --lean=0.1 --lean=0.2
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


def opponent(image, luminance_weight, chroma_weight):
    """(H, W, 3) RGB [0, 1] -> (H, W, 3) weighted luminance and two chroma channels."""
    r, g, b = np.moveaxis(np.asarray(image, np.float32), -1, 0)
    return np.stack([luminance_weight * (r + g + b) / 3, chroma_weight * (r - g),
                     chroma_weight * ((r + g) / 2 - b)], -1)


def parse_guide(spec):
    """'rgb,R' or 'opponent,WL,WC,R' -> (name, image -> guide, range sigma)."""
    kind, *values = spec.split(",")
    values = [float(v) for v in values]
    if kind == "rgb" and len(values) == 1:
        return spec, lambda image: image, values[0]
    if kind == "opponent" and len(values) == 3:
        return spec, lambda image: opponent(image, *values[:2]), values[2]
    raise argparse.ArgumentTypeError(f"--guide {spec!r}: expected 'rgb,R' or 'opponent,WL,WC,R'")


VARIANT_KEYS = {"edge": "edge_contrast", "lean": "weight", "keep": "keep", "range": "range_sigma",
                "min": "min_weight"}


def parse_variant(spec):
    """'edge=0.1,keep=0.8' -> (spec, guided_fill keyword arguments)."""
    try:
        pairs = [item.split("=") for item in spec.split(",")]
        return spec, {VARIANT_KEYS[k]: float(v) for k, v in pairs}
    except (KeyError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"--variant {spec!r}: expected k=v pairs of {sorted(VARIANT_KEYS)}") from e


def main(args):
    import tensorflow as tf
    from smooth_in_focus import load_validation_set, smooth_shares
    from tf_defocus import propagation
    from visible_error import raw_predictor, scores
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    data = load_validation_set(args.data_dir)
    predict = raw_predictor(args.model)
    raw = {m["id"]: predict(image)[None, ..., None] for m, image, _ in data}
    print(f"{args.data_dir}: {len(data)} scenes; {args.model}; spatial sigma "
          f"{propagation.GUIDED_SPATIAL_SIGMA_PX} px, grid x{propagation.GUIDED_SCALE}")
    print(f"{'fill':>22} {'Spearman':>9} {'AUC':>6} {'MAE':>7} {'AIF median px':>14} "
          f"{'AIF > 1 px %':>13} {'all median px':>14} {'all > 1 px %':>13}")
    fills = [("pull_push", lambda s, image: propagation.fill_smooth(s, image[None]))]
    fills += [(name, lambda s, image, g=guide, r=range_sigma: propagation.guided_fill(
        s, image[None], range_sigma=r, guide=g(image)[None])) for name, guide, range_sigma in args.guide]
    fills += [(f"rgb, lean {k:g}", lambda s, image, k=k: propagation.guided_fill(
        s, image[None], weight=np.exp(-k * s))) for k in args.lean]
    fills += [(spec, lambda s, image, kw=kw: propagation.guided_fill(
        s, image[None], **{k: (np.exp(-v * s) if k == "weight" else v) for k, v in kw.items()}))
        for spec, kw in args.variant]
    for name, fill in fills:
        maps = {m["id"]: np.asarray(fill(raw[m["id"]], image))[0, ..., 0] for m, image, _ in data}
        s = scores(data, maps)
        (am, ab), (em, eb) = smooth_shares(data, maps)
        print(f"{name:>22} {s[0]:9.3f} {s[1]:6.3f} {s[2]:7.4f} {am:14.2f} {100 * ab:13.1f} "
              f"{em:14.2f} {100 * eb:13.1f}", flush=True)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", default="data/val_realistic")
    p.add_argument("--model", required=True, help="a .keras inference model (its raw map is used)")
    p.add_argument("--guide", action="append", type=parse_guide, default=[],
                   help="'rgb,R' or 'opponent,WL,WC,R' (repeatable): guide and range sigma")
    p.add_argument("--lean", action="append", type=float, default=[],
                   help="K (repeatable): the default guided fill with reading weights exp(-K sigma px)")
    p.add_argument("--variant", action="append", type=parse_variant, default=[],
                   help="'edge=E,lean=K,keep=A,range=R,min=W' (repeatable, any subset): the guided "
                        "fill with guided_fill(edge_contrast=E, weight=exp(-K sigma px), keep=A, "
                        "range_sigma=R, min_weight=W); edge=0.3,keep=0.5,lean=0.1 is guided_edges")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
