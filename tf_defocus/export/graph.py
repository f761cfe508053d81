"""The TensorFlow functions behind the exported signatures (pure TF ops, no tf_defocus code at
serving time).

* ``predict_images``: float32 (N,H,W,3) RGB [0,1], any H/W -> edge-replicate to a multiple of
  the kind's size multiple (16 for defocus; centred, like ``tf_defocus.inference``), run the
  network, crop back, and name the outputs (``tf_defocus.model_kinds``): defocus kind
  ``{"sigma_px": 7 * y, "focus": 1 - y}``; dof_weight kind ``{"focus": y}``; all (N,H,W,1)
  float32.
* ``decode_images``: tf.string (N,) encoded JPEG/PNG/BMP/GIF/WebP -> float32 (N,H,W,3) in
  [0,1], decoded like ``tf_defocus.imageio.read_image`` (OpenCV) decodes them (JPEG with the
  accurate integer DCT, so served and local maps agree). Before anything is decoded, every
  image's width and height are read from its header and the request is refused when it holds
  more than ``max_pixels`` pixels in total (default ``DEFAULT_MAX_PIXELS``), when it is empty
  or when an image is not one of these formats; these, corrupt bytes and images of different
  sizes raise ``InvalidArgumentError`` (HTTP 400 in TF Serving), never an allocation failure.
"""

import tensorflow as tf

from tf_defocus import model_kinds

SERVE_SIGNATURE = "serve"
BYTES_SIGNATURE = "serving_default"
IMAGE_INPUT = "image"
BYTES_INPUT = "image_bytes"   # TF Serving REST: "_bytes" names mark base64 binary values
# Largest request of the bytes signature, in pixels summed over its images (4096 x 4096). The
# full-width network needs about 160 bytes of memory per pixel (an 8000x6000 photo took
# 7.7 GB), so this is ~2.7 GB; a 12 MP phone photo fits.
DEFAULT_MAX_PIXELS = 4096 * 4096
BYTES_FORMATS = "JPEG, PNG (8 or 16 bit), BMP, GIF (first frame) or WebP"


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


def make_predict_fn(model, kind):
    """Python function image (N,H,W,3) float32 [0,1] -> dict of (N,H,W,1) float32 outputs."""
    spec = model_kinds.spec(kind)
    multiple = spec.size_multiple

    def predict_images(image):
        image = tf.convert_to_tensor(image, tf.float32)
        x, crop = pad_to_multiple(image, multiple)
        y = model(x, training=False)
        if isinstance(y, dict):
            (y,) = y.values()
        y = _crop(tf.cast(y, tf.float32), crop)
        return spec.signature_outputs(y)

    return predict_images


_HEADER_BYTES = 32
_UNKNOWN, _PNG, _JPEG, _GIF, _BMP, _WEBP = range(6)


def _uint(header, start, count, little):
    """Unsigned integer (int64) of ``count`` bytes of the uint8 vector ``header``."""
    b = tf.cast(header[start:start + count], tf.int64)
    order = range(count) if little else range(count - 1, -1, -1)
    return sum(b[i] * (256 ** k) for k, i in enumerate(order))


def _int32_le(header, start):
    v = _uint(header, start, 4, True)
    return tf.where(v >= 2 ** 31, v - 2 ** 32, v)


def header_size(image):
    """(height, width) int64 of one encoded image (scalar tf.string) read from its header
    without decoding the pixels; (-1, -1) when it is not a PNG/JPEG/GIF/BMP/WebP file or the
    header is cut short. JPEG: ``tf.io.extract_jpeg_shape`` (header only; a corrupt header
    raises InvalidArgumentError)."""
    n = _HEADER_BYTES
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(image, 0, n), b"\0" * n]), 0, n)
    h = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)
    length = tf.strings.length(image)

    def starts_with(prefix, at=0):
        return tf.reduce_all(tf.equal(h[at:at + len(prefix)],
                                      tf.constant(list(prefix), tf.int64)))

    is_png = starts_with(b"\x89PNG\r\n\x1a\n") & starts_with(b"IHDR", 12) & (length >= 24)
    is_jpeg = starts_with(b"\xff\xd8")
    is_gif = (starts_with(b"GIF87a") | starts_with(b"GIF89a")) & (length >= 10)
    is_bmp = starts_with(b"BM") & (length >= 26)
    is_webp = starts_with(b"RIFF") & starts_with(b"WEBP", 8) & (length >= 30)
    kind = tf.where(is_png, _PNG, tf.where(is_jpeg, _JPEG, tf.where(is_gif, _GIF, tf.where(
        is_bmp, _BMP, tf.where(is_webp, _WEBP, _UNKNOWN)))))

    def png():
        return tf.stack([_uint(h, 20, 4, False), _uint(h, 16, 4, False)])

    def jpeg():
        return tf.cast(tf.io.extract_jpeg_shape(image)[:2], tf.int64)

    def gif():
        return tf.stack([_uint(h, 8, 2, True), _uint(h, 6, 2, True)])

    def bmp():
        core = _uint(h, 14, 4, True) == 12    # OS/2 header: 16-bit sizes
        return tf.where(core, tf.stack([_uint(h, 20, 2, True), _uint(h, 18, 2, True)]),
                        tf.abs(tf.stack([_int32_le(h, 22), _int32_le(h, 18)])))

    def webp():
        chunk = h[12:16]
        vp8 = tf.stack([_uint(h, 28, 2, True) % 16384, _uint(h, 26, 2, True) % 16384])
        bits = _uint(h, 21, 4, True)
        vp8l = tf.stack([(bits // 16384) % 16384 + 1, bits % 16384 + 1])
        vp8x = tf.stack([_uint(h, 27, 3, True) + 1, _uint(h, 24, 3, True) + 1])
        is_chunk = lambda tag: tf.reduce_all(tf.equal(chunk, tf.constant(list(tag), tf.int64)))
        unknown = tf.constant([-1, -1], tf.int64)
        return tf.where(is_chunk(b"VP8 "), vp8, tf.where(
            is_chunk(b"VP8L"), vp8l, tf.where(is_chunk(b"VP8X"), vp8x, unknown)))

    def unknown():
        return tf.constant([-1, -1], tf.int64)

    return tf.switch_case(tf.cast(kind, tf.int32), [unknown, png, jpeg, gif, bmp, webp])


def check_request(image_bytes, max_pixels=DEFAULT_MAX_PIXELS):
    """Assertions refusing (InvalidArgumentError) an empty request, an image that is not a
    JPEG/PNG/BMP/GIF/WebP file, and a request of more than ``max_pixels`` pixels in total;
    evaluated from the headers only. Returns the list of assertion ops."""
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    count = tf.size(image_bytes, out_type=tf.int64)
    not_empty = tf.debugging.Assert(
        count > 0, [f"empty request: {BYTES_INPUT} holds no image; send at least one encoded "
                    f"{BYTES_FORMATS} image"])
    with tf.control_dependencies([not_empty]):
        sizes = tf.map_fn(header_size, image_bytes,
                          fn_output_signature=tf.TensorSpec([2], tf.int64))
    index = tf.argmin(sizes[:, 0])
    known = tf.debugging.Assert(
        tf.reduce_all(sizes >= 0),
        [tf.strings.format("image {} of the request is not a JPEG, PNG, BMP, GIF or WebP file "
                           "(unknown format or corrupt header)", index)])
    pixels = tf.reduce_sum(sizes[:, 0] * sizes[:, 1])
    biggest = tf.argmax(sizes[:, 0] * sizes[:, 1])
    small_enough = tf.debugging.Assert(
        pixels <= max_pixels,
        [tf.strings.format(
            "request too large: {} image(s), the largest (image {}) {}x{} px, {} pixels in "
            f"total; this model serves at most {max_pixels} pixels per request "
            f"(e.g. {_side(max_pixels)}x{_side(max_pixels)}): downscale the image(s) or send "
            "fewer per request", (count, biggest, sizes[biggest, 1], sizes[biggest, 0], pixels))])
    return [not_empty, known, small_enough]


def _side(pixels):
    return int(pixels ** 0.5)


def _decode_one(b):
    """One encoded image -> float32 (H, W, 3) RGB in [0,1], as OpenCV decodes it: JPEG with the
    accurate integer DCT (libjpeg's default, also OpenCV's), PNG keeping 16 bits, others
    (BMP, GIF first frame, WebP) as 8 bit."""
    head = tf.strings.substr(b, 0, 2)

    def jpeg():
        return tf.image.convert_image_dtype(
            tf.io.decode_jpeg(b, channels=3, dct_method="INTEGER_ACCURATE"), tf.float32)

    def png():
        return tf.image.convert_image_dtype(
            tf.io.decode_png(b, channels=3, dtype=tf.uint16), tf.float32)

    def other():
        return tf.image.convert_image_dtype(
            tf.io.decode_image(b, channels=3, dtype=tf.uint8, expand_animations=False),
            tf.float32)

    is_jpeg = tf.equal(head, b"\xff\xd8")
    is_png = tf.equal(tf.strings.substr(b, 0, 8), b"\x89PNG\r\n\x1a\n")
    img = tf.case([(is_jpeg, jpeg), (is_png, png)], default=other)
    img.set_shape([None, None, 3])
    return img


def decode_images(image_bytes, max_pixels=DEFAULT_MAX_PIXELS):
    """tf.string (N,) encoded images -> float32 (N,H,W,3) RGB in [0,1].

    JPEG, PNG (incl. 16-bit), BMP, GIF (first frame), WebP; gray and RGBA become RGB. EXIF
    orientation is NOT applied (clients should send upright pixels). All images in one request
    must have the same size. The headers are checked first (``check_request``): an empty
    request, an unknown format or more than ``max_pixels`` pixels in total raise
    ``InvalidArgumentError`` before any image is decoded.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    with tf.control_dependencies(check_request(image_bytes, max_pixels)):
        image_bytes = tf.identity(image_bytes)

    first_shape = tf.shape(_decode_one(image_bytes[0]))

    def decode_checked(b):
        img = _decode_one(b)
        check = tf.debugging.assert_equal(
            tf.shape(img), first_shape,
            message="all images in one request must have the same height and width")
        with tf.control_dependencies([check]):
            return tf.identity(img)

    return tf.map_fn(decode_checked, image_bytes,
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32))


def make_bytes_fn(predict_fn, max_pixels=DEFAULT_MAX_PIXELS):
    """Python function tf.string (N,) encoded images -> the outputs of ``predict_fn``; requests
    of more than ``max_pixels`` pixels are refused before decoding (see ``decode_images``)."""

    def predict_bytes(image_bytes):
        return predict_fn(decode_images(image_bytes, max_pixels))

    return predict_bytes
