"""Shared image reading / atomic writing (tf_defocus.imageio) and units."""

import os

import cv2
import numpy as np
import pytest

from tf_defocus import imageio, units
from tf_defocus.artifacts import ModelInfo, read_info, write_info


def _png(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def test_reads_color_as_rgb_float(tmp_path):
    bgr = np.zeros((16, 20, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    img = imageio.read_image(_png(tmp_path / "red.png", bgr))
    assert img.shape == (16, 20, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img[0, 0], [1.0, 0.0, 0.0])


def test_gray_rgba_16bit(tmp_path):
    gray = np.full((12, 10), 128, np.uint8)
    assert imageio.read_image(_png(tmp_path / "g.png", gray)).shape == (12, 10, 3)
    rgba = np.zeros((12, 10, 4), np.uint8)
    rgba[..., 0] = 255  # blue in BGRA
    rgba[..., 3] = 7
    img = imageio.read_image(_png(tmp_path / "a.png", rgba))
    np.testing.assert_allclose(img[0, 0], [0.0, 0.0, 1.0])
    deep = np.full((12, 10, 3), 65535, np.uint16)
    np.testing.assert_allclose(imageio.read_image(_png(tmp_path / "d.png", deep)), 1.0)


def test_exif_orientation_applied(tmp_path):
    # A 2x-wide JPEG tagged "rotate 90 CW" (orientation 6) must come back tall.
    img = np.zeros((16, 32, 3), np.uint8)
    img[:, :16] = 255
    ok, buf = cv2.imencode(".jpg", img)
    jpeg = buf.tobytes()
    # APP1 Exif segment with a single IFD0 entry: Orientation (0x0112) = 6, little endian.
    tiff = (b"II*\x00\x08\x00\x00\x00" + b"\x01\x00" +
            b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00" + b"\x00\x00\x00\x00")
    app1 = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
    path = tmp_path / "rot.jpg"
    path.write_bytes(jpeg[:2] + segment + jpeg[2:])
    out = imageio.read_image(path)
    assert out.shape[:2] == (32, 16)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n garbage"])
def test_corrupt_files_raise_naming_file(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(imageio.ImageReadError, match="bad.png"):
        imageio.read_image(path)


def test_truncated_png_and_jpeg(tmp_path):
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    for ext in (".png", ".jpg"):
        ok, buf = cv2.imencode(ext, img)
        path = tmp_path / f"cut{ext}"
        path.write_bytes(buf.tobytes()[: len(buf) // 2])
        with pytest.raises(imageio.ImageReadError, match=f"cut{ext}"):
            imageio.read_image(path)


def test_tiny_image_rejected(tmp_path):
    with pytest.raises(imageio.ImageReadError, match="at least"):
        imageio.read_image(_png(tmp_path / "tiny.png", np.zeros((3, 3), np.uint8)))


def test_to_rgb_float_rejects_nan_and_bad_shapes():
    with pytest.raises(imageio.ImageReadError, match="NaN"):
        imageio.to_rgb_float(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(imageio.ImageReadError, match="shape"):
        imageio.to_rgb_float(np.zeros((4, 4, 2), np.uint8))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npy"
    with pytest.raises(RuntimeError):
        with imageio.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    imageio.write_npy(target, np.arange(3))
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert os.listdir(tmp_path) == ["out.npy"]


def test_list_images_expands_and_reports_missing(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    names = [p.name for p in imageio.list_images([str(tmp_path)])]
    assert names == ["a.jpg", "b.png"]
    assert [p.name for p in imageio.list_images([str(tmp_path / "*.png")])] == ["b.png"]
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        imageio.list_images([str(tmp_path / "nothing_here")])


def test_units_round_trip():
    np.testing.assert_allclose(units.norm_to_sigma(units.sigma_to_norm(3.5)), 3.5)
    np.testing.assert_allclose(units.coc_to_sigma([0.5, 1.0, 29.0]), [0.0, 0.0, 7.0])
    np.testing.assert_allclose(units.focus_from_sigma(7.0), 0.0)


def test_model_info_sidecar_round_trip(tmp_path):
    info = ModelInfo(kind="defocus", input_size=(512, 512), quantization="int8")
    write_info(tmp_path / "m.tflite", info)
    assert (tmp_path / "m.json").is_file()
    assert read_info(tmp_path / "m.tflite") == info
    with pytest.raises(ValueError, match="kind"):
        ModelInfo(kind="depth")
