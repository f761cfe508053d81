"""Shared fixtures of the inference / predict / evaluate tests: a tiny BlurEstimator whose
BatchNorm statistics are calibrated on synthetic images (so its activations have a realistic
scale instead of saturating the sigmoid, like a trained network's), saved as ``.keras``."""

import functools
import tempfile
from pathlib import Path

import numpy as np

WIDTH = 0.0625


def scene(seed, width, height):
    """A synthetic defocused photo: float32 (H, W, 3) in [0, 1] and its sigma [px]."""
    from tf_defocus.data.synthesize import synthesize
    s = synthesize(seed, width, height)
    return s.image, s.sigma_px


@functools.lru_cache(maxsize=None)
def calibrated_keras_model(width=WIDTH, seed=1, passes=12):
    """Path of a saved ``blur_estimator`` inference model (random conv weights, BatchNorm moving
    statistics estimated on synthetic 64 px images). Built once per test process."""
    import keras
    from tf_defocus.models import BlurEstimator
    keras.utils.set_random_seed(seed)
    trainable = BlurEstimator(width=width)
    batch = np.stack([scene(100 + i, 64, 64)[0] for i in range(4)])
    for _ in range(passes):   # BN momentum 0.9: 12 passes move the statistics ~72% of the way
        trainable(batch, training=True)
    path = Path(tempfile.mkdtemp(prefix="tfd_inference_")) / "blur_estimator.keras"
    trainable.inference_model().save(path)
    return str(path)
