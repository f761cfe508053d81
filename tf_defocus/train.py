"""Train DMENet (or the DoF network): ``python -m tf_defocus.train --flagfile=FILE [--flag=...]``.

Flags given after ``--flagfile`` override the file. ``--model_dir`` receives ``config.json``
(the resolved settings), ``checkpoints/`` (every network, every optimizer, the step),
``logs/`` (TensorBoard) and the inference model ``blur_estimator.keras`` (or ``dofnet.keras``)
with its ``.json`` ModelInfo. ``--train_steps`` is the total: rerunning the same command after an
interruption resumes from the last checkpoint and stops at the total.

Examples::

    python -m tf_defocus.train --flagfile=configs/quickstart.flags --model_dir=/tmp/quick
    python -m tf_defocus.train --flagfile=configs/dmenet.flags --model_dir=runs/dmenet \\
        --vgg_weights=vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \\
        --synthetic_dir=data/SYNDOF --real_mask_dir=data/CUHK --real_mask_blurred_value=255 \\
        --unlabelled_dir=data/Flickr --strategy=mirrored
"""

import dataclasses
import json
import math
import sys
from pathlib import Path

from absl import app, flags

from tf_defocus import cli   # TensorFlow's start-up lines are hidden by tf_defocus/__init__
from tf_defocus.training.dmenet_trainer import VARIANTS

FLAGS = flags.FLAGS
cli.define_verbose_flag(FLAGS)   # --verbose: not a TrainConfig field (defined before the mark)
_FLAGS_BEFORE = set(FLAGS)   # absl's own flags; every flag defined below is a TrainConfig field

# --- general ---
flags.DEFINE_enum("task", "dmenet", ["dmenet", "dofnet"], "What to train.")
flags.DEFINE_string("model_dir", None, "Output directory (checkpoints, logs, model, config).")
flags.DEFINE_integer("train_steps", 100000, "Total number of training steps (incl. pretraining).")
flags.DEFINE_integer("checkpoint_every", 1000, "Save a checkpoint every N steps (and at the end).")
flags.DEFINE_integer("max_to_keep", 3, "Checkpoints kept in model_dir/checkpoints.")
flags.DEFINE_integer("log_every", 50, "TensorBoard scalars every N steps.")
flags.DEFINE_integer("image_every", 500, "TensorBoard image panels every N steps (0 = end only).")
flags.DEFINE_integer("val_every", None, "Validation every N steps (default: checkpoint_every; "
                     "0 = at the end only).")
flags.DEFINE_boolean("progress", True, "Show a progress bar (otherwise one log line per "
                     "--log_every steps).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored"],
                  "tf.distribute strategy: one device, or MirroredStrategy over all GPUs.")
flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into N logical devices (for trying "
                     "--strategy=mirrored without GPUs); 0 = do not split.")
flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"],
                  "Keras dtype policy; float16 wraps every optimizer in LossScaleOptimizer.")
flags.DEFINE_boolean("jit_compile", False, "XLA-compile the train step.")
flags.DEFINE_boolean("run_eagerly", False, "Run the train step eagerly (debugging; skips tf.function "
                     "tracing, slower per step).")
flags.DEFINE_integer("seed", 0, "Seed of weight initialisation and data.")
flags.DEFINE_float("learning_rate", None, "Adam learning rate (default: the task's; DMENet 1e-4).")
flags.DEFINE_integer("lr_decay_steps", 0, "Multiply the learning rate by --lr_decay_rate every "
                     "N steps (0 = constant). DMENet: every 20 epochs.")
flags.DEFINE_float("lr_decay_rate", 0.8, "Learning-rate decay factor.")

# --- DMENet model and losses ---
flags.DEFINE_float("width", None, "Channel multiplier of the networks (DMENet default 1.0).")
flags.DEFINE_string("vgg_weights", None, "Local path of Keras' VGG19 ImageNet notop weights "
                    "(vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) for B's encoder and C; "
                    "width 1.0 only. Never downloaded.")
flags.DEFINE_enum("variant", "BDSC", list(VARIANTS),
                  "Ablation of the patent: B, BD, BDC, BDSC_noaux, BDSC (full model).")
flags.DEFINE_boolean("use_discriminator", None, "Override the variant: domain discriminator D.")
flags.DEFINE_boolean("use_calibrator", None, "Override the variant: sharpness calibration S.")
flags.DEFINE_boolean("use_content", None, "Override the variant: content loss C.")
flags.DEFINE_boolean("use_aux", None, "Override the variant: auxiliary decoder losses.")
flags.DEFINE_float("aux_weight", 1.0, "Weight of the auxiliary MSE losses.")
flags.DEFINE_float("content_weight", 1e-4, "Weight of the content (VGG conv4_4) loss.")
flags.DEFINE_float("calibration_weight", 2e-2, "Weight of the sharpness calibration BCE.")
flags.DEFINE_float("adversarial_weight", 1e-3, "Weight of the adversarial loss (also D's loss).")
flags.DEFINE_integer("pretrain_steps", 0, "Leading steps training B alone with the MSE.")

# --- DMENet data ---
flags.DEFINE_integer("patch_size", None, "Training patch side [px] (DMENet default 240).")
flags.DEFINE_integer("batch_synthetic", 3, "Synthetic patches per step.")
flags.DEFINE_integer("batch_real_mask", 3, "Real patches with blur masks per step.")
flags.DEFINE_integer("batch_real_unlabelled", 3, "Unlabelled real patches per step.")
flags.DEFINE_string("synthetic_dir", None, "SYNDOF-layout folder (default: built-in procedural).")
flags.DEFINE_string("synthetic_tfrecords", None, "tf_defocus.generate TFRecord shards (file, "
                    "dir or glob) instead of --synthetic_dir.")
flags.DEFINE_enum("syndof_label_convention", "sigma10", ["sigma10", "released"],
                  "blur_map encoding: sigma10 (public generator) or released (DMENet's SYNDOF).")
flags.DEFINE_string("real_mask_dir", None, "CUHK / DUT-DBD root (default: procedural masks).")
flags.DEFINE_enum("real_mask_layout", "cuhk", ["cuhk", "dut"], "Layout of --real_mask_dir.")
flags.DEFINE_integer("real_mask_blurred_value", None, "Mask value meaning blurred: 255 or 0 "
                     "(required with --real_mask_dir; polarity differs between copies).")
flags.DEFINE_string("unlabelled_dir", None, "Flat folder of real photos (default: procedural).")
flags.DEFINE_integer("pool_size", 32, "Images per built-in procedural pool.")
flags.DEFINE_integer("pool_width", 640, "Width of procedural pool images [px].")
flags.DEFINE_integer("pool_height", 480, "Height of procedural pool images [px].")
flags.DEFINE_integer("pool_workers", 0, "Processes rendering pools (0 = one per core).")
flags.DEFINE_enum("pool_scene", "dead_leaves", ["dead_leaves", "layered"], "Scenes of the "
                  "built-in pools: dead_leaves, or layered (real-photo and smooth surfaces, "
                  "ground/walls/sky, thin structures; tf_defocus.data.scenes).")
flags.DEFINE_enum("pool_isp", "basic", ["basic", "varied"], "Camera pipeline of disc-PSF pools: "
                  "basic, or varied (noise levels, tone curve, sharpening, downscaling, JPEG 40-98).")
flags.DEFINE_enum("synthetic_psf", "gaussian", ["gaussian", "disc"], "PSF of the synthetic "
                  "domain's pool: gaussian (SYNDOF) or disc (camera-like, like the real pools).")
flags.DEFINE_boolean("unlabelled_photos", False, "Without --unlabelled_dir, feed the unlabelled "
                     "real domain with the photos installed packages ship (scikit-image, Debian "
                     "mate-backgrounds / ukui-wallpapers; tf_defocus.data.photos).")
flags.DEFINE_string("cache_dir", None, "Pool cache (default $TF_DEFOCUS_CACHE or "
                    "~/.cache/tf_defocus).")
flags.DEFINE_integer("min_short_side", 0, "Augmentation: min short side after rescaling "
                     "(0 = patch_size + 1).")
flags.DEFINE_integer("max_short_side", 800, "Augmentation: max short side after rescaling.")
flags.DEFINE_enum("scale_mode", "clamp", ["clamp", "random"], "Augmentation rescaling mode.")
flags.DEFINE_boolean("deterministic", False, "Reproducible element order (slower input).")
flags.DEFINE_boolean("skip_bad", False, "Skip unreadable training files (warning names them) "
                     "instead of stopping.")
flags.DEFINE_string("val_synthetic_dir", None, "SYNDOF-layout validation folder "
                    "(default: procedural).")
flags.DEFINE_string("val_mask_dir", None, "Blur-mask validation root (default: procedural).")
flags.DEFINE_enum("val_mask_layout", "cuhk", ["cuhk", "dut"], "Layout of --val_mask_dir.")
flags.DEFINE_integer("val_mask_blurred_value", None, "255 or 0, required with --val_mask_dir.")
flags.DEFINE_integer("val_num_images", 8, "Procedural validation images per set (0 = none).")
flags.DEFINE_list("val_image_size", ["320", "240"], "Procedural validation image W,H [px].")

# --- DoF task flags ---
# (flags of --task=dofnet, named dof_<field>; see tf_defocus.training.dof_task.config_from)
# --task=dofnet also uses --patch_size (default 48), --width (1.0), --learning_rate (1e-3), --seed.
flags.DEFINE_enum("dof_target", "weighted_image", ["weight", "weighted_image"],
                  "DoFNet training target: the weight map W, or the KCI paper's W' = W x I "
                  "(the focus map is recovered from W' inside the exported model).")
flags.DEFINE_string("dof_image_dir", None, "Folder of training photos for DoFNet (labels are "
                    "computed on the fly); default: built-in procedural scenes.")
flags.DEFINE_integer("dof_mask_size", 15, "Gaussian mask of the DoF weight map [px], odd >= 3.")
flags.DEFINE_list("dof_kernel_sizes", ["9", "1", "5"],
                  "DoFNet kernel sizes (SRCNN 9,1,5 or 9,5,5).")
flags.DEFINE_list("dof_filters", ["64", "32"], "DoFNet channels of its first two convolutions.")
flags.DEFINE_enum("dof_padding", "symmetric", ["symmetric", "zero"], "DoFNet border handling: "
                  "mirror (like the classical map) or SRCNN's zero padding.")
flags.DEFINE_integer("dof_pool_size", 256, "Procedural images synthesised for DoFNet, or the most "
                     "folder images used (0 = all).")
flags.DEFINE_integer("dof_source_size", 192, "Side of each procedural DoFNet image [px].")
flags.DEFINE_integer("dof_max_side", 512, "Folder images with a longer side are downscaled to it "
                     "before labelling [px] (0 = never).")
flags.DEFINE_integer("dof_val_images", 16, "Pool images held out for DoFNet validation.")
flags.DEFINE_integer("dof_val_patch_size", 96, "Side of the validation crops [px].")
flags.DEFINE_integer("dof_batch_size", 16, "DoFNet patches per step.")
flags.register_validator("dof_mask_size", lambda v: v >= 3 and v % 2 == 1,
                         message="--dof_mask_size must be an odd integer >= 3")
flags.register_validator("dof_image_dir", lambda v: v is None or Path(v).is_dir(),
                         message="--dof_image_dir must be an existing directory")
for _name in ("dof_kernel_sizes", "dof_filters"):
    flags.register_validator(_name, lambda v: all(str(x).strip().isdigit() and int(x) > 0
                                                  for x in v),
                             message=f"--{_name} must be a comma-separated list of positive integers")
for _name in ("dof_pool_size", "dof_source_size", "dof_max_side", "dof_val_images",
              "dof_val_patch_size", "dof_batch_size"):
    flags.register_validator(_name, lambda v: v >= 0, message=f"--{_name} must be >= 0")
# --- end of DoF task flags ---


def _config_field(name):
    """(name, type, default) of the TrainConfig field of flag ``name``; list flags (all lists of
    integers here) become tuples of ints."""
    default = FLAGS[name].default
    if isinstance(default, list):
        default = tuple(int(v) for v in default)
    return name, object, dataclasses.field(default=default)


def _to_json(self):
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [_config_field(n) for n in FLAGS if n not in _FLAGS_BEFORE], frozen=True,
    namespace={"to_json": _to_json, "__doc__": "Resolved settings of one training run: one "
               "field per flag of this module, same name and default (so the two never drift)."})
TrainConfig.__module__ = __name__


def config_from_flags(flag_values=FLAGS):
    """TrainConfig from parsed absl flags (a field without a flag keeps its default)."""
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(TrainConfig)}
    if values.get("val_image_size") is not None:
        try:
            values["val_image_size"] = tuple(int(v) for v in values["val_image_size"])
        except ValueError as e:
            raise ValueError(f"--val_image_size must be W,H integers: {e}") from e
        if len(values["val_image_size"]) != 2:
            raise ValueError("--val_image_size must be two integers W,H")
    for name in ("dof_kernel_sizes", "dof_filters"):  # validated as positive integers above
        if values.get(name) is not None:
            values[name] = tuple(int(v) for v in values[name])
    return TrainConfig(**values)


_FLOAT32_MAX = 3.4028234663852886e38


def _finite_float32(value):
    """True for a number that stays finite in float32 (1e39 is finite in Python, inf in TF)."""
    return isinstance(value, (int, float)) and math.isfinite(value) and abs(value) <= _FLOAT32_MAX


def _check_ranges(config):
    """One-line errors for numeric flags out of range (NaN/Inf included)."""
    lr = config.learning_rate
    if lr is not None and not (_finite_float32(lr) and lr > 0):
        raise ValueError(f"--learning_rate must be a finite number > 0 (float32), got {lr}")
    if not (_finite_float32(config.lr_decay_rate) and 0 < config.lr_decay_rate <= 1):
        raise ValueError(f"--lr_decay_rate must be in (0, 1], got {config.lr_decay_rate}")
    if config.width is not None and not (_finite_float32(config.width) and config.width > 0):
        raise ValueError(f"--width must be a finite number > 0, got {config.width}")
    for name in ("aux_weight", "content_weight", "calibration_weight", "adversarial_weight"):
        v = getattr(config, name)
        if not (_finite_float32(v) and v >= 0):
            raise ValueError(f"--{name} must be a finite number >= 0, got {v}")
    minimum = {"train_steps": 1, "max_to_keep": 1, "pool_size": 1, "pool_width": 1,
               "pool_height": 1, "checkpoint_every": 0, "log_every": 0, "image_every": 0,
               "val_every": 0, "lr_decay_steps": 0, "pretrain_steps": 0, "num_cpu_devices": 0,
               "pool_workers": 0, "batch_synthetic": 0, "batch_real_mask": 0,
               "batch_real_unlabelled": 0, "min_short_side": 0, "max_short_side": 1,
               "val_num_images": 0, "patch_size": 1}
    for name, low in minimum.items():
        v = getattr(config, name)
        if v is not None and v < low:
            raise ValueError(f"--{name} must be >= {low}, got {v}")
    if config.batch_synthetic + config.batch_real_mask + config.batch_real_unlabelled < 1:
        raise ValueError("--batch_synthetic, --batch_real_mask and --batch_real_unlabelled are "
                         "all 0: nothing to train on")
    if config.min_short_side and config.max_short_side < config.min_short_side:
        raise ValueError(f"--max_short_side ({config.max_short_side}) must be >= "
                         f"--min_short_side ({config.min_short_side})")
    if config.val_image_size is not None and min(config.val_image_size) < 1:
        raise ValueError(f"--val_image_size must be positive W,H, got {config.val_image_size}")


def validate(config):
    """Reject inconsistent settings with a message naming the flag."""
    if not config.model_dir:
        raise ValueError("--model_dir is required")
    if config.train_steps < 1:
        raise ValueError(f"--train_steps must be >= 1, got {config.train_steps}")
    if config.pretrain_steps < 0 or config.pretrain_steps > config.train_steps:
        raise ValueError(f"--pretrain_steps must be in [0, --train_steps], got "
                         f"{config.pretrain_steps}")
    if config.checkpoint_every < 0 or config.log_every < 0:
        raise ValueError("--checkpoint_every and --log_every must be >= 0")
    if config.lr_decay_steps < 0 or not config.lr_decay_rate > 0:
        raise ValueError("--lr_decay_steps must be >= 0 and --lr_decay_rate > 0")
    _check_ranges(config)
    if config.vgg_weights and not Path(config.vgg_weights).is_file():
        raise ValueError(f"--vgg_weights: {config.vgg_weights} is not a file")
    if config.vgg_weights and config.width not in (None, 1.0):
        raise ValueError("--vgg_weights needs --width=1.0 (ImageNet VGG19 has full width)")
    if config.real_mask_dir and config.real_mask_blurred_value not in (0, 255):
        raise ValueError("--real_mask_blurred_value=255|0 is required with --real_mask_dir")
    if config.val_mask_dir and config.val_mask_blurred_value not in (0, 255):
        raise ValueError("--val_mask_blurred_value=255|0 is required with --val_mask_dir")
    for name in ("synthetic_dir", "real_mask_dir", "unlabelled_dir", "val_synthetic_dir",
                 "val_mask_dir"):
        d = getattr(config, name)
        if d and not Path(d).is_dir():
            raise ValueError(f"--{name}: {d} is not a directory")


def _setup_devices(config):
    import tensorflow as tf

    if config.num_cpu_devices > 1:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * config.num_cpu_devices)
    if config.strategy == "mirrored":
        devices = None
        if config.num_cpu_devices > 1 and not tf.config.list_physical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def _write_config(config):
    from tf_defocus.imageio import write_text

    path = Path(config.model_dir) / "config.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        new = json.loads(config.to_json())
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            print(f"config changed since the last run in {config.model_dir}: "
                  + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed),
                  flush=True)
    write_text(path, config.to_json() + "\n")


def build_task(config):
    """The TrainingTask of ``config.task`` (call inside the strategy scope)."""
    if config.task == "dmenet":
        from tf_defocus.training import dmenet_task
        return dmenet_task.build_task(config)
    from tf_defocus.training import dof_task
    return dof_task.build_task(config)


def train(config):
    """Run one training job described by ``config``; returns ``TrainingResult``."""
    import keras
    import numpy as np

    from tf_defocus.training.loop import run_training

    validate(config)
    Path(config.model_dir).mkdir(parents=True, exist_ok=True)
    strategy = _setup_devices(config)
    keras.mixed_precision.set_global_policy(
        "float32" if config.mixed_precision == "none" else config.mixed_precision)
    _write_config(config)
    with strategy.scope():
        task = build_task(config)
    if config.run_eagerly:
        task.trainer.run_eagerly = True
    # Base learning rate: the flag, else what the task built its optimizer with.
    base_lr = config.learning_rate
    if base_lr is None:
        base_lr = float(np.asarray(task.trainer.optimizers[0].learning_rate))
    return run_training(
        task, config.model_dir, config.train_steps, checkpoint_every=config.checkpoint_every,
        log_every=config.log_every, image_every=config.image_every, val_every=config.val_every,
        learning_rate=base_lr, lr_decay_steps=config.lr_decay_steps,
        lr_decay_rate=config.lr_decay_rate, max_to_keep=config.max_to_keep,
        verbose=1 if config.progress else 0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tf_defocus.training.loop import NonFiniteLossError

    try:
        config = config_from_flags()
        validate(config)
    except ValueError as e:
        print(f"tf_defocus.train: error: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        result = train(config)
    except NonFiniteLossError as e:
        print(f"tf_defocus.train: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    summary = " ".join(f"{k}={v:.4g}" for k, v in {**result.logs, **result.val_logs}.items())
    print(f"done: step {result.step} in {result.seconds:.0f} s; {summary}; model "
          f"{result.model_path}", flush=True)
    return 0


def run():
    """Console-script entry point (``tf-defocus-train``); ``--help`` exits 0."""
    cli.run_app(main)


if __name__ == "__main__":
    run()
