"""User RGB-D sources: format readers, layouts and every bad-input case."""

import cv2
import numpy as np
import pytest

from tf_defocus.data import rgbd


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = array
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), a)


def rgb(h=16, w=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_pfm(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = array.shape
    with open(path, "wb") as f:
        f.write(b"Pf\n%d %d\n-1.0\n" % (w, h))
        f.write(np.ascontiguousarray(array[::-1], "<f4").tobytes())


def write_dpt(path, array, tag=rgbd.SINTEL_TAG):
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = array.shape
    with open(path, "wb") as f:
        f.write(np.array([tag], "<f4").tobytes() + np.array([w, h], "<i4").tobytes())
        f.write(np.ascontiguousarray(array, "<f4").tobytes())


CALIB = """cam0=[1000.0 0 12; 0 1000.0 8; 0 0 1]
cam1=[1000.0 0 14; 0 1000.0 8; 0 0 1]
doffs=2.0
baseline=150.0
width=24
height=16
ndisp=64
"""


def make_middlebury(root, name="Scene-perfect", disp=None):
    d = root / name
    write_png(d / "im0.png", rgb())
    if disp is None:
        disp = np.linspace(10, 60, 16 * 24, dtype=np.float32).reshape(16, 24)
    write_pfm(d / "disp0.pfm", disp)
    (d / "calib.txt").write_text(CALIB)
    return d


# ----------------------------------------------------------------------------- good inputs
def test_pfm_round_trip_keeps_top_row_first(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_pfm(tmp_path / "a.pfm", a)
    np.testing.assert_array_equal(rgbd.read_pfm(tmp_path / "a.pfm"), a)


def test_middlebury_depth_from_disparity(tmp_path):
    make_middlebury(tmp_path)
    (pair,) = rgbd.list_pairs(tmp_path, "middlebury")
    image, depth = rgbd.load_pair(pair)
    assert image.shape == (16, 24, 3) and depth.shape == (16, 24)
    disp = rgbd.read_pfm(pair.depth_path)
    # Z = baseline * f / (d + doffs): 150 mm * 1000 px / (10 + 2) px = 12500 mm at the top left.
    assert depth[0, 0] == pytest.approx(12500.0, rel=1e-5)
    np.testing.assert_allclose(depth, 150.0 * 1000.0 / (disp + 2.0), rtol=1e-5)


def test_middlebury_fills_a_few_unknown_disparities(tmp_path):
    disp = np.full((16, 24), 30.0, np.float32)
    disp[5, 5:8] = np.inf  # Middlebury marks unknown disparity with inf
    make_middlebury(tmp_path, disp=disp)
    _, depth = rgbd.load_pair(rgbd.list_pairs(tmp_path, "middlebury")[0])
    assert np.all(np.isfinite(depth)) and np.all(depth > 0)
    assert depth[5, 6] == pytest.approx(150.0 * 1000.0 / 32.0, rel=1e-5)


def test_sintel_dpt(tmp_path):
    write_png(tmp_path / "clean" / "alley_1" / "frame_0001.png", rgb())
    d = np.random.default_rng(1).uniform(1, 50, (16, 24)).astype(np.float32)
    write_dpt(tmp_path / "depth" / "alley_1" / "frame_0001.dpt", d)
    (pair,) = rgbd.list_pairs(tmp_path, "sintel")
    assert pair.name == "alley_1_frame_0001"
    _, depth = rgbd.load_pair(pair)
    np.testing.assert_allclose(depth, d * 1000.0, rtol=1e-6)  # metres -> mm by default
    _, depth = rgbd.load_pair(pair, depth_scale=1.0)
    np.testing.assert_allclose(depth, d, rtol=1e-6)


def test_synthia_cm_and_sky(tmp_path):
    write_png(tmp_path / "RGB" / "Stereo_Left" / "000000.png", rgb())
    raw = np.full((16, 24), 500, np.uint16)  # 5 m
    raw[:, 12:] = 2000
    raw[:4] = rgbd.SYNTHIA_SKY
    write_png(tmp_path / "Depth" / "Stereo_Left" / "000000.png",
              np.repeat(raw[..., None], 3, -1))
    (pair,) = rgbd.list_pairs(tmp_path, "synthia")
    _, depth = rgbd.load_pair(pair)
    assert depth[10, 0] == 5000.0 and depth[10, 20] == 20000.0  # cm -> mm
    assert np.all(depth[:4] == 20000.0)  # sky = farthest finite depth


@pytest.mark.parametrize("ext", ["png", "npy"])
def test_generic_with_scale(tmp_path, ext):
    write_png(tmp_path / "image" / "a.png", rgb())
    d = np.random.default_rng(2).integers(100, 5000, (16, 24)).astype(np.uint16)
    if ext == "png":
        write_png(tmp_path / "depth" / "a.png", d)
    else:
        (tmp_path / "depth").mkdir()
        np.save(tmp_path / "depth" / "a.npy", d.astype(np.float32))
    (pair,) = rgbd.list_pairs(tmp_path, "generic")
    _, depth = rgbd.load_pair(pair, depth_scale=2.5)
    np.testing.assert_allclose(depth, d * 2.5, rtol=1e-6)


# ----------------------------------------------------------------------------- bad inputs
def _generic(tmp_path, depth=None, image=None):
    write_png(tmp_path / "image" / "a.png", rgb() if image is None else image)
    if depth is not None:
        (tmp_path / "depth").mkdir(exist_ok=True)
        np.save(tmp_path / "depth" / "a.npy", depth)
    return rgbd.list_pairs(tmp_path, "generic")[0]


def _expect_error(pair, fragment, **kw):
    with pytest.raises(rgbd.DataError) as e:
        rgbd.load_pair(pair, **kw)
    assert fragment in str(e.value)
    return str(e.value)


def test_corrupt_image_png(tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (tmp_path / "depth").mkdir()
    np.save(tmp_path / "depth" / "a.npy", np.ones((16, 24), np.float32))
    pair = rgbd.list_pairs(tmp_path, "generic")[0]
    _expect_error(pair, str(tmp_path / "image" / "a.png"))


def test_truncated_depth_png(tmp_path):
    write_png(tmp_path / "image" / "a.png", rgb())
    write_png(tmp_path / "depth" / "a.png", np.full((16, 24), 1000, np.uint16))
    p = tmp_path / "depth" / "a.png"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    msg = _expect_error(rgbd.list_pairs(tmp_path, "generic")[0], str(p))
    assert "truncated" in msg or "corrupt" in msg


@pytest.mark.parametrize("bad", ["nan", "inf", "negative", "zero"])
def test_invalid_depth_values_over_the_limit(tmp_path, bad):
    d = np.full((16, 24), 1000.0, np.float32)
    d[:8] = {"nan": np.nan, "inf": np.inf, "negative": -5.0, "zero": 0.0}[bad]
    pair = _generic(tmp_path, d)
    msg = _expect_error(pair, str(tmp_path / "depth" / "a.npy"))
    assert "50.0%" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0, 0.0])
def test_all_invalid_depth(tmp_path, bad):
    pair = _generic(tmp_path, np.full((16, 24), bad, np.float32))
    _expect_error(pair, "no valid depth")


def test_few_invalid_depth_pixels_are_filled(tmp_path):
    d = np.full((16, 24), 1000.0, np.float32)
    d[:, 12:] = 3000.0
    d[3, 2], d[7, 20], d[9, 9] = np.nan, -3.0, np.inf
    _, depth = rgbd.load_pair(_generic(tmp_path, d))
    assert depth[3, 2] == 1000.0 and depth[7, 20] == 3000.0 and depth[9, 9] == 1000.0


def test_size_mismatch(tmp_path):
    pair = _generic(tmp_path, np.ones((10, 24), np.float32))
    msg = _expect_error(pair, str(tmp_path / "depth" / "a.npy"))
    assert str(tmp_path / "image" / "a.png") in msg


def test_missing_depth_and_missing_image(tmp_path):
    write_png(tmp_path / "image" / "only_image.png", rgb())
    (tmp_path / "depth").mkdir()
    np.save(tmp_path / "depth" / "only_depth.npy", np.ones((16, 24), np.float32))
    pairs = {p.name: p for p in rgbd.list_pairs(tmp_path, "generic")}
    _expect_error(pairs["only_image"], str(tmp_path / "depth" / "only_image.png"))
    _expect_error(pairs["only_depth"], str(tmp_path / "image" / "only_depth.png"))


def test_bad_dpt_files(tmp_path):
    write_png(tmp_path / "clean" / "s" / "a.png", rgb())
    write_png(tmp_path / "clean" / "s" / "b.png", rgb())
    write_dpt(tmp_path / "depth" / "s" / "a.dpt", np.ones((16, 24), np.float32), tag=1.0)
    write_dpt(tmp_path / "depth" / "s" / "b.dpt", np.ones((16, 24), np.float32))
    b = tmp_path / "depth" / "s" / "b.dpt"
    b.write_bytes(b.read_bytes()[:100])
    pairs = {p.name: p for p in rgbd.list_pairs(tmp_path, "sintel")}
    assert "not a Sintel" in _expect_error(pairs["s_a"], str(tmp_path / "depth" / "s" / "a.dpt"))
    assert "truncated" in _expect_error(pairs["s_b"], str(b))


def test_bad_middlebury_files(tmp_path):
    d = make_middlebury(tmp_path, "A")
    (d / "disp0.pfm").write_bytes((d / "disp0.pfm").read_bytes()[:60])
    e = make_middlebury(tmp_path, "B")
    (e / "calib.txt").write_text("width=24\n")
    f = make_middlebury(tmp_path, "C")
    (f / "calib.txt").unlink()
    pairs = {p.name: p for p in rgbd.list_pairs(tmp_path, "middlebury")}
    assert "truncated" in _expect_error(pairs["A"], str(d / "disp0.pfm"))
    _expect_error(pairs["B"], str(e / "calib.txt"))
    _expect_error(pairs["C"], str(f / "calib.txt"))


def test_empty_or_wrong_layout(tmp_path):
    with pytest.raises(rgbd.DataError):
        rgbd.list_pairs(tmp_path / "nope", "generic")
    (tmp_path / "stuff").mkdir()
    with pytest.raises(rgbd.DataError):
        rgbd.list_pairs(tmp_path, "generic")
    with pytest.raises(rgbd.DataError):
        rgbd.list_pairs(tmp_path, "middlebury")
