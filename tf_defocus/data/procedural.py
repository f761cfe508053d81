"""Built-in procedural RGB-D scenes: a dead-leaves model with depth (no downloads needed).

A scene is a textured background plane plus many occluding shapes (discs, ellipses, polygons,
rectangles) whose radii follow a power law p(r) ~ r^-3 (scale-invariant dead leaves, like
natural image statistics). Each shape lies at its own depth, either fronto-parallel or on a
slanted plane; shapes are painted far to near so nearer ones occlude farther ones. Colours are
drawn in CIELAB with a bias toward low chroma; textures mix flat colour, gradients, stripes,
checkers and multi-scale noise, always with some fine high-frequency detail so blur is visible.

Planar surfaces are affine in *inverse* depth over the image (perspective projection), so slanted
planes are built in 1/z. Everything is driven by one ``numpy.random.Generator``: the same
generator state gives the same scene bytes.
"""

import math

import cv2
import numpy as np

from tf_defocus.data.render import linear_to_srgb

SHAPE_KINDS = ("disc", "ellipse", "polygon", "rectangle")
TEXTURE_KINDS = ("flat", "gradient", "stripes", "checker", "noise")


_XYZ_TO_LINEAR_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                                [-0.9692660, 1.8760108, 0.0415560],
                                [0.0556434, -0.2040259, 1.0572252]])
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def _lab_to_rgb(lab):
    """CIELAB (..., 3) (L 0..100, D65) -> sRGB float32 (N, 3) clipped to [0, 1]."""
    lab = np.asarray(lab, np.float64).reshape(-1, 3)
    fy = (lab[:, 0] + 16.0) / 116.0
    f = np.stack([fy + lab[:, 1] / 500.0, fy, fy - lab[:, 2] / 200.0], -1)
    d = 6.0 / 29.0
    xyz = np.where(f > d, f ** 3, 3 * d * d * (f - 4.0 / 29.0)) * _D65_WHITE
    return linear_to_srgb(xyz @ _XYZ_TO_LINEAR_SRGB.T)


def _sample_colours(rng, n):
    """n (base, accent) sRGB colour pairs, (n, 2, 3) float32; low saturation is more likely."""
    lightness = rng.uniform(12.0, 92.0, n)
    chroma = 70.0 * rng.beta(1.2, 3.5, n)
    hue = rng.uniform(0.0, 2 * np.pi, n)
    base = np.stack([lightness, chroma * np.cos(hue), chroma * np.sin(hue)], -1)
    d_light = rng.choice([-1.0, 1.0], n) * rng.uniform(8.0, 45.0, n)
    d_hue = rng.normal(0.0, 0.5, n)
    chroma2 = chroma * rng.uniform(0.3, 1.6, n)
    accent = np.stack([np.clip(lightness + d_light, 3.0, 98.0),
                       chroma2 * np.cos(hue + d_hue), chroma2 * np.sin(hue + d_hue)], -1)
    return _lab_to_rgb(np.concatenate([base, accent])).reshape(2, n, 3).transpose(1, 0, 2)


def _noise_field(rng, height, width, cell_px, octaves=4, persistence=0.6):
    """Multi-scale value noise in roughly [-1, 1], (H, W) float32; coarsest cell ``cell_px``."""
    out = np.zeros((height, width), np.float32)
    amp, total, cell = 1.0, 0.0, float(cell_px)
    for _ in range(octaves):
        gh, gw = max(2, int(math.ceil(height / cell)) + 1), max(2, int(math.ceil(width / cell)) + 1)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        up = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        out += amp * up[:height, :width]
        total += amp
        amp *= persistence
        cell = max(1.0, cell / 2.0)
    return np.clip(out / (total * 1.2), -1.0, 1.0)


def _pattern(rng, kind, h, w, fields):
    """Mixing weight t in [0, 1], (h, w) float32, for a texture kind on an h x w box."""
    if kind == "flat":
        return np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    if kind == "gradient":
        span = max(h, w) * rng.uniform(0.5, 2.0)
        return np.clip((u - u.min()) / span, 0.0, 1.0)
    if kind == "stripes":
        period = math.exp(rng.uniform(math.log(2.5), math.log(40.0)))
        s = 0.5 + 0.5 * np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))
        return (s > 0.5).astype(np.float32) if rng.random() < 0.4 else s.astype(np.float32)
    if kind == "checker":
        period = math.exp(rng.uniform(math.log(3.0), math.log(30.0)))
        v = -xx * math.sin(theta) + yy * math.cos(theta)
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    # noise: a crop of one of the scene's shared multi-scale noise fields
    f = fields[rng.integers(len(fields))]
    y0 = rng.integers(0, f.shape[0] - h + 1)
    x0 = rng.integers(0, f.shape[1] - w + 1)
    return 0.5 + 0.5 * f[y0:y0 + h, x0:x0 + w]


def _texture(rng, h, w, colours, fields, fine):
    """Textured sRGB patch (h, w, 3) float32 from a (base, accent) colour pair."""
    kind = TEXTURE_KINDS[rng.choice(len(TEXTURE_KINDS), p=[0.15, 0.2, 0.2, 0.1, 0.35])]
    t = _pattern(rng, kind, h, w, fields)[..., None]
    patch = colours[0] * (1.0 - t) + colours[1] * t
    # Fine luminance detail (always some) so defocus visibly removes high frequencies.
    y0 = rng.integers(0, fine.shape[0] - h + 1)
    x0 = rng.integers(0, fine.shape[1] - w + 1)
    gain = rng.uniform(0.03, 0.25)
    patch = patch * (1.0 + gain * fine[y0:y0 + h, x0:x0 + w, None])
    # Soft shading across the patch (curved-surface look).
    if rng.random() < 0.5 and h > 1 and w > 1:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (max(h, w) ** 2)
        patch = patch * (1.0 - rng.uniform(0.0, 0.35) * np.minimum(r2, 1.0))[..., None]
    return patch.astype(np.float32)


def _shape_mask(rng, kind, cx, cy, r, x0, y0, h, w):
    """Anti-aliased uint8 mask (h, w) of a shape centred at (cx, cy) [px], size r [px], drawn in
    the box with top-left (x0, y0)."""
    mask = np.zeros((h, w), np.uint8)
    shift = 4  # sub-pixel precision for cv2 drawing (coordinates * 16)
    sc = 1 << shift
    c = (int(round((cx - x0) * sc)), int(round((cy - y0) * sc)))
    if kind == "disc":
        cv2.circle(mask, c, max(1, int(round(r * sc))), 255, -1, cv2.LINE_AA, shift)
    elif kind == "ellipse":
        axes = (max(1, int(round(r * sc))), max(1, int(round(r * rng.uniform(0.25, 0.9) * sc))))
        cv2.ellipse(mask, c, axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA, shift)
    else:
        if kind == "rectangle":
            a, b = r, r * rng.uniform(0.2, 1.0)
            pts = np.array([[-a, -b], [a, -b], [a, b], [-a, b]], np.float64)
        else:  # star-convex polygon
            k = int(rng.integers(3, 10))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = r * rng.uniform(0.45, 1.0, k)
            pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], -1)
        th = rng.uniform(0, 2 * np.pi)
        rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        pts = pts @ rot.T + [cx - x0, cy - y0]
        cv2.fillPoly(mask, [np.round(pts * sc).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return mask


def _inverse_depth_plane(rng, h, w, inv_center, inv_span):
    """Inverse depth (h, w) of a random slanted plane: ``inv_center`` +- ``inv_span`` / 2."""
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx - (w - 1) / 2) * math.cos(theta) + (yy - (h - 1) / 2) * math.sin(theta)
    umax = max(float(np.abs(u).max()), 1e-6)
    return (inv_center + 0.5 * inv_span * u / umax).astype(np.float32)


def scene_fields(rng, width, height):
    """Shared noise of one scene, which textures crop from: ``(fields, fine)``, two multi-scale
    noise fields (coarse, medium) in [-1, 1] and unit-variance fine noise, all (H, W) float32."""
    side = min(width, height)
    fields = [_noise_field(rng, height, width, cell_px=c)
              for c in (side * rng.uniform(0.15, 0.5), rng.uniform(4.0, 16.0))]
    fine = rng.standard_normal((height, width)).astype(np.float32)
    fine = cv2.GaussianBlur(fine, (0, 0), rng.uniform(0.4, 1.0))
    fine /= max(float(fine.std()), 1e-6)
    return fields, fine


SMOOTH_GRAIN_PROB = 0.7
"""Smooth surfaces with a faint fine grain (paint, paper, plaster, fabric at 0.5-3% contrast):
visible in focus, gone when blurred, as on real walls. The rest are perfectly flat (sky, car
paint), which look the same at any blur; measured on the first default-model run, a pool with
only perfectly flat smooth surfaces left validation MSE at the constant predictor's after 3k
steps."""


def smooth_surface(rng, h, w, colour, fields, fine=None):
    """A smooth surface (h, w, 3) float32 sRGB: ``colour`` with a gentle linear gradient (up to
    +-20% brightness), soft shading (up to 35%), half the time a faint coarse texture of 1-3%
    contrast and, with probability SMOOTH_GRAIN_PROB (when ``fine`` unit-variance noise (H, W)
    is given), a fine grain of 0.5-3% contrast."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    u = (xx * math.cos(theta) + yy * math.sin(theta)) / max(h, w, 1)
    gain = 1.0 + rng.uniform(-0.2, 0.2) * (u - u.mean())
    if rng.random() < 0.6:
        cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (max(h, w) ** 2)
        gain = gain * (1.0 - rng.uniform(0.0, 0.35) * np.minimum(r2, 1.0))
    if rng.random() < 0.5:
        f = fields[0]
        fy, fx = rng.integers(0, max(1, f.shape[0] - h + 1)), rng.integers(0, max(1, f.shape[1] - w + 1))
        crop = f[fy:fy + h, fx:fx + w]
        if crop.shape == (h, w):
            gain = gain * (1.0 + rng.uniform(0.01, 0.03) * crop)
    if fine is not None and rng.random() < SMOOTH_GRAIN_PROB:
        fy, fx = rng.integers(0, max(1, fine.shape[0] - h + 1)), rng.integers(0, max(1, fine.shape[1] - w + 1))
        grain = fine[fy:fy + h, fx:fx + w]
        if grain.shape == (h, w):
            gain = gain * (1.0 + math.exp(rng.uniform(math.log(0.005), math.log(0.03))) * grain)
    return np.clip(colour[None, None, :] * gain[..., None], 0.0, 1.0).astype(np.float32)


def dead_leaves_scene(rng, width, height, num_shapes=None, smooth_share=0.0):
    """A procedural RGB-D scene.

    rng: ``numpy.random.Generator``. width, height: image size [px].
    num_shapes: number of occluding shapes (default: 120..320 leaves plus up to 150 small detail
    shapes per 640x480).
    smooth_share: probability that a leaf (and the background) gets a smooth surface
    (``smooth_surface``) instead of a strong texture, at any depth, so that "no texture" does not
    always mean "blurred" (0: every surface textured, the original scenes).
    Returns ``(image, depth_mm)``: sRGB float32 (H, W, 3) in [0, 1] and depth float32 (H, W)
    in millimetres (> 0).
    """
    width, height = int(width), int(height)
    if width < 4 or height < 4:
        raise ValueError(f"scene must be at least 4x4 px, got {width}x{height}")
    area_ratio = width * height / (640.0 * 480.0)
    if num_shapes is None:
        # Leaves (r >= 3% of the short side) cover most of the frame; extra small detail shapes
        # scale with the image area.
        num_leaves = int(rng.integers(120, 320))
        num_shapes = num_leaves + int(rng.uniform(0, 150) * math.sqrt(area_ratio))
    else:
        num_shapes = int(num_shapes)
        num_leaves = int(round(0.7 * num_shapes))
    side = min(width, height)

    # Depth range [mm]: nearest shapes 0.3..3 m, farthest (background) 3..60x farther.
    z_near = math.exp(rng.uniform(math.log(300.0), math.log(3000.0)))
    z_far = z_near * math.exp(rng.uniform(math.log(3.0), math.log(60.0)))
    inv_near, inv_far = 1.0 / z_near, 1.0 / z_far

    fields, fine = scene_fields(rng, width, height)

    colours = _sample_colours(rng, num_shapes + 1)

    # Background: a slanted plane spanning the far part of the range.
    inv_bg_span = (inv_near - inv_far) * rng.uniform(0.0, 0.35)
    inv_bg = _inverse_depth_plane(rng, height, width, inv_far + 0.5 * inv_bg_span, inv_bg_span)
    depth = 1.0 / inv_bg
    smooth = rng.random(num_shapes + 1) < smooth_share if smooth_share > 0 else np.zeros(num_shapes + 1, bool)

    def surface(h, w, i):
        if smooth[i]:
            return smooth_surface(rng, h, w, colours[i][0], fields, fine)
        return _texture(rng, h, w, colours[i], fields, fine)

    image = surface(height, width, -1)

    # Shapes: power-law radii, depths uniform in inverse depth (uniform in CoC), painted far to
    # near.
    # Radii: p(r) ~ r^-3 on [r_leaf, r_max] (coverage ~ 1 - exp(-2.4)), the rest r^-3 on
    # [1.5 px, r_leaf] as fine detail.
    r_leaf = max(2.0, 0.03 * side)
    r_max = max(r_leaf * 1.5, 0.5 * side)
    lo = np.where(np.arange(num_shapes) < num_leaves, r_leaf, 1.5)
    hi = np.where(np.arange(num_shapes) < num_leaves, r_max, max(1.5, r_leaf))
    u = rng.random(num_shapes)
    radii = (lo ** -2 - u * (lo ** -2 - hi ** -2)) ** -0.5  # inverse CDF of p(r) ~ r^-3
    inv_depths = rng.uniform(inv_far + 0.3 * inv_bg_span + 0.02 * (inv_near - inv_far), inv_near,
                             num_shapes)
    order = np.argsort(inv_depths)  # far (small 1/z) first
    kinds = rng.choice(len(SHAPE_KINDS), num_shapes, p=[0.3, 0.25, 0.3, 0.15])
    centres = np.stack([rng.uniform(-0.05, 1.05, num_shapes) * width,
                        rng.uniform(-0.05, 1.05, num_shapes) * height], -1)
    slanted = rng.random(num_shapes) < 0.35
    for i in order:
        r = float(radii[i])
        cx, cy = centres[i]
        x0, x1 = max(0, int(math.floor(cx - r - 1))), min(width, int(math.ceil(cx + r + 2)))
        y0, y1 = max(0, int(math.floor(cy - r - 1))), min(height, int(math.ceil(cy + r + 2)))
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        h, w = y1 - y0, x1 - x0
        mask = _shape_mask(rng, SHAPE_KINDS[kinds[i]], cx, cy, r, x0, y0, h, w)
        if not mask.any():
            continue
        alpha = mask.astype(np.float32)[..., None] * (1.0 / 255.0)
        tex = surface(h, w, i)
        box = image[y0:y1, x0:x1]
        box += alpha * (tex - box)
        if slanted[i]:
            span = (inv_near - inv_far) * rng.uniform(0.02, 0.2)
            inv = _inverse_depth_plane(rng, h, w, inv_depths[i], span)
            inv = np.clip(inv, inv_far, inv_near)
            z = 1.0 / inv
        else:
            z = np.float32(1.0 / inv_depths[i])
        dbox = depth[y0:y1, x0:x1]
        np.copyto(dbox, z, where=mask >= 128)

    return np.clip(image, 0.0, 1.0).astype(np.float32), depth.astype(np.float32)
