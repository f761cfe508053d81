"""tf_defocus.propagation: sigma on smooth surfaces from the visible pixels around them."""

import numpy as np
import pytest

from tf_defocus import metrics, propagation
from tf_defocus.models.layers import group_count


def _scene(h=96, w=128, seed=0):
    """Noise texture with a smooth (flat grey) square in the middle: (image, smooth mask)."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.2, 0.8, (h, w, 3)).astype(np.float32)
    smooth = np.zeros((h, w), bool)
    smooth[24:72, 40:88] = True
    image[smooth] = 0.5
    return image, smooth


def test_local_grey_std_matches_metrics_smooth_pixels():
    rng = np.random.default_rng(3)
    image, _ = _scene()
    image[:, :30] = 0.3 + 0.004 * rng.standard_normal((96, 30, 1))   # faint texture, ~1 level
    std = propagation.local_grey_std(image[None]).numpy()[0, ..., 0]
    agree = (std < metrics.SMOOTH_STD_MAX) == metrics.smooth_pixels(image)
    assert agree.mean() > 0.995


def test_fill_smooth_gives_a_smooth_region_the_sigma_around_it():
    """Where blur is invisible (inside the flat square) the network's guess (5 px) is replaced
    by the 1 px of the visible surroundings; visible pixels keep their value."""
    image, smooth = _scene()
    invisible = metrics.smooth_pixels(image)
    assert invisible[smooth].mean() > 0.5 and not invisible[~smooth].any()
    sigma = np.where(invisible, 5.0, 1.0).astype(np.float32)
    filled = propagation.fill_smooth(sigma[None, ..., None], image[None]).numpy()[0, ..., 0]
    inner = np.zeros_like(smooth)
    inner[32:64, 48:80] = True       # away from the square's edge (15 px window)
    assert np.abs(filled[inner] - 1.0).max() < 0.05
    np.testing.assert_allclose(filled[:, :20], 1.0, atol=1e-4)


def test_fill_smooth_takes_the_mean_where_nothing_is_visible():
    """Every pixel has the floor confidence: the fill is one value, about the map's mean (the
    pyramid's 2x2 cells at odd borders weigh their pixels slightly unequally)."""
    flat = np.full((1, 40, 56, 3), 0.4, np.float32)
    sigma = np.random.default_rng(0).uniform(0, 1, (1, 40, 56, 1)).astype(np.float32)
    filled = propagation.fill_smooth(sigma, flat).numpy()
    assert filled.std() < 1e-3
    assert abs(filled.mean() - sigma.mean()) < 0.03


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 33, 17), (1, 5, 300)])
def test_pull_push_any_size_and_identity_at_full_confidence(shape):
    rng = np.random.default_rng(1)
    v = rng.uniform(size=shape + (1,)).astype(np.float32)
    out = propagation.pull_push(v, np.ones_like(v)).numpy()
    np.testing.assert_allclose(out, v, atol=1e-6)


@pytest.mark.parametrize("channels,groups", [(16, 4), (128, 32), (96, 24), (8, 2), (3, 1), (1, 1)])
def test_group_count(channels, groups):
    assert group_count(channels) == groups
