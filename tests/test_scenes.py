"""Realistic training data: layered scenes, package photos, the varied camera pipeline."""

import json

import numpy as np
import pytest

from tf_defocus.data import optics, photos, pipeline, pools, procedural, render, scenes, synthesize


def _library_or_skip(split="train"):
    lib = photos.PhotoLibrary(split=split)
    if not len(lib):
        pytest.skip("no package photos installed")
    return lib


def test_package_photos_exclude_reserved_and_split_is_disjoint():
    every = photos.package_photos("all")
    names = {p.name for p in every}
    assert not any("motorcycle" in n for n in names)  # Middlebury pair: reserved for evaluation
    assert "clock_motion.png" not in names
    train = set(photos.package_photos("train"))
    val = set(photos.package_photos("val"))
    plus = set(photos.package_photos("train+plasma"))
    assert not train & val and not plus & val
    assert train <= plus and plus | val == set(every)
    assert all(p.name in photos.VAL_PHOTOS for p in val)
    with pytest.raises(ValueError, match="split"):
        photos.package_photos("test")


def test_blur_suspect_mask_flags_defocus_not_flat_or_sharp():
    rng = np.random.default_rng(0)
    sharp = np.repeat(rng.random((96, 96, 1), np.float32), 3, -1)
    import cv2
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3.0)
    blurred = (blurred - blurred.min()) / np.ptp(blurred)  # keep its coarse contrast
    flat = np.full((96, 96, 3), 0.4, np.float32)
    assert photos.blur_suspect_mask(sharp).mean() < 0.05
    assert photos.blur_suspect_mask(flat).mean() == 0.0
    assert photos.blur_suspect_mask(blurred).mean() > 0.5


def test_photo_crop_shape_range_and_determinism():
    lib = _library_or_skip()
    a = lib.crop(np.random.default_rng(1), 37, 53)
    b = lib.crop(np.random.default_rng(1), 37, 53)
    assert a.shape == (37, 53, 3) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    big = lib.crop(np.random.default_rng(2), 1500, 1700)  # larger than any library photo
    assert big.shape == (1500, 1700, 3)


@pytest.mark.parametrize("with_photos", [True, False])
def test_layered_scene_contract(with_photos):
    lib = _library_or_skip() if with_photos else None
    image, depth, hints = scenes.layered_scene(np.random.default_rng(5), 96, 64, lib)
    assert image.shape == (64, 96, 3) and image.dtype == np.float32
    assert depth.shape == (64, 96) and depth.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert np.all(np.isfinite(depth)) and depth.min() > 0 and depth.max() <= scenes.SKY_DEPTH_MM
    assert hints["layout"] in scenes.LAYOUTS
    again = scenes.layered_scene(np.random.default_rng(5), 96, 64, lib)
    np.testing.assert_array_equal(image, again[0])
    np.testing.assert_array_equal(depth, again[1])
    with pytest.raises(ValueError, match="16x16"):
        scenes.layered_scene(np.random.default_rng(0), 8, 8)


def test_layered_scenes_cover_every_layout_and_smooth_surfaces():
    layouts, smooth = set(), 0
    for seed in range(30):
        _, _, hints = scenes.layered_scene(np.random.default_rng(seed), 64, 48, None)
        layouts.add(hints["layout"])
        smooth += bool(hints["smooth_depths_mm"])
    assert layouts == set(scenes.LAYOUTS)
    assert smooth >= 10


def test_smooth_surface_has_no_fine_detail():
    rng = np.random.default_rng(0)
    fields = [np.zeros((80, 80), np.float32)]
    s = procedural.smooth_surface(rng, 80, 80, np.array([0.5, 0.4, 0.3], np.float32), fields)
    assert s.shape == (80, 80, 3)
    # neighbouring pixels differ by far less than one 8-bit step on average
    assert np.abs(np.diff(s, axis=1)).mean() < 1.0 / 255


def test_smooth_surface_grain_is_faint():
    rng = np.random.default_rng(0)
    fields = [np.zeros((80, 80), np.float32)]
    fine = np.random.default_rng(1).standard_normal((80, 80)).astype(np.float32)
    grains = []
    for _ in range(20):
        s = procedural.smooth_surface(rng, 80, 80, np.array([0.5, 0.5, 0.5], np.float32), fields, fine)
        grains.append(float(np.std(np.diff(s[..., 0], axis=1)) / 0.5))
    assert max(grains) < 0.1                      # at most a few percent of the surface's level
    assert sum(g > 0.005 for g in grains) >= 8    # most surfaces carry some grain


def test_layered_synthesis_labels_follow_depth_and_all_in_focus_scenes_exist():
    aif = 0
    for seed in range(40):
        s = synthesize.synthesize(seed, 64, 48, psf="disc", scene="layered", isp="varied")
        assert s.image.shape == (48, 64, 3) and s.sigma_px.shape == (48, 64)
        assert s.camera["source"] == "layered"
        assert s.sigma_px.max() <= 7.0 + 1e-3
        if s.camera["max_coc_px"] < 2.0:
            aif += 1
            assert s.sigma_px.max() <= 0.125 + 1e-6  # CoC <= 1.5 px -> sigma <= 0.125 px
    assert aif >= 1


def test_all_in_focus_share_changes_only_which_layered_scenes_are_all_in_focus():
    def is_aif(s):
        return s.camera["max_coc_px"] < 2.0
    seeds = range(30)
    base = [synthesize.synthesize(i, 48, 32, psf="disc", scene="layered", isp="varied") for i in seeds]
    more = [synthesize.synthesize(i, 48, 32, psf="disc", scene="layered", isp="varied", all_in_focus=0.6)
            for i in seeds]
    assert sum(map(is_aif, more)) >= sum(map(is_aif, base)) + 8   # 0.6 against 0.1 of 30 scenes
    for a, b in zip(base, more):
        if is_aif(a):
            assert is_aif(b)                                          # the same camera draw decides
            np.testing.assert_array_equal(a.image, b.image)
    explicit = synthesize.synthesize(3, 48, 32, psf="disc", scene="layered", isp="varied",
                                     all_in_focus=synthesize.ALL_IN_FOCUS_PROB)
    np.testing.assert_array_equal(explicit.image, base[3].image)
    with pytest.raises(ValueError, match="all_in_focus and smooth_focus must be >= 0 with a sum of at most 1"):
        synthesize.synthesize(0, 32, 32, psf="disc", scene="layered", all_in_focus=0.9)
    smooth = [synthesize.synthesize(i, 48, 32, psf="disc", scene="layered", isp="varied",
                                    smooth_focus=0.0) for i in seeds]
    for a, b in zip(base, smooth):   # no scene focused on a smooth surface: only those change
        assert is_aif(a) == is_aif(b)
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(base, smooth))


def test_pool_key_names_the_focus_shares_only_when_they_are_set():
    from tf_defocus.data import pools
    args = (None, "disc", 64, 48, 4, 0, 1, "mixed", "varied")
    default, key = pools.pool_dir(*args)
    assert "all_in_focus" not in key
    assert pools.pool_dir(*args, all_in_focus=synthesize.ALL_IN_FOCUS_PROB)[0] == default
    other, key = pools.pool_dir(*args, all_in_focus=0.3)
    assert other != default and key["all_in_focus"] == 0.3 and "smooth_focus" not in key
    third, key = pools.pool_dir(*args, all_in_focus=0.3, smooth_focus=0.5)
    assert third not in (default, other) and key["smooth_focus"] == 0.5
    leaves = (None, "disc", 64, 48, 4, 0, 1, "dead_leaves", "varied")   # no layered scenes
    assert pools.pool_dir(*leaves, all_in_focus=0.3)[0] == pools.pool_dir(*leaves)[0]


def test_layered_synthesis_is_deterministic():
    a = synthesize.synthesize(11, 48, 32, psf="disc", scene="layered", isp="varied")
    b = synthesize.synthesize(11, 48, 32, psf="disc", scene="layered", isp="varied")
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.sigma_px, b.sigma_px)
    with pytest.raises(ValueError, match="scene"):
        synthesize.synthesize(0, 32, 32, scene="cartoon")
    with pytest.raises(ValueError, match="isp"):
        synthesize.synthesize(0, 32, 32, psf="disc", isp="film")


def test_downscaled_render_divides_sigma_by_the_scale():
    rng = np.random.default_rng(0)
    image = rng.random((64, 96, 3), np.float32)
    depth = np.where(np.arange(96)[None, :] < 48, 1000.0, 4000.0).astype(np.float32)
    depth = np.broadcast_to(depth, (64, 96)).copy()
    cam = optics.sample_camera(depth, np.random.default_rng(1), image_width_px=96)
    disc = render.DiscOptions(jpeg_quality=0, shot_noise=0.0, read_noise=0.0)
    _, full = render.render_defocus(image, depth, cam, psf="disc", disc=disc)
    out, half = render.render_defocus(image, depth, cam, psf="disc", disc=disc, out_size=(48, 32))
    assert out.shape == (32, 48, 3) and half.shape == (32, 48)
    # away from the depth edge the label is the full-resolution sigma / 2
    np.testing.assert_allclose(half[:, :20], full[0, 0] / 2, rtol=1e-5)
    np.testing.assert_allclose(half[:, -20:], full[0, -1] / 2, rtol=1e-5)


def test_camera_finish_tone_sharpen_jpeg():
    rng = np.random.default_rng(0)
    lin = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))[..., None].repeat(3, -1)
    plain = render.camera_finish(lin, render.DiscOptions(shot_noise=0, read_noise=0, jpeg_quality=0), rng)
    toned = render.camera_finish(lin, render.DiscOptions(shot_noise=0, read_noise=0, jpeg_quality=0,
                                                         tone=0.5), rng)
    # S-curve: darker shadows, brighter highlights, same mid-grey, still monotone
    assert toned[0, 5, 0] < plain[0, 5, 0] and toned[0, 58, 0] > plain[0, 58, 0]
    assert np.all(np.diff(toned[0, :, 0]) >= 0)
    small = render.camera_finish(lin, render.DiscOptions(jpeg_quality=60, sharpen_amount=0.5), rng,
                                 out_size=(32, 8))
    assert small.shape == (8, 32, 3) and 0 <= small.min() and small.max() <= 1
    rng = np.random.default_rng(3)
    many = [render.sample_varied_options(rng) for _ in range(400)]
    scales = np.array([o.render_scale for o in many])
    quality = np.array([o.jpeg_quality for o in many])
    assert 0.4 < np.mean(scales == 1.0) < 0.6 and scales.max() > 1.8 and scales.min() == 1.0
    assert 0.05 < np.mean(quality == 0) < 0.15 and quality[quality > 0].min() < 45
    assert 0.4 < np.mean([o.sharpen_amount == 0 for o in many]) < 0.6


def test_pool_key_separates_scene_kinds_and_keeps_old_keys():
    old, key_old = pools.pool_dir("/c", "disc", 64, 48, 4, 0, 1)
    assert "scene" not in key_old  # dead-leaves pools keep their cache names
    new, key_new = pools.pool_dir("/c", "disc", 64, 48, 4, 0, 1, scene="layered", isp="varied")
    assert new != old and key_new["scene"] == "layered" and "photos" in key_new
    with pytest.raises(ValueError, match="pool_scene"):
        pipeline.DataConfig(pool_scene="cartoon")


def test_mixed_scenes_draw_both_kinds_per_seed_and_keep_each_kinds_streams():
    kinds = [synthesize.synthesize(seed, 48, 32, psf="disc", scene="mixed", isp="varied").camera["source"]
             for seed in range(12)]
    assert set(kinds) == {"layered", "procedural"}
    seed = kinds.index("layered")
    a = synthesize.synthesize(seed, 48, 32, psf="disc", scene="mixed", isp="varied")
    b = synthesize.synthesize(seed, 48, 32, psf="disc", scene="layered", isp="varied")
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.sigma_px, b.sigma_px)


def test_dead_leaves_smooth_share_adds_smooth_leaves_and_zero_keeps_the_original_scenes():
    from tf_defocus import metrics
    plain = procedural.dead_leaves_scene(np.random.default_rng(3), 160, 120)
    again = procedural.dead_leaves_scene(np.random.default_rng(3), 160, 120, smooth_share=0.0)
    np.testing.assert_array_equal(plain[0], again[0])
    smooth = [metrics.smooth_pixels(procedural.dead_leaves_scene(
        np.random.default_rng(s), 320, 240, smooth_share=share)[0]).mean()
        for share in (0.0, 0.9) for s in range(4)]
    assert np.mean(smooth[4:]) > np.mean(smooth[:4]) + 0.05


def test_generate_records_its_photos_and_warns_when_some_are_missing(tmp_path, monkeypatch, capsys):
    from tf_defocus import generate
    argv = ["generate", "--num_images=1", "--image_size=48x32", "--scene=layered",
            "--psf=disc", "--photo_split=val"]
    assert generate.main([*argv, f"--out_dir={tmp_path / 'a'}"]) == 0
    doc = json.loads((tmp_path / "a" / "generate_config.json").read_text())
    installed = photos.package_photos("val")
    assert doc["photos"] == {"count": len(installed), "fingerprint": photos.fingerprint(installed)}
    assert ("warning" in capsys.readouterr().err) == bool(photos.missing_photos("val"))
    # one held-out photo gone: same command, other scenes -> a warning that names it
    monkeypatch.setattr(photos, "VAL_PHOTOS", photos.VAL_PHOTOS | {"not_installed.jpg"})
    assert "not_installed.jpg" in photos.missing_photos("val")
    assert "not_installed.jpg" not in photos.missing_photos("train")
    assert generate.main([*argv, f"--out_dir={tmp_path / 'b'}"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "not_installed.jpg" in err and "apt-get install" in err


def test_plasma_photos_join_training_only_on_request_and_must_be_installed(tmp_path, monkeypatch):
    import cv2
    monkeypatch.setattr(photos, "PLASMA_DIR", str(tmp_path))
    train = photos.package_photos("train")
    key = pools.pool_dir("/c", "disc", 64, 48, 4, 0, 1, "mixed", "varied")
    with pytest.raises(ValueError, match="apt-get install plasma-workspace-wallpapers"):
        pools.pool_dir("/c", "disc", 64, 48, 4, 0, 1, "mixed", "varied", photo_split="train+plasma")
    for name in photos.PLASMA_PHOTOS:                  # the package's layout: one file per size
        d = tmp_path / name / "contents" / "images"
        d.mkdir(parents=True)
        for w, h in ((1280, 800), (2560, 1600)):
            cv2.imwrite(str(d / f"{w}x{h}.jpg"), np.full((8, 8 + w // 640, 3), 128, np.uint8))
    plus = photos.package_photos("train+plasma")
    added = [p for p in plus if p not in train]
    assert sorted(photos.photo_name(p) for p in added) == sorted(n + ".jpg" for n in photos.PLASMA_PHOTOS)
    assert all(p.name == "2560x1600.jpg" for p in added)          # the largest of each
    assert photos.package_photos("train") == train and photos.missing_photos("train+plasma") == []
    # the default pools keep their key; the plasma pools get their own
    assert pools.pool_dir("/c", "disc", 64, 48, 4, 0, 1, "mixed", "varied") == key
    plasma = pools.pool_dir("/c", "disc", 64, 48, 4, 0, 1, "mixed", "varied", photo_split="train+plasma")
    assert plasma[0] != key[0] and plasma[1]["photo_split"] == "train+plasma"
    assert plasma[1]["photos"] == photos.fingerprint(plus) != key[1]["photos"]


def test_point_lights_are_bright_sparse_and_deterministic():
    from tf_defocus.data import highlights
    maps = [highlights.point_lights(np.random.default_rng(s), 120, 160) for s in range(20)]
    for m in maps:
        assert m.shape == (120, 160, 3) and m.dtype == np.float32 and m.min() >= 0
        assert (m.max(axis=-1) > 1.0).mean() < 0.05             # sparse
    assert max(m.max() for m in maps) > 10                        # far brighter than white
    np.testing.assert_array_equal(maps[3], highlights.point_lights(np.random.default_rng(3), 120, 160))


def test_synthesize_highlights_change_the_image_not_the_label():
    kw = dict(psf="disc", scene="mixed", isp="varied")
    with_lights = [s for s in range(12)
                   if synthesize.synthesize(s, 64, 48, highlights=1.0, **kw).camera.get("point_lights")]
    assert len(with_lights) == 12
    a = synthesize.synthesize(5, 64, 48, **kw)
    b = synthesize.synthesize(5, 64, 48, highlights=1.0, **kw)
    np.testing.assert_array_equal(a.sigma_px, b.sigma_px)
    assert not np.array_equal(a.image, b.image)
    assert "point_lights" not in a.camera
    with pytest.raises(ValueError, match="disc"):
        synthesize.synthesize(5, 64, 48, psf="gaussian", highlights=0.5)
    with pytest.raises(ValueError, match="probability"):
        synthesize.synthesize(5, 64, 48, highlights=1.5, **kw)
    # pools: the key (and so the cached folder) changes only when lights are asked for
    plain = pools.pool_dir("/tmp/c", "disc", 64, 48, 4, 0, 1, "mixed", "varied")
    assert pools.pool_dir("/tmp/c", "disc", 64, 48, 4, 0, 1, "mixed", "varied", 0.0) == plain
    lit = pools.pool_dir("/tmp/c", "disc", 64, 48, 4, 0, 1, "mixed", "varied", 0.5)
    assert lit[0] != plain[0] and lit[1]["highlights"] == 0.5 and "highlights" not in plain[1]


def test_training_on_plasma_photos_that_are_not_installed_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "PLASMA_DIR", str(tmp_path))
    kw = dict(patch_size=32, pool_size=2, pool_width=64, pool_height=48, pool_workers=1,
              cache_dir=str(tmp_path), pool_photos="train+plasma")
    for domain, cfg in (("real_unlabelled", pipeline.DataConfig(unlabelled_photos=True, **kw)),
                        ("synthetic", pipeline.DataConfig(pool_scene="mixed", synthetic_psf="disc", **kw))):
        with pytest.raises(ValueError, match="plasma-workspace-wallpapers"):
            pipeline.make_domain_dataset(cfg, domain)
    assert not (tmp_path / "pools").exists()
