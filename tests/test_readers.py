"""Readers of the public data-set layouts: label conventions, mask polarity, pairing, bad input."""

import logging
import os

import numpy as np
import pytest

from tf_defocus import imageio
from tf_defocus.data import readers


def _write_rgb(path, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    imageio.write_image(path, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _sigma_grid(h=24, w=32):
    # Multiples of 0.1 px in [0, 7]: exactly representable in both SYNDOF conventions.
    return (np.arange(h * w).reshape(h, w) % 71 / 10.0).astype(np.float32)


def _blur_region(h=24, w=32):
    m = np.zeros((h, w), np.float32)
    m[:, w // 2:] = 1.0
    m[:4, :4] = 1.0
    return m


# ----------------------------------------------------------------------------- SYNDOF labels


def test_syndof_conventions_decode_to_the_same_sigma(tmp_path):
    sigma = _sigma_grid()
    for conv in readers.LABEL_CONVENTIONS:
        root = tmp_path / conv
        _write_rgb(root / "image" / "a.png")
        imageio.write_image(root / "blur_map" / "a.png", readers.encode_syndof_sigma(sigma, conv))
    s10 = readers.decode_syndof_sigma(tmp_path / "sigma10" / "blur_map" / "a.png", "sigma10")
    rel = readers.decode_syndof_sigma(tmp_path / "released" / "blur_map" / "a.png", "released")
    np.testing.assert_allclose(s10, sigma, atol=1e-5)
    np.testing.assert_allclose(rel, sigma, atol=1e-5)
    # The same files through the data-set reader.
    for conv in readers.LABEL_CONVENTIONS:
        src = readers.syndof(tmp_path / conv, conv)
        image, label = src.load(src.examples[0])
        assert src.label_kind == "sigma" and image.shape == (24, 32, 3) and label.dtype == np.float32
        np.testing.assert_allclose(label, sigma, atol=1e-5)


def test_released_convention_hand_values(tmp_path):
    # Released SYNDOF stores x * 10 with sigma = (x - 1) / 2; x below 1 means sharp.
    raw = np.array([[0, 5, 10, 11], [20, 30, 150, 100]], np.uint16)
    raw = np.repeat(np.repeat(raw, 4, 0), 4, 1)
    path = tmp_path / "m.png"
    imageio.write_image(path, np.repeat(raw[..., None], 3, -1))
    sigma = readers.decode_syndof_sigma(path, "released")[::4, ::4]
    np.testing.assert_allclose(sigma, [[0, 0, 0, 0.05], [0.5, 1.0, 7.0, 4.5]], atol=1e-6)
    np.testing.assert_allclose(readers.decode_syndof_sigma(path, "sigma10")[::4, ::4], raw[::4, ::4] / 10)


def test_syndof_convention_is_required(tmp_path):
    with pytest.raises(ValueError, match="label_convention"):
        readers.syndof(tmp_path, "sigma7")


# ----------------------------------------------------------------------------- masks


@pytest.mark.parametrize("layout", ["cuhk", "dut"])
def test_mask_polarity_both_normalise_to_blurred_is_one(tmp_path, layout):
    truth = _blur_region()
    white_blurred = (truth * 255).astype(np.uint8)
    black_blurred = ((1 - truth) * 255).astype(np.uint8)
    sub = {"cuhk": ("image", "gt"), "dut": ("dut500-source", "dut500-gt")}[layout]
    for name, gt, value in (("white", white_blurred, 255), ("black", black_blurred, 0)):
        root = tmp_path / name
        _write_rgb(root / sub[0] / "x1.jpg")
        imageio.write_image(root / sub[1] / "x1.png", gt)
        src = readers.mask_source(root, layout, value)
        _, mask = src.load(src.examples[0])
        assert src.label_kind == "mask"
        np.testing.assert_array_equal(mask, truth)
    # Reading a copy with the wrong polarity gives the complement (so the flag matters).
    src = readers.mask_source(tmp_path / "white", layout, 0)
    np.testing.assert_array_equal(src.load(src.examples[0])[1], 1 - truth)


def test_mask_variants_zero_one_colour_jpeg(tmp_path):
    truth = _blur_region(48, 64)
    p01 = tmp_path / "zero_one.png"
    imageio.write_image(p01, truth.astype(np.uint8))  # stored as 0/1
    np.testing.assert_array_equal(readers.decode_binary_mask(p01, 255), truth)
    prgb = tmp_path / "rgb.bmp"
    imageio.write_image(prgb, np.repeat((truth * 255).astype(np.uint8)[..., None], 3, -1))
    np.testing.assert_array_equal(readers.decode_binary_mask(prgb, 255), truth)
    pjpg = tmp_path / "mask.jpg"
    imageio.write_image(pjpg, ((1 - truth) * 255).astype(np.uint8))  # JPEG ringing near edges
    got = readers.decode_binary_mask(pjpg, 0)
    assert set(np.unique(got)) <= {0.0, 1.0}
    assert np.mean(got == truth) > 0.98


def test_mask_polarity_is_required(tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "gt").mkdir()
    with pytest.raises(ValueError, match="blurred_value"):
        readers.cuhk(tmp_path, None)
    with pytest.raises(ValueError, match="blurred_value"):
        readers.decode_binary_mask(tmp_path / "x.png", 1)


def test_dut_layout_detection(tmp_path):
    with pytest.raises(readers.DataError, match="no DUT-DBD layout"):
        readers.find_dut_layout(tmp_path)
    for d in ("DUT500S-Testing", "DUT500GT-Testing"):
        (tmp_path / d).mkdir()
    assert readers.find_dut_layout(tmp_path) == (tmp_path / "DUT500S-Testing", tmp_path / "DUT500GT-Testing")
    for d in ("DUT600S_Training", "DUT600GT_Training"):
        (tmp_path / d).mkdir()
    with pytest.raises(readers.DataError, match="several"):
        readers.find_dut_layout(tmp_path)


def test_cuhk_wrong_layout_names_the_folder(tmp_path):
    (tmp_path / "image").mkdir()
    with pytest.raises(readers.DataError, match=str(tmp_path / "gt")):
        readers.cuhk(tmp_path, 255)


# ----------------------------------------------------------------------------- RTF, flat folders


def test_rtf_npy_sigma_and_bad_values(tmp_path):
    _write_rgb(tmp_path / "image" / "r1.png", 24, 32)
    sigma = np.linspace(0, 3, 26 * 33, dtype=np.float64).reshape(26, 33)  # larger than the image
    (tmp_path / "gt").mkdir()
    np.save(tmp_path / "gt" / "r1.npy", sigma)
    src = readers.rtf(tmp_path)
    image, label = src.load(src.examples[0])
    assert image.shape == (24, 32, 3) and label.shape == (24, 32) and label.dtype == np.float32
    np.testing.assert_allclose(label, sigma[:24, :32], rtol=1e-6)
    bad = sigma.copy()
    bad[3, 3] = np.nan
    np.save(tmp_path / "gt" / "r1.npy", bad)
    with pytest.raises(readers.DataError, match="r1.npy.*NaN"):
        src.load(src.examples[0])
    np.save(tmp_path / "gt" / "r1.npy", -sigma)
    with pytest.raises(readers.DataError, match="r1.npy.*negative"):
        src.load(src.examples[0])
    (tmp_path / "gt" / "r1.npy").write_bytes(b"not numpy")
    with pytest.raises(readers.DataError, match="r1.npy"):
        src.load(src.examples[0])


def test_unlabelled_flat_folder_ignores_hidden_and_other_files(tmp_path):
    for n in ("b.jpg", "a.png"):
        _write_rgb(tmp_path / n)
    _write_rgb(tmp_path / ".a.tmp123.tmp.png")  # an interrupted atomic write
    (tmp_path / "notes.txt").write_text("x")
    src = readers.unlabelled(tmp_path)
    assert [os.path.basename(e.image) for e in src.examples] == ["a.png", "b.jpg"]
    assert src.label_kind is None
    image, label = src.load(src.examples[0])
    assert image.shape == (24, 32, 3) and label is None
    with pytest.raises(readers.DataError, match="no such folder"):
        readers.unlabelled(tmp_path / "missing")


# ----------------------------------------------------------------------------- bad input


def _syndof_set(root, names, h=24, w=32):
    for i, n in enumerate(names):
        _write_rgb(root / "image" / f"{n}.png", h, w, seed=i)
        imageio.write_image(root / "blur_map" / f"{n}.png", readers.encode_syndof_sigma(_sigma_grid(h, w)))


def test_missing_pair_fails_naming_the_file_or_is_skipped(tmp_path, caplog):
    _syndof_set(tmp_path, ["a", "b"])
    _write_rgb(tmp_path / "image" / "lonely.png")
    imageio.write_image(tmp_path / "blur_map" / "orphan.png", readers.encode_syndof_sigma(_sigma_grid()))
    with pytest.raises(readers.DataError) as err:
        readers.syndof(tmp_path, "sigma10")
    assert "lonely.png" in str(err.value) and "orphan.png" in str(err.value)
    with caplog.at_level(logging.WARNING):
        src = readers.syndof(tmp_path, "sigma10", skip_bad=True)
    assert [os.path.basename(e.image) for e in src.examples] == ["a.png", "b.png"]
    assert "lonely.png" in caplog.text and "orphan.png" in caplog.text


def test_size_mismatch_names_both_files(tmp_path):
    _write_rgb(tmp_path / "image" / "a.png", 24, 32)
    imageio.write_image(tmp_path / "blur_map" / "a.png", readers.encode_syndof_sigma(_sigma_grid(24, 30)))
    src = readers.syndof(tmp_path, "sigma10")
    with pytest.raises(readers.DataError, match=r"blur_map/a.png: label is 30x24 px but image .*image/a.png is 32x24"):
        src.load(src.examples[0])


def test_corrupt_and_truncated_files_are_named(tmp_path):
    _syndof_set(tmp_path, ["a", "b", "c"])
    (tmp_path / "image" / "a.png").write_bytes(b"garbage, not a png")
    good = (tmp_path / "blur_map" / "b.png").read_bytes()
    (tmp_path / "blur_map" / "b.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "blur_map" / "c.png").write_bytes(b"")
    src = readers.syndof(tmp_path, "sigma10")
    with pytest.raises(imageio.ImageReadError, match="image/a.png"):
        src.load(src.examples[0])
    with pytest.raises(readers.DataError, match="blur_map/b.png"):
        src.load(src.examples[1])
    with pytest.raises(readers.DataError, match="blur_map/c.png: empty"):
        src.load(src.examples[2])


def test_duplicate_stems_are_an_error(tmp_path):
    _syndof_set(tmp_path, ["a"])
    _write_rgb(tmp_path / "image" / "a.jpg")
    with pytest.raises(readers.DataError, match="same stem"):
        readers.syndof(tmp_path, "sigma10")


def test_label_suffix_pairing(tmp_path):
    _write_rgb(tmp_path / "img" / "p1.jpg")
    imageio.write_image(tmp_path / "gt" / "p1_gt.png", (_blur_region() * 255).astype(np.uint8))
    src = readers.blur_masks(tmp_path / "img", tmp_path / "gt", 255, label_suffix="_gt")
    assert src.examples[0].label.endswith("p1_gt.png")
    np.testing.assert_array_equal(src.load(src.examples[0])[1], _blur_region())
