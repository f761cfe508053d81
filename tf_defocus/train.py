"""Train DMENet (or the DoF network): ``python -m tf_defocus.train --flagfile=FILE [--flag=...]``.

Flags given after ``--flagfile`` override the file. ``--model_dir`` receives ``config.json``
(the resolved settings), ``checkpoints/`` (every network, every optimizer, the step),
``logs/`` (TensorBoard) and the inference model ``blur_estimator.keras`` (or ``dofnet.keras``)
with its ``.json`` ModelInfo. ``--train_steps`` is the total: rerunning the same command after an
interruption resumes from the last checkpoint and stops at the total. Ctrl-C or SIGTERM
(``kill``, a scheduler's preemption) saves a checkpoint of the last completed step first; after
SIGTERM the command exits with status 143. ``--then=STAGE.flags`` runs later stages in the same
``--model_dir`` (e.g. a last phase at a lower learning rate on other data); rerunning the
command after an interruption skips the stages already done.

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


def parse_flagfile(flagfile, *args):
    """The task config of ``flagfile`` followed by the flags ``args``, parsed as this CLI
    parses its command line (input paths are not checked)."""
    flag_values = define_flags(flags.FlagValues())
    flag_values(["tf_defocus.train", f"--flagfile={flagfile}", *args])
    return config_from_flags(flag_values)


def _checked_config(flag_values):
    """``config_from_flags`` and ``runner.check_runnable`` (model_dir, input paths), and the
    same for every later stage (``--then``), so a typo in the last stage fails now, not after
    the first stage's hours."""
    config = config_from_flags(flag_values)
    runner.check_runnable(config)
    _stage_configs(config)
    return config


def _stage_configs(config):
    """The configs of ``config.schedule.then``: each stage's flagfile with ``config``'s
    ``--model_dir`` (ValueError for a bad stage, or one that names stages itself)."""
    stages = []
    for flagfile in config.schedule.then:
        try:
            stage = parse_flagfile(flagfile, f"--model_dir={config.checkpointing.model_dir}")
            runner.check_runnable(stage)
        except (flags.Error, ValueError) as e:
            raise ValueError(f"stage {flagfile}: {e}") from e
        if stage.schedule.then:
            raise ValueError(f"stage {flagfile}: a later stage cannot name stages itself "
                             f"(--then); list every stage in the first command")
        stages.append((flagfile, stage))
    return stages


def _run(config):
    for name, stage in [(None, config)] + _stage_configs(config):
        if name is not None:
            print(f"stage {name}: resuming in {stage.checkpointing.model_dir}", flush=True)
        result = runner.train(stage)
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
