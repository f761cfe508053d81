"""tf_defocus.metrics against hand-computed values and brute-force definitions."""

import itertools
import math

import numpy as np
import pytest

from tf_defocus import metrics


def test_defocus_errors_hand_computed():
    pred = np.array([[0.0, 7.0], [3.5, 1.4]])
    gt = np.array([[0.0, 0.0], [3.5, 2.8]])
    e = metrics.defocus_errors(pred, gt)
    # (pred - gt) / 7 = [0, 1, 0, -0.2]
    assert e["mse"] == pytest.approx((1.0 + 0.04) / 4)
    assert e["mae"] == pytest.approx(1.2 / 4)
    assert e["mae_px"] == pytest.approx((7.0 + 1.4) / 4)


def test_defocus_errors_clip_to_label_range():
    # A prediction of 9 px counts as 7 px (labels stop at 7 px); negative as 0.
    e = metrics.defocus_errors(np.array([[9.0, -1.0]]), np.array([[7.0, 0.0]]))
    assert e == {"mse": 0.0, "mae": 0.0, "mae_px": 0.0}


def test_rtf_protocol_hand_computed():
    pred = np.array([0.0, 3.275, 6.55, -1.0])[None]
    gt = np.array([3.275, 3.275, 0.0, 0.0])[None]
    # clipped / 3.275: pred [0, 1, 1, 0], gt [1, 1, 0, 0] -> diff [-1, 0, 1, 0]
    e = metrics.rtf_errors(pred, gt)
    assert e["rtf_mse"] == pytest.approx(0.5)
    assert e["rtf_mae"] == pytest.approx(0.5)
    half = metrics.rtf_errors(np.array([[1.6375]]), np.array([[0.0]]))
    assert half["rtf_mae"] == pytest.approx(0.5) and half["rtf_mse"] == pytest.approx(0.25)


def test_shape_mismatch_and_nan_rejected():
    with pytest.raises(ValueError, match="shape"):
        metrics.defocus_errors(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.defocus_errors(np.array([[np.nan]]), np.array([[0.0]]))
    with pytest.raises(ValueError, match="binary"):
        metrics.average_precision(np.zeros(3), np.array([0, 2, 1]))


def test_dmenet_accuracy_hand_computed():
    score = np.array([[0.0, 1.0], [2.0, 10.0]])
    mask = np.array([[0, 0], [1, 1]])
    # threshold 0.3 * 10 + 0.7 * 0 = 3 -> predicted blurred only at 10: 3 of 4 pixels agree
    assert metrics.dmenet_accuracy(score, mask) == pytest.approx(0.75)
    # the threshold is relative to the map's range: units do not matter
    assert metrics.dmenet_accuracy(score * 7 + 2, mask) == pytest.approx(0.75)
    # a threshold of 0.3 * max + 0.7 * min with min 1: 0.3 * 10 + 0.7 * 1 = 3.7
    assert metrics.dmenet_binarize(np.array([1.0, 3.6, 3.8, 10.0])).tolist() == [False, False, True, True]


def test_average_precision_hand_computed():
    score = np.array([0.9, 0.8, 0.7, 0.6])
    mask = np.array([1, 0, 1, 0])
    # recall steps 0.5 at precision 1 and 0.5 at precision 2/3
    assert metrics.average_precision(score, mask) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # ties form one step: {0.5, 0.5} -> P = 1/2, R = 1/2; then {0.1} -> P = 2/3, R = 1
    assert metrics.average_precision(np.array([0.5, 0.5, 0.1]), np.array([1, 0, 1])) == \
        pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert metrics.average_precision(score, np.array([1, 1, 0, 0])) == pytest.approx(1.0)
    assert math.isnan(metrics.average_precision(score, np.zeros(4)))


def test_roc_auc_hand_computed():
    score = np.array([0.9, 0.8, 0.7, 0.6])
    assert metrics.roc_auc(score, np.array([1, 0, 1, 0])) == pytest.approx(0.75)
    assert metrics.roc_auc(score, np.array([1, 1, 0, 0])) == pytest.approx(1.0)
    assert metrics.roc_auc(score, np.array([0, 0, 1, 1])) == pytest.approx(0.0)
    assert metrics.roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)
    assert math.isnan(metrics.roc_auc(score, np.ones(4)))


def _brute_auc(score, mask):
    pos = score[mask == 1]
    neg = score[mask == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def _brute_ap(score, mask):
    # sklearn definition: sum over distinct thresholds t (descending) of
    # (R(t) - R(previous t)) * P(t), with predictions score >= t.
    ap, prev_r = 0.0, 0.0
    for t in sorted(set(score.tolist()), reverse=True):
        pred = score >= t
        tp = np.sum(pred & (mask == 1))
        r = tp / np.sum(mask == 1)
        ap += (r - prev_r) * tp / np.sum(pred)
        prev_r = r
    return ap


def test_rank_metrics_match_brute_force_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(5):
        score = rng.integers(0, 6, size=(7, 9)).astype(np.float64)   # many ties
        mask = (rng.random((7, 9)) < 0.4).astype(np.uint8)
        assert metrics.roc_auc(score, mask) == pytest.approx(_brute_auc(score.ravel(), mask.ravel()))
        assert metrics.average_precision(score, mask) == pytest.approx(_brute_ap(score.ravel(), mask.ravel()))


def test_mae_minmax_normalised():
    # [0, 5, 10] -> [0, 0.5, 1] vs mask [0, 1, 1]: (0 + 0.5 + 0) / 3
    assert metrics.mae(np.array([0.0, 5.0, 10.0]), np.array([0, 1, 1])) == pytest.approx(1 / 6)
    assert metrics.mae(np.array([0.2, 0.2]), np.array([0, 1])) == pytest.approx(0.5)  # flat -> 0
    assert metrics.mae(np.array([0.2, 0.9]), np.array([0, 1]), normalize=False) == pytest.approx(0.15)


def test_f_measure_curve_hand_computed():
    score = np.array([0.0, 0.5, 1.0, 1.0])
    mask = np.array([0, 1, 1, 0])
    curve = metrics.f_measure_curve(score, mask, num_thresholds=3)   # t = 0, 0.5, 1
    # t=0: P=1/2, R=1; t=0.5: P=2/3, R=1; t=1: P=1/2, R=1/2; F = 1.3 P R / (0.3 P + R)
    expected = [1.3 * 0.5 / (0.15 + 1), 1.3 * (2 / 3) / (0.2 + 1), 1.3 * 0.25 / (0.15 + 0.5)]
    np.testing.assert_allclose(curve, expected)
    assert metrics.max_f_measure(score, mask, num_thresholds=3) == pytest.approx(1.3 * (2 / 3) / 1.2)


def test_f_measure_default_thresholds_and_perfect_map():
    mask = np.array([[0, 1], [1, 0]])
    assert metrics.max_f_measure(mask.astype(float), mask) == pytest.approx(1.0)
    assert metrics.f_measure_curve(mask.astype(float), mask).shape == (256,)


def test_dataset_max_f_averages_curves_before_max():
    curves = [[0.2, 0.8], [0.6, 0.1]]
    assert metrics.dataset_max_f_measure(curves) == pytest.approx(0.45)   # not mean of maxima 0.7


def test_iou_hand_computed():
    assert metrics.iou(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0])) == pytest.approx(1 / 3)
    assert metrics.iou(np.zeros(3), np.zeros(3)) == 1.0
    assert metrics.iou(np.array([True, False]), np.array([True, False])) == 1.0


def test_blur_detection_metrics_bundle():
    score = np.array([[0.0, 0.1], [0.8, 1.0]])
    mask = np.array([[0, 0], [1, 1]])
    m = metrics.blur_detection_metrics(score, mask, score > 0.5)
    assert m["accuracy"] == 1.0 and m["ap"] == 1.0 and m["auc"] == 1.0 and m["iou"] == 1.0
    assert m["max_f"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx((0 + 0.1 + 0.2 + 0) / 4)
    assert m["f_curve"].shape == (256,)


def test_nanmean():
    assert metrics.nanmean([1.0, float("nan"), 3.0]) == 2.0
    assert math.isnan(metrics.nanmean([float("nan")]))
