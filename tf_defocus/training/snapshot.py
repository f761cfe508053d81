"""The inference model of a training checkpoint, without touching the run: evaluate a model
while it trains, or pick a step.

    python -m tf_defocus.training.snapshot --model_dir=runs/default_model --out=/tmp/b_step4000.keras [--step=4000]

Reads ``<model_dir>/config.json`` (written by the train CLI), builds the DMENet networks of that
config, restores only the networks (``expect_partial``: optimizer slots are skipped) from
``<model_dir>/checkpoints/ckpt-<step>`` (default: the latest) and writes B's float32 inference
model (``blur_estimator``) plus its ModelInfo sidecar to ``--out``, atomically.
"""

import sys
from pathlib import Path


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
    return dmenet_task.float32_inference_model(trainer.blur_estimator), path


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_dir", required=True)
    p.add_argument("--out", required=True, help="output .keras path")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    args = p.parse_args(argv)
    from tf_defocus.training import loop
    try:
        model, path = inference_model_from_checkpoint(args.model_dir, args.step)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.suffix != ".keras":
        print("error: --out must end in .keras", file=sys.stderr)
        return 2
    loop.save_inference_model(model, out.parent, path=out)
    print(f"wrote {out} from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
