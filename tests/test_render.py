"""Layered defocus renderer: blur size, occlusion edges, PSFs, layers, determinism."""

import numpy as np
import pytest

from tf_defocus.data import optics, procedural, render

F_MM, S1_MM, Z_MM = 50.0, 1500.0, 3000.0
NO_NOISE = render.DiscOptions(blades=0, shot_noise=0.0, read_noise=0.0, jpeg_quality=0)


def camera_for_sigma(sigma_px, width, z_mm=Z_MM):
    """Camera whose CoC at depth z_mm gives ``sigma_px`` (CoC = 4 sigma + 1)."""
    coc = 4.0 * sigma_px + 1.0
    k_per_aperture = F_MM / (S1_MM - F_MM) * width / 36.0 * abs(z_mm - S1_MM) / z_mm
    return optics.Camera(focal_length_mm=F_MM, f_number=F_MM * k_per_aperture / coc,
                         focus_distance_mm=S1_MM, image_width_px=width)


def step_image(h=48, w=128, lo=0.2, hi=0.8):
    img = np.full((h, w, 3), lo, np.float32)
    img[:, w // 2:] = hi
    return img


def rise_16_84(profile):
    """Distance [px] between the 16% and 84% crossings of a rising edge profile."""
    v = (profile - profile[0]) / (profile[-1] - profile[0])

    def cross(level):
        i = int(np.flatnonzero(v >= level)[0])
        return i - 1 + (level - v[i - 1]) / (v[i] - v[i - 1])

    return cross(0.84) - cross(0.16)


def lsf_std(profile):
    """Standard deviation [px] of the line spread function (derivative of the edge)."""
    d = np.diff(profile)
    d = d / d.sum()
    x = np.arange(d.size)
    m = (d * x).sum()
    return float(np.sqrt((d * (x - m) ** 2).sum()))


@pytest.mark.parametrize("sigma", [1.0, 2.5, 5.0, 7.0])
def test_gaussian_step_edge_has_the_labelled_sigma(sigma):
    img = step_image()
    depth = np.full(img.shape[:2], Z_MM, np.float32)
    cam = camera_for_sigma(sigma, img.shape[1])
    out, sig = render.render_defocus(img, depth, cam, psf="gaussian")
    np.testing.assert_allclose(sig, sigma, rtol=1e-4)
    profile = out[24, :, 0].astype(np.float64)
    # Gaussian edge: the 16%..84% rise spans 2 sigma.
    assert rise_16_84(profile) / 2 == pytest.approx(sigma, rel=0.10)
    assert lsf_std(profile) == pytest.approx(sigma, rel=0.10)


@pytest.mark.parametrize("blades", [0, 6])
@pytest.mark.parametrize("sigma", [2.0, 5.0])
def test_disc_step_edge_has_the_labelled_sigma(sigma, blades):
    img = step_image()
    depth = np.full(img.shape[:2], Z_MM, np.float32)
    cam = camera_for_sigma(sigma, img.shape[1])
    opts = render.DiscOptions(blades=blades, rotation_deg=10.0, shot_noise=0.0, read_noise=0.0,
                              jpeg_quality=0)
    out, sig = render.render_defocus(img, depth, cam, psf="disc", disc=opts)
    np.testing.assert_allclose(sig, sigma, rtol=1e-4)
    # The blur happens in linear light: measure the LSF there. Its std equals the PSF's
    # per-axis std, which the renderer sets to the label sigma.
    profile = render.srgb_to_linear(out[24, :, 0]).astype(np.float64)
    assert lsf_std(profile) == pytest.approx(sigma, rel=0.10)


@pytest.mark.parametrize("blades", [0, 5, 6, 9])
@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0, 7.0])
def test_aperture_kernel_second_moment(sigma, blades):
    k = render.aperture_kernel(sigma, blades=blades, rotation_deg=33.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    n = k.shape[0]
    c = np.arange(n) - (n - 1) / 2
    var = 0.5 * ((k.sum(0) * c * c).sum() + (k.sum(1) * c * c).sum())
    assert np.sqrt(var) == pytest.approx(sigma, rel=0.03)


def _leaves_depth(seed, w=96, h=64):
    _, depth = procedural.dead_leaves_scene(np.random.default_rng(seed), w, h)
    return depth


@pytest.mark.parametrize("psf", ["gaussian", "disc"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_colour_scene_stays_flat(psf, seed):
    depth = _leaves_depth(seed)
    img = np.empty(depth.shape + (3,), np.float32)
    img[:] = (0.7, 0.35, 0.1)
    cam = optics.sample_camera(depth, np.random.default_rng(seed), depth.shape[1])
    out, sig = render.render_defocus(img, depth, cam, psf=psf, disc=NO_NOISE)
    assert sig.max() == pytest.approx(7.0, abs=1e-3)
    assert np.abs(out - img).max() < 2e-4  # no darkening, no halos at any depth edge


def _disc_scene(fg_near, h=64, w=96):
    """Flat bg colour A at 4 m, flat fg disc colour B at 1 m (or swapped depths)."""
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < 18 ** 2
    img = np.empty((h, w, 3), np.float32)
    img[:] = (0.1, 0.6, 0.9)
    img[inside] = (0.9, 0.3, 0.2)
    depth = np.where(inside, 1000.0 if fg_near else 4000.0, 4000.0 if fg_near else 1000.0)
    return img, depth.astype(np.float32), inside


@pytest.mark.parametrize("psf", ["gaussian", "disc"])
@pytest.mark.parametrize("focus_on", ["foreground", "background"])
def test_occlusion_edges_no_halo_no_darkening(focus_on, psf):
    img, depth, inside = _disc_scene(fg_near=True)
    s1 = 1000.0 if focus_on == "foreground" else 4000.0
    cam = optics.Camera(focal_length_mm=50.0, f_number=0.3, focus_distance_mm=s1,
                        image_width_px=img.shape[1])
    out, sig = render.render_defocus(img, depth, cam, psf=psf, disc=NO_NOISE)
    assert sig.max() > 2.5
    if psf == "disc":  # the disc PSF mixes light linearly: check the mix in linear light
        img, out = render.srgb_to_linear(img), render.srgb_to_linear(out)
    a, b = img[0, 0], img[img.shape[0] // 2, img.shape[1] // 2]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    # Every pixel is a convex mix of the two colours: no dark ring, no overshoot.
    assert np.all(out >= lo - 1e-4) and np.all(out <= hi + 1e-4)
    t = (out - a) / (b - a)
    assert np.abs(t - t.mean(-1, keepdims=True)).max() < 1e-3  # same mix in every channel
    if focus_on == "background":
        # A blurred foreground over a sharp background: its edge is smooth on both sides (the
        # background is extended behind it), no step at the occlusion boundary.
        s = float(sig[inside][0])
        # Steepest slope of a Gaussian edge is 1 / (s sqrt(2 pi)); a disc edge (diameter 4 s)
        # rises over ~4 s with a slope up to ~1 / (pi s).
        max_step = 1.0 / (s * np.sqrt(2 * np.pi)) if psf == "gaussian" else 1.0 / (np.pi * s)
        assert np.abs(np.diff(t[..., 0], axis=1)).max() < 1.5 * max_step
    else:
        # A sharp foreground keeps its colour exactly and the blurred background behind it
        # does not take its colour.
        np.testing.assert_allclose(out[inside], img[inside], atol=1e-4)
        ring = ~inside & (np.abs(np.indices(inside.shape) - 32).max(0) < 40)
        assert np.abs(out[ring] - a).max() < 1e-4


def test_slanted_plane_uses_many_layers_and_stays_smooth():
    h, w = 48, 240
    xx = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    inv = 1 / 1000.0 + (1 / 8000.0 - 1 / 1000.0) * xx / (w - 1)
    depth = (1 / inv).astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 0.3 + 0.4 * xx / w  # smooth ramp: blurring a ramp leaves it unchanged
    img[..., 1], img[..., 2] = 0.5, 0.2
    cam = optics.sample_camera(depth, np.random.default_rng(3), w)
    out, sig, info = render.render_defocus(img, depth, cam, return_info=True)
    assert info["num_layers"] >= 200
    assert np.abs(out - img)[8:-8, 8:-8].max() < 0.01


def test_layers_are_uniform_in_coc():
    depth = _leaves_depth(5)
    cam = optics.sample_camera(depth, np.random.default_rng(5), depth.shape[1])
    layers = render.make_layers(depth, cam, num_layers=256)
    coc = optics.signed_coc_px(depth, cam)
    step = (coc.max() - coc.min()) / 256
    err = np.abs(layers.coc_px[layers.index] - coc)
    extreme = (layers.index == 0) | (layers.index == len(layers.coc_px) - 1)
    assert err[~extreme].max() <= 0.5 * step + 1e-4  # bin centres
    assert err[extreme].max() <= step + 1e-4  # the end bins carry the exact extremes
    assert np.abs(layers.coc_px).max() == pytest.approx(np.abs(coc).max(), rel=1e-5)
    assert np.all(np.diff(layers.coc_px) <= 0)  # id 0 is the farthest (largest signed CoC)


def test_render_is_deterministic_and_disc_adds_noise():
    img, depth = procedural.dead_leaves_scene(np.random.default_rng(9), 64, 48)
    cam = optics.sample_camera(depth, np.random.default_rng(9), 64)
    a = render.render_defocus(img, depth, cam, psf="disc", rng=np.random.default_rng(1))[0]
    b = render.render_defocus(img, depth, cam, psf="disc", rng=np.random.default_rng(1))[0]
    c = render.render_defocus(img, depth, cam, psf="disc", rng=np.random.default_rng(2))[0]
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_srgb_linear_round_trip():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(render.linear_to_srgb(render.srgb_to_linear(x)), x, atol=1e-5)
    assert render.srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-4)


def test_bad_inputs():
    img = np.zeros((8, 8, 3), np.float32)
    cam = optics.Camera(focal_length_mm=50.0, f_number=2.0, focus_distance_mm=1000.0, image_width_px=8)
    with pytest.raises(ValueError):
        render.render_defocus(img, np.full((8, 9), 1000.0), cam)
    with pytest.raises(ValueError):
        render.render_defocus(img, np.full((8, 8), np.nan), cam)
    with pytest.raises(ValueError):
        render.render_defocus(img, np.full((8, 8), 1000.0), cam, psf="box")


def _one_light(h=96, w=96, gain=20.0):
    lights = np.zeros((h, w, 3), np.float32)
    lights[h // 2, w // 2] = gain
    return lights


@pytest.mark.parametrize("sigma", [0.0, 3.0, 6.0])
def test_a_light_brighter_than_white_defocuses_into_a_bright_disc(sigma):
    """A point light on a dark plane: in focus one clipped pixel; defocused a saturated disc of
    the aperture's size (bokeh), centred on the light; the label does not change."""
    h = w = 96
    img = np.full((h, w, 3), 0.05, np.float32)
    depth = np.full((h, w), Z_MM if sigma else S1_MM, np.float32)
    cam = camera_for_sigma(max(sigma, 0.01), w)
    plain, label = render.render_defocus(img, depth, cam, psf="disc", disc=NO_NOISE)
    area = np.pi * max(render.aperture_radius_px(float(label[h // 2, w // 2])), 0.5) ** 2
    gain = 20.0 if sigma == 0.0 else 3.0 * area     # 3x white over the whole disc
    out, label_lit = render.render_defocus(img, depth, cam, psf="disc", disc=NO_NOISE,
                                           highlights=_one_light(h, w, gain))
    np.testing.assert_array_equal(label_lit, label)         # the label follows depth only
    bright = out[..., 1] > 0.9
    assert out.max() <= 1.0 and plain.max() < 0.3
    if sigma == 0.0:
        assert bright.any() and bright.sum() <= 5     # one clipped dot, no disc
    else:
        assert 0.6 * area < bright.sum() < 1.4 * area
        ys, xs = np.nonzero(bright)
        assert abs(ys.mean() - h // 2) < 1 and abs(xs.mean() - w // 2) < 1


def test_highlights_are_rejected_where_they_cannot_be_rendered():
    img = np.zeros((16, 16, 3), np.float32)
    cam = optics.Camera(focal_length_mm=50.0, f_number=2.0, focus_distance_mm=1000.0, image_width_px=16)
    depth = np.full((16, 16), 1000.0)
    with pytest.raises(ValueError, match="disc"):
        render.render_defocus(img, depth, cam, psf="gaussian", highlights=_one_light(16, 16))
    with pytest.raises(ValueError, match="match"):
        render.render_defocus(img, depth, cam, psf="disc", highlights=_one_light(8, 16))
