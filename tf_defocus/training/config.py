"""The training configs: ``DMENetConfig`` and ``DoFNetConfig``, one frozen nested dataclass per
task (``TASKS``), built from sections shared where the tasks share a concept.

Every leaf is a ``tf_defocus.config.setting``: its name is the train CLI's flag and its key in
``<model_dir>/config.json``; its help, bounds and choices live on the field; rules between
fields live in the ``check()`` of the section (or task) that owns them. Adding a setting is one
field here (or in ``tf_defocus.data.pipeline.DataConfig`` for the DMENet data section).
"""

import dataclasses
import json
import sys

from tf_defocus import config as cfglib
from tf_defocus import dof
from tf_defocus.propagation import FILL_METHODS
from tf_defocus.config import Section, section, setting
from tf_defocus.data.pipeline import DataConfig
from tf_defocus.models.layers import NORMS
from tf_defocus.training.dmenet_trainer import VARIANTS, LossWeights, resolve_variant
from tf_defocus.training.losses import PIXEL_LOSSES


@dataclasses.dataclass(frozen=True)
class ScheduleConfig(Section):
    """How long to train and how often to report (periods in steps)."""
    train_steps: int = setting(100000, "Total number of training steps (incl. pretraining).",
                               low=1)
    log_every: int = setting(50, "TensorBoard scalars every N steps.", low=0)
    image_every: int = setting(500, "TensorBoard image panels every N steps (0 = end only).",
                               low=0)
    val_every: int | None = setting(None, "Validation every N steps (default: "
                                          "checkpoint_every; 0 = at the end only).", low=0)
    progress: bool = setting(True, "Show a progress bar (otherwise one log line per "
                                   "--log_every steps).")
    cycle_steps: int = setting(0, "Repeat the schedule every N steps (0 = once; warm restarts): "
                                  "at each multiple of N the learning-rate decay and the phases "
                                  "start over, every optimizer's state is reset and the input "
                                  "stream restarts from its seed, as if a new run started from "
                                  "the weights (--init_checkpoint).", low=0)
    then: tuple[str, ...] = setting((), "Flagfiles of later stages, run in order in the same "
                                        "--model_dir when this one ends: each resumes the last "
                                        "checkpoint (step, weights, optimizer state) under its "
                                        "own settings up to its own --train_steps. Only "
                                        "--model_dir carries over; repeatable.", path="file",
                                    multi=True)

    def check(self):
        if self.cycle_steps > self.train_steps:
            raise ValueError(f"--cycle_steps must be 0 or <= --train_steps "
                             f"({self.train_steps}), got {self.cycle_steps}")


@dataclasses.dataclass(frozen=True)
class DMENetScheduleConfig(ScheduleConfig):
    pretrain_steps: int = setting(0, "Leading steps training B alone with the MSE.", low=0)
    freeze_norm_step: int = setting(0, "From this step on B's BatchNorm uses its moving "
                                       "statistics in training too (beta still trains), so "
                                       "training computes the inference function; 0 = never.",
                                    low=0)

    def check(self):
        super().check()
        if self.pretrain_steps > self.train_steps:
            raise ValueError(f"--pretrain_steps must be in [0, --train_steps], got "
                             f"{self.pretrain_steps}")
        if 0 < self.freeze_norm_step < self.pretrain_steps:
            raise ValueError(f"--freeze_norm_step must be 0 or >= --pretrain_steps, got "
                             f"{self.freeze_norm_step}")
        for name in ("pretrain_steps", "freeze_norm_step"):
            if self.cycle_steps and getattr(self, name) >= self.cycle_steps:
                raise ValueError(f"--{name} ({getattr(self, name)}) must be below "
                                 f"--cycle_steps ({self.cycle_steps}): steps count within "
                                 f"each cycle")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig(Section):
    """Where the run lives and how its checkpoints are kept."""
    model_dir: str | None = setting(None, "Output directory (checkpoints, logs, model, "
                                          "config).")
    checkpoint_every: int = setting(1000, "Save a checkpoint every N steps (and at the end).",
                                    low=0)
    max_to_keep: int = setting(3, "Checkpoints kept in model_dir/checkpoints.", low=1)


@dataclasses.dataclass(frozen=True)
class RuntimeConfig(Section):
    """Devices, numerics and execution of the train step."""
    strategy: str = setting("default", "tf.distribute strategy: one device, MirroredStrategy "
                                       "over all GPUs, or MultiWorkerMirroredStrategy over the "
                                       "TF_CONFIG cluster (docs/MULTI_WORKER.md).",
                            choices=("default", "mirrored", "multi_worker"))
    sync_batch_norm: bool | None = setting(None, "BatchNorm statistics over the global batch of "
                                                 "all replicas (default: on when there are "
                                                 "several replicas).")
    collective_implementation: str = setting(
        "auto", "multi_worker all-reduce: ring (gRPC, CPU/GPU), nccl (GPUs) or auto.",
        choices=("auto", "ring", "nccl"))
    collective_bytes_per_pack: int = setting(0, "multi_worker: pack gradients into all-reduces "
                                                "of about this many bytes (0 = TensorFlow's "
                                                "default).", low=0)
    collective_timeout: float = setting(0.0, "multi_worker: abort a collective op after this "
                                             "many seconds (0 = no limit; dead peers are also "
                                             "found by TF's health check).", low=0)
    num_cpu_devices: int = setting(0, "Split the CPU into N logical devices (for trying "
                                      "--strategy=mirrored without GPUs); 0 = do not split.",
                                   low=0)
    mixed_precision: str = setting("none", "Keras dtype policy; float16 wraps every optimizer "
                                           "in LossScaleOptimizer.",
                                   choices=("none", "mixed_float16", "mixed_bfloat16"))
    jit_compile: bool = setting(False, "XLA-compile the train step.")
    run_eagerly: bool = setting(False, "Run the train step eagerly (debugging; skips "
                                       "tf.function tracing, slower per step).")

    def check(self):
        if self.strategy == "multi_worker" and self.num_cpu_devices > 1:
            raise ValueError("--num_cpu_devices is for --strategy=mirrored; multi_worker uses "
                             "one CPU replica per worker (or every local GPU)")

    @property
    def dtype_policy(self):
        """The Keras dtype policy name of this run."""
        return "float32" if self.mixed_precision == "none" else self.mixed_precision


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(Section):
    """Adam with a staircase decay of its learning rate."""
    learning_rate: float = setting(1e-4, "Adam learning rate (DMENet 1e-4, DoFNet 1e-3).",
                                   above=0)
    lr_decay_steps: int = setting(0, "Multiply the learning rate by --lr_decay_rate every N "
                                     "steps (0 = constant). DMENet: every 20 epochs.", low=0)
    lr_decay_rate: float = setting(0.8, "Learning-rate decay factor.", above=0, high=1)
    adam_beta1: float = setting(0.9, "Adam's beta_1, decay of the gradient mean (the "
                                     "authors' 0.9).", low=0, high=0.999)


@dataclasses.dataclass(frozen=True)
class DMENetModelConfig(Section):
    """DMENet's networks (github.com/codeslake/DMENet; KR 10-2363049 ablations)."""
    width: float = setting(1.0, "Channel multiplier of the networks.", above=0)
    norm: str = setting("batch", "Normalisation of B: batch (the authors': BatchNorm in the "
                                 "decoder, none in VGG19) or group (GroupNorm in encoder and "
                                 "decoder, independent of the batch; for training from scratch).",
                        choices=NORMS)
    cues: bool = setting(False, "Also feed B re-blur gradient ratios (contrast-invariant blur "
                                "cues, Zhuo & Sim 2011; not in the paper; models/blur_cues.py) "
                                "at its first conv and its full-resolution decoder level.")
    vgg_weights: str | None = setting(
        None, "Local path of Keras' VGG19 ImageNet notop weights "
        "(vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) for B's encoder and C; width 1.0 "
        "only. Never downloaded.", path="file")
    scales: int = setting(1, "Scales B reads: 1 (the paper), 2 (also a 2x average-pooled copy "
                             "through the same B, fused by a small net before the sigmoid; "
                             "+25% compute; models/two_scale.py) or 3 (also a 4x copy, +31%).",
                          choices=(1, 2, 3))
    init_checkpoint: str | None = setting(
        None, "Start B from the B of this training run (its model_dir, or a checkpoints/ "
        "folder; the latest checkpoint); a two-scale B takes a one-scale B's weights into its "
        "shared B, a three-scale B a two-scale B's. Optimizer state and step start afresh; a checkpoint in --model_dir wins.",
        path="dir")
    variant: str = setting("BDSC", "Ablation of the patent: B, BD, BDC, BDSC_noaux, BDSC "
                                   "(full model).", choices=tuple(VARIANTS))
    use_discriminator: bool | None = setting(None, "Override the variant: domain "
                                                   "discriminator D.")
    use_calibrator: bool | None = setting(None, "Override the variant: sharpness calibration S.")
    use_content: bool | None = setting(None, "Override the variant: content loss C.")
    use_aux: bool | None = setting(None, "Override the variant: auxiliary decoder losses.")

    def check(self):
        if self.vgg_weights and self.width != 1.0:
            raise ValueError("--vgg_weights needs --width=1.0 (ImageNet VGG19 has full width)")

    @property
    def variant_spec(self):
        return resolve_variant(self.variant, discriminator=self.use_discriminator,
                               calibrator=self.use_calibrator, content=self.use_content,
                               aux=self.use_aux)


@dataclasses.dataclass(frozen=True)
class LossConfig(Section):
    """Weights of DMENet's losses (the authors' config.py)."""
    aux_weight: float = setting(LossWeights.aux, "Weight of the auxiliary losses (the pixel "
                                                 "loss of each decoder level).", low=0)
    content_weight: float = setting(LossWeights.content, "Weight of the content (VGG conv4_4) "
                                                         "loss.", low=0)
    calibration_weight: float = setting(LossWeights.calibration, "Weight of the sharpness "
                                                                 "calibration BCE.", low=0)
    adversarial_weight: float = setting(LossWeights.adversarial, "Weight of the adversarial "
                                                                 "loss (also D's loss).", low=0)
    smooth_weight: float = setting(
        LossWeights.smooth, "Pixel weight of smooth surfaces (local grey std < 2 levels, blur "
        "invisible) in the MSE and aux losses; 1 = the paper. Their sigma is filled in from "
        "the visible pixels around them at inference (the saved model ends with FillSmooth).",
        low=0, high=1)
    fill_method: str = setting(
        "pull_push", "How the saved model (with --smooth_weight < 1) fills in smooth surfaces: "
        "pull_push (from the nearest visible pixels) or guided (from visible pixels of the "
        "same colour: an edge-aware domain transform, Gastal & Oliveira, SIGGRAPH 2011; "
        "docs/training/default_model/status.md item 67) or guided_edges (guided, with sharp edges "
        "parting more than blurred ones and sharp readings trusted more; item 76). Inference "
        "only: training is the same.",
        choices=FILL_METHODS)

    pixel_loss: str = setting(LossWeights.pixel_loss, "Pixel loss of the map and the aux "
                              "outputs: mse (the paper's) or l1 (less pull toward the mean sigma "
                              "on ambiguous pixels).", choices=PIXEL_LOSSES)
    pixel_loss_step: int = setting(0, "Step from which --pixel_loss trains; the MSE before it "
                                      "(0 = from the start).", low=0)
    depth_step_tolerance: bool = setting(
        LossWeights.depth_step_tolerance, "Within a disc radius (2 sigma) of a depth step the "
        "map and aux losses accept any sigma between the two sides' (no local reader can tell "
        "which side owns the edge; not in the paper). The logged mse stays the MSE. Measured "
        "worse than training to the true sigma: one cycle from scratch, filled MAE 0.203 "
        "against 0.184 on validation set v2 (docs/training/default_model/status.md item 62).")

    hidden_side_weight: float = setting(
        LossWeights.hidden_side, "Pixel weight, in the map and aux losses, of the pixels that "
        "a sharper surface's edge within their disc radius (2 sigma) makes look sharper than "
        "they are: mostly a blurred surface beside an occluding edge, whose reading the fill "
        "carries into the smooth regions around it (not in the paper; "
        "docs/training/default_model/status.md item 63). 1 = every pixel alike.", low=0)
    step_bounds_weight: float = setting(
        LossWeights.step_bounds, "Weight of an auxiliary target for occlusion boundaries (not in "
        "the paper): B gets a head (step_head) that outputs, per pixel, the sharpest sigma within "
        "its disc radius and the most blurred sigma whose disc reaches it "
        "(losses.depth_step_bounds), trained with the phase's pixel loss; training only, the "
        "saved model does not compute it. 0 = no head.", low=0)

    def check(self):
        if self.pixel_loss_step > 0 and self.pixel_loss == "mse":
            raise ValueError("--pixel_loss_step needs a --pixel_loss other than mse")

    @property
    def fills_smooth(self):
        """Whether the trained inference model ends with ``FillSmooth``: smooth surfaces got
        less weight in the loss, so their sigma comes from the visible pixels around them."""
        return self.smooth_weight < 1.0

    @property
    def weights(self):
        return LossWeights(aux=self.aux_weight, content=self.content_weight,
                           calibration=self.calibration_weight,
                           adversarial=self.adversarial_weight, smooth=self.smooth_weight,
                           pixel_loss=self.pixel_loss,
                           depth_step_tolerance=self.depth_step_tolerance,
                           hidden_side=self.hidden_side_weight,
                           step_bounds=self.step_bounds_weight)


@dataclasses.dataclass(frozen=True)
class ValidationConfig(Section):
    """DMENet validation sets (procedural ones are rendered once and cached like the pools)."""
    val_synthetic_dir: str | None = setting(None, "SYNDOF-layout validation folder (default: "
                                                  "procedural).", path="dir")
    val_mask_dir: str | None = setting(None, "Blur-mask validation root (default: procedural).",
                                       path="dir")
    val_mask_layout: str = setting("cuhk", "Layout of --val_mask_dir.", choices=("cuhk", "dut"))
    val_mask_blurred_value: int | None = setting(None, "255 or 0, required with --val_mask_dir.",
                                                 choices=(255, 0))
    val_num_images: int = setting(8, "Procedural validation images per set (0 = none).", low=0)
    val_image_size: tuple[int, ...] = setting((320, 240), "Procedural validation image W,H "
                                                          "[px].")

    def check(self):
        if self.val_mask_dir and self.val_mask_blurred_value is None:
            raise ValueError("--val_mask_blurred_value=255|0 is required with --val_mask_dir")
        if len(self.val_image_size) != 2 or min(self.val_image_size) < 1:
            raise ValueError(f"--val_image_size must be two positive integers W,H, got "
                             f"{self.val_image_size}")


@dataclasses.dataclass(frozen=True)
class DMENetConfig(Section):
    """One DMENet training run (``python -m tf_defocus.train --task=dmenet``)."""
    TASK = "dmenet"
    model: DMENetModelConfig = section(DMENetModelConfig)
    losses: LossConfig = section(LossConfig)
    optimizer: OptimizerConfig = section(OptimizerConfig)
    data: DataConfig = section(DataConfig)
    validation: ValidationConfig = section(ValidationConfig)
    schedule: DMENetScheduleConfig = section(DMENetScheduleConfig)
    checkpointing: CheckpointConfig = section(CheckpointConfig)
    runtime: RuntimeConfig = section(RuntimeConfig)

    def check(self):
        cycle, step = self.schedule.cycle_steps, self.losses.pixel_loss_step
        if cycle and step >= cycle:
            raise ValueError(f"--pixel_loss_step ({step}) must be below --cycle_steps "
                             f"({cycle}): steps count within each cycle")


@dataclasses.dataclass(frozen=True)
class DoFModelConfig(Section):
    """DoFNet (KCI 2020): SRCNN-style network and its training target."""
    dof_target: str = setting(
        "weighted_image", "DoFNet training target: the weight map W, or the KCI paper's "
        "W' = W x I (the focus map is recovered from W' inside the exported model).",
        choices=dof.TARGETS)
    dof_kernel_sizes: tuple[int, ...] = setting((9, 1, 5), "DoFNet kernel sizes (SRCNN 9,1,5 "
                                                           "or 9,5,5).")
    dof_filters: tuple[int, ...] = setting((64, 32), "DoFNet channels of its first two "
                                                     "convolutions.")
    dof_padding: str = setting("symmetric", "DoFNet border handling: mirror (like the "
                                            "classical map) or SRCNN's zero padding.",
                               choices=("symmetric", "zero"))
    width: float = cfglib.like(DMENetModelConfig, "width")

    def check(self):
        for name in ("dof_kernel_sizes", "dof_filters"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise ValueError(f"--{name} must be a comma-separated list of positive integers")


@dataclasses.dataclass(frozen=True)
class DoFDataConfig(Section):
    """DoFNet's image pool and patches (sizes in px)."""
    dof_image_dir: str | None = setting(None, "Folder of training photos for DoFNet (labels "
                                              "are computed on the fly); default: built-in "
                                              "procedural scenes.", path="dir")
    dof_mask_size: int = setting(dof.DEFAULT_MASK_SIZE, "Gaussian mask of the DoF weight map "
                                                        "[px], odd >= 3.", low=3)
    dof_pool_size: int = setting(256, "Procedural images synthesised for DoFNet, or the most "
                                      "folder images used (0 = all).", low=0)
    dof_source_size: int = setting(192, "Side of each procedural DoFNet image [px].", low=1)
    dof_max_side: int = setting(512, "Folder images with a longer side are downscaled to it "
                                     "before labelling [px] (0 = never).", low=0)
    dof_val_images: int = setting(16, "Pool images held out for DoFNet validation.", low=0)
    dof_val_patch_size: int = setting(96, "Side of the validation crops [px].", low=1)
    dof_batch_size: int = setting(16, "DoFNet patches per step.", low=1)
    patch_size: int = setting(48, "Training patch side [px].", low=1)
    cache_dir: str | None = cfglib.like(DataConfig, "cache_dir")
    pool_workers: int = cfglib.like(DataConfig, "pool_workers")
    seed: int = cfglib.like(DataConfig, "seed")

    def check(self):
        dof.check_mask_size(self.dof_mask_size)
        if self.dof_image_dir is None and self.dof_pool_size < 1:
            raise ValueError("--dof_pool_size must be >= 1 for built-in procedural images")
        if self.dof_image_dir is None and self.dof_source_size < self.patch_size:
            raise ValueError(f"--dof_source_size ({self.dof_source_size}) must be >= "
                             f"--patch_size ({self.patch_size})")


@dataclasses.dataclass(frozen=True)
class DoFNetConfig(Section):
    """One DoFNet training run (``python -m tf_defocus.train --task=dofnet``)."""
    TASK = "dofnet"
    model: DoFModelConfig = section(DoFModelConfig)
    optimizer: OptimizerConfig = section(OptimizerConfig, learning_rate=1e-3)
    data: DoFDataConfig = section(DoFDataConfig)
    schedule: ScheduleConfig = section(ScheduleConfig)
    checkpointing: CheckpointConfig = section(CheckpointConfig)
    runtime: RuntimeConfig = section(RuntimeConfig)

    def check(self):
        if self.runtime.strategy == "multi_worker":
            raise ValueError("--strategy=multi_worker supports --task=dmenet only")


TASKS = {c.TASK: c for c in (DMENetConfig, DoFNetConfig)}
"""Task name (``--task``) -> its config class."""


def to_json(config):
    """``config.json`` text: {"task": ..., <section>: {<setting>: value}}."""
    return json.dumps({"task": config.TASK, **cfglib.to_dict(config)}, indent=2, sort_keys=True)


def from_json(text):
    """(config, ignored names) from ``config.json`` text, nested or the flat form earlier
    versions wrote. Old files also hold the other task's settings (ignored) and null for "the
    task's default" (the default is used)."""
    flat = cfglib.flat_json(json.loads(text))
    cls = TASKS[flat.pop("task", "dmenet")]
    known = {name: (base, optional) for name, _, base, optional, _ in cfglib.leaves(cls)}
    values, ignored = {}, []
    for k, v in flat.items():
        if k not in known:
            ignored.append(k)
        elif v is not None or known[k][1]:
            values[k] = v
    return cfglib.from_flat(cls, values), ignored


def report_changes(old_text, config, log=print):
    """One line naming the settings of ``config`` that differ from an earlier ``config.json``
    (if any); returns their names."""
    try:
        old = cfglib.flat_json(json.loads(old_text))
    except ValueError:
        old = {}
    new = cfglib.flat_json(json.loads(to_json(config)))
    # None is "unset" (earlier flat files wrote it for "the default", see ``from_json``).
    old = {k: v for k, v in old.items() if v is not None and k in new}
    set_now = {k: v for k, v in new.items() if v is not None}
    changed = sorted(k for k in old if old[k] != new[k])
    added = sorted(k for k in set_now if k not in old) if old else []
    if changed:
        log(f"config changed since the last run in {config.checkpointing.model_dir}: "
            + ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in changed))
    if added:
        log("settings that the last run's config.json does not have (taken at their values now): "
            + ", ".join(f"{k}={new[k]!r}" for k in added))
    return changed + added
