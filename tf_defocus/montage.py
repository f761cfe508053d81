"""Montage of generated samples so a person can look at the data.

    python -m tf_defocus.montage --data_dir=data/syndof --out=montage.png --num=4

Reads a SYNDOF-layout folder written by ``tf_defocus.generate`` (``image/``, ``blur_map/``
sigma*10, ``blur_map_binary/`` 255 = blurred) and writes one PNG with a row per sample:
image | sigma colour-mapped (JET of focus = 1 - sigma/7: red = sharp, blue = sigma 7 px) |
binary mask (white = blurred).
"""

import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from tf_defocus import cli, config, imageio, visualize
from tf_defocus.config import Section, setting
from tf_defocus.data import synthesize
from tf_defocus.units import focus_from_sigma

GAP_PX = 4


@dataclasses.dataclass(frozen=True)
class MontageConfig(Section):
    """One montage; each field is a flag of the same name (written to ``<out stem>.json``)."""
    data_dir: str = setting(None, "SYNDOF-layout folder from tf_defocus.generate.")
    out: str = setting("montage.png", "Output PNG.")
    num: int = setting(4, "Number of samples (rows).", low=1)
    tile_width: int = setting(320, "Width of each tile [px].", low=16)


def _read_mask(path):
    # imageio's checks (header size limit, truncation, decoder errors -> ImageReadError).
    m = imageio.read_raw_image(path, cv2.IMREAD_GRAYSCALE)
    if m.ndim != 2:
        raise imageio.ImageReadError(f"{path}: not a readable mask")
    return m


def _fit(img, width, interp):
    h, w = img.shape[:2]
    return cv2.resize(img, (width, max(1, int(round(h * width / w)))), interpolation=interp)


def sample_row(data_dir, sample_id, tile_width=320):
    """uint8 RGB row image | sigma colour map | mask for one sample id."""
    paths = synthesize.syndof_paths(data_dir, sample_id)
    image = imageio.read_image(paths["image"])
    sigma = synthesize.read_syndof_sigma(paths["blur_map"])
    mask = _read_mask(paths["blur_map_binary"])
    tiles = [
        _fit(np.round(image * 255).astype(np.uint8), tile_width, cv2.INTER_AREA),
        _fit(visualize.colorize(focus_from_sigma(sigma)), tile_width, cv2.INTER_NEAREST),
        _fit(np.repeat(mask[..., None], 3, -1), tile_width, cv2.INTER_NEAREST),
    ]
    gap = np.full((tiles[0].shape[0], GAP_PX, 3), 255, np.uint8)
    return np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1)


def make_montage(cfg):
    """Build and write the montage and its config (``<out stem>.json``); returns its (H, W, 3) uint8 array."""
    ids = sorted(p.stem for p in (Path(cfg.data_dir) / "image").glob("*.png"))
    ids = [i for i in ids if synthesize.syndof_sample_complete(cfg.data_dir, i)][:cfg.num]
    if not ids:
        raise FileNotFoundError(f"{cfg.data_dir}: no complete samples (image/, blur_map/, "
                                "blur_map_binary/, meta/)")
    rows = [sample_row(cfg.data_dir, i, cfg.tile_width) for i in ids]
    width = max(r.shape[1] for r in rows)
    parts = []
    for r in rows:
        if r.shape[1] < width:
            r = np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
        parts += [r, np.full((GAP_PX, width, 3), 255, np.uint8)]
    montage = np.concatenate(parts[:-1], axis=0)
    imageio.write_image(cfg.out, montage)
    imageio.write_text(Path(cfg.out).with_suffix(".json"),
                       json.dumps(config.to_dict(cfg), indent=2) + "\n")
    return montage


def _run(cfg):
    m = make_montage(cfg)
    sys.stderr.write(f"wrote {cfg.out} ({m.shape[1]}x{m.shape[0]})\n")


main, run = cli.config_app(MontageConfig, _run, usage=__doc__, flag_error_code=2,
                           errors={FileNotFoundError: 1, imageio.ImageReadError: 1})
"""``main(argv)`` -> exit code (2 bad flags, 1 no readable samples); ``run()``: the console
script (``tf-defocus-montage``)."""


if __name__ == "__main__":
    run()
