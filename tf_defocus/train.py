"""Train DMENet (or the DoF network): ``python -m tf_defocus.train --flagfile=FILE [--flag=...]``.

Flags given after ``--flagfile`` override the file. ``--model_dir`` receives ``config.json``
(the resolved settings), ``checkpoints/`` (every network, every optimizer, the step),
``logs/`` (TensorBoard) and the inference model ``blur_estimator.keras`` (or ``dofnet.keras``)
with its ``.json`` ModelInfo. ``--train_steps`` is the total: rerunning the same command after an
interruption resumes from the last checkpoint and stops at the total. Ctrl-C or SIGTERM
(``kill``, a scheduler's preemption) saves a checkpoint of the last completed step first; after
SIGTERM the command exits with status 143.

Examples::

    python -m tf_defocus.train --flagfile=configs/quickstart.flags --model_dir=/tmp/quick
    python -m tf_defocus.train --flagfile=configs/dmenet.flags --model_dir=runs/dmenet \\
        --vgg_weights=vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \\
        --synthetic_dir=data/SYNDOF --real_mask_dir=data/CUHK --real_mask_blurred_value=255 \\
        --unlabelled_dir=data/Flickr --strategy=mirrored
"""

from absl import flags

from tf_defocus import cli   # TensorFlow's start-up lines are hidden by tf_defocus/__init__
from tf_defocus.training import config as tcfg
from tf_defocus.training import runner
from tf_defocus.training.loop import NonFiniteLossError, TerminationRequested


def define_flags(flag_values):
    """``--task``, one flag per setting of every task config (``training.config.TASKS``; the
    flag names are the settings' names), and ``--verbose``."""
    flags.DEFINE_enum("task", "dmenet", list(tcfg.TASKS), "What to train.",
                      flag_values=flag_values)
    cli.define_config_flags(tcfg.TASKS.values(), flag_values)
    cli.define_verbose_flag(flag_values)
    return flag_values


def config_from_flags(flag_values):
    """The task config (``DMENetConfig`` / ``DoFNetConfig``) of parsed flags."""
    cls = tcfg.TASKS[flag_values.task]
    return cli.config_from_flags(cls, flag_values, classes=tcfg.TASKS.values())


def _checked_config(flag_values):
    """``config_from_flags`` and ``runner.check_runnable`` (model_dir, input paths)."""
    config = config_from_flags(flag_values)
    runner.check_runnable(config)
    return config


def _run(config):
    result = runner.train(config)
    summary = " ".join(f"{k}={v:.4g}" for k, v in {**result.logs, **result.val_logs}.items())
    print(f"done: step {result.step} in {result.seconds:.0f} s; {summary}; model "
          f"{result.model_path}", flush=True)


main, run = cli.config_app(None, _run, prog="tf_defocus.train",
                           errors={NonFiniteLossError: 1, TerminationRequested: 143},
                           define_flags=define_flags, make_config=_checked_config)
"""``main(argv, flag_values=None)`` -> exit code; ``run()``: the console script
(``tf-defocus-train``)."""


if __name__ == "__main__":
    run()
