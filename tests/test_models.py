"""DMENet networks B, D, S, C: shapes, dynamic sizes, exact parameter counts, serialisation."""

import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import model_checks
from tf_defocus.models import (BlurEstimator, CaffePreprocess, ContentLoss, DomainDiscriminator,
                               NearestUpsample, SharpnessCalibrator, SymmetricPad,
                               TwoScaleBlurEstimator, channels, copy_weights_by_name)
from tf_defocus import propagation
from tf_defocus.units import SIGMA_MAX_PX
from tf_defocus.models import blur_estimator as be
from tf_defocus.models import vgg

TINY = 0.0625


def _images(n, h, w, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, h, w, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_b():
    model = BlurEstimator(width=TINY)
    model_checks.randomize_weights(model, seed=1)
    return model


# ---------------------------------------------------------------- B: outputs and shapes

@pytest.mark.parametrize("h,w", [(32, 32), (48, 64), (64, 96)])
def test_blur_estimator_outputs(tiny_b, h, w):
    out = tiny_b(_images(2, h, w), training=False)
    assert set(out) == set(be.OUTPUT_NAMES)
    assert out["defocus"].shape == (2, h, w, 1)
    for name, k in be.AUX_FACTORS.items():
        assert out[name].shape == (2, h // k, w // k, 1), name
    assert out["feature"].shape == (2, h, w, channels(64, TINY))
    for name, value in out.items():
        assert value.dtype == tf.float32, name
        if name != "feature":
            v = value.numpy()
            assert np.all((v >= 0) & (v <= 1)), name
    # The map depends on the image: two different images give different maps.
    d = out["defocus"].numpy()
    assert np.abs(d[0] - d[1]).max() > 1e-6


def test_blur_estimator_dynamic_size(tiny_b):
    """One traced graph with unknown H, W serves two sizes and matches eager calls."""
    assert tiny_b.input.shape[1:3] == (None, None)
    fn = tf.function(lambda x: tiny_b(x, training=False)["defocus"],
                     input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    concrete = fn.get_concrete_function()
    for h, w in [(32, 48), (80, 16)]:
        x = _images(1, h, w, seed=h)
        got = concrete(tf.constant(x)).numpy()
        assert got.shape == (1, h, w, 1)
        np.testing.assert_allclose(got, tiny_b(x, training=False)["defocus"].numpy(), atol=1e-5)


def test_inference_model_shares_weights(tiny_b, tmp_path):
    inf = tiny_b.inference_model()
    assert inf.name == "blur_estimator"
    x = _images(1, 32, 48)
    np.testing.assert_array_equal(inf(x).numpy(), tiny_b(x, training=False)["defocus"].numpy())
    # Shares variables: the inference model has only B's main path (no aux heads).
    own = {id(v) for v in tiny_b.weights}
    assert all(id(v) in own for v in inf.weights)
    assert not any(layer.name.startswith(("u4_aux", "u3_aux", "u2_aux", "u1_aux", "u0_aux"))
                   for layer in inf.layers)


def test_layer_hyperparameters():
    model = BlurEstimator(width=TINY)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for bn in bns:
        assert bn.scale is False and bn.center is True
        assert bn.momentum == pytest.approx(0.9) and bn.epsilon == pytest.approx(1e-5)
    for l in model.layers:
        if isinstance(l, keras.layers.LeakyReLU):
            assert l.negative_slope == pytest.approx(0.2)
        if isinstance(l, keras.layers.Conv2D):
            assert l.padding == "valid", l.name
            if l.kernel_size == (3, 3):
                assert isinstance(model.get_layer(l.name + "_pad"), SymmetricPad)
    # B has 16 encoder + 3*3+1 U-Net + 10 aux + 21 refinement + 3 head convs.
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 16 + 10 + 10 + 21 + 3
    # BN after every decoder conv except the final output conv: 43 (TSV: 56 = 43 B + 9 S + 4 D).
    assert len(bns) == len(convs) - 16 - 1


# ---------------------------------------------------------------- parameter counts (width 1.0)

def _b_part(name):
    if name.startswith("block"):
        return "encoder"
    m = re.match(r"^(u[0-4]_aux)_", name)
    if m:
        return m.group(1)
    if re.match(r"^u0_(c_res|b_res|c\d_|b\d_)", name):
        return "refinement"
    if name.startswith("uf_"):
        return "head"
    if re.match(r"^u[0-3]_[cb]", name):
        return "unet"
    raise AssertionError(f"unexpected weighted layer {name}")


def test_parameter_counts_full_width():
    """Exact counts from the reference table (TSV of DMENet_BDCS.npz)."""
    b = BlurEstimator(width=1.0)
    assert model_checks.param_counts(b) == (26_939_819, 6_730)
    assert len(b.weights) == 249   # inference keys of the official checkpoint
    parts = {}
    for layer in b.layers:
        if layer.trainable_weights:
            part = _b_part(layer.name)
            parts[part] = parts.get(part, 0) + model_checks.param_counts(layer)[0]
    assert parts == {"encoder": 20_024_384, "unet": 4_721_408, "u4_aux": 1_182_466,
                     "u3_aux": 296_322, "u2_aux": 74_434, "u1_aux": 18_786, "u0_aux": 18_786,
                     "refinement": 547_456, "head": 55_777}
    # The inference model holds everything but the aux heads.
    inf = b.inference_model()
    aux = 1_182_466 + 296_322 + 74_434 + 2 * 18_786
    aux_stats = 2 * (256 + 1 + 128 + 1 + 64 + 1 + 32 + 1 + 32 + 1)
    assert model_checks.param_counts(inf) == (26_939_819 - aux, 6_730 - aux_stats)

    d = DomainDiscriminator(width=1.0)
    assert model_checks.param_counts(d) == (2_827_200, 1_920)
    assert len(d.weights) == 17
    s = SharpnessCalibrator(width=1.0)
    assert model_checks.param_counts(s) == (14_065, 672)
    assert len(s.weights) == 47


# ---------------------------------------------------------------- D, S, C

def test_discriminator_patch_logits():
    d = DomainDiscriminator(width=TINY)
    feat = np.random.default_rng(0).normal(size=(2, 64, 96, channels(64, TINY))).astype(np.float32)
    out = d(feat, training=False)
    assert out.shape == (2, 2, 3, 1) and out.dtype == tf.float32
    for l in d.layers:
        if isinstance(l, keras.layers.Conv2D):
            assert l.use_bias is False and l.strides == (2, 2) and l.kernel_size == (4, 4)
    assert d.get_layer("h4_c1").filters == 1


def test_calibrator_is_pointwise():
    """1x1 convs only: changing one pixel changes only that pixel's logit."""
    s = SharpnessCalibrator(width=0.25)
    m = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 1)).astype(np.float32)
    m2 = m.copy()
    m2[0, 5, 7, 0] += 0.5
    diff = np.abs(s(m2, training=False).numpy() - s(m, training=False).numpy())[0, ..., 0]
    assert diff[5, 7] > 0
    diff[5, 7] = 0
    assert diff.max() == 0
    for l in s.layers:
        if isinstance(l, keras.layers.Conv2D):
            assert l.kernel_size == (1, 1) and l.use_bias


def test_content_loss_frozen_and_differentiable():
    c = ContentLoss(width=TINY)
    assert c.trainable_weights == [] and c.non_trainable_weights
    assert not c.trainable
    rng = np.random.default_rng(0)
    a = tf.constant(rng.uniform(0, 1, (2, 32, 32, 1)).astype(np.float32))
    b = tf.constant(rng.uniform(0, 1, (2, 32, 32, 1)).astype(np.float32))
    assert float(c.distance(a, a)) == 0.0
    dab = float(c.distance(a, b))
    assert dab > 0
    assert float(c.distance(b, a)) == pytest.approx(dab, rel=1e-5)
    with tf.GradientTape() as tape:
        tape.watch(a)
        loss = c.distance(a, b)
    g = tape.gradient(loss, a)
    assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0
    # Features of conv4_4 at 1/8 resolution; same VGG trunk as the encoder (symmetric pad).
    assert c(a).shape == (2, 4, 4, channels(512, TINY))
    assert isinstance(c.get_layer("block1_conv1_pad"), SymmetricPad)


# ---------------------------------------------------------------- serialisation

@pytest.mark.parametrize("factory,shape", [
    (lambda: BlurEstimator(width=TINY), (1, 32, 48, 3)),
    (lambda: BlurEstimator(width=TINY, norm="group"), (1, 32, 48, 3)),
    (lambda: TwoScaleBlurEstimator(width=TINY), (1, 48, 80, 3)),
    (lambda: BlurEstimator(width=TINY, cues=True), (1, 32, 48, 3)),
    (lambda: TwoScaleBlurEstimator(width=TINY, cues=True), (1, 48, 80, 3)),
    (lambda: TwoScaleBlurEstimator(width=TINY, step_head=True), (1, 48, 80, 3)),
    (lambda: DomainDiscriminator(width=TINY), (1, 32, 32, channels(64, TINY))),
    (lambda: SharpnessCalibrator(width=TINY), (1, 8, 8, 1)),
    (lambda: ContentLoss(width=TINY), (1, 16, 16, 1)),
])
def test_config_and_keras_round_trip(factory, shape, tmp_path):
    model = factory()
    model_checks.randomize_weights(model, seed=5)
    x = np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32)
    model_checks.assert_config_round_trip(model, x)
    model_checks.assert_keras_round_trip(model, x, tmp_path / f"{model.name}.keras",
                                         expect_class=type(model))


def test_fill_smooth_inference_model_round_trip(tiny_b, tmp_path):
    """inference_model(fill_smooth=True) ends with FillSmooth, saves and reloads; it changes
    the map only where blur is invisible."""
    inf = tiny_b.inference_model(fill_smooth=True)
    assert inf.layers[-1].name == "fill_smooth" and inf.name == "blur_estimator"
    x = _images(1, 32, 48, seed=2)
    x[:, :, :24] = 0.5                                    # left half flat
    model_checks.assert_keras_round_trip(inf, x, tmp_path / "blur_estimator.keras")
    plain = tiny_b.inference_model()(x)
    np.testing.assert_allclose(inf(x).numpy(), propagation.fill_smooth(plain, x).numpy(),
                               atol=1e-6)


@pytest.mark.parametrize("method", ["guided", "guided_edges"])
def test_guided_fill_inference_model_round_trip(tiny_b, tmp_path, method):
    """fill_method="guided" / "guided_edges" is kept by the saved model and computes
    ``propagation.fill_smooth`` on the map in px (the model's sigma / 7 times 7)."""
    inf = tiny_b.inference_model(fill_smooth=True, fill_method=method)
    x = _images(1, 32, 48, seed=2)
    x[:, :, :24] = 0.5
    model_checks.assert_keras_round_trip(inf, x, tmp_path / "blur_estimator.keras")
    assert keras.saving.load_model(tmp_path / "blur_estimator.keras").layers[-1].method == method
    plain = tiny_b.inference_model()(x) * SIGMA_MAX_PX
    want = propagation.fill_smooth(plain, x, method) / SIGMA_MAX_PX
    np.testing.assert_allclose(inf(x).numpy(), want.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="fill method"):
        tiny_b.inference_model(fill_smooth=True, fill_method="median")


def test_inference_model_loads_in_fresh_process(tiny_b, tmp_path):
    """``blur_estimator.keras`` loads with keras.saving.load_model after ``import tf_defocus``."""
    path = tmp_path / "blur_estimator.keras"
    x = _images(1, 32, 32, seed=9)
    np.save(tmp_path / "x.npy", x)
    inf = tiny_b.inference_model()
    inf.save(path)
    np.save(tmp_path / "y.npy", inf(x).numpy())
    code = (
        "import numpy as np, keras, tf_defocus\n"
        f"m = keras.saving.load_model({str(path)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r}); y = np.load({str(tmp_path / 'y.npy')!r})\n"
        "assert m.name == 'blur_estimator', m.name\n"
        "np.testing.assert_array_equal(m(x).numpy(), y)\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


def test_mixed_precision_outputs_float32():
    from tf_defocus.training.dmenet_task import float32_inference_model
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        b = BlurEstimator(width=TINY)
        out = b(_images(1, 32, 32), training=False)
        assert all(v.dtype == tf.float32 for v in out.values())
        assert b.get_layer("u3_c1").compute_dtype == "float16"
        assert DomainDiscriminator(width=TINY)(out["feature"]).dtype == tf.float32
        assert SharpnessCalibrator(width=TINY)(out["defocus"]).dtype == tf.float32
        shared = b.inference_model()
        assert shared.get_layer("u3_c1").compute_dtype == "float16"
        f32 = float32_inference_model(b)
        assert f32.name == "blur_estimator"
        assert {l.dtype_policy.name for l in f32.layers} == {"float32"}
        for layer in f32.layers:
            for got, want in zip(layer.weights, b.get_layer(layer.name).weights):
                np.testing.assert_array_equal(got.numpy(), want.numpy())
    finally:
        keras.mixed_precision.set_global_policy(policy)
    reference = BlurEstimator(width=TINY)
    reference.set_weights(b.get_weights())
    x = _images(1, 32, 32)
    np.testing.assert_array_equal(f32(x).numpy(), reference(x, training=False)["defocus"].numpy())


def test_group_norm_is_batch_independent_and_keeps_the_paper_names():
    """norm="group": GroupNorm after every conv (encoder included), none on 1-channel logits;
    a crop's output does not depend on the other crops of its batch (unlike BatchNorm in
    training mode)."""
    b = BlurEstimator(width=TINY, norm="group")
    norms = [l for l in b.layers if isinstance(l, keras.layers.GroupNormalization)]
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in b.layers)
    assert b.get_layer("block1_conv1_gn") in norms and b.get_layer("u3_b1") in norms
    assert "u4_aux_b2" not in {l.name for l in b.layers}     # 1-channel logit: bias only
    x = _images(3, 32, 32, seed=4)

    def batch_effect(model):
        together = model(x, training=True)["defocus"].numpy()[:1]
        return np.abs(together - model(x[:1], training=True)["defocus"].numpy()).max()
    assert batch_effect(b) < 2e-4                          # float round-off only
    assert batch_effect(BlurEstimator(width=TINY)) > 1e-3   # BatchNorm: batch statistics
    with pytest.raises(ValueError, match="norm must be one of"):
        BlurEstimator(width=TINY, norm="instance")


def _assert_converts_to_tflite_builtins(inf, tmp_path):
    from ai_edge_litert.interpreter import Interpreter
    inf.export(str(tmp_path / "sm"), verbose=False,
               input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"), signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    inp = interpreter.get_input_details()[0]
    for h, w in [(32, 48), (16, 16)]:
        interpreter.resize_tensor_input(inp["index"], [1, h, w, 3])
        interpreter.allocate_tensors()
        x = _images(1, h, w, seed=h + w)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, inf(x).numpy(), atol=1e-3)


@pytest.mark.parametrize("fill_method", ["pull_push", "guided"])
def test_inference_model_converts_to_tflite_builtins(tiny_b, tmp_path, fill_method):
    """Dynamic-size export with FillSmooth lowers to TFLite builtins only (needs static channels
    after concat; the pyramid resizes to dynamic sizes, the guided fill scans by shifted
    slices). Without FillSmooth: ``test_export.test_dynamic_size_tflite``; with guided_edges
    (the default model's): ``test_default_model.test_export_uses_the_default_model``."""
    _assert_converts_to_tflite_builtins(
        tiny_b.inference_model(fill_smooth=True, fill_method=fill_method), tmp_path)


def test_blur_cue_model_converts_to_tflite_builtins(tmp_path):
    """The cue channels (Gaussian blurs larger than a 16 px input, logs) export too."""
    b = BlurEstimator(width=TINY, cues=True)
    model_checks.randomize_weights(b, seed=3)
    _assert_converts_to_tflite_builtins(b.inference_model(), tmp_path)


# ---------------------------------------------------------------- layers

def test_caffe_preprocess_matches_keras_vgg19():
    x = _images(2, 8, 8)
    got = CaffePreprocess()(x).numpy()
    want = keras.applications.vgg19.preprocess_input(x * 255.0)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_symmetric_pad_is_edge_replication():
    x = np.random.default_rng(0).normal(size=(1, 5, 6, 2)).astype(np.float32)
    got = SymmetricPad(1)(x).numpy()
    np.testing.assert_array_equal(got, np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge"))
    np.testing.assert_array_equal(SymmetricPad(2)(x).numpy(),
                                  np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="symmetric"))


def test_nearest_upsample_repeats_pixels():
    x = np.random.default_rng(0).uniform(size=(1, 6, 10, 1)).astype(np.float32)
    up = NearestUpsample(3)(x).numpy()
    np.testing.assert_array_equal(up, np.repeat(np.repeat(x, 3, 1), 3, 2))


# ---------------------------------------------------------------- ImageNet VGG19 weights

def _legacy_vgg19_file(path, seed=0):
    """A file laid out like Keras' vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    ref = keras.applications.VGG19(weights=None, include_top=False)
    model_checks.randomize_weights(ref, seed=seed)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, ref)
    return ref


def test_vgg_weights_load_by_name(tmp_path):
    path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ref = _legacy_vgg19_file(path)
    b = BlurEstimator(width=1.0, vgg_weights=path)
    for name in vgg.VGG19_CONV_NAMES:
        for got, want in zip(b.get_layer(name).get_weights(), ref.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    c = ContentLoss(vgg_weights=path)
    np.testing.assert_array_equal(c.get_layer("block4_conv4").get_weights()[0],
                                  ref.get_layer("block4_conv4").get_weights()[0])
    # vgg_weights is not part of the config (the file is not needed to reload a model).
    assert "vgg_weights" not in b.get_config()


def test_vgg_weights_errors(tmp_path):
    with pytest.raises(ValueError, match="width=1.0"):
        BlurEstimator(width=0.5, vgg_weights=tmp_path / "x.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        BlurEstimator(width=1.0, vgg_weights=tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not a weights file")
    with pytest.raises(ValueError, match="bad.h5"):
        ContentLoss(vgg_weights=bad)


def test_nearest_upsample_gradient_compiles_with_xla():
    """--jit_compile training needs every op of B's backward pass to have an XLA kernel
    (tf.image.resize's nearest gradient has none on CPU)."""
    layer = NearestUpsample(2)
    x = tf.random.normal([1, 3, 5, 4])

    @tf.function(jit_compile=True)
    def grad(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = layer(v)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, v)

    # d/dx sum((up x)^2) = 2 * 4 * x for a x2 pixel duplication.
    np.testing.assert_allclose(grad(x).numpy(), 8.0 * x.numpy(), rtol=1e-6)


# ---------------------------------------------------------------- two-scale B

def test_two_scale_b_starts_as_its_one_scale_b_and_serves_any_size(tiny_b, tmp_path):
    """A two-scale B warm-started from a one-scale B computes exactly that B (its fusion's last
    conv is zero) at sizes whose half is not a multiple of 16; once the fusion is non-zero
    the half-scale pass changes the map. Its inference model skips the auxiliary heads,
    traces with unknown H, W and round-trips through a .keras file."""
    two = TwoScaleBlurEstimator(width=TINY)
    weighted = [l for l in tiny_b.layers if l.weights]
    assert copy_weights_by_name(tiny_b, two) == len(weighted)
    sizes = [(32, 48), (48, 80), (80, 16)]             # halves 16x24, 24x40, 40x8
    for h, w in sizes:
        x = _images(1, h, w, seed=h)
        np.testing.assert_allclose(two(x, training=False)["defocus"],
                                   tiny_b(x, training=False)["defocus"], atol=1e-6)
    model_checks.randomize_weights(two.get_layer("fuse_out"), seed=3)
    inf = two.inference_model(fill_smooth=True)
    assert inf.name == "blur_estimator"
    assert "u0_aux_c1" not in {l.name for l in inf.get_layer("one_scale_head").layers}
    fn = tf.function(lambda x: inf(x), input_signature=[tf.TensorSpec((None, None, None, 3))])
    concrete = fn.get_concrete_function()
    for h, w in sizes:
        x = _images(1, h, w, seed=h)
        eager = two.inference_model()(x).numpy()
        assert np.abs(eager - tiny_b(x, training=False)["defocus"].numpy()).max() > 1e-4
        np.testing.assert_allclose(concrete(tf.constant(x)), inf(x), atol=1e-6)
    model_checks.assert_keras_round_trip(inf, _images(1, 48, 80), tmp_path / "two.keras")


def test_suggested_tile_grows_as_the_network_narrows():
    """A DMENet model's ModelInfo tile [px] keeps about a full-width 768 px tile's peak memory:
    the area grows as width^(-3/4) (1280 px at width 1/4, the default model), whatever wraps the
    network; a model without DMENet's first conv suggests none."""
    from tf_defocus.models.dofnet import DoFNet
    from tf_defocus.models.layers import network_width, suggested_tile_size
    from tf_defocus.tiling import DEFAULT_TILE_SIZE, TILE_MULTIPLE
    assert suggested_tile_size(BlurEstimator(width=1.0).inference_model()) == DEFAULT_TILE_SIZE
    quarter = TwoScaleBlurEstimator(width=0.25)
    assert network_width(quarter) == 0.25
    assert suggested_tile_size(quarter.inference_model()) == 1280
    tiny = suggested_tile_size(BlurEstimator(width=TINY))
    assert tiny % TILE_MULTIPLE == 0 and tiny == 2160      # 768 * 16^(3/8) = 2172
    assert suggested_tile_size(DoFNet()) is None


def test_three_scale_b_starts_as_its_two_scale_b_and_serves_any_size(tmp_path):
    """A three-scale B warm-started from a two-scale B computes exactly that two-scale B (its
    quarter-scale correction's last conv is zero) at sizes whose quarter is not a multiple of
    16; once that conv is non-zero the quarter pass changes the map. Its inference model
    traces with unknown H, W and round-trips; its config and float32 copy keep scales."""
    from tf_defocus.training.dmenet_task import float32_inference_model
    two = TwoScaleBlurEstimator(width=TINY)
    model_checks.randomize_weights(two, seed=7)
    three = TwoScaleBlurEstimator(width=TINY, scales=3)
    assert copy_weights_by_name(two, three) == len([l for l in _leaves(two) if l.weights])
    sizes = [(16, 16), (32, 48), (48, 80), (80, 32)]   # quarters 4x4, 8x12, 12x20, 20x8
    for h, w in sizes:
        x = _images(1, h, w, seed=h)
        np.testing.assert_allclose(three(x, training=False)["defocus"],
                                   two(x, training=False)["defocus"], atol=1e-6)
    model_checks.randomize_weights(three.get_layer("q_fuse_out"), seed=3)
    inf = three.inference_model()
    f32 = float32_inference_model(three)                # what training saves at the end
    fn = tf.function(lambda x: inf(x), input_signature=[tf.TensorSpec((None, None, None, 3))])
    concrete = fn.get_concrete_function()
    for h, w in sizes:
        x = _images(1, h, w, seed=h)
        assert np.abs(inf(x).numpy() - two(x, training=False)["defocus"].numpy()).max() > 1e-4
        np.testing.assert_allclose(concrete(tf.constant(x)), inf(x), atol=1e-6)
        np.testing.assert_allclose(f32(x), inf(x), atol=1e-6)
    assert TwoScaleBlurEstimator.from_config(three.get_config()).scales == 3
    model_checks.assert_keras_round_trip(inf, _images(1, 48, 80), tmp_path / "three.keras")
    with pytest.raises(ValueError, match="scales must be 2 or 3"):
        TwoScaleBlurEstimator(width=TINY, scales=4)


def _leaves(model):
    """Layers of ``model`` and of the models nested in it (leaves only)."""
    return [leaf for l in model.layers
            for leaf in (_leaves(l) if isinstance(l, keras.Model) else [l])]


def test_pad_to_multiple_mirrors_like_numpy_at_any_size():
    """Symmetric padding to multiples of 16 at the bottom and right equals NumPy's, also for
    inputs smaller than their padding (repeated mirroring), traced with unknown H, W; CropLike
    takes it off again."""
    from tf_defocus.models.layers import CropLike, PadToMultiple
    pad = PadToMultiple(16)
    fn = tf.function(pad, input_signature=[tf.TensorSpec((None, None, None, 2))])
    for h, w in ((1, 1), (3, 5), (4, 4), (8, 12), (16, 17), (20, 33)):
        x = np.random.default_rng(h * w).random((1, h, w, 2)).astype(np.float32)
        want = np.pad(x, ((0, 0), (0, -h % 16), (0, -w % 16), (0, 0)), mode="symmetric")
        np.testing.assert_array_equal(fn(tf.constant(x)).numpy(), want)
        np.testing.assert_array_equal(CropLike()([want, x]).numpy(), x)


# ---------------------------------------------------------------- blur cues

def _blurred_step(sigma, contrast, h=48, w=96):
    """(1,h,w,3) vertical step edge of ``contrast`` on grey 0.3, Gaussian blur ``sigma`` px."""
    import cv2
    x = np.full((h, w, 3), 0.3, np.float32)
    x[:, w // 2:] += contrast
    return cv2.GaussianBlur(x, (0, 0), sigma)[None]


def test_blur_cues_fall_with_blur_and_hold_across_contrast():
    """At an edge each ratio channel falls as the blur grows; at clear contrast they do not
    depend on it (Zhuo & Sim's ratio), and a flat image gives ratios of 0."""
    from tf_defocus.models.blur_cues import NUM_CUES, blur_cues
    at_edge = lambda x: blur_cues(x).numpy()[0, 24, 47:49].mean(0)
    for contrast in (0.05, 0.3):
        cues = np.array([at_edge(_blurred_step(s, contrast)) for s in (0.7, 1.5, 3.0, 6.0)])
        assert np.all(np.diff(cues[:, :NUM_CUES - 1], axis=0) < 0), cues
    a, b = at_edge(_blurred_step(2.0, 0.3)), at_edge(_blurred_step(2.0, 0.6))
    np.testing.assert_allclose(a[:NUM_CUES - 1], b[:NUM_CUES - 1], rtol=0.15)
    assert b[-1] > a[-1]                                     # the strength channel sees contrast
    flat = blur_cues(np.full((1, 20, 30, 3), 0.4, np.float32)).numpy()
    np.testing.assert_allclose(flat[..., :NUM_CUES - 1], 0.0, atol=1e-3)   # x50 round-off


def test_blur_cues_any_size_and_dtype():
    from tf_defocus.models.blur_cues import NUM_CUES, BlurCues
    for h, w in [(1, 1), (5, 7), (16, 40)]:
        out = BlurCues()(_images(2, h, w)).numpy()
        assert out.shape == (2, h, w, NUM_CUES) and np.isfinite(out).all()
    assert BlurCues(dtype="mixed_float16")(_images(1, 8, 8)).dtype == tf.float16
    with pytest.raises(ValueError, match="no ImageNet VGG19 weights"):
        BlurEstimator(width=1.0, cues=True, vgg_weights="missing.h5")
