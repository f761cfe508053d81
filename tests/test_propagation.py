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


def _recursive_filter_reference(values, guide, spatial_sigma, range_sigma, iterations=3):
    """Gastal & Oliveira's recursive filter written as the sequential loops of their paper."""
    out = values.astype(np.float64).copy()
    for i in range(iterations):
        sigma_i = spatial_sigma * np.sqrt(3) * 2 ** (iterations - i - 1) / np.sqrt(4 ** iterations - 1)
        a = np.exp(-np.sqrt(2) / sigma_i)
        for arr, g in ((out, guide), (out.transpose(1, 0, 2), guide.transpose(1, 0, 2))):
            d = 1 + spatial_sigma / range_sigma * np.abs(np.diff(g, axis=1)).sum(-1)
            for x in range(1, arr.shape[1]):
                arr[:, x] += a ** d[:, x - 1, None] * (arr[:, x - 1] - arr[:, x])
            for x in range(arr.shape[1] - 2, -1, -1):
                arr[:, x] += a ** d[:, x, None] * (arr[:, x + 1] - arr[:, x])
    return out


@pytest.mark.parametrize("shape,spatial_sigma,range_sigma",
                         [((9, 13), 3.0, 0.3), ((20, 7), 40.0, 0.1), ((16, 16), 8.0, 5.0)])
def test_domain_transform_is_the_sequential_recursive_filter(shape, spatial_sigma, range_sigma):
    rng = np.random.default_rng(2)
    guide = rng.uniform(size=shape + (3,))
    guide[:, shape[1] // 2:] += 0.5                     # a colour edge
    values = rng.uniform(size=shape + (2,))
    want = _recursive_filter_reference(values, guide, spatial_sigma, range_sigma)
    got = propagation.domain_transform(values[None], guide[None], spatial_sigma, range_sigma)
    np.testing.assert_allclose(got.numpy()[0], want, atol=1e-5)


@pytest.mark.parametrize("scale", [1, propagation.GUIDED_SCALE])
def test_guided_fill_keeps_a_smooth_region_to_the_readings_of_its_own_colour(scale):
    """Two smooth regions of one grey but different colours meet at column 128, so the
    confidence sees no edge there; each has a textured strip at its far end (read 6 px on the
    left, 0 px on the right). Pull-push blends the two toward the middle; the guided fill keeps
    each region to its own strip's reading."""
    rng = np.random.default_rng(0)
    image = np.zeros((64, 256, 3), np.float32)
    image[:, :128] = (0.6, 0.2, 0.6)
    image[:, 128:] = (0.2, 0.4814, 0.2)                   # the same BT.601 grey, 0.365
    for cols in (slice(0, 16), slice(240, 256)):
        image[:, cols] += np.kron(rng.uniform(-0.1, 0.1, (16, 4, 1)), np.ones((4, 4, 3)))
    sigma = np.where(np.arange(256) < 128, 6.0, 0.0)[None].repeat(64, 0)[None, ..., None]
    pulled = propagation.fill_smooth(sigma, image[None]).numpy()[0, ..., 0]
    guided = propagation.guided_fill(sigma, image[None], scale=scale).numpy()[0, ..., 0]
    assert pulled[:, 100:124].mean() < 4.5 and pulled[:, 132:156].mean() > 2.0
    assert guided[:, 100:124].min() > 5.9 and guided[:, 132:156].max() < 0.1
    visible = propagation.visibility_confidence(image[None]).numpy()[0, ..., 0] == 1.0
    assert visible[:, :16].mean() > 0.5 and visible[:, 240:].mean() > 0.5
    np.testing.assert_allclose(guided[visible], sigma[0, ..., 0][visible], atol=1e-4)
    # guide= replaces the colours: guided by the grey alone, the two regions are one again.
    grey = image.mean(-1, keepdims=True).repeat(3, -1)
    grey[:, 128:] = grey[:, :128].mean()
    blended = propagation.guided_fill(sigma, image[None], scale=scale, guide=grey[None]).numpy()[0, ..., 0]
    assert blended[:, 100:124].mean() < 5.5 and blended[:, 132:156].mean() > 0.5
    # weight= trusts some readings more: weighted toward the sharp strip, the blend leans to it
    # everywhere it reaches, and visible pixels still keep their own readings.
    leaned = propagation.guided_fill(sigma, image[None], scale=scale, guide=grey[None],
                                     weight=np.exp(-0.5 * sigma)).numpy()[0, ..., 0]
    assert (leaned[:, 32:224] < blended[:, 32:224] - 1.0).all()
    np.testing.assert_allclose(leaned[visible], sigma[0, ..., 0][visible], atol=1e-4)


def test_edge_contrast_parts_a_sharp_edge_more_than_a_blurred_one_of_the_same_contrast():
    """A value of 1 in the left 40 columns, 0 elsewhere, spread by the domain transform across
    a grey step of 0.1 per channel between columns 48 and 80: in one column (sharp) or as a
    ramp over all 32 (blurred); measured right of column 88. Plain
    distances sum the same contrast either way, so as much crosses both; with ``edge_contrast``
    the sharp step lets less across than the ramp, and less than without it."""
    w = 128
    ramp = np.clip((np.arange(w) - 48) / 32, 0, 1)
    sharp = (np.arange(w) >= 64).astype(float)
    values = (np.arange(w) < 40).astype(np.float32)[None, None, :, None].repeat(4, 1)

    def leak(profile, edge_contrast):
        guide = (0.4 + 0.1 * profile)[None, None, :, None].repeat(4, 1).repeat(3, 3)
        out = propagation.domain_transform(values, guide.astype(np.float32), 50.0, 0.3,
                                           edge_contrast=edge_contrast).numpy()
        return out[0, :, 88:].mean()

    assert leak(sharp, None) == pytest.approx(leak(ramp, None), rel=0.1)
    assert leak(sharp, 0.03) < 0.7 * leak(ramp, 0.03)
    assert leak(sharp, 0.03) < 0.7 * leak(sharp, None)


def test_keep_lets_visible_pixels_take_part_of_the_spread():
    """keep=1 (``guided``) leaves a visible reading alone; keep=0.5 moves it half-way to the
    spread of the readings around it (keep near 0: the spread alone, which mixes the 4 px left
    half with the 2 px right half of one textured colour)."""
    rng = np.random.default_rng(1)
    image = (0.5 + rng.uniform(-0.2, 0.2, (1, 32, 32, 1))).repeat(3, -1).astype(np.float32)
    sigma = np.full((1, 32, 32, 1), 2.0, np.float32)
    sigma[:, :, :16] = 4.0
    kept = propagation.guided_fill(sigma, image, range_sigma=100.0, scale=1).numpy()
    half = propagation.guided_fill(sigma, image, range_sigma=100.0, scale=1, keep=0.5).numpy()
    spread = propagation.guided_fill(sigma, image, range_sigma=100.0, scale=1, keep=1e-6).numpy()
    np.testing.assert_allclose(kept, sigma, atol=1e-4)
    np.testing.assert_allclose(half, 0.5 * (sigma + spread), atol=1e-4)
    assert spread[0, :, :4].mean() < 3.9 and spread[0, :, -4:].mean() > 2.1


def test_guided_edges_reads_sigma_in_the_units_given():
    """``guided_edges`` leans to sharp readings by exp(-0.1 sigma [px]): the same map in px or
    in sigma / 7 with px_per_unit=7 fills alike, and unlike ``guided``."""
    rng = np.random.default_rng(2)
    image = rng.uniform(size=(1, 48, 64, 3)).astype(np.float32)
    image[:, 8:40, 16:48] = 0.5
    sigma = rng.uniform(0, 7, (1, 48, 64, 1)).astype(np.float32)
    px = propagation.fill_smooth(sigma, image, "guided_edges").numpy()
    sevenths = propagation.fill_smooth(sigma / 7, image, "guided_edges", px_per_unit=7.0).numpy()
    np.testing.assert_allclose(7 * sevenths, px, atol=1e-4)
    assert np.abs(px - propagation.fill_smooth(sigma, image, "guided").numpy()).max() > 0.1
