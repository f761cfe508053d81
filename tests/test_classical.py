"""Classical blur baselines (tf_defocus.classical: LBP sharpness, HiFST), Spearman's rho, and
their predict / evaluate integration."""

import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tf_defocus import artifacts, classical, evaluation, metrics, prediction

METHODS = ("lbp", "hifst")
FUNCS = {"lbp": classical.lbp_sharpness, "hifst": classical.hifst_sharpness}


def half_blurred(height=64, width=64, seed=0, sigma=3.0):
    """Sharp textured noise with its left half Gaussian-blurred (sigma px): float32 RGB image
    and the mask (True = blurred)."""
    rng = np.random.default_rng(seed)
    sharp = rng.random((height, width, 3), dtype=np.float32)
    blurred = cv2.GaussianBlur(sharp, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    image = sharp.copy()
    half = width // 2
    image[:, :half] = blurred[:, :half]
    mask = np.zeros((height, width), bool)
    mask[:, :half] = True
    return image, mask


@pytest.mark.parametrize("name", METHODS)
def test_sharp_half_scores_higher(name):
    image, mask = half_blurred()
    focus = FUNCS[name](image)
    assert focus.shape == mask.shape and focus.dtype == np.float32
    assert 0.0 <= focus.min() and focus.max() <= 1.0
    assert metrics.roc_auc(1.0 - focus, mask) > 0.9
    assert focus[~mask].mean() > focus[mask].mean() + 0.3


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("shape", [(37, 53), (8, 8), (9, 70), (64, 7)])
def test_odd_and_tiny_sizes_keep_shape_and_range(name, shape):
    image, _ = half_blurred(*shape, seed=1)
    out = FUNCS[name](image)
    assert out.shape == shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("name", METHODS)
def test_input_kinds_agree_and_input_is_not_modified(name):
    image, _ = half_blurred(40, 48, seed=2)
    u8 = np.round(image * 255).astype(np.uint8)
    gray = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)
    keep = u8.copy(), gray.copy()
    ref = FUNCS[name](u8)
    rgba = np.concatenate([u8, np.full(u8.shape[:2] + (1,), 7, np.uint8)], axis=-1)
    np.testing.assert_allclose(FUNCS[name](rgba), ref, atol=1e-6)
    np.testing.assert_allclose(FUNCS[name](u8.astype(np.uint16) * 257), ref, atol=1e-3)
    # a grey image of the RGB's luma: the same map up to the uint8 rounding of the luma
    g = FUNCS[name](gray)
    assert g.shape == gray.shape and np.corrcoef(g.ravel(), ref.ravel())[0, 1] > 0.9
    np.testing.assert_allclose(FUNCS[name](gray[..., None]), g, atol=1e-6)
    np.testing.assert_array_equal(u8, keep[0])
    np.testing.assert_array_equal(gray, keep[1])
    f = image.copy()
    FUNCS[name](f)
    np.testing.assert_array_equal(f, image)


def test_too_small_and_bad_input():
    with pytest.raises(ValueError, match="too small"):
        classical.lbp_sharpness(np.zeros((2, 9)))
    with pytest.raises(ValueError, match="too small.*7x7"):
        classical.hifst_sharpness(np.zeros((6, 30), np.uint8))
    with pytest.raises(ValueError):
        classical.lbp_sharpness(np.full((9, 9), np.nan, np.float32))
    with pytest.raises(ValueError):
        classical.hifst_sharpness(np.zeros((9, 9, 2)))


def test_flat_image_is_all_blurred():
    flat = np.full((30, 30, 3), 0.4, np.float32)
    assert classical.lbp_sharpness(flat).max() == 0.0
    assert classical.hifst_sharpness(flat).max() == 0.0


def test_lbp_codes_by_hand():
    t = classical.LBP_THRESHOLD

    def code(patch):
        """LBP code of the centre of a 3x3 patch (diagonal neighbours are interpolated from it)."""
        g = np.asarray(patch, np.float32)
        return int(classical.lbp_codes(np.pad(g, 2, mode="edge"))[3, 3])

    c = 0.5
    assert code(np.full((3, 3), c)) == 0
    right = np.full((3, 3), c)
    right[1, 2] = c + 2 * t                 # the diagonals see 0.21 of it: below T_LBP
    assert code(right) == 1
    right[1, 2] = c - 2 * t
    assert code(right) == 1                 # |g_p - g_c|: sign-free
    right[1, 2] = c + 0.5 * t
    assert code(right) == 0                 # below T_LBP
    top = np.full((3, 3), c)
    top[0] = 1.0                            # neighbours 1, 2, 3 differ: uniform, 3 bits
    assert code(top) == 3
    top[2] = 1.0                            # top and bottom rows: two runs, non-uniform
    assert code(top) == 9
    bright = np.ones((3, 3))
    bright[1, 1] = 0.0
    assert code(bright) == 8                # every neighbour differs
    rng = np.random.default_rng(0)
    codes = classical.lbp_codes(rng.random((50, 50)).astype(np.float32))
    assert codes.dtype == np.uint8 and codes.max() <= 9 and np.mean(codes >= 6) > 0.5


def test_dct_and_sorted_layers_match_a_direct_computation():
    for m in (7, 15):
        d = classical.dct_matrix(m)
        np.testing.assert_allclose(d @ d.T, np.eye(m), atol=1e-12)
        assert len(classical.high_frequency_index(m)) == m * (m + 1) // 2
    rng = np.random.default_rng(3)
    grad = rng.random((21, 26)).astype(np.float32)
    ys, xs = classical.grid_positions(21, 3), classical.grid_positions(26, 3)
    assert ys[-1] == 20 and xs[-1] == 25
    layers = classical.sorted_hf_layers(grad, ys, xs, scales=(7, 15))
    assert layers.shape == (len(ys), len(xs), 22)
    padded = np.pad(grad.astype(np.float64), 7, mode="symmetric")
    for iy, ix in ((0, 0), (3, 4), (len(ys) - 1, len(xs) - 1)):
        y, x = ys[iy] + 7, xs[ix] + 7
        vals = []
        for m in (7, 15):
            r = m // 2
            d = classical.dct_matrix(m)
            c = d @ padded[y - r:y + r + 1, x - r:x + r + 1] @ d.T
            vals.append(np.abs(c.ravel()[classical.high_frequency_index(m)]))
        np.testing.assert_allclose(layers[iy, ix], np.sort(np.concatenate(vals))[:22], atol=1e-5)
    scipy_fft = pytest.importorskip("scipy.fft")
    x = rng.random((15, 15))
    d = classical.dct_matrix(15)
    np.testing.assert_allclose(d @ x @ d.T, scipy_fft.dctn(x, norm="ortho"), atol=1e-12)


def test_hifst_stride_is_a_close_approximation():
    image, mask = half_blurred(48, 56, seed=4)
    dense = classical.hifst_sharpness(image, stride=1)
    coarse = classical.hifst_sharpness(image)                     # default stride 2
    assert np.corrcoef(dense.ravel(), coarse.ravel())[0, 1] > 0.98
    assert classical.effective_stride(480, 640, 2) == 2
    assert classical.effective_stride(4000, 6000, 2) > 2          # 24 MP: capped memory


def test_local_entropy_and_domain_transform():
    assert classical.local_entropy(np.full((20, 20), 0.3)).max() == 0.0
    checker = (np.indices((21, 21)).sum(0) % 2).astype(np.float32)
    e = classical.local_entropy(checker, window=7)
    # 7x7 window: 25 of one level, 24 of the other
    p = np.array([25, 24]) / 49
    assert e[10, 10] == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-5)
    const = np.full((15, 17), 0.25, np.float32)
    guide = np.random.default_rng(0).random((15, 17)).astype(np.float32)
    np.testing.assert_allclose(classical.domain_transform_filter(const, guide), 0.25, atol=1e-6)
    # a step in both the values and the guide survives; noise on a flat guide is smoothed
    step = np.zeros((20, 40), np.float32)
    step[:, 20:] = 1
    out = classical.domain_transform_filter(step, step)
    assert out[:, :18].max() < 0.05 and out[:, 22:].min() > 0.95
    noise = np.random.default_rng(1).random((20, 40)).astype(np.float32)
    assert classical.domain_transform_filter(noise, np.zeros_like(noise)).std() < 0.3 * noise.std()


def test_methods_behind_the_estimator_interface():
    image, _ = half_blurred(32, 40)
    for name in METHODS:
        est = classical.make_method(name)
        assert est.kind == artifacts.KIND_DOF_WEIGHT and est.path == name
        calls = []
        native = est.predict_native(image, progress=lambda d, t: calls.append((d, t)))
        assert calls == [(1, 1)] and native.shape == (32, 40)
        np.testing.assert_allclose(est.predict_focus(image), native, atol=1e-4)
        with pytest.raises(ValueError, match="no blur unit"):
            est.predict(image)
    with pytest.raises(ValueError, match="unknown"):
        classical.make_method("bogus")


# ----------------------------------------------------------------------------- Spearman

def test_spearman_hand_computed_with_ties():
    x = np.array([[1.0, 2.0], [2.0, 5.0]])
    y = np.array([[10.0, 20.0], [40.0, 30.0]])
    np.testing.assert_array_equal(metrics.average_ranks(x), [1, 2.5, 2.5, 4])
    # centred ranks x: -1.5, 0, 0, 1.5; y: -1.5, -0.5, 1.5, 0.5 -> 3 / sqrt(4.5 * 5)
    assert metrics.spearman(x, y) == pytest.approx(3.0 / np.sqrt(22.5))
    assert metrics.spearman(x, x ** 3) == pytest.approx(1.0)
    assert metrics.spearman(x, -x) == pytest.approx(-1.0)
    assert np.isnan(metrics.spearman(np.ones((2, 2)), y))          # constant: undefined
    with pytest.raises(ValueError):
        metrics.spearman(x, y[:1])


def test_spearman_matches_scipy_and_subsamples_deterministically():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, (40, 50)).astype(np.float64)            # many ties
    b = a + rng.normal(0, 2, a.shape).round(1)
    assert metrics.spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0],
                                                   abs=1e-12)
    big_a = rng.random((400, 400))
    big_b = big_a + rng.normal(0, 0.3, big_a.shape)
    full = stats.spearmanr(big_a.ravel(), big_b.ravel())[0]
    sub = metrics.spearman(big_a, big_b, max_samples=20_000)
    assert sub == metrics.spearman(big_a, big_b, max_samples=20_000)   # fixed seed
    assert sub == pytest.approx(full, abs=0.02)


# ----------------------------------------------------------------------------- CLIs

@pytest.fixture(scope="module")
def syndof_dir(tmp_path_factory):
    """A tiny SYNDOF-layout data set (sigma labels) from the built-in synthetic scenes."""
    from tests.inference_helpers import scene
    from tf_defocus.data import readers
    root = tmp_path_factory.mktemp("syndof_classical")
    (root / "image").mkdir()
    (root / "blur_map").mkdir()
    truth = {}
    for i in range(2):
        img, sigma = scene(60 + i, 64, 48)
        u8 = np.round(img * 255).astype(np.uint8)
        cv2.imwrite(str(root / "image" / f"{i}.png"), u8[..., ::-1])
        cv2.imwrite(str(root / "blur_map" / f"{i}.png"), readers.encode_syndof_sigma(sigma, "sigma10"))
        truth[u8.tobytes()] = np.round(sigma * 10) / 10
    return root, truth


class Oracle:
    """Returns the true sigma: Spearman 1, AUC 1."""
    kind = artifacts.KIND_DEFOCUS
    path = "oracle"

    def __init__(self, truth):
        self.truth = truth

    def predict_native(self, image, progress=None):
        return self.truth[np.round(image * 255).astype(np.uint8).tobytes()] / 7.0


def test_evaluate_reports_spearman_and_auc_for_every_method(syndof_dir, tmp_path):
    root, truth = syndof_dir
    cfg = evaluation.EvaluateConfig(dataset="syndof", data_dir=str(root), output=str(tmp_path),
                                    method=("dof_weight", "lbp", "hifst"),
                                    label_convention="sigma10")
    methods = evaluation.load_methods(cfg) + [("oracle", Oracle(truth))]
    assert [n for n, _ in methods] == ["dof_weight", "lbp", "hifst", "oracle"]
    results, rows, failed = evaluation.evaluate(cfg, methods, io.StringIO())
    assert not failed and "spearman" in results["metrics"]
    o = results["methods"]["oracle"]["metrics"]
    assert o["spearman"] == pytest.approx(1.0) and o["auc"] == pytest.approx(1.0)
    for name in ("dof_weight", "lbp", "hifst"):
        m = results["methods"][name]["metrics"]
        assert results["methods"][name]["kind"] == artifacts.KIND_DOF_WEIGHT
        assert np.isnan(m["mse"])                          # no blur unit: no sigma errors
        assert -1 <= m["spearman"] <= 1 and 0 <= m["auc"] <= 1, (name, m)
    table = evaluation.markdown_table(results)
    assert "Spearman rho" in table and "| lbp | dof_weight | 2 |" in table


def test_config_errors_for_training_free_methods(tmp_path):
    with pytest.raises(evaluation.ConfigError, match="also a method name"):
        evaluation.EvaluateConfig(dataset="cuhk", data_dir=str(tmp_path), output=str(tmp_path),
                                  blurred_value=0, method=("model", "lbp"), model=("lbp=x.keras",))
    out = tmp_path / "p"
    for method in METHODS:
        with pytest.raises(ValueError, match=f"--method={method} .*no blur unit"):
            prediction.PredictConfig(input=("x.png",), output_dir=str(out), method=method,
                                     outputs=("sigma", "color"))  # no sigma for a focus score
        with pytest.raises(ValueError, match="training-free"):
            prediction.PredictConfig(input=("x.png",), output_dir=str(out), method=method,
                                     model="m.keras", outputs=("focus",))


def test_predict_cli_lbp(tmp_path):
    image, _ = half_blurred(45, 67, seed=6)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.round(image * 255).astype(np.uint8)[..., ::-1])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tf_defocus.predict", "--method=lbp", f"--input={path}",
           f"--output_dir={out}", "--outputs=color,focus"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    focus = cv2.imread(str(out / "x_focus.png"), cv2.IMREAD_UNCHANGED)
    assert focus.shape == (45, 67)
    from tf_defocus.imageio import read_image
    np.testing.assert_allclose(focus / 255.0, classical.lbp_sharpness(read_image(path)),
                               atol=1 / 255 + 1e-6)
    color = cv2.imread(str(out / "x_focus_color.png"))
    assert color.shape[0] == 45 and color.shape[1] > 67               # legend bar
    cfg = json.loads((out / prediction.CONFIG_FILENAME).read_text())
    assert cfg["method"] == "lbp" and cfg["model_kind"] == artifacts.KIND_DOF_WEIGHT


def test_evaluate_cli_lbp_and_hifst(syndof_dir, tmp_path):
    root, _ = syndof_dir
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "tf_defocus.evaluate", "--dataset=syndof",
           "--label_convention=sigma10", f"--data_dir={root}", "--method=lbp", "--method=hifst",
           "--method=lbp", f"--output={out}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| lbp | dof_weight |" in res.stdout and "| hifst | dof_weight |" in res.stdout
    assert "Spearman rho" in res.stdout and "AUC" in res.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"lbp", "hifst"}              # --method=lbp twice: once
    assert res.stdout.index("| lbp |") < res.stdout.index("| hifst |")   # in the given order
    for r in results["methods"].values():
        assert r["num_images"] == 2
        assert r["metrics"]["auc"] is not None and r["metrics"]["spearman"] is not None
