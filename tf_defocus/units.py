"""Units used across tf_defocus (docs/ARCHITECTURE.md).

Blur is the Gaussian-equivalent sigma in pixels. Networks output ``sigma / SIGMA_MAX_PX`` in
[0, 1]; public functions return sigma in pixels; a focus map is ``1 - sigma / SIGMA_MAX_PX``.
A disc PSF of diameter ``c`` px corresponds to ``sigma = c / 4``.
"""

import numpy as np

SIGMA_MAX_PX = 7.0
"""Largest labelled blur sigma [px]: SYNDOF's max CoC of 29 px gives (29 - 1) / 4 = 7."""

RTF_SIGMA_CLIP_PX = 3.275
"""RTF evaluation protocol: ground-truth sigma is clipped here, then divided by it."""


def sigma_to_norm(sigma_px):
    """Sigma [px] -> network units sigma/7, clipped to [0, 1]."""
    return np.clip(np.asarray(sigma_px, np.float32) / SIGMA_MAX_PX, 0.0, 1.0)


def norm_to_sigma(norm):
    """Network units sigma/7 -> sigma [px]."""
    return np.asarray(norm, np.float32) * np.float32(SIGMA_MAX_PX)


def focus_from_sigma(sigma_px):
    """Focus map in [0, 1] (1 = sharp) from sigma [px]."""
    return 1.0 - sigma_to_norm(sigma_px)


def coc_to_sigma(coc_px):
    """SYNDOF's CoC diameter [px] -> Gaussian sigma [px]: max(0, (CoC - 1) / 4)."""
    return np.maximum(0.0, (np.asarray(coc_px, np.float32) - 1.0) / 4.0)
