"""Depth-layered defocus rendering (thin lens, back-to-front compositing).

``render_defocus(image, depth_mm, camera, psf)`` blurs an all-in-focus sRGB image with its depth
map the way SYNDOF does (the SYNDOF generator of github.com/codeslake/SYNDOF): the scene is cut into depth layers, each layer's
premultiplied colour and coverage are blurred with that layer's PSF and composited "over" the
layers behind it, far to near.

Layers: the signed circle of confusion ``K (z - S1) / z`` [px] is affine in inverse depth, so
layers are uniform bins of it (``num_layers`` bins, default 256, spanning the scene's CoC range;
the bin holding the focus plane is centred on CoC 0). Every non-empty bin is one layer; bins with
CoC <= 1 px (sigma 0) are merged into one sharp layer since sharp layers cannot overlap.
The label ``sigma_px`` is the layer's sigma = max(0, (CoC - 1) / 4), exactly the blur rendered.

Occlusion edges (no halos, no darkening): the colour behind a layer is unknown where nearer
layers cover it. Before a blurred layer is composited, its own pixels where the accumulated
(farther) image is not yet opaque and the blurred layer is not opaque either are made opaque
with an estimate of what lies behind: the normalised colour already there (the blurred spill of
the layers just behind, which keeps continuous slanted surfaces seamless) or else the
normalised convolution of the accumulated image, i.e. the nearby background extended behind
the layer -- the role of SYNDOF's ``regionfill`` of the occluded background. The final image is
the accumulated premultiplied colour divided by its coverage (SYNDOF's ``merged_image ./
merged_mask``). A scene of one flat colour therefore renders exactly flat, and a blurred
foreground fades smoothly over a sharp background on both sides of its edge.

PSFs:
* ``gaussian``: Gaussian of the layer's sigma applied to the sRGB values (SYNDOF's domain).
* ``disc``: a camera-like domain: a circular or n-bladed polygonal aperture of diameter
  ``4 * sigma`` px (its per-axis standard deviation equals the label sigma, this package's
  disc diameter c <-> sigma c/4 rule), applied in linear light (sRGB -> linear -> blur ->
  sRGB), then Poisson-Gaussian sensor noise (shot + read, in linear light) and a JPEG
  re-encode at a random quality.

Speed: each layer is split into spatially separate pieces (16-px tile connectivity) processed
inside their bounding boxes grown by the PSF radius, or in horizontal bands for thin slanted
strips (exact: the layer is zero outside); empty bins are skipped; kernels of sigma >= 2.5 px
(gaussian) / 4 px (disc) run at half resolution through an image pyramid whose own variance is
subtracted; OpenCV does all filtering. About 0.25 s (gaussian) / 0.35 s (disc) of one CPU core
per 640x480 procedural image with ~250 layers.
"""

import dataclasses
import math

import cv2
import numpy as np

from tf_defocus.data.optics import signed_coc_px
from tf_defocus.units import coc_to_sigma

PSFS = ("gaussian", "disc")
DEFAULT_NUM_LAYERS = 256
GAUSSIAN_RADIUS_SIGMAS = 3.0
"""Gaussian kernels are truncated at this many sigmas (then renormalised by OpenCV)."""

_ALPHA_EPS = 1e-4
_FILL_ALPHA_MIN = 1e-3
_OWN_FILL_WEIGHT = 1e-2


# ----------------------------------------------------------------------------- colour spaces
def srgb_to_linear(x):
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1), float32."""
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x):
    """Linear light in [0, 1] -> sRGB-encoded values, float32."""
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


# ----------------------------------------------------------------------------- disc PSF domain
@dataclasses.dataclass(frozen=True)
class DiscOptions:
    """Camera-like PSF domain settings.

    blades: 0 = circular aperture, else number of diaphragm blades (regular polygon).
    rotation_deg: polygon rotation [degrees]. shot_noise: signal-dependent noise variance per
    unit linear intensity; read_noise: signal-independent noise std (linear light, [0,1] scale).
    jpeg_quality: 1..100, or 0 to skip JPEG.
    render_scale: the scene is rendered this many times larger than the output and then
      downscaled (area average, in linear light) like a user's resized photo; sigma labels are
      divided by it. tone: strength of an S-shaped tone curve on the sRGB values (0 = none,
      ``x - tone * sin(2 pi x) / (2 pi)``, monotone for |tone| < 1). sharpen_amount /
      sharpen_sigma: unsharp mask ``x + a (x - G_s * x)`` after downscaling, as phones sharpen
      (0 = none; the label is unchanged).
    """
    blades: int = 0
    rotation_deg: float = 0.0
    shot_noise: float = 1e-3
    read_noise: float = 3e-3
    jpeg_quality: int = 90
    render_scale: float = 1.0
    tone: float = 0.0
    sharpen_amount: float = 0.0
    sharpen_sigma: float = 1.0

    def to_dict(self):
        return dataclasses.asdict(self)


def _sample_camera_noise(rng, shot_range, read_range):
    """Aperture (50% circular, else 5..9 blades, random rotation) and sensor noise (shot
    variance and read std log-uniform in the given ranges): DiscOptions keyword arguments."""
    blades = 0 if rng.random() < 0.5 else int(rng.integers(5, 10))
    return dict(blades=blades, rotation_deg=float(rng.uniform(0.0, 360.0)),
                shot_noise=float(math.exp(rng.uniform(*np.log(shot_range)))),
                read_noise=float(math.exp(rng.uniform(*np.log(read_range)))))


def sample_disc_options(rng):
    """Random camera-like settings: 50% circular apertures, else 5..9 blades; shot noise
    variance log-uniform in [1e-4, 5e-3]; read noise std in [5e-4, 1e-2]; JPEG quality 70..95."""
    return DiscOptions(**_sample_camera_noise(rng, (1e-4, 5e-3), (5e-4, 1e-2)),
                       jpeg_quality=int(rng.integers(70, 96)))


def _rasterise_aperture(radius, blades, rotation_rad, supersample):
    """Area-coverage raster of a disc / regular polygon of circumradius ``radius`` px."""
    half = int(math.ceil(radius + 0.5))
    n = 2 * half + 1
    s = supersample
    t = (np.arange(n * s, dtype=np.float64) + 0.5) / s - (half + 0.5)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    if blades == 0:
        inside = xx * xx + yy * yy <= radius * radius
    else:
        # Regular polygon: inside if the projection on every edge normal is <= apothem.
        apothem = radius * math.cos(math.pi / blades)
        inside = np.ones_like(xx, bool)
        for i in range(blades):
            a = rotation_rad + (i + 0.5) * 2 * math.pi / blades
            inside &= xx * math.cos(a) + yy * math.sin(a) <= apothem
    k = inside.reshape(n, s, n, s).mean(axis=(1, 3))
    return k


def aperture_radius_px(sigma_px, blades=0):
    """Circumradius [px] of the disc / n-gon whose rasterised per-axis std is ``sigma_px``."""
    # Area sampling on the pixel grid adds a 1-px box (variance 1/12 per axis): subtract it.
    var = max(sigma_px ** 2 - 1.0 / 12.0, 0.0)
    if blades:
        # Per-axis variance of a uniform regular n-gon of circumradius R:
        # R^2 (1 + 2 cos^2(pi / n)) / 12 (-> R^2 / 4, the disc, as n -> inf).
        return math.sqrt(var / ((1.0 + 2.0 * math.cos(math.pi / blades) ** 2) / 12.0))
    return 2.0 * math.sqrt(var)


def aperture_kernel(sigma_px, blades=0, rotation_deg=0.0, supersample=8):
    """Normalised aperture PSF (k, k) float32 whose per-axis standard deviation is ``sigma_px``.

    A uniform disc of diameter d has per-axis std d/4, so the disc has diameter 4 * sigma. A
    polygon is scaled to the same second moment. sigma_px <= 0 gives the 1x1 identity.
    """
    if sigma_px <= 0:
        return np.ones((1, 1), np.float32)
    if sigma_px < SMALL_SIGMA_PX:
        # Tiny apertures: the pixel grid dominates; use the exact-variance 3-tap kernel.
        g = gaussian_kernel_1d(sigma_px)
        return np.outer(g, g).astype(np.float32)
    radius = aperture_radius_px(sigma_px, blades)
    k = _rasterise_aperture(radius, blades, math.radians(rotation_deg), supersample)
    return (k / k.sum()).astype(np.float32)


# ----------------------------------------------------------------------------- layering
@dataclasses.dataclass
class Layers:
    """Depth layers of one image.

    index: (H, W) int32 layer id per pixel, 0 = farthest (largest signed CoC).
    sigma_px: (L,) float32 blur sigma of each layer. coc_px: (L,) signed CoC of each layer.
    """
    index: np.ndarray
    sigma_px: np.ndarray
    coc_px: np.ndarray


def make_layers(depth_mm, camera, num_layers=None):
    """Quantise the scene into layers uniform in signed CoC (= uniform in inverse depth).

    Returns ``Layers``; empty bins are kept in the table (and skipped by the renderer), bins with
    sigma 0 keep their own ids (the renderer merges them).
    """
    num_layers = int(num_layers or DEFAULT_NUM_LAYERS)
    if num_layers < 1:
        raise ValueError("num_layers must be >= 1")
    c = signed_coc_px(depth_mm, camera).astype(np.float32)
    cmin, cmax = float(c.min()), float(c.max())
    span = cmax - cmin
    if not np.isfinite(span):
        raise ValueError("depth produced a non-finite circle of confusion")
    if span <= 1e-6:
        coc = np.array([0.5 * (cmin + cmax)], np.float32)
        return Layers(np.zeros(c.shape, np.int32), coc_to_sigma(np.abs(coc)), coc)
    step = span / num_layers
    k = np.rint(c / step).astype(np.int32)
    kmin, kmax = int(k.min()), int(k.max())
    # id 0 = farthest = largest signed CoC.
    index = (kmax - k).astype(np.int32)
    coc = np.clip(np.arange(kmax, kmin - 1, -1, dtype=np.float64) * step, cmin, cmax)
    coc[0], coc[-1] = cmax, cmin  # the extreme layers keep the exact extremes (max CoC label)
    return Layers(index, coc_to_sigma(np.abs(coc)).astype(np.float32), coc.astype(np.float32))


TILE_PX = 16
"""Tile size [px] used to split a layer into spatially separate pieces."""
PIECE_OVERHEAD_PX = 6000
"""Per-piece fixed cost expressed in pixels of filtering work (measured, ~0.3 ms)."""


def _tile_occupancy(index, n, tile):
    """(n, ty, tx) bool: which tile x tile blocks each layer occupies; and (n,) pixel counts."""
    h, w = index.shape
    ty, tx = -(-h // tile), -(-w // tile)
    tid = (np.arange(h, dtype=np.int64)[:, None] // tile) * tx + np.arange(w)[None, :] // tile
    occ = np.bincount((index.astype(np.int64) * (ty * tx) + tid).ravel(), minlength=n * ty * tx)
    occ = occ.reshape(n, ty, tx)
    return occ > 0, occ.sum(axis=(1, 2))


def _layer_windows(occupied, radius, tile, shape):
    """Split one layer into pieces whose blurred footprints cannot touch.

    occupied: (ty, tx) bool tiles holding the layer. radius: PSF radius [px].
    Yields (y0, y1, x0, x1, own, grown) windows in pixels: ``own`` is None when the layer is one
    piece, else a (y1-y0, x1-x0) bool mask of the piece's own tiles; ``grown`` is the piece's
    tiles dilated by ``radius`` (tile units, relative to the window). Each window extends at
    least ``radius`` px beyond the piece's pixels (or to the image border).
    """
    h, w = shape
    d = -(-radius // tile)
    occ8 = occupied.astype(np.uint8)
    grown = cv2.dilate(occ8, np.ones((2 * d + 1, 2 * d + 1), np.uint8)) if d else occ8
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    if n > 2:
        # Many small pieces cost more in per-call overhead than one window over all of them.
        x0, y0 = stats[1:, 0].min(), stats[1:, 1].min()
        x1 = (stats[1:, 0] + stats[1:, 2]).max()
        y1 = (stats[1:, 1] + stats[1:, 3]).max()
        union = (x1 - x0) * (y1 - y0)
        pieces = int((stats[1:, 2] * stats[1:, 3]).sum())
        if union * tile * tile <= pieces * tile * tile + PIECE_OVERHEAD_PX * (n - 2):
            n = 2
            stats = np.array([[0, 0, 0, 0, 0], [x0, y0, x1 - x0, y1 - y0, 0]])
            labels = (grown > 0).astype(np.int32)
    for c in range(1, n):
        tx0, ty0, tw, th = stats[c, :4]
        y0, y1 = ty0 * tile, min(h, (ty0 + th) * tile)
        x0, x1 = tx0 * tile, min(w, (tx0 + tw) * tile)
        piece = labels[ty0:ty0 + th, tx0:tx0 + tw] == c
        if n == 2:
            yield y0, y1, x0, x1, None, piece
            continue
        own = piece & occupied[ty0:ty0 + th, tx0:tx0 + tw]
        own = np.repeat(np.repeat(own, tile, 0), tile, 1)[:y1 - y0, :x1 - x0]
        yield y0, y1, x0, x1, own, piece


def _bands(m, grown, radius, tile):
    """Plan the filtering of one piece: list of (in_rows, out_rows, cols) slices (window px).

    m: (H, W) bool piece mask in its window; grown: its dilated tiles. Either one tight box
    around the piece grown by ``radius`` or, when cheaper (thin slanted strips whose box is
    mostly empty), horizontal bands: each filters its rows +- radius over the x-range of the
    dilated tiles there and keeps only its own rows (exact: the blur is local).
    """
    hh, ww = m.shape
    rows = np.flatnonzero(m.any(1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(m.any(0))
    y0, y1 = max(0, rows[0] - radius), min(hh, rows[-1] + 1 + radius)
    x0, x1 = max(0, cols[0] - radius), min(ww, cols[-1] + 1 + radius)
    single = [(slice(y0, y1), slice(y0, y1), slice(x0, x1))]
    cost_single = (y1 - y0) * (x1 - x0) + PIECE_OVERHEAD_PX
    band = tile * max(2, -(-2 * radius // tile))
    if (y1 - y0) <= 2 * band:
        return single
    plan, cost = [], 0
    any_cols = grown.any(0)
    for oy0 in range((y0 // tile) * tile, y1, band):
        oy0, oy1 = max(oy0, y0), min(oy0 + band, y1)
        iy0, iy1 = max(0, oy0 - radius), min(hh, oy1 + radius)
        tiles = grown[iy0 // tile:-(-iy1 // tile)].any(0) & any_cols
        if not tiles.any():
            continue
        tx = np.flatnonzero(tiles)
        bx0, bx1 = max(x0, tx[0] * tile), min(x1, (tx[-1] + 1) * tile)
        plan.append((slice(iy0, iy1), slice(oy0, oy1), slice(bx0, bx1)))
        cost += (iy1 - iy0) * (bx1 - bx0) + PIECE_OVERHEAD_PX
    return plan if cost < cost_single else single


def _fill_values(dst, out_rows, hole, own, blur):
    """Opaque RGBA to put behind the layer at ``hole`` pixels (k, 4) float32.

    dst: premultiplied RGBA crop (h, w, 4) of the layers composited so far (input rows);
    out_rows: the rows of ``dst`` being updated; hole: bool mask over those rows; own: the
    current layer's blurred premultiplied RGBA (input rows); blur: a blur of about the layer's
    size. A pixel that is already partly covered (typically by the blurred spill of the layers
    just behind) keeps its normalised colour. An empty one takes the normalised convolution of
    the accumulated image, i.e. the nearby background extended behind the layer; where no
    background is within reach it falls back to the layer's own colour.
    """
    d = dst[out_rows][hole]
    a = d[:, 3:]
    covered = a > _FILL_ALPHA_MIN
    if covered.all():
        d[:, :3] /= a
    else:
        nb = blur(dst)[out_rows][hole]
        ow = own[out_rows][hole]
        est = (nb[:, :3] + _OWN_FILL_WEIGHT * ow[:, :3]) / np.maximum(
            nb[:, 3:] + _OWN_FILL_WEIGHT * ow[:, 3:], 1e-12)
        d[:, :3] = np.where(covered, d[:, :3] / np.maximum(a, _FILL_ALPHA_MIN), est)
    d[:, 3] = 1.0
    return d


def _composite(colour, layers, kernel_for, radius_for, info):
    """Back-to-front compositing of ``colour`` (H, W, 3) float32 through ``layers``.

    kernel_for(sigma) -> callable blurring a (h, w, 4) float32 crop; radius_for(sigma) -> int px.
    Returns the composited colour (H, W, 3) float32.
    """
    h, w = colour.shape[:2]
    n = len(layers.sigma_px)
    index = layers.index
    rgba = np.concatenate([colour, np.ones((h, w, 1), np.float32)], -1)
    acc = np.zeros((h, w, 4), np.float32)
    occupied, counts = _tile_occupancy(index, n, TILE_PX)
    info["num_layers"] = int((counts > 0).sum())
    sharp = (layers.sigma_px <= 0) & (counts > 0)
    if sharp.any():
        # All sharp layers at once, in any order: they cannot spill onto each other. They are
        # pasted after the blurred layers behind them, so collect them at the first sharp id.
        first_sharp = int(np.flatnonzero(sharp)[0])
        sharp_ids = np.flatnonzero(sharp)
    else:
        first_sharp = -1
    blurs = 0
    for i in range(n):
        if counts[i] == 0 or (sharp[i] and i != first_sharp):
            continue
        if i == first_sharp:
            m = (index >= sharp_ids.min()) & (index <= sharp_ids.max())
            np.copyto(acc, rgba, where=m[..., None])
            continue
        sigma = float(layers.sigma_px[i])
        r = radius_for(sigma)
        blur = kernel_for(sigma)
        fill_blur = _gaussian_blur(sigma)
        for y0, y1, x0, x1, own, grown in _layer_windows(occupied[i], r, TILE_PX, (h, w)):
            m = index[y0:y1, x0:x1] == i
            if own is not None:
                m &= own
            # Compute every band from the accumulated image before this layer, then apply.
            updates = []
            for in_rows, out_rows, cols in _bands(m, grown, r, TILE_PX):
                mm = m[in_rows, cols]
                if not mm.any():
                    continue
                ys = slice(y0 + in_rows.start, y0 + in_rows.stop)
                xs = slice(x0 + cols.start, x0 + cols.stop)
                blurred = blur(rgba[ys, xs] * mm[..., None])
                blurs += 1
                rel = slice(out_rows.start - in_rows.start, out_rows.stop - in_rows.start)
                own_out = blurred[rel]
                dst_in = acc[ys, xs]
                dst = dst_in[rel]
                a = own_out[..., 3]
                # Fill behind the layer's own pixels only, and only where the blurred layer
                # is not opaque: nearer pixels it spills onto are filled when their layer
                # comes (their background is this layer).
                hole = mm[rel] & (dst[..., 3] < 1.0 - 1e-5) & (a < 1.0 - 1e-5)
                fill = _fill_values(dst_in, rel, hole, blurred, fill_blur) if hole.any() else None
                updates.append((dst, own_out, hole, fill))
            for dst, own_out, hole, fill in updates:
                if fill is not None:
                    dst[hole] = fill
                dst *= 1.0 - own_out[..., 3:4]
                dst += own_out
    info["num_blurred_pieces"] = blurs
    alpha = np.maximum(acc[..., 3:4], 1e-6)
    return acc[..., :3] / alpha


ISP_PROFILES = ("basic", "varied")


VARIED_SHOT_NOISE = (1e-5, 1e-3)
"""``isp="varied"``: range of the shot-noise variance per unit linear intensity (log-uniform).
Chosen with ``benchmarks/noise_level.py``: the first ranges (shot up to 5e-3, read up to 1e-2)
made the 90th percentile of the rendered noise 3.3 grey levels against 1.7 in the package photos;
these give 0.95 (median 0.34 against 0.42)."""
VARIED_READ_NOISE = (2e-4, 3e-3)
"""``isp="varied"``: range of the read-noise std, linear light (log-uniform)."""


def sample_varied_options(rng):
    """Camera-pipeline variety for realistic data (``isp="varied"``): aperture as
    ``sample_disc_options``; shot noise variance and read noise std log-uniform in
    VARIED_SHOT_NOISE and VARIED_READ_NOISE; half the images rendered 1-2x larger and downscaled; tone curve strength in
    [-0.1, 0.5]; half sharpened (amount 0.2..0.8, radius sigma 0.6..1.5 px); JPEG quality 40..98,
    1 in 10 left uncompressed."""
    return DiscOptions(
        **_sample_camera_noise(rng, VARIED_SHOT_NOISE, VARIED_READ_NOISE),
        jpeg_quality=0 if rng.random() < 0.1 else int(rng.integers(40, 99)),
        render_scale=1.0 if rng.random() < 0.5 else float(rng.uniform(1.0, 2.0)),
        tone=float(rng.uniform(-0.1, 0.5)),
        sharpen_amount=float(rng.uniform(0.2, 0.8)) if rng.random() < 0.5 else 0.0,
        sharpen_sigma=float(rng.uniform(0.6, 1.5)))


def camera_finish(lin, disc, rng, out_size=None):
    """The camera after the optics: Poisson-Gaussian sensor noise on linear light (H, W, 3),
    then sRGB encoding, tone curve, downscaling to ``out_size`` (W, H) (area average), unsharp
    masking and JPEG, as ``disc`` says. Returns sRGB float32 in [0, 1]."""
    lin = np.clip(lin, 0.0, 1.0)
    std = np.sqrt(disc.shot_noise * lin + disc.read_noise ** 2)
    lin = lin + std * rng.standard_normal(lin.shape).astype(np.float32)
    srgb = linear_to_srgb(lin)
    if disc.tone:
        srgb = srgb - np.float32(disc.tone / (2 * math.pi)) * np.sin(np.float32(2 * math.pi) * srgb)
    if out_size is not None and tuple(out_size) != (srgb.shape[1], srgb.shape[0]):
        srgb = linear_to_srgb(cv2.resize(srgb_to_linear(srgb), tuple(out_size),
                                         interpolation=cv2.INTER_AREA))
    if disc.sharpen_amount:
        soft = cv2.GaussianBlur(srgb, (0, 0), disc.sharpen_sigma)
        srgb = srgb + np.float32(disc.sharpen_amount) * (srgb - soft)
    out = np.clip(srgb, 0.0, 1.0).astype(np.float32)
    if disc.jpeg_quality:
        u8 = np.round(out * 255.0).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(disc.jpeg_quality)])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        out = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return out


SMALL_SIGMA_PX = 0.7
"""Below this sigma a sampled Gaussian has visibly less variance than sigma^2; use instead the
3-tap kernel [v/2, 1 - v, v/2] whose variance is exactly v = sigma^2."""


def gaussian_kernel_1d(sigma_px):
    """1-D blur kernel (float64) with variance sigma^2: sampled Gaussian truncated at 3 sigma,
    or the exact-variance 3-tap kernel below ``SMALL_SIGMA_PX``."""
    if sigma_px < SMALL_SIGMA_PX:
        v = sigma_px * sigma_px
        return np.array([v / 2, 1.0 - v, v / 2])
    r = _gaussian_radius(sigma_px)
    return cv2.getGaussianKernel(2 * r + 1, sigma_px, cv2.CV_64F).ravel()


def _gaussian_radius(sigma):
    return max(1, int(math.ceil(GAUSSIAN_RADIUS_SIGMAS * sigma)))


PYRAMID_VARIANCE_PX2 = 2.0
"""Per-axis variance [px^2] that one ``cv2.pyrDown`` + ``cv2.pyrUp`` round trip adds (each
applies the 5-tap binomial kernel [1 4 6 4 1] / 16 of variance 1)."""

HALF_RES_MIN_SIGMA = {"gaussian": 2.5, "disc": 4.0}
"""Layers blurred at least this much are filtered at half resolution (pyramid down, blur with
the variance left after the pyramid's own, pyramid up): ~8x less work for the large kernels.
The disc keeps full resolution longer so small bokeh discs keep sharp rims."""


def _half_res(blur_low):
    def run(x):
        small = blur_low(cv2.pyrDown(x))
        return cv2.pyrUp(small, dstsize=(x.shape[1], x.shape[0]))
    return run


def _low_res_sigma(sigma):
    """Sigma [low-res px] so that pyramid down + blur + pyramid up has variance sigma^2."""
    return math.sqrt(max(sigma * sigma - PYRAMID_VARIANCE_PX2, 0.0)) / 2.0


def _gaussian_blur(sigma):
    """Callable blurring a (h, w, C) float32 crop with variance sigma^2 [px^2]."""
    if sigma >= HALF_RES_MIN_SIGMA["gaussian"]:
        k = gaussian_kernel_1d(_low_res_sigma(sigma)).astype(np.float32)
        return _half_res(lambda x: cv2.sepFilter2D(x, -1, k, k, borderType=cv2.BORDER_REFLECT))
    k = gaussian_kernel_1d(sigma).astype(np.float32)
    return lambda x: cv2.sepFilter2D(x, -1, k, k, borderType=cv2.BORDER_REFLECT)


def render_defocus(image, depth_mm, camera, psf="gaussian", rng=None, num_layers=None,
                   disc=None, return_info=False, out_size=None, highlights=None):
    """Render thin-lens defocus.

    image: all-in-focus sRGB float32 (H, W, 3) in [0, 1]. depth_mm: (H, W) scene depth [mm],
    finite and > 0. camera: ``optics.Camera``. psf: ``gaussian`` or ``disc``. rng: numpy
    Generator for the disc domain's aperture / noise / JPEG when ``disc`` is None (default seed
    0). num_layers: CoC bins (default 256). disc: ``DiscOptions`` for ``psf="disc"``.

    out_size: (W, H) smaller than the image to downscale the result (area average; sigma
    labels are averaged and divided by the scale), or None.

    highlights: None or float32 (H, W, 3) radiance added to the scene in linear light before
    the defocus (``highlights.point_lights``: lights brighter than white, which defocus into
    bokeh discs and clip at the sensor); ``psf="disc"`` only.

    Returns ``(blurred, sigma_px)``: float32 (H, W, 3) in [0, 1] and float32 (H, W) label sigma
    [px]; with ``return_info=True`` a third dict (layer counts, disc options).
    """
    if psf not in PSFS:
        raise ValueError(f"psf must be one of {PSFS}, got {psf!r}")
    image = np.ascontiguousarray(image, np.float32)
    depth = np.asarray(depth_mm, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}")
    if depth.shape != image.shape[:2]:
        raise ValueError(f"depth {depth.shape} does not match image {image.shape[:2]}")
    if not np.all(np.isfinite(depth)) or float(depth.min()) <= 0:
        raise ValueError("depth must be finite and > 0 mm everywhere")
    if highlights is not None:
        if psf != "disc":
            raise ValueError("highlights need psf='disc' (the gaussian path blurs sRGB values)")
        highlights = np.asarray(highlights, np.float32)
        if highlights.shape != image.shape:
            raise ValueError(f"highlights {highlights.shape} do not match image {image.shape}")
    layers = make_layers(depth, camera, num_layers)
    sigma_map = layers.sigma_px[layers.index]
    info = {"psf": psf}
    if psf == "gaussian":
        out = _composite(image, layers, _gaussian_blur, _gaussian_radius, info)
        out = np.clip(out, 0.0, 1.0)
    else:
        if disc is None:
            disc = sample_disc_options(rng if rng is not None else np.random.default_rng(0))
        if rng is None:
            rng = np.random.default_rng(0)
        info["disc"] = disc.to_dict()
        def kernel_for(sigma):
            if sigma >= HALF_RES_MIN_SIGMA["disc"]:
                k = aperture_kernel(_low_res_sigma(sigma), disc.blades, disc.rotation_deg)
                return _half_res(lambda x: cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT))
            k = aperture_kernel(sigma, disc.blades, disc.rotation_deg)
            return lambda x: cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT)

        def radius_for(sigma):
            # Kernel half-size (+ 2 px of pyramid support on the half-resolution path).
            return int(math.ceil(aperture_radius_px(sigma, disc.blades) + 0.5)) + 2

        lin = srgb_to_linear(image)
        if highlights is not None:
            lin = lin + highlights
        lin = _composite(lin, layers, kernel_for, radius_for, info)
        out = camera_finish(lin, disc, rng, out_size)
    if out_size is not None and tuple(out_size) != (sigma_map.shape[1], sigma_map.shape[0]):
        scale = sigma_map.shape[1] / out_size[0]
        sigma_map = cv2.resize(sigma_map, tuple(out_size), interpolation=cv2.INTER_AREA) / np.float32(scale)
        if psf == "gaussian":
            out = cv2.resize(out, tuple(out_size), interpolation=cv2.INTER_AREA)
    out = out.astype(np.float32)
    if return_info:
        return out, sigma_map, info
    return out, sigma_map

