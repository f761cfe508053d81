"""Fill in sigma on smooth surfaces from the pixels around them where blur is visible.

On a smooth surface (flat colour, sky, a wall) blur cannot be seen, so a network's sigma there
is a guess: with an MSE loss, the mean sigma of such pixels in its training data (issue 11: the
quickstart model calls every smooth in-focus surface 5-7 px blurred). Classical defocus maps
measure blur where it is visible and propagate it into the rest (Bae & Durand, Eurographics
2007; Zhuo & Sim, Pattern Recognition 2011). ``fill_smooth`` does that to a dense map:

* confidence ``c`` in [0, 1] per pixel: how visible blur is there, from the local grey
  standard deviation (``local_grey_std``, the measure of ``metrics.smooth_pixels``): 0 below
  ``CONFIDENCE_STD_LEVELS[0]`` grey levels, 1 above ``[1]``, linear between;
* pull-push interpolation (Gortler et al., "The Lumigraph", SIGGRAPH 1996) of sigma weighted by
  ``c``: 2x2 weighted averages up a pyramid, then each level keeps ``c`` of its own value and
  takes ``1 - c`` from the interpolated coarser level. A smooth region gets the sigma of the
  visible pixels nearest to it; visible pixels keep the network's value; a region with no
  visible pixel anywhere keeps the network's value (a tiny floor on ``c``);
* or ``guided_fill`` (the built-in default model's, status.md item 69): the ``c``-weighted sigma
  spread by an edge-aware domain transform guided by the image's colours (Gastal & Oliveira,
  SIGGRAPH 2011), so a smooth region takes the sigma of visible pixels of its own colour;
* or ``guided_edges`` (status.md item 76): the guided fill with sharp edges parting more than
  blurred ones of the same contrast, sharp readings trusted more, and visible pixels taking
  half of the spread too (``GUIDED_EDGES``).

Everything is TensorFlow ops on (N, H, W, C) tensors of any size, so the same function runs
after tiled inference (``inference.Estimator``) and inside exported graphs.
"""

import math

import tensorflow as tf

# metrics.smooth_pixels in TF: a sigma-1 px Gaussian (radius 3) removes sensor noise, then the
# grey standard deviation over 15 x 15 px.
NOISE_SIGMA_PX = 1.0
STD_WINDOW_PX = 15
GREY_BT601 = (0.299, 0.587, 0.114)   # cv2.COLOR_RGB2GRAY weights
CONFIDENCE_STD_LEVELS = (2.0, 4.0)
"""Local grey std [levels of 255]: confidence 0 at or below the first (``metrics.SMOOTH_STD_MAX``,
the pixels ``--smooth_weight`` trains less), 1 at or above the second."""
CONFIDENCE_FLOOR = 1e-6
"""Least confidence of any pixel. Pull-push adds confidences up the pyramid, so this must stay
far below 1 / (pixels of a smooth region): 1e-3 gave a 32 x 32 px smooth patch its own guess."""
GUIDED_SPATIAL_SIGMA_PX = 300.0
GUIDED_RANGE_SIGMA = 0.3
"""``guided_fill``'s domain-transform sigmas (px; sum of absolute RGB differences in [0, 1]):
the best of those tried on validation set v2 (benchmarks/visible_error.py --guided_fill,
docs/training/default_model/guided_fill.txt); other colour spaces and range sigmas trade the
smooth in-focus pixels of all-in-focus scenes against those of mixed scenes at the same MAE
(benchmarks/fill_guides.py, docs/training/default_model/fill_guides.txt)."""
GUIDED_SCALE = 4
"""``guided_fill`` transforms a grid this many times coarser: 1/16 of the pixels and two fewer
scan doublings (on an idle machine full resolution took 13-14x pull-push's time and this grid
1.8-2.4x, ``python benchmarks/fill_speed.py``, docs/training/default_model/fill_speed.txt), and on
validation set v2 it scored as well as full resolution (status.md item 67)."""
GUIDED_EDGES = {"edge_contrast": 0.3, "keep": 0.5, "lean_per_px": 0.1}
"""``guided_edges``: ``guided_fill(edge_contrast=0.3, keep=0.5, weight=exp(-0.1 sigma [px]))``.
On validation set v2, against ``guided`` on the same raw maps, it ranks and detects better for
the sixth, seventh and eighth cycles (Spearman +0.008, AUC +0.006) and reads 3-5 points fewer
smooth in-focus pixels of mixed scenes above 1 px, at equal MAE; the all-in-focus share moved
-0.4, -0.1 and +0.7 points (status.md item 76, ``python benchmarks/fill_guides.py
--variant=edge=0.3,keep=0.5,lean=0.1``, docs/training/default_model/fill_edges.txt)."""
GUIDED_MIN_WEIGHT = 1e-3
"""Least normalising weight of ``guided_fill``'s spread; below it the pixel takes pull-push."""
PYRAMID_LEVELS = 12
"""Pull-push levels: 2^12 = 4096 px, so one visible pixel reaches across any image we tile."""


def local_grey_std(image):
    """(N,H,W,3) RGB [0, 1] -> (N,H,W,1) local grey standard deviation [0, 1 units]: a sigma-1
    Gaussian, then a 15 x 15 window, borders reflected (``metrics.smooth_pixels`` in TF).
    H and W must be at least 8."""
    g = denoised_grey(image)
    # The 15 x 15 mean as two 1-D passes of shifted slices: TF's CPU AvgPool with a 15 x 15
    # window took 3-4x as long for the same result; 1-D convolutions 3-4x as long on one CPU,
    # 0.7-0.8x on another (benchmarks/box_filter.py, benchmarks/results/box_filter.txt).
    box = [1.0 / STD_WINDOW_PX] * STD_WINDOW_PX
    mean = separable_filter(g, box, "REFLECT")
    return tf.sqrt(tf.maximum(separable_filter(g * g, box, "REFLECT") - mean * mean, 0.0))


def grey_bt601(image):
    """(N,H,W,3) RGB -> (N,H,W,1) float32 grey with ``GREY_BT601`` weights."""
    return tf.reduce_sum(tf.cast(image, tf.float32) * tf.constant(GREY_BT601, tf.float32), -1,
                         keepdims=True)


def denoised_grey(image):
    """(N,H,W,3) RGB [0, 1] -> (N,H,W,1) grey after a sigma-1 px Gaussian (sensor noise out),
    borders reflected: what ``local_grey_std`` measures."""
    return separable_filter(grey_bt601(image), gaussian_taps(NOISE_SIGMA_PX), "REFLECT")


def gaussian_taps(sigma):
    """Normalised Gaussian taps (Python floats) of ``sigma`` px, radius max(1, ceil(3 sigma))."""
    r = max(1, math.ceil(3.0 * sigma))
    taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-r, r + 1)]
    return [t / sum(taps) for t in taps]


def filter_1d(x, taps, axis, mode="CONSTANT"):
    """(N,H,W,C) ``x`` filtered by ``taps`` (Python floats, odd length) along ``axis`` (1 = H,
    2 = W), borders padded by ``tf.pad`` ``mode`` (CONSTANT: zeros; REFLECT). A sum of shifted
    slices: on CPU a 1-channel ``conv2d`` ran 3-6x slower on one machine, 1.2-1.4x faster on
    another (benchmarks/box_filter.py).
    Equal taps (a box) are summed first and scaled once."""
    r = len(taps) // 2
    pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
    pad[axis] = [r, r]
    xp = tf.pad(x, pad, mode=mode)
    n = tf.shape(x)[axis]
    parts = [xp[:, k:k + n] if axis == 1 else xp[:, :, k:k + n] for k in range(len(taps))]
    if len(set(taps)) == 1:
        return tf.add_n(parts) * taps[0]
    return tf.add_n([t * part for t, part in zip(taps, parts)])


def separable_filter(x, taps, mode="CONSTANT"):
    """(N,H,W,C) -> (N,H,W,C): ``filter_1d`` with ``taps`` along H, then along W."""
    return filter_1d(filter_1d(x, taps, 1, mode), taps, 2, mode)


def visibility_confidence(image):
    """(N,H,W,3) RGB [0, 1] -> (N,H,W,1) confidence in [CONFIDENCE_FLOOR, 1] that blur is
    visible at each pixel (see ``CONFIDENCE_STD_LEVELS``)."""
    lo, hi = (v / 255.0 for v in CONFIDENCE_STD_LEVELS)
    c = (local_grey_std(image) - lo) / (hi - lo)
    return tf.clip_by_value(c, CONFIDENCE_FLOOR, 1.0)


def pull_push(values, confidence, levels=PYRAMID_LEVELS):
    """Confidence-weighted interpolation: (N,H,W,C) values, (N,H,W,1) confidence in (0, 1]
    -> (N,H,W,C), equal to ``values`` where confidence is 1."""
    values = tf.cast(values, tf.float32)
    w = tf.cast(confidence, tf.float32)
    pyramid = [(values, w)]
    for _ in range(levels):
        v, w = pyramid[-1]
        w_sum = tf.nn.avg_pool2d(w, 2, 2, "SAME")
        v = tf.nn.avg_pool2d(v * w, 2, 2, "SAME") / tf.maximum(w_sum, 1e-12)
        # Four children make one parent: its confidence is their sum, at most 1.
        pyramid.append((v, tf.minimum(4.0 * w_sum, 1.0)))
    filled = pyramid[-1][0]
    for v, w in reversed(pyramid[:-1]):
        up = tf.image.resize(filled, tf.shape(v)[1:3], method="bilinear")
        filled = w * v + (1.0 - w) * up
    return filled


def linear_recurrence(feedback, values, steps):
    """y[n] = feedback[n] * y[n-1] + values[n] along axis 2 of (N,H,W,C) tensors (y[-1] = 0),
    by a Hillis-Steele scan of ``steps`` doublings: exact within 2^steps px, parallel (shifted
    slices, no loop ops, so it exports to TFLite builtins at any size)."""
    a, b = feedback, values
    w = tf.shape(b)[2]
    for k in (2 ** i for i in range(steps)):
        b = b + a * tf.pad(b, [[0, 0], [0, 0], [k, 0], [0, 0]])[:, :, :w]
        a = a * tf.pad(a, [[0, 0], [0, 0], [k, 0], [0, 0]], constant_values=1.0)[:, :, :w]
    return b


def _recursive_filter_rows(values, feedback, steps):
    """The domain transform's recursive filter along W, left to right then right to left:
    ``values`` (N,H,W,C), ``feedback`` (N,H,W,1) = a^d of the step into each pixel from its left
    neighbour (column 0 unused)."""
    into = tf.concat([tf.zeros_like(feedback[:, :, :1]), feedback[:, :, 1:]], 2)
    x = linear_recurrence(into, (1.0 - into) * values, steps)
    # Right to left the step into pixel n comes from n + 1: feedback[n + 1], reversed.
    back = tf.reverse(tf.concat([feedback[:, :, 1:], tf.zeros_like(feedback[:, :, :1])], 2), [2])
    x = linear_recurrence(back, (1.0 - back) * tf.reverse(x, [2]), steps)
    return tf.reverse(x, [2])


def domain_transform(values, guide, spatial_sigma, range_sigma, iterations=3, edge_contrast=None):
    """Edge-aware smoothing: (N,H,W,C) ``values`` by the recursive-filter domain transform
    (Gastal & Oliveira, SIGGRAPH 2011, eqs. 11 and 14) guided by ``guide`` (N,H,W,C), e.g.
    RGB [0, 1]: spatial sigma [px], range sigma [guide units: the sum of absolute channel
    differences d between neighbours], row and column passes alternating ``iterations`` times.
    ``edge_contrast`` e [guide units]: each step's d becomes d + d^2 / e, so an edge crossed in
    one step (sharp) parts more than one of the same contrast spread over several (blurred)."""
    values = tf.cast(values, tf.float32)
    guide = tf.cast(guide, tf.float32)
    ratio = spatial_sigma / range_sigma

    def step(d):
        d = tf.reduce_sum(tf.abs(d), -1, keepdims=True)
        return 1.0 + ratio * (d if edge_contrast is None else d + tf.square(d) / edge_contrast)

    step_x = step(guide[:, :, 1:] - guide[:, :, :-1])
    step_y = step(guide[:, 1:] - guide[:, :-1])
    step_x = tf.pad(step_x, [[0, 0], [0, 0], [1, 0], [0, 0]])
    step_y = tf.transpose(tf.pad(step_y, [[0, 0], [1, 0], [0, 0], [0, 0]]), [0, 2, 1, 3])
    out = values
    for i in range(iterations):
        sigma_i = spatial_sigma * math.sqrt(3.0) * 2.0 ** (iterations - i - 1) / math.sqrt(4.0 ** iterations - 1)
        log_a = -math.sqrt(2.0) / sigma_i
        # Farther than 12 sigma_i a pixel's weight is below e^-17: the scan need not reach it.
        steps = max(1, math.ceil(math.log2(12.0 * sigma_i)))
        out = _recursive_filter_rows(out, tf.exp(log_a * step_x), steps)
        out = tf.transpose(_recursive_filter_rows(tf.transpose(out, [0, 2, 1, 3]),
                                                  tf.exp(log_a * step_y), steps), [0, 2, 1, 3])
    return out


def guided_fill(sigma, image, spatial_sigma=GUIDED_SPATIAL_SIGMA_PX,
                range_sigma=GUIDED_RANGE_SIGMA, scale=GUIDED_SCALE, guide=None, weight=None,
                edge_contrast=None, keep=1.0, min_weight=GUIDED_MIN_WEIGHT):
    """``fill_smooth`` made edge-aware: each pixel keeps its confidence c of its own value and
    takes 1 - c from the ``domain_transform`` of (c * sigma, c) normalised, so a smooth region
    takes the sigma of visible pixels of its own colour rather than the nearest edge of another
    surface; pull-push where that normalising weight is below ``min_weight``. The
    transform runs on a grid ``scale`` times coarser (2x2-mean pooled, bilinear back).
    ``guide``: (N,H,W,C) colours of the transform in place of ``image`` (e.g. another colour
    space; ``benchmarks/fill_guides.py``). ``weight``: optional (N,H,W,1) factor > 0 on each
    reading's weight in the spread (e.g. exp(-k sigma) to trust sharp readings more;
    ``fill_guides.py --lean``). ``edge_contrast``: see ``domain_transform``. ``keep`` in (0, 1]: a
    pixel keeps keep * c of its own value (below 1 visible pixels take some of the spread too).
    (N,H,W,1) sigma (any units), (N,H,W,3) RGB [0, 1] -> (N,H,W,1)."""
    sigma = tf.cast(sigma, tf.float32)
    image = tf.cast(image, tf.float32)
    c = visibility_confidence(image)
    cw = c if weight is None else c * tf.cast(weight, tf.float32)
    weighted = tf.concat([cw * sigma, cw], -1)
    guide = image if guide is None else tf.cast(guide, tf.float32)
    if scale > 1:
        weighted, guide = (tf.nn.avg_pool2d(x, scale, scale, "SAME") for x in (weighted, guide))
    num_den = domain_transform(weighted, guide, spatial_sigma / scale, range_sigma,
                               edge_contrast=edge_contrast)
    if scale > 1:
        num_den = tf.image.resize(num_den, tf.shape(sigma)[1:3], method="bilinear")
    num, den = num_den[..., :1], num_den[..., 1:]
    spread = tf.where(den > min_weight, num / tf.maximum(den, min_weight),
                      pull_push(sigma, c))
    own = keep * c
    return own * sigma + (1.0 - own) * spread


FILL_METHODS = ("pull_push", "guided", "guided_edges")
"""``fill_smooth`` methods: ``pull_push``, ``guided_fill`` or ``guided_fill`` with
``GUIDED_EDGES``."""


def fill_smooth(sigma, image, method="pull_push", px_per_unit=1.0):
    """(N,H,W,1) sigma (units of ``px_per_unit`` px: 1 for px, ``units.SIGMA_MAX_PX`` for a
    model's sigma / 7) and its (N,H,W,3) RGB [0, 1] image -> (N,H,W,1) sigma with smooth
    surfaces filled in from the visible pixels around them, by ``method`` (one of
    ``FILL_METHODS``; only ``guided_edges`` depends on the units)."""
    if method == "guided":
        return guided_fill(sigma, image)
    if method == "guided_edges":
        lean = GUIDED_EDGES["lean_per_px"] * px_per_unit
        return guided_fill(sigma, image, edge_contrast=GUIDED_EDGES["edge_contrast"],
                           keep=GUIDED_EDGES["keep"], weight=tf.exp(-lean * tf.cast(sigma, tf.float32)))
    if method != "pull_push":
        raise ValueError(f"fill method {method!r}; expected one of {FILL_METHODS}")
    return pull_push(sigma, visibility_confidence(image))
