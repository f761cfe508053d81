"""Speed of the classical blur baselines beside the DoF weight map, one image, one run each.

Times ``lbp_sharpness`` (Yi & Eramian, TIP 2016), ``hifst_sharpness`` (Golestaneh & Karam,
CVPR 2017) at the grid strides of ``--hifst_strides`` (default 2, the module default; 1 is the
paper's dense computation) and ``dof_weight_map`` (KCI 2020) on one procedural 1024x768 image
from the data engine (``synthesize``), after a warm-up call of each on a 64x64 image. Prints
seconds per megapixel, the ratio to ``dof_weight_map``, and, as a sanity check, the
blur-detection AUC of each map against the image's true mask (sigma > 1 px) and, for the HiFST
strides, the correlation with the first stride's map.

Threads: ``--threads`` (default 1, i.e. one core) for OpenBLAS / OpenMP (set before NumPy
loads) and OpenCV.

    python benchmarks/classical.py [--threads=1] [--size=1024x768] [--hifst_strides=1,2,4]
"""

import argparse
import os
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT [px]")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hifst_strides", default="2", help="comma list of HiFST grid strides [px]")
    p.add_argument("--seed", type=int, default=3)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cv2
    import numpy as np
    from tf_defocus import classical, metrics
    from tf_defocus.data.synthesize import synthesize
    from tf_defocus.dof import dof_weight_map

    cv2.setNumThreads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    strides = [int(s) for s in args.hifst_strides.split(",") if s.strip()]
    sample = synthesize(args.seed, width, height)
    image, mask = sample.image, sample.sigma_px > 1.0
    mp = width * height / 1e6

    fns = {"dof_weight": dof_weight_map, "lbp": classical.lbp_sharpness}
    for s in strides:
        fns[f"hifst (stride {s})"] = lambda im, s=s: classical.hifst_sharpness(im, stride=s)
    warm = image[:64, :64]
    for fn in fns.values():
        fn(warm)
    seconds, maps = {}, {}
    for name, fn in fns.items():
        t = time.perf_counter()
        maps[name] = fn(image)
        seconds[name] = time.perf_counter() - t

    print(f"image {width}x{height} ({mp:.3f} MP, procedural seed {args.seed}, "
          f"{mask.mean():.0%} of pixels blurred), threads {args.threads}, one run each")
    print(f"{'method':20s} {'s/MP':>8s} {'MP/s':>8s} {'x dof_weight':>13s} {'AUC':>7s}")
    base = seconds["dof_weight"]
    for name, t in seconds.items():
        auc = metrics.roc_auc(1.0 - maps[name], mask)
        print(f"{name:20s} {t / mp:8.3f} {mp / t:8.2f} {t / base:13.1f} {auc:7.4f}")
    if len(strides) > 1:
        ref = maps[f"hifst (stride {strides[0]})"].ravel()
        for s in strides[1:]:
            r = np.corrcoef(ref, maps[f"hifst (stride {s})"].ravel())[0, 1]
            print(f"hifst stride {s} vs stride {strides[0]}: correlation {r:.4f}")
    print(f"hifst / lbp time ratio (stride {strides[0]}): "
          f"{seconds[f'hifst (stride {strides[0]})'] / seconds['lbp']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
