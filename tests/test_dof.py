"""KCI DoF weight map (tf_defocus.dof), DoFNet and its training task."""

import cv2
import numpy as np
import pytest

from tf_defocus import dof
from tf_defocus.imageio import ImageReadError


def _texture(h, w, seed=0):
    """High-contrast random texture (coloured discs + fine noise), float32 RGB [0, 1]."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 0.5, np.float32)
    for _ in range(h * w // 20):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, c, int(rng.integers(1, 6)), rng.uniform(0, 1, 3).tolist(), -1)
    return np.clip(img + rng.normal(0, 0.02, img.shape).astype(np.float32), 0, 1)


def _half_blurred(h=64, w=128, sigma=3.0, seed=0):
    img = _texture(h, w, seed)
    blurred = cv2.GaussianBlur(img, (0, 0), sigma)
    out = img.copy()
    out[:, w // 2:] = blurred[:, w // 2:]
    return out


def test_matches_direct_formula():
    """Eqs. 1-3 written out with an explicit 2-D mask and loops (no OpenCV filtering)."""
    k, sigma = 5, 1.1
    img = _texture(12, 14, seed=5)
    g1 = np.exp(-0.5 * ((np.arange(k) - k // 2) / sigma) ** 2)
    g1 /= g1.sum()
    mask = np.outer(g1, g1)
    r = k // 2

    def corr(a):  # cross-correlation with the mask, mirrored borders (fedcba|abcdef)
        p = np.pad(a, [(r, r), (r, r)] + [(0, 0)] * (a.ndim - 2), mode="symmetric")
        out = np.zeros_like(a, dtype=np.float64)
        for dy in range(k):
            for dx in range(k):
                out += mask[dy, dx] * p[dy:dy + a.shape[0], dx:dx + a.shape[1]]
        return out

    d = np.linalg.norm(img - corr(img.astype(np.float64)), axis=-1)
    expected = corr(d)
    np.testing.assert_allclose(dof.raw_weight_map(img, mask_size=k, sigma=sigma), expected,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dof.dof_weight_map(img, mask_size=k, sigma=sigma,
                                                  normalization="fixed", scale=0.05),
                               np.clip(expected / 0.05, 0, 1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("normalization", ["percentile", "fixed"])
def test_sharp_half_weighs_more(normalization):
    img = _half_blurred()
    w = dof.dof_weight_map(img, normalization=normalization)
    assert w.shape == img.shape[:2] and w.dtype == np.float32
    assert 0.0 <= w.min() and w.max() <= 1.0
    # Compare away from the boundary between the halves (mask radius 7 px, twice).
    left, right = w[:, :64 - 16].mean(), w[:, 64 + 16:].mean()
    assert left > 2.0 * right, (left, right)


def test_blur_monotone():
    img = _texture(64, 64)
    means = [dof.raw_weight_map(cv2.GaussianBlur(img, (0, 0), s) if s else img).mean()
             for s in (0, 1, 2, 4)]
    assert all(a > b for a, b in zip(means, means[1:])), means


@pytest.mark.parametrize("pad", [5, 16, 23])
def test_invariant_to_reflect_padding(pad):
    img = _half_blurred(48, 80)
    ref = dof.dof_weight_map(img, normalization="fixed")
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    got = dof.dof_weight_map(padded, normalization="fixed")[pad:-pad, pad:-pad]
    if pad >= 14:  # two mask radii: the border extrapolation is then exactly the padding
        np.testing.assert_allclose(got, ref, atol=1e-5)
    else:  # only the outermost pixels see the difference, and little of it
        assert np.abs(got - ref).max() < 0.1 and np.abs(got - ref).mean() < 0.01
    # The per-image percentile normalisation moves only a little with the added mirrored pixels.
    ref_p = dof.dof_weight_map(img)
    got_p = dof.dof_weight_map(padded)[pad:-pad, pad:-pad]
    assert np.abs(got_p - ref_p).mean() < 0.03


def test_interior_independent_of_padding_content():
    """Pixels further than 2 mask radii from the border do not see the padding at all."""
    img = _texture(64, 64, seed=3)
    rng = np.random.default_rng(1)
    padded = rng.uniform(0, 1, (64 + 40, 64 + 40, 3)).astype(np.float32)
    padded[20:-20, 20:-20] = img
    a = dof.raw_weight_map(img)[14:-14, 14:-14]
    b = dof.raw_weight_map(padded)[20 + 14:-20 - 14, 20 + 14:-20 - 14]
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("mask_size", [2, 14, 1, 0, -3, 15.0, True, "15"])
def test_bad_mask_size_rejected(mask_size):
    with pytest.raises(ValueError, match="mask_size"):
        dof.dof_weight_map(_texture(16, 16), mask_size=mask_size)
    with pytest.raises(ValueError, match="mask_size"):
        dof.dof_training_target(_texture(16, 16), mask_size=mask_size)


def test_other_mask_sizes_and_sigma():
    img = _half_blurred()
    for k in (3, 5, 31):
        w = dof.dof_weight_map(img, mask_size=k)
        assert w[:, :40].mean() > w[:, 88:].mean()
    with pytest.raises(ValueError, match="sigma"):
        dof.dof_weight_map(img, sigma=0)
    with pytest.raises(ValueError, match="normalization"):
        dof.dof_weight_map(img, normalization="max")
    assert dof.default_sigma(15) == pytest.approx(2.6)


def test_input_types():
    img = _half_blurred(32, 48)
    u8 = np.round(img * 255).astype(np.uint8)
    u16 = (u8.astype(np.uint16) * 257)
    ref = dof.dof_weight_map(u8)
    np.testing.assert_allclose(dof.dof_weight_map(u16), ref, atol=1e-5)
    rgba = np.concatenate([u8, np.full((32, 48, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_allclose(dof.dof_weight_map(rgba), ref, atol=1e-6)
    gray = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)
    wg = dof.dof_weight_map(gray)
    assert wg.shape == (32, 48) and np.isfinite(wg).all()
    np.testing.assert_allclose(dof.dof_weight_map(gray[..., None]), wg)
    # Gray is replicated to 3 channels, so the RGB length is sqrt(3) x the gray difference.
    g = gray.astype(np.float32) / 255.0
    d = np.sqrt(3.0) * np.abs(g - cv2.GaussianBlur(g, (15, 15), 2.6, borderType=cv2.BORDER_REFLECT))
    np.testing.assert_allclose(dof.raw_weight_map(gray),
                               cv2.GaussianBlur(d, (15, 15), 2.6, borderType=cv2.BORDER_REFLECT),
                               atol=1e-5)
    with pytest.raises(ImageReadError):
        dof.dof_weight_map(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageReadError):
        dof.dof_weight_map(np.full((8, 8, 3), np.nan, np.float32))


def test_flat_image_stays_dark():
    flat = np.full((40, 40, 3), 0.3, np.float32)
    noisy = np.clip(flat + np.random.default_rng(0).normal(0, 1e-3, flat.shape), 0, 1)
    assert dof.dof_weight_map(noisy).max() < 0.5
    assert dof.dof_weight_map(flat).max() < 1e-3


def test_training_targets_and_recovery():
    img = _half_blurred(48, 64)
    w = dof.dof_training_target(img, "weight")
    wi = dof.dof_training_target(img, "weighted_image")
    assert w.shape == (48, 64, 1) and wi.shape == (48, 64, 3)
    assert w.min() >= 0 and w.max() <= 1 and wi.min() >= 0 and wi.max() <= 1
    # The label is smoothed once more than the fixed-normalised map.
    fixed = dof.dof_weight_map(img, normalization="fixed")
    assert np.abs(np.diff(w[..., 0], axis=1)).mean() < np.abs(np.diff(fixed, axis=1)).mean()
    np.testing.assert_allclose(wi, w * img, atol=1e-6)
    rec = dof.recover_weight_map(wi, img, "weighted_image")
    bright = (img ** 2).sum(-1) > 0.1
    np.testing.assert_allclose(rec[bright], w[..., 0][bright], atol=0.05 * 1.0)
    exact = dof.recover_weight_map(wi, img, "weighted_image", eps=1e-12)
    np.testing.assert_allclose(exact[bright], w[..., 0][bright], atol=1e-4)
    np.testing.assert_allclose(dof.recover_weight_map(w, img, "weight"), w[..., 0])
    # Black pixels carry no information about W: recovery shrinks to 0 instead of blowing up.
    black = np.zeros_like(img)
    assert dof.recover_weight_map(np.full_like(img, 1e-3), black, "weighted_image").max() == 0.0
    with pytest.raises(ValueError, match="target"):
        dof.dof_training_target(img, "sigma")
    with pytest.raises(ValueError, match="shape"):
        dof.recover_weight_map(w, img, "weighted_image")


# ----------------------------------------------------------------------------- DoFNet

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests import model_checks  # noqa: E402
from tf_defocus.models.dofnet import DoFNet, FocusFromPrediction  # noqa: E402

TINY = 0.125


def _batch(n, h, w, seed=0):
    return np.stack([_half_blurred(h, w, seed=seed + i) for i in range(n)])


@pytest.mark.parametrize("target,channels", [("weight", 1), ("weighted_image", 3)])
def test_dofnet_shapes_any_size(target, channels):
    net = DoFNet(width=TINY, target=target)
    for h, w in ((17, 23), (32, 48)):
        x = _batch(2, h, w)
        assert net(x).shape == (2, h, w, channels)
        focus = net.inference_model()(x)
        assert focus.shape == (2, h, w, 1)
        assert float(tf.reduce_min(focus)) >= 0.0 and float(tf.reduce_max(focus)) <= 1.0
    assert net.receptive_field() == 13
    assert DoFNet(kernel_sizes=(9, 5, 5)).receptive_field() == 17


def test_dofnet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="target"):
        DoFNet(target="sigma")
    with pytest.raises(ValueError, match="kernel_sizes"):
        DoFNet(kernel_sizes=(9, 4, 5))
    with pytest.raises(ValueError, match="filters"):
        DoFNet(filters=(64,))
    with pytest.raises(ValueError, match="width"):
        DoFNet(width=0)
    with pytest.raises(ValueError, match="padding"):
        DoFNet(padding="same")


def test_dofnet_zero_padding_variant(tmp_path):
    net = DoFNet(width=TINY, kernel_sizes=(9, 5, 5), padding="zero", target="weight")
    x = _batch(1, 20, 28)
    assert net(x).shape == (1, 20, 28, 1)
    clone = model_checks.assert_config_round_trip(net, x)
    assert clone.padding == "zero" and clone.kernel_sizes == (9, 5, 5)
    # Mirror padding differs from zero padding only near the border.
    sym = DoFNet(width=TINY, kernel_sizes=(9, 5, 5), padding="symmetric", target="weight")
    sym.set_weights(net.get_weights())
    a, b = np.asarray(net(x))[0, ..., 0], np.asarray(sym(x))[0, ..., 0]
    np.testing.assert_allclose(a[8:-8, 8:-8], b[8:-8, 8:-8], atol=1e-5)
    assert np.abs(a - b).max() > 1e-4


def test_dofnet_param_count():
    net = DoFNet(width=1.0, kernel_sizes=(9, 1, 5), filters=(64, 32), target="weighted_image")
    net.build((None, None, None, 3))
    expected = (9 * 9 * 3 * 64 + 64) + (1 * 1 * 64 * 32 + 32) + (5 * 5 * 32 * 3 + 3)
    assert model_checks.param_counts(net) == (expected, 0)


@pytest.mark.parametrize("target", ["weight", "weighted_image"])
def test_inference_model_recovers_in_graph(target, tmp_path):
    net = DoFNet(width=TINY, target=target)
    x = _batch(2, 24, 40)
    model_checks.randomize_weights(net, seed=2)
    model_checks.assert_config_round_trip(net, x)
    inf = net.inference_model()
    assert inf.name == "dofnet"
    raw = np.asarray(net(x))
    got = np.asarray(inf(x))[..., 0]
    for i in range(2):
        np.testing.assert_allclose(got[i], dof.recover_weight_map(raw[i], x[i], target), atol=1e-5)
    loaded = model_checks.assert_keras_round_trip(inf, x, str(tmp_path / "dofnet.keras"))
    assert [type(l).__name__ for l in loaded.layers].count("FocusFromPrediction") == 1


def test_focus_layer_config():
    layer = FocusFromPrediction("weight", eps=0.5)
    assert FocusFromPrediction.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="target"):
        FocusFromPrediction("sigma")


# ----------------------------------------------------------------------------- training task

from tf_defocus.training import dof_data, dof_task  # noqa: E402


def _folder(tmp_path, n=6, h=48, w=64):
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(n):
        img = np.round(_half_blurred(h, w, seed=i) * 255).astype(np.uint8)
        assert cv2.imwrite(str(d / f"img{i}.png"), img[..., ::-1])
    return d


def _dof_cfg(**values):
    from tf_defocus import config as cfglib
    from tf_defocus.training.config import DoFNetConfig
    return cfglib.from_flat(DoFNetConfig, values)


def _tiny_cfg(folder, target, **kw):
    return _dof_cfg(dof_target=target, dof_image_dir=str(folder), width=TINY, dof_val_images=2,
                    patch_size=24, dof_batch_size=8, dof_val_patch_size=24,
                    learning_rate=3e-3, **kw)


@pytest.mark.parametrize("target", ["weight", "weighted_image"])
def test_task_trains_and_loss_falls(tmp_path, target):
    folder = _folder(tmp_path)
    task = dof_task.build_task(_tiny_cfg(folder, target), verbose=False)
    trainer = task.trainer
    assert trainer.optimizers == [trainer.optimizer] and trainer.optimizer.built
    el = next(iter(task.train_dataset))
    c = 1 if target == "weight" else 3
    assert el["image"].shape == (8, 24, 24, 3) and el["label"].shape == (8, 24, 24, c)
    assert el["weight"].shape == (8, 24, 24, 1)
    if target == "weighted_image":
        np.testing.assert_allclose(el["label"], el["weight"] * el["image"], atol=1e-6)
    before = trainer.evaluate(task.val_dataset, verbose=0, return_dict=True)
    trainer.fit(task.train_dataset, steps_per_epoch=40, epochs=1, verbose=0, shuffle=False)
    after = trainer.evaluate(task.val_dataset, verbose=0, return_dict=True)
    assert after["loss"] < 0.5 * before["loss"], (before, after)
    assert after["focus_mae"] < before["focus_mae"]
    inf = task.inference_model()
    assert inf.name == "dofnet" and inf(el["image"]).shape == (8, 24, 24, 1)
    # The inference model shares the trainer's weights.
    np.testing.assert_allclose(np.asarray(inf(el["image"])),
                               np.asarray(trainer.focus([trainer.net(el["image"]), el["image"]])),
                               atol=1e-6)
    panels = task.image_panels(el)
    (img,) = panels.values()
    assert img.dtype == np.uint8 and img.shape == (3, 24, 72, 3)


def test_task_skips_bad_files_and_names_them(tmp_path, capsys):
    folder = _folder(tmp_path, n=3)
    (folder / "broken.png").write_bytes(b"not a png")
    tiny = np.zeros((10, 10, 3), np.uint8)
    assert cv2.imwrite(str(folder / "small.png"), tiny)
    pool = dof_data.build_pool(_tiny_cfg(folder, "weight"), verbose=False)
    assert len(pool) == 3 and pool.masks is None
    assert sorted(p.rsplit("/", 1)[-1] for p in pool.skipped) == ["broken.png", "small.png"]
    err = capsys.readouterr().err
    assert "broken.png" in err and "small.png" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of the 1 images"):
        dof_data.build_pool(_tiny_cfg(empty, "weight"), verbose=False)


def test_task_config_from_flags():
    from absl import flags

    from tf_defocus import train
    fv = train.define_flags(flags.FlagValues())
    fv(["train", "--task=dofnet", "--dof_target=weight", "--dof_mask_size=7",
        "--dof_kernel_sizes=9,5,5", "--dof_filters=32,16", "--dof_batch_size=4",
        "--patch_size=40", "--learning_rate=1e-4", "--width=0.5", "--seed=3"])
    cfg = train.config_from_flags(fv)
    assert (cfg.model.dof_target, cfg.data.dof_mask_size, cfg.model.dof_kernel_sizes,
            cfg.model.dof_filters, cfg.data.dof_image_dir) == ("weight", 7, (9, 5, 5), (32, 16), None)
    assert (cfg.data.dof_batch_size, cfg.data.patch_size, cfg.optimizer.learning_rate,
            cfg.model.width, cfg.data.seed) == (4, 40, 1e-4, 0.5, 3)
    with pytest.raises(ValueError, match="mask_size"):
        _dof_cfg(dof_mask_size=4)
    with pytest.raises(ValueError, match="dof_target"):
        _dof_cfg(dof_target="w")


def test_task_procedural_pool(tmp_path):
    cfg = _dof_cfg(dof_target="weighted_image", width=TINY, dof_pool_size=3, dof_source_size=48,
                   dof_val_images=1, patch_size=24, dof_batch_size=4, dof_val_patch_size=24,
                   cache_dir=str(tmp_path), pool_workers=1)
    pool = dof_data.build_pool(cfg, verbose=False)
    assert len(pool) == 3 and pool.images[0].shape == (48, 48, 3)
    assert pool.masks is not None and pool.masks[0].shape == (48, 48)
    # Cached: a second build reuses the rendered files and gives the same pool.
    (pool_dir,) = (tmp_path / "pools").iterdir()
    again = dof_data.build_pool(cfg, verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(pool.images, again.images))
    assert len(list((pool_dir / "image").iterdir())) == 3
    train, val = dof_data.make_datasets(pool, cfg)
    assert next(iter(train))["label"].shape == (4, 24, 24, 3)
    assert sum(int(b["image"].shape[0]) for b in val) == 4  # 4 quadrant crops of 1 image


# ----------------------------------------------------------------------------- export

@pytest.mark.parametrize("target", ["weight", "weighted_image"])
def test_export_parity_savedmodel_and_tflite(tmp_path, target):
    """The export contract's checks (tests/export_checks.py) on both DoFNet targets: TFLite
    uses builtin ops only and matches Keras within 1e-4; for the paper's target (recovery of W
    inside the graph) also: the SavedModel answers without tf_defocus installed, the fixed-size
    mobile variant matches, and int8 stays within a small mean error."""
    from tests import export_checks as ec
    from tf_defocus.export import convert_tflite_many, export_saved_model
    keras.utils.set_random_seed(5)
    net = DoFNet(width=TINY, target=target)
    model_checks.randomize_weights(net, seed=6)
    # Output near the middle of [0, 1] so that the clipping does not hide differences.
    net.conv3.bias.assign(np.full(net.conv3.bias.shape, 0.3, np.float32))
    model = net.inference_model()
    images = _batch(2, 48, 64, seed=11)
    ref = ec.expected_outputs("dof_weight", ec.keras_native(model, images))
    assert 0.05 < ref["focus"].mean() < 0.95
    (any_size,) = convert_tflite_many(model, [("none", tmp_path / "any.tflite")], input_size=None)
    ops = ec.assert_builtin_ops_only(any_size.path)
    assert "CONV_2D" in ops
    assert ec.max_abs_diff(ec.run_tflite(any_size.path, images), ref) <= 1e-4
    if target == "weight":
        return
    version_dir = export_saved_model(model, tmp_path / "serving", warmup_requests=False)
    blobs, decoded = zip(*(ec.encode_png(im) for im in images))
    out, report = ec.run_saved_model_isolated(version_dir, images, list(blobs))
    assert report["tf_defocus_importable"] is False
    assert set(out["serve"]) == {"focus"} and ec.max_abs_diff(out["serve"], ref) <= 1e-4
    ref_bytes = ec.expected_outputs("dof_weight", ec.keras_native(model, np.stack(decoded)))
    assert ec.max_abs_diff(out["bytes"], ref_bytes) <= 1e-4
    jobs = [(q, tmp_path / f"fixed_{q}.tflite") for q in ("none", "int8")]
    fixed = {r.info.quantization: r for r in convert_tflite_many(
        model, jobs, input_size=(48, 64), calibration_images=list(_batch(4, 48, 64, seed=20)))}
    assert ec.max_abs_diff(ec.run_tflite(fixed["none"].path, images), ref) <= 1e-4
    ec.assert_builtin_ops_only(fixed["int8"].path)
    assert ec.mae(ec.run_tflite(fixed["int8"].path, images)["focus"], ref["focus"]) < 0.03


# ----------------------------------------------------------------------------- integration

def test_train_resume_and_predict(tmp_path, capsys):
    from tf_defocus import inference, prediction, training
    photos = _folder(tmp_path, n=3, h=40, w=56)
    common = dict(model_dir=str(tmp_path / "run"), checkpoint_every=4,
                  log_every=2, image_every=4, val_every=4, progress=False, width=TINY,
                  patch_size=24, dof_batch_size=4, dof_pool_size=3, dof_source_size=40,
                  dof_val_images=1, dof_val_patch_size=24, dof_target="weighted_image",
                  cache_dir=str(tmp_path / "cache"), pool_workers=1)
    result = training.train(_dof_cfg(train_steps=4, **common))
    assert result.step == 4 and result.model_path.name == "dofnet.keras"
    result = training.train(_dof_cfg(train_steps=6, **common))
    assert result.start_step == 4 and result.step == 6
    assert "resuming from step 4" in capsys.readouterr().out
    est = inference.load_estimator(result.model_path)
    assert est.kind == "dof_weight" and est.info.size_multiple == 1
    focus = est.predict_focus(_half_blurred(37, 45))
    assert focus.shape == (37, 45) and 0 <= focus.min() and focus.max() <= 1
    with pytest.raises(ValueError, match="no blur unit"):
        est.predict(_half_blurred(37, 45))
    (photos / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    for kw in (dict(model=str(result.model_path)), dict(method="dof_weight")):
        out = tmp_path / f"out_{kw.get('method', 'model')}"
        code = prediction.run_config(prediction.PredictConfig(
            input=(str(photos),), output_dir=str(out), outputs=("focus", "color", "mask"), **kw))
        assert code == 1  # the corrupt file fails, the others are written
        names = sorted(p.name for p in out.glob("img0_*"))
        assert len(names) == 3 and "img0_focus.png" in names and "img0_mask.png" in names, names
        assert "corrupt.png" in capsys.readouterr().err
