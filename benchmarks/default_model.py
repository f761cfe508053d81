"""Speed and memory of the built-in default model vs the full-width (paper) network (issue 11).

Measured in one run, each figure in its own fresh subprocess (peak RSS = its ru_maxrss), at
``--threads`` (default 2), with the package's tiled ``Estimator`` on a real photo (a held-out
package photo, resized to each ``--sizes`` WxH): seconds per megapixel and peak RSS of

* the default model (``tf_defocus/weights/default_model.keras``, or ``--model``);
* a full-width ``BlurEstimator`` (27 M parameters, random weights with calibrated BatchNorm:
  speed does not depend on the weight values),

and their ratios; also the default model at the full-width network's 768 px tiles (the tile it
used before its ModelInfo suggested 1280 px), to show what the larger tiles save; the default
model with left-right flip averaging (``--flips=2`` of predict / evaluate: two passes); the default
model with TensorFlow's default CPU allocator instead of the BFC allocator that predict / evaluate
switch on (``tf_defocus.cli.bfc_allocator_for_inference_commands``; every other row uses BFC,
as the commands do); and how far
each tiled map is from the whole-image map (one pass, no tiles), on pixels where blur is
visible and on smooth ones (filled from the visible pixels of their tile). Target: the default
model at most 3 s per megapixel here.

    python benchmarks/default_model.py [--sizes=1024x768,2048x1536] [--threads=2]
        [--repeats=3] [--also=NAME=PATH ...]

``--also`` times more models (e.g. a wider candidate) at their suggested tiles in the same run,
with their ratio to the default model.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for p in (str(REPO), str(REPO / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

from inference import make_model, run_worker  # noqa: E402  (benchmarks/inference.py)
from machine import cpu_model  # noqa: E402


PHOTO = "goldfish.png"
"""The held-out package photo (ukui-wallpapers) every size is resized from."""


def photo(width, height):
    """A held-out package photo (float32 RGB) resized to (height, width, 3)."""
    import cv2
    from tf_defocus.data import photos
    from tf_defocus.imageio import read_image
    paths = [p for p in photos.package_photos("val") if p.name == PHOTO]
    if not paths:
        raise SystemExit(f"held-out photo {PHOTO} not installed (apt-get install ukui-wallpapers)")
    img = read_image(paths[0])
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def tiling_error(model, image_npy, threads, tmp, maps):
    """Mean |tiled - whole-image map| [px] of each saved native map in ``maps`` {name: .npy},
    split into pixels where blur is visible and smooth ones (``metrics.smooth_pixels``; their
    sigma is filled from visible pixels within the tile): {name: (visible, smooth)}."""
    from tf_defocus.metrics import smooth_pixels
    from tf_defocus.units import SIGMA_MAX_PX
    whole = Path(tmp) / "map_whole.npy"
    run_worker({"model": str(model), "tile_size": 0, "tile_overlap": 0, "threads": threads,
                "image_npy": str(image_npy), "save_map": str(whole)})
    ref = np.load(whole).squeeze()
    smooth = smooth_pixels(np.load(image_npy))
    out = {}
    for name, path in maps.items():
        d = np.abs(np.load(path).squeeze() - ref) * SIGMA_MAX_PX
        out[name] = (float(d[~smooth].mean()), float(d[smooth].mean()))
    return out


def main(args):
    from tf_defocus.inference import default_model_path
    default = Path(args.model) if args.model else default_model_path()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full_width.keras"
        make_model(1.0, full)
        print(f"CPU: {cpu_model()}")
        print(f"default model: {default} ({default.stat().st_size / 2**20:.1f} MB)")
        print(f"threads {args.threads}; time: median of {args.repeats} runs; tiles: each model's "
              f"suggested tile (ModelInfo tile_size, else 768 px), overlap 128 px; "
              f"'default @768' = the default model at 768 px tiles")
        print("RSS: peak resident set during the inference (the process peak is reset after the "
              "TF start-up and warm-up)")
        print(f"{'size':>11} {'model':>13} {'tiles':>11} {'s/MP':>7} {'RSS MB':>7}")
        rows = []
        also = [tuple(a.split("=", 1)) for a in args.also]
        runs = (("default", default, None, 1, True), ("default @768", default, 768, 1, True),
                ("default flip2", default, None, 2, True),
                ("default noBFC", default, None, 1, False),
                ("full width", full, None, 1, True)) + tuple(
                    (name, Path(path), None, 1, True) for name, path in also)
        for w, h in sizes:
            base = Path(tmp) / f"photo_{w}x{h}.npy"
            np.save(base, photo(w, h))
            res = {}
            maps = {}
            for name, path, tile, flips, bfc in runs:
                maps[name] = Path(tmp) / f"map_{len(maps)}.npy"
                spec = {"model": str(path), "tile_size": tile, "tile_overlap": 128,
                        "threads": args.threads, "image_npy": str(base), "flips": flips,
                        "save_map": str(maps[name]), "bfc": bfc, "repeats": args.repeats}
                r = run_worker(spec)
                mp = w * h / 1e6
                peak = r.get("inference_peak_rss_mb") or r["rss_mb"]
                tiles = f"{r['tiles']}x{r['tile_hw'][0]}x{r['tile_hw'][1]}"
                res[name] = {"s_per_mp": r["seconds"] / mp, "rss_mb": peak, "tiles": r["tiles"],
                             "tile_hw": r["tile_hw"], "process_peak_rss_mb": r["rss_mb"]}
                print(f"{w:>5}x{h:<5} {name:>13} {tiles:>11} {r['seconds'] / mp:7.2f} {peak:7.0f}")
            ratios = {}
            for name, ref in (("full_width", "full width"), ("768", "default @768"),
                              ("flip2", "default flip2"), ("no_bfc", "default noBFC")) + tuple(
                                  (n, n) for n, _ in also):
                ratios[name] = (res["default"]["s_per_mp"] / res[ref]["s_per_mp"],
                                res["default"]["rss_mb"] / res[ref]["rss_mb"])
                print(f"{'':>11} {'/ ' + ref:>13} {'':>11} {ratios[name][0]:7.3f} "
                      f"{ratios[name][1]:7.3f}")
            seams = tiling_error(default, base, args.threads, tmp,
                                 {n: maps[n] for n in ("default", "default @768")})
            for name, (visible, smooth) in seams.items():
                print(f"{'':>11} {name:>13} map vs whole image: mean |diff| {visible:.4f} px on "
                      f"visible, {smooth:.4f} px on smooth (filled) pixels")
                res[name].update(vs_whole_visible_px=visible, vs_whole_smooth_px=smooth)
            verdict = "PASS" if res["default"]["s_per_mp"] <= 3.0 else "FAIL"
            print(f"{'':>11} default <= 3 s/MP: {verdict}")
            rows.append({"size": [w, h], **res,
                         "time_ratio": ratios["full_width"][0], "rss_ratio": ratios["full_width"][1],
                         "time_ratio_vs_768": ratios["768"][0], "rss_ratio_vs_768": ratios["768"][1],
                         "time_ratio_vs_flip2": ratios["flip2"][0],
                         "time_ratio_vs_no_bfc": ratios["no_bfc"][0],
                         "rss_ratio_vs_no_bfc": ratios["no_bfc"][1],
                         **{f"time_ratio_vs_{n}": ratios[n][0] for n, _ in also}})
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"threads": args.threads, "repeats": args.repeats, "rows": rows}, indent=2) + "\n")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="", help="default: the built-in default model")
    p.add_argument("--sizes", default="1024x768,2048x1536")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3,
                   help="time each model this many times on each photo and report the median")
    p.add_argument("--json", default="", help="also write the figures to this JSON file")
    p.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                   help="another .keras model to time beside the default (repeatable)")
    args = p.parse_args(argv)
    for a in args.also:
        if "=" not in a or not Path(a.split("=", 1)[1]).is_file():
            p.error(f"--also {a!r}: expected NAME=PATH of an existing .keras file")
    return args


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
