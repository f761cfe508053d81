"""How well a model fits its own training pool, per scene kind (issue 11).

Runs ``--model`` (tiled ``Estimator``) on the first ``--images`` images of a training pool
(SYNDOF layout, e.g. ``~/.cache/tf_defocus/pools/disc_512x384_n1200_<key>``) and prints, per
scene kind of the pool's ``meta/*.json`` (``layered`` / ``procedural`` dead leaves): mean true
and predicted sigma [px], MAE [px], Spearman rho, and the mean prediction on sharp pixels
(true sigma < 1 px). A model that fits one kind and not the other shows here before it shows on
the validation set.

    python benchmarks/pool_fit.py --model=runs/snap/v3_step5000.keras --pool_dir=POOL --images=24
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(args):
    from tf_defocus import inference, metrics
    from tf_defocus.data.readers import decode_syndof_sigma
    from tf_defocus.imageio import read_image
    est = inference.load_estimator(args.model)
    root = Path(args.pool_dir).expanduser()
    kinds = {}
    for meta_path in sorted((root / "meta").glob("*.json"))[:args.images]:
        stem = meta_path.stem
        kind = json.loads(meta_path.read_text()).get("source", "?")
        image = read_image(str(next((root / "image").glob(stem + ".*"))))
        label = decode_syndof_sigma(str(root / "blur_map" / f"{stem}.png"), "sigma10")
        pred = est.predict(image)
        truth_pred = kinds.setdefault(kind, ([], []))
        truth_pred[0].append(label.ravel())
        truth_pred[1].append(pred.ravel())
    print(f"{'scene':>11s} {'images':>6s} {'true px':>8s} {'pred px':>8s} {'MAE px':>7s} "
          f"{'rho':>6s} {'sharp pred px':>13s}")
    for kind, (truth, pred) in sorted(kinds.items()):
        t, p = np.concatenate(truth), np.concatenate(pred)
        sharp = p[t < 1.0].mean() if (t < 1.0).any() else float("nan")
        print(f"{kind:>11s} {len(truth):6d} {t.mean():8.2f} {p.mean():8.2f} "
              f"{np.abs(t - p).mean():7.2f} {metrics.spearman(p, t):6.3f} {sharp:13.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a .keras, SavedModel or .tflite model")
    parser.add_argument("--pool_dir", required=True, help="a training pool folder (SYNDOF layout)")
    parser.add_argument("--images", type=int, default=24, help="first N images of the pool")
    main(parser.parse_args())
