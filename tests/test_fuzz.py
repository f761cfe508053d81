"""Bounded fuzzing of image decoding (issue 12): whatever bytes come in, only the package's own
ImageReadError (naming the input) comes out of ``imageio.decode_image_bytes``."""

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf_defocus import imageio


def _encoded(ext):
    img = (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


VALID = {".png": _encoded(".png"), ".jpg": _encoded(".jpg")}


def _decode(data):
    try:
        out = imageio.decode_image_bytes(data, name="fuzz-input")
    except imageio.ImageReadError as e:
        assert "fuzz-input" in str(e)
        return None
    assert isinstance(out, np.ndarray) and out.size > 0
    return out


def test_valid_seeds_decode():
    for data in VALID.values():
        assert _decode(data).shape[:2] == (24, 32)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_give_only_image_read_errors(data):
    _decode(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(VALID)),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       st.integers(0, 10**6), st.binary(max_size=64))
def test_mutated_png_and_jpeg_give_only_image_read_errors(ext, edits, cut, tail):
    data = bytearray(VALID[ext])
    for pos, value in edits:
        data[pos % len(data)] = value
    data = bytes(data[:cut % (len(data) + 1)]) + tail
    _decode(data)
