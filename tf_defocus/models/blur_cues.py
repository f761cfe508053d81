"""Re-blur gradient ratios: contrast-invariant blur cues as extra input channels of B.

Not in DMENet. Classical defocus estimation reads blur at an edge from how much its gradient
drops when the image is blurred again (Zhuo & Sim, "Defocus map estimation from a single
image", Pattern Recognition 2011; Karaali & Jung, IEEE TIP 2018, at several scales): an edge of
Gaussian blur ``sigma`` px, re-blurred with ``s`` px, has its gradient magnitude scaled by
``sigma / sqrt(sigma^2 + s^2)``, whatever its contrast. A ReLU network computes ratios poorly,
and B's errors are largest at low contrast (``docs/training/default_model/status.md`` item 25),
so ``BlurCues`` hands it the ratios:

* grey (BT.601) re-blurred to Gaussian scales ``CUE_SCALES_PX`` = 0, 1, 2, 4, 8 px: 1 and 2 px
  at full resolution, 4 and 8 px on a 2 x 2 average-pooled copy (a Gaussian pyramid; the pooling
  adds a 2 px box, sigma 0.5 px, to those two), continuing from the 2 px grey;
* gradient magnitude ``m_k`` of each (central differences) [grey levels / px, 1 = full range];
  the half-resolution ones resized back (bilinear);
* channels: ``log((m_k + eps) / (m_k+1 + eps))`` for the 4 consecutive pairs (>= 0 where the
  re-blur only lowers the gradient; an edge of sigma px gives about
  ``0.5 log((sigma^2 + s_k+1^2) / (sigma^2 + s_k^2))``), and ``log(m_1 + eps)``, the edge
  strength that says where the ratios are reliable; ``eps`` = ``CUE_EPS`` keeps flat areas and
  noise near 0.

Output (N,H,W,5) float32, scaled to the range of the caffe-preprocessed image (tens) so the
first conv sees both at similar magnitude. No weights; any H, W. The Gaussians are sums of
shifted slices with zero padding, normalised at the borders (the taps that fall outside are
left out and the rest rescaled): 1-channel convolutions ran 5-6x slower on CPU. Only slices,
pooling and bilinear resizes, so it exports to SavedModel and TFLite builtins.
"""

import math

import keras
import tensorflow as tf

from tf_defocus import propagation

CUE_SCALES_PX = (0.0, 1.0, 2.0, 4.0, 8.0)
"""Gaussian sigmas [px] of the re-blurred greys; consecutive pairs give the ratio channels."""
CUE_EPS = 2.0 / 255.0
"""Added to every gradient magnitude [grey units / px]: about the gradient of sensor noise
after the sigma-1 blur, so flat areas read a ratio near 1 (log 0)."""
RATIO_SCALE = 50.0
STRENGTH_OFFSET, STRENGTH_SCALE = math.log(0.05), 20.0
NUM_CUES = len(CUE_SCALES_PX)   # 4 ratios + 1 strength
_POOL_BOX_VAR = (4.0 - 1.0) / 12.0   # variance [px^2] of a 2 px box


def _gaussian_blur(x, sigma):
    """(N,H,W,1) -> (N,H,W,1) Gaussian blur of ``sigma`` px, normalised at the borders."""
    taps = propagation.gaussian_taps(sigma)
    y = propagation.separable_filter(x, taps)
    # the border weights of a separable filter: a column times a row
    column = propagation.filter_1d(tf.ones_like(x[:1, :, :1]), taps, 1)
    row = propagation.filter_1d(tf.ones_like(x[:1, :1, :]), taps, 2)
    return y / (column * row)


def _gradient_magnitude(grey):
    """(N,H,W,1) -> (N,H,W,1) central-difference gradient magnitude, borders reflected."""
    p = tf.pad(grey, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    gx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
    gy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
    return tf.sqrt(gx * gx + gy * gy)


def gradient_scale_space(grey):
    """(N,H,W,1) grey -> [m_k (N,H,W,1)] gradient magnitudes [per px] at ``CUE_SCALES_PX``."""
    size = tf.shape(grey)[1:3]
    levels = [grey, _gaussian_blur(grey, CUE_SCALES_PX[1])]
    levels.append(_gaussian_blur(levels[1], math.sqrt(CUE_SCALES_PX[2] ** 2
                                                      - CUE_SCALES_PX[1] ** 2)))
    mags = [_gradient_magnitude(g) for g in levels]
    half = tf.nn.avg_pool2d(levels[2], 2, 2, "SAME")
    done_var = CUE_SCALES_PX[2] ** 2 + _POOL_BOX_VAR
    for s in CUE_SCALES_PX[3:]:
        # at half resolution a blur of b px is b / 2 px
        half = _gaussian_blur(half, math.sqrt(s * s - done_var) / 2.0)
        done_var = s * s
        mags.append(tf.image.resize(0.5 * _gradient_magnitude(half), size, method="bilinear"))
    return mags


def blur_cues(image):
    """(N,H,W,3) RGB in [0, 1] -> (N,H,W,``NUM_CUES``) float32 cues (module docstring)."""
    grey = propagation.grey_bt601(image)
    logs = [tf.math.log(m + CUE_EPS) for m in gradient_scale_space(grey)]
    ratios = [(a - b) * RATIO_SCALE for a, b in zip(logs[:-1], logs[1:])]
    strength = (logs[1] - STRENGTH_OFFSET) * STRENGTH_SCALE
    return tf.concat(ratios + [strength], axis=-1)


@keras.saving.register_keras_serializable(package="tf_defocus")
class BlurCues(keras.layers.Layer):
    """Keras layer of ``blur_cues``: (N,H,W,3) RGB [0, 1] -> (N,H,W,5), in the layer's compute
    dtype. No weights."""

    def call(self, inputs):
        return tf.cast(blur_cues(inputs), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], NUM_CUES)
