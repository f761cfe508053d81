"""Training-free depth-of-field (DoF) weight map of the KCI 2020 summer-conference paper on DoF regions.

The paper's eqs. 1-3 (symbols lost in the text; this is the reconstruction this package uses):

1. cross-correlation with a Gaussian mask ``G`` of size ``k`` (the paper uses k = 15):
   ``I_s(x) = sum_u G(u) I(x + u)``, done per RGB channel;
2. per pixel, the RGB difference as a 3-vector and its length:
   ``d(x) = || I(x) - I_s(x) ||_2``;
3. aggregated over the same Gaussian mask: ``W(x) = sum_u G(u) d(x + u)``.

Large ``W`` = detail that the smoothing removed = in focus (white); small ``W`` = already smooth
= out of focus (black). Both filters are separable Gaussians done with OpenCV; image borders are
mirrored (``cv2.BORDER_REFLECT``: ``fedcba|abcdef|fedcba``), so padding an image by mirroring
and cropping the map back gives the same map.

Normalisation to [0, 1] (``normalization=``):

* ``"percentile"`` (default, for display / region of interest): ``W / max(P, min_scale)``
  clipped to [0, 1], where ``P`` is the ``percentile``-th percentile (default 99) of ``W`` over
  the interior of the image (pixels at least one mask radius away from the border, whose
  values do not depend on the border extrapolation; the whole image if it is too small).
  ``min_scale`` keeps a flat or entirely blurred photo dark instead of amplifying its noise.
* ``"fixed"``: ``W / scale`` clipped to [0, 1] with an image-independent ``scale``. The map at
  a pixel then depends only on a (2k-1)^2 neighbourhood, which is what a patch-trained network
  can learn; DoFNet's training labels use it (``dof_training_target``).
* ``"none"``: raw ``W`` in RGB-distance units (image in [0, 1], so ``W`` is in [0, sqrt(3)]).
"""

import numpy as np
import cv2

from tf_defocus.imageio import to_rgb_float

DEFAULT_MASK_SIZE = 15
"""The paper's mask size (eq. 3)."""

FIXED_SCALE = 0.2
"""``normalization="fixed"``: raw ``W`` (RGB distance, image in [0, 1]) that maps to 1.

Measured with mask 15: on the built-in procedural scenes (``synthesize``, 192 px) the median
raw ``W`` of in-focus pixels ranges 0.02-0.20 between images and of blurred pixels
0.006-0.11; on high-contrast random discs it is 0.09 sharp, 0.04 after a Gaussian blur of
sigma 2 px and 0.014 after 5 px. 0.2 keeps sharp texture high without saturating most of it.
"""

MIN_PERCENTILE_SCALE = 0.01
"""``normalization="percentile"``: floor of the divisor (raw ``W`` units), so that a flat or
uniformly blurred image is not stretched to full white."""

RECOVERY_EPS = 3.0 * 0.04 ** 2
"""Tikhonov term of ``recover_weight_map``: sum_c I_c^2 of a grey of 0.04 (about 10/255)."""

TARGETS = ("weight", "weighted_image")
NORMALIZATIONS = ("percentile", "fixed", "none")


def default_sigma(mask_size):
    """OpenCV's Gaussian sigma for a ``mask_size`` kernel: 0.3 * ((k - 1) / 2 - 1) + 0.8 [px].

    (``cv2.getGaussianKernel`` documentation; 2.6 px for k = 15.)
    """
    return 0.3 * ((mask_size - 1) * 0.5 - 1.0) + 0.8


def check_mask_size(mask_size):
    """Validate ``mask_size``: an odd integer >= 3. Returns it as int."""
    if isinstance(mask_size, bool) or not isinstance(mask_size, (int, np.integer)):
        raise ValueError(f"mask_size must be an odd integer >= 3, got {mask_size!r}")
    mask_size = int(mask_size)
    if mask_size < 3 or mask_size % 2 == 0:
        raise ValueError(f"mask_size must be an odd integer >= 3 (the Gaussian mask has a centre "
                         f"pixel), got {mask_size}")
    return mask_size


def _check_sigma(sigma, mask_size):
    if sigma is None:
        return default_sigma(mask_size)
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma}")
    return sigma


def _gaussian(array, mask_size, sigma):
    """Separable Gaussian cross-correlation (the mask is symmetric, so = convolution)."""
    return cv2.GaussianBlur(array, (mask_size, mask_size), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT)


def raw_weight_map(image, mask_size=DEFAULT_MASK_SIZE, sigma=None):
    """Un-normalised DoF weight ``W`` (eqs. 1-3), float32 (H, W), RGB-distance units.

    image: any array accepted by ``tf_defocus.imageio.to_rgb_float`` (HxW gray, HxWx3 RGB,
      HxWx4 RGBA; uint8, uint16 or float in [0, 1]).
    mask_size: odd Gaussian mask size >= 3 [px]; sigma: Gaussian sigma [px] (default: OpenCV's
      rule for ``mask_size``, 2.6 px for 15).
    """
    mask_size = check_mask_size(mask_size)
    sigma = _check_sigma(sigma, mask_size)
    rgb = to_rgb_float(image)
    diff = rgb - _gaussian(rgb, mask_size, sigma)
    d = np.sqrt(np.einsum("hwc,hwc->hw", diff, diff, dtype=np.float32))
    return _gaussian(d, mask_size, sigma)


def normalize_weight(raw, normalization="percentile", percentile=99.0, scale=FIXED_SCALE,
                     mask_size=DEFAULT_MASK_SIZE):
    """Map a raw ``W`` (H, W) to [0, 1] as described in the module docstring. float32 (H, W)."""
    raw = np.asarray(raw, np.float32)
    if normalization == "none":
        return raw
    if normalization == "fixed":
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        divisor = float(scale)
    elif normalization == "percentile":
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        r = mask_size // 2
        h, w = raw.shape
        interior = raw[r:h - r, r:w - r] if h > 4 * r and w > 4 * r else raw
        divisor = max(float(np.percentile(interior, percentile)), MIN_PERCENTILE_SCALE)
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return np.clip(raw / np.float32(divisor), 0.0, 1.0).astype(np.float32)


def dof_weight_map(image, mask_size=DEFAULT_MASK_SIZE, sigma=None, normalization="percentile",
                   percentile=99.0, scale=FIXED_SCALE):
    """DoF weight map of one image: float32 (H, W) in [0, 1], 1 (white) = in focus.

    No training or model needed; about 2 separable 15-tap Gaussian passes per pixel.
    See the module docstring for the method and the ``normalization`` choices.
    Raises ValueError for a bad ``mask_size`` (even or < 3) and ``ImageReadError`` (a
    ValueError) for an array that is not an image.
    """
    mask_size = check_mask_size(mask_size)
    raw = raw_weight_map(image, mask_size, sigma)
    return normalize_weight(raw, normalization, percentile, scale, mask_size)


def dof_training_target(image, target="weight", mask_size=DEFAULT_MASK_SIZE, sigma=None,
                        scale=FIXED_SCALE):
    """Training label of DoFNet for one image.

    The weight map uses the image-independent ``"fixed"`` normalisation (so a patch's label
    depends only on its neighbourhood) and, as the paper does "to raise the convergence
    rate", is smoothed once more with the same Gaussian mask: ``W_s = G * W`` in [0, 1].

    target="weight": ``W_s``, float32 (H, W, 1).
    target="weighted_image": the paper's ``W' = W x I``, here ``W_s * I`` per RGB channel,
      float32 (H, W, 3) in [0, 1]. ``recover_weight_map`` turns it back into ``W_s``.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    mask_size = check_mask_size(mask_size)
    sig = _check_sigma(sigma, mask_size)
    rgb = to_rgb_float(image)
    w = normalize_weight(raw_weight_map(rgb, mask_size, sig), "fixed", scale=scale)
    w_s = np.clip(_gaussian(w, mask_size, sig), 0.0, 1.0)[..., None]
    if target == "weight":
        return w_s.astype(np.float32)
    return (w_s * rgb).astype(np.float32)


def recover_weight_map(prediction, image, target="weight", eps=RECOVERY_EPS):
    """Focus weight (H, W) in [0, 1] from a DoFNet output and its input image.

    prediction: (H, W, C) or (H, W) output of the network (C = 1 for ``weight``, 3 for
      ``weighted_image``); image: the network input, any ``to_rgb_float`` array (H, W, ...).

    For ``weighted_image`` the prediction models ``W'_c = W * I_c`` for the three channels;
    the least-squares W per pixel with a small Tikhonov term is

        W = sum_c(W'_c * I_c) / (sum_c I_c^2 + eps),

    exact up to the factor ``sum I^2 / (sum I^2 + eps)`` on a clean label, and shrinking
    towards 0 (instead of amplifying noise) where the pixel is nearly black and ``W'`` carries
    no information about ``W``. ``DoFNet.inference_model`` does the same with TF ops.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    pred = np.asarray(prediction, np.float32)
    if pred.ndim == 2:
        pred = pred[..., None]
    if target == "weight":
        if pred.shape[-1] != 1:
            raise ValueError(f"target 'weight' expects a 1-channel prediction, got shape {pred.shape}")
        return np.clip(pred[..., 0], 0.0, 1.0)
    rgb = to_rgb_float(image)
    if pred.shape != rgb.shape:
        raise ValueError(f"target 'weighted_image' expects a prediction of the image's shape "
                         f"{rgb.shape}, got {pred.shape}")
    num = np.einsum("hwc,hwc->hw", pred, rgb, dtype=np.float32)
    den = np.einsum("hwc,hwc->hw", rgb, rgb, dtype=np.float32) + np.float32(eps)
    return np.clip(num / den, 0.0, 1.0)
