"""Tools under benchmarks/ that compute something a figure depends on (tiny models)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import average_weights  # noqa: E402

from tf_defocus.models.blur_estimator import BlurEstimator  # noqa: E402


def _saved(tmp_path, name, seed, width=0.0625):
    import keras
    keras.utils.set_random_seed(seed)
    path = tmp_path / f"{name}.keras"
    BlurEstimator(width=width).inference_model().save(path)
    return path


def test_average_weights_is_the_mean_of_every_weight(tmp_path):
    import keras
    a, b = _saved(tmp_path, "a", 0), _saved(tmp_path, "b", 1)
    wa, wb = (keras.saving.load_model(p).get_weights() for p in (a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(wa, wb))
    out = tmp_path / "soup.keras"
    average_weights.main(["--out", str(out), str(a), str(b)])
    got = keras.saving.load_model(out).get_weights()
    for x, y, m in zip(wa, wb, got):
        np.testing.assert_allclose(m, (x + y) / 2, rtol=1e-6, atol=1e-7)
    with pytest.raises(SystemExit, match="same weights"):
        average_weights.average_models([a, _saved(tmp_path, "wide", 2, width=0.125)])


def test_raw_predictor_of_a_plus_b_is_the_mean_of_their_raw_maps(tmp_path):
    import visible_error
    a, b = _saved(tmp_path, "a", 0), _saved(tmp_path, "b", 1)
    x = np.random.default_rng(0).uniform(0, 1, (20, 30, 3)).astype(np.float32)
    ra, rb = (visible_error.raw_predictor(str(p))(x) for p in (a, b))
    assert ra.shape == (20, 30) and np.abs(ra - rb).max() > 1e-3
    both = visible_error.raw_predictor(f"{a}+{b}")
    np.testing.assert_allclose(both(x), (ra + rb) / 2, atol=1e-5)
    assert both.fill_method == "pull_push"


def test_refill_swaps_the_fill_method_and_keeps_the_network_and_sidecar(tmp_path):
    import keras
    import refill
    from tf_defocus import artifacts, propagation
    from tf_defocus.training import loop
    b = BlurEstimator(width=0.0625)
    src = loop.save_inference_model(b.inference_model(fill_smooth=True), tmp_path,
                                    path=tmp_path / "src.keras")
    out = tmp_path / "guided.keras"
    refill.main(["--method=guided", f"--out={out}", str(src)])
    model = keras.saving.load_model(out)
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 48, 3)).astype(np.float32)
    x[:, :, :24] = 0.5
    assert model.layers[-1].method == "guided"
    np.testing.assert_allclose(model(x).numpy(),
                               propagation.guided_fill(b.inference_model()(x), x).numpy(), atol=1e-6)
    assert artifacts.read_info(out) == artifacts.read_info(src)
    with pytest.raises(SystemExit, match="method"):
        refill.main(["--method=median", f"--out={out}", str(src)])
    # visible_error's fill map is the model's own fill.
    import visible_error
    assert visible_error.raw_predictor(str(src)).fill_method == "pull_push"
    predict = visible_error.raw_predictor(str(out))
    assert predict.fill_method == "guided"
    np.testing.assert_allclose(visible_error.filled_map(predict(x[0]), x[0], method="guided"),
                               7.0 * model(x).numpy()[0, ..., 0], atol=1e-4)


def test_fill_guides_parses_guides_and_weights_the_opponent_channels():
    import fill_guides
    image = np.random.default_rng(0).uniform(0, 1, (4, 5, 3)).astype(np.float32)
    name, guide, range_sigma = fill_guides.parse_guide("opponent,3,0.5,0.2")
    assert (name, range_sigma) == ("opponent,3,0.5,0.2", 0.2)
    r, g, b = np.moveaxis(image, -1, 0)
    np.testing.assert_allclose(guide(image), np.stack([r + g + b, 0.5 * (r - g),
                                                       0.5 * ((r + g) / 2 - b)], -1), atol=1e-6)
    assert fill_guides.parse_guide("rgb,0.3")[1](image) is image
    for bad in ("rgb", "opponent,1,2", "lab,0.3"):
        with pytest.raises(Exception, match="expected"):
            fill_guides.parse_guide(bad)


def test_error_budget_parts_add_up_to_the_pooled_mae():
    import visible_error
    rng = np.random.default_rng(0)
    image = np.zeros((48, 64, 3), np.float32)
    image[:, 32:] = rng.random((48, 32, 3))          # left half smooth, right half textured
    sigma = np.tile(np.linspace(0.0, 7.9, 64, dtype=np.float32), (48, 1))
    data = [({"id": "a"}, image, sigma)]
    pred = sigma + 0.5
    parts = visible_error.error_budget(data, {"a": pred})
    assert {p[0] for p in parts} == {"smooth", "visible"}
    assert sum(p[3] for p in parts) == pytest.approx(1.0)
    assert sum(p[6] for p in parts) == pytest.approx(0.5 / 7.0, rel=1e-5)
    assert all(p[5] == pytest.approx(0.5, abs=1e-5) for p in parts)
    perfect = visible_error.error_budget(data, {"a": sigma})
    assert sum(p[6] for p in perfect) == 0.0


def test_edge_oracle_gives_a_depth_edge_the_sharper_side_within_the_disc_radius():
    import visible_error
    sigma = np.zeros((40, 60), np.float32)
    sigma[:, 30:] = 5.0                                   # sharp left, 5 px blur right: radius 10
    reader = visible_error.edge_oracle(sigma)
    np.testing.assert_array_equal(reader[:, :30], 0.0)    # the sharp side is read right
    np.testing.assert_array_equal(reader[:, 30:40], 0.0)  # within 10 px: the edge looks sharp
    np.testing.assert_array_equal(reader[:, 41:], 5.0)    # beyond its disc: read right
    gentle = np.tile(np.linspace(0.0, 2.0, 60, dtype=np.float32), (40, 1))
    np.testing.assert_array_equal(visible_error.edge_oracle(gentle), gentle)  # no step: truth
    fixed = visible_error.edge_oracle(sigma, window=7)    # +-3 px
    np.testing.assert_array_equal(fixed[:, 30:33], 0.0)
    np.testing.assert_array_equal(fixed[:, 34:], 5.0)
    blurred = visible_error.edge_oracle(sigma, side="blurred")
    np.testing.assert_array_equal(blurred[:, :20], 0.0)
    np.testing.assert_array_equal(blurred[:, 20:], 5.0)  # the 5 px disc reaches 10 px left
    np.testing.assert_array_equal(visible_error.edge_oracle(sigma, side="mid")[:, 25:35], 2.5)


def test_depth_step_table_splits_the_error_at_depth_steps_and_changes_the_bands():
    import visible_error
    sigma = np.zeros((40, 60), np.float32)
    sigma[:, 30:] = 5.0                                   # bands: columns 20-39
    image = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)   # no smooth pixel
    data = [({"id": "a"}, image, sigma)]
    raw = {"a": sigma + 3.0}                              # 3 px too blurred everywhere
    filled = {"a": visible_error.filled_map(raw["a"], image)}
    np.testing.assert_allclose(filled["a"], raw["a"])
    share, mae_in, mae_out, part_in, part_out, changed = visible_error.depth_step_table(
        data, raw, filled)
    assert share == pytest.approx(20 / 60)
    assert mae_in == pytest.approx(3 / 7) and mae_out == pytest.approx(3 / 7)
    assert part_in + part_out == pytest.approx(3 / 7)
    # Clipped into [lo, hi]: the sharp side's band (hi = 5) keeps its 3 px, the blurred side's
    # (8 px > hi = 5) is cut to the truth; outside the bands nothing changes.
    assert changed["clipped"] == pytest.approx((40 * 3 + 10 * 3) / 60 / 7, rel=1e-5)
    # Replaced by lo (hi): the blurred (sharp) side's 10 columns are 5 px off, the other side
    # exact; by the middle, all 20 columns are 2.5 px off. Outside, the 3 px error stays.
    for key in ("lo", "mid", "hi"):
        assert changed[key] == pytest.approx((40 * 3 + 50) / 60 / 7, rel=1e-5), key
    assert changed["truth"] == pytest.approx(40 * 3 / 60 / 7, rel=1e-5)
    # The blurred side's band (columns 30-39) looks sharper than it is: given its truth, only
    # the sharp side's band and the outside keep their 3 px.
    assert changed["truth_hidden"] == pytest.approx((40 * 3 + 10 * 3) / 60 / 7, rel=1e-5)
    # Twice the 5 px disc's reach (20 px) takes in columns 10-19 beside the bands.
    assert changed["truth_beyond"] == pytest.approx(50 * 3 / 60 / 7, rel=1e-5)
    assert changed["truth_both"] == pytest.approx(30 * 3 / 60 / 7, rel=1e-5)
    # Kept out of the fill, its own readings do not matter: absurd ones change nothing.
    absurd = {"a": np.where((np.arange(60) >= 30) & (np.arange(60) < 40), 100.0, raw["a"])}
    dropped = visible_error.depth_step_table(data, absurd, filled)[-1]["drop_hidden"]
    assert dropped == pytest.approx(changed["drop_hidden"], abs=1e-3)   # not 2.2 higher
    assert changed["drop_hidden"] < 3 / 7             # they take their neighbours' 3 and 8 px
    raw_sharp = {"a": np.where(sigma > 0, sigma, 3.0).astype(np.float32)}  # only the 0 px side off
    _, _, _, _, _, changed = visible_error.depth_step_table(
        data, raw_sharp, {"a": visible_error.filled_map(raw_sharp["a"], image)})
    assert changed["hi"] == pytest.approx((20 * 3 + 10 * 5) / 60 / 7, rel=1e-5)


def test_reach_bound_is_the_upper_depth_step_bound_before_the_threshold():
    import cv2
    import visible_error
    rng = np.random.default_rng(1)
    sigma = cv2.resize(rng.uniform(0.0, 7.0, (6, 8)).astype(np.float32), (80, 60),
                       interpolation=cv2.INTER_NEAREST)          # regions of random sigma
    reach = visible_error.reach_bound(sigma)
    _, hi = visible_error.step_bounds(sigma)
    np.testing.assert_array_equal(
        hi, np.where(reach > sigma + visible_error.STEP_RANGE_PX, reach, sigma))
    step = np.zeros((40, 60), np.float32)
    step[:, 30:] = 5.0
    wide = visible_error.reach_bound(step, 4.0)
    np.testing.assert_array_equal(wide[:, :10], 0.0)
    np.testing.assert_array_equal(wide[:, 10:], 5.0)


def test_step_shares_count_each_side_of_a_depth_step_and_the_pool_prints_them(capsys):
    import pool_fit
    import visible_error
    sigma = np.zeros((40, 60), np.float32)
    sigma[:, 30:] = 5.0                          # disc reach 10 px, twice it 20 px
    image = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)   # all textured
    counts = visible_error.step_shares(image, sigma)
    assert dict(zip(visible_error.STEP_SHARES, counts[1:] / counts[0])) == pytest.approx(
        {"hidden": 10 / 60, "sharp side": 10 / 60, "textured": 10 / 60, "beyond": 10 / 60,
         "blurred": 30 / 60})                    # columns 30-39, 20-29, 20-29, 10-19, 30-59
    pool_fit.print_depth_step_shares([({"source": "toy"}, image, sigma)] * 2)
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["toy", "4800", "0.167", "0.167", "0.167", "0.167", "0.500"]


def test_side_table_splits_textured_pixels_by_side_of_a_depth_step():
    import visible_error
    sigma = np.zeros((40, 60), np.float32)
    sigma[:, 30:] = 5.0                          # the 5 px disc reaches 10 px: bands 20-39
    image = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)   # all textured
    image[:, :10] = 0.5                          # smooth (most of it): left out
    raw = {"a": np.where(np.arange(60) < 30, 1.0, 4.0) + np.zeros((40, 1), np.float32)}
    rows = {(side, lo): (share, true, read)
            for side, lo, hi, share, true, read in visible_error.side_table([({"id": "a"}, image,
                                                                                sigma)], raw)}
    assert set(rows) == {("hidden", 5.0), ("sharp side", 0.0), ("away", 0.0), ("away", 5.0)}
    assert rows["hidden", 5.0] == pytest.approx((10 / 60, 5.0, 4.0))        # columns 30-39
    assert rows["sharp side", 0.0] == pytest.approx((10 / 60, 0.0, 1.0))    # columns 20-29
    from tf_defocus import metrics
    textured = ~metrics.smooth_pixels(image)
    assert 0 < textured[:, :10].mean() < 1                                # some left out
    assert rows["away", 0.0] == pytest.approx((textured[:, :20].mean() / 3, 0.0, 1.0))
    assert rows["away", 5.0] == pytest.approx((20 / 60, 5.0, 4.0))          # columns 40-59


def _two_textured_sides():
    """(32, 64, 3) image, textured in columns 0-15 and 48-63 and flat between, and its raw
    sigma [px]: 1 on the left half, 5 on the right."""
    rng = np.random.default_rng(0)
    image = np.full((32, 64, 3), 0.5, np.float32)
    image[:, :16] = rng.random((32, 16, 3))
    image[:, 48:] = rng.random((32, 16, 3))
    sigma = np.where(np.arange(64) < 32, 1.0, 5.0)[None].repeat(32, 0).astype(np.float32)
    return image, sigma


def test_filled_map_leans_to_the_blurred_side_and_skips_unweighted_readings():
    import visible_error
    image, sigma = _two_textured_sides()
    plain = visible_error.filled_map(sigma, image)
    lean = visible_error.filled_map(sigma, image, lean=1.0)
    for m in (plain, lean):                             # visible readings are kept
        np.testing.assert_allclose(m[:, :12], 1.0, atol=1e-4)
        np.testing.assert_allclose(m[:, 52:], 5.0, atol=1e-4)
    middle = (slice(None), slice(28, 36))               # smooth, between the two
    assert lean[middle].mean() > plain[middle].mean() + 0.5
    assert lean.max() <= 5.0 + 1e-4                     # a weighted mean stays in range
    # The right side not used: the whole smooth strip takes the left's 1 px.
    skip = visible_error.filled_map(sigma, image, weight=(np.arange(64) < 32)[None].repeat(32, 0))
    assert plain[:, 40:48].min() > 3.0 and skip[:, :48].max() < 1.05


def test_guided_fill_keeps_visible_readings_and_fills_within_their_range():
    import visible_error
    image, sigma = _two_textured_sides()
    filled = visible_error.guided_fill(sigma, image, 50.0, 0.5, scale=2)
    np.testing.assert_allclose(filled[:, :12], 1.0, atol=1e-4)
    np.testing.assert_allclose(filled[:, 52:], 5.0, atol=1e-4)
    assert filled.min() >= 1.0 - 1e-4 and filled.max() <= 5.0 + 1e-4
    assert filled[:, 20:28].mean() < filled[:, 36:44].mean()   # each side nearer its own


def test_regions_split_equal_sigma_by_connectivity_and_take_their_medians():
    import visible_error
    sigma = np.zeros((6, 9), np.float32)
    sigma[:, 3:6] = 4.0                  # a band at 4 px splits the 0 px area into two regions
    labels = visible_error.true_regions(sigma)
    assert len(np.unique(labels)) == 3
    assert labels[0, 0] == labels[5, 2] != labels[0, 8]
    values = np.arange(sigma.size, dtype=np.float32).reshape(sigma.shape)
    med = visible_error.region_medians(values, labels)
    for lab in np.unique(labels):
        assert np.all(med[labels == lab] == np.median(values[labels == lab]))


def test_region_table_fixes_scattered_errors_but_not_a_whole_region_read_wrong():
    import visible_error
    rng = np.random.default_rng(2)
    image = rng.random((32, 48, 3)).astype(np.float32)       # textured: every pixel visible
    sigma = np.zeros((32, 48), np.float32)
    sigma[:, 24:] = 6.0
    scattered = sigma + 3.0 * (rng.random(sigma.shape) < 0.2)  # a fifth of the pixels 3 px off
    whole = sigma + 2.0 * (sigma == 0)                          # the sharp half read 2 px high
    data = [({"id": "a"}, image, sigma)]
    mae, medians, oracle, worst = visible_error.region_table(data, {"a": scattered}, {"a": scattered})
    assert mae == pytest.approx(np.abs(scattered - sigma).mean() / 7.0, rel=1e-5)
    assert medians == pytest.approx(0.0, abs=1e-6)
    assert oracle < 0.1 * mae
    mae, medians, oracle, worst = visible_error.region_table(data, {"a": whole}, {"a": whole})
    assert mae == pytest.approx(1.0 / 7.0, rel=1e-5)           # half the pixels off by 2 px
    assert medians == pytest.approx(mae, rel=1e-5)
    assert oracle > 0.9 * mae      # nothing right nearby to fill the sharp half from
    assert worst[0][1] == "a"


def test_two_scale_table_is_the_median_truth_per_cell_and_keeps_unseen_readings():
    import two_scale
    rng = np.random.default_rng(0)
    full = np.repeat(np.array([1.1, 4.6], np.float32), 200)     # two cells of the full reading
    half = np.repeat(np.array([2.2, 9.1], np.float32), 200)
    truth = np.concatenate([rng.normal(0.5, 0.1, 200), rng.normal(6.5, 0.3, 200)])
    table = two_scale.Table(truth, full, half)
    assert table.cells == 2
    fused = table(np.array([[1.1, 4.6, 3.0]], np.float32), np.array([[2.2, 9.1, 3.0]], np.float32))
    assert fused[0, 0] == pytest.approx(np.median(truth[:200]))
    assert fused[0, 1] == pytest.approx(np.median(truth[200:]))
    assert fused[0, 2] == pytest.approx(3.0)   # no pool pixel in that cell: the full reading


def test_two_scale_refiner_starts_as_the_full_scale_reading():
    import two_scale
    rng = np.random.default_rng(1)
    image = rng.random((1, 32, 48, 3)).astype(np.float32)
    full = rng.uniform(0, 7, (1, 32, 48)).astype(np.float32)
    out = two_scale.build_refiner()(two_scale.refiner_features(image, full, 2 * full))
    np.testing.assert_allclose(7.0 * np.asarray(out)[..., 0], full, atol=1e-5)


def test_default_model_benchmark_takes_extra_models_by_name(tmp_path):
    import default_model
    model = tmp_path / "wide.keras"
    model.write_bytes(b"")
    assert default_model.parse([f"--also=wide={model}"]).also == [f"wide={model}"]
    for bad in ("wide", f"wide={tmp_path / 'missing.keras'}"):
        with pytest.raises(SystemExit):
            default_model.parse([f"--also={bad}"])


def test_box_filter_benchmark_compares_equal_results(capsys):
    import box_filter
    box_filter.compare("2x24x40", repeats=1)
    row = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert row[0] == "2x24x40" and row[4].endswith("x") and row[5].endswith("x")
    assert float(row[6]) < 0.01   # levels of 255: the three implementations agree


def test_fill_speed_benchmark_times_every_fill_against_pull_push(capsys):
    import fill_speed
    fill_speed.compare("40x72", "1,4", repeats=1)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [" ".join(r[1:-3]) for r in rows] == ["pull-push", "guided x1", "guided x4", "guided_edges"]
    assert rows[0][-2] == "1.0x" and all(float(r[-1]) > 0 for r in rows)


def test_train_step_benchmark_reads_the_recipe_and_its_later_stages():
    import train_step
    root = Path(__file__).resolve().parents[1]
    first, *later = train_step.recipe_configs(str(root / "configs/default_model.flags"))
    assert (first.model.variant, first.model.scales, first.data.patch_size) == ("B", 2, 128)
    assert first.schedule.train_steps == 133000 and first.schedule.cycle_steps == 19000
    assert [s.schedule.train_steps for s in later] == [137000]   # the step counter goes on
    assert later[0].optimizer.learning_rate == 1e-5


def test_benchmark_headers_name_the_cpu():
    import os
    import machine
    assert machine.cpu_model().split(", ")[1] == f"{os.cpu_count()} cores"


def test_camera_ablation_renders_the_same_scenes_without_the_camera_stages(tmp_path):
    import json
    import camera_ablation
    from smooth_in_focus import load_validation_set
    small = ("--image_size=96x64",)
    for name in ("as_is", "clean"):
        camera_ablation.render_variant(tmp_path / name, name, 1, small)
    camera_ablation.render_variant(tmp_path / "again", "as_is", 1, small)
    (m0, a, sa), = load_validation_set(tmp_path / "as_is")
    (m1, c, sc), = load_validation_set(tmp_path / "clean")
    (_, again, _), = load_validation_set(tmp_path / "again")
    assert np.array_equal(a, again)            # deterministic, so as_is is the validation set
    np.testing.assert_array_equal(sa, sc)      # same scene, same labels
    assert np.abs(a - c).max() > 0.01          # only the camera differs
    disc = json.loads((tmp_path / "clean" / "meta" / f"{m1['id']}.json").read_text())["disc"]
    assert disc["shot_noise"] == disc["read_noise"] == disc["sharpen_amount"] == 0
    assert disc["jpeg_quality"] == 0
    assert {k: v for k, v in m0["disc"].items() if k not in camera_ablation.VARIANTS["clean"]} == \
        {k: v for k, v in disc.items() if k not in camera_ablation.VARIANTS["clean"]}


def test_camera_ablation_denoise_removes_grain_and_keeps_range():
    import camera_ablation
    rng = np.random.default_rng(0)
    flat = np.full((48, 64, 3), 0.5, np.float32)
    noisy = np.clip(flat + rng.normal(0, 4 / 255, flat.shape), 0, 1).astype(np.float32)
    out = camera_ablation.denoise(noisy, 6)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert out.std() < 0.5 * noisy.std()
    assert abs(out.mean() - 0.5) < 2 / 255


def test_paired_curves_read_console_logs_and_pair_windows(tmp_path, capsys):
    """Console logs (carriage-return progress, repeated steps after a resume: the last wins)
    pair by step; windows average the steps both runs logged, up to --until."""
    import paired_curves
    a = tmp_path / "a.log"
    a.write_text("step 100/900 total=1 mse=0.2 aux_mse=1 (1 steps/s)\rstep 200/900 total=1 "
                 "mse=0.4 aux_mse=1\nvalidation at step 200: synthetic/val_mse=0.1 "
                 "synthetic/val_mae=0.3 real_mask/val_mask_auc=0.9\nstep 300/900 mse=0.3\n"
                 "step 300/900 mse=0.1\n")
    b = tmp_path / "b.log"
    b.write_text("step 100/900 mse=0.1\nstep 200/900 mse=0.2\nstep 300/900 mse=0.2\n"
                 "validation at step 200: synthetic/val_mse=0.05 synthetic/val_mae=0.2\n")
    train_a, val_a = paired_curves.read_curves(a)
    assert train_a == {100: 0.2, 200: 0.4, 300: 0.1} and val_a == {200: (0.1, 0.3)}
    train_b, _ = paired_curves.read_curves(b)
    windows = paired_curves.paired_windows(train_a, train_b, 200)
    assert windows == [(100, 200, pytest.approx(0.3), pytest.approx(0.15)),
                       (300, 300, pytest.approx(0.1), pytest.approx(0.2))]
    assert len(paired_curves.paired_windows(train_a, train_b, 200, until=200)) == 1
    paired_curves.main(paired_curves.argparse.Namespace(a=f"x={a}", b=f"y={b}", window=200,
                                                        until=0))
    out = capsys.readouterr().out
    assert "y lower in 1 of 2 windows" in out and "lower validation MSE at 1 of 1" in out


def test_edge_profile_composite_occludes_the_back_with_the_blurred_front():
    import edge_profile
    from uniform_blur import blurred
    rng = np.random.default_rng(0)
    front, back = (rng.random((48, 64, 3)).astype(np.float32) for _ in range(2))
    sharp = edge_profile.composite(front, back, 0.0, 0.0)     # a plain mosaic, up to 8 bits
    np.testing.assert_allclose(sharp[:, :32], front[:, :32], atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(sharp[:, 32:], back[:, 32:], atol=0.5 / 255 + 1e-6)
    # Sharp front, back blurred by 3 px: the back is blurred right up to the edge.
    out = edge_profile.composite(front, back, 0.0, 3.0)
    np.testing.assert_array_equal(out[:, 32:], blurred(back, 3.0)[:, 32:])
    # Blurred front: beyond its disc radius (6 px) each side is its own photo, within it the
    # front spills over the back.
    out = edge_profile.composite(front, back, 3.0, 0.0)
    np.testing.assert_allclose(out[:, 40:], back[:, 40:], atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(out[:, :24], blurred(front, 3.0)[:, :24])
    assert np.abs(out[:, 32:36] - back[:, 32:36]).mean() > 0.05


def test_edge_profile_reads_each_side_at_its_distance_from_the_edge():
    import edge_profile
    cols = np.tile(np.arange(96, dtype=np.float32), (96, 1))
    a, b = np.zeros((96, 96, 3), np.float32), np.full((96, 96, 3), 10.0, np.float32)
    mask_b = np.ones((96, 96), bool)
    mask_b[:, 39] = False                    # smooth in scene b: its 8 px front offset is skipped
    front, back = edge_profile.profile(lambda im: cols + im[..., 0],
                                       [(a, np.ones((96, 96), bool)), (b, mask_b)])
    expected = {k: 47 - k + 5.0 for k in edge_profile.OFFSETS_PX}   # mean of a and b
    expected[8] = 39.0                                              # a only
    np.testing.assert_array_equal(front, [expected[k] for k in edge_profile.OFFSETS_PX])
    np.testing.assert_array_equal(back, [48 + k + 5.0 for k in edge_profile.OFFSETS_PX[::-1]])


def test_smooth_shares_split_the_all_in_focus_scenes_from_the_rest():
    """Two scenes, flat grey (smooth) left half, noise right half; the first all in focus."""
    from smooth_in_focus import smooth_shares
    rng = np.random.default_rng(0)
    image = np.full((32, 64, 3), 0.5, np.float32)
    image[:, 32:] = rng.uniform(0, 1, (32, 32, 3))
    sigma = np.zeros((32, 64), np.float32)
    data = [({"id": "a", "max_coc_px": 0.5}, image, sigma),
            ({"id": "b", "max_coc_px": 6.0}, image, sigma)]
    read = np.zeros((32, 64), np.float32)
    read[:, :8] = 3.0                                  # a quarter of the smooth half read blurred
    (am, ab), (em, eb) = smooth_shares(data, {"a": np.zeros_like(read), "b": read})
    assert (am, ab) == (0.0, 0.0)
    from tf_defocus import metrics
    smooth = metrics.smooth_in_focus_pixels(image, sigma)
    assert smooth[:, :8].all() and not smooth[:, 40:].any()
    assert em == 0.0 and eb == pytest.approx(smooth[:, :8].sum() / (2 * smooth.sum()))
    (am, ab), _ = smooth_shares(data[1:], {"b": read})
    assert np.isnan(am) and np.isnan(ab)               # no all-in-focus scene
