"""Re-blur gradient ratios: contrast-invariant blur cues as extra input channels of B.

Not in DMENet. Classical defocus estimation reads blur at an edge from how much its gradient
drops when the image is blurred again (Zhuo & Sim, "Defocus map estimation from a single
image", Pattern Recognition 2011; Karaali & Jung, IEEE TIP 2018, at several scales): an edge of
Gaussian blur ``sigma`` px, re-blurred with ``s`` px, has its gradient magnitude scaled by
``sigma / sqrt(sigma^2 + s^2)``, whatever its contrast. A ReLU network computes ratios poorly,
and B's errors are largest at low contrast (``docs/training/default_model/status.md`` item 25),
so ``BlurCues`` hands it the ratios:

* grey (BT.601) at Gaussian scales ``CUE_SCALES_PX`` = 0, 1, 2, 4, 8 px (normalised
  convolution at the borders: the taps that fall outside are left out and the rest rescaled, so
  any image size works);
* gradient magnitude ``m_k`` of each (central differences) [grey levels / px, 1 = full range];
* channels: ``log((m_k + eps) / (m_k+1 + eps))`` for the 4 consecutive pairs (>= 0 where the
  re-blur only lowers the gradient; an edge of sigma px gives about
  ``0.5 log((sigma^2 + s_k+1^2) / (sigma^2 + s_k^2))``), and ``log(m_1 + eps)``, the edge
  strength that says where the ratios are reliable; ``eps`` = ``CUE_EPS`` keeps flat areas and
  noise near 0.

Output (N,H,W,5) float32, scaled to the range of the caffe-preprocessed image (tens) so the
first conv sees both at similar magnitude. No weights; any H, W (>= 2); plain convolutions,
so it exports to SavedModel and TFLite builtins.
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


def _gaussian_taps(sigma):
    r = max(1, int(math.ceil(3.0 * sigma)))
    taps = tf.exp(-0.5 * tf.square(tf.range(-r, r + 1, dtype=tf.float32) / sigma))
    return taps / tf.reduce_sum(taps)


def _gaussian_blur(x, sigma):
    """(N,H,W,1) -> (N,H,W,1) Gaussian blur of ``sigma`` px (normalised at the borders)."""
    taps = _gaussian_taps(sigma)
    def separable(v):
        v = tf.nn.conv2d(v, tf.reshape(taps, [-1, 1, 1, 1]), 1, "SAME")
        return tf.nn.conv2d(v, tf.reshape(taps, [1, -1, 1, 1]), 1, "SAME")
    return separable(x) / separable(tf.ones_like(x[:1]))


def _gradient_magnitude(grey):
    """(N,H,W,1) -> (N,H,W,1) central-difference gradient magnitude, borders reflected."""
    p = tf.pad(grey, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    gx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
    gy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
    return tf.sqrt(gx * gx + gy * gy)


def blur_cues(image):
    """(N,H,W,3) RGB in [0, 1] -> (N,H,W,``NUM_CUES``) float32 cues (module docstring)."""
    image = tf.cast(image, tf.float32)
    grey = tf.reduce_sum(image * tf.constant(propagation.GREY_BT601, tf.float32), -1,
                         keepdims=True)
    mags = [_gradient_magnitude(grey if s == 0 else _gaussian_blur(grey, s))
            for s in CUE_SCALES_PX]
    logs = [tf.math.log(m + CUE_EPS) for m in mags]
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
