"""Training report: the scalar curves of a run's TensorBoard logs as a PNG plus a JSON / Markdown
summary, small enough to commit beside a shipped model.

    python -m tf_defocus.training.report --model_dir=runs/default_model --out_dir=docs/training/default_model

Reads ``<model_dir>/logs/{train,val}/events.*`` (every run's scalars; a resumed run's repeated
steps keep the last value), writes ``curves.png`` (one panel per tag group, x = step),
``scalars.json`` (tag -> [[step, value], ...], thinned to at most ``max_points`` per tag) and
``summary.md`` (last value, best value and its step for every tag). Drawn with OpenCV so no
plotting library is needed. Exit code 2: bad flags, no scalars under ``<model_dir>/logs/``.
"""

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from tf_defocus import cli
from tf_defocus.config import Section, setting

PANELS = (("training loss (MSE, sigma/7 units^2)", ("train/loss/mse",)),
          ("validation MSE / MAE (sigma/7)", ("val/synthetic/val_mse", "val/synthetic/val_mae")),
          ("learning rate", ("train/learning_rate",)),
          ("steps per second", ("train/steps_per_second",)))
COLOURS = ((200, 60, 30), (30, 130, 220), (40, 160, 40), (150, 50, 160))


@dataclasses.dataclass(frozen=True)
class ReportConfig(Section):
    """One report; each field is a flag of the same name."""
    model_dir: str = setting(None, "model_dir of a train CLI run (reads its logs/).")
    out_dir: str = setting(None, "Folder for curves.png, scalars.json and summary.md.")
    max_points: int = setting(400, "Points per tag kept in scalars.json (thinned evenly).",
                              low=2)


def read_scalars(model_dir):
    """{"<run>/<tag>": sorted [(step, value)]} from ``<model_dir>/logs/<run>/events.*``."""
    import tensorflow as tf
    out = {}
    for f in sorted(Path(model_dir, "logs").glob("*/events.out.tfevents.*")):
        run = f.parent.name
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name != "scalars":
                    continue
                value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else float(v.simple_value)
                out.setdefault(f"{run}/{v.tag}", {})[int(event.step)] = value
    return {tag: sorted(d.items()) for tag, d in out.items()}


def _thin(points, max_points):
    if len(points) <= max_points:
        return points
    idx = np.unique(np.linspace(0, len(points) - 1, max_points).round().astype(int))
    return [points[i] for i in idx]


def _panel(title, series, size=(560, 300)):
    """One chart (H, W, 3) uint8: ``series`` = [(label, [(step, value)])]."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 62, 12, 26, 34
    cv2.putText(img, title, (left, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    pts = [p for _, s in series for p in s if np.isfinite(p[1])]
    if not pts:
        return img
    xs, ys = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
    x0, x1 = xs.min(), max(xs.max(), xs.min() + 1)
    y0, y1 = ys.min(), ys.max()
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1e-6, y1 + 1e-6
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (180, 180, 180), 1)

    def to_px(x, y):
        return (int(left + (x - x0) / (x1 - x0) * (w - left - right)),
                int(h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)))

    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        cv2.putText(img, f"{y:.3g}", (2, to_px(x0, y)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (90, 90, 90), 1, cv2.LINE_AA)
        x = x0 + frac * (x1 - x0)
        text = f"{int(x)}"
        width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)[0][0]
        # Centred under its tick, kept inside the image (the last step's label at the edge).
        tx = min(max(to_px(x, y0)[0] - width // 2, 0), w - width - 2)
        cv2.putText(img, text, (tx, h - bottom + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (90, 90, 90), 1, cv2.LINE_AA)
    for k, (label, s) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        line = np.array([to_px(x, y) for x, y in s if np.isfinite(y)], np.int32)
        if len(line) > 1:
            cv2.polylines(img, [line], False, colour, 1, cv2.LINE_AA)
        elif len(line) == 1:
            cv2.circle(img, tuple(int(v) for v in line[0]), 2, colour, -1)
        cv2.putText(img, label, (left + 6, top + 14 + 13 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    colour, 1, cv2.LINE_AA)
    return img


def write_report(config, log=print):
    """Write curves.png, scalars.json and summary.md for ``config.model_dir`` into
    ``config.out_dir`` and ``log`` a line naming them; returns that folder. ValueError: no
    scalars."""
    from tf_defocus import imageio
    model_dir, max_points = config.model_dir, config.max_points
    scalars = read_scalars(model_dir)
    if not scalars:
        raise ValueError(f"{model_dir}: no TensorBoard scalars under logs/")
    out = Path(config.out_dir)
    panels = []
    for title, tags in PANELS:
        series = [(t.split("/")[-1], scalars[t]) for t in tags if t in scalars]
        if series:
            panels.append(_panel(title, [(n, _thin(s, 2000)) for n, s in series]))
    while len(panels) % 2:
        panels.append(np.full_like(panels[0], 255))
    grid = np.vstack([np.hstack(panels[i:i + 2]) for i in range(0, len(panels), 2)])
    imageio.write_image(out / "curves.png", grid)
    imageio.write_text(out / "scalars.json", json.dumps(
        {t: _thin(s, max_points) for t, s in scalars.items()}, indent=1) + "\n")
    lines = [f"# Training summary of `{Path(model_dir).name}`", "",
             "| tag | last step | last value | min value | at step |", "|---|---|---|---|---|"]
    for tag, s in sorted(scalars.items()):
        steps, values = zip(*s)
        i = int(np.nanargmin(values))
        lines.append(f"| {tag} | {steps[-1]} | {values[-1]:.5g} | {values[i]:.5g} | {steps[i]} |")
    imageio.write_text(out / "summary.md", "\n".join(lines) + "\n")
    log(f"wrote {out}/curves.png, scalars.json, summary.md")
    return out


main, run = cli.config_app(ReportConfig, write_report, usage=__doc__, flag_error_code=2,
                           errors={ValueError: 2})
"""``main(argv)`` -> exit code; ``run()``: ``python -m tf_defocus.training.report``."""


if __name__ == "__main__":
    run()
