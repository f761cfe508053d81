"""Bright point lights for procedural scenes: the source of bokeh.

Real photos with a shallow depth of field are full of small light sources brighter than
white -- street lamps, sun glints through leaves or on water, specular reflections. In linear
light they carry far more energy than a white surface, so out of focus they spread into bright
discs with crisp rims (the aperture's shape), and even a clipped, defocused highlight stays
bright. A network that has only seen scenes whose brightest pixel is white reads those crisp
rims as edges in focus (the dandelion meadow of ``benchmarks/real_photos.py``).

``point_lights`` draws such lights as an additive radiance map in linear light (values far
above 1). ``render.render_defocus(..., highlights=...)`` adds it to the scene *before* the
defocus, so each light is blurred with the depth of the surface it sits on, and the sensor
clips afterwards. Positions are uniform over the image, independent of depth and texture, so
a light says nothing about the label by itself.
"""

import math

import cv2
import numpy as np

GAIN_RANGE = (2.0, 40.0)
"""Peak radiance of a light in units of a white surface (linear light; log-uniform)."""
SIZE_SIGMAS_PX = (0.5, 0.9, 1.6)
"""Gaussian profile sigmas [px] of the lights (drawn uniformly among these)."""
COUNT_PER_100K_PX = (2.0, 80.0)
"""Lights per 100,000 px of a scene that has them (log-uniform; 4-160 at 512 x 384)."""
CLUSTER_PROB = 0.5
"""Share of scenes whose lights gather around a few centres (foliage glints, light strings)."""


def point_lights(rng, height, width):
    """An additive radiance map of point lights: float32 (height, width, 3), linear light, >= 0.

    COUNT_PER_100K_PX lights of GAIN_RANGE times a white surface's radiance, each a small Gaussian
    spot (SIZE_SIGMAS_PX), white, warm, cool or tinted, placed uniformly or (CLUSTER_PROB) around
    2-6 centres.
    """
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {height}x{width}")
    lo, hi = (c * height * width / 1e5 for c in COUNT_PER_100K_PX)
    n = max(1, int(round(math.exp(rng.uniform(math.log(lo), math.log(hi))))))
    if rng.random() < CLUSTER_PROB:
        centres = rng.uniform((0, 0), (height, width), size=(int(rng.integers(2, 7)), 2))
        spread = rng.uniform(0.03, 0.15) * max(height, width)
        yx = centres[rng.integers(len(centres), size=n)] + rng.normal(0.0, spread, (n, 2))
    else:
        yx = rng.uniform((0, 0), (height, width), size=(n, 2))
    gains = np.exp(rng.uniform(math.log(GAIN_RANGE[0]), math.log(GAIN_RANGE[1]), n))
    palette = np.array([[1.0, 1.0, 1.0], [1.0, 0.75, 0.45], [0.7, 0.85, 1.0]], np.float32)
    colours = palette[rng.integers(len(palette), size=n)]
    tinted = rng.random(n) < 0.25
    colours[tinted] = rng.uniform(0.3, 1.0, (int(tinted.sum()), 3))
    sizes = rng.integers(len(SIZE_SIGMAS_PX), size=n)
    out = np.zeros((height, width, 3), np.float32)
    ys = np.clip(np.round(yx[:, 0]).astype(int), 0, height - 1)
    xs = np.clip(np.round(yx[:, 1]).astype(int), 0, width - 1)
    for k, sigma in enumerate(SIZE_SIGMAS_PX):
        pick = sizes == k
        if not pick.any():
            continue
        impulses = np.zeros_like(out)
        # peak radiance `gain` after a Gaussian of `sigma`: impulse area 2 pi sigma^2 x gain
        np.add.at(impulses, (ys[pick], xs[pick]),
                  (gains[pick, None] * colours[pick] * (2 * math.pi * sigma * sigma)).astype(np.float32))
        out += cv2.GaussianBlur(impulses, (0, 0), sigma)
    return out
