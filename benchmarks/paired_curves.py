"""Two training runs of the same recipe and seed, compared step for step (issue 11).

Runs of one flagfile with the same ``--seed`` draw the same crops in the same order until one of
them is interrupted (a resumed run restarts its input stream from the seed), so their training
losses are paired: a difference between them is the model's, not the data's. This prints, per
window of ``--window`` steps, the mean logged training MSE (sigma/7 units^2) of each run and
their ratio, then the validation MSE / MAE at the steps both logged, and a summary.

Each run is a ``model_dir`` (its TensorBoard ``logs/``) or a text log (``train_log.txt`` or the
console output: lines ``step N/M ... mse=X`` and ``validation at step N: synthetic/val_mse=X
synthetic/val_mae=Y ...``).

    python benchmarks/paired_curves.py --a=first=resume/default_model/train_log.txt \\
        --b=cues=runs/cues [--until=13500] [--window=1000]

``--until``: the last step both runs drew the same crops (the first interruption of either).
"""

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

STEP = re.compile(r"^step (\d+)/\d+ .*?\bmse=([0-9.eE+-]+)")
VAL = re.compile(r"validation at step (\d+): .*?synthetic/val_mse=([0-9.eE+-]+) "
                 r"synthetic/val_mae=([0-9.eE+-]+)")


def read_curves(path):
    """({step: training mse}, {step: (val mse, val mae)}) of a model_dir or a text log (the last
    value wins where a resumed run logged a step twice)."""
    path = Path(path)
    if path.is_dir():
        from tf_defocus.training.report import read_scalars
        s = read_scalars(path)
        mae = dict(s.get("val/synthetic/val_mae", []))
        return (dict(s.get("train/loss/mse", [])),
                {k: (v, mae.get(k, float("nan"))) for k, v in s.get("val/synthetic/val_mse", [])})
    train, val = {}, {}
    for line in path.read_text(errors="replace").replace("\r", "\n").splitlines():
        if m := STEP.match(line.strip()):
            train[int(m[1])] = float(m[2])
        elif m := VAL.search(line):
            val[int(m[1])] = (float(m[2]), float(m[3]))
    return train, val


def paired_windows(a, b, window, until=None):
    """[(first step, last step, mean a, mean b)] over windows of ``window`` steps of the steps
    both runs logged (up to ``until``)."""
    steps = sorted(s for s in set(a) & set(b) if until is None or s <= until)
    out = {}
    for s in steps:
        out.setdefault((s - 1) // window, []).append(s)
    return [(w[0], w[-1], float(np.mean([a[s] for s in w])), float(np.mean([b[s] for s in w])))
            for w in out.values()]


def main(args):
    (name_a, _, path_a), (name_b, _, path_b) = (v.partition("=") for v in (args.a, args.b))
    (train_a, val_a), (train_b, val_b) = read_curves(path_a), read_curves(path_b)
    rows = paired_windows(train_a, train_b, args.window, args.until or None)
    if not rows:
        raise SystemExit(f"no common logged steps in {path_a} and {path_b}")
    print(f"training MSE (mean of the logged steps), {name_a} vs {name_b}"
          + (f", same crops to step {args.until}" if args.until else ""))
    print(f"{'steps':>13} {name_a:>10} {name_b:>10} {'ratio':>7}")
    for lo, hi, ma, mb in rows:
        print(f"{lo:>6}-{hi:<6} {ma:10.4f} {mb:10.4f} {mb / ma:7.3f}")
    ratios = np.array([mb / ma for _, _, ma, mb in rows])
    print(f"{name_b} lower in {int((ratios < 1).sum())} of {len(ratios)} windows; "
          f"mean ratio {ratios.mean():.3f}")
    common = sorted(set(val_a) & set(val_b))
    if common:
        print(f"validation MSE / MAE (sigma/7)\n{'step':>6} {name_a:>17} {name_b:>17}")
        for s in common:
            print(f"{s:>6} {val_a[s][0]:8.4f} {val_a[s][1]:8.4f} {val_b[s][0]:8.4f} {val_b[s][1]:8.4f}")
        d = np.array([val_b[s][0] - val_a[s][0] for s in common])
        print(f"{name_b} lower validation MSE at {int((d < 0).sum())} of {len(d)} steps; "
              f"mean difference {d.mean():+.4f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, metavar="NAME=PATH", help="reference run")
    p.add_argument("--b", required=True, metavar="NAME=PATH", help="candidate run")
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--until", type=int, default=0,
                   help="last step of identical crops (0: every common step)")
    main(p.parse_args())
