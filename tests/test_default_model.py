"""The built-in default model (tf_defocus/weights): it ships, loads with no argument, and does
not call smooth in-focus surfaces blurred (the quickstart model's failure, issue 11); bokeh is
a known failure."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import tf_defocus
from tf_defocus import artifacts, inference, metrics
from tf_defocus.data import synthesize
from tf_defocus.data.generate import image_seed
from tf_defocus.models.layers import suggested_tile_size
from tf_defocus.weights import DEFAULT_MODEL

VAL_SEED = 20261201  # configs/validation_set.flags
SHIPPED = pytest.mark.skipif(not DEFAULT_MODEL.is_file(),
                             reason="the default model has not shipped yet (issue 11)")
MAX_PACKAGE_MB = 25


@SHIPPED
def test_default_model_ships_with_its_info_and_is_small():
    assert DEFAULT_MODEL.is_file(), f"{DEFAULT_MODEL} is missing"
    assert DEFAULT_MODEL.stat().st_size <= MAX_PACKAGE_MB * 2**20
    info = artifacts.read_info(DEFAULT_MODEL)
    assert info is not None and info.kind == artifacts.KIND_DEFOCUS


@SHIPPED
def test_load_estimator_without_argument_loads_the_default_model():
    est = tf_defocus.load_estimator()
    assert est.kind == artifacts.KIND_DEFOCUS
    assert est.path == str(DEFAULT_MODEL)
    suggested = suggested_tile_size(est.backend.model)
    assert est.tile_size == artifacts.read_info(DEFAULT_MODEL).tile_size == suggested == 1280
    assert tf_defocus.load_estimator(tile_size=768).tile_size == 768
    sigma = est.predict(np.random.default_rng(0).random((40, 56, 3), np.float32))
    assert sigma.shape == (40, 56) and sigma.dtype == np.float32
    assert 0.0 <= sigma.min() and sigma.max() <= 7.0


def _validation_scene(index, **kw):
    """Scene ``index`` of the validation set (seed, size and settings of
    ``configs/validation_set.flags``; ``highlights=0.5``: ``configs/validation_set_lights.flags``)."""
    return synthesize.synthesize(image_seed(VAL_SEED, index), 640, 480, psf="disc",
                                 scene="layered", isp="varied", photo_split="val", **kw)


def _first_scenes(count, pick):
    """The first ``count`` non-None ``pick(index)`` over the 64 validation scene indices."""
    picked = (pick(index) for index in range(64))
    return [item for _, item in zip(range(count), (p for p in picked if p is not None))]


def _shipped_readings(scenes, count):
    """[(sigma [px] (H, W) read by the built-in model, the scene's mask)] of the first ``count``
    scenes of ``scenes`` (``_all_in_focus_validation_scenes`` or ``_lit_validation_scenes``)."""
    picked = scenes(count)
    assert len(picked) == count
    est = tf_defocus.load_estimator()
    return [(est.predict(image), mask) for image, mask in picked]


def _all_in_focus_validation_scenes(count):
    """The first ``count`` all-in-focus validation scenes with a large smooth in-focus area:
    (image, bool smooth in-focus pixels)."""
    def pick(index):
        s = _validation_scene(index)
        if s.camera["max_coc_px"] < 2.0:
            smooth = metrics.smooth_in_focus_pixels(s.image, s.sigma_px)
            return (s.image, smooth) if smooth.mean() >= 0.1 else None
    return _first_scenes(count, pick)


# Issue 11's target: the quickstart model read these surfaces as ~5 px of blur
# (docs/MODEL_CARD.md gives both models' medians over all such scenes of the validation set;
# `python benchmarks/smooth_in_focus.py` covers every scene, so this test checks three).
@SHIPPED
@pytest.mark.slow
def test_smooth_in_focus_surfaces_are_not_called_blurred():
    for sigma, smooth in _shipped_readings(_all_in_focus_validation_scenes, 3):
        assert float(np.median(sigma[smooth])) <= 1.0


@SHIPPED
def test_predict_cli_uses_the_default_model(tmp_path):
    img = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), img)
    res = subprocess.run([sys.executable, "-m", "tf_defocus.predict", f"--input={tmp_path / 'photo.png'}",
                          f"--output_dir={tmp_path / 'out'}", "--outputs=sigma"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    sigma = np.load(tmp_path / "out" / "photo.npy")
    assert sigma.shape == (48, 64)
    config = json.loads((tmp_path / "out" / "predict_config.json").read_text())
    assert config["model"] in (None, "", str(DEFAULT_MODEL)) or config["model"].endswith("default_model.keras")


@SHIPPED
def test_export_uses_the_default_model(tmp_path):
    """``export`` with no --model writes the default model as a dynamic-size TFLite file whose
    sigma matches the Keras model's (FillSmooth included)."""
    from tf_defocus.export.job import ExportConfig, run_export
    out = run_export(ExportConfig(format="tflite", out=str(tmp_path / "default.tflite"),
                                  input_size="dynamic"))
    keras_model, lite_model = tf_defocus.load_estimator(), tf_defocus.load_estimator(str(out))
    for h, w in [(64, 96), (16, 16)]:
        image = np.random.default_rng(h).random((h, w, 3), np.float32)
        assert np.abs(keras_model.predict(image) - lite_model.predict(image)).max() < 1e-2  # px
    assert artifacts.read_info(out).tile_size == artifacts.read_info(DEFAULT_MODEL).tile_size


def test_missing_default_model_is_a_clear_error(monkeypatch, tmp_path):
    import tf_defocus.weights as weights
    monkeypatch.setattr(weights, "DEFAULT_MODEL", tmp_path / "default_model.keras")
    with pytest.raises(inference.ModelLoadError, match="built-in default model is missing"):
        inference.load_estimator()


def _lit_validation_scenes(count):
    """The first ``count`` validation scenes with point lights whose lights leave at least
    2,000 blurred px: (lit image, bool footprint of the lights where the true sigma is at
    least 2 px; the footprint of ``benchmarks/bokeh.py``)."""
    def pick(index):
        lit = _validation_scene(index, highlights=0.5)
        if lit.camera.get("point_lights"):
            footprint = np.abs(lit.image - _validation_scene(index).image).max(axis=-1) * 255 > 8
            footprint &= lit.sigma_px >= 2.0
            return (lit.image, footprint) if footprint.sum() >= 2000 else None
    return _first_scenes(count, pick)


# Bokeh (docs/MODEL_CARD.md, status.md items 31-33): lights brighter than white defocus into
# discs with crisp rims. On these four scenes the shipped model (seventh cycle, guided_edges
# fill, item 76) reads 7.6% of the blurred footprint as in focus; the same network with the
# guided fill 10.8% (item 73), the sixth cycle 9.8%, the fourth 11.9%. Over every lit
# validation scene 6.6% against 10.6% (`python benchmarks/bokeh.py`): smaller, not gone.
@SHIPPED
@pytest.mark.slow
def test_bokeh_discs_are_read_as_blurred():
    sharp = [sigma[footprint] < 1.0 for sigma, footprint in _shipped_readings(_lit_validation_scenes, 4)]
    assert np.concatenate(sharp).mean() <= 0.10
