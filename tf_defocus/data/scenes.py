"""Built-in *layered* RGB-D scenes: layouts and surfaces like real photos, labels from depth only.

The dead-leaves scenes (``procedural.py``) texture every surface strongly, so a network trained
on them learns "no texture = blurred" and calls smooth in-focus surfaces (walls, sky, a car
body) defocused. These scenes break that shortcut:

* layouts: an outdoor ground plane receding to a horizon with sky at infinity or a distant
  backdrop; an indoor back wall with a floor and slanted side walls; or a textured background
  plane. Large objects stand on the ground at the matching depth; mid-size shapes, thin
  structures (wires, stems, poles) and small details are scattered at random depths;
* surfaces: real-photo crops (``photos.PhotoLibrary``: sharp, rescaled, colour-jittered),
  *smooth* surfaces (flat colour with a gentle gradient, soft shading and at most a faint,
  low-contrast texture) and the procedural textures, each at every depth;
* the label (via ``render.render_defocus``) follows depth alone, never texture.

Planar surfaces are affine in inverse depth over the image (perspective), as in
``procedural.py``. ``hints["smooth_depths_mm"]`` lists depths of large smooth surfaces, so
the camera can be focused on one (scenes focused on smooth objects).
"""

import math

import cv2
import numpy as np

from tf_defocus.data import procedural

SKY_DEPTH_MM = 1.0e7
"""Sky and other 'infinitely' far surfaces: 10 km."""
LAYOUTS = ("outdoor", "indoor", "plane")
LAYOUT_WEIGHTS = (0.45, 0.35, 0.2)
SURFACES = ("photo", "smooth", "procedural")
# Chosen with benchmarks/smooth_share.py: smooth pixels (blur invisible) make about a third of
# real photos; the first mix (0.45, 0.4, 0.15) made about half of the scenes smooth and the
# default model did not learn on it (docs/training/default_model/status.md).
SURFACE_WEIGHTS = (0.6, 0.2, 0.2)
# Part of the training-pool cache key: bump when a change alters the scenes (or their camera
# pipeline, render.sample_varied_options) a seed gives.
SCENE_VERSION = 4


class _Painter:
    """Paints surfaces far to near into an image / depth pair; picks surface textures."""

    def __init__(self, rng, width, height, photos):
        self.rng, self.width, self.height, self.photos = rng, width, height, photos
        self.image = np.zeros((height, width, 3), np.float32)
        self.depth = np.full((height, width), SKY_DEPTH_MM, np.float32)
        self.fields, self.fine = procedural.scene_fields(rng, width, height)
        self.smooth_depths = []

    def surface(self, h, w, kind=None):
        """Texture (h, w, 3) float32 sRGB and its kind."""
        rng = self.rng
        if kind is None:
            kind = SURFACES[rng.choice(len(SURFACES), p=SURFACE_WEIGHTS)]
        if kind == "photo" and self.photos is not None and len(self.photos):
            return self.photos.crop(rng, h, w), kind
        colours = procedural._sample_colours(rng, 1)[0]
        if kind == "procedural":
            return procedural._texture(rng, h, w, colours, self.fields, self.fine), kind
        return procedural.smooth_surface(rng, h, w, colours[0], self.fields, self.fine), "smooth"

    def paint(self, mask_u8, x0, y0, texture, depth):
        """Composite ``texture`` with anti-aliased ``mask_u8`` at (x0, y0); depth (scalar or
        array) is written where the mask covers at least half the pixel."""
        h, w = mask_u8.shape
        alpha = mask_u8.astype(np.float32)[..., None] * (1.0 / 255.0)
        box = self.image[y0:y0 + h, x0:x0 + w]
        box += alpha * (texture - box)
        np.copyto(self.depth[y0:y0 + h, x0:x0 + w], np.asarray(depth, np.float32),
                  where=mask_u8 >= 128)


def _ground_inverse_depth(h, y_horizon, height, inv_bottom):
    """Inverse depth of a flat ground plane for rows y_horizon..height-1 (pinhole camera:
    1/z is linear in the image row, 0 at the horizon)."""
    rows = np.arange(height, dtype=np.float32)
    t = np.clip((rows - y_horizon) / max(height - y_horizon, 1.0), 0.0, 1.0)
    return np.maximum(inv_bottom * t, 1.0 / SKY_DEPTH_MM)


def _perspective_texture(p, width, h):
    """Ground texture (h, width, 3) for the h rows below the horizon: a crop warped so it
    shrinks toward the horizon."""
    tex, kind = p.surface(h, width)
    if kind == "smooth":
        return tex, kind
    # Squeeze the top of the crop horizontally toward the horizon (trapezoid).
    top = p.rng.uniform(0.25, 0.7)
    src = np.float32([[0, 0], [width - 1, 0], [width - 1, h - 1], [0, h - 1]])
    c = (width - 1) / 2
    dst = np.float32([[c - top * c * 2, 0], [c + top * c * 2, 0], [width - 1 + c, h - 1],
                      [-c, h - 1]])
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(tex, m, (width, h), flags=cv2.INTER_AREA,
                                 borderMode=cv2.BORDER_REFLECT_101)
    return warped, kind


def _layout(p, layout, inv_near, inv_far):
    """Paint the background of ``layout``; returns (y_horizon or None, inv_bottom or None)."""
    rng, width, height = p.rng, p.width, p.height
    full = np.full((height, width), 255, np.uint8)
    if layout == "plane":
        span = (inv_near - inv_far) * rng.uniform(0.0, 0.35)
        inv = procedural._inverse_depth_plane(rng, height, width, inv_far + 0.5 * span, span)
        tex, kind = p.surface(height, width)
        p.paint(full, 0, 0, tex, 1.0 / inv)
        if kind == "smooth":
            p.smooth_depths.append(float(np.median(1.0 / inv)))
        return None, None
    if layout == "outdoor":
        y_h = rng.uniform(0.15, 0.6) * height
        # Sky (gradient, maybe faint clouds) at infinity, or a distant backdrop.
        if rng.random() < 0.6:
            top, bottom = procedural._sample_colours(rng, 1)[0]
            t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
            sky = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()
            if rng.random() < 0.5:
                sky *= 1.0 + rng.uniform(0.02, 0.12) * p.fields[0][..., None]
            p.paint(full, 0, 0, np.clip(sky, 0, 1), SKY_DEPTH_MM)
            p.smooth_depths.append(SKY_DEPTH_MM)
        else:
            tex, _ = p.surface(height, width, kind="photo" if rng.random() < 0.7 else None)
            p.paint(full, 0, 0, tex, 1.0 / inv_far)
        # Skyline of distant objects (hills, buildings) just above the horizon.
        if rng.random() < 0.6:
            xs = np.linspace(0, width, int(rng.integers(4, 24)))
            ys = y_h - np.abs(rng.normal(0, 0.12 * height, xs.size))
            pts = np.concatenate([np.stack([xs, ys], -1), [[width, y_h + 2], [0, y_h + 2]]])
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
            tex, _ = p.surface(height, width)
            p.paint(mask, 0, 0, tex, 1.0 / inv_far)
        inv_bottom = inv_near * rng.uniform(0.3, 1.0)
        inv_rows = _ground_inverse_depth(height, y_h, height, inv_bottom)
        r0 = int(math.floor(y_h))
        rows = np.arange(r0, height)
        tex, kind = _perspective_texture(p, width, len(rows))
        mask = np.zeros((height - r0, width), np.uint8)
        mask[:] = 255
        frac = y_h - r0
        mask[0] = np.uint8(round(255 * (1 - frac)))
        depth = np.broadcast_to((1.0 / inv_rows[r0:])[:, None], mask.shape)
        p.paint(mask, 0, r0, tex, depth)
        return y_h, inv_bottom
    # indoor: back wall (maybe slanted), optional floor, optional side wall.
    inv_wall = inv_far + (inv_near - inv_far) * rng.uniform(0.0, 0.3)
    span = (inv_near - inv_far) * rng.uniform(0.0, 0.15)
    inv = procedural._inverse_depth_plane(rng, height, width, inv_wall + 0.5 * span, span)
    tex, kind = p.surface(height, width, kind="smooth" if rng.random() < 0.5 else None)
    p.paint(full, 0, 0, tex, 1.0 / inv)
    if kind == "smooth":
        p.smooth_depths.append(float(np.median(1.0 / inv)))
    y_h = inv_bottom = None
    if rng.random() < 0.7:  # floor from the wall's foot to the bottom edge
        y_h = rng.uniform(0.45, 0.8) * height
        inv_bottom = inv_near * rng.uniform(0.4, 1.0)
        r0 = int(math.floor(y_h))
        rows = np.arange(r0, height, dtype=np.float32)
        t = (rows - y_h) / max(height - y_h, 1.0)
        inv_rows = inv_wall + (inv_bottom - inv_wall) * np.clip(t, 0, 1)
        tex, kind = _perspective_texture(p, width, len(rows))
        mask = np.full((height - r0, width), 255, np.uint8)
        p.paint(mask, 0, r0, tex, np.broadcast_to((1.0 / inv_rows)[:, None], mask.shape))
    if rng.random() < 0.5:  # side wall, slanted from near (frame edge) to the back wall
        left = rng.random() < 0.5
        wx = rng.uniform(0.1, 0.35) * width
        xs = np.arange(width, dtype=np.float32)
        t = np.clip((wx - xs) / wx if left else (xs - (width - wx)) / wx, 0, 1)
        inv_cols = inv_wall + (inv_near * rng.uniform(0.5, 1.0) - inv_wall) * t
        mask = np.zeros((height, width), np.uint8)
        edge = wx if left else width - wx
        pts = np.float32([[0 if left else width, 0], [edge, height * 0.1], [edge, height * 0.9],
                          [0 if left else width, height]])
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
        tex, kind = p.surface(height, width)
        p.paint(mask, 0, 0, tex, np.broadcast_to((1.0 / inv_cols)[None, :], mask.shape))
    return y_h, inv_bottom


def _thin_structure(p, inv_depth):
    """A wire, stem or pole: an anti-aliased polyline 1-5 px thick at one depth."""
    rng, width, height = p.rng, p.width, p.height
    n = int(rng.integers(2, 8))
    start = rng.uniform([-0.1 * width, -0.1 * height], [1.1 * width, 1.1 * height])
    step = rng.normal(0, 0.25, (n, 2)) * [width, height]
    if rng.random() < 0.5:  # mostly straight (poles, wires)
        step = np.cumsum(np.repeat(step[:1], n, 0), 0) / np.arange(1, n + 1)[:, None] * np.arange(1, n + 1)[:, None]
        pts = start + step
    else:
        pts = start + np.cumsum(step, 0)
    pts = np.concatenate([start[None], pts])
    mask = np.zeros((height, width), np.uint8)
    thick = int(rng.integers(1, 6))
    cv2.polylines(mask, [np.round(pts * 16).astype(np.int32)], False, 255, thick, cv2.LINE_AA, 4)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    tex, _ = p.surface(y1 - y0, x1 - x0, kind="smooth" if rng.random() < 0.6 else None)
    p.paint(mask[y0:y1, x0:x1], x0, y0, tex, 1.0 / inv_depth)


def layered_scene(rng, width, height, photos=None):
    """A layered RGB-D scene (see the module docstring).

    rng: ``numpy.random.Generator``. width, height: image size [px] (>= 16).
    photos: ``photos.PhotoLibrary`` or None (no photo textures).
    Returns ``(image, depth_mm, hints)``: sRGB float32 (H, W, 3) in [0, 1], depth float32 (H, W)
    [mm] (> 0; sky at ``SKY_DEPTH_MM``) and a dict with ``layout`` and ``smooth_depths_mm``.
    """
    width, height = int(width), int(height)
    if width < 16 or height < 16:
        raise ValueError(f"layered scenes must be at least 16x16 px, got {width}x{height}")
    side = min(width, height)
    z_near = math.exp(rng.uniform(math.log(300.0), math.log(3000.0)))
    z_far = z_near * math.exp(rng.uniform(math.log(3.0), math.log(60.0)))
    inv_near, inv_far = 1.0 / z_near, 1.0 / z_far
    p = _Painter(rng, width, height, photos)
    layout = LAYOUTS[rng.choice(len(LAYOUTS), p=LAYOUT_WEIGHTS)]
    y_h, inv_bottom = _layout(p, layout, inv_near, inv_far)

    # Objects, painted far to near: big (standing on the ground where there is one), mid-size
    # shapes, thin structures and small details, all at random inverse depths.
    n_big = int(rng.integers(0, 5))
    n_mid = int(rng.integers(0, 40) * math.sqrt(width * height / (640 * 480)))
    n_thin = int(rng.integers(0, 9))
    n_small = int(rng.integers(0, 40) * math.sqrt(width * height / (640 * 480)))
    kinds = (["big"] * n_big + ["mid"] * n_mid + ["thin"] * n_thin + ["small"] * n_small)
    inv = rng.uniform(inv_far + 0.05 * (inv_near - inv_far), inv_near, len(kinds))
    for i in np.argsort(inv):
        kind, inv_d = kinds[i], float(inv[i])
        if kind == "thin":
            _thin_structure(p, inv_d)
            continue
        lo, hi = {"big": (0.12, 0.45), "mid": (0.03, 0.15), "small": (0.005, 0.03)}[kind]
        r = side * math.exp(rng.uniform(math.log(lo), math.log(hi)))
        cx = rng.uniform(-0.05, 1.05) * width
        if kind == "big" and y_h is not None and inv_bottom is not None and inv_d < inv_bottom:
            # stands on the floor/ground: its foot is on the ground row of the same depth
            foot = y_h + (inv_d / inv_bottom) * (height - y_h) if layout == "outdoor" else \
                y_h + (height - y_h) * rng.uniform(0.0, 1.0)
            cy = foot - r * rng.uniform(0.6, 1.0)
        else:
            cy = rng.uniform(-0.05, 1.05) * height
        x0, x1 = max(0, int(math.floor(cx - r - 1))), min(width, int(math.ceil(cx + r + 2)))
        y0, y1 = max(0, int(math.floor(cy - r - 1))), min(height, int(math.ceil(cy + r + 2)))
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        h, w = y1 - y0, x1 - x0
        shape = procedural.SHAPE_KINDS[rng.choice(4, p=[0.25, 0.25, 0.25, 0.25])]
        mask = procedural._shape_mask(rng, shape, cx, cy, r, x0, y0, h, w)
        if not mask.any():
            continue
        tex, tex_kind = p.surface(h, w)
        if rng.random() < 0.3:
            span = (inv_near - inv_far) * rng.uniform(0.02, 0.2)
            z = 1.0 / np.clip(procedural._inverse_depth_plane(rng, h, w, inv_d, span), inv_far, inv_near)
        else:
            z = 1.0 / inv_d
        p.paint(mask, x0, y0, tex, z)
        if kind == "big" and tex_kind == "smooth":
            p.smooth_depths.append(float(np.median(z)))
    image = np.clip(p.image, 0.0, 1.0).astype(np.float32)
    return image, p.depth, {"layout": layout, "smooth_depths_mm": p.smooth_depths}
