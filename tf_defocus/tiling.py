"""Tiled inference: photos of any size through a network in overlapping tiles (NumPy only).

The image is edge-replicated up to a multiple of the model's size multiple (and to the fixed
input size of a fixed-size model), cut into overlapping tiles whose starts are multiples of 16
(so every tile sees the same pooling grid as the whole image; tiles are at most ``tile_size``
and shrunk evenly so the last one does not overhang), each tile's map is weighted by a
raised-cosine ramp across the overlap with its neighbours (the weights of two neighbours sum
to one), accumulated, and cropped back to the input size. Memory is bounded by the tile size.

Default overlap (receptive-field argument): DMENet's output at a pixel depends on a
theoretical window of about 370 px (VGG19 to conv5_4 alone: 252 px; decoder and 7 residual
blocks add ~120 px), but the effective receptive field of such a network is far narrower and
concentrated at the centre. A tile pixel within ``d`` px of a cut has its context truncated at
``d``; the raised-cosine window gives that pixel weight ``sin^2(pi d / 2 o)`` so its error only
counts where ``d`` is a sizeable fraction of the overlap ``o``. ``DEFAULT_TILE_OVERLAP = 128``
px (8 cells of the 1/16 bottleneck) keeps tiled and whole-image maps within MAE 0.01 in sigma/7
units (``tests/test_inference.py``, ``benchmarks/inference.py`` measure this).
"""

import math

import numpy as np

from tf_defocus import model_kinds

TILE_MULTIPLE = model_kinds.MAX_SIZE_MULTIPLE
"""Tile sizes, overlaps and starts are multiples of this [px] (16: every kind's size multiple
divides it, so every tile sees the whole image's pooling grid)."""
DEFAULT_TILE_SIZE = 768
"""Largest tile side [px] of a full-width network, and of a model whose ModelInfo suggests no
tile (``tile_size_for_width``). A full-width (1.0) DMENet tile of 768^2 peaks near 1.1 GB of
activations (1024^2: 2.3 GB). Tiles are shrunk evenly to cover the photo (``balanced_tile``):
with the 128 px overlap a 24 MP photo runs 70 tiles of 688x720, 1.2x its pixels."""

DEFAULT_TILE_OVERLAP = 128
"""Overlap of neighbouring tiles [px] (see the module docstring)."""


def tile_size_for_width(width):
    """Tile side [px] for a DMENet network of width multiplier ``width`` (0 < width <= 1), at
    about the peak memory of a full-width network's ``DEFAULT_TILE_SIZE`` tile: the tile area
    grows as width^(-3/4) (768 px at width 1, 1280 px at 1/4; a multiple of
    ``TILE_MULTIPLE``). Not 1/width: the image-sized buffers (input, fill, two-scale fusion,
    blending) do not narrow with the network, and 1536 px tiles of the width-1/4 default model
    peaked 1.5-1.85 GB against 1.27-1.55 GB at 1280 px and 1.47 GB for the full width at 768
    (``benchmarks/default_model.py``). Fewer, larger tiles repeat less of the photo in
    their overlaps."""
    width = float(width)
    if not 0.0 < width <= 1.0:
        raise ValueError(f"width must be in (0, 1], got {width}")
    side = DEFAULT_TILE_SIZE * width ** -0.375
    return int(side // TILE_MULTIPLE) * TILE_MULTIPLE


def check_tiling(tile_size, tile_overlap, multiple=TILE_MULTIPLE):
    """Validate tile parameters [px]; ``tile_size`` 0 means no tiling (whole image)."""
    for name, v in (("tile_size", tile_size), ("tile_overlap", tile_overlap)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer number of pixels, got {v!r}")
        if v % multiple:
            raise ValueError(f"{name} must be a multiple of {multiple} px (the network downsamples "
                             f"by {multiple}), got {v}")
    if tile_size:
        if tile_size < 2 * multiple:
            raise ValueError(f"tile_size must be at least {2 * multiple} px, got {tile_size}")
        if 2 * tile_overlap > tile_size:
            raise ValueError(f"tile_overlap ({tile_overlap}) must be at most half of tile_size "
                             f"({tile_size})")


def tile_starts(length, tile, step):
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with stride ``step``;
    the last tile ends at ``length``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def balanced_tile(length, tile_max, overlap, multiple=TILE_MULTIPLE):
    """Tile length [px] along an axis of ``length`` px: the fewest tiles of at most
    ``tile_max`` px (overlapping by ``overlap``) that cover the axis, shrunk evenly to the
    smallest multiple of ``multiple`` that still covers it. E.g. 1024 px with tiles of at most
    768 and overlap 128: two tiles of 576 px (1.1x the pixels) instead of two of 768 (1.5x)."""
    if length <= tile_max:
        return length
    n = math.ceil((length - overlap) / (tile_max - overlap))
    tile = _round_up((length + (n - 1) * overlap) / n, multiple)
    return min(tile, tile_max, length)


def tile_grid(height, width, *, tile_size, tile_overlap, size_multiple=1, fixed_size=None):
    """The tile grid for an (height, width) image: ((tile_h, tile_w), starts_y, starts_x,
    (padded_h, padded_w)).

    size_multiple: the model's input H and W multiple [px]; fixed_size: (h, w) of a
    fixed-input model (then tiles are that size regardless of ``tile_size``, and the overlap is
    at most half a tile); ``tile_size`` 0 = one tile of the whole (padded) image.
    """
    m = size_multiple or 1
    hp, wp = _round_up(height, m), _round_up(width, m)
    if fixed_size is not None:
        hp, wp = max(hp, fixed_size[0]), max(wp, fixed_size[1])
        th, tw = fixed_size
    elif not tile_size:
        th, tw = hp, wp
    else:
        th, tw = balanced_tile(hp, tile_size, tile_overlap), balanced_tile(wp, tile_size, tile_overlap)

    def step(tile):
        ov = tile_overlap
        if fixed_size is not None:   # fixed tiles need not be multiples of 16
            ov = min(ov, tile // 2)
        return tile - ov

    return (th, tw), tile_starts(hp, th, step(th)), tile_starts(wp, tw, step(tw)), (hp, wp)


def run_tiled(run, image, grid, progress=None):
    """Map of ``image`` (H, W, 3) float32, tile by tile: float32 (H, W).

    run: callable(float32 (1, th, tw, 3)) -> (1, th, tw) map of one tile; grid: ``tile_grid``
    of the image (the padded image is centred on it, edges replicated); progress: optional
    callable(done_tiles, total_tiles).
    """
    h, w = image.shape[:2]
    (th, tw), ys, xs, (hp, wp) = grid
    top = (hp - h) // 2      # the padded image is centred on the photo
    left = (wp - w) // 2
    total = len(ys) * len(xs)
    if total == 1:
        out = run(_edge_crop(image, -top, -left, th, tw)[None])[0]
        if progress:
            progress(1, 1)
        return np.ascontiguousarray(out[top:top + h, left:left + w], dtype=np.float32)
    # Accumulate straight into photo-sized buffers: the padded image is never materialised,
    # each tile is cut (with edge replication where it leaves the photo) on demand.
    acc = np.zeros((h, w), np.float32)
    wsum = np.zeros((h, w), np.float32)
    done = 0
    for iy, y0 in enumerate(ys):
        wy = _axis_window(ys, th, iy).astype(np.float32)
        for ix, x0 in enumerate(xs):
            wx = _axis_window(xs, tw, ix).astype(np.float32)
            pred = run(_edge_crop(image, y0 - top, x0 - left, th, tw)[None])[0]
            # the tile's rows/cols that fall inside the photo
            r0, r1 = max(0, top - y0), min(th, top + h - y0)
            c0, c1 = max(0, left - x0), min(tw, left + w - x0)
            win = np.outer(wy[r0:r1], wx[c0:c1])
            dst = np.s_[y0 - top + r0:y0 - top + r1, x0 - left + c0:x0 - left + c1]
            acc[dst] += pred[r0:r1, c0:c1] * win
            wsum[dst] += win
            done += 1
            if progress:
                progress(done, total)
    acc /= wsum
    return acc


def _ramp(n):
    """Raised-cosine ramp of length n rising from ~0 to ~1: 0.5 - 0.5 cos(pi (i + .5) / n)."""
    i = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / n)


def _axis_window(starts, tile, index):
    """1-D blending weights of tile ``index`` along one axis, ramps over the true overlaps."""
    w = np.ones(tile, np.float64)
    s = starts[index]
    if index > 0:
        ov = starts[index - 1] + tile - s
        if ov > 0:
            w[:ov] *= _ramp(ov)
    if index + 1 < len(starts):
        ov = s + tile - starts[index + 1]
        if ov > 0:
            w[tile - ov:] *= _ramp(ov)[::-1]
    return w


def _edge_crop(img, y0, x0, th, tw):
    """(th, tw, 3) window of ``img`` starting at (y0, x0), which may reach outside the image;
    outside pixels replicate the nearest edge pixel."""
    h, w = img.shape[:2]
    if 0 <= y0 and y0 + th <= h and 0 <= x0 and x0 + tw <= w:
        return np.ascontiguousarray(img[y0:y0 + th, x0:x0 + tw])
    rows = np.clip(np.arange(y0, y0 + th), 0, h - 1)
    cols = np.clip(np.arange(x0, x0 + tw), 0, w - 1)
    return img[rows[:, None], cols[None, :]]


def _round_up(v, m):
    return int(math.ceil(v / m) * m)
