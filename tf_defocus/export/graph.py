"""The TensorFlow functions behind the exported signatures (pure TF ops, no tf_defocus code at
serving time).

* ``predict_images``: float32 (N,H,W,3) RGB [0,1], any H/W -> edge-replicate to a multiple of
  16 (centred, like ``tf_defocus.inference``), run the network, crop back, and name the outputs:
  defocus kind ``{"sigma_px": 7 * y, "focus": 1 - y}``; dof_weight kind ``{"focus": y}``;
  all (N,H,W,1) float32.
* ``decode_images``: tf.string (N,) encoded JPEG/PNG/BMP/GIF -> float32 (N,H,W,3) in [0,1];
  corrupt bytes or images of different sizes raise ``InvalidArgumentError``.
"""

import tensorflow as tf

from tf_defocus import artifacts
from tf_defocus.units import SIGMA_MAX_PX

SERVE_SIGNATURE = "serve"
BYTES_SIGNATURE = "serving_default"
IMAGE_INPUT = "image"
BYTES_INPUT = "image_bytes"   # TF Serving REST: "_bytes" names mark base64 binary values


def output_names(kind):
    """Signature output names of a model kind."""
    return ("sigma_px", "focus") if kind == artifacts.KIND_DEFOCUS else ("focus",)


def _edge_index(n, n_out, offset):
    """Indices into an axis of length ``n`` giving ``n_out`` values, shifted by ``offset`` and
    clamped (edge replication); int32."""
    return tf.clip_by_value(tf.range(n_out) - offset, 0, n - 1)


def pad_to_multiple(images, multiple):
    """Edge-replicate (N,H,W,C) up to multiples of ``multiple``, centred.

    Returns ``(padded, (top, left, H, W))``; a statically aligned input is returned unchanged
    with ``None`` as the crop.
    """
    static_h, static_w = images.shape[1], images.shape[2]
    if multiple <= 1 or (static_h is not None and static_w is not None
                         and static_h % multiple == 0 and static_w % multiple == 0):
        return images, None
    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    hp = (h + multiple - 1) // multiple * multiple
    wp = (w + multiple - 1) // multiple * multiple
    top, left = (hp - h) // 2, (wp - w) // 2
    padded = tf.gather(images, _edge_index(h, hp, top), axis=1)
    padded = tf.gather(padded, _edge_index(w, wp, left), axis=2)
    return padded, (top, left, h, w)


def _crop(y, crop):
    if crop is None:
        return y
    top, left, h, w = crop
    return y[:, top:top + h, left:left + w, :]


def make_predict_fn(model, kind, multiple):
    """Python function image (N,H,W,3) float32 [0,1] -> dict of (N,H,W,1) float32 outputs."""

    def predict_images(image):
        image = tf.convert_to_tensor(image, tf.float32)
        x, crop = pad_to_multiple(image, multiple)
        y = model(x, training=False)
        if isinstance(y, dict):
            (y,) = y.values()
        y = _crop(tf.cast(y, tf.float32), crop)
        if kind == artifacts.KIND_DEFOCUS:
            return {"sigma_px": y * SIGMA_MAX_PX, "focus": 1.0 - y}
        return {"focus": y}

    return predict_images


def decode_images(image_bytes):
    """tf.string (N,) encoded images -> float32 (N,H,W,3) RGB in [0,1].

    ``tf.io.decode_image`` (JPEG, PNG incl. 16-bit, BMP, GIF first frame); gray and RGBA become
    RGB. EXIF orientation is NOT applied (clients should send upright pixels). All images in one
    request must have the same size.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)

    def decode(b):
        return tf.io.decode_image(b, channels=3, dtype=tf.float32, expand_animations=False)

    first_shape = tf.shape(decode(image_bytes[0]))

    def decode_checked(b):
        img = decode(b)
        check = tf.debugging.assert_equal(
            tf.shape(img), first_shape,
            message="all images in one request must have the same height and width")
        with tf.control_dependencies([check]):
            return tf.identity(img)

    return tf.map_fn(decode_checked, image_bytes,
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32))


def make_bytes_fn(predict_fn):
    """Python function tf.string (N,) encoded images -> the outputs of ``predict_fn``."""

    def predict_bytes(image_bytes):
        return predict_fn(decode_images(image_bytes))

    return predict_bytes
