"""Regression tests of the hardening issue (#12): one test per defect, and the bad-input table
of image decoding. Each test is small (tiny models, header-only "bombs") and runs in seconds.
"""

import numpy as np
import pytest

from tf_defocus import visualize


# ------------------------------------------------------------------ 10: colour-map direction

def _is_red(rgb):
    r, g, b = (int(v) for v in rgb)
    return r > 100 and r > 3 * b and r > 3 * g


def _is_blue(rgb):
    r, g, b = (int(v) for v in rgb)
    return b > 100 and b > 3 * r and b > 3 * g


def test_colour_map_red_is_in_focus_blue_is_blurred():
    sigma = np.array([[0.0, 3.5, 7.0, 20.0]], np.float32)
    rgb = visualize.colorize_sigma(sigma, legend=False)
    assert _is_red(rgb[0, 0]), rgb[0, 0]        # sigma 0: in focus
    assert _is_blue(rgb[0, 2]), rgb[0, 2]       # sigma 7 px: most blurred
    assert _is_blue(rgb[0, 3]), rgb[0, 3]       # clipped at 7 px
    assert rgb[0, 1, 1] > max(rgb[0, 0, 1], rgb[0, 2, 1])   # mid-way: green, not red/blue
    # The focus-weight map uses the same direction: 1 = in focus = red.
    weight = visualize.colorize_weight(np.array([[1.0, 0.0]], np.float32), legend=False)
    assert _is_red(weight[0, 0]) and _is_blue(weight[0, 1])
    # The legend bar agrees: the "0 px" end (bottom) red, the "7 px" end (top) blue.
    h = 240
    full = visualize.colorize_sigma(np.zeros((h, 4), np.float32))
    bar = full[:, 4:].astype(int)
    saturated = bar.max(-1) - bar.min(-1) > 60      # colour, not the black/white labels
    column = bar[:, np.argmax(saturated.sum(0))]
    rows = np.flatnonzero(saturated[:, np.argmax(saturated.sum(0))])
    assert rows[-1] - rows[0] > h // 2
    assert _is_blue(column[rows[0]]) and _is_red(column[rows[-1]])
