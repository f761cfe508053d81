"""tf_defocus.inference: any-size maps, input types, tiling, model formats, bad models."""

import json

import numpy as np
import pytest

from tests.inference_helpers import calibrated_keras_model, scene
from tf_defocus import artifacts, backends, inference, tiling
from tf_defocus.units import SIGMA_MAX_PX


@pytest.fixture(scope="module")
def model_path():
    return calibrated_keras_model()


@pytest.fixture(scope="module")
def whole(model_path):
    return inference.load_estimator(model_path, tile_size=0, tile_overlap=0)


# ----------------------------------------------------------------------------- tiling geometry

def test_tile_starts_cover_and_align():
    # lengths are padded sizes (multiples of 16); a tile longer than the image is cut to it
    for length, tile, step in [(1008, 256, 192), (256, 256, 192), (96, 256, 192), (272, 128, 64)]:
        starts = tiling.tile_starts(length, min(tile, length), step)
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(b - a <= step for a, b in zip(starts, starts[1:]))
        assert all(s % 16 == 0 for s in starts)


def test_balanced_tiles_cover_evenly():
    for length in (96, 768, 784, 1024, 2048, 4000, 6000):
        t = tiling.balanced_tile(length, 768, 128)
        starts = tiling.tile_starts(length, t, t - 128)
        assert t % 16 == 0 and t <= 768 and starts[-1] + t == length
        overlaps = [a + t - b for a, b in zip(starts, starts[1:])]
        assert all(o >= 128 for o in overlaps)
        assert len(starts) * t <= 1.25 * length     # no big overhang of the last tile
    assert tiling.balanced_tile(1024, 768, 128) == 576   # 2 x 576 rather than 2 x 768


def test_blend_windows_are_a_partition_of_unity():
    starts = tiling.tile_starts(400, 128, 96)      # last tile overlaps more than 32 px
    total = np.zeros(400)
    for i, s in enumerate(starts):
        w = tiling._axis_window(starts, 128, i)
        assert w.min() > 0
        total[s:s + 128] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


@pytest.mark.parametrize("tile,overlap,match", [(100, 32, "multiple of 16"), (128, 24, "multiple of 16"),
                                                (128, 80, "half"), (16, 0, "at least"),
                                                (-16, 0, "non-negative"), (128.0, 32, "integer")])
def test_bad_tiling_rejected(model_path, tile, overlap, match):
    with pytest.raises(ValueError, match=match):
        inference.check_tiling(tile, overlap)
    with pytest.raises(ValueError, match=match):
        inference.load_estimator(model_path, tile_size=tile, tile_overlap=overlap)


# ----------------------------------------------------------------------------- sizes and inputs

def test_odd_size_map_has_input_size(whole, model_path):
    img, _ = scene(3, 517, 333)
    sigma = whole.predict(img)
    assert sigma.shape == (333, 517) and sigma.dtype == np.float32
    assert np.all(np.isfinite(sigma)) and sigma.min() >= 0 and sigma.max() <= SIGMA_MAX_PX
    tiled = inference.load_estimator(model_path, tile_size=128, tile_overlap=32)
    assert tiled.predict(img).shape == (333, 517)
    focus = whole.predict_focus(img)
    np.testing.assert_allclose(focus, 1.0 - sigma / SIGMA_MAX_PX, atol=1e-6)


def test_tiny_image_smaller_than_one_block(whole):
    img = np.random.default_rng(0).random((9, 13, 3)).astype(np.float32)
    assert whole.predict(img).shape == (9, 13)


def test_input_types_give_the_same_map(whole):
    img, _ = scene(4, 80, 64)
    u8 = np.round(img * 255).astype(np.uint8)
    ref = whole.predict(u8)
    np.testing.assert_allclose(whole.predict(u8.astype(np.float32) / 255.0), ref, atol=1e-5)
    u16 = u8.astype(np.uint16) * 257                        # 65535 = 255 * 257: same values
    np.testing.assert_allclose(whole.predict(u16), ref, atol=1e-5)
    rgba = np.concatenate([u8, np.full(u8.shape[:2] + (1,), 77, np.uint8)], axis=-1)
    np.testing.assert_allclose(whole.predict(rgba), ref, atol=1e-6)
    gray = u8[..., 1]
    np.testing.assert_allclose(whole.predict(gray), whole.predict(np.stack([gray] * 3, -1)), atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        whole.predict(np.zeros((4, 4, 2), np.uint8))
    bad = img.copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        whole.predict(bad)
    # out-of-range floats are clipped to [0, 1] like any other input path
    np.testing.assert_allclose(whole.predict(img * 3 - 1), whole.predict(np.clip(img * 3 - 1, 0, 1)),
                               atol=1e-6)


# ----------------------------------------------------------------------------- tiled == whole

def test_tiled_matches_whole_image(model_path, whole):
    """Tiles of 128 px with 64 px overlap agree with one whole-image pass within MAE 0.01 in
    sigma/7 units, and the blending removes the seams that overlap 0 leaves (negative control,
    so the comparison can fail)."""
    img, _ = scene(8, 320, 256)
    ref = whole.predict_native(img)
    assert ref.std() > 0.02                       # a non-trivial map, not a saturated constant
    tiled = inference.load_estimator(model_path, tile_size=128, tile_overlap=64)
    assert len(tiled.tiles(256, 320)[1]) * len(tiled.tiles(256, 320)[2]) > 4
    err = np.abs(tiled.predict_native(img) - ref)
    assert err.mean() <= 0.01
    seams = inference.load_estimator(model_path, tile_size=128, tile_overlap=0)
    seam_err = np.abs(seams.predict_native(img) - ref)
    assert seam_err.max() > 0.1                    # cut context shows at the tile borders
    assert err.max() < seam_err.max() / 5          # ... and the overlap blending removes it


def test_tile_progress_callback(model_path):
    est = inference.load_estimator(model_path, tile_size=64, tile_overlap=16)
    calls = []
    est.predict(np.zeros((100, 70, 3), np.float32), progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert total == len(est.tiles(100, 70)[1]) * len(est.tiles(100, 70)[2]) > 1
    assert [c[0] for c in calls] == list(range(1, total + 1))


def test_flip_averaging_is_the_mean_of_the_mirrored_maps(model_path, whole):
    img, _ = scene(5, 48, 80)
    mirror = lambda a, rows, cols: a[::-1 if rows else 1, ::-1 if cols else 1]
    views = [mirror(whole.predict(mirror(img, r, c)), r, c)
             for r, c in ((False, False), (False, True), (True, False), (True, True))]
    assert np.abs(views[1] - views[0]).max() > 1e-3     # the network is not mirror-invariant
    for flips in (2, 4):
        est = inference.load_estimator(model_path, tile_size=0, tile_overlap=0, flips=flips)
        np.testing.assert_allclose(est.predict(img), np.mean(views[:flips], axis=0), atol=1e-5)
    tiled = inference.load_estimator(model_path, tile_size=32, tile_overlap=16, flips=2)
    assert tiled.predict(img).shape == img.shape[:2]
    with pytest.raises(ValueError, match="flips must be one of"):
        inference.load_estimator(model_path, flips=3)


def test_a_smaller_reading_scale_reads_the_resized_photo_and_widens_the_range(model_path, whole):
    import cv2
    img, _ = scene(6, 64, 96)
    h, w = img.shape[:2]
    half = inference.load_estimator(model_path, tile_size=0, tile_overlap=0, scale=0.5)
    assert half.sigma_max_px(h, w) == 14.0
    small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    want = cv2.resize(whole.predict(small), (w, h), interpolation=cv2.INTER_LINEAR) * 2.0
    got = half.predict(img)
    assert got.shape == (h, w)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(half.predict_focus(img), 1.0 - got / 14.0, atol=1e-5)
    odd = inference.load_estimator(model_path, tile_size=32, tile_overlap=16, scale=0.3)
    assert odd.predict(img[:5, :3]).shape == (5, 3)        # 2 x 1 px read, resized back
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match="scale must be in"):
            inference.load_estimator(model_path, scale=bad)


def test_reading_scale_caps_the_long_side():
    assert inference.DEFAULT_MAX_SIDE == 1280
    assert inference.reading_scale(960, 1280) == 1.0                  # validation x2: as read
    assert inference.reading_scale(2988, 5312) == pytest.approx(1280 / 5312)   # 16 MP
    assert inference.reading_scale(5312, 2988) == pytest.approx(1280 / 5312)   # portrait
    assert inference.reading_scale(2988, 5312, max_side=0) == 1.0      # 0 = no cap
    assert inference.reading_scale(2988, 5312, scale=0.2) == 0.2       # the lower of the two
    assert inference.reading_scale(480, 640, scale=0.5, max_side=320) == 0.5
    assert inference.scaled_size(2988, 5312, 1280 / 5312) == (720, 1280)
    assert inference.scaled_size(5, 3, 0.1) == (1, 1)


def test_a_photo_longer_than_max_side_is_read_downscaled_to_it(model_path, whole):
    img, _ = scene(6, 64, 96)
    capped = inference.load_estimator(model_path, tile_size=0, tile_overlap=0, max_side=48)
    half = inference.load_estimator(model_path, tile_size=0, tile_overlap=0, scale=0.5, max_side=0)
    assert (capped.reading_scale(64, 96), capped.sigma_max_px(64, 96)) == (0.5, 14.0)
    np.testing.assert_allclose(capped.predict(img), half.predict(img), atol=1e-6)
    np.testing.assert_allclose(capped.predict_focus(img), half.predict_focus(img), atol=1e-6)
    inside = img[:48, :40]                                   # within the cap: read as it is
    assert capped.sigma_max_px(48, 40) == 7.0
    np.testing.assert_allclose(capped.predict(inside), whole.predict(inside), atol=1e-6)
    lower = inference.load_estimator(model_path, tile_size=0, tile_overlap=0, scale=0.25,
                                     max_side=48)            # --scale below the cap's scale
    assert lower.sigma_max_px(64, 96) == 28.0
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_side must be"):
            inference.load_estimator(model_path, max_side=bad)


# ----------------------------------------------------------------------------- formats

@pytest.fixture(scope="module")
def saved_model_dir(model_path, tmp_path_factory):
    from tf_defocus.export.saved_model import export_saved_model
    return export_saved_model(model_path, tmp_path_factory.mktemp("serving"), warmup_requests=False)


def test_keras_and_saved_model_give_the_same_map(saved_model_dir, whole):
    version_dir = saved_model_dir
    img, _ = scene(5, 150, 97)
    ref = whole.predict(img)
    for path in (version_dir.parent, version_dir.parent.parent):   # model base, export root
        assert backends._saved_model_dir(path) == version_dir
    est = inference.load_estimator(version_dir.parent.parent, tile_size=0, tile_overlap=0)
    assert est.kind == artifacts.KIND_DEFOCUS
    np.testing.assert_allclose(est.predict(img), ref, atol=1e-3)
    tiled = inference.load_estimator(version_dir, tile_size=64, tile_overlap=16)
    assert tiled.predict(img).shape == (97, 150)


def test_fixed_size_tflite_tiles_at_its_input_size(model_path, whole, tmp_path):
    from tf_defocus.export.tflite import convert_tflite
    path = tmp_path / "m64.tflite"
    convert_tflite(model_path, path, input_size=(64, 64))
    est = inference.load_estimator(path)                # default overlap, capped at 32 px here
    assert est.fixed_size == (64, 64) and est.kind == artifacts.KIND_DEFOCUS
    img, _ = scene(6, 150, 97)
    out = est.predict(img)
    assert out.shape == (97, 150)
    (th, tw), ys, xs, _ = est.tiles(97, 150)
    assert (th, tw) == (64, 64) and len(ys) * len(xs) > 1
    ref = whole.predict(img)
    assert np.abs(out - ref).mean() / SIGMA_MAX_PX <= 0.01
    small = est.predict(img[:20, :30])                  # smaller than the fixed input: padded
    assert small.shape == (20, 30)


@pytest.mark.slow
def test_dynamic_and_int8_tflite(model_path, whole, tmp_path):
    from tf_defocus.export.tflite import convert_tflite
    img, _ = scene(6, 150, 97)
    ref = whole.predict(img)
    convert_tflite(model_path, tmp_path / "dyn.tflite", input_size=None)
    dyn = inference.load_estimator(tmp_path / "dyn.tflite", tile_size=0, tile_overlap=0)
    assert dyn.fixed_size is None
    np.testing.assert_allclose(dyn.predict(img), ref, atol=1e-3)
    convert_tflite(model_path, tmp_path / "q.tflite", input_size=(64, 64), quantize="int8",
                   num_calibration=4)
    q = inference.load_estimator(tmp_path / "q.tflite")
    assert q.backend._in["dtype"] == np.uint8
    out = q.predict(img)
    assert out.shape == (97, 150) and np.abs(out - ref).mean() / SIGMA_MAX_PX < 0.15


# ----------------------------------------------------------------------------- bad models

def test_not_a_model_is_rejected_before_work(tmp_path):
    bad = tmp_path / "x.keras"
    bad.write_text("hello")
    with pytest.raises(inference.ModelLoadError, match="x.keras"):
        inference.load_estimator(bad)
    with pytest.raises(inference.ModelLoadError, match="no such file"):
        inference.load_estimator(tmp_path / "missing.keras")
    other = tmp_path / "weights.h5"
    other.write_bytes(b"\x00" * 10)
    with pytest.raises(inference.ModelLoadError, match="unknown model format"):
        inference.load_estimator(other)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(inference.ModelLoadError, match="junk.tflite"):
        inference.load_estimator(junk)


def test_foreign_keras_model_is_rejected(tmp_path):
    import keras
    inp = keras.Input((None, None, 3))
    m = keras.Model(inp, keras.layers.Conv2D(1, 3, padding="same")(inp), name="segmenter")
    m.save(tmp_path / "segmenter.keras")
    with pytest.raises(inference.ModelLoadError, match="segmenter"):
        inference.load_estimator(tmp_path / "segmenter.keras")
    inp = keras.Input((None, None, 3))
    m = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same")(inp), name="blur_estimator")
    m.save(tmp_path / "blur_estimator.keras")
    with pytest.raises(inference.ModelLoadError, match="output shape"):
        inference.load_estimator(tmp_path / "blur_estimator.keras")


def test_foreign_tflite_model_is_rejected(tmp_path):
    import tensorflow as tf

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 10], tf.float32)])
        def serve(self, x):
            return {"y": x * 2.0}

    mod = Doubler()
    tf.saved_model.save(mod, str(tmp_path / "sm"), signatures={"serve": mod.serve})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"), signature_keys=["serve"])
    (tmp_path / "doubler.tflite").write_bytes(conv.convert())
    with pytest.raises(inference.ModelLoadError, match="doubler.tflite"):
        inference.load_estimator(tmp_path / "doubler.tflite")
    # with a sidecar claiming it is a defocus model, the shapes still give it away
    artifacts.write_info(tmp_path / "doubler.tflite", artifacts.ModelInfo(kind="defocus",
                                                                          outputs=("y",)))
    with pytest.raises(inference.ModelLoadError, match="doubler.tflite"):
        inference.load_estimator(tmp_path / "doubler.tflite")


# ----------------------------------------------------------------------------- dof_weight kinds

def test_dof_kind_model_refuses_sigma(tmp_path):
    from tf_defocus.models.dofnet import DoFNet
    path = tmp_path / "dofnet.keras"
    DoFNet(width=0.125).inference_model().save(path)
    est = inference.load_estimator(path, tile_size=64, tile_overlap=16)
    assert est.kind == artifacts.KIND_DOF_WEIGHT
    img, _ = scene(2, 90, 70)
    with pytest.raises(ValueError, match="no blur unit"):
        est.predict(img)
    focus = est.predict_focus(img)
    assert focus.shape == (70, 90) and 0 <= focus.min() and focus.max() <= 1


def test_dof_weight_method_matches_library_function():
    from tf_defocus.dof import dof_weight_map
    import tf_defocus
    img, _ = scene(9, 96, 64)
    method = inference.DoFWeightMethod(mask_size=15)
    np.testing.assert_allclose(method.predict_focus(img), dof_weight_map(img, mask_size=15))
    assert tf_defocus.dof_weight_map is dof_weight_map
    with pytest.raises(ValueError, match="no blur unit"):
        method.predict(img)
    with pytest.raises(ValueError, match="odd"):
        inference.DoFWeightMethod(mask_size=4)


def test_package_exports():
    import subprocess
    import sys
    code = ("import tf_defocus; f = tf_defocus.load_estimator; print(f.__module__); "
            "import keras; from keras.saving import get_registered_object as g; "
            "print(g('tf_defocus>SymmetricPad') is not None, g('tf_defocus>DoFNet') is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tf_defocus.inference", "True", "True"]


def test_info_sidecar_of_saved_model_is_read(saved_model_dir):
    version_dir = saved_model_dir
    est = inference.load_estimator(version_dir)
    assert est.info is not None and est.info.kind == "defocus"
    info = json.loads((version_dir / artifacts.INFO_FILENAME).read_text())
    assert info["kind"] == "defocus"
