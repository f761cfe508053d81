"""DMENet loss terms (KR 10-2363049 eqs. 2-7; codeslake/DMENet model.py), as per-example values plus replica-aware scaling.

Every ``*_per_example`` function returns a float32 vector (N,) — the loss of each example of a
(per-replica) batch — so that a ``tf.distribute`` replica can turn it into its share of the
global-batch mean with :func:`replica_mean` (``tf.nn.compute_average_loss``): summing the
replicas' shares (what the optimizer's all-reduce does to gradients) gives exactly the
single-device mean over the global batch.

Conventions follow the authors' ``main.py`` (``codeslake/DMENet``):

* maps are ``sigma / 7`` in [0, 1];
* auxiliary targets are the ground truth downsampled by nearest neighbour with TF1
  ``align_corners=True`` (``DownSampling2dLayer(method=1, align_corners=True)``), one MSE per
  decoder level, all weights 1;
* domain labels: synthetic = 1, real = 0; ``L_D = BCE(syn, 1) + (BCE(real, 0) +
  BCE(unlabelled, 0)) / 2`` and the generator term ``L_adv = (BCE(real, 1) +
  BCE(unlabelled, 1)) / 2``, each BCE averaged over the PatchGAN logits;
* sharpness calibration: sigmoid cross-entropy of S's logits against the binary blur mask
  (1 = blurred);
* content: mean squared difference of C's conv4_4 features of prediction and label.

Not in the authors' code: ``visibility_weights`` lets the MSE terms weigh pixels of smooth
surfaces (where blur cannot be seen, ``metrics.smooth_pixels``) less; their sigma is filled in
from the visible pixels at inference (``tf_defocus.propagation``, ``layers.FillSmooth``).
"""

import tensorflow as tf

from tf_defocus import propagation
from tf_defocus.metrics import SMOOTH_STD_MAX
from tf_defocus.models.blur_estimator import AUX_FACTORS
from tf_defocus.units import SIGMA_MAX_PX


def _f32(x):
    return tf.cast(x, tf.float32)


def _mean_per_example(x):
    """Mean over every axis but the first: (N, ...) -> (N,) float32."""
    x = _f32(x)
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def replica_mean(per_example):
    """This replica's share of the global-batch mean of ``per_example`` (N,) -> scalar.

    ``sum(per_example) / (N * num_replicas_in_sync)``; identical to ``tf.reduce_mean`` on one
    device. Assumes every replica holds the same number of examples (the train CLI checks that
    each domain batch divides by the replica count).
    """
    return tf.nn.compute_average_loss(_f32(per_example))


PIXEL_LOSSES = ("mse", "l1")
"""Pixel losses of the defocus map: ``mse`` (the paper's) or ``l1`` (mean absolute error; its
minimiser is the conditional median, which compresses ambiguous pixels less toward the mean)."""


def pixel_loss_per_example(y_pred, y_true, weights=None, kind="mse"):
    """Pixel loss of (N,H,W,C) maps -> (N,): the mean of ``(y_pred - y_true)^2`` (``mse``) or
    ``|y_pred - y_true|`` (``l1``); with ``weights`` (N,H,W,1) the weighted mean
    ``sum(w * e) / sum(w)`` of each example."""
    if kind not in PIXEL_LOSSES:
        raise ValueError(f"pixel loss must be one of {PIXEL_LOSSES}, got {kind!r}")
    diff = _f32(y_pred) - _f32(y_true)
    err = tf.square(diff) if kind == "mse" else tf.abs(diff)
    if weights is None:
        return _mean_per_example(err)
    weights = _f32(weights)
    return _mean_per_example(weights * err) / tf.maximum(_mean_per_example(weights), 1e-6)


def mse_per_example(y_pred, y_true, weights=None):
    """Pixel MSE of (N,H,W,C) maps -> (N,) (``pixel_loss_per_example`` with ``kind="mse"``)."""
    return pixel_loss_per_example(y_pred, y_true, weights, "mse")


def visibility_weights(image, smooth_weight):
    """(N,H,W,1) loss weights: ``smooth_weight`` on pixels of smooth surfaces (local grey std
    below ``metrics.SMOOTH_STD_MAX``, blur invisible), 1 elsewhere. image (N,H,W,3) [0, 1]."""
    smooth = propagation.local_grey_std(image) < SMOOTH_STD_MAX
    return tf.where(smooth, tf.constant(float(smooth_weight), tf.float32), 1.0)


DEPTH_STEP_PX = 1.0
"""A change of the true sigma by more than this [px] within a disc radius is a depth step
(an occlusion boundary); gentler changes (slanted surfaces) keep the exact label."""


def _erode3(x):
    """3x3 minimum of (N,H,W,C); pixels outside the image do not count."""
    return -tf.nn.max_pool2d(-x, 3, 1, "SAME")


def _dilate3(x):
    """3x3 maximum of (N,H,W,C); pixels outside the image do not count."""
    return tf.nn.max_pool2d(x, 3, 1, "SAME")


MAX_DISC_RADIUS_PX = int(round(2.0 * SIGMA_MAX_PX))


def _disc_radius(sigma):
    """Radius [px] of the disc PSF of each pixel's sigma [px]: round(2 sigma) (half to even, as
    np.rint), at most ``MAX_DISC_RADIUS_PX``."""
    return tf.minimum(tf.round(2.0 * sigma), float(MAX_DISC_RADIUS_PX))


def _sharpest_within_disc(sigma):
    """(N,H,W,1) the smallest sigma [px] within each pixel's (2r+1)^2 square, r its
    ``_disc_radius``: repeated 3x3 minimum pools (a (2r+1)^2 square is r of them)."""
    radius = _disc_radius(sigma)
    lo, eroded = sigma, sigma
    for r in range(1, MAX_DISC_RADIUS_PX + 1):
        eroded = _erode3(eroded)
        lo = tf.where(radius == r, eroded, lo)
    return lo


def hidden_side_weights(sigma_px, weight, step_px=DEPTH_STEP_PX):
    """(N,H,W,1) loss weights: ``weight`` on the pixels that the edge of a surface sharper by
    more than ``step_px`` within their disc radius makes look sharper than they are (the
    ``lo`` of ``depth_step_bounds`` below their sigma: mostly a blurred surface beside an
    occluding edge), 1 elsewhere. sigma_px (N,H,W,1) true sigma [px].

    Why (docs/training/default_model/status.md item 63): the fill carries these pixels'
    readings into the smooth regions around them; with their true sigma the shipped model's
    filled MAE on validation set v2 falls from 0.168 to 0.104."""
    sigma = _f32(sigma_px)
    hidden = _sharpest_within_disc(sigma) < sigma - step_px
    return tf.where(hidden, tf.constant(float(weight), tf.float32), 1.0)


def depth_step_bounds(sigma_px, step_px=DEPTH_STEP_PX):
    """The sigmas [px] a perfect local reader may defend near a depth step: (lo, hi), each of
    sigma_px's shape (N,H,W,1).

    A pixel's disc PSF has radius ``r = round(2 sigma)`` px (``SIGMA_MAX_PX`` at most 14): the
    image there mixes everything within r, so an edge of a sharper surface within r makes it
    look sharper (``lo``: the smallest sigma within the (2r+1)^2 square), and a blurred surface
    whose disc reaches it makes it look blurred (``hi``: the largest sigma of any pixel q with
    the pixel inside q's square). Both are the true sigma unless they differ from it by more
    than ``step_px``. ``lo`` is ``benchmarks/visible_error.py``'s edge oracle. Square
    neighbourhoods come from repeated 3x3 min / max pools (a (2r+1)^2 square is r of them).
    """
    sigma = _f32(sigma_px)
    radius = _disc_radius(sigma)
    lo = _sharpest_within_disc(sigma)
    # hi = max over r of the r-fold 3x3 dilation of (sigma where radius >= r): a pixel q with
    # radius r_q reaches every pixel of its square; accumulated from the largest r down.
    hi = tf.zeros_like(sigma)
    for r in range(MAX_DISC_RADIUS_PX, -1, -1):
        hi = tf.maximum(_dilate3(hi), tf.where(radius >= r, sigma, 0.0))
    lo = tf.where(lo < sigma - step_px, lo, sigma)
    hi = tf.where(hi > sigma + step_px, hi, sigma)
    return lo, hi


def tolerant_target(y_pred, bounds):
    """The point of [lo, hi] nearest to ``y_pred`` (no gradient), all (N,H,W,C): a pixel loss
    against it is zero inside the interval and the distance to it outside."""
    lo, hi = bounds
    return tf.minimum(tf.maximum(tf.stop_gradient(_f32(y_pred)), _f32(lo)), _f32(hi))


def _aligned_indices(n_in, n_out):
    """Source rows of TF1 ``resize_nearest_neighbor(align_corners=True)``: for output i,
    ``roundf(i * float32((n_in - 1) / (n_out - 1)))`` (half away from zero), clipped."""
    scale = tf.cast(n_in - 1, tf.float32) / tf.cast(tf.maximum(n_out - 1, 1), tf.float32)
    idx = tf.floor(tf.cast(tf.range(n_out), tf.float32) * scale + 0.5)
    return tf.minimum(tf.cast(idx, tf.int32), n_in - 1)


def downsample_nearest_aligned(y, factor):
    """(N,H,W,C) -> (N,H/factor,W/factor,C) nearest neighbour, TF1 ``align_corners=True``.

    Output pixel i takes source ``round(i * (H - 1) / (H/factor - 1))``: the sampling the authors
    used for their auxiliary targets (it differs from TF2 ``tf.image.resize(..., "nearest")``).
    Implemented with gathers (XLA-compatible). H and W must be multiples of ``factor``.
    """
    if factor == 1:
        return y
    y = _f32(y)
    shape = tf.shape(y)
    h, w = shape[1], shape[2]
    y = tf.gather(y, _aligned_indices(h, h // factor), axis=1)
    return tf.gather(y, _aligned_indices(w, w // factor), axis=2)


def aux_per_example(outputs, y_true, weights=None, kind="mse", bounds=None):
    """Sum over the five side outputs of their pixel loss (``kind``, see
    ``pixel_loss_per_example``) to the downsampled ground truth -> (N,).

    outputs: B's output dict with ``aux_16`` .. ``aux_1``; y_true (N,H,W,1) sigma/7;
    weights: optional (N,H,W,1) pixel weights, downsampled like the targets; bounds: optional
    (lo, hi) sigma/7 (``depth_step_bounds``), downsampled alike: each level's target is then
    the ``tolerant_target`` of its output.
    """
    total = None
    for name, factor in AUX_FACTORS.items():
        w = None if weights is None else downsample_nearest_aligned(weights, factor)
        if bounds is None:
            target = downsample_nearest_aligned(y_true, factor)
        else:
            target = tolerant_target(outputs[name], [downsample_nearest_aligned(b, factor)
                                                     for b in bounds])
        term = pixel_loss_per_example(outputs[name], target, w, kind)
        total = term if total is None else total + term
    return total


def bce_logits_per_example(logits, labels):
    """Sigmoid cross-entropy averaged over every non-batch element -> (N,).

    labels: tensor of the logits' shape, or a Python float (constant domain label).
    """
    logits = _f32(logits)
    if isinstance(labels, (int, float)):
        labels = tf.fill(tf.shape(logits), tf.constant(float(labels), tf.float32))
    return _mean_per_example(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=_f32(labels), logits=logits))


SYNTHETIC_LABEL = 1.0   # discriminator target of synthetic features (authors: ones_like)
REAL_LABEL = 0.0        # discriminator target of real features (authors: zeros_like)


def content_per_example(content_net, y_pred, y_true):
    """Perceptual loss: per-example MSE of C's features of prediction vs label -> (N,).

    content_net: ``ContentLoss`` (frozen VGG19); both maps (N,H,W,1) go through it in one call.
    """
    n = tf.shape(y_pred)[0]
    both = tf.concat([_f32(y_pred), _f32(y_true)], axis=0)
    feats = _f32(content_net(both, training=False))
    return mse_per_example(feats[:n], feats[n:])


def domain_accuracy_per_example(logits, label):
    """Fraction of PatchGAN cells D classifies as ``label`` (1 synthetic / 0 real) -> (N,)."""
    pred = tf.cast(_f32(logits) > 0.0, tf.float32)
    return _mean_per_example(tf.cast(tf.equal(pred, float(label)), tf.float32))
