"""python -m tf_defocus.predict: outputs, input kinds, bad files, bad flags."""

import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.inference_helpers import calibrated_keras_model, scene
from tf_defocus import imageio, prediction
from tf_defocus.units import SIGMA_MAX_PX


@pytest.fixture(scope="module")
def model_path():
    return calibrated_keras_model()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with an odd-size JPEG, an EXIF-rotated JPEG, a grey PNG, a 16-bit PNG, an RGBA
    PNG and one corrupt file."""
    d = tmp_path_factory.mktemp("photos")
    img, _ = scene(11, 67, 45)
    u8 = np.round(img * 255).astype(np.uint8)
    Image.fromarray(u8).save(d / "odd.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6                                   # rotate 90 degrees clockwise on display
    Image.fromarray(u8).save(d / "rotated.jpg", exif=exif, quality=95)
    cv2.imwrite(str(d / "gray.png"), u8[..., 0])
    cv2.imwrite(str(d / "deep.png"), (u8.astype(np.uint16) * 257)[..., ::-1])
    rgba = np.concatenate([u8, np.full(u8.shape[:2] + (1,), 128, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return d


def _config(model_path, inputs, out, **kw):
    base = dict(input=tuple(str(i) for i in inputs), output_dir=str(out), model=model_path,
                tile_size=32, tile_overlap=16)
    base.update(kw)
    return prediction.PredictConfig(**base)


def test_all_outputs_for_every_input_kind_and_a_corrupt_file(model_path, photos, tmp_path):
    out = tmp_path / "out"
    err = io.StringIO()
    cfg = _config(model_path, [photos], out, outputs=prediction.OUTPUT_KINDS)
    assert prediction.run_config(cfg, err) == 1           # one bad file -> non-zero exit
    log = err.getvalue()
    assert "broken.png" in log and "error:" in log and "5 ok, 1 failed" in log
    for stem in ("odd", "rotated", "gray", "deep", "alpha"):
        sigma = np.load(out / f"{stem}.npy")
        expect = (67, 45) if stem == "rotated" else (45, 67)    # EXIF rotation applied
        assert sigma.shape == expect and sigma.dtype == np.float32
        assert 0 <= sigma.min() and sigma.max() <= SIGMA_MAX_PX
        color = cv2.imread(str(out / f"{stem}_defocus.png"))
        assert color.shape[0] == expect[0] and color.shape[1] > expect[1]    # legend bar added
        focus = cv2.imread(str(out / f"{stem}_focus.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_allclose(focus / 255.0, 1 - sigma / SIGMA_MAX_PX, atol=1 / 255 + 1e-6)
        mask = cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask == 255, sigma > 1.0)
        sbs = cv2.imread(str(out / f"{stem}_side_by_side.png"))
        assert sbs.shape[0] == expect[0] and sbs.shape[1] > 2 * expect[1]
    assert not (out / "broken.npy").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]     # no temp files left
    cfg_json = json.loads((out / prediction.CONFIG_FILENAME).read_text())
    assert cfg_json["model_kind"] == "defocus" and cfg_json["tile_size"] == 32


def test_input_kinds_match_their_rgb_equivalent(model_path, photos, tmp_path):
    out = tmp_path / "o"
    inputs = [photos / "odd.jpg", photos / "deep.png", photos / "alpha.png"]
    assert prediction.run_config(_config(model_path, inputs, out), io.StringIO()) == 0
    # 16-bit and RGBA versions of the same pixels give the map of the 8-bit RGB image
    est = prediction.load_method(_config(model_path, [photos], out))
    img, _ = scene(11, 67, 45)
    ref = est.predict(np.round(img * 255).astype(np.uint8))
    np.testing.assert_allclose(np.load(out / "deep.npy"), ref, atol=1e-4)
    np.testing.assert_allclose(np.load(out / "alpha.npy"), ref, atol=1e-4)


def test_scale_reads_a_smaller_photo_and_its_outputs_use_the_wider_range(model_path, photos,
                                                                         tmp_path):
    out = tmp_path / "o"
    cfg = _config(model_path, [photos / "odd.jpg"], out, scale=0.5,
                  outputs=("sigma", "focus", "mask"))
    assert prediction.run_config(cfg, io.StringIO()) == 0
    est = prediction.load_method(cfg)
    assert (est.scale, est.sigma_max_px(45, 67)) == (0.5, 2 * SIGMA_MAX_PX)
    sigma = np.load(out / "odd.npy")
    np.testing.assert_allclose(sigma, est.predict(imageio.read_image(photos / "odd.jpg")),
                               atol=1e-4)
    focus = cv2.imread(str(out / "odd_focus.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(focus / 255.0, 1 - sigma / (2 * SIGMA_MAX_PX), atol=1 / 255 + 1e-6)
    mask = cv2.imread(str(out / "odd_mask.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask == 255, sigma > 1.0)
    assert json.loads((out / prediction.CONFIG_FILENAME).read_text())["scale"] == 0.5


def test_max_side_reads_a_long_photo_downscaled_and_says_so(model_path, photos, tmp_path):
    # odd.jpg is 67 x 45 px (w x h): --max_side=34 reads it at 34 / 67 (34 x 23 px), as --scale would
    outs = ("sigma", "focus", "color")
    capped = _config(model_path, [photos / "odd.jpg"], tmp_path / "c", max_side=34, outputs=outs)
    scaled = _config(model_path, [photos / "odd.jpg"], tmp_path / "s", scale=34 / 67, max_side=0,
                     outputs=outs)
    err = io.StringIO()
    assert prediction.run_config(capped, err) == 0
    assert prediction.run_config(scaled, io.StringIO()) == 0
    assert "67x45 px, read at scale 0.507 (34x23 px)" in err.getvalue()
    assert capped.sigma_max_px(45, 67) == pytest.approx(SIGMA_MAX_PX * 67 / 34)
    for name in ("odd.npy", "odd_focus.png", "odd_defocus.png"):
        a, b = (tmp_path / d / name for d in "cs")
        load = np.load if name.endswith(".npy") else (lambda p: cv2.imread(str(p)))
        np.testing.assert_allclose(load(a), load(b), atol=1e-5)
    wide = _config(model_path, [photos / "odd.jpg"], tmp_path / "w", max_side=0)
    err = io.StringIO()
    assert prediction.run_config(wide, err) == 0 and "read at scale" not in err.getvalue()


def test_bad_flags_fail_before_any_work(model_path, photos, tmp_path):
    cases = [(dict(tile_size=100), "--tile_size must be a multiple of 16"),
             (dict(tile_overlap=8), "--tile_overlap must be a multiple of 16"),
             (dict(flips=3), "--flips must be one of 1, 2, 4"),
             (dict(scale=0.0), "--scale"), (dict(scale=2.0), "--scale"),
             (dict(max_side=-1), "--max_side"),
             (dict(outputs=("sigma", "bogus")), "--outputs .*bogus"),
             (dict(method="dof_weight", model="", outputs=("sigma", "color")), "no blur unit")]
    for kw, msg in cases:                              # the config refuses itself
        with pytest.raises(ValueError, match=msg):
            _config(model_path, [photos], tmp_path / "o", **kw)
    out = tmp_path / "o"
    err = io.StringIO()
    assert prediction.run_config(_config(model_path, [photos], out,
                                         model=str(tmp_path / "none.keras")), err) == 2
    assert "none.keras" in err.getvalue(), err.getvalue()
    assert not out.exists()


def test_dof_weight_method(photos, tmp_path):
    from tf_defocus.dof import dof_weight_map
    from tf_defocus.imageio import read_image
    out = tmp_path / "dof"
    cfg = prediction.PredictConfig(input=(str(photos / "odd.jpg"),), output_dir=str(out),
                                   method="dof_weight", outputs=("color", "focus", "mask"))
    assert prediction.run_config(cfg, io.StringIO()) == 0
    focus = cv2.imread(str(out / "odd_focus.png"), cv2.IMREAD_UNCHANGED) / 255.0
    ref = dof_weight_map(read_image(photos / "odd.jpg"))
    np.testing.assert_allclose(focus, ref, atol=1 / 255 + 1e-6)
    mask = cv2.imread(str(out / "odd_mask.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask == 255, ref < 0.5)


def test_missing_input_is_reported_and_others_processed(model_path, photos, tmp_path):
    err = io.StringIO()
    cfg = _config(model_path, [photos / "odd.jpg", tmp_path / "nope*.jpg"], tmp_path / "o")
    assert prediction.run_config(cfg, err) == 1
    assert "nope*.jpg" in err.getvalue()
    assert (tmp_path / "o" / "odd.npy").exists()


def test_output_stems_are_unique(tmp_path):
    from pathlib import Path
    stems = prediction.output_stems([Path("a/x.jpg"), Path("a/x.png"), Path("b/x.jpg"),
                                     Path("y.png")])
    assert stems == ["x_jpg", "x_png", "x_jpg_2", "y"]


def test_cli_subprocess_positional_and_comma_inputs(model_path, photos, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "tf_defocus.predict", f"--model={model_path}",
           f"--input={photos / 'odd.jpg'},{photos / 'gray.png'}", f"--output_dir={out}",
           "--tile_size=32", "--tile_overlap=16", "--outputs=sigma,color",
           str(photos / "broken.png")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "broken.png" in res.stderr and "2 ok, 1 failed" in res.stderr
    assert (out / "odd.npy").exists() and (out / "gray_defocus.png").exists()
    bad = subprocess.run([sys.executable, "-m", "tf_defocus.predict", f"--model={model_path}",
                          f"--input={photos}", f"--output_dir={out}", "--tile_size=30"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "multiple of 16" in bad.stderr


# ------------------------------------------------------------- first contact (issue #12, 9)

@pytest.fixture(scope="module")
def dofnet_path(tmp_path_factory):
    from tf_defocus.models.dofnet import DoFNet
    path = tmp_path_factory.mktemp("dofnet") / "dofnet.keras"
    DoFNet(width=0.125).inference_model().save(path)
    return str(path)


@pytest.mark.parametrize("method", ["model", "dofnet", "dof_weight", "lbp", "hifst"])
def test_default_outputs_suit_the_method(model_path, dofnet_path, photos, tmp_path, method):
    """No --outputs: sigma + colour map for a defocus model; colour + grey focus map for focus
    scores (no sigma), whose colour file is not called _defocus.png."""
    out = tmp_path / "out"
    kw = (dict(model=model_path, tile_size=32, tile_overlap=16) if method == "model" else
          dict(model=dofnet_path, tile_size=32, tile_overlap=16) if method == "dofnet" else
          dict(method=method))
    cfg = prediction.PredictConfig(input=(str(photos / "odd.jpg"),), output_dir=str(out), **kw)
    assert cfg.outputs is None
    err = io.StringIO()
    assert prediction.run_config(cfg, err) == 0, err.getvalue()
    names = sorted(p.name for p in out.iterdir())
    if method == "model":
        assert names == ["odd.npy", "odd_defocus.png", prediction.CONFIG_FILENAME]
        expect = ["sigma", "color"]
    else:
        assert names == ["odd_focus.png", "odd_focus_color.png", prediction.CONFIG_FILENAME]
        expect = ["color", "focus"]
        color = cv2.imread(str(out / "odd_focus_color.png"))
        assert color.shape[0] == 45 and color.shape[1] > 67               # with its legend
    assert json.loads((out / prediction.CONFIG_FILENAME).read_text())["outputs"] == expect


def test_focus_score_methods_still_refuse_an_explicit_sigma(dofnet_path, photos, tmp_path):
    base = dict(input=(str(photos / "odd.jpg"),), output_dir=str(tmp_path / "o"), outputs=("sigma",))
    with pytest.raises(ValueError, match="drop 'sigma'"):
        prediction.PredictConfig(method="lbp", **base)
    err = io.StringIO()
    cfg = prediction.PredictConfig(model=dofnet_path, **base)
    assert prediction.run_config(cfg, err) == 2 and "drop 'sigma'" in err.getvalue()
    assert not (tmp_path / "o").exists()


def test_wrong_input_path_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    for inputs in ([tmp_path / "nope.jpg"], [tmp_path / "no_such_dir"], [tmp_path / "*.png"],
                   [tmp_path / "empty"]):
        out = tmp_path / "out"
        err = io.StringIO()
        cfg = prediction.PredictConfig(input=tuple(map(str, inputs)), output_dir=str(out),
                                       method="dof_weight")
        assert prediction.run_config(cfg, err) == 1
        log = err.getvalue()
        assert f"error: {inputs[0]}: " in log and "no images to process; nothing written" in log
        assert not out.exists(), inputs                  # no folder, no predict_config.json


def test_last_line_says_where_the_outputs_are(photos, tmp_path):
    import os
    out = tmp_path / "maps"
    for inputs, code in (([photos / "odd.jpg"], 0), ([photos / "odd.jpg", photos / "broken.png"], 1)):
        err = io.StringIO()
        cfg = prediction.PredictConfig(input=tuple(map(str, inputs)), output_dir=str(out),
                                       method="dof_weight")
        assert prediction.run_config(cfg, err) == code
        assert err.getvalue().splitlines()[-1] == \
            f"predict: outputs of 1 image(s) in {os.path.abspath(out)}", err.getvalue()


def test_colour_map_of_tiny_images_keeps_the_image_size(tmp_path):
    """An 8x8 photo gave a 30x8 colour map with an unreadable legend; below MIN_LEGEND_HEIGHT the
    colour map is the photo's size, from it on the legend is added on the right."""
    rng = np.random.default_rng(0)
    min_h = prediction.MIN_LEGEND_HEIGHT
    for kind in ("defocus", "dof_weight"):
        for h, w in ((8, 8), (min_h - 1, 12), (min_h, 12), (8, 200)):
            image = rng.random((h, w, 3), dtype=np.float32)
            native = rng.random((h, w), dtype=np.float32)
            cfg = prediction.PredictConfig(input=("x",), output_dir=str(tmp_path / kind),
                                           outputs=("color", "side_by_side"))
            color_path, sbs_path = prediction.write_outputs(image, native, kind, f"p{h}x{w}", cfg)
            color = cv2.imread(str(color_path))
            sbs = cv2.imread(str(sbs_path))
            if h < min_h:
                assert color.shape == (h, w, 3), (kind, h, w, color.shape)
                assert sbs.shape == (h, 2 * w + 8, 3)             # photo | 8 px gap | map
            else:
                assert color.shape[0] == h and color.shape[1] > w + 30   # legend bar added
            assert color_path.name.endswith("_defocus.png" if kind == "defocus"
                                            else "_focus_color.png")
    # --nolegend: never a legend.
    cfg = prediction.PredictConfig(input=("x",), output_dir=str(tmp_path / "n"), outputs=("color",),
                                   legend=False)
    (path,) = prediction.write_outputs(rng.random((64, 64, 3), dtype=np.float32),
                                       rng.random((64, 64), dtype=np.float32), "defocus", "p", cfg)
    assert cv2.imread(str(path)).shape == (64, 64, 3)
