"""Colour maps for defocus / focus maps (rainbow: red = in focus, blue = out of focus, as in the
KCI paper's figures), legend bars labelled in units, and side-by-side panels.
"""

import cv2
import numpy as np

from tf_defocus.units import SIGMA_MAX_PX

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colorize(focus01):
    """Focus-like map in [0, 1] (1 = sharp), (H, W) -> uint8 RGB (H, W, 3), JET rainbow.

    1 (in focus) is red, 0 (most blurred) is blue. NaN is drawn black.
    """
    f = np.asarray(focus01, np.float32)
    bad = ~np.isfinite(f)
    u8 = np.round(np.clip(np.nan_to_num(f), 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(u8, cv2.COLORMAP_JET)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb[bad] = 0
    return rgb


def legend_bar(height, ticks, title="", bar_width=None):
    """Vertical colour bar with labelled ticks, uint8 RGB (height, W, 3) on black.

    ticks: list of (focus value in [0, 1], label); the bar runs from focus 0 (blue) at the top
    to focus 1 (red) at the bottom. title: drawn at the top (may be empty).
    """
    height = int(height)
    scale = float(np.clip(height / 900.0, 0.3, 1.2))
    thick = max(1, int(round(scale * 2)))
    (_, th), base = cv2.getTextSize("0", _FONT, scale, thick)
    line_h = th + base
    bar_w = int(bar_width or max(10, round(height / 28)))
    margin = max(4, line_h // 2)
    top = margin + (line_h + margin if title else 0)
    bottom = height - margin - line_h // 2
    if bottom - top < 8:   # tiny image: bar only, no text
        top, bottom, ticks, title = 0, height, [], ""
    label_w = max([cv2.getTextSize(t, _FONT, scale, thick)[0][0] for _, t in ticks] + [0])
    title_w = cv2.getTextSize(title, _FONT, scale, thick)[0][0] if title else 0
    width = max(margin + bar_w + margin + label_w + margin, title_w + 2 * margin)
    out = np.zeros((height, width, 3), np.uint8)
    span = max(1, bottom - top - 1)
    focus = (np.arange(bottom - top, dtype=np.float32) / span)[:, None]
    out[top:bottom, margin:margin + bar_w] = colorize(np.repeat(focus, bar_w, axis=1))
    # cv2 draws on BGR or RGB alike; white/grey are symmetric.
    if title:
        cv2.putText(out, title, (margin, margin + th), _FONT, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    for value, text in ticks:
        y = int(round(top + float(np.clip(value, 0, 1)) * span))
        cv2.line(out, (margin + bar_w, y), (margin + bar_w + margin // 2, y), (255, 255, 255), 1)
        ty = int(np.clip(y + th // 2, th, height - base))
        cv2.putText(out, text, (margin + bar_w + margin, ty), _FONT, scale, (255, 255, 255),
                    thick, cv2.LINE_AA)
    return out


def colorize_sigma(sigma_px, legend=True, sigma_max_px=SIGMA_MAX_PX):
    """Defocus map sigma [px] (H, W) -> uint8 RGB: rainbow of focus = 1 - sigma / sigma_max_px
    (red = sharp, blue = ``sigma_max_px``: 7 px, or 7 / scale for a map read at a smaller scale),
    with a legend bar labelled 0..sigma_max_px on the right if ``legend``."""
    s = np.asarray(sigma_px, np.float32)
    top = float(sigma_max_px)
    rgb = colorize(1.0 - np.clip(s, 0.0, top) / top)
    if not legend:
        return rgb
    n = int(top)
    step = -(-n // 7) * (1 if s.shape[0] >= 240 else 2) if s.shape[0] >= 120 else n
    ticks = [(1.0 - v / top, f"{v} px") for v in range(0, n + 1, step)]
    if ticks[-1][0] > 0.0:
        ticks.append((0.0, f"{top:.3g} px"))
    return side_by_side(rgb, legend_bar(s.shape[0], ticks, "blur sigma"), gap=0)


def colorize_weight(weight, legend=True):
    """Focus weight in [0, 1] (1 = in focus), (H, W) -> uint8 RGB rainbow (red = in focus) with a
    legend bar labelled 0.0 .. 1.0 (no blur unit) if ``legend``."""
    w = np.asarray(weight, np.float32)
    rgb = colorize(w)
    if not legend:
        return rgb
    vals = (0.0, 0.25, 0.5, 0.75, 1.0) if w.shape[0] >= 120 else (0.0, 1.0)
    ticks = [(v, f"{v:.2f}") for v in vals]
    return side_by_side(rgb, legend_bar(w.shape[0], ticks, "focus weight"), gap=0)


def to_uint8_rgb(image):
    """Float RGB in [0, 1] (or uint8/uint16, gray) -> uint8 RGB (H, W, 3) for display."""
    from tf_defocus.imageio import to_rgb_float
    return np.round(to_rgb_float(image) * 255.0).astype(np.uint8)


def side_by_side(*panels, gap=8):
    """Concatenate uint8 RGB panels left to right (heights padded with black), ``gap`` px apart."""
    panels = [np.asarray(p) for p in panels]
    h = max(p.shape[0] for p in panels)
    out = []
    for i, p in enumerate(panels):
        if p.ndim == 2:
            p = np.repeat(p[..., None], 3, axis=-1)
        if p.shape[0] < h:
            p = np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0)))
        out.append(p.astype(np.uint8))
        if gap and i + 1 < len(panels):
            out.append(np.zeros((h, gap, 3), np.uint8))
    return np.concatenate(out, axis=1)
