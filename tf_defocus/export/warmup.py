"""TF Serving warm-up records: ``assets.extra/tf_serving_warmup_requests``.

TF Serving replays these ``PredictionLog`` protos (a TFRecord file, at most 1000 records) when
it loads a version, so the first real request does not pay for lazy initialisation
(https://www.tensorflow.org/tfx/serving/saved_model_warmup).

``tensorflow-serving-api`` would give the generated classes but pins its own TensorFlow, so the
few messages needed are serialised here with the protobuf wire format; the embedded
``TensorProto`` comes from TensorFlow itself (``tf.make_tensor_proto``). Field numbers from
``tensorflow_serving/apis``: ``prediction_log.proto`` (PredictionLog.predict_log = 6,
PredictLog.request = 1), ``predict.proto`` (PredictRequest.model_spec = 1, inputs = 2 as
map<string, TensorProto>), ``model.proto`` (ModelSpec.name = 1, signature_name = 3).
A map field is encoded as repeated entries ``{key = 1, value = 2}``.
"""

import numpy as np
import tensorflow as tf

WARMUP_DIR = "assets.extra"
WARMUP_FILENAME = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000   # TF Serving's limit


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number, payload):
    """Length-delimited field (wire type 2): strings, bytes and embedded messages."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def model_spec_bytes(model_name, signature_name):
    """Serialized ``tensorflow.serving.ModelSpec`` (name, signature_name; latest version)."""
    return _field_bytes(1, model_name) + _field_bytes(3, signature_name)


def predict_request_bytes(model_name, signature_name, inputs):
    """Serialized ``PredictRequest``; ``inputs``: dict name -> array-like (-> TensorProto)."""
    out = _field_bytes(1, model_spec_bytes(model_name, signature_name))
    for key in sorted(inputs):
        tensor = tf.make_tensor_proto(inputs[key]).SerializeToString()
        out += _field_bytes(2, _field_bytes(1, key) + _field_bytes(2, tensor))
    return out


def prediction_log_bytes(model_name, signature_name, inputs):
    """Serialized ``PredictionLog`` holding ``predict_log { request { ... } }``."""
    request = predict_request_bytes(model_name, signature_name, inputs)
    return _field_bytes(6, _field_bytes(1, request))


def warmup_image(height, width, seed=0):
    """A deterministic smooth test picture, uint8 (H, W, 3): gradients, a disc and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot(yy - height / 2, xx - width / 2) / max(height, width)
    img = np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1), (r < 0.25) * 0.8 + 0.1], -1)
    img = img + rng.normal(0.0, 0.02, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_warmup_requests(saved_model_dir, model_name, requests):
    """Write ``requests`` (list of (signature_name, {input name: array})) as the warm-up file
    of ``saved_model_dir``; returns its path."""
    if not 0 < len(requests) <= MAX_WARMUP_RECORDS:
        raise ValueError(f"need 1..{MAX_WARMUP_RECORDS} warm-up requests, got {len(requests)}")
    out_dir = tf.io.gfile.join(str(saved_model_dir), WARMUP_DIR)
    tf.io.gfile.makedirs(out_dir)
    path = tf.io.gfile.join(out_dir, WARMUP_FILENAME)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            writer.write(prediction_log_bytes(model_name, signature_name, inputs))
    return path


def default_warmup_requests(size=(256, 256), float_size=(64, 64)):
    """One bytes request (a JPEG of ``size``) for ``serving_default`` and one float request
    (1 x ``float_size`` x 3) for ``serve``."""
    from tf_defocus.export.graph import BYTES_INPUT, BYTES_SIGNATURE, IMAGE_INPUT, SERVE_SIGNATURE
    jpeg = tf.io.encode_jpeg(warmup_image(*size), quality=90).numpy()
    small = warmup_image(*float_size, seed=1).astype(np.float32)[None] / 255.0
    return [(BYTES_SIGNATURE, {BYTES_INPUT: np.array([jpeg], dtype=object)}),
            (SERVE_SIGNATURE, {IMAGE_INPUT: small})]
