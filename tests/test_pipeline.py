"""tf.data pipelines: alignment of augmented crops, element structure, determinism, bad input,
procedural pools, generator TFRecords and evaluation datasets."""

import dataclasses
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_defocus import imageio
from tf_defocus.data import augment, evalsets, pipeline, pools, readers

P = 32
BLOCK = 8


# ----------------------------------------------------------------------------- fixtures


def _coord_image(h, w):
    """float32 (H, W, 3): channel 0 = y / H, 1 = x / W, 2 = 0.5."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([yy / h, xx / w, np.full_like(yy, 0.5)], -1)


def _block_values(h, w, seed):
    """Per-8x8-block sigma values, multiples of 0.1 in [0, 7] (uint16 sigma*10 is exact)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 71, (h // BLOCK + 1, w // BLOCK + 1))
    return np.kron(blocks, np.ones((BLOCK, BLOCK), np.int64))[:h, :w]


def _write_syndof(root, n=3, h=40, w=48, names=None):
    """SYNDOF set whose image channel 0 (16-bit) encodes the label: image0 * 7 == sigma."""
    names = names or [f"s{i}" for i in range(n)]
    for i, name in enumerate(names):
        v = _block_values(h, w, i)  # sigma * 10
        img = np.zeros((h, w, 3), np.uint16)
        img[..., 0] = np.round(v / 70.0 * 65535)
        img[..., 1] = np.random.default_rng(i).integers(0, 65536, (h, w))
        imageio.write_image(root / "image" / f"{name}.png", img)
        imageio.write_image(root / "blur_map" / f"{name}.png", np.repeat(v.astype(np.uint16)[..., None], 3, -1))
    return root


def _write_masks(root, n=3, h=40, w=48, sub=("image", "gt")):
    """CUHK-style set, black = blurred; image channel 1 encodes the mask (1 = blurred)."""
    for i in range(n):
        m = (_block_values(h, w, 100 + i) % 2).astype(np.uint8)
        img = np.random.default_rng(i).integers(0, 256, (h, w, 3)).astype(np.uint8)
        img[..., 1] = m * 255
        imageio.write_image(root / sub[0] / f"m{i}.png", img)
        imageio.write_image(root / sub[1] / f"m{i}.png", (1 - m) * 255)
    return root


def _write_photos(root, n=3, h=40, w=48):
    for i in range(n):
        imageio.write_image(root / f"p{i}.jpg", np.random.default_rng(i).integers(0, 256, (h, w, 3)).astype(np.uint8))
    return root


def _user_config(tmp_path, **kw):
    syn = _write_syndof(tmp_path / "syn")
    cuhk = _write_masks(tmp_path / "cuhk")
    flickr = _write_photos(tmp_path / "flickr")
    base = dict(patch_size=P, batch_synthetic=2, batch_real_mask=3, batch_real_unlabelled=1,
                min_short_side=P + 1, max_short_side=64, synthetic_dir=(str(syn),),
                real_mask_dir=(str(cuhk),), real_mask_blurred_value=0,
                unlabelled_dir=(str(flickr),), seed=5, deterministic=True,
                cache_dir=str(tmp_path / "cache"))
    base.update(kw)
    return pipeline.DataConfig(**base)


def _interior(label, radius=1):
    """Boolean (.., H, W) map of pixels whose (2r+1)^2 neighbourhood in ``label`` is uniform."""
    lab = label[..., 0]
    ok = np.ones_like(lab, bool)
    pad = np.pad(lab, [(0, 0)] * (lab.ndim - 2) + [(radius, radius)] * 2, mode="edge")
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            sl = pad[..., radius + dy:radius + dy + lab.shape[-2], radius + dx:radius + dx + lab.shape[-1]]
            ok &= sl == lab
    # Border pixels may come from edge padding of the resize: leave them out.
    ok[..., :radius, :] = ok[..., -radius:, :] = ok[..., :, :radius] = ok[..., :, -radius:] = False
    return ok


# ----------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("scale_mode,size", [("clamp", (40, 48)), ("clamp", (20, 26)),
                                             ("clamp", (100, 90)), ("random", (40, 48))])
def test_augmented_image_and_label_stay_aligned(scale_mode, size):
    """The label encodes the same coordinates as the image; every augmented pair must agree."""
    h, w = size
    coords = _coord_image(h, w)
    label = coords[..., :1].copy()  # y / H, treated as a mask-like label (nearest, no scaling)
    image = tf.constant(coords)
    resized = not (P + 1 <= min(h, w) <= 64) or scale_mode == "random"
    seen_k = set()
    for s in range(24):
        im, lab = augment.augment_pair(image, tf.constant(label), tf.constant([3, s], tf.int64),
                                       patch_size=P, short_side_range=(P + 1, 64),
                                       scale_mode=scale_mode, label_kind="mask")
        im, lab = im.numpy(), lab.numpy()
        assert im.shape == (P, P, 3) and lab.shape == (P, P, 1)
        if not resized:
            np.testing.assert_array_equal(im[..., 0], lab[..., 0])
            # The patch is a contiguous window seen under one of the 8 square symmetries.
            ys, xs = np.round(im[..., 0] * h).astype(int), np.round(im[..., 1] * w).astype(int)
            assert (ys.max() - ys.min(), xs.max() - xs.min()) == (P - 1, P - 1)
            assert len({(y, x) for y, x in zip(ys.ravel(), xs.ravel())}) == P * P
            seen_k.add((int(np.sign(ys[0, 1] - ys[0, 0])), int(np.sign(xs[0, 1] - xs[0, 0]))))
        else:
            # Bilinear image vs nearest label of the same linear ramp: within one source pixel.
            inner = (slice(1, -1), slice(1, -1))
            assert np.max(np.abs(im[inner][..., 0] - lab[inner][..., 0])) <= 1.0 / h + 1e-6
    if not resized:
        assert len(seen_k) == 4  # rotations/flips actually happen


def test_sigma_labels_scale_with_the_image():
    image = tf.constant(_coord_image(20, 26))
    sigma = tf.fill([20, 26, 1], 2.0)
    _, lab = augment.augment_pair(image, sigma, tf.constant([1, 2], tf.int64), patch_size=P,
                                  short_side_range=(40, 64), label_kind="sigma")
    # Short side 20 -> clamped up to 40: the image is twice as large, so is the blur.
    np.testing.assert_allclose(lab.numpy(), 2.0 * np.sqrt(40 * 52 / (20 * 26)), rtol=1e-5)
    _, lab = augment.augment_pair(image, sigma, tf.constant([1, 2], tf.int64), patch_size=P,
                                  short_side_range=(40, 64), label_kind="sigma", scale_sigma=False)
    np.testing.assert_allclose(lab.numpy(), 2.0)


# ----------------------------------------------------------------------------- full pipeline


def test_domain_datasets_structure_and_alignment_from_files(tmp_path):
    cfg = _user_config(tmp_path)
    ds = pipeline.make_domain_datasets(cfg)
    spec = ds.element_spec
    assert set(spec) == {"synthetic", "real_mask", "real_unlabelled"}
    assert spec["synthetic"]["image"].shape.as_list() == [2, P, P, 3]
    assert spec["synthetic"]["sigma_norm"].shape.as_list() == [2, P, P, 1]
    assert spec["real_mask"]["mask"].shape.as_list() == [3, P, P, 1]
    assert list(spec["real_unlabelled"]) == ["image"]
    assert spec["real_unlabelled"]["image"].shape.as_list() == [1, P, P, 3]
    for el in ds.take(4):
        syn, real = el["synthetic"], el["real_mask"]
        assert syn["image"].dtype == tf.float32 and syn["sigma_norm"].dtype == tf.float32
        img, sig = syn["image"].numpy(), syn["sigma_norm"].numpy()
        assert 0.0 <= img.min() and img.max() <= 1.0 and 0.0 <= sig.min() and sig.max() <= 1.0
        # image channel 0 * 7 encodes sigma: crops, flips and rotations kept them aligned.
        np.testing.assert_allclose(img[..., 0], sig[..., 0], atol=1e-4)
        mask = real["mask"].numpy()
        assert set(np.unique(mask)) <= {0.0, 1.0}
        np.testing.assert_array_equal(real["image"].numpy()[..., 1], mask[..., 0])


def test_alignment_with_rescaling_from_files(tmp_path):
    cfg = _user_config(tmp_path, scale_mode="random", max_short_side=90, scale_sigma=False,
                       batch_synthetic=4, batch_real_mask=4)
    seen_scaled = False
    for el in pipeline.make_domain_datasets(cfg).take(3):
        img, sig = el["synthetic"]["image"].numpy(), el["synthetic"]["sigma_norm"].numpy()
        inner = _interior(sig)
        assert inner.mean() > 0.3
        np.testing.assert_allclose(img[..., 0][inner], sig[..., 0][inner], atol=2e-3)
        mask = el["real_mask"]["mask"].numpy()
        inner = _interior(mask)
        np.testing.assert_allclose(el["real_mask"]["image"].numpy()[..., 1][inner], mask[..., 0][inner], atol=2e-3)
        # Rescaled 8 px blocks are no longer 8 px wide.
        seen_scaled |= not np.all(_interior(sig, 0))
    assert seen_scaled


def test_deterministic_mode_gives_identical_batches(tmp_path):
    cfg = _user_config(tmp_path, scale_mode="random", max_short_side=60)

    def take(c, n=3):
        return [tf.nest.map_structure(lambda t: t.numpy(), el) for el in pipeline.make_domain_datasets(c).take(n)]

    a, b = take(cfg), take(cfg)
    for x, y in zip(a, b):
        tf.nest.map_structure(np.testing.assert_array_equal, x, y)
    c = take(dataclasses.replace(cfg, seed=6))
    assert not np.array_equal(a[0]["synthetic"]["image"], c[0]["synthetic"]["image"])


@pytest.mark.parametrize("mode", [dict(in_memory=True), dict(crops_per_image=1)])
def test_a_stream_started_at_a_batch_goes_on_where_an_uninterrupted_one_is(tmp_path, mode):
    """What a resumed run reads (``start_batch``): batch 2 of the stream, not a replay of batch 0."""
    cfg = _user_config(tmp_path, deterministic=True, **mode)
    for domain in ("synthetic", "real_mask"):
        whole = list(pipeline.make_domain_dataset(cfg, domain).take(3))
        resumed = next(iter(pipeline.make_domain_dataset(cfg, domain, start_batch=2)))
        tf.nest.map_structure(np.testing.assert_array_equal, whole[2], resumed)
        assert not np.array_equal(whole[0]["image"], resumed["image"])


def test_in_memory_and_crops_per_image_modes(tmp_path):
    for i, kw in enumerate((dict(in_memory=True), dict(crops_per_image=1), dict(crops_per_image=3))):
        cfg = _user_config(tmp_path / str(i), **kw)
        for el in pipeline.make_domain_datasets(cfg).take(2):
            img, sig = el["synthetic"]["image"].numpy(), el["synthetic"]["sigma_norm"].numpy()
            assert img.shape == (2, P, P, 3)
            np.testing.assert_allclose(img[..., 0], sig[..., 0], atol=1e-4)


# ----------------------------------------------------------------------------- bad input


def test_corrupt_file_skip_mode_logs_name_and_continues(tmp_path, caplog):
    cfg = _user_config(tmp_path, skip_bad=True)
    (tmp_path / "syn" / "image" / "s1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated junk")
    (tmp_path / "flickr" / "p2.jpg").write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        batches = list(pipeline.make_domain_datasets(cfg).take(6))
    assert len(batches) == 6
    assert "s1.png" in caplog.text and "p2.jpg" in caplog.text
    # Every synthetic crop still comes from a good file: image and label agree.
    for el in batches:
        np.testing.assert_allclose(el["synthetic"]["image"].numpy()[..., 0],
                                   el["synthetic"]["sigma_norm"].numpy()[..., 0], atol=1e-4)


def test_corrupt_file_fail_fast_names_it(tmp_path):
    cfg = _user_config(tmp_path)
    (tmp_path / "syn" / "image" / "s1.png").write_bytes(b"garbage")
    with pytest.raises(tf.errors.OpError, match="s1.png"):
        for _ in pipeline.make_domain_dataset(cfg, "synthetic").take(10):
            pass


def test_size_mismatch_in_pipeline(tmp_path, caplog):
    cfg = _user_config(tmp_path)
    imageio.write_image(tmp_path / "cuhk" / "gt" / "m0.png", np.zeros((40, 40), np.uint8))
    with pytest.raises(tf.errors.OpError, match="gt/m0.png: label is 40x40"):
        for _ in pipeline.make_domain_dataset(cfg, "real_mask").take(10):
            pass
    cfg = dataclasses.replace(cfg, skip_bad=True)
    with caplog.at_level(logging.WARNING):
        assert len(list(pipeline.make_domain_dataset(cfg, "real_mask").take(3))) == 3
    assert "m0.png" in caplog.text


def test_missing_pair_in_pipeline(tmp_path, caplog):
    cfg = _user_config(tmp_path)
    os.remove(tmp_path / "syn" / "blur_map" / "s2.png")
    with pytest.raises(readers.DataError, match="image/s2.png: no label"):
        pipeline.make_domain_dataset(cfg, "synthetic")
    cfg = dataclasses.replace(cfg, skip_bad=True)
    with caplog.at_level(logging.WARNING):
        ds = pipeline.make_domain_dataset(cfg, "synthetic")
    assert "s2.png" in caplog.text
    assert next(iter(ds))["image"].shape == (2, P, P, 3)


def test_config_validation():
    with pytest.raises(ValueError, match="real_mask_blurred_value"):
        pipeline.DataConfig(real_mask_dir=("x",))
    with pytest.raises(ValueError, match="min_short_side"):
        pipeline.DataConfig(patch_size=64, min_short_side=32)
    with pytest.raises(ValueError, match="--pool_all_in_focus and --pool_smooth_focus must be"):
        pipeline.DataConfig(pool_all_in_focus=0.8)   # with the default smooth share 0.3
    assert pipeline.DataConfig(pool_all_in_focus=0.8, pool_smooth_focus=0.2).pool_all_in_focus == 0.8
    with pytest.raises(ValueError, match="scale_mode"):
        pipeline.DataConfig(scale_mode="zoom")
    with pytest.raises(ValueError, match="not both"):
        pipeline.DataConfig(synthetic_dir="a", synthetic_tfrecords="b")
    cfg = pipeline.DataConfig(synthetic_dir=["a", "b"], patch_size=64)
    assert cfg.synthetic_dir == ("a", "b") and cfg.short_side_range == (65, 800)
    assert pipeline.DataConfig(synthetic_dir="a,b").synthetic_dir == ("a,b",)  # one path


# ----------------------------------------------------------------------------- procedural, TFRecord, eval


def test_procedural_pools_feed_every_domain_and_are_cached(tmp_path, monkeypatch):
    cfg = pipeline.DataConfig(patch_size=P, batch_synthetic=2, batch_real_mask=2, batch_real_unlabelled=2,
                                  min_short_side=P + 1, max_short_side=64, pool_size=2, pool_width=64,
                                  pool_height=48, pool_workers=1, cache_dir=str(tmp_path), deterministic=True)
    el = next(iter(pipeline.make_domain_datasets(cfg)))
    assert el["synthetic"]["image"].shape == (2, P, P, 3)
    assert el["synthetic"]["sigma_norm"].shape == (2, P, P, 1)
    assert float(tf.reduce_max(el["synthetic"]["sigma_norm"])) <= 1.0
    assert set(np.unique(el["real_mask"]["mask"].numpy())) <= {0.0, 1.0}
    pool_names = sorted(os.listdir(tmp_path / "pools"))
    assert len(pool_names) == 3 and sum(p.startswith("gaussian_64x48_n2") for p in pool_names) == 1
    for p in pool_names:
        assert len(os.listdir(tmp_path / "pools" / p / "image")) == 2
    # A second build reuses the cache: nothing is rendered again.
    calls = []
    monkeypatch.setattr(pools, "_generate_pool", lambda *a: calls.append(a))
    next(iter(pipeline.make_domain_datasets(cfg)))
    assert calls == []
    monkeypatch.undo()
    # An interrupted pool (no marker, one sample unfinished) resumes with just that sample.
    pool = tmp_path / "pools" / [p for p in pool_names if p.startswith("gaussian")][0]
    before = (pool / "image" / "00000000.png").stat().st_mtime_ns
    os.remove(pool / "pool.json")
    os.remove(pool / "meta" / "00000001.json")
    pools.ensure_pool("gaussian", 64, 48, 2, cfg.seed, 1, cache_dir=str(tmp_path), workers=1)
    assert (pool / "meta" / "00000001.json").is_file() and (pool / "pool.json").is_file()
    assert (pool / "image" / "00000000.png").stat().st_mtime_ns == before


def test_pool_rendering_in_worker_processes(tmp_path):
    """workers > 1 runs the generator CLI in a subprocess; same bytes as in-process rendering."""
    a = pools.ensure_pool("disc", 40, 32, 2, 0, 5, cache_dir=str(tmp_path / "a"), workers=2)
    b = pools.ensure_pool("disc", 40, 32, 2, 0, 5, cache_dir=str(tmp_path / "b"), workers=1)
    assert a.name == b.name
    for sub in ("image", "blur_map", "blur_map_binary"):
        names = sorted(os.listdir(a / sub))
        assert names == ["00000000.png", "00000001.png"] == sorted(os.listdir(b / sub))
        for n in names:
            assert (a / sub / n).read_bytes() == (b / sub / n).read_bytes()


def test_generator_tfrecords_as_synthetic_source(tmp_path, caplog):
    import io

    from tf_defocus.data import generate
    from tf_defocus.data import synthesize

    out = tmp_path / "shards"
    res = generate.run_generation(generate.GenerateConfig(
        out_dir=str(out), format="tfrecord", num_images=3, image_size="48x40",
        records_per_file=2), stream=io.StringIO())
    assert res["written"] == 3
    first = sorted(out.glob("data-*.tfrecord.gz"))[0]
    image, sigma, sid = synthesize.parse_tfrecord(next(iter(tf.data.TFRecordDataset(str(first), "GZIP"))))
    assert image.shape == (40, 48, 3) and sigma.shape == (40, 48, 1)
    ref = synthesize.synthesize(generate.image_seed(0, 0), 48, 40, psf="gaussian")
    np.testing.assert_allclose(sigma.numpy()[..., 0], ref.sigma_px, atol=1e-6)
    # The folder also holds manifests (.jsonl sidecars): only the shards are read.
    cfg = pipeline.DataConfig(patch_size=P, batch_synthetic=3, min_short_side=P + 1, max_short_side=64,
                                  synthetic_tfrecords=(str(out),), deterministic=True)
    el = next(iter(pipeline.make_domain_dataset(cfg, "synthetic")))
    assert el["image"].shape == (3, P, P, 3) and el["sigma_norm"].shape == (3, P, P, 1)
    assert 0.0 <= float(tf.reduce_min(el["sigma_norm"])) and float(tf.reduce_max(el["sigma_norm"])) <= 1.0
    # A garbage shard is named: fail fast, or skipped with a warning.
    (out / "data-00009-of-00010.tfrecord.gz").write_bytes(b"not gzip")
    with pytest.raises(readers.DataError, match="data-00009-of-00010.tfrecord.gz"):
        pipeline.make_domain_dataset(cfg, "synthetic")
    with caplog.at_level(logging.WARNING):
        ds = pipeline.make_domain_dataset(dataclasses.replace(cfg, skip_bad=True), "synthetic")
    assert "data-00009-of-00010.tfrecord.gz" in caplog.text
    assert next(iter(ds))["image"].shape == (3, P, P, 3)


def test_eval_datasets_are_finite_ordered_and_unaugmented(tmp_path):
    syn = _write_syndof(tmp_path / "syn", n=3, h=40, w=52)
    batches = list(evalsets.make_synthetic_eval_dataset(str(syn)))
    assert len(batches) == 3
    for i, b in enumerate(batches):
        assert b["image"].shape == (1, 32, 48, 3) and b["sigma_norm"].shape == (1, 32, 48, 1)
        # Top-left crop to a multiple of 16 of the untouched file.
        np.testing.assert_allclose(b["sigma_norm"].numpy()[0, ..., 0], _block_values(40, 52, i)[:32, :48] / 70.0,
                                   atol=1e-6)
    cropped = list(evalsets.make_synthetic_eval_dataset(str(syn), batch_size=2, crop_size=(32, 16)))
    assert [b["image"].shape[0] for b in cropped] == [2, 1] and cropped[0]["image"].shape[1:3] == (16, 32)
    with pytest.raises(ValueError, match="crop_size"):
        evalsets.make_synthetic_eval_dataset(str(syn), batch_size=2)

    cuhk = _write_masks(tmp_path / "cuhk", n=2)
    masks = list(evalsets.make_mask_eval_dataset(str(cuhk), blurred_value=0))
    assert len(masks) == 2
    np.testing.assert_array_equal(masks[0]["image"].numpy()[..., 1], masks[0]["mask"].numpy()[..., 0])

    proc = list(evalsets.make_synthetic_eval_dataset(None, num_images=2, image_size=(64, 48),
                                                     cache_dir=str(tmp_path / "c"), workers=1))
    again = list(evalsets.make_synthetic_eval_dataset(None, num_images=2, image_size=(64, 48),
                                                      cache_dir=str(tmp_path / "c"), workers=1))
    assert len(proc) == 2 and proc[0]["image"].shape == (1, 48, 64, 3)
    np.testing.assert_array_equal(proc[1]["sigma_norm"].numpy(), again[1]["sigma_norm"].numpy())
    pm = list(evalsets.make_mask_eval_dataset(None, num_images=1, image_size=(64, 48),
                                              cache_dir=str(tmp_path / "c"), workers=1))
    assert pm[0]["mask"].shape == (1, 48, 64, 1)
