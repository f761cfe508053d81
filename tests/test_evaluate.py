"""python -m tf_defocus.evaluate on tiny data sets in the public layouts."""

import csv
import dataclasses
import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.inference_helpers import calibrated_keras_model, scene
from tf_defocus import evaluation, prediction
from tf_defocus.data import readers
from tf_defocus.units import SIGMA_MAX_PX

N = 3


@pytest.fixture(scope="module")
def model_path():
    return calibrated_keras_model()


def _u8(img):
    return np.round(img * 255).astype(np.uint8)[..., ::-1]   # RGB -> BGR for cv2


@pytest.fixture(scope="module")
def cuhk_dir(tmp_path_factory):
    """CUHK layout, black = blurred (DMENet's copy); one image corrupt."""
    root = tmp_path_factory.mktemp("cuhk")
    (root / "image").mkdir()
    (root / "gt").mkdir()
    for i in range(N):
        img, sigma = scene(20 + i, 48, 40)
        cv2.imwrite(str(root / "image" / f"{i:02d}.jpg"), _u8(img))
        cv2.imwrite(str(root / "gt" / f"{i:02d}.png"), np.where(sigma > 1.0, 0, 255).astype(np.uint8))
    (root / "image" / "99.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    cv2.imwrite(str(root / "gt" / "99.png"), np.zeros((40, 48), np.uint8))
    return root


@pytest.fixture(scope="module")
def syndof_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("syndof")
    (root / "image").mkdir()
    (root / "blur_map").mkdir()
    truth = {}
    for i in range(N):
        img, sigma = scene(30 + i, 48, 32)
        cv2.imwrite(str(root / "image" / f"{i}.png"), _u8(img))
        cv2.imwrite(str(root / "blur_map" / f"{i}.png"), readers.encode_syndof_sigma(sigma, "sigma10"))
        truth[_u8(img).tobytes()] = np.round(sigma * 10) / 10
    return root, truth


class Oracle:
    """A 'method' that returns the ground truth: errors must be 0 and detection perfect."""
    kind = "defocus"
    path = "oracle"

    def __init__(self, truth, sigma_max_px=SIGMA_MAX_PX):
        self.truth, self.sigma_max_px = truth, sigma_max_px

    def predict_native(self, image, progress=None):
        key = np.round(image * 255).astype(np.uint8)[..., ::-1].tobytes()
        return self.truth[key] / self.sigma_max_px


def test_syndof_oracle_and_model(model_path, syndof_dir, tmp_path):
    root, truth = syndof_dir
    cfg = evaluation.EvaluateConfig(dataset="syndof", data_dir=str(root), output=str(tmp_path),
                                    model=(f"tiny={model_path}",), label_convention="sigma10",
                                    tile_size=32, tile_overlap=16)
    methods = evaluation.load_methods(cfg) + [("oracle", Oracle(truth))]
    results, rows, failed = evaluation.evaluate(cfg, methods, io.StringIO())
    assert not failed and results["num_images"] == N
    o = results["methods"]["oracle"]["metrics"]
    assert max(o["mse"], o["mae_norm"], o["mae_px"]) == pytest.approx(0, abs=1e-6)
    assert o["ap"] == pytest.approx(1) and o["max_f"] == pytest.approx(1) and o["auc"] == pytest.approx(1)
    assert o["iou"] > 0.95       # sigma exactly at the 1 px threshold may round either way
    t = results["methods"]["tiny"]["metrics"]
    assert 0 < t["mse"] <= t["mae_norm"] <= 1 and t["mae_px"] == pytest.approx(7 * t["mae_norm"])
    assert 0 <= t["auc"] <= 1 and 0 <= t["accuracy"] <= 1
    assert len(rows) == 2 * N
    evaluation.write_results(cfg, results, rows)
    table = (tmp_path / "results.md").read_text()
    assert "| tiny | defocus | 3 |" in table and "| oracle |" in table and "MAE [px]" in table


def test_cuhk_model_and_dof_weight_side_by_side_with_a_corrupt_image(model_path, cuhk_dir, tmp_path):
    out = tmp_path / "eval"
    err = io.StringIO()
    cfg = evaluation.EvaluateConfig(dataset="cuhk", data_dir=str(cuhk_dir), output=str(out),
                                    model=(f"tiny={model_path}",), method=("model", "dof_weight"),
                                    blurred_value=0, tile_size=32, tile_overlap=16)
    assert evaluation.run_config(cfg, err) == 1                  # the corrupt image
    assert "99.jpg" in err.getvalue()
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == {"tiny", "dof_weight"}
    for name, r in res["methods"].items():
        assert r["num_images"] == N
        m = r["metrics"]
        assert set(m) == set(evaluation.DETECTION_METRICS)
        assert all(0 <= v <= 1 for v in m.values()), (name, m)
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * N and {r["method"] for r in rows} == {"tiny", "dof_weight"}
    assert (out / "evaluate_config.json").exists()
    # the DoF weight map ranks sharp texture above smooth blur: better than chance on these scenes
    assert res["methods"]["dof_weight"]["metrics"]["auc"] > 0.6


def test_cuhk_polarity_flag_matters(cuhk_dir, tmp_path):
    """The mask polarity flag passes through: flipping it flips the ranking quality."""
    def auc(bv):
        cfg = evaluation.EvaluateConfig(dataset="cuhk", data_dir=str(cuhk_dir),
                                        output=str(tmp_path), method=("dof_weight",),
                                        blurred_value=bv, limit=N)
        res, _, _ = evaluation.evaluate(cfg, None, io.StringIO())
        return res["methods"]["dof_weight"]["metrics"]["auc"]
    right, wrong = auc(0), auc(255)
    assert right == pytest.approx(1 - wrong, abs=1e-6) and right > 0.6


def test_rtf_protocol(tmp_path):
    root = tmp_path / "rtf"
    (root / "image").mkdir(parents=True)
    (root / "gt").mkdir()
    truth = {}
    for i in range(2):
        img, sigma = scene(40 + i, 40, 32)
        cv2.imwrite(str(root / "image" / f"{i}.png"), _u8(img))
        np.save(root / "gt" / f"{i}.npy", sigma)
        truth[_u8(img).tobytes()] = sigma
    cfg = evaluation.EvaluateConfig(dataset="rtf", data_dir=str(root), output=str(tmp_path / "o"),
                                    method=("dof_weight",))
    results, rows, failed = evaluation.evaluate(cfg, [("oracle", Oracle(truth))], io.StringIO())
    m = results["methods"]["oracle"]["metrics"]
    assert m["rtf_mse"] == pytest.approx(0, abs=1e-10) and m["rtf_mae"] == pytest.approx(0, abs=1e-6)
    assert set(results["metrics"]) >= {"rtf_mse", "rtf_mae", "mse", "ap"}
    # --scale=0.5: a model's native map is sigma / 14 px, and the metrics read it so.
    half = dataclasses.replace(cfg, scale=0.5)
    results, _, _ = evaluation.evaluate(half, [("oracle", Oracle(truth, 14.0))], io.StringIO())
    assert results["methods"]["oracle"]["metrics"]["rtf_mae"] == pytest.approx(0, abs=1e-6)
    # --max_side=20: the 40 px long side is read at 20 / 40, the same range as --scale=0.5 (off
    # by default in evaluate, unlike predict: labelled data keep their blur within 7 px)
    predict_default = {f.name: f.default for f in dataclasses.fields(prediction.PredictConfig)}
    assert cfg.max_side == 0 and predict_default["max_side"] == 1280
    capped = dataclasses.replace(cfg, max_side=20)
    results, _, _ = evaluation.evaluate(capped, [("oracle", Oracle(truth, 14.0))], io.StringIO())
    assert results["methods"]["oracle"]["metrics"]["rtf_mae"] == pytest.approx(0, abs=1e-6)
    results, _, _ = evaluation.evaluate(cfg, [("oracle", Oracle(truth, 14.0))], io.StringIO())
    assert results["methods"]["oracle"]["metrics"]["rtf_mae"] > 0.01


def test_config_errors(model_path, cuhk_dir, tmp_path):
    base = dict(dataset="cuhk", data_dir=str(cuhk_dir), output=str(tmp_path / "x"),
                model=(f"m={model_path}",), blurred_value=0)

    def code(**kw):
        err = io.StringIO()
        rc = evaluation.run_config(evaluation.EvaluateConfig(**{**base, **kw}), err)
        return rc, err.getvalue()
    for kw, msg in ((dict(blurred_value=-1), "--blurred_value"),
                    (dict(blurred_value=None), "--blurred_value"),
                    (dict(dataset="syndof"), "--label_convention"),
                    (dict(tile_size=40), "--tile_size must be a multiple of 16")):
        with pytest.raises(ValueError, match=msg):        # the config refuses itself
            evaluation.EvaluateConfig(**{**base, **kw})
    rc, msg = code(data_dir=str(tmp_path / "nowhere"))
    assert rc == 2 and "nowhere" in msg
    rc, msg = code(model=(f"m={tmp_path / 'missing.keras'}",))
    assert rc == 2 and "missing.keras" in msg
    assert not (tmp_path / "x").exists()


def test_parse_models():
    assert evaluation.parse_models(["a=x/m.keras", "x/blur_estimator.keras",
                                    "y/blur_estimator.tflite"]) == (
        ("a", "x/m.keras"), ("blur_estimator", "x/blur_estimator.keras"),
        ("blur_estimator_2", "y/blur_estimator.tflite"))


def test_flags_to_config():
    """Each --model / --method may be repeated or a comma list; --method given twice counts once."""
    from absl import flags

    from tf_defocus import cli
    fv = cli.define_config_flags([evaluation.EvaluateConfig], flags.FlagValues())
    fv(["evaluate", "--dataset=cuhk", "--data_dir=d", "--output=o", "--blurred_value=0",
        "--model=a=x/m.keras", "--model=x/b.keras,y/b.tflite", "--method=lbp", "--method=model",
        "--method=lbp"])
    cfg = cli.config_from_flags(evaluation.EvaluateConfig, fv)
    assert cfg.models == (("a", "x/m.keras"), ("b", "x/b.keras"), ("b_2", "y/b.tflite"))
    assert cfg.method == ("lbp", "model") and cfg.tile_size == evaluation.RunSettings().tile_size


def test_cli_subprocess(model_path, cuhk_dir, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "tf_defocus.evaluate", f"--model=tiny={model_path}",
           "--dataset=cuhk", f"--data_dir={cuhk_dir}", "--blurred_value=0", "--method=model",
           "--method=dof_weight", f"--output={out}", "--tile_size=32", "--tile_overlap=16"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]          # 99.jpg is corrupt
    assert "| tiny | defocus |" in res.stdout and "| dof_weight | dof_weight |" in res.stdout
    assert (out / "results.md").exists() and (out / "per_image.csv").exists()
