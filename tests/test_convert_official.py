"""Official-checkpoint import: exact keys/shapes round trip, refusals, TF1 layer-semantics parity.

The synthetic checkpoint has exactly the 321 keys and shapes of DMENet_BDCS.npz (read from
``../shared/reference/dmenet_bdcs_npz_keys.tsv`` when present, else generated from the
documented structure; a test checks both agree), random He-scaled values, positive moving
variances. A TF1-style re-implementation of the authors'
graph in raw TF ops (``tf.pad SYMMETRIC``, ``tf.nn.conv2d VALID``,
``tf.compat.v1.image.resize_nearest_neighbor(align_corners=True)``, ``tf.nn.batch_normalization``)
reads the npz arrays by name and must reproduce the converted Keras model.
"""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import model_checks
from tf_defocus import artifacts
from tf_defocus import convert_official as co
from tf_defocus.models import NearestUpsample, SymmetricPad, conv_block

TSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "dmenet_bdcs_npz_keys.tsv"
ENC = "main_net/defocus_net/encoder/"
DEC = "main_net/defocus_net/decoder/"


def _key_shapes():
    """(key, shape) of every array of DMENet_BDCS.npz, in file order."""
    if TSV.is_file():
        out = []
        for line in TSV.read_text().splitlines():
            key, shape, _ = line.split("\t")
            out.append((key, tuple(int(v) for v in shape.split(","))))
        return out
    return _KEY_SHAPES_FALLBACK()


def _KEY_SHAPES_FALLBACK():
    """The same 321 (key, shape) pairs, generated from the documented structure (no TSV)."""
    out = []
    def conv(scope, k, cin, cout, bias=True):
        out.append((f"{scope}/kernel:0", (k, k, cin, cout)))
        if bias:
            out.append((f"{scope}/bias:0", (cout,)))
    def bn(scope, c):
        out.extend((f"{scope}/{leaf}:0", (c,)) for leaf in ("beta", "moving_mean", "moving_variance"))
    cin = 3
    for b, n, c in ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512)):
        for i in range(1, n + 1):
            conv(f"{ENC}conv{b}_{i}", 3, cin, c)
            cin = c
    conv(f"{ENC}conv6_1", 3, 512, 64)
    conv(f"{ENC}c_logits_1", 15, 64, 512)
    out += [(f"{ENC}c_logits_1/W:0", (512, 512)), (f"{ENC}c_logits_1/b:0", (512,)),
            (f"{ENC}c_logits_2/W:0", (512, 1)), (f"{ENC}c_logits_2/b:0", (1,))]
    def aux(scope, cin, c):
        conv(f"{DEC}{scope}/c1", 3, cin, c); bn(f"{DEC}{scope}/b1", c)
        conv(f"{DEC}{scope}/c2", 3, c, 1); bn(f"{DEC}{scope}/b2", 1)
    aux("u4_aux", 512, 256)
    for scope, cin, c, a in (("u3", 1024, 256, 128), ("u2", 512, 128, 64), ("u1", 256, 64, 32)):
        for i in range(1, 4):
            conv(f"{DEC}{scope}/c{i}", 3, cin if i == 1 else c, c); bn(f"{DEC}{scope}/b{i}", c)
        aux(f"{scope}_aux", c, a)
    conv(f"{DEC}u0/c_init", 3, 128, 64); bn(f"{DEC}u0/b_init", 64)
    aux("u0_aux", 64, 32)
    for i in range(7):
        conv(f"{DEC}u0/c_res{i}", 1, 64, 64); bn(f"{DEC}u0/b_res{i}", 64)
        for j in (1, 2):
            conv(f"{DEC}u0/c{i}_{j}", 3, 64, 64); bn(f"{DEC}u0/b{i}_{j}", 64)
    conv(f"{DEC}uf/c1", 3, 64, 64); bn(f"{DEC}uf/b1", 64)
    conv(f"{DEC}uf/c2", 3, 64, 32); bn(f"{DEC}uf/b2", 32)
    conv(f"{DEC}uf/c3", 3, 32, 1)
    cin = 1
    for stage, c in ((1, 64), (2, 32), (3, 16)):
        for i in range(1, 4):
            conv(f"main_net/binary_net/l{stage}/c{i}", 1, cin, c); bn(f"main_net/binary_net/l{stage}/b{i}", c)
            cin = c
    conv("main_net/binary_net/l4/c1", 1, 16, 1)
    cin = 64
    for i, c in enumerate((64, 128, 256, 512)):
        conv(f"discriminator/feature/h{i}/c1", 4, cin, c, bias=False)
        bn(f"discriminator/feature/h{i}/b1", c)
        cin = c
    conv("discriminator/feature/h4/c1", 4, 512, 1, bias=False)
    return out


def _synthetic_arrays(seed=0):
    """Random arrays for every key: He-scaled kernels so activations stay informative."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, shape in _key_shapes():
        if key.endswith("/kernel:0") or key.endswith("/W:0"):
            fan_in = int(np.prod(shape[:-1]))
            a = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        elif key.endswith("moving_variance:0"):
            a = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif key.endswith("moving_mean:0"):
            a = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)
        else:   # bias, beta, b
            a = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)
        arrays[key] = a
    # Keep the maps informative instead of saturated: the caffe-preprocessed input is in
    # +-128 (real VGG weights are scaled for that) and 7 residual adds double the variance.
    arrays[ENC + "conv1_1/kernel:0"] /= np.float32(128.0)
    for key in arrays:
        if key.startswith(DEC + "u0/c") and key.endswith("/kernel:0") and "c_init" not in key:
            arrays[key] *= np.float32(0.7)
    return arrays


@pytest.fixture(scope="module")
def arrays():
    return _synthetic_arrays()


@pytest.fixture(scope="module")
def npz_path(arrays, tmp_path_factory):
    path = tmp_path_factory.mktemp("official") / "DMENet_BDCS.npz"
    np.savez(path, **arrays)   # uncompressed, like tl.files.save_npz_dict
    return path


@pytest.fixture(scope="module")
def converted(npz_path):
    return co.convert_arrays(co.read_npz(npz_path), source=str(npz_path))


def test_key_list_matches_reference_table():
    ks = _key_shapes()
    assert len(ks) == 321 and len({k for k, _ in ks}) == 321
    assert sum(int(np.prod(s)) for _, s in ks) == 37_721_863
    # The generated fallback list is the same as the TSV (guards the fallback itself).
    assert sorted(_KEY_SHAPES_FALLBACK()) == sorted(ks)


# ---------------------------------------------------------------- TF1-style reference of B

def _ref_blur_estimator(a, x, concat_order="up_first"):
    """The authors' VGG19_down + UNet_up (inference) in raw TF ops, weights read by key."""
    def pad(t):
        return tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")

    def conv(t, scope, padded=True):
        k = a[f"{scope}/kernel:0"]
        if padded and k.shape[0] == 3:
            t = pad(t)
        t = tf.nn.conv2d(t, k, strides=1, padding="VALID")
        return tf.nn.bias_add(t, a[f"{scope}/bias:0"])

    def bn(t, scope):
        return tf.nn.batch_normalization(t, a[f"{scope}/moving_mean:0"], a[f"{scope}/moving_variance:0"],
                                         a[f"{scope}/beta:0"], None, 1e-5)

    lrelu = lambda t: tf.nn.leaky_relu(t, 0.2)

    def up(t):
        s = tf.shape(t)
        return tf.compat.v1.image.resize_nearest_neighbor(t, [s[1] * 2, s[2] * 2], align_corners=True)

    def cat(u, skip):
        return tf.concat([u, skip] if concat_order == "up_first" else [skip, u], axis=3)

    rgb = x * 255.0
    r, g, b = tf.split(rgb, 3, 3)
    n = tf.concat([b - 103.939, g - 116.779, r - 123.68], axis=3)
    d = []
    for blk, num in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)):
        if blk > 1:
            n = tf.nn.max_pool2d(n, 2, 2, "SAME")
        for i in range(1, num + 1):
            n = tf.nn.relu(conv(n, f"{ENC}conv{blk}_{i}"))
        d.append(n)

    def aux(t, scope):
        t = lrelu(bn(conv(t, f"{DEC}{scope}/c1"), f"{DEC}{scope}/b1"))
        return tf.sigmoid(bn(conv(t, f"{DEC}{scope}/c2"), f"{DEC}{scope}/b2"))

    out = {"aux_16": aux(d[4], "u4_aux")}
    n = d[4]
    for scope, skip, name in (("u3", d[3], "aux_8"), ("u2", d[2], "aux_4"), ("u1", d[1], "aux_2")):
        n = cat(up(n), skip)
        for i in (1, 2, 3):
            n = lrelu(bn(conv(n, f"{DEC}{scope}/c{i}"), f"{DEC}{scope}/b{i}"))
        out[name] = aux(n, f"{scope}_aux")
    n = cat(up(n), d[0])
    n = lrelu(bn(conv(n, f"{DEC}u0/c_init"), f"{DEC}u0/b_init"))
    out["feature"] = n
    out["aux_1"] = aux(n, "u0_aux")
    for i in range(7):
        res = lrelu(bn(conv(n, f"{DEC}u0/c_res{i}", padded=False), f"{DEC}u0/b_res{i}"))
        n = lrelu(bn(conv(n, f"{DEC}u0/c{i}_1"), f"{DEC}u0/b{i}_1"))
        n = lrelu(bn(conv(n, f"{DEC}u0/c{i}_2"), f"{DEC}u0/b{i}_2"))
        n = n + res
    n = lrelu(bn(conv(n, f"{DEC}uf/c1"), f"{DEC}uf/b1"))
    n = lrelu(bn(conv(n, f"{DEC}uf/c2"), f"{DEC}uf/b2"))
    out["defocus"] = tf.sigmoid(conv(n, f"{DEC}uf/c3"))
    return {k: v.numpy() for k, v in out.items()}


def _image(h, w, seed=0):
    """A smooth-ish test image (gradients + noise) in [0,1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 3.0) * np.cos(yy / 5.0)], -1)
    return np.clip(base + rng.normal(0, 0.1, base.shape), 0, 1).astype(np.float32)[None]


def test_converted_model_matches_tf1_reference(converted, arrays):
    x = _image(32, 48)
    ours = {k: v.numpy() for k, v in converted.estimator(x, training=False).items()}
    ref = _ref_blur_estimator(arrays, x)
    assert sorted(ours) == sorted(ref)
    for k in ref:
        assert ours[k].shape == ref[k].shape, k
        np.testing.assert_allclose(ours[k], ref[k], atol=2e-4, rtol=1e-3, err_msg=k)
    # Non-degenerate: the maps vary over the image, so the comparison means something.
    assert ref["defocus"].std() > 1e-3 and ref["aux_1"].std() > 1e-3
    # The inference model computes the same map.
    np.testing.assert_allclose(converted.estimator.inference_model()(x).numpy(), ref["defocus"],
                               atol=2e-4, rtol=1e-3)


def test_swapped_concat_order_would_be_caught(converted, arrays):
    """Shapes cannot catch a swapped [up, skip] order; the parity run does."""
    x = _image(32, 32, seed=1)
    ours = converted.estimator(x, training=False)
    swapped = _ref_blur_estimator(arrays, x, concat_order="skip_first")
    diff_feature = np.abs(ours["feature"].numpy() - swapped["feature"]).max()
    diff_aux8 = np.abs(ours["aux_8"].numpy() - swapped["aux_8"]).max()
    assert diff_feature > 1e-2 and diff_aux8 > 1e-3


def test_every_array_landed(converted, arrays):
    expected = {}
    expected.update(co.expected_variables(converted.estimator, "estimator"))
    expected.update(co.expected_variables(converted.calibrator, "calibrator"))
    expected.update(co.expected_variables(converted.discriminator, "discriminator"))
    assert len(expected) == 321 - 8
    assert set(expected) | co.UNUSED_KEYS == set(arrays)
    for key, var in expected.items():
        np.testing.assert_array_equal(np.asarray(var), arrays[key], err_msg=key)
    assert set(converted.skipped) == co.UNUSED_KEYS
    # Spot checks of the layout (HWIO copied as is, no transpose) on named layers.
    np.testing.assert_array_equal(converted.estimator.get_layer("block1_conv1").kernel.numpy(),
                                  arrays[ENC + "conv1_1/kernel:0"])
    np.testing.assert_array_equal(converted.estimator.get_layer("u0_b_res3").moving_variance.numpy(),
                                  arrays[DEC + "u0/b_res3/moving_variance:0"])
    np.testing.assert_array_equal(converted.discriminator.get_layer("h2_c1").kernel.numpy(),
                                  arrays["discriminator/feature/h2/c1/kernel:0"])


def test_calibrator_and_discriminator_match_reference(converted, arrays):
    rng = np.random.default_rng(3)
    m = rng.uniform(0, 1, (1, 8, 8, 1)).astype(np.float32)
    t = m
    for stage in (1, 2, 3):
        for i in (1, 2, 3):
            s = f"main_net/binary_net/l{stage}"
            t = tf.nn.bias_add(tf.nn.conv2d(t, arrays[f"{s}/c{i}/kernel:0"], 1, "VALID"), arrays[f"{s}/c{i}/bias:0"])
            t = tf.nn.leaky_relu(tf.nn.batch_normalization(
                t, arrays[f"{s}/b{i}/moving_mean:0"], arrays[f"{s}/b{i}/moving_variance:0"],
                arrays[f"{s}/b{i}/beta:0"], None, 1e-5), 0.2)
    t = tf.nn.bias_add(tf.nn.conv2d(t, arrays["main_net/binary_net/l4/c1/kernel:0"], 1, "VALID"),
                       arrays["main_net/binary_net/l4/c1/bias:0"])
    np.testing.assert_allclose(converted.calibrator(m, training=False).numpy(), t.numpy(), atol=1e-4, rtol=1e-4)

    f = rng.normal(size=(1, 64, 64, 64)).astype(np.float32)
    t = f
    for i in range(4):
        s = f"discriminator/feature/h{i}"
        t = tf.nn.conv2d(t, arrays[f"{s}/c1/kernel:0"], 2, "SAME")
        t = tf.nn.leaky_relu(tf.nn.batch_normalization(
            t, arrays[f"{s}/b1/moving_mean:0"], arrays[f"{s}/b1/moving_variance:0"],
            arrays[f"{s}/b1/beta:0"], None, 1e-5), 0.2)
    t = tf.nn.conv2d(t, arrays["discriminator/feature/h4/c1/kernel:0"], 2, "SAME")
    np.testing.assert_allclose(converted.discriminator(f, training=False).numpy(), t.numpy(),
                               atol=1e-3, rtol=1e-3)


# ---------------------------------------------------------------- refusals

def _refusal(arrays, **kwargs):
    with pytest.raises(co.OfficialCheckpointError) as info:
        co.convert_arrays(arrays, source="bad.npz", **kwargs)
    return str(info.value)


def test_refuses_missing_key(arrays):
    bad = dict(arrays)
    del bad[DEC + "u2/c2/kernel:0"]
    del bad["discriminator/feature/h1/b1/beta:0"]
    msg = _refusal(bad)
    assert "bad.npz" in msg and "2 missing keys" in msg
    assert DEC + "u2/c2/kernel:0" in msg and "discriminator/feature/h1/b1/beta:0" in msg


def test_refuses_unknown_key(arrays):
    bad = dict(arrays)
    bad[DEC + "u0/c_res7/kernel:0"] = np.zeros((1, 1, 64, 64), np.float32)
    bad["Optimizer/main_net/defocus_net/encoder/conv1_1/kernel/Adam:0"] = np.zeros((3, 3, 3, 64), np.float32)
    msg = _refusal(bad)
    assert "2 unknown keys" in msg and DEC + "u0/c_res7/kernel:0" in msg and "Adam:0" in msg


def test_refuses_wrong_shape_and_bad_values(arrays):
    bad = dict(arrays)
    bad[DEC + "u3/c1/kernel:0"] = np.zeros((3, 3, 512, 256), np.float32)
    nan = arrays[DEC + "uf/b1/beta:0"].copy()
    nan[3] = np.nan
    bad[DEC + "uf/b1/beta:0"] = nan
    msg = _refusal(bad)
    assert "1 mis-shaped keys" in msg and "(3, 3, 512, 256)" in msg and "(3, 3, 1024, 256)" in msg
    assert DEC + "uf/b1/beta:0: contains NaN" in msg


def test_old_tensorlayer_names_get_a_hint(arrays):
    bad = {k.replace("/kernel:0", "/W_conv2d:0"): v for k, v in arrays.items()}
    msg = _refusal(bad)
    assert "W_conv2d" in msg and "hint" in msg and "... and" in msg   # long lists are capped


def test_estimator_only_files(arrays):
    only_b = {k: v for k, v in arrays.items() if k.startswith("main_net/defocus_net/")}
    msg = _refusal(only_b)
    assert "64 missing keys" in msg   # 47 S + 17 D
    models = co.convert_arrays(only_b, require_all=False)
    assert models.calibrator is None and models.discriminator is None
    np.testing.assert_array_equal(models.estimator.get_layer("uf_c3").bias.numpy(),
                                  arrays[DEC + "uf/c3/bias:0"])
    # A part that is present must still be complete.
    partial = dict(only_b)
    partial["main_net/binary_net/l1/c1/kernel:0"] = arrays["main_net/binary_net/l1/c1/kernel:0"]
    assert "46 missing keys" in _refusal(partial, require_all=False)


def test_read_npz_errors(tmp_path):
    with pytest.raises(co.OfficialCheckpointError, match="no such file"):
        co.read_npz(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(co.OfficialCheckpointError, match="junk.npz"):
        co.read_npz(junk)
    # Keys saved without the ":0" suffix are normalised.
    p = tmp_path / "nosuffix.npz"
    np.savez(p, **{"a/kernel": np.zeros(2, np.float32)})
    assert list(co.read_npz(p)) == ["a/kernel:0"]


# ---------------------------------------------------------------- CLI

def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tf_defocus.convert_official", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_round_trip(npz_path, converted, tmp_path):
    out = tmp_path / "models" / "blur_estimator.keras"
    r = _run_cli(f"--npz={npz_path}", f"--out={out}",
                 f"--discriminator_out={tmp_path / 'models' / 'd.keras'}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipped 8 arrays" in r.stdout
    info = artifacts.read_info(out)
    assert info.kind == "defocus" and info.size_multiple == 16 and "sha256:" in info.source_model
    assert (tmp_path / "models" / "blur_estimator.convert_config.json").is_file()
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]
    model = keras.saving.load_model(out)
    assert model.name == "blur_estimator"
    x = _image(48, 32, seed=4)
    np.testing.assert_array_equal(model(x).numpy(), converted.estimator.inference_model()(x).numpy())
    d = keras.saving.load_model(tmp_path / "models" / "d.keras")
    f = np.random.default_rng(0).normal(size=(1, 32, 32, 64)).astype(np.float32)
    model_checks.assert_same_outputs(d(f), converted.discriminator(f))


def test_cli_refuses_and_writes_nothing(arrays, tmp_path):
    # A small file (the refusal does not depend on size): one real key, one unknown key.
    bad = {ENC + "conv1_1/kernel:0": arrays[ENC + "conv1_1/kernel:0"],
           "mystery/var:0": np.zeros(3, np.float32)}
    path = tmp_path / "bad.npz"
    np.savez(path, **bad)
    out = tmp_path / "blur_estimator.keras"
    r = _run_cli(f"--npz={path}", f"--out={out}")
    assert r.returncode == 1
    assert "bad.npz" in r.stderr and "312 missing keys" in r.stderr and "mystery/var:0" in r.stderr
    assert "... and 252 more" in r.stderr
    assert list(tmp_path.iterdir()) == [path]


# ---------------------------------------------------------------- TF1 layer semantics

@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (5, 8), (7, 4), (13, 9)])
def test_nearest_upsampling_matches_tf1_align_corners(h, w):
    x = np.random.default_rng(h * 31 + w).normal(size=(2, h, w, 3)).astype(np.float32)
    ours = NearestUpsample(2)(x).numpy()
    tf1 = tf.compat.v1.image.resize_nearest_neighbor(x, [2 * h, 2 * w], align_corners=True).numpy()
    np.testing.assert_array_equal(ours, tf1)
    np.testing.assert_array_equal(ours, np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))


def test_symmetric_pad_valid_conv_matches_tf1_pattern():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 9, 7, 4)).astype(np.float32)
    k = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    bias = rng.normal(size=(5,)).astype(np.float32)
    inp = keras.Input((None, None, 4))
    m = keras.Model(inp, conv_block(inp, 5, "c", activation=None))
    m.get_layer("c").set_weights([k, bias])
    assert isinstance(m.get_layer("c_pad"), SymmetricPad)
    tf1 = tf.nn.bias_add(tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC"), k, 1,
                                      "VALID"), bias).numpy()
    ours = m(x).numpy()
    np.testing.assert_allclose(ours, tf1, atol=1e-5)
    # ... and is not zero padding: the borders differ from SAME.
    same = tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "SAME"), bias).numpy()
    assert np.abs(ours[:, 0] - same[:, 0]).max() > 1e-3
    np.testing.assert_allclose(ours[:, 1:-1, 1:-1], same[:, 1:-1, 1:-1], atol=1e-5)


def test_batchnorm_inference_matches_tensorlayer():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 6)).astype(np.float32)
    beta, mean = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    var = rng.uniform(0.1, 2, 6).astype(np.float32)
    from tf_defocus.models.layers import batch_norm
    bn = batch_norm("b")
    bn.build(x.shape)
    bn.set_weights([beta, mean, var])
    want = tf.nn.batch_normalization(x, mean, var, beta, None, 1e-5).numpy()
    np.testing.assert_allclose(bn(x, training=False).numpy(), want, atol=1e-5)
