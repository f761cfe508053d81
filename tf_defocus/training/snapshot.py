"""The inference model of a training checkpoint, without touching the run: evaluate a model
while it trains, or pick a step.

    python -m tf_defocus.training.snapshot --model_dir=runs/default_model --out=/tmp/b_step4000.keras [--step=4000]

Reads ``<model_dir>/config.json`` (written by the train CLI), builds the DMENet networks of that
config, restores only the networks (``expect_partial``: optimizer slots are skipped) from
``<model_dir>/checkpoints/ckpt-<step>`` (default: the latest) and writes B's float32 inference
model (``blur_estimator``) plus its ModelInfo sidecar to ``--out``, atomically. Exit code 2: bad
flags, not a dmenet run of the train CLI, no such checkpoint.
"""

import dataclasses
from pathlib import Path

from tf_defocus import cli
from tf_defocus.config import Section, setting


@dataclasses.dataclass(frozen=True)
class SnapshotConfig(Section):
    """One snapshot; each field is a flag of the same name."""
    model_dir: str = setting(None, "model_dir of a dmenet run of the train CLI (config.json, "
                                   "checkpoints/).")
    out: str = setting(None, "Output .keras path.")
    step: int | None = setting(None, "Checkpoint step (default: the latest).", low=0)

    def check(self):
        if Path(self.out).suffix != ".keras":
            raise ValueError("--out must end in .keras")


def inference_model_from_checkpoint(model_dir, step=None):
    """(keras inference model, checkpoint path) of a DMENet run's checkpoint."""
    import tensorflow as tf

    from tf_defocus.training import config, dmenet_task, loop
    model_dir = Path(model_dir)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise ValueError(f"{model_dir}: no config.json (not a train CLI model_dir)")
    cfg, _ = config.from_json(cfg_path.read_text())   # older files: settings since removed
    if not isinstance(cfg, config.DMENetConfig):
        raise ValueError(f"{model_dir}: task {cfg.TASK!r}; only dmenet runs are supported")
    ckpt_dir = model_dir / loop.CHECKPOINT_SUBDIR
    path = str(ckpt_dir / f"ckpt-{int(step)}") if step is not None else tf.train.latest_checkpoint(str(ckpt_dir))
    if not path or not Path(path + ".index").is_file():
        raise ValueError(f"{ckpt_dir}: no checkpoint {'ckpt-%d' % step if step is not None else ''}")
    trainer = dmenet_task.build_trainer(cfg)   # weights come from the checkpoint: no seeding
    tf.train.Checkpoint(trainer=trainer).restore(path).expect_partial()
    model = dmenet_task.float32_inference_model(trainer.blur_estimator,
                                                fill_smooth=cfg.losses.fills_smooth,
                                                fill_method=cfg.losses.fill_method)
    return model, path


def write_snapshot(config, log=print):
    """Write the inference model of ``config``'s checkpoint to ``config.out`` (atomically, with
    its ModelInfo sidecar) and ``log`` a line naming both; returns the checkpoint path.
    ValueError: not a dmenet run of the train CLI, no such checkpoint."""
    from tf_defocus.training import loop
    model, path = inference_model_from_checkpoint(config.model_dir, config.step)
    out = Path(config.out)
    loop.save_inference_model(model, out.parent, path=out)
    log(f"wrote {out} from {path}")
    return path


main, run = cli.config_app(SnapshotConfig, write_snapshot, usage=__doc__, flag_error_code=2,
                           errors={ValueError: 2})
"""``main(argv)`` -> exit code; ``run()``: ``python -m tf_defocus.training.snapshot``."""


if __name__ == "__main__":
    run()
