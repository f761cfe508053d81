"""Average the weights of same-architecture ``.keras`` models (a "model soup", Wortsman et al.,
ICML 2022; checkpoint averaging in the spirit of Izmailov et al.'s SWA, UAI 2018).

Every weight is averaged, BatchNorm moving statistics included. Used for issue 11 to ask
whether the default model's error is optimiser noise that averaging removes: score the result
with ``benchmarks/visible_error.py`` beside its parts.

    python benchmarks/average_weights.py --out=runs/snap/soup.keras runs/snap/a.keras runs/snap/b.keras
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


def average_models(paths):
    """The first model of ``paths`` with every weight replaced by the mean over ``paths``."""
    import keras
    import tf_defocus  # noqa: F401  (registers the layers)
    models = [keras.saving.load_model(p) for p in paths]
    weights = [m.get_weights() for m in models]
    shapes = [[w.shape for w in ws] for ws in weights]
    if any(s != shapes[0] for s in shapes[1:]):
        raise SystemExit("the models do not have the same weights (architecture or width)")
    models[0].set_weights([np.mean(ws, axis=0) for ws in zip(*weights)])
    return models[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output .keras path")
    p.add_argument("models", nargs="+", help=".keras models of the same architecture")
    args = p.parse_args(argv)
    if len(args.models) < 2:
        raise SystemExit("give at least two models to average")
    average_models(args.models).save(args.out)
    print(f"wrote {args.out}: mean of {len(args.models)} models")


if __name__ == "__main__":
    main()
