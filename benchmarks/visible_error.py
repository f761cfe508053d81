"""Where does a defocus model's error come from: pixels where blur is visible, or smooth ones?

On a generated validation set (``configs/validation_set.flags``), for each model, the raw map and
the map after ``propagation.fill_smooth`` (smooth surfaces take the sigma of the visible pixels
around them): the evaluate CLI's per-image Spearman, blur-detection AUC (true sigma > 1 px) and
sigma/7 MAE, the MAE on smooth (``metrics.smooth_pixels``) and on visible pixels, and the
median predicted sigma on smooth in-focus pixels of the all-in-focus scenes. ``--calibration``
adds the mean prediction on visible pixels per band of true sigma (a compressed range shows as
flat means). ``--contrast`` adds the raw map's MAE [px] per band of local contrast (the grey
std of ``propagation.local_grey_std``, levels of 255) and of true sigma, and split by whether a
pixel lies near a step of the true sigma (its range over ``STEP_WINDOW_PX`` squared above
``STEP_RANGE_PX``: an occlusion boundary, where the label steps with depth): where the error is.
``--budget`` splits the filled map's MAE over smooth / visible pixels and bands of true sigma:
each part's share of the pixels, its MAE and bias [px], and what it adds to the whole-set MAE
(sigma/7; the parts sum to the pixel-weighted MAE, which differs slightly from the per-image
mean of the table above). ``--regions`` asks whether the filled map's error is pixel noise or whole regions read wrong:
its MAE with every region of one true sigma (4-connected, sigma quantised to ``REGION_STEP_PX``)
replaced by the region's median reading (what any smoothing within true regions could reach),
and with an oracle fill confidence (``ORACLE_KEEP_PX``: the fill keeps only visible pixels read
within that of the truth), then the ``WORST_IMAGES`` worst scenes. On a set of more than one
scene source (a training pool: ``layered`` and ``procedural``) the filled MAE per source is
printed too; ``--max_images`` reads only the first N scenes. ``--tile_sizes=128,256`` adds the
filled MAE of the model run by ``inference.Estimator`` on tiles of those sizes (overlap a quarter
of the tile; 0 = the whole image): how much context beyond a tile the readings use.
``--model=oracle`` is the true sigma itself: what the fill gives with a perfect network on the
visible pixels; ``--model=edge_oracle`` is the same except within its disc's radius of a depth
step (or ``--edge_window_px``), where it reads the sharper side's sigma (``edge_oracle``): what
the fill gives a perfect reader of local edge profiles that cannot tell which side owns an
edge; ``edge_oracle_blurred`` and ``edge_oracle_mid`` read the blurred side there (the largest
sigma whose disc reaches the pixel) and the middle of the two. ``--depth_steps`` splits a
model's filled MAE into the depth-step bands (``step_bounds``: where those readers differ from
the truth) and the rest, and scores the raw map clipped into the bands' [lo, hi] before the
fill, or replaced there by lo, mid, hi or the truth (the model's reading kept elsewhere), or
the truth also within twice a disc's reach of a blurred surface (``reach_bound``), and
compares the raw readings of textured pixels on either side of a depth step (``hidden``: a
sharper edge within their disc makes them look sharper) with those away from steps, per band
of true sigma (``side_table``); ``--model=constant`` is the mean true sigma of the set
everywhere (issue 11's reference: a constant scored MAE 0.20 on its real scenes).
``--guided_fill=S,R[,K];...`` also scores ``propagation.guided_fill`` in place of pull-push
(rows g<S>/<R>[/x<K>]): the confidence-weighted readings spread by the domain transform
(Gastal & Oliveira, SIGGRAPH 2011) guided by the image, spatial sigma S px, range sigma R,
on a grid K times coarser (default 1: full resolution), so a smooth region takes its value
from visible pixels of its own colour rather than from the nearest edge of another surface.

    python benchmarks/visible_error.py --model=v4=runs/snap/v4_step2000.keras --model=oracle --calibration

``--no_photos=N`` first renders N layered scenes whose photo surfaces are replaced by procedural
textures (``scenes.SURFACE_WEIGHTS`` = (0, 0.25, 0.75)) into ``--data_dir`` (seed ``--seed``),
to compare the error on photo textures with that on procedural ones.
Models run whole-image (padded to a multiple of 16), ``FillSmooth`` stripped for the raw map;
the fill map (and the tables of it) uses the model's own ``FillSmooth`` method (pull-push for
models without one and for the oracles).
"""

import argparse
import dataclasses
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BANDS_PX = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
CONTRAST_LEVELS = (0, 2, 4, 8, 16, 32, 256)
COARSE_BANDS_PX = (0.0, 1.0, 3.0, 5.0, 8.0)   # true sigma bands of the contrast and side tables
STEP_WINDOW_PX = 15      # the window of metrics.smooth_pixels
STEP_RANGE_PX = 1.0
DISC_RADIUS_PER_SIGMA = 2.0   # the disc PSF's radius [px] per px of sigma (losses._disc_radius)
REGION_STEP_PX = 0.25
ORACLE_KEEP_PX = 1.0
ORACLE_DROP_WEIGHT = 0.02   # fill confidence factor of the pixels the oracle drops
WORST_IMAGES = 5
EDGE_ORACLES = {"edge_oracle": "sharp", "edge_oracle_blurred": "blurred", "edge_oracle_mid": "mid"}
ORACLES = ("oracle", *EDGE_ORACLES, "constant")   # --model names that are not networks


def raw_predictor(path):
    """image (H, W, 3) -> raw sigma [px] (H, W) of a ``.keras`` inference model; the function's
    ``fill_method`` is the method of the model's ``FillSmooth`` (pull_push without one).
    ``path`` 'A.keras+B.keras+...' is an output ensemble: the mean of the models' raw maps, with
    the first model's fill method (status item 81)."""
    if "+" in path:
        members = [raw_predictor(p) for p in path.split("+")]

        def mean(image):
            return np.mean([m(image) for m in members], axis=0)
        mean.fill_method = members[0].fill_method
        return mean
    import keras
    import tf_defocus  # noqa: F401  (registers the layers)
    from tf_defocus.units import SIGMA_MAX_PX
    model = keras.saving.load_model(path)
    fill_method = "pull_push"
    if model.layers[-1].name == "fill_smooth":
        fill_method = model.layers[-1].method
        model = keras.Model(model.inputs, model.layers[-1].input[0])

    def predict(image):
        h, w = image.shape[:2]
        H, W = -(-h // 16) * 16, -(-w // 16) * 16
        x = np.pad(image, ((0, H - h), (0, W - w), (0, 0)), mode="symmetric")[None]
        return SIGMA_MAX_PX * np.asarray(model([x]))[0, :h, :w, 0]
    predict.fill_method = fill_method
    return predict


def filled_map(sigma, image, weight=None, lean=0.0, method="pull_push"):
    """(H, W) sigma [px] of ``image`` (H, W, 3) after ``propagation.fill_smooth`` (``method``:
    one of ``propagation.FILL_METHODS``; pull-push only with the options below). ``weight``:
    optional (H, W) factor in [0, 1] of the fill's confidence in each reading (0: not used);
    ``lean`` > 0: the fill's averages weight each reading by exp(lean * sigma [px]), leaning
    to the more blurred side (0: ``fill_smooth`` itself)."""
    from tf_defocus import propagation
    v = np.asarray(sigma, np.float32)[None, ..., None]
    if method != "pull_push":
        return propagation.fill_smooth(v, image[None], method).numpy()[0, ..., 0]
    conf = propagation.visibility_confidence(image[None]).numpy()
    if weight is not None:
        conf = np.maximum(conf * weight[None, ..., None], propagation.CONFIDENCE_FLOOR)
    if not lean:
        return propagation.pull_push(v, conf).numpy()[0, ..., 0]
    e = np.exp(lean * v)   # pull-push of e * v over pull-push of e: visible pixels keep v
    return (propagation.pull_push(e * v, conf) / propagation.pull_push(e, conf)).numpy()[0, ..., 0]


def guided_fill(sigma, image, spatial_sigma, range_sigma, scale=1):
    """(H, W) sigma [px] of ``image`` (H, W, 3) after ``propagation.guided_fill``."""
    from tf_defocus import propagation
    return propagation.guided_fill(np.asarray(sigma, np.float32)[None, ..., None], image[None],
                                   spatial_sigma, range_sigma, int(scale)).numpy()[0, ..., 0]


def scores(data, maps):
    """Mean per-image metrics of ``maps`` (id -> sigma px) on ``data``."""
    from tf_defocus import metrics
    rows, aif = [], []
    for meta, image, sigma in data:
        p = maps[meta["id"]]
        smooth, blurred = metrics.smooth_pixels(image), sigma > 1.0
        err = np.abs(p - sigma) / 7.0
        rows.append((metrics.spearman(p, sigma),
                     metrics.roc_auc(p, blurred) if 0 < blurred.mean() < 1 else np.nan,
                     err.mean(), err[smooth].mean() if smooth.any() else np.nan,
                     err[~smooth].mean() if (~smooth).any() else np.nan))
        if meta["max_coc_px"] < 2.0:
            aif.append(p[metrics.smooth_in_focus_pixels(image, sigma)])
    with warnings.catch_warnings():   # a constant map has no Spearman (nan in every image)
        warnings.simplefilter("ignore", RuntimeWarning)
        r = np.nanmean(np.array(rows, float), axis=0)
    return (*r, float(np.median(np.concatenate(aif))) if aif else float("nan"))


def calibration(data, maps):
    from tf_defocus import metrics
    t, q = [], []
    for meta, image, sigma in data:
        visible = ~metrics.smooth_pixels(image)
        t.append(sigma[visible])
        q.append(maps[meta["id"]][visible])
    t, q = np.concatenate(t), np.concatenate(q)
    out = []
    for lo, hi in zip(BANDS_PX[:-1], BANDS_PX[1:]):
        k = (t >= lo) & (t < hi)
        if k.any():
            out.append((lo, hi, k.mean(), q[k].mean(), np.percentile(q[k], 90)))
    return out


def error_budget(data, maps):
    """[(kind, lo, hi, share of pixels, MAE px, bias px, part of the total MAE in sigma/7)] for
    kind smooth / visible and each ``BANDS_PX`` band of true sigma, pooled over all pixels."""
    from tf_defocus import metrics
    t, q, smooth = [], [], []
    for meta, image, sigma in data:
        t.append(sigma.ravel())
        q.append(maps[meta["id"]].ravel())
        smooth.append(metrics.smooth_pixels(image).ravel())
    t, q, smooth = map(np.concatenate, (t, q, smooth))
    out = []
    for kind, mask in (("smooth", smooth), ("visible", ~smooth)):
        for lo, hi in zip(BANDS_PX[:-1], BANDS_PX[1:]):
            k = mask & (t >= lo) & ((t < hi) if hi < BANDS_PX[-1] else True)
            if k.any():
                d = q[k] - t[k]
                out.append((kind, lo, hi, k.mean(), np.abs(d).mean(), d.mean(),
                            np.abs(d).sum() / t.size / 7.0))
    return out


def near_sigma_step(sigma, window=STEP_WINDOW_PX):
    """(H, W) bool: the true sigma [px] varies by more than ``STEP_RANGE_PX`` within the
    ``window`` px square around the pixel."""
    import cv2
    k = np.ones((window, window), np.uint8)
    return cv2.dilate(sigma, k) - cv2.erode(sigma, k) > STEP_RANGE_PX


def contrast_table(data, maps):
    """[(lo, hi, share, MAE px, [MAE px per COARSE_BANDS_PX band], share near a sigma step,
    MAE px near one, MAE px away)] per contrast band, then the same for all pixels."""
    from tf_defocus import propagation
    c, t, q, e = [], [], [], []
    for meta, image, sigma in data:
        c.append(255.0 * propagation.local_grey_std(image[None]).numpy()[0, ..., 0].ravel())
        t.append(sigma.ravel())
        q.append(maps[meta["id"]].ravel())
        e.append(near_sigma_step(sigma).ravel())
    c, t, q, e = map(np.concatenate, (c, t, q, e))
    err = np.abs(q - t)
    mean = lambda x: x.mean() if x.size else np.nan
    out = []
    for lo, hi in (*zip(CONTRAST_LEVELS[:-1], CONTRAST_LEVELS[1:]), (0, CONTRAST_LEVELS[-1])):
        k = (c >= lo) & (c < hi)
        bands = [mean(err[k & (t >= a) & (t < b)]) for a, b in
                 zip(COARSE_BANDS_PX[:-1], COARSE_BANDS_PX[1:])]
        out.append((lo, hi, k.mean(), mean(err[k]), bands, mean(e[k]), mean(err[k & e]),
                    mean(err[k & ~e])))
    return out


def step_bounds(sigma):
    """(lo, hi) sigma [px] (H, W) a perfect local reader may defend near a depth step of the
    true sigma (H, W): ``losses.depth_step_bounds``, the interval ``--depth_step_tolerance``
    trains to; both equal sigma away from steps."""
    from tf_defocus.training.losses import depth_step_bounds
    return tuple(b.numpy()[0, ..., 0]
                 for b in depth_step_bounds(sigma[None, ..., None], STEP_RANGE_PX))


def reach_bound(sigma, radius_per_sigma=None):
    """(H, W) the largest true sigma [px] of any pixel q whose square of half-width
    round(radius_per_sigma * sigma_q) (at most that times ``SIGMA_MAX_PX``) contains the pixel;
    with the default ``DISC_RADIUS_PER_SIGMA`` that is the disc PSF's reach, the ``hi`` of
    ``step_bounds`` before it is compared with the truth."""
    import cv2
    from tf_defocus.units import SIGMA_MAX_PX
    f = DISC_RADIUS_PER_SIGMA if radius_per_sigma is None else radius_per_sigma
    radius = np.minimum(np.rint(f * sigma), round(f * SIGMA_MAX_PX)).astype(int)
    out = np.zeros_like(sigma, dtype=np.float32)
    for r in np.unique(radius):
        source = np.where(radius == r, sigma, 0.0).astype(np.float32)
        out = np.maximum(out, cv2.dilate(source, np.ones((2 * r + 1, 2 * r + 1), np.uint8)))
    return out


def step_sides(sigma):
    """(lo, hi, hidden, sharp side, beyond) for the true sigma [px] (H, W): ``step_bounds``,
    then (H, W) bool masks: hidden (lo below the truth: a sharper edge within the pixel's disc
    makes it look sharper), sharp side (hi above the truth, not hidden: a blurred disc reaches
    it) and beyond (outside the bands lo < hi but within twice a disc's reach of a surface
    blurred by more than ``STEP_RANGE_PX`` over its own: ``reach_bound``)."""
    lo, hi = step_bounds(sigma)
    hidden = lo < sigma
    beyond = (lo == hi) & (reach_bound(sigma, 2 * DISC_RADIUS_PER_SIGMA) > sigma + STEP_RANGE_PX)
    return lo, hi, hidden, (hi > sigma) & ~hidden, beyond


def all_step_sides(data):
    """id -> ``step_sides`` of each scene's true sigma, for the tables of ``--depth_steps``."""
    return {meta["id"]: step_sides(sigma) for meta, _, sigma in data}


def edge_oracle(sigma, window=0, side="sharp"):
    """The true sigma [px] (H, W), except near a step of it, where a pixel takes the smallest
    sigma around it: a perfect reader of local blur that gives a depth edge the sharpness of
    its sharper side, as an edge profile shows it. ``window`` > 0: pixels near a step
    (``near_sigma_step`` within ``window`` px) take the smallest sigma in that window. 0: the
    physical reach, the lower bound of ``step_bounds`` (each pixel the smallest sigma within a
    square of half-width the radius of its own disc PSF, 2 sigma rounded, if that is more than
    ``STEP_RANGE_PX`` below its own). ``side="blurred"``: the upper bound instead (the largest
    sigma whose disc reaches the pixel); ``"mid"``: the middle of the two."""
    import cv2
    if window:
        k = np.ones((window, window), np.uint8)
        return np.where(near_sigma_step(sigma, window), cv2.erode(sigma, k), sigma)
    lo, hi = step_bounds(sigma)
    return {"sharp": lo, "blurred": hi, "mid": 0.5 * (lo + hi)}[side]


def depth_step_table(data, raw, filled, sides=None):
    """Where the filled map's error lies against the depth-step bands (``step_bounds`` differ
    from the truth): (band share, filled MAE in the band, outside it, what each adds to the
    pixel-weighted MAE, and a dict of filled MAEs when the raw map is first changed in the
    band: ``clipped`` into [lo, hi] (what a loss that accepts the interval could gain there
    directly), or replaced by ``lo``, ``mid`` or ``hi`` (the model's reading kept outside the
    bands: what a label leaning to one side could reach) or by the ``truth``; and two changes
    of the pixels that a sharper edge within their disc makes look sharper than they are (lo
    below the truth: mostly a hidden surface beside an occluding edge): ``drop_hidden``, kept
    out of the fill, and ``truth_hidden``, given their true sigma); last, ``truth_beyond``: the
    pixels outside the bands but within twice the reach of a blurred disc (``reach_bound``
    with ``2 * DISC_RADIUS_PER_SIGMA``; where item 65's blurred occluders still spread their
    blur) given their true sigma, and ``truth_both``: those and the bands, sigma/7. sides: id ->
    ``step_sides`` of its true sigma (``all_step_sides``; computed here if None)."""
    sides = sides or all_step_sides(data)
    band, err = [], []
    changed = {k: [] for k in ("clipped", "lo", "mid", "hi", "truth", "drop_hidden",
                               "truth_hidden", "truth_beyond", "truth_both")}
    for meta, image, sigma in data:
        lo, hi, hidden, _, beyond = sides[meta["id"]]
        b, p = lo < hi, raw[meta["id"]]
        band.append(b.ravel())
        err.append(np.abs(filled[meta["id"]] - sigma).ravel() / 7.0)
        inputs = {"clipped": (np.where(b, np.clip(p, lo, hi), p), None),
                  "lo": (np.where(b, lo, p), None), "mid": (np.where(b, 0.5 * (lo + hi), p), None),
                  "hi": (np.where(b, hi, p), None), "truth": (np.where(b, sigma, p), None),
                  "drop_hidden": (p, np.where(b & hidden, 0.0, 1.0)),
                  "truth_hidden": (np.where(b & hidden, sigma, p), None),
                  "truth_beyond": (np.where(beyond, sigma, p), None),
                  "truth_both": (np.where(b | beyond, sigma, p), None)}
        for key, (value, weight) in inputs.items():
            c = filled_map(value, image, weight)
            changed[key].append(np.abs(c - sigma).ravel() / 7.0)
    band, err = np.concatenate(band), np.concatenate(err)
    return (band.mean(), err[band].mean(), err[~band].mean(), err[band].sum() / err.size,
            err[~band].sum() / err.size, {k: np.concatenate(v).mean() for k, v in changed.items()})


STEP_SHARES = ("hidden", "sharp side", "textured", "beyond", "blurred")
"""Columns of ``step_shares`` after the pixel count."""


def step_shares(image, sigma):
    """(6,) pixel counts of an image (H, W, 3) with true sigma [px] (H, W): all pixels, then
    ``STEP_SHARES``: hidden, sharp side (``step_sides``), those of the sharp side that are
    textured (not ``metrics.smooth_pixels``), beyond (``step_sides``) and blurred (sigma above
    1 px)."""
    from tf_defocus import metrics
    _, _, hidden, sharp_side, beyond = step_sides(sigma)
    return np.array([sigma.size, hidden.sum(), sharp_side.sum(),
                     (sharp_side & ~metrics.smooth_pixels(image)).sum(), beyond.sum(),
                     (sigma > 1.0).sum()], float)


def side_table(data, raw, sides=None):
    """[(side, lo, hi, share of all pixels, mean true sigma px, mean raw reading px)] of the
    textured (not ``metrics.smooth_pixels``) pixels for each side of a depth step (``hidden``:
    ``step_bounds`` lo below the truth; ``sharp side``: hi above it, not hidden; ``away``:
    neither) and each ``COARSE_BANDS_PX`` band of true sigma: whether a reading near a depth
    step errs more than the same true sigma away from one. sides: as in ``depth_step_table``."""
    from tf_defocus import metrics
    sides = sides or all_step_sides(data)
    t, q, labels, total = [], [], [], 0
    for meta, image, sigma in data:
        _, _, hidden, sharp_side, _ = sides[meta["id"]]
        textured = ~metrics.smooth_pixels(image)
        side = np.where(hidden, 0, np.where(sharp_side, 1, 2))
        t.append(sigma[textured])
        q.append(raw[meta["id"]][textured])
        labels.append(side[textured])
        total += sigma.size
    t, q, labels = map(np.concatenate, (t, q, labels))
    out = []
    for i, name in enumerate(("hidden", "sharp side", "away")):
        for lo, hi in zip(COARSE_BANDS_PX[:-1], COARSE_BANDS_PX[1:]):
            k = (labels == i) & (t >= lo) & (t < hi)
            if k.any():
                out.append((name, lo, hi, k.sum() / total, t[k].mean(), q[k].mean()))
    return out


def image_mae(pred, sigma):
    """Mean absolute error of a map against the true sigma [px], in sigma/7."""
    return float(np.abs(pred - sigma).mean() / 7.0)


def true_regions(sigma):
    """(H, W) int32 labels: 4-connected regions of equal true sigma [px] quantised to
    ``REGION_STEP_PX``."""
    import cv2
    q = np.round(sigma / REGION_STEP_PX).astype(np.int32)
    labels, n = np.zeros(q.shape, np.int32), 0
    for v in np.unique(q):
        k, cc = cv2.connectedComponents((q == v).astype(np.uint8), connectivity=4)
        labels[cc > 0] = cc[cc > 0] + n
        n += k
    return labels


def region_medians(values, labels):
    """Each pixel of ``values`` (H, W) replaced by the median of its region in ``labels``."""
    flat, lab = values.ravel(), labels.ravel()
    order = np.argsort(lab, kind="stable")
    bounds = np.flatnonzero(np.diff(lab[order])) + 1
    out = np.empty_like(flat)
    for idx in np.split(order, bounds):
        out[idx] = np.median(flat[idx])
    return out.reshape(values.shape)


def region_table(data, raw, filled):
    """(MAE of the fill, with region medians, with the oracle confidence, [(MAE, id, mean true,
    mean filled sigma px)] of the ``WORST_IMAGES`` worst scenes), per-image means, sigma/7."""
    rows = []
    for meta, image, sigma in data:
        r, f = raw[meta["id"]], filled[meta["id"]]
        oracle = filled_map(r, image, np.where(np.abs(r - sigma) < ORACLE_KEEP_PX, 1.0,
                                               ORACLE_DROP_WEIGHT))
        rows.append((image_mae(f, sigma), image_mae(region_medians(f, true_regions(sigma)), sigma),
                     image_mae(oracle, sigma),
                     meta["id"], float(sigma.mean()), float(f.mean())))
    worst = sorted(rows, reverse=True)[:WORST_IMAGES]
    m = np.array([r[:3] for r in rows]).mean(axis=0)
    return (*m, [(r[0], r[3], r[4], r[5]) for r in worst])


def tiled_mae(est, data, tile_size):
    """Mean per-image filled MAE (sigma/7) of ``inference.Estimator`` ``est`` run on
    ``tile_size`` px tiles (overlap a quarter of it; 0 = whole image)."""
    est = dataclasses.replace(est, tile_size=tile_size,
                              tile_overlap=tile_size // 4 if tile_size else est.tile_overlap)
    return float(np.mean([image_mae(est.predict(image), sigma) for _, image, sigma in data]))


def render_validation_scenes(out_dir, count, *extra_flags):
    """The first ``count`` scenes of ``configs/validation_set.flags`` (``extra_flags`` after it)
    into ``out_dir``, in this process (one worker), so a patched module applies."""
    from tf_defocus import generate
    generate.main(["generate", f"--flagfile={REPO / 'configs' / 'validation_set.flags'}",
                   f"--out_dir={out_dir}", f"--num_images={count}", "--num_workers=1",
                   *extra_flags])


def render_no_photo_set(out_dir, count, seed):
    from tf_defocus.data import scenes
    scenes.SURFACE_WEIGHTS = (0.0, 0.25, 0.75)
    render_validation_scenes(out_dir, count, f"--seed={seed}")


def main(args):
    import tensorflow as tf
    from smooth_in_focus import load_validation_set
    from tf_defocus import propagation
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.no_photos:
        render_no_photo_set(args.data_dir, args.no_photos, args.seed)
    data = load_validation_set(args.data_dir, args.max_images or None)
    sources = sorted({m.get("source", "") for m, _, _ in data})
    print(f"{args.data_dir}: {len(data)} scenes")
    print(f"{'model':>19} {'map':>5} {'Spearman':>9} {'AUC':>6} {'MAE':>7} {'MAE smooth':>11} "
          f"{'MAE visible':>12} {'AIF smooth median px':>21}")
    sides = None   # step_sides of each scene, computed once for --depth_steps
    for spec in args.model:
        name, _, path = spec.partition("=")
        fill_method = "pull_push"   # the oracles' and the constant's
        if name == "oracle":
            raw = {m["id"]: s for m, _, s in data}
        elif name in EDGE_ORACLES:
            raw = {m["id"]: edge_oracle(s, args.edge_window_px, EDGE_ORACLES[name])
                   for m, _, s in data}
        elif name == "constant":
            mean = float(np.mean([s.mean() for _, _, s in data]))
            raw = {m["id"]: np.full_like(s, mean) for m, _, s in data}
        else:
            predict = raw_predictor(path)
            raw, fill_method = {m["id"]: predict(image) for m, image, _ in data}, predict.fill_method
        kinds = [("raw", raw)]
        if name != "constant":   # a constant's fill is the constant up to rounding (noise ranks)
            kinds.append(("fill", {m["id"]: filled_map(raw[m["id"]], image, method=fill_method)
                                   for m, image, _ in data}))
        leaning = [(f"l{lean:g}", {m["id"]: filled_map(raw[m["id"]], image, lean=lean)
                                   for m, image, _ in data}) for lean in args.lean_fill]
        guided = [("g" + "/".join(f"{v:g}" for v in spec[:2])
                   + (f"/x{spec[2]:g}" if spec[2:] and spec[2] != 1 else ""),
                   {m["id"]: guided_fill(raw[m["id"]], image, *spec) for m, image, _ in data})
                  for spec in args.guided_fill]
        for kind, maps in kinds + leaning + guided:
            s = scores(data, maps)
            print(f"{name:>19} {kind:>5} {s[0]:9.3f} {s[1]:6.3f} {s[2]:7.4f} {s[3]:11.4f} "
                  f"{s[4]:12.4f} {s[5]:21.2f}", flush=True)
        if len(sources) > 1:
            maps = kinds[-1][1]
            per_source = {src: np.mean([image_mae(maps[m["id"]], s) for m, _, s in data
                                        if m.get("source", "") == src]) for src in sources}
            print(f"{'':>19} {kinds[-1][0]} MAE per scene source: "
                  + ", ".join(f"{src} {v:.4f}" for src, v in per_source.items()))
        if args.regions and name not in ORACLES:
            mae, medians, oracle, worst = region_table(data, raw, kinds[-1][1])
            print(f"{'':>19} fill MAE {mae:.4f}; each true-sigma region at its median reading "
                  f"{medians:.4f}; oracle fill confidence (keep < {ORACLE_KEEP_PX:g} px) {oracle:.4f}")
            print(f"{'':>19} worst scenes: " + "; ".join(
                f"{i} MAE {e:.3f} (true {t:.2f} px, read {p:.2f} px)" for e, i, t, p in worst))
        if args.tile_sizes and name not in ORACLES:
            from tf_defocus import inference
            est = inference.load_estimator(path)
            print(f"{'':>19} filled MAE by tile size: " + ", ".join(
                f"{t or 'whole'} {tiled_mae(est, data, t):.4f}" for t in args.tile_sizes))
        if args.depth_steps and name not in ORACLES:
            sides = sides or all_step_sides(data)   # the truth's: the same for every model
            share, mae_in, mae_out, part_in, part_out, changed = depth_step_table(
                data, raw, kinds[-1][1], sides)
            print(f"{'':>19} depth-step bands ({share:.3f} of the pixels): filled MAE "
                  f"{mae_in:.4f} in them, {mae_out:.4f} outside, adding {part_in:.4f} + "
                  f"{part_out:.4f}; raw map in the bands first clipped into [lo, hi]: "
                  f"{changed['clipped']:.4f}, replaced by lo / mid / hi: {changed['lo']:.4f} / "
                  f"{changed['mid']:.4f} / {changed['hi']:.4f}, by the truth: "
                  f"{changed['truth']:.4f}; pixels that look sharper than they are dropped "
                  f"from the fill: {changed['drop_hidden']:.4f}, given their true sigma: "
                  f"{changed['truth_hidden']:.4f}; pixels beyond the bands within twice a "
                  f"disc's reach given their true sigma: {changed['truth_beyond']:.4f}, with the "
                  f"bands: {changed['truth_both']:.4f}")
            print(f"{'':>19} textured pixels by side of a depth step (hidden: a sharper edge "
                  "within their disc; sharp side: a blurred disc reaches them; away: neither): "
                  "side, true sigma band px, share of all pixels, mean true px, mean raw px")
            for side, lo, hi, share, true, read in side_table(data, raw, sides):
                print(f"{'':>19}   {side:>10} [{lo:g}, {hi:g})  {share:5.3f}  {true:5.2f}  "
                      f"{read:5.2f}")
        if args.budget:
            print(f"{'':>19} error budget of the {kinds[-1][0]} map: pixels, true sigma band px, "
                  "share, MAE px, bias px, part of MAE (sigma/7)")
            for kind, lo, hi, share, mae, bias, part in error_budget(data, kinds[-1][1]):
                print(f"{'':>19}   {kind:>7} [{lo:g}, {hi:g})  {share:5.3f}  {mae:5.2f}  "
                      f"{bias:+5.2f}  {part:6.4f}")
        if args.calibration and name not in ORACLES:
            print(f"{'':>19} visible pixels by true sigma: "
                  "band px, share, mean pred px, p90 pred px")
            for lo, hi, share, mean, p90 in calibration(data, raw):
                print(f"{'':>19}   [{lo:g}, {hi:g})  {share:5.2f}  {mean:5.2f}  {p90:5.2f}")
        if args.contrast and name not in ORACLES:
            bands = "  ".join(f"[{a:g}, {b:g})" for a, b in
                              zip(COARSE_BANDS_PX[:-1], COARSE_BANDS_PX[1:]))
            print(f"{'':>19} raw MAE px by local contrast (grey std, levels): band, share, "
                  f"all, per true sigma band px {bands}, share near a sigma step, near, away")
            for lo, hi, share, mae, per, near, mae_near, mae_away in contrast_table(data, raw):
                print(f"{'':>19}   [{lo:g}, {hi:g})  {share:5.2f}  {mae:5.2f}  "
                      + "  ".join(f"{v:5.2f}" for v in per)
                      + f"  {near:5.2f}  {mae_near:5.2f}  {mae_away:5.2f}")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", default="data/val_realistic")
    p.add_argument("--model", action="append", required=True,
                   help="name=PATH of a .keras inference model, 'oracle', 'edge_oracle' "
                        "(its _blurred and _mid variants) or 'constant' (repeatable)")
    p.add_argument("--depth_steps", action="store_true",
                   help="the filled MAE in and outside the depth-step bands, and with the raw "
                        "map in them clipped into [lo, hi] or replaced by lo, mid, hi or the truth")
    p.add_argument("--lean_fill", type=lambda v: [float(t) for t in v.split(",")], default=[],
                   help="comma-separated betas: also score fills that weight each reading by "
                        "exp(beta * sigma px), leaning to the blurred side (rows l<beta>)")
    p.add_argument("--guided_fill", default=[],
                   type=lambda v: [tuple(float(x) for x in sr.split(",")) for sr in v.split(";")],
                   help="'S,R[,K];...': also score propagation.guided_fill, spatial sigma S px, "
                        "range sigma R, on a grid K (default 1) times coarser (rows g<S>/<R>[/x<K>])")
    p.add_argument("--calibration", action="store_true")
    p.add_argument("--contrast", action="store_true",
                   help="raw MAE per band of local contrast and true sigma")
    p.add_argument("--budget", action="store_true",
                   help="the filled map's MAE split over smooth / visible pixels and true sigma")
    p.add_argument("--regions", action="store_true",
                   help="region-median and oracle-confidence bounds of the fill, worst scenes")
    p.add_argument("--tile_sizes", type=lambda v: [int(t) for t in v.split(",")], default=[],
                   help="comma-separated tile sizes [px] (0 = whole image) for the tiled MAE")
    p.add_argument("--max_images", type=int, default=0, help="read only the first N scenes")
    p.add_argument("--edge_window_px", type=int, default=0,
                   help="fixed window [px] of --model=edge_oracle's depth-step pixels "
                        "(0: each pixel's disc radius)")
    p.add_argument("--no_photos", type=int, default=0,
                   help="render this many photo-free layered scenes into --data_dir first")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse(sys.argv[1:]))
