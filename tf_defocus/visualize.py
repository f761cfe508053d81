"""Colour maps for defocus / focus maps (rainbow: red = in focus, blue = out of focus, as in the
KCI paper's figures).
"""

import cv2
import numpy as np


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
