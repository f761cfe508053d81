"""synthesize(), the SYNDOF / TFRecord formats, and the generator CLI (determinism, shards,
resume, bad sources, montage)."""

import json
import os

import cv2
import numpy as np
import pytest

from tf_defocus import generate, montage
from tf_defocus.data import synthesize

SIZE = "48x32"


def run_cli(out_dir, *extra, n=4, seed=7):
    argv = ["generate", f"--out_dir={out_dir}", f"--num_images={n}", f"--image_size={SIZE}",
            f"--seed={seed}", *extra]
    return generate.main(argv)


def tree_bytes(root, skip=("generate_config",)):
    """{relative path: bytes} of every file under root (configs differ by shard flags)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.startswith(skip):
                continue
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


# ----------------------------------------------------------------------------- synthesize
@pytest.mark.parametrize("psf", ["gaussian", "disc"])
def test_synthesize_sample_contract(psf):
    s = synthesize.synthesize(3, 64, 48, psf=psf)
    assert s.image.shape == (48, 64, 3) and s.image.dtype == np.float32
    assert s.sigma_px.shape == (48, 64) and s.sigma_px.dtype == np.float32
    assert s.mask.shape == (48, 64) and s.mask.dtype == np.float32
    assert 0.0 <= s.image.min() and s.image.max() <= 1.0
    assert s.sigma_px.min() >= 0.0
    assert s.sigma_px.max() == pytest.approx(7.0, abs=1e-3)  # max CoC 29 px -> sigma 7
    np.testing.assert_array_equal(s.mask, (s.sigma_px > 1.0).astype(np.float32))
    cam = s.camera
    assert cam["focal_length_mm"] in (50.0, 70.0, 85.0) and cam["psf"] == psf
    assert cam["seed"] == 3 and cam["source"] == "procedural"
    json.dumps(cam)  # JSON-safe
    if psf == "disc":
        assert set(cam["disc"]) == {"blades", "rotation_deg", "shot_noise", "read_noise", "jpeg_quality",
                                   "render_scale", "tone", "sharpen_amount", "sharpen_sigma"}


def test_synthesize_same_seed_same_bytes():
    for psf in ("gaussian", "disc"):
        a = synthesize.synthesize(11, 48, 32, psf=psf)
        b = synthesize.synthesize(11, 48, 32, psf=psf)
        c = synthesize.synthesize(12, 48, 32, psf=psf)
        assert a.image.tobytes() == b.image.tobytes() and a.sigma_px.tobytes() == b.sigma_px.tobytes()
        assert a.camera == b.camera
        assert a.image.tobytes() != c.image.tobytes()
    # The psf does not change the scene or the camera drawn from a seed.
    g, d = synthesize.synthesize(11, 48, 32), synthesize.synthesize(11, 48, 32, psf="disc")
    assert g.sigma_px.tobytes() == d.sigma_px.tobytes()


def test_synthesize_max_coc_and_threshold():
    s = synthesize.synthesize(5, 48, 32, max_coc=13.0, mask_threshold_px=0.5)
    assert s.sigma_px.max() == pytest.approx(3.0, abs=1e-3)
    np.testing.assert_array_equal(s.mask, (s.sigma_px > 0.5).astype(np.float32))


def test_synthesize_from_rgbd_source():
    rng = np.random.default_rng(0)
    image = rng.random((40, 60, 3)).astype(np.float32)
    depth = np.where(np.arange(60) < 30, 1500.0, 6000.0)[None].repeat(40, 0).astype(np.float32)
    s = synthesize.synthesize(1, None, None, source=(image, depth))
    assert s.image.shape == (40, 60, 3) and s.camera["source"] == "rgbd"
    s2 = synthesize.synthesize(1, 32, 16, source=(image, depth))  # scaled to cover, then cropped
    assert s2.image.shape == (16, 32, 3)
    with pytest.raises(ValueError):
        synthesize.synthesize(1, None, None, source=(image, depth[:10]))
    with pytest.raises(ValueError):
        synthesize.synthesize(1, None, None, source=(image, np.full((40, 60), np.nan)))


def test_syndof_round_trip(tmp_path):
    s = synthesize.synthesize(2, 48, 32)
    meta = synthesize.write_syndof_sample(tmp_path, "x", s, {"note": 1})
    assert synthesize.syndof_sample_complete(tmp_path, "x")
    paths = synthesize.syndof_paths(tmp_path, "x")
    sigma = synthesize.read_syndof_sigma(paths["blur_map"])
    assert np.abs(sigma - s.sigma_px).max() <= 0.05 + 1e-6
    raw = cv2.imread(str(paths["blur_map"]), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (32, 48, 3)
    assert np.all(raw[..., 0] == raw[..., 1]) and np.all(raw[..., 1] == raw[..., 2])
    binary = cv2.imread(str(paths["blur_map_binary"]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(binary == 255, s.mask == 1)
    assert set(np.unique(binary)) <= {0, 255}
    img = cv2.cvtColor(cv2.imread(str(paths["image"])), cv2.COLOR_BGR2RGB) / 255.0
    assert np.abs(img - s.image).max() <= 0.5 / 255 + 1e-6
    assert json.loads(paths["meta"].read_text()) == meta and meta["note"] == 1


# ----------------------------------------------------------------------------- CLI
def test_cli_syndof_layout_and_same_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli(a) == 0
    assert run_cli(b, "--num_workers=2") == 0  # worker processes give the same bytes
    for sub in ("image", "blur_map", "blur_map_binary", "meta"):
        assert sorted(os.listdir(a / sub))[:2] == ["00000000" + (".json" if sub == "meta" else ".png"),
                                                   "00000001" + (".json" if sub == "meta" else ".png")]
    lines = (a / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["00000000", "00000001", "00000002", "00000003"]
    cfg = json.loads((a / "generate_config.json").read_text())
    assert cfg["num_images"] == 4 and cfg["image_size"] == "48x32" and cfg["seed"] == 7
    assert tree_bytes(a) == tree_bytes(b)
    assert run_cli(tmp_path / "c", seed=8) == 0
    assert tree_bytes(a) != tree_bytes(tmp_path / "c")


def test_cli_shards_partition_the_data_set(tmp_path):
    assert run_cli(tmp_path / "full", n=5) == 0
    for i in range(3):
        assert run_cli(tmp_path / "sharded", "--num_shards=3", f"--shard_index={i}", n=5) == 0
    full = tree_bytes(tmp_path / "full")
    sharded = tree_bytes(tmp_path / "sharded", skip=("generate_config", "manifest"))
    assert {k: v for k, v in full.items() if not k.startswith("manifest")} == sharded
    shard_ids = [json.loads(x)["id"] for i in range(3) for x in
                 (tmp_path / "sharded" / f"manifest-{i:05d}-of-00003.jsonl").read_text().splitlines()]
    assert sorted(shard_ids) == [f"{i:08d}" for i in range(5)]


def test_cli_resume_after_interruption(tmp_path, capsys):
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert run_cli(ref, n=4) == 0
    assert run_cli(out, n=4) == 0
    # Simulate an interruption: sample 1 lost its completion marker mid-way, sample 3 never
    # started, and a temp file of a killed atomic write is lying around.
    (out / "meta" / "00000001.json").unlink()
    (out / "blur_map_binary" / "00000001.png").unlink()
    for sub in ("image", "blur_map", "blur_map_binary", "meta"):
        for f in (out / sub).glob("00000003.*"):
            f.unlink()
    (out / "image" / ".00000002.abcd1234.tmp.png").write_bytes(b"partial")
    (out / "image" / ".00000099.abcd1234.tmp.png").write_bytes(b"another run's")
    untouched = (out / "image" / "00000000.png").stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(out, n=4) == 0
    err = capsys.readouterr().err
    assert "resuming: 2 of 4 images already complete" in err
    assert (out / "image" / "00000000.png").stat().st_mtime_ns == untouched
    # Our stale temp file is gone; a file of an id we do not own is left alone.
    assert not (out / "image" / ".00000002.abcd1234.tmp.png").exists()
    (out / "image" / ".00000099.abcd1234.tmp.png").unlink()
    assert tree_bytes(out) == tree_bytes(ref)


def test_cli_tfrecord_matches_syndof_and_shards(tmp_path):
    import tensorflow as tf

    assert run_cli(tmp_path / "tf", "--format=tfrecord", "--records_per_file=2", n=3) == 0
    files = sorted((tmp_path / "tf").glob("*.tfrecord.gz"))
    assert [f.name for f in files] == ["data-00000-of-00002.tfrecord.gz", "data-00001-of-00002.tfrecord.gz"]
    assert run_cli(tmp_path / "syndof", n=3) == 0
    records = list(tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP"))
    assert len(records) == 3
    for rec in records:
        ex = tf.train.Example.FromString(rec.numpy()).features.feature
        sid = ex["id"].bytes_list.value[0].decode()
        h, w = ex["height"].int64_list.value[0], ex["width"].int64_list.value[0]
        assert (h, w) == (32, 48)
        sigma = np.frombuffer(ex["sigma"].bytes_list.value[0], "<f4").reshape(h, w)
        ref = synthesize.read_syndof_sigma(tmp_path / "syndof" / "blur_map" / f"{sid}.png")
        assert np.abs(sigma - ref).max() <= 0.05 + 1e-6
        img = tf.io.decode_png(ex["image"].bytes_list.value[0]).numpy()
        ref_img = cv2.cvtColor(cv2.imread(str(tmp_path / "syndof" / "image" / f"{sid}.png")), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(img, ref_img)
        mask = tf.io.decode_png(ex["mask"].bytes_list.value[0]).numpy()[..., 0]
        np.testing.assert_array_equal(mask == 255, sigma > 1.0)
        assert json.loads(ex["camera"].bytes_list.value[0])["id"] == sid
    # Two shards write exactly the single run's files.
    for i in range(2):
        assert run_cli(tmp_path / "tf2", "--format=tfrecord", "--records_per_file=2",
                       "--num_shards=2", f"--shard_index={i}", n=3) == 0
    for f in files:
        assert (tmp_path / "tf2" / f.name).read_bytes() == f.read_bytes()
    # Resume: complete files are not rewritten.
    mtime = files[0].stat().st_mtime_ns
    assert run_cli(tmp_path / "tf", "--format=tfrecord", "--records_per_file=2", n=3) == 0
    assert files[0].stat().st_mtime_ns == mtime


def _rgbd_folder(root):
    rng = np.random.default_rng(0)
    (root / "image").mkdir(parents=True)
    (root / "depth").mkdir()
    for name in ("good1", "good2", "nan", "mismatch", "corrupt", "missing"):
        cv2.imwrite(str(root / "image" / f"{name}.png"), rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    for name in ("good1", "good2"):
        d = np.where(np.arange(48) < 24, 1200, 5000)[None].repeat(32, 0).astype(np.uint16)
        cv2.imwrite(str(root / "depth" / f"{name}.png"), d)
    nan = np.full((32, 48), np.nan, np.float32)
    nan[:4] = 1000.0
    np.save(root / "depth" / "nan.npy", nan)
    np.save(root / "depth" / "mismatch.npy", np.full((20, 48), 1000.0, np.float32))
    np.save(root / "depth" / "corrupt.npy", np.full((32, 48), 1000.0, np.float32))
    (root / "image" / "corrupt.png").write_bytes(b"garbage, not an image")


def test_cli_bad_sources_are_reported_skipped_and_exit_nonzero(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    _rgbd_folder(src)
    code = generate.main(["generate", "--source=rgbd", f"--rgbd_dir={src}", "--rgbd_format=generic",
                          "--image_size=native", f"--out_dir={out}", "--num_images=12"])
    err = capsys.readouterr().err
    assert code == 1
    for name in ("nan", "mismatch", "corrupt", "missing"):
        assert f"  {name}: " in err
    assert str(src / "depth" / "missing.png") in err
    assert str(src / "image" / "corrupt.png") in err
    ids = sorted(p.stem for p in (out / "image").glob("*.png"))
    assert ids == ["good1_000", "good1_001", "good2_000", "good2_001"]
    meta = json.loads((out / "meta" / "good1_000.json").read_text())
    assert meta["source_name"] == "good1" and meta["source"] == "rgbd:generic"
    assert meta["source_depth"].endswith("good1.png")


def test_cli_bad_flags_exit_2(tmp_path, capsys):
    assert generate.main(["generate", f"--out_dir={tmp_path}", "--image_size=12by3"]) == 2
    assert generate.main(["generate", f"--out_dir={tmp_path}", "--psf=box"]) == 2
    assert generate.main(["generate", f"--out_dir={tmp_path}", "--num_shards=2", "--shard_index=2"]) == 2
    assert generate.main(["generate", "--source=rgbd", f"--out_dir={tmp_path}"]) == 2
    assert generate.main(["generate", "--source=rgbd", f"--rgbd_dir={tmp_path / 'none'}",
                          f"--out_dir={tmp_path / 'o'}"]) == 2
    assert "error:" in capsys.readouterr().err
    assert generate.main(["generate", f"--out_dir={tmp_path}", "--scene=layered",
                          "--all_in_focus=0.8"]) == 2   # with the default --smooth_focus=0.3
    assert "--all_in_focus and --smooth_focus must be >= 0 with a sum of at most 1, got 0.8 and 0.3" \
        in capsys.readouterr().err


def test_cli_flagfile(tmp_path):
    ff = tmp_path / "gen.flags"
    ff.write_text(f"--out_dir={tmp_path / 'o'}\n--num_images=1\n--image_size=32x32\n--psf=disc\n")
    assert generate.main(["generate", f"--flagfile={ff}"]) == 0
    cfg = json.loads((tmp_path / "o" / "generate_config.json").read_text())
    assert cfg["psf"] == "disc" and cfg["num_images"] == 1


def test_montage(tmp_path):
    assert run_cli(tmp_path / "d", n=3) == 0
    out = tmp_path / "m.png"
    assert montage.main(["montage", f"--data_dir={tmp_path / 'd'}", f"--out={out}", "--num=2",
                         "--tile_width=64"]) == 0
    m = cv2.imread(str(out))
    row_h = round(32 * 64 / 48)
    assert m.shape == (2 * row_h + montage.GAP_PX, 3 * 64 + 2 * montage.GAP_PX, 3)
    assert montage.main(["montage", f"--data_dir={tmp_path / 'empty'}", f"--out={out}"]) == 1
