"""A saved inference model with its ``FillSmooth`` method replaced, to score another fill with
every benchmark that loads a ``.keras`` model (``smooth_in_focus.py``, ``bokeh.py``, the
evaluate CLI, ...). The network, its weights and its ModelInfo sidecar are unchanged; a model
without ``FillSmooth`` gets one.

    python benchmarks/refill.py --method=guided --out=runs/snap/default_guided.keras tf_defocus/weights/default_model.keras
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def refilled(path, method):
    """The ``.keras`` inference model at ``path`` ending with ``FillSmooth(method)``."""
    import keras
    from tf_defocus import propagation
    from tf_defocus.models.layers import FillSmooth
    if method not in propagation.FILL_METHODS:
        raise SystemExit(f"--method must be one of {propagation.FILL_METHODS}")
    model = keras.saving.load_model(path)
    image = model.inputs[0]
    defocus = model.outputs[0]
    if model.layers[-1].name == "fill_smooth":
        defocus = model.layers[-1].input[0]
    return keras.Model(image, FillSmooth(method, name="fill_smooth")([defocus, image]),
                       name=model.name)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", required=True, help="a FillSmooth method (propagation.FILL_METHODS)")
    p.add_argument("--out", required=True, help="output .keras path")
    p.add_argument("model", help="a .keras inference model")
    args = p.parse_args(argv)
    from tf_defocus import artifacts
    from tf_defocus.training import loop
    out = Path(args.out)
    loop.save_inference_model(refilled(args.model, args.method), out.parent,
                              artifacts.read_info(args.model), path=out)   # the same sidecar
    print(f"wrote {out}: {args.model} with the {args.method} fill")


if __name__ == "__main__":
    main()
