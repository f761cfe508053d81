"""Classical (training-free) blur-detection baselines: LBP sharpness and HiFST.

Both map an image of any size to a per-pixel focus score in [0, 1] (1 = sharp, 0 = blurred)
with **no blur unit**: neither estimates sigma. Behind the Estimator interface they use the
``dof_weight`` kind (``artifacts.KIND_DOF_WEIGHT``: "focus weight in [0, 1], 1 = in focus, no
blur unit"), so predict / evaluate treat them like the DoF weight map (blur score =
1 - focus; ``predict`` and ``--outputs=sigma`` are refused).

* ``lbp_sharpness``: X. Yi and M. Eramian, "LBP-based segmentation of defocus blur", IEEE
  Trans. Image Processing 25(4), 2016. Rotation-invariant uniform LBP_{8,1}^{riu2} of the
  grayscale image in [0, 1] with the thresholded sign S(|g_p - g_c| >= T_LBP), T_LBP = 0.016;
  the sharpness metric m_LBP of a local window is the fraction of its pixels whose code is one
  of the "sharp" patterns 6, 7, 8, 9 (9 = every non-uniform pattern); windows 11, 15, 21 px.
* ``hifst_sharpness``: S. A. Golestaneh and L. J. Karam, "Spatially-varying blur detection
  based on multiscale fused and sorted transform coefficients of gradient magnitudes",
  CVPR 2017 (arXiv:1703.07478). Gradient magnitude, DCT of the M_r x M_r patch around a pixel
  at M_r = 2^(2+r) - 1 = 7, 15, 31, 63, the high-frequency coefficients of every scale fused
  and sorted by magnitude into "layers", each layer normalised over the image, max-pooled over
  the first sum(M_r) layers, weighted by its local entropy, smoothed with the domain-transform
  recursive filter (E. S. L. Gastal and M. M. Oliveira, "Domain transform for edge-aware image
  and video processing", SIGGRAPH 2011) and normalised to [0, 1].

Deviations from the papers (also in the function docstrings):

* LBP: the paper turns the three per-scale maps into a segmentation (alpha-matting
  initialisation and multi-scale inference); here the three maps are simply averaged, giving a
  continuous score. The box sums over the windows are OpenCV box filters (running sums, the
  same O(1)-per-pixel cost as the paper's integral images). Image borders are mirrored.
* HiFST: the per-pixel DCTs are computed on a grid of every ``stride``-th pixel (default 2)
  and the max-pooled map is bilinearly upsampled before the entropy weighting and the
  smoothing, which run at full resolution. The paper computes every pixel (stride 1). The
  entropy window (7 px), the light pre-smoothing (Gaussian sigma 0.5 px) and the filter
  settings (sigma_s = 15 px, sigma_r = 0.25, 3 iterations) are not taken from the paper (its
  exact numbers could not be checked here); they are the defaults of a public Python
  reimplementation (Utkarsh-Deshmukh/Spatially-Varying-Blur-Detection-python), which was read
  only to confirm the order of the steps. Borders are mirrored.

All code here is written from the papers' descriptions; no third-party code is copied.
"""

import math

import cv2
import numpy as np
import threadpoolctl
from numpy.lib.stride_tricks import sliding_window_view

from tf_defocus import artifacts
from tf_defocus.imageio import to_rgb_float

# ----------------------------------------------------------------------------- LBP (Yi & Eramian)

LBP_THRESHOLD = 0.016
"""T_LBP on |g_p - g_c| for intensities in [0, 1] (Yi & Eramian 2016)."""
LBP_WINDOWS = (11, 15, 21)
"""Side [px] of the square windows over which m_LBP is measured (the paper's three scales)."""
LBP_SHARP_CODES = (6, 7, 8, 9)
"""LBP_{8,1}^{riu2} codes counted as sharp (eq. of m_LBP: sum over i = 6..9)."""
LBP_NEIGHBOURS = 8
LBP_MIN_SIDE = 3
"""Smallest image side [px]: one pixel with all 8 neighbours inside the image."""

# ----------------------------------------------------------------------------- HiFST (Golestaneh & Karam)

HIFST_SCALES = (7, 15, 31, 63)
"""DCT patch sides M_r = 2^(2+r) - 1, r = 1..4 [px]."""
HIFST_STRIDE = 2
"""Grid step [px] at which the per-pixel DCTs are computed (the paper: 1)."""
HIFST_PRESMOOTH_SIGMA = 0.5
"""Gaussian sigma [px] applied to the grayscale image before the gradient (noise)."""
HIFST_ENTROPY_WINDOW = 7
"""Side [px] of the local-entropy window (256 grey levels of the max-pooled map)."""
HIFST_DT_SIGMA_S = 15.0
"""Domain-transform filter spatial sigma [px]."""
HIFST_DT_SIGMA_R = 0.25
"""Domain-transform filter range sigma (guide intensities in [0, 1])."""
HIFST_DT_ITERATIONS = 3
HIFST_MAX_LAYER_BYTES = 512 << 20
"""Cap on the layer stack (float32, ``num_layers`` values per grid point): larger images get a
larger grid step (``effective_stride``); 512 MB holds stride 2 up to about 4.5 megapixels."""
HIFST_MIN_SIDE = HIFST_SCALES[0]
"""Smallest image side [px]: the smallest DCT patch."""


def to_gray(image):
    """Any image (HxW, HxWx1, HxWx3 RGB, HxWx4; uint8, uint16, bool or float in [0, 1]) ->
    float32 (H, W) luma in [0, 1] (ITU-R BT.601 weights 0.299, 0.587, 0.114, as MATLAB's
    ``rgb2gray``). Never modifies the input."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return to_rgb_float(a, "image")[..., 0].copy()
    rgb = to_rgb_float(a, "image")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _check_size(gray, min_side, method):
    h, w = gray.shape
    if min(h, w) < min_side:
        raise ValueError(f"{method}: image of {w}x{h} px is too small; it needs at least "
                         f"{min_side}x{min_side} px")


# ----------------------------------------------------------------------------- LBP

def _shifted(padded, dy, dx, h, w, pad):
    """View of ``padded`` (the image mirrored by ``pad`` px) shifted by integer (dy, dx)."""
    return padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]


def _neighbour(padded, dy, dx, h, w, pad):
    """Grey value at offset (dy, dx) (|d| <= pad) of every pixel; bilinear between pixels."""
    ry, rx = round(dy), round(dx)
    if abs(dy - ry) < 1e-6 and abs(dx - rx) < 1e-6:
        return _shifted(padded, ry, rx, h, w, pad)
    y0, x0 = math.floor(dy), math.floor(dx)
    fy, fx = np.float32(dy - y0), np.float32(dx - x0)
    one = np.float32(1.0)
    return ((one - fy) * (one - fx) * _shifted(padded, y0, x0, h, w, pad)
            + (one - fy) * fx * _shifted(padded, y0, x0 + 1, h, w, pad)
            + fy * (one - fx) * _shifted(padded, y0 + 1, x0, h, w, pad)
            + fy * fx * _shifted(padded, y0 + 1, x0 + 1, h, w, pad))


def lbp_codes(gray, threshold=LBP_THRESHOLD):
    """Rotation-invariant uniform LBP_{8,1}^{riu2} codes of a grayscale image, uint8 (H, W).

    gray: float (H, W) in [0, 1]. Neighbour p (p = 0..7) sits at radius 1, angle 2 pi p / 8
    (diagonals bilinearly interpolated, image borders mirrored); its bit is
    ``|g_p - g_c| >= threshold`` (Yi & Eramian's thresholded LBP). Code = number of set bits if
    the circular bit string has at most 2 transitions (uniform pattern, codes 0..8), else 9.
    """
    g = np.asarray(gray, np.float32)
    if g.ndim != 2:
        raise ValueError(f"lbp_codes: expected a 2-D grayscale image, got shape {g.shape}")
    h, w = g.shape
    padded = np.pad(g, 1, mode="symmetric")
    thr = np.float32(threshold)
    bits = []
    for p in range(LBP_NEIGHBOURS):
        theta = 2.0 * math.pi * p / LBP_NEIGHBOURS
        n = _neighbour(padded, -math.sin(theta), math.cos(theta), h, w, 1)
        bits.append(np.abs(n - g) >= thr)
    ones = np.zeros((h, w), np.uint8)
    transitions = np.zeros((h, w), np.uint8)
    for p in range(LBP_NEIGHBOURS):
        ones += bits[p]
        transitions += bits[p] != bits[(p + 1) % LBP_NEIGHBOURS]
    return np.where(transitions <= 2, ones, np.uint8(LBP_NEIGHBOURS + 1)).astype(np.uint8)


def _check_windows(windows):
    windows = tuple(int(k) for k in windows)
    if not windows or any(k < 1 or k % 2 == 0 for k in windows):
        raise ValueError(f"windows must be odd positive sizes [px], got {windows}")
    return windows


def lbp_sharpness(image, threshold=LBP_THRESHOLD, windows=LBP_WINDOWS):
    """LBP sharpness map of Yi & Eramian (TIP 2016): float32 (H, W) in [0, 1], 1 = sharp.

    image: any size of at least 3x3 px, HxW / HxWx1 / HxWx3 RGB / HxWx4, uint8, uint16 or
    float in [0, 1] (``to_gray``); not modified. For each window size k in ``windows`` [px],
    m_LBP(x) = fraction of the k x k pixels around x whose LBP_{8,1}^{riu2} code is 6..9
    (``lbp_codes``); the per-scale maps are averaged (the paper instead fuses them by
    matting and multi-scale inference into a segmentation). Window sums are box filters
    (running sums, O(1) per pixel like the paper's integral images) with mirrored borders.
    """
    gray = to_gray(image)
    _check_size(gray, LBP_MIN_SIDE, "lbp")
    windows = _check_windows(windows)
    sharp = (lbp_codes(gray, threshold) >= LBP_SHARP_CODES[0]).astype(np.float32)
    out = np.zeros_like(sharp)
    for k in windows:
        out += cv2.boxFilter(sharp, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)
    out *= np.float32(1.0 / len(windows))
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------- HiFST

def dct_matrix(n):
    """Orthonormal DCT-II matrix (n, n): C = D @ X @ D.T is MATLAB's ``dct2`` of an n x n X."""
    k = np.arange(n, dtype=np.float64)[:, None]
    i = np.arange(n, dtype=np.float64)[None, :]
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2.0 * i + 1.0) * k / (2.0 * n))
    d[0] /= np.sqrt(2.0)
    return d


def high_frequency_index(n):
    """Flat indices (into an n x n DCT block) of the high-frequency band: k + l >= n - 1 (the
    anti-diagonal and everything below it, n (n + 1) / 2 coefficients), as in HiFST."""
    k, l = np.indices((n, n))
    return np.flatnonzero((k + l).ravel() >= n - 1)


def gradient_magnitude(gray, presmooth_sigma=HIFST_PRESMOOTH_SIGMA):
    """Sobel gradient magnitude of a grayscale image (float32 (H, W)), mirrored borders,
    after a Gaussian pre-smoothing of ``presmooth_sigma`` px (0 = none)."""
    g = np.asarray(gray, np.float32)
    if presmooth_sigma:
        g = cv2.GaussianBlur(g, (0, 0), presmooth_sigma, borderType=cv2.BORDER_REFLECT)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    # NumPy, not cv2.magnitude: OpenCV's SIMD path rounds differently with the buffer's
    # alignment, which made repeated runs differ in the last bit
    return np.sqrt(gx * gx + gy * gy)


def grid_positions(length, stride):
    """Grid coordinates along an axis of ``length`` px: 0, stride, 2 stride, ... and always the
    last pixel (so bilinear upsampling never extrapolates)."""
    pos = np.arange(0, length, stride, dtype=np.int64)
    if pos[-1] != length - 1:
        pos = np.r_[pos, length - 1]
    return pos


def sorted_hf_layers(grad, ys, xs, scales=HIFST_SCALES, num_layers=None):
    """HiFST's fused and sorted high-frequency coefficients at the grid points (ys x xs).

    For each grid point and each scale M in ``scales``: |DCT| of the M x M patch of ``grad``
    centred there (borders mirrored), its high-frequency band (``high_frequency_index``); the
    bands of all scales are pooled and the ``num_layers`` smallest values (default sum(scales))
    returned sorted ascending. Returns float32 (len(ys), len(xs), num_layers): entry t is the
    grid sample of layer L_{t+1}.

    One grid row at a time: the vertical 1-D DCT of the M image rows around it, then for every
    vertical frequency k only the horizontal frequencies l >= M - 1 - k of the band (half the
    work of full 2-D DCTs), written straight into the pooled buffer.
    """
    scales = tuple(int(m) for m in scales)
    if not scales or any(m < 1 or m % 2 == 0 for m in scales):
        raise ValueError(f"scales must be odd patch sizes [px], got {scales}")
    total = sum(m * (m + 1) // 2 for m in scales)
    num_layers = sum(scales) if num_layers is None else int(num_layers)
    if not 1 <= num_layers <= total:
        raise ValueError(f"num_layers must be in [1, {total}], got {num_layers}")
    big = max(scales) // 2
    padded = np.pad(np.asarray(grad, np.float32), big, mode="symmetric")
    ys = np.asarray(ys, np.int64)
    xs = np.asarray(xs, np.int64)
    nx = len(xs)
    mats = {m: dct_matrix(m).astype(np.float32) for m in scales}
    out = np.empty((len(ys), nx, num_layers), np.float32)
    pooled = np.empty((nx, total), np.float32)
    for iy, y in enumerate(ys):
        pos = 0
        for m in scales:
            d = mats[m]
            off = big - m // 2
            v = d @ padded[y + off:y + off + m]                  # (k, padded width)
            windows = sliding_window_view(v, m, axis=1)          # (k, x, j), a view
            cols = xs + off
            for k in range(m):
                # C[k, l] = sum_j v[k, x + j] D[l, j] for the band's l >= m - 1 - k
                np.matmul(windows[k, cols], d[m - 1 - k:].T, out=pooled[:, pos:pos + k + 1])
                pos += k + 1
        np.abs(pooled, out=pooled)
        # non-negative float32 order = int32 order of the same bits (faster selection)
        pooled.view(np.int32).partition(num_layers - 1, axis=1)
        out[iy] = np.sort(pooled[:, :num_layers], axis=1)
    return out


def _linear_weights(pos, length):
    """Per output pixel 0..length-1: left grid index and weight of the right neighbour."""
    x = np.arange(length, dtype=np.float64)
    if len(pos) == 1:
        return np.zeros(length, np.int64), np.zeros(length, np.float32)
    i = np.clip(np.searchsorted(pos, x, side="right") - 1, 0, len(pos) - 2)
    w = (x - pos[i]) / (pos[i + 1] - pos[i])
    return i, w.astype(np.float32)


def upsample_grid(values, ys, xs, height, width):
    """Bilinear interpolation of a map sampled at grid rows ``ys`` and columns ``xs`` (both
    containing the first and last pixel) to (height, width), float32."""
    v = np.asarray(values, np.float32)
    ix, wx = _linear_weights(np.asarray(xs), width)
    iy, wy = _linear_weights(np.asarray(ys), height)
    if v.shape[1] > 1:
        v = v[:, ix] * (1.0 - wx) + v[:, ix + 1] * wx
    else:
        v = np.repeat(v, width, axis=1)
    if v.shape[0] > 1:
        v = v[iy] * (1.0 - wy)[:, None] + v[iy + 1] * wy[:, None]
    else:
        v = np.repeat(v, height, axis=0)
    return np.ascontiguousarray(v, np.float32)


def local_entropy(values, window=HIFST_ENTROPY_WINDOW, levels=256):
    """Shannon entropy [bits] of the grey-level histogram in the ``window`` x ``window``
    neighbourhood of every pixel (borders mirrored); ``values`` in [0, 1] are quantised to
    ``levels`` levels. float32 (H, W) in [0, log2(min(levels, window^2))].

    H = log2(N) - (1/N) sum_b c_b log2 c_b over the bin counts c_b of the N = window^2 pixels;
    one box filter per grey level present.
    """
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd size [px], got {window}")
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in [2, 256], got {levels}")
    q = np.round(np.clip(np.asarray(values, np.float32), 0.0, 1.0) * (levels - 1)).astype(np.uint8)
    n = window * window
    table = np.zeros((1, 256), np.float32)
    c = np.arange(1, min(n, 255) + 1, dtype=np.float64)
    table[0, 1:len(c) + 1] = c * np.log2(c)
    acc = np.zeros(q.shape, np.float32)
    for b in np.flatnonzero(np.bincount(q.ravel(), minlength=256)):
        mask = (q == b).view(np.uint8)
        counts = cv2.boxFilter(mask, -1, (window, window), normalize=False,
                               borderType=cv2.BORDER_REFLECT)     # <= 49 for 7x7: fits uint8
        acc += cv2.LUT(counts, table)
    return np.maximum(np.float32(math.log2(n)) - acc / np.float32(n), 0.0)


def _rf_rows(f, v):
    """In place: recursive filter along axis 0 (rows are the signal samples), forward then
    backward; v[i] is the feedback of sample i from sample i - 1."""
    for i in range(1, f.shape[0]):
        f[i] += v[i] * (f[i - 1] - f[i])
    for i in range(f.shape[0] - 2, -1, -1):
        f[i] += v[i + 1] * (f[i + 1] - f[i])


def domain_transform_filter(values, guide, sigma_s=HIFST_DT_SIGMA_S, sigma_r=HIFST_DT_SIGMA_R,
                            iterations=HIFST_DT_ITERATIONS):
    """Edge-preserving smoothing of ``values`` (H, W) guided by ``guide`` (H, W) or (H, W, C):
    the recursive filter of Gastal & Oliveira (SIGGRAPH 2011).

    Domain transform derivative ct' = 1 + sigma_s / sigma_r * sum_c |I'_c|; iteration i of N
    filters rows then columns with sigma_H_i = sigma_s sqrt(3) 2^(N - i) / sqrt(4^N - 1) (their
    eq. 14), feedback a = exp(-sqrt(2) / sigma_H_i) raised to the domain distance (their eq. 21),
    causal then anticausal. Returns float32 (H, W).
    """
    f = np.array(values, np.float32)
    gd = np.asarray(guide, np.float32)
    if gd.ndim == 2:
        gd = gd[..., None]
    if gd.shape[:2] != f.shape:
        raise ValueError(f"guide {gd.shape[:2]} does not match values {f.shape}")
    ratio = sigma_s / sigma_r
    dx = np.zeros(f.shape, np.float32)
    dy = np.zeros(f.shape, np.float32)
    dx[:, 1:] = np.abs(np.diff(gd, axis=1)).sum(axis=-1)
    dy[1:, :] = np.abs(np.diff(gd, axis=0)).sum(axis=-1)
    ctx = np.float32(1.0) + np.float32(ratio) * dx
    cty = np.float32(1.0) + np.float32(ratio) * dy
    ft = np.ascontiguousarray(f.T)          # horizontal passes walk the contiguous axis
    ctx_t = np.ascontiguousarray(ctx.T)
    n = int(iterations)
    for i in range(n):
        sigma_h = sigma_s * math.sqrt(3.0) * 2.0 ** (n - (i + 1)) / math.sqrt(4.0 ** n - 1.0)
        a = np.float32(math.exp(-math.sqrt(2.0) / sigma_h))
        _rf_rows(ft, a ** ctx_t)
        f = np.ascontiguousarray(ft.T)
        _rf_rows(f, a ** cty)
        ft = np.ascontiguousarray(f.T)
    return np.ascontiguousarray(ft.T, np.float32)


def _minmax(x):
    lo, hi = float(x.min()), float(x.max())
    if not hi - lo > 1e-12:
        return np.zeros(x.shape, np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def hifst_sharpness(image, stride=HIFST_STRIDE, scales=HIFST_SCALES, num_layers=None,
                    entropy_window=HIFST_ENTROPY_WINDOW, sigma_s=HIFST_DT_SIGMA_S,
                    sigma_r=HIFST_DT_SIGMA_R, iterations=HIFST_DT_ITERATIONS):
    """HiFST blur map of Golestaneh & Karam (CVPR 2017) as a sharpness score: float32 (H, W)
    in [0, 1], 1 = sharp.

    image: any size of at least 7x7 px, HxW / HxWx3 / ..., uint8, uint16 or float in [0, 1]
    (``to_gray``); not modified. Steps:

    1. grayscale, Gaussian pre-smoothing (sigma 0.5 px), Sobel gradient magnitude;
    2. at every ``stride``-th pixel (and the last row / column): the high-frequency |DCT|
       coefficients (k + l >= M - 1) of the M x M gradient patches, M in ``scales`` (7, 15, 31,
       63), fused over the scales and sorted ascending: layers L_1 .. L_n
       (``sorted_hf_layers``); the first ``num_layers`` = sum(M) = 116 are kept;
    3. every layer min-max normalised over the image, then the maximum over the kept layers;
    4. that map is bilinearly upsampled to the image size (**approximation**: the paper has
       stride 1, i.e. one DCT per pixel and scale; stride 2 costs 1/4 of that, stride 4 1/16),
       multiplied by its local entropy (``entropy_window`` px, 256 levels);
    5. smoothed by the domain-transform recursive filter (``domain_transform_filter``) guided
       by the pre-smoothed grayscale image, then min-max normalised to [0, 1] (a flat image
       gives all zeros).

    Memory: the layer stack holds 4 * num_layers bytes per grid point (116 MB per megapixel at
    stride 2); above ``HIFST_MAX_LAYER_BYTES`` (about 4.5 MP at stride 2) the stride is raised
    (``effective_stride``), so large photos get a coarser grid rather than running out of memory.
    """
    stride = int(stride)
    if stride < 1:
        raise ValueError(f"stride must be a positive number of pixels, got {stride}")
    gray = to_gray(image)
    _check_size(gray, HIFST_MIN_SIDE, "hifst")
    h, w = gray.shape
    scales = tuple(int(m) for m in scales)
    n_layers = sum(scales) if num_layers is None else int(num_layers)
    stride = effective_stride(h, w, stride, n_layers)
    smooth = cv2.GaussianBlur(gray, (0, 0), HIFST_PRESMOOTH_SIGMA, borderType=cv2.BORDER_REFLECT)
    grad = gradient_magnitude(smooth, presmooth_sigma=0)
    ys, xs = grid_positions(h, stride), grid_positions(w, stride)
    # Thousands of small matrix products: OpenBLAS' thread pool spin-waits on them (84 s instead
    # of 1.5 s for a 640x480 image on a busy 2-core machine), so run them on one thread.
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        layers = sorted_hf_layers(grad, ys, xs, scales, n_layers)
    # every layer min-max normalised over the image (a constant layer becomes 0), in place
    lo = layers.min(axis=(0, 1))
    span = layers.max(axis=(0, 1)) - lo
    layers -= lo
    layers /= np.where(span > 1e-12, span, np.float32(1.0))
    pooled = layers.max(axis=-1)
    del layers
    fused = upsample_grid(pooled, ys, xs, h, w)
    weighted = fused * local_entropy(fused, entropy_window)
    smoothed = domain_transform_filter(weighted, smooth, sigma_s, sigma_r, iterations)
    return np.clip(_minmax(smoothed), 0.0, 1.0)


def effective_stride(height, width, stride, num_layers=sum(HIFST_SCALES),
                     max_bytes=HIFST_MAX_LAYER_BYTES):
    """``stride``, raised until the float32 layer stack of an (height, width) image fits in
    ``max_bytes`` (``hifst_sharpness`` keeps every grid point's ``num_layers`` values for the
    per-layer normalisation)."""
    s = max(1, int(stride))
    while (math.ceil(height / s) + 1) * (math.ceil(width / s) + 1) * num_layers * 4 > max_bytes:
        s += 1
    return s


# ----------------------------------------------------------------------------- Estimator wrappers

class ClassicalMethod:
    """A training-free focus score behind the Estimator interface (``kind``, ``predict``,
    ``predict_native``, ``predict_focus``): kind ``dof_weight`` (focus in [0, 1], 1 = sharp,
    no blur unit), so ``predict`` (sigma) refuses."""
    kind = artifacts.KIND_DOF_WEIGHT
    name = ""
    info = None
    fixed_size = None
    tile_size = 0
    tile_overlap = 0

    @property
    def path(self):
        return self.name

    def score(self, image):
        raise NotImplementedError

    def predict(self, image, progress=None):
        raise ValueError(f"the {self.name} method gives a sharpness score with no blur unit; there "
                         f"is no sigma map (use predict_focus)")

    def predict_native(self, image, progress=None):
        """Focus score float32 (H, W) in [0, 1] (1 = sharp)."""
        out = np.asarray(self.score(image), np.float32)
        if progress:
            progress(1, 1)
        return out

    def predict_focus(self, image, progress=None):
        return np.clip(self.predict_native(image, progress), 0.0, 1.0)


class LBPMethod(ClassicalMethod):
    """``lbp_sharpness`` (Yi & Eramian, TIP 2016) as a method."""
    name = "lbp"

    def __init__(self, threshold=LBP_THRESHOLD, windows=LBP_WINDOWS):
        if not threshold >= 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.threshold = float(threshold)
        self.windows = _check_windows(windows)

    def score(self, image):
        return lbp_sharpness(image, self.threshold, self.windows)


class HiFSTMethod(ClassicalMethod):
    """``hifst_sharpness`` (Golestaneh & Karam, CVPR 2017) as a method."""
    name = "hifst"

    def __init__(self, stride=HIFST_STRIDE):
        if isinstance(stride, bool) or int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a positive integer [px], got {stride!r}")
        self.stride = int(stride)

    def score(self, image):
        return hifst_sharpness(image, stride=self.stride)


METHODS = {"lbp": LBPMethod, "hifst": HiFSTMethod}
"""Method name -> class, for the predict / evaluate CLIs."""


def make_method(name, **kwargs):
    """The classical method called ``name`` (``lbp`` or ``hifst``)."""
    try:
        cls = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown classical method {name!r}; expected one of {tuple(METHODS)}") from None
    return cls(**kwargs)
