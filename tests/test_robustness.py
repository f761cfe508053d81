"""Regression tests of the hardening issue (#12): one test per defect, and the bad-input table
of image decoding. Each test is small (tiny models, header-only "bombs") and runs in seconds.
"""

import numpy as np
import pytest

from tf_defocus import visualize


# ------------------------------------------------------------------ 10: colour-map direction

def _is_red(rgb):
    r, g, b = (int(v) for v in rgb)
    return r > 100 and r > 3 * b and r > 3 * g


def _is_blue(rgb):
    r, g, b = (int(v) for v in rgb)
    return b > 100 and b > 3 * r and b > 3 * g


def test_colour_map_red_is_in_focus_blue_is_blurred():
    sigma = np.array([[0.0, 3.5, 7.0, 20.0]], np.float32)
    rgb = visualize.colorize_sigma(sigma, legend=False)
    assert _is_red(rgb[0, 0]), rgb[0, 0]        # sigma 0: in focus
    assert _is_blue(rgb[0, 2]), rgb[0, 2]       # sigma 7 px: most blurred
    assert _is_blue(rgb[0, 3]), rgb[0, 3]       # clipped at 7 px
    assert rgb[0, 1, 1] > max(rgb[0, 0, 1], rgb[0, 2, 1])   # mid-way: green, not red/blue
    wide = visualize.colorize_sigma(sigma, legend=False, sigma_max_px=14.0)   # read at scale 1/2
    np.testing.assert_array_equal(wide[0, 2], rgb[0, 1])   # 7 px is mid-way on a 0..14 px map
    assert _is_blue(wide[0, 3])
    # The focus-weight map uses the same direction: 1 = in focus = red.
    weight = visualize.colorize_weight(np.array([[1.0, 0.0]], np.float32), legend=False)
    assert _is_red(weight[0, 0]) and _is_blue(weight[0, 1])
    # The legend bar agrees: the "0 px" end (bottom) red, the "7 px" end (top) blue.
    h = 240
    full = visualize.colorize_sigma(np.zeros((h, 4), np.float32))
    bar = full[:, 4:].astype(int)
    saturated = bar.max(-1) - bar.min(-1) > 60      # colour, not the black/white labels
    column = bar[:, np.argmax(saturated.sum(0))]
    rows = np.flatnonzero(saturated[:, np.argmax(saturated.sum(0))])
    assert rows[-1] - rows[0] > h // 2
    assert _is_blue(column[rows[0]]) and _is_red(column[rows[-1]])


# --------------------------------------------------- 1: never checkpoint non-finite state

def _checkpoint_is_finite(prefix):
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
    bad = []
    for name, _ in tf.train.list_variables(prefix):
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.all(
                np.isfinite(value)):
            bad.append(name)
    return bad


def test_absurd_learning_rate_never_poisons_the_last_good_checkpoint(tmp_path):
    import tensorflow as tf
    from tests.test_training import make_element, task_for, tiny_cfg
    from tf_defocus.training.dmenet_task import build_trainer
    from tf_defocus.training.loop import NonFiniteLossError, run_training

    elements = [make_element(i) for i in range(3)]
    ckpt_dir = tmp_path / "checkpoints"
    t = build_trainer(tiny_cfg(variant="B"), seed=0)
    t.run_eagerly = True
    quiet = dict(checkpoint_every=1, log_every=1, verbose=0, log=lambda m: None)
    run_training(task_for(t, elements), tmp_path, 2, learning_rate=1e-3, **quiet)
    model_written = (tmp_path / "blur_estimator.keras").stat().st_mtime_ns
    # 1e39 is inf in float32: step 3's loss is still finite (computed before the update), but
    # the update makes the weights NaN. Nothing of step 3 may be saved.
    with pytest.raises(NonFiniteLossError) as info:
        run_training(task_for(t, elements), tmp_path, 10, learning_rate=1e39, **quiet)
    assert info.value.step == 3 and info.value.bad_variables
    assert info.value.last_checkpoint.endswith("ckpt-2")
    assert "last good checkpoint is" in str(info.value) and "ckpt-2" in str(info.value)
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    assert latest.endswith("ckpt-2")
    assert _checkpoint_is_finite(latest) == []
    assert (tmp_path / "blur_estimator.keras").stat().st_mtime_ns == model_written

    # Resuming with a sane rate works from that checkpoint (fresh trainer, as a rerun would).
    t2 = build_trainer(tiny_cfg(variant="B"), seed=0)
    t2.run_eagerly = True
    res = run_training(task_for(t2, elements), tmp_path, 4, learning_rate=1e-3, **quiet)
    assert (res.start_step, res.step) == (2, 4)
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    assert latest.endswith("ckpt-4") and _checkpoint_is_finite(latest) == []
    assert all(np.all(np.isfinite(np.asarray(v))) for v in t2.trainable_variables)


@pytest.mark.parametrize("flag, message", [
    ("--learning_rate=1e39", "--learning_rate must be a finite number > 0"),
    ("--learning_rate=0", "--learning_rate must be a finite number > 0"),
    ("--learning_rate=nan", "--learning_rate must be a finite number > 0"),
    ("--lr_decay_rate=1.5", "--lr_decay_rate must be in (0, 1]"),
    ("--lr_decay_rate=0", "--lr_decay_rate"),
    ("--train_steps=-5", "--train_steps must be >= 1"),
    ("--checkpoint_every=-1", "--checkpoint_every"),
    ("--max_to_keep=0", "--max_to_keep must be >= 1"),
    ("--width=inf", "--width must be a finite number > 0"),
    ("--content_weight=-1", "--content_weight must be a finite number >= 0"),
    ("--batch_synthetic=-2", "--batch_synthetic must be >= 0"),
])
def test_train_cli_rejects_out_of_range_flags_in_one_line(tmp_path, capsys, flag, message):
    from absl import flags

    from tf_defocus import train
    fv = train.define_flags(flags.FlagValues())
    fv(["train", f"--model_dir={tmp_path / 'run'}", flag])
    code = train.main(["train"], fv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------ image decoding: bad inputs

def _chunk(ctype, payload):
    import zlib
    return (len(payload).to_bytes(4, "big") + ctype + payload
            + zlib.crc32(ctype + payload).to_bytes(4, "big"))


def png_header_bomb(width, height):
    """A valid PNG header claiming width x height 8-bit RGB, a tiny IDAT and IEND (the file is
    a few dozen bytes; decoding it would allocate width * height * 3 bytes)."""
    import zlib
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def jpeg_header_bomb(width, height):
    sof = bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes(
        [3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0])
    return (b"\xff\xd8" + b"\xff\xc0" + (len(sof) + 2).to_bytes(2, "big") + sof
            + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 32 + b"\xff\xd9")


def _bombs():
    w = h = 50000       # 2500 MP: above OpenCV's own 2^30 limit too
    bmp = (b"BM" + (54).to_bytes(4, "little") + bytes(4) + (54).to_bytes(4, "little")
           + (40).to_bytes(4, "little") + w.to_bytes(4, "little") + h.to_bytes(4, "little")
           + (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + bytes(24))
    gif = b"GIF89a" + (65535).to_bytes(2, "little") * 2 + bytes(3) + b";"
    vp8x = bytes(4) + (16383).to_bytes(3, "little") * 2
    webp_body = b"WEBP" + b"VP8X" + len(vp8x).to_bytes(4, "little") + vp8x
    webp = b"RIFF" + len(webp_body).to_bytes(4, "little") + webp_body
    ifd = ((2).to_bytes(2, "little")
           + (256).to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little")
           + w.to_bytes(4, "little")
           + (257).to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little")
           + h.to_bytes(4, "little") + bytes(4))
    tiff = b"II*\x00" + (8).to_bytes(4, "little") + ifd
    return {"bomb_240mp.png": png_header_bomb(20000, 12000),
            "bomb_1600mp.png": png_header_bomb(40000, 40000),
            "bomb.jpg": jpeg_header_bomb(65535, 65535), "bomb.bmp": bmp, "bomb.gif": gif,
            "bomb.webp": webp, "bomb.tif": tiff, "bomb.ppm": b"P6\n# big\n50000 50000\n255\n"
            + bytes(64)}


def _encoded(ext, array, params=()):
    import cv2
    ok, buf = cv2.imencode(ext, array, list(params))
    assert ok
    return buf.tobytes()


def _photo(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) % 256
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


def _exif_rotated_jpeg():
    jpeg = _encoded(".jpg", _photo(16, 32))
    tiff = (b"II*\x00\x08\x00\x00\x00" + b"\x01\x00" +
            b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00" + b"\x00\x00\x00\x00")
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + jpeg[2:]


def _motion_photo_tail():
    # What phones append after EOI: an MP4 whose bytes happen to hold JPEG markers too.
    return (b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8 + b"\xff\xd8\xff\xd9" * 4
            + b"\xff\xd9\x00")


def _bad_input_table():
    photo = _photo()
    png, jpg = _encoded(".png", photo), _encoded(".jpg", photo)
    table = [
        # name, bytes (None: do not create), expected shape or error regex
        ("corrupt.png", b"\x89PNG\r\n\x1a\n garbage" * 3, "not a readable image|truncated"),
        ("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "truncated|not a readable"),
        ("truncated.png", png[: len(png) // 2], "truncated"),
        ("truncated.jpg", jpg[: len(jpg) // 2], "truncated"),
        ("no_eoi.jpg", jpg[:-2], "truncated"),
        ("empty.png", b"", "empty file"),
        ("text.jpg", b"this is a text file, not a photo\n" * 20, "not a readable image"),
        ("missing.png", None, "no such file"),
        ("one_pixel.png", _encoded(".png", photo[:1, :1]), "at least 8 px"),
        ("eight.png", _encoded(".png", photo[:8, :8]), (8, 8, 3)),
        ("gray.png", _encoded(".png", photo[..., 0]), (48, 64, 3)),
        ("rgba.png", _encoded(".png", np.dstack([photo, photo[..., :1]])), (48, 64, 3)),
        ("deep.png", _encoded(".png", photo.astype(np.uint16) * 257), (48, 64, 3)),
        ("exif_rotated.jpg", _exif_rotated_jpeg(), (32, 16, 3)),
        ("trailing.png", png + b"\x00garbage after IEND" * 50, (48, 64, 3)),
        ("motion_photo.jpg", jpg + _motion_photo_tail(), (48, 64, 3)),
    ]
    table += [(name, data, r"limit is 200 MP") for name, data in _bombs().items()]
    return table


BAD_INPUTS = _bad_input_table()


@pytest.mark.parametrize("name, data, expected", BAD_INPUTS, ids=[t[0] for t in BAD_INPUTS])
def test_image_decoding_bad_input_table(tmp_path, capfd, name, data, expected):
    from tf_defocus import imageio
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    if isinstance(expected, tuple):
        img = imageio.read_image(path)
        assert img.shape == expected and img.dtype == np.float32
        assert np.all(np.isfinite(img)) and img.min() >= 0 and img.max() <= 1
    else:
        with pytest.raises(imageio.ImageReadError, match=expected) as info:
            imageio.read_image(path)
        assert type(info.value) is imageio.ImageReadError
        assert str(info.value).startswith(str(path)), str(info.value)
        assert "\n" not in str(info.value)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "cv2.error" not in err


# ---------------------------------------------- 2: data after the end marker is not "truncated"

def test_data_after_the_end_marker_decodes_exactly_as_the_original(tmp_path):
    from tf_defocus import imageio
    photo = _photo(40, 56, seed=3)
    for ext, tail in ((".jpg", _motion_photo_tail()), (".png", b"\x00\x00extra" * 300),
                      (".jpg", _encoded(".jpg", _photo(8, 8, seed=9))),   # MPO-like 2nd frame
                      (".png", b"IEND" + bytes(100))):
        original = _encoded(ext, photo)
        (tmp_path / f"a{ext}").write_bytes(original)
        (tmp_path / f"b{ext}").write_bytes(original + tail)
        np.testing.assert_array_equal(imageio.read_image(tmp_path / f"b{ext}"),
                                      imageio.read_image(tmp_path / f"a{ext}"))
        assert not imageio.is_truncated(original + tail)
        # ... while a cut anywhere inside the image still is truncated.
        for cut in (len(original) // 3, len(original) - 1):
            assert imageio.is_truncated(original[:cut]), (ext, cut)


# ------------------------------------- 4: header bombs refused before decoding, own error type

@pytest.mark.parametrize("name", sorted(_bombs()))
def test_header_bombs_are_refused_before_decoding(tmp_path, monkeypatch, name):
    from tf_defocus import imageio

    def no_decode(*args, **kwargs):
        raise AssertionError("decoder called for an image refused by its header")

    path = tmp_path / name
    path.write_bytes(_bombs()[name])
    assert path.stat().st_size < 1024
    monkeypatch.setattr(imageio.cv2, "imdecode", no_decode)
    with pytest.raises(imageio.ImageReadError, match=rf"{name}: image is \d+x\d+ px .*limit"):
        imageio.read_image(path)
    from tf_defocus import montage                # its masks are read through imageio too
    with pytest.raises(imageio.ImageReadError, match=rf"{name}: image is"):
        montage._read_mask(path)


def test_decoder_errors_become_image_read_errors(tmp_path, monkeypatch):
    import cv2
    from tf_defocus import imageio

    def failing(*args, **kwargs):
        raise cv2.error("OpenCV(5.0.0) loadsave.cpp:77: error: (-215:Assertion failed) "
                        "pixels <= CV_IO_MAX_IMAGE_PIXELS in function 'validateInputImageSize'")

    path = tmp_path / "odd.exr"
    path.write_bytes(b"v/1\x01" + bytes(64))       # a format whose header is not parsed here
    monkeypatch.setattr(imageio.cv2, "imdecode", failing)
    with pytest.raises(imageio.ImageReadError, match="odd.exr: not a readable image .*pixels"):
        imageio.read_image(path)


# ------------------------------------------- 3 + 8: the serving signature (size limit, JPEG)

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(keras model, loaded SavedModel, version dir) of a width-0.125 BlurEstimator."""
    import keras
    import tensorflow as tf
    from tests import export_checks as ec
    from tf_defocus.export import export_saved_model
    from tf_defocus.models import BlurEstimator
    keras.utils.set_random_seed(0)
    model = BlurEstimator(width=0.125).inference_model()
    images, _ = ec.data_engine_images(2, 64, 64)
    ec.conditioned(model, images)
    version_dir = export_saved_model(model, tmp_path_factory.mktemp("serving"),
                                     warmup_requests=False)
    return model, tf.saved_model.load(str(version_dir)), version_dir


def _peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_serving_refuses_oversize_and_empty_requests_and_keeps_answering(served):
    import cv2
    import tensorflow as tf
    from tf_defocus import artifacts
    from tf_defocus.export.graph import DEFAULT_MAX_PIXELS
    _, loaded, version_dir = served
    sd = loaded.signatures["serving_default"]
    photo = _photo(40, 56)
    png = _encoded(".png", photo)
    assert sd(image_bytes=tf.constant([png]))["sigma_px"].shape == (1, 40, 56, 1)

    # 20000 x 12000 (240 MP) claimed by a ~100-byte PNG: decoding it would need 2.9 GB as
    # float32 (and aborted the whole process with std::bad_alloc).
    bomb = png_header_bomb(20000, 12000)
    assert len(bomb) < 200
    rss_before = _peak_rss_mb()
    flat = _encoded(".png", np.zeros((1024, 1024), np.uint8))    # 1 MP in a few KB
    for request in ([bomb], [png, bomb], [jpeg_header_bomb(20000, 12000)], [flat] * 17):
        with pytest.raises(tf.errors.InvalidArgumentError, match="request too large"):
            sd(image_bytes=tf.constant(request))
    assert _peak_rss_mb() - rss_before < 300
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty request"):
        sd(image_bytes=tf.constant([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG, PNG, BMP, GIF or WebP"):
        sd(image_bytes=tf.constant([b"GIF? no, plain text"]))
    # The process still answers, and WebP is accepted (8-bit, like the other formats).
    out = sd(image_bytes=tf.constant([png]))["sigma_px"].numpy()
    webp = sd(image_bytes=tf.constant([_encoded(".webp", photo, [cv2.IMWRITE_WEBP_QUALITY, 101])]))
    np.testing.assert_allclose(webp["sigma_px"].numpy(), out, atol=1e-4)   # lossless WebP
    # The limit is stated in the sidecar.
    info = artifacts.read_info(version_dir)
    assert info.max_pixels == DEFAULT_MAX_PIXELS
    assert f"at most {DEFAULT_MAX_PIXELS} pixels per request" in info.normalisation


def test_served_jpeg_map_matches_local_predict(served, tmp_path):
    import cv2
    import tensorflow as tf
    from tf_defocus import imageio
    from tf_defocus.export import graph
    model, loaded, _ = served
    path = tmp_path / "photo.jpg"
    path.write_bytes(_encoded(".jpg", _photo(48, 64, seed=5), [cv2.IMWRITE_JPEG_QUALITY, 90]))
    local = imageio.read_image(path)            # OpenCV's decoder, as predict reads photos
    decoded = graph.decode_images(tf.constant([path.read_bytes()])).numpy()[0]
    np.testing.assert_allclose(decoded, local, atol=1e-6)
    served_sigma = loaded.signatures["serving_default"](
        image_bytes=tf.constant([path.read_bytes()]))["sigma_px"].numpy()[0, ..., 0]
    local_sigma = 7.0 * np.asarray(model(local[None], training=False))[0, ..., 0]
    np.testing.assert_allclose(served_sigma, local_sigma, atol=1e-4)


# ------------------------------------- 6: orphans of a kill mid-save are removed at start

def test_orphaned_checkpoint_temp_dirs_are_removed_at_start(tmp_path):
    from tests.test_training import make_element, task_for, tiny_cfg
    from tf_defocus.training.dmenet_task import build_trainer
    from tf_defocus.training.loop import run_training

    ckpt_dir = tmp_path / "checkpoints"
    # What a kill during tf.train.CheckpointManager.save and atomic writes leaves behind.
    orphan = ckpt_dir / "ckpt-7_temp"
    orphan.mkdir(parents=True)
    (orphan / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 100)
    (orphan / "part-00000-of-00001.index").write_bytes(b"\0" * 10)
    tmp_model = tmp_path / ".blur_estimator.k2j_x9q1.tmp.keras"
    tmp_model.write_bytes(b"half a model")
    tmp_sidecar = tmp_path / ".blur_estimator.keras.ab12cd34.tmp.json"
    tmp_sidecar.write_text("{")
    keep = [tmp_path / "notes.txt", ckpt_dir / "ckpt-7_temp.txt", tmp_path / ".hidden.tmp.keras"]
    for p in keep:
        p.write_text("mine")
    messages = []
    t = build_trainer(tiny_cfg(variant="B"), seed=0)
    t.run_eagerly = True
    run_training(task_for(t, [make_element(0)]), tmp_path, 1, checkpoint_every=1, verbose=0,
                 log=messages.append)
    assert not orphan.exists() and not tmp_model.exists() and not tmp_sidecar.exists()
    assert all(p.exists() for p in keep)
    assert any("removed 3 leftover(s) of an interrupted save" in m for m in messages), messages
    assert sorted(p.name for p in ckpt_dir.iterdir() if p.is_dir()) == []


# --------------------------------------------- 9: plain progress lines when not a terminal

def test_training_progress_is_plain_lines_when_stdout_is_not_a_terminal(tmp_path, capsys):
    from tests.test_training import make_element, task_for, tiny_cfg
    from tf_defocus.training.dmenet_task import build_trainer
    from tf_defocus.training.loop import run_training

    t = build_trainer(tiny_cfg(variant="B"), seed=0)
    t.run_eagerly = True
    run_training(task_for(t, [make_element(0)]), tmp_path, 6, checkpoint_every=0, log_every=2,
                 verbose=1)                   # progress "bar" requested, stdout captured
    out = capsys.readouterr().out
    assert "\r" not in out and "\b" not in out
    lines = out.splitlines()
    assert [l.split()[1] for l in lines if l.startswith("step ")] == ["2/6", "4/6", "6/6"], out
    assert len(lines) <= 6, out


# ------------------------- 9: no TensorFlow start-up chatter, --help exits 0, --verbose works

def test_commands_print_no_tensorflow_chatter_and_help_exits_0():
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_DEFOCUS_VERBOSE", "TF_DEFOCUS_QUIET")}
    # absl's --help exited 1 for these three (generate and montage parse their own --help);
    # one process each, in parallel (each imports TensorFlow).
    commands = {m: [sys.executable, "-m", m, "--help"] for m in (
        "tf_defocus.train", "tf_defocus.export", "tf_defocus.convert_official")}
    procs = {k: subprocess.Popen(c, cwd=repo, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
             for k, c in commands.items()}
    results = {k: (p.communicate(timeout=300), p.returncode) for k, p in procs.items()}
    for name, ((out, err), code) in results.items():
        assert code == 0, (name, code, err[-2000:])
        assert "--" in out and "flags" in out.lower(), (name, out[:500])
        # oneDNN, "Could not find cuda drivers", cpu_feature_guard, absl's pre-init line
        assert err == "", (name, err)


IMPORT_ALL_SCRIPT = """
import importlib, json, pkgutil
from absl import app, flags, logging
import keras, tensorflow
before = set(flags.FLAGS)
import tf_defocus.train, tf_defocus.predict, tf_defocus.evaluate, tf_defocus.export.__main__
import tf_defocus.generate, tf_defocus.convert_official
for m in pkgutil.walk_packages(tf_defocus.__path__, "tf_defocus."):
    importlib.import_module(m.name)
print("RESULT " + json.dumps(sorted(set(flags.FLAGS) - before)))
"""


def test_all_clis_import_together_and_no_module_registers_flags():
    """Every CLI and library module imports in one process; none defines an absl flag at
    import (each CLI defines its flags in its run())."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    proc = subprocess.run([sys.executable, "-c", IMPORT_ALL_SCRIPT], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    assert json.loads(lines[-1][len("RESULT "):]) == []


def test_cli_entry_point_and_verbose_detection():
    from tf_defocus import cli
    assert cli.entry_point(["python", "-m", "tf_defocus.train", "--x"]) == "tf_defocus.train"
    assert cli.entry_point(["python", "-B", "-W", "ignore", "-mtf_defocus.export"]) == \
        "tf_defocus.export"
    assert cli.entry_point(["/venv/bin/python", "/venv/bin/tf-defocus-train", "--help"]) == \
        "tf-defocus-train"
    assert cli.entry_point(["python", "-c", "import tf_defocus"]) is None
    assert cli.entry_point(["python"]) is None
    env = {}
    assert not cli.wants_verbose(["prog", "--model_dir=x"], env)
    assert cli.wants_verbose(["prog", "--verbose"], env)
    assert cli.wants_verbose(["prog", "--verbosity=1"], env)
    assert not cli.wants_verbose(["prog", "--verbose", "--noverbose"], env)
    assert not cli.wants_verbose(["prog", "--", "--verbose"], env)
    assert cli.wants_verbose(["prog"], {"TF_DEFOCUS_VERBOSE": "1"})
    assert cli.asked_for_help(["prog", "--help"]) and not cli.asked_for_help(["prog", "-x"])
    for module in ("tf_defocus.train", "tf_defocus.generate", "tf_defocus.export",
                   "tf_defocus.convert_official", "tf_defocus.montage"):
        assert module in cli.QUIET_ENTRY_POINTS
        assert cli.QUIET_ENTRY_POINTS[module].startswith("tf-defocus-")


def test_inference_commands_switch_on_the_bfc_cpu_allocator(tmp_path):
    """predict / evaluate / montage set TF_CPU_ALLOCATOR_USE_BFC=true before TensorFlow loads
    (a user's own setting wins); other commands and library users are left alone."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    from tf_defocus import cli
    for name in ("tf_defocus.predict", "tf-defocus-evaluate", "tf_defocus.montage"):
        env = {}
        assert cli.bfc_allocator_for_inference_commands(name, env) and env == {cli.BFC_ENV: "true"}
    for name in ("tf_defocus.train", "tf-defocus-export", "pytest"):
        env = {}
        assert not cli.bfc_allocator_for_inference_commands(name, env) and env == {}
    env = {cli.BFC_ENV: "false"}
    assert not cli.bfc_allocator_for_inference_commands("tf_defocus.predict", env)
    assert env == {cli.BFC_ENV: "false"}
    # The real start-up order: a stand-in "tensorflow" records what it sees when it is imported.
    seen = tmp_path / "seen.txt"
    (tmp_path / "tensorflow.py").write_text(
        "import os\n"
        f"open({str(seen)!r}, 'w').write(os.environ.get({cli.BFC_ENV!r}, 'unset'))\n"
        "os._exit(0)\n")
    repo = Path(cli.__file__).resolve().parents[1]
    base = {k: v for k, v in os.environ.items() if k != cli.BFC_ENV}
    base["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(repo)])
    for module, extra, expected in (("tf_defocus.predict", {}, "true"),
                                    ("tf_defocus.train", {}, "unset"),
                                    ("tf_defocus.predict", {cli.BFC_ENV: "false"}, "false")):
        seen.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", module, "--help"], env={**base, **extra},
                              capture_output=True, text=True, timeout=60)
        assert seen.is_file(), (module, proc.stderr)
        assert seen.read_text() == expected, module


def test_tensorflow_start_up_lines_are_dropped_and_other_output_kept(tmp_path):
    import subprocess
    import sys
    # A stand-in "tensorflow" that prints what TF 2.21 prints while its libraries load (before
    # TF_CPP_MIN_LOG_LEVEL applies) plus a line that must survive.
    fake = tmp_path / "tensorflow.py"
    fake.write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are "
        "written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1796117599.880767   11542 port.cc:153] oneDNN custom "
        "operations are on.\\n')\n"
        "os.write(2, b'E0000 00:00:1796117535.141318   11336 cuda_platform.cc:52] failed call "
        "to cuInit\\n')\n"
        "os.write(2, b'To enable the following instructions: AVX2 FMA, rebuild TensorFlow\\n')\n"
        "import warnings; warnings.warn('a real warning')\n")
    from tf_defocus import cli
    code = ("import importlib.util, sys; sys.path.insert(0, sys.argv[1]); "
            "spec = importlib.util.spec_from_file_location('cli', sys.argv[2]); "
            "cli = importlib.util.module_from_spec(spec); spec.loader.exec_module(cli); "
            "cli.import_tensorflow_quietly(); print('imported', 'tensorflow' in sys.modules)\n"
            "import os; cli._quieted = True\n"
            "with cli.quiet_native_output():\n"
            "    os.write(2, b'fully_quantize: 0, inference_type: 6, input_inference_type: UINT8\\n')\n"
            "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
            "    os.write(2, b'kept line\\n')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), cli.__file__],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "imported True" in proc.stdout, proc.stderr
    assert "a real warning" in proc.stderr and "kept line" in proc.stderr
    for chatter in ("InitializeLog", "oneDNN", "cuInit", "To enable", "fully_quantize",
                    "XNNPACK"):
        assert chatter not in proc.stderr, proc.stderr


# -------------------------- 5: an unusable output folder is one line and exit 2, no traceback

def _write_png(path, h=48, w=64, seed=0):
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), _photo(h, w, seed))
    return path


def _cuhk_layout(root, n=2):
    import cv2
    for i in range(n):
        _write_png(root / "image" / f"{i}.png", seed=i)
        mask = np.zeros((48, 64), np.uint8)
        mask[:, 32:] = 255
        (root / "gt").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / "gt" / f"{i}.png"), mask)
    return root


def _full_disk(path, data):
    """imageio.write_bytes on a full disk: the atomic temporary exists, the write fails."""
    import errno
    import os
    from tf_defocus import imageio
    with imageio.atomic_path(path) as tmp:
        tmp.write_bytes(bytes(data)[:1])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _unusable_output(case, tmp_path, monkeypatch):
    """(output folder path, expected message regex) for one way an output folder is unusable;
    installs the monkeypatches of the simulated cases."""
    import errno
    import os
    import pathlib
    from tf_defocus import imageio, prediction
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("not a folder")
    if case == "under_a_file":
        return a_file / "out", r"cannot create the folder: .*a_file.txt is not a folder"
    if case == "is_a_file":
        return a_file, r"a_file.txt: exists and is not a folder"
    if case == "uncreatable":                      # a name longer than any file system allows
        return tmp_path / ("x" * 300) / "out", r"cannot create the folder: File name too long"
    if case == "read_only_dir":
        ro = tmp_path / "read_only"
        ro.mkdir()
        ro.chmod(0o555)
        if os.geteuid() == 0:                      # root ignores the mode: answer as for a user
            real_access = os.access
            monkeypatch.setattr(prediction.os, "access", lambda p, mode, **kw: (
                False if str(p) == str(ro) and mode & os.W_OK else real_access(p, mode, **kw)))
        return ro / "out", r"read_only is not writable \(permission denied\)"
    if case == "read_only_fs":
        real_mkdir = pathlib.Path.mkdir

        def mkdir(self, *args, **kwargs):
            if "ro_fs" in str(self):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
            return real_mkdir(self, *args, **kwargs)
        monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
        return tmp_path / "ro_fs" / "out", r"cannot create the folder: Read-only file system"
    assert case == "disk_full"
    monkeypatch.setattr(imageio, "write_bytes", _full_disk)
    return tmp_path / "full" / "out", r"_config.json: cannot write: No space left on device"


UNUSABLE_OUTPUTS = ("under_a_file", "is_a_file", "uncreatable", "read_only_dir", "read_only_fs",
                    "disk_full")


@pytest.mark.parametrize("case", UNUSABLE_OUTPUTS)
def test_predict_unusable_output_folder_is_one_line_and_exit_2(tmp_path, monkeypatch, capfd,
                                                               case):
    import io
    import os
    import re
    from tf_defocus import prediction
    photo = _write_png(tmp_path / "in" / "photo.png")
    out, expected = _unusable_output(case, tmp_path, monkeypatch)
    existed = os.path.exists(out)
    err = io.StringIO()
    cfg = prediction.PredictConfig(input=(str(photo),), output_dir=str(out), method="dof_weight",
                                   outputs=("color", "focus"))
    assert prediction.run_config(cfg, err) == 2
    log = err.getvalue()
    assert log.count("\n") == 1 and log.startswith("error: "), log
    assert re.search(expected, log), log
    assert str(out) in log or prediction.CONFIG_FILENAME in log, log   # names the folder / file
    assert os.path.exists(out) == existed                   # nothing created, nothing left
    if case == "disk_full":
        assert not (tmp_path / "full").exists()             # the folders it made are removed
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("case", UNUSABLE_OUTPUTS)
def test_evaluate_unusable_output_folder_is_one_line_and_exit_2(tmp_path, monkeypatch, capfd,
                                                                case):
    import io
    import os
    import re
    from tf_defocus import evaluation
    data = _cuhk_layout(tmp_path / "cuhk")
    out, expected = _unusable_output(case, tmp_path, monkeypatch)
    existed = os.path.exists(out)
    err = io.StringIO()
    cfg = evaluation.EvaluateConfig(dataset="cuhk", data_dir=str(data), output=str(out),
                                    method=("dof_weight",), blurred_value=255)
    assert evaluation.run_config(cfg, err) == 2
    log = err.getvalue()
    assert log.count("\n") == 1 and log.startswith("error: "), log
    assert re.search(expected.replace("--output_dir", "--output"), log), log
    assert str(out) in log or "evaluate_config.json" in log, log
    assert os.path.exists(out) == existed
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_predict_stops_at_a_full_disk_mid_run(tmp_path, monkeypatch, capfd):
    import io
    from tf_defocus import imageio, prediction
    photos = [_write_png(tmp_path / "in" / f"p{i}.png", seed=i) for i in range(3)]
    out = tmp_path / "out"
    cfg = prediction.PredictConfig(input=(str(tmp_path / "in"),), output_dir=str(out),
                                   method="dof_weight", outputs=("focus",))
    real = imageio.write_bytes
    monkeypatch.setattr(imageio, "write_bytes", lambda path, data: (
        _full_disk(path, data) if path.name.startswith("p1") else real(path, data)))
    err = io.StringIO()
    assert prediction.run_config(cfg, err) == 1
    log = err.getvalue()
    assert f"error: {out / 'p1_focus.png'}: cannot write: No space left on device" in log, log
    assert "stopping: outputs cannot be written to" in log and "1 more input(s) not" in log, log
    assert "1 ok, 1 failed, 1 not processed" in log, log
    assert (out / "p0_focus.png").exists() and not (out / "p2_focus.png").exists()
    assert sorted(p.name for p in out.iterdir()) == ["p0_focus.png", prediction.CONFIG_FILENAME]
    assert str(photos[2]) not in log.split("failed:")[-1]
    assert "Traceback" not in capfd.readouterr().err


def test_evaluate_results_that_cannot_be_written_are_one_line_and_exit_1(tmp_path, monkeypatch,
                                                                       capfd):
    import io
    from tf_defocus import evaluation, imageio
    data = _cuhk_layout(tmp_path / "cuhk")
    out = tmp_path / "eval"
    real = imageio.write_bytes
    monkeypatch.setattr(imageio, "write_bytes", lambda path, data: (
        _full_disk(path, data) if path.name == "results.json" else real(path, data)))
    err = io.StringIO()
    cfg = evaluation.EvaluateConfig(dataset="cuhk", data_dir=str(data), output=str(out),
                                    method=("dof_weight",), blurred_value=255)
    assert evaluation.run_config(cfg, err) == 1
    errors = [l for l in err.getvalue().splitlines() if l.startswith("error")]
    assert errors == [f"error: {out / 'results.json'}: cannot write: No space left on device "
                      f"(the results are only in the table above)"], err.getvalue()
    captured = capfd.readouterr()
    assert "| dof_weight | dof_weight | 2 |" in captured.out        # the table still printed
    assert "Traceback" not in captured.err + captured.out


# ------------------- 6: predict's and evaluate's orphaned temporaries are removed at start

def _orphans(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"half a file")
    return [folder / n for n in names]


PREDICT_ORPHANS = (".photo.k2j_x9q1.tmp.npy", ".photo_defocus.ab12cd34.tmp.png",
                   ".photo_focus_color.x9y8z7w6.tmp.png", ".photo_side_by_side.00000000.tmp.png",
                   ".predict_config.abcdefgh.tmp.json")
NOT_PREDICT_ORPHANS = (".notes.ab12cd34.tmp.txt", ".holiday.ab12cd34.tmp.png",   # not our names
                       ".photo.short.tmp.npy", "photo.ab12cd34.tmp.npy",  # not mkstemp's pattern
                       ".results.abcdefgh.tmp.json", "photo.npy", "notes.txt")


def test_predict_removes_its_orphaned_temporaries_at_start(tmp_path):
    import io
    from tf_defocus import prediction
    photo = _write_png(tmp_path / "in" / "photo.png")
    out = tmp_path / "out"
    ours = _orphans(out, PREDICT_ORPHANS)            # what a kill -9 mid-write leaves behind
    others = _orphans(out, NOT_PREDICT_ORPHANS)
    err = io.StringIO()
    cfg = prediction.PredictConfig(input=(str(photo),), output_dir=str(out), method="dof_weight",
                                   outputs=("color", "focus"))
    assert prediction.run_config(cfg, err) == 0, err.getvalue()
    assert not any(p.exists() for p in ours), sorted(p.name for p in out.iterdir())
    assert all(p.exists() for p in others)
    lines = [l for l in err.getvalue().splitlines() if "leftover" in l]
    assert len(lines) == 1 and f"removed 5 leftover temporary file(s) of an interrupted run " \
        f"from {out}: " in lines[0], err.getvalue()


def test_predict_keeps_the_temporaries_of_a_run_writing_into_the_same_folder(tmp_path):
    import fcntl
    import io
    import os
    from tf_defocus import prediction
    photo = _write_png(tmp_path / "in" / "photo.png")
    out = tmp_path / "out"
    live = _orphans(out, PREDICT_ORPHANS[:2])
    fd = os.open(out, os.O_RDONLY)               # another predict run holds the folder
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        cfg = prediction.PredictConfig(input=(str(photo),), output_dir=str(out),
                                       method="dof_weight", outputs=("focus",))
        err = io.StringIO()
        assert prediction.run_config(cfg, err) == 0, err.getvalue()
        assert all(p.exists() for p in live) and "leftover" not in err.getvalue()
    finally:
        os.close(fd)
    # ... and removes them once no other run holds it.
    assert prediction.run_config(cfg, io.StringIO()) == 0
    assert not any(p.exists() for p in live)


def test_evaluate_removes_its_orphaned_temporaries_at_start(tmp_path):
    import io
    from tf_defocus import evaluation
    data = _cuhk_layout(tmp_path / "cuhk")
    out = tmp_path / "eval"
    ours = _orphans(out, (".results.abcdefgh.tmp.json", ".per_image.12345678.tmp.csv",
                          ".results.abcdefgh.tmp.md", ".evaluate_config.a_b_c_d_.tmp.json"))
    others = _orphans(out, (".photo.k2j_x9q1.tmp.npy", ".mine.abcdefgh.tmp.json"))
    err = io.StringIO()
    cfg = evaluation.EvaluateConfig(dataset="cuhk", data_dir=str(data), output=str(out),
                                    method=("dof_weight",), blurred_value=255)
    assert evaluation.run_config(cfg, err) == 0, err.getvalue()
    assert not any(p.exists() for p in ours) and all(p.exists() for p in others)
    assert "removed 4 leftover temporary file(s)" in err.getvalue()
    assert not [p.name for p in out.iterdir() if ".tmp." in p.name and p not in others]


# ------------- 7: evaluate with unpaired files evaluates the rest, names each once, exit 1

def _cuhk_with_unpaired_files(root):
    """3 pairs, then one label removed and one label without an image added."""
    import shutil
    _cuhk_layout(root, 3)
    (root / "gt" / "1.png").unlink()
    shutil.copy(root / "gt" / "0.png", root / "gt" / "orphan.png")
    return root


@pytest.mark.parametrize("skip_bad", [False, True])
def test_evaluate_unpaired_files_are_named_once_and_the_rest_evaluated(tmp_path, capfd, caplog,
                                                                        skip_bad):
    import io
    import json
    from tf_defocus import evaluation
    data = _cuhk_with_unpaired_files(tmp_path / "cuhk")
    out = tmp_path / "eval"
    err = io.StringIO()
    cfg = evaluation.EvaluateConfig(dataset="cuhk", data_dir=str(data), output=str(out),
                                    method=("dof_weight",), blurred_value=255, skip_bad=skip_bad)
    assert evaluation.run_config(cfg, err) == (0 if skip_bad else 1), err.getvalue()
    log = err.getvalue()
    missing_label = f"{data / 'image' / '1.png'}: no label {data / 'gt' / '1'}."
    no_image = f"{data / 'gt' / 'orphan.png'}: label without an image"
    for problem in (missing_label, no_image):
        assert log.count(problem) == 1, log                        # named once
        prefix = "warning: skipping " if skip_bad else "error: "
        assert f"{prefix}{problem}" in log, log
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["dof_weight"]["num_images"] == 2          # the rest evaluated
    assert len(results["unpaired"]) == 2 and results["unpaired_skipped"] is skip_bad
    if not skip_bad:
        failed = log.split("failed:\n")[1].split()
        assert failed == [str(data / "image" / "1.png"), str(data / "gt" / "orphan.png")]
    assert not [r for r in caplog.records if "skipping" in r.getMessage()]   # not logged too
    captured = capfd.readouterr()
    assert "skipping" not in captured.err and "Traceback" not in captured.err + captured.out
    assert "2 unpaired file(s) left out" in captured.out                      # in the table


def test_evaluate_with_no_pair_at_all_is_a_layout_error(tmp_path):
    import io
    from tf_defocus import evaluation
    data = _cuhk_layout(tmp_path / "cuhk", 1)
    (data / "gt" / "0.png").unlink()
    err = io.StringIO()
    cfg = evaluation.EvaluateConfig(dataset="cuhk", data_dir=str(data), output=str(tmp_path / "o"),
                                    method=("dof_weight",), blurred_value=255)
    assert evaluation.run_config(cfg, err) == 2
    assert err.getvalue().count("\n") == 1 and "no (image, label) pairs (1 unpaired file(s), " \
        f"e.g. {data / 'image' / '0.png'}: no label" in err.getvalue(), err.getvalue()
    assert not (tmp_path / "o").exists()


# ------------- 9: predict / evaluate as a new user runs them (subprocesses, run in parallel)

def _run_parallel(commands, cwd):
    """{name: (returncode, stdout, stderr)} of ``commands`` ({name: argv}), run at once with
    TensorFlow's log settings cleared (as in a fresh shell)."""
    import os
    import subprocess
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_DEFOCUS_VERBOSE", "TF_DEFOCUS_QUIET")}
    procs = {k: subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for k, c in commands.items()}
    return {k: (p.wait(timeout=300),) + p.communicate() for k, p in procs.items()}


_TF_CHATTER = ("InitializeLog", "oneDNN", "cuda", "cuInit", "To enable the following",
               "cpu_feature_guard", "Traceback")


def test_predict_and_evaluate_cli_first_contact(tmp_path):
    """Quiet start-up, --help exits 0 and lists --verbose, bad flags exit 2 (as predict's
    docstring says), default outputs for dof_weight, where the outputs went, an unusable output
    folder and unpaired labels in one line each."""
    import os
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    photo = _write_png(tmp_path / "x.png")
    data = _cuhk_with_unpaired_files(tmp_path / "cuhk")
    (tmp_path / "a_file").write_text("not a folder")
    py = [sys.executable, "-m"]
    predict_ = py + ["tf_defocus.predict"]
    evaluate_ = py + ["tf_defocus.evaluate", "--dataset=cuhk", f"--data_dir={data}",
                      "--blurred_value=255", "--method=dof_weight"]
    results = _run_parallel({
        "predict": predict_ + ["--method=dof_weight", f"--input={photo}",
                               f"--output_dir={tmp_path / 'o'}"],
        "predict_help": predict_ + ["--help"],
        "evaluate_help": py + ["tf_defocus.evaluate", "--help"],
        "unknown_flag": predict_ + ["--method=dof_weight", f"--input={photo}",
                                    f"--output_dir={tmp_path / 'o2'}", "--tile_sizee=32"],
        "bad_value": predict_ + ["--method=dof_weight", f"--input={photo}",
                                 f"--output_dir={tmp_path / 'o2'}", "--tile_size=abc"],
        "under_a_file": predict_ + ["--method=dof_weight", f"--input={photo}",
                                    f"--output_dir={tmp_path / 'a_file' / 'o'}"],
        "evaluate_under_a_file": evaluate_ + [f"--output={tmp_path / 'a_file' / 'e'}"],
        "evaluate_unpaired": evaluate_ + [f"--output={tmp_path / 'e1'}"],
        "evaluate_skip_bad": evaluate_ + [f"--output={tmp_path / 'e2'}", "--skip_bad"],
    }, repo)
    for name, (code, out, err) in results.items():
        for chatter in _TF_CHATTER:
            assert chatter not in err, (name, err)

    code, out, err = results["predict"]
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "predict_config.json", "x_focus.png", "x_focus_color.png"]
    assert err.splitlines()[-1] == f"predict: outputs of 1 image(s) in {tmp_path / 'o'}", err
    assert all(l.startswith(("[1/1] x.png", "predict: ")) for l in err.splitlines()), err

    for name in ("predict_help", "evaluate_help"):
        code, out, err = results[name]
        assert code == 0 and err == "" and "--[no]verbose" in out and "--output" in out, name

    for name in ("unknown_flag", "bad_value"):
        code, out, err = results[name]
        assert code == 2, (name, code, err)
        assert err.startswith("FATAL Flags parsing error: ") and "tile_size" in err, err
    assert "Did you mean: tile_size" in results["unknown_flag"][2]
    assert not (tmp_path / "o2").exists()

    for name, flag in (("under_a_file", "--output_dir"), ("evaluate_under_a_file", "--output")):
        code, out, err = results[name]
        assert code == 2 and err.count("\n") == 1, (name, err)
        assert err.startswith(f"error: {flag}={tmp_path / 'a_file'}/") and \
            f"{tmp_path / 'a_file'} is not a folder" in err, (name, err)

    missing = f"{data / 'image' / '1.png'}: no label"
    code, out, err = results["evaluate_unpaired"]
    assert code == 1 and err.count(missing) == 1 and f"error: {missing}" in err, err
    assert "| dof_weight | dof_weight | 2 |" in out
    code, out, err = results["evaluate_skip_bad"]
    assert code == 0 and err.count(missing) == 1 and f"warning: skipping {missing}" in err, err
    assert os.path.exists(tmp_path / "e2" / "results.json")
