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
    t = build_trainer(tiny_cfg(variant="B"))
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
    t2 = build_trainer(tiny_cfg(variant="B"))
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
    from tf_defocus import train
    try:
        train.FLAGS(["train", f"--model_dir={tmp_path / 'run'}", flag])
        code = train.main(["train"])
    finally:
        train.FLAGS.unparse_flags()
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()

