"""Thin-lens optics and the SYNDOF camera sampling policy."""

import math

import numpy as np
import pytest

from tf_defocus.data import optics


def _camera(**kw):
    base = dict(focal_length_mm=50.0, f_number=2.0, focus_distance_mm=2000.0, image_width_px=640)
    base.update(kw)
    return optics.Camera(**base)


def test_coc_zero_at_focus_and_proportional_to_relative_defocus():
    cam = _camera()
    z = np.array([500.0, 1000.0, 1500.0, 2000.0, 3000.0, 8000.0, 1e6])
    coc = optics.coc_px(z, cam)
    assert coc[3] == 0.0
    rel = np.abs(z - cam.focus_distance_mm) / z
    nz = rel > 0
    ratio = coc[nz] / rel[nz]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # CoC = K * |z - S1| / z
    # Monotone: grows away from the focus plane on both sides.
    assert coc[0] > coc[1] > coc[2] > coc[3] < coc[4] < coc[5] < coc[6]


def test_hand_checked_numbers():
    # f = 50 mm, N = 2 (D = 25 mm), S1 = 2000 mm, 640 px over 36 mm (17.777 px/mm).
    # z = 4000 mm: CoC = 25 * (2000 / 4000) * 50 / 1950 mm = 0.3205128 mm -> 5.698006 px;
    #              sigma = (5.698006 - 1) / 4 = 1.174501 px.
    # z = 1000 mm: CoC = 25 * 1 * 50 / 1950 mm = 0.6410256 mm -> 11.396011 px; sigma 2.599003 px.
    # z -> inf:    CoC = 25 * 1 * 50 / 1950 mm, the same 11.396011 px (limit of |z - S1| / z = 1).
    cam = _camera()
    np.testing.assert_allclose(optics.coc_px([4000.0, 1000.0], cam), [5.698006, 11.396011],
                               rtol=1e-6)
    np.testing.assert_allclose(optics.sigma_px_from_depth([4000.0, 1000.0], cam),
                               [1.174501, 2.599003], rtol=1e-5)
    assert optics.coc_px(1e12, cam) == pytest.approx(11.396011, rel=1e-6)
    assert cam.aperture_mm == 25.0
    assert cam.px_per_mm == pytest.approx(640 / 36)


def test_sigma_is_zero_inside_one_pixel_coc():
    cam = _camera()
    z = np.linspace(1900.0, 2100.0, 101)
    coc = optics.coc_px(z, cam)
    sig = optics.sigma_px_from_depth(z, cam)
    assert np.all(sig[coc <= 1.0] == 0.0)
    np.testing.assert_allclose(sig[coc > 1.0], (coc[coc > 1.0] - 1.0) / 4.0, rtol=1e-5)


def test_depth_shift_moves_the_scene():
    cam = _camera(depth_shift_mm=100.0)
    np.testing.assert_allclose(optics.coc_px([3900.0], cam), optics.coc_px([4000.0], _camera()))


def test_camera_validation():
    with pytest.raises(ValueError):
        _camera(focus_distance_mm=40.0)  # focus nearer than the focal length
    with pytest.raises(ValueError):
        _camera(f_number=0.0)
    with pytest.raises(ValueError):
        optics.coc_px([-10.0], _camera())


@pytest.mark.parametrize("seed", range(20))
def test_sample_camera_policy(seed):
    rng = np.random.default_rng(seed)
    near = rng.uniform(50.0, 2000.0)
    depth = near * np.exp(rng.uniform(0, 3, size=(24, 32)))
    width = 320
    cam = optics.sample_camera(depth, rng, width, max_coc=29.0)
    assert cam.focal_length_mm in optics.FOCAL_LENGTHS_MM
    assert cam.image_width_px == width and cam.sensor_width_mm == 36.0
    z = depth + cam.depth_shift_mm
    assert z.min() >= 5 * cam.focal_length_mm - 1e-6
    if depth.min() >= 5 * cam.focal_length_mm:
        assert cam.depth_shift_mm == 0.0
    else:
        assert z.min() == pytest.approx(5 * cam.focal_length_mm)
    assert z.min() - 1e-6 <= cam.focus_distance_mm <= z.max() + 1e-6
    assert optics.coc_px(depth, cam).max() == pytest.approx(29.0, rel=1e-9)
    assert optics.sigma_px_from_depth(depth, cam).max() == pytest.approx(7.0, rel=1e-6)


def test_focal_length_weights_and_near_focus_bias():
    rng = np.random.default_rng(0)
    depth = 1.0 / np.linspace(1 / 1000.0, 1 / 10000.0, 5000)  # every inverse-depth level used
    counts = {f: 0 for f in optics.FOCAL_LENGTHS_MM}
    ranks = []
    for _ in range(900):
        cam = optics.sample_camera(depth, rng, 640)
        counts[cam.focal_length_mm] += 1
        z = depth + cam.depth_shift_mm
        # Rank among the distinct depth levels, which are uniform in inverse depth here.
        inv = 1.0 / z
        ranks.append((inv.max() - 1.0 / cam.focus_distance_mm) / (inv.max() - inv.min()))
    # 1:4:4 -> 100 : 400 : 400 expected; allow generous sampling noise.
    assert 60 < counts[50.0] < 140
    assert 330 < counts[70.0] < 470 and 330 < counts[85.0] < 470
    ranks = np.array(ranks)
    # Half-normal over rank with std 0.5: P(rank < 0.5) = 0.68, mean rank ~ 0.37.
    assert 0.6 < np.mean(ranks < 0.5) < 0.76
    assert np.mean(ranks) < 0.45


def test_flat_scene_gets_pinhole_camera():
    depth = np.full((8, 8), 3000.0)
    cam = optics.sample_camera(depth, np.random.default_rng(1), 64)
    assert math.isinf(cam.f_number)
    assert np.all(optics.coc_px(depth, cam) == 0)
    d = cam.to_dict()
    assert d["f_number"] is None
    assert optics.Camera.from_dict(d) == cam


def test_sample_camera_rejects_bad_depth():
    rng = np.random.default_rng(0)
    for bad in (np.array([1.0, np.nan]), np.array([0.0, 10.0]), np.array([]), np.array([-5.0, 3.0])):
        with pytest.raises(ValueError):
            optics.sample_camera(bad, rng, 64)


def test_depth_levels_quantise_inverse_depth():
    z = np.concatenate([np.linspace(1000, 2000, 100000), [5000.0] * 10])
    levels = optics.depth_levels(z, levels=64)
    assert levels[0] == 1000.0 and levels[-1] == 5000.0
    assert len(levels) <= 64
    assert np.all(np.diff(levels) > 0)
