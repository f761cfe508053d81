"""Evaluation metrics (NumPy only) for defocus maps and blur detection.

Conventions (docs/ARCHITECTURE.md):

* Defocus maps are compared as sigma [px]. ``defocus_errors`` reports MSE and MAE in network
  units sigma/7 (both maps clipped to [0, 7] px first, as the SYNDOF labels are) and MAE in px.
* RTF protocol (authors' ``evaluation/RTF/quantitative_RTF.m``, codeslake/DMENet): negative
  sigma set to 0, both maps clipped at 3.275 px and divided by 3.275, then per-image MSE / MAE,
  averaged over images.
* Blur detection: ``mask`` is binary with 1 = blurred (out of focus); ``score`` is any map where
  larger means *more blurred* (sigma in px for a defocus model, ``1 - weight`` for a DoF weight
  map). Rank metrics (AP, AUC) and DMENet's accuracy do not depend on the score's unit;
  MAE / F-measure / IoU-at-0.5 use the score min-max normalised per image to [0, 1], which is what
  the salient-object / blur-detection evaluation toolboxes do with prediction maps.

* Rank correlation: ``spearman`` between any blur score and the true sigma [px] (Spearman's
  rho = Pearson correlation of the average ranks, ties sharing the mean of their ranks); it
  needs no common unit, so defocus models and focus-type scores (blur = 1 - focus) compare.

Every per-image function takes 2-D arrays of equal shape and returns a Python float (NaN when
the metric is undefined for that image, e.g. AP of an image without blurred pixels).
"""

import numpy as np

from tf_defocus.units import RTF_SIGMA_CLIP_PX, SIGMA_MAX_PX

DMENET_ACCURACY_ALPHA = 0.3
SPEARMAN_MAX_SAMPLES = 100_000
"""``spearman`` ranks at most this many pixels per image (a uniform random subset)."""
SPEARMAN_SEED = 0
F_BETA2 = 0.3
NUM_THRESHOLDS = 256


def _pair(pred, gt, name_pred="pred", name_gt="gt"):
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.ndim == 3 and pred.shape[-1] == 1:
        pred = pred[..., 0]
    if gt.ndim == 3 and gt.shape[-1] == 1:
        gt = gt[..., 0]
    if pred.shape != gt.shape:
        raise ValueError(f"{name_pred} has shape {pred.shape} but {name_gt} has shape {gt.shape}")
    if pred.size == 0:
        raise ValueError("empty maps")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(gt))):
        raise ValueError("maps contain NaN or Inf")
    return pred, gt


def _binary(mask, name="mask"):
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.dtype != bool:
        vals = np.unique(m)
        if not np.all(np.isin(vals, (0, 1))):
            raise ValueError(f"{name} must be binary (0/1 or bool), got values {vals[:8]}")
        m = m.astype(bool)
    return m


def _score_mask(score, mask):
    s = np.asarray(score, np.float64)
    if s.ndim == 3 and s.shape[-1] == 1:
        s = s[..., 0]
    m = _binary(mask)
    if s.shape != m.shape:
        raise ValueError(f"score has shape {s.shape} but mask has shape {m.shape}")
    if s.size == 0:
        raise ValueError("empty maps")
    if not np.all(np.isfinite(s)):
        raise ValueError("score contains NaN or Inf")
    return s, m


# ----------------------------------------------------------------------------- defocus maps

def defocus_errors(pred_sigma_px, gt_sigma_px):
    """Errors of a predicted sigma map [px] against ground truth sigma [px], both (H, W).

    Returns dict: ``mse`` and ``mae`` on sigma/7 (maps clipped to [0, 7] px), ``mae_px`` (also
    on the clipped maps, in px).
    """
    p, g = _pair(pred_sigma_px, gt_sigma_px)
    p = np.clip(p, 0.0, SIGMA_MAX_PX)
    g = np.clip(g, 0.0, SIGMA_MAX_PX)
    d = (p - g) / SIGMA_MAX_PX
    return {"mse": float(np.mean(d * d)), "mae": float(np.mean(np.abs(d))),
            "mae_px": float(np.mean(np.abs(p - g)))}


def rtf_errors(pred_sigma_px, gt_sigma_px, clip_px=RTF_SIGMA_CLIP_PX):
    """RTF protocol: both sigma maps [px] clipped to [0, clip_px] and divided by clip_px.

    Returns dict ``rtf_mse``, ``rtf_mae`` (unitless, in [0, 1]).
    """
    p, g = _pair(pred_sigma_px, gt_sigma_px)
    p = np.clip(p, 0.0, clip_px) / clip_px
    g = np.clip(g, 0.0, clip_px) / clip_px
    d = p - g
    return {"rtf_mse": float(np.mean(d * d)), "rtf_mae": float(np.mean(np.abs(d)))}


# ----------------------------------------------------------------------------- rank correlation

def average_ranks(values):
    """Ranks 1..n of a 1-D array, tied values sharing the mean of their ranks (float64)."""
    v = np.asarray(values).ravel()
    n = v.size
    order = np.argsort(v, kind="stable")
    sv = v[order]
    first = np.r_[True, sv[1:] != sv[:-1]] if n else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], n]                         # exclusive
    group_rank = (starts + ends - 1) / 2.0 + 1.0        # mean of ranks starts+1 .. ends
    ranks = np.empty(n, np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def spearman(score, target, max_samples=SPEARMAN_MAX_SAMPLES, seed=SPEARMAN_SEED):
    """Spearman's rank correlation of two maps of equal shape (e.g. a blur score and the true
    sigma [px]): the Pearson correlation of their average ranks (ties get the mean rank).

    Images with more than ``max_samples`` pixels are ranked on a uniform random subset of that
    many pixels (without replacement, fixed ``seed``: the same pixels every run); the sampling
    error of rho from 100k pixels is about (1 - rho^2) / sqrt(100k) <= 0.0032. NaN if either
    map is constant over the pixels used.
    """
    s, t = _pair(score, target, "score", "target")
    s, t = s.ravel(), t.ravel()
    if max_samples and s.size > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(s.size, int(max_samples), replace=False))
        s, t = s[idx], t[idx]
    rs = average_ranks(s)
    rt = average_ranks(t)
    rs -= rs.mean()
    rt -= rt.mean()
    denom = np.sqrt(np.dot(rs, rs) * np.dot(rt, rt))
    if not denom > 0:
        return float("nan")
    return float(np.clip(np.dot(rs, rt) / denom, -1.0, 1.0))


# ----------------------------------------------------------------------------- blur detection

def minmax_normalize(score):
    """Score map -> [0, 1] by per-image min-max; a constant map becomes all zeros."""
    s = np.asarray(score, np.float64)
    lo, hi = float(s.min()), float(s.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(s)
    return (s - lo) / (hi - lo)


def dmenet_binarize(score, alpha=DMENET_ACCURACY_ALPHA):
    """DMENet's binarisation of a blur map: blurred where score > alpha*max + (1-alpha)*min.

    Source: ``get_accuracy()`` in codeslake/DMENet ``main.py`` (commit 027c226): the blur map
    (``1 - output`` in that version, whose output was sharpness) is thresholded at
    ``0.3 * max + 0.7 * min`` per image and compared with the (polarity-flipped, 1 = blurred) CUHK
    mask.
    """
    s = np.asarray(score, np.float64)
    thr = alpha * s.max() + (1.0 - alpha) * s.min()
    return s > thr


def dmenet_accuracy(score, mask, alpha=DMENET_ACCURACY_ALPHA):
    """Fraction of pixels where DMENet's binarised blur map equals the mask (1 = blurred)."""
    s, m = _score_mask(score, mask)
    return float(np.mean(dmenet_binarize(s, alpha) == m))


def _ranked_counts(score, mask):
    """Cumulative TP / FP at every distinct score threshold (descending), ties grouped."""
    s, y = _score_mask(score, mask)
    s = s.ravel()
    y = y.ravel()
    order = np.argsort(-s, kind="stable")
    s = s[order]
    y = y[order]
    tp = np.cumsum(y, dtype=np.int64)
    fp = np.cumsum(~y, dtype=np.int64)
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each tie group
    return tp[last], fp[last], int(tp[-1]), int(fp[-1])


def average_precision(score, mask):
    """Average precision of ranking pixels by ``score`` against ``mask`` (1 = blurred).

    AP = sum_n (R_n - R_{n-1}) P_n over distinct thresholds (tied scores form one step, as in
    scikit-learn's ``average_precision_score``). NaN if the mask has no blurred pixel.
    """
    tp, fp, n_pos, _ = _ranked_counts(score, mask)
    if n_pos == 0:
        return float("nan")
    precision = tp / (tp + fp)
    recall = tp / n_pos
    d_recall = np.diff(np.r_[0.0, recall])
    return float(np.sum(d_recall * precision))


def roc_auc(score, mask):
    """Area under the ROC curve (trapezoid over distinct thresholds; ties count one half).

    NaN if the mask is all blurred or all sharp.
    """
    tp, fp, n_pos, n_neg = _ranked_counts(score, mask)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def mae(score, mask, normalize=True):
    """Mean |score - mask| with ``score`` min-max normalised to [0, 1] (unless normalize=False,
    then it must already be in [0, 1])."""
    s, m = _score_mask(score, mask)
    s = minmax_normalize(s) if normalize else np.clip(s, 0.0, 1.0)
    return float(np.mean(np.abs(s - m)))


def f_measure_curve(score, mask, beta2=F_BETA2, num_thresholds=NUM_THRESHOLDS, normalize=True):
    """F-measure at ``num_thresholds`` thresholds t_k = k / (num_thresholds - 1), k = 0..N-1.

    Predicted blurred = normalised score >= t_k (t_0 = 0 marks every pixel). Precision with no
    predicted pixel counts as 0. F = (1 + b2) P R / (b2 P + R), 0 where P = R = 0. Returns a
    float64 array (num_thresholds,).
    """
    s, m = _score_mask(score, mask)
    s = minmax_normalize(s) if normalize else np.clip(s, 0.0, 1.0)
    # Bin each pixel at the highest threshold it passes; cumulative sums from the top give the
    # counts of pixels >= t_k for all k in O(pixels + thresholds).
    k = np.floor(s.ravel() * (num_thresholds - 1) + 1e-9).astype(np.int64)
    k = np.clip(k, 0, num_thresholds - 1)
    y = m.ravel()
    pos_hist = np.bincount(k[y], minlength=num_thresholds)
    all_hist = np.bincount(k, minlength=num_thresholds)
    tp = np.cumsum(pos_hist[::-1])[::-1].astype(np.float64)
    pred = np.cumsum(all_hist[::-1])[::-1].astype(np.float64)
    n_pos = float(y.sum())
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = tp / n_pos if n_pos > 0 else np.zeros_like(tp)
    denom = beta2 * precision + recall
    return np.divide((1 + beta2) * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)


def max_f_measure(score, mask, beta2=F_BETA2, num_thresholds=NUM_THRESHOLDS, normalize=True):
    """Largest F-measure over thresholds for one image (see ``f_measure_curve``)."""
    return float(np.max(f_measure_curve(score, mask, beta2, num_thresholds, normalize)))


def dataset_max_f_measure(curves):
    """Data-set max F: the F curves of all images averaged per threshold, then the maximum."""
    c = np.asarray(curves, np.float64)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"expected (num_images, num_thresholds) curves, got shape {c.shape}")
    return float(np.max(c.mean(axis=0)))


def iou(pred_mask, mask):
    """Intersection over union of the blurred class; 1.0 if both masks are empty."""
    p = _binary(pred_mask, "pred_mask")
    m = _binary(mask)
    if p.shape != m.shape:
        raise ValueError(f"pred_mask has shape {p.shape} but mask has shape {m.shape}")
    union = np.logical_or(p, m).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(p, m).sum() / union)


def blur_detection_metrics(score, mask, pred_mask, beta2=F_BETA2, num_thresholds=NUM_THRESHOLDS):
    """All per-image blur-detection metrics.

    score: (H, W) larger = more blurred; mask: (H, W) 1 = blurred; pred_mask: (H, W) bool, the
    method's own binary decision (e.g. sigma > threshold px) used for IoU.
    Returns dict accuracy, ap, auc, mae, max_f, iou, plus ``f_curve`` (array, for the data-set
    max F).
    """
    curve = f_measure_curve(score, mask, beta2, num_thresholds)
    return {"accuracy": dmenet_accuracy(score, mask), "ap": average_precision(score, mask),
            "auc": roc_auc(score, mask), "mae": mae(score, mask), "max_f": float(curve.max()),
            "iou": iou(pred_mask, mask), "f_curve": curve}


def nanmean(values):
    """Mean over finite values; NaN if none."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


SMOOTH_STD_MAX = 2.0 / 255
"""Local standard deviation (15x15, grey, after a sigma-1 px blur that removes sensor noise)
below which a pixel counts as part of a smooth surface: under 2 grey levels."""


def smooth_pixels(image, std_max=SMOOTH_STD_MAX):
    """Bool (H, W): pixels of smooth surfaces, where blur cannot be seen (local grey std below
    ``std_max``, see SMOOTH_STD_MAX). image: float32 (H, W, 3) [0, 1]."""
    import cv2
    g = cv2.GaussianBlur(cv2.cvtColor(np.asarray(image, np.float32), cv2.COLOR_RGB2GRAY), (0, 0), 1.0)
    mean = cv2.blur(g, (15, 15))
    std = np.sqrt(np.maximum(cv2.blur(g * g, (15, 15)) - mean * mean, 0.0))
    return std < std_max


def smooth_in_focus_pixels(image, sigma_px, in_focus_px=0.5, std_max=SMOOTH_STD_MAX):
    """Bool (H, W): in-focus (true sigma <= ``in_focus_px``) pixels on smooth surfaces, the
    pixels the quickstart model called blurred (issue 11). image: float32 (H, W, 3) [0, 1]."""
    return smooth_pixels(image, std_max) & (np.asarray(sigma_px) <= in_focus_px)
