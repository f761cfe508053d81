"""DMENet's four-module training (KR 10-2363049; Lee et al., CVPR 2019; github.com/codeslake/DMENet) as a ``keras.Model`` with a custom step.

``DMENetTrainer`` holds B (``BlurEstimator``) and, depending on the variant, D
(``DomainDiscriminator``), S (``SharpnessCalibrator``) and C (``ContentLoss``). One
``train_step`` on an element

    {"synthetic": {"image", "sigma_norm"}, "real_mask": {"image", "mask"},
     "real_unlabelled": {"image"}}

does what one iteration of the authors' ``main.py`` does: a discriminator step (D's optimizer,
D's variables only) followed by a B+S step (B's optimizer) on

    MSE + w_aux * L_aux + w_content * L_C + w_calibration * L_S + w_adversarial * L_adv.

B runs once per domain batch (BatchNorm statistics per domain, as the authors did) inside the
B+S gradient tape; D's step uses those features with gradients stopped. This is the same
computation as the authors' two ``sess.run`` calls (B's weights do not change between them),
with one B forward pass instead of two.

Variants (the patent's ablation, its Fig. 6): ``B``, ``BD``, ``BDC``, ``BDSC_noaux`` and
``BDSC``; only the last uses the auxiliary loss. In the ``pretrain`` phase (the authors'
MSE-only pre-training) only B is trained, with the MSE alone.

Distribution: every loss is computed per example and divided by the *global* batch of its
domain (``losses.replica_mean``), so MirroredStrategy gives the single-device loss and
gradients. Metrics report unweighted terms averaged over the examples seen since the last
``reset_metrics()``.
"""

import dataclasses

import keras
import tensorflow as tf

from tf_defocus.model_kinds import DEFAULT_MASK_THRESHOLD_PX
from tf_defocus.models.blur_estimator import STEP_BOUNDS
from tf_defocus.training import losses
from tf_defocus.units import SIGMA_MAX_PX

PHASE_PRETRAIN = "pretrain"
PHASE_JOINT = "joint"
PHASE_FROZEN_NORM = "joint_frozen_norm"
"""The joint step with B's BatchNorm on its moving statistics (beta still trains), so that
training computes B's inference function: batch statistics of 3-crop batches normalise away
the overall sharpness of a batch, the cue B has to read (``--freeze_norm_step``)."""
MSE_SUFFIX = "_mse"
"""Appended to a phase before ``pixel_loss_step``: the MSE trains the map and aux terms
(``--pixel_loss`` takes over at that step; e.g. ``joint_mse`` then ``joint_frozen_norm``)."""
_BASE_PHASES = (PHASE_PRETRAIN, PHASE_JOINT, PHASE_FROZEN_NORM)


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the generator loss terms (the MSE has weight 1). The authors' defaults (codeslake/DMENet config.py).

    adversarial also scales D's own loss (as in the authors' code).
    """
    aux: float = 1.0
    content: float = 1e-4
    calibration: float = 2e-2
    adversarial: float = 1e-3
    # Not the authors': pixel weight of smooth surfaces in the MSE / aux terms
    # (losses.visibility_weights); 1 = every pixel alike, as in the paper.
    smooth: float = 1.0
    # Not the authors': the pixel loss of the map and aux terms (losses.PIXEL_LOSSES);
    # "mse" is the paper's. The logged "mse" is the MSE whichever loss trains; the aux
    # term is logged as aux_<pixel_loss>.
    pixel_loss: str = "mse"
    # Not the authors': within a disc radius of a depth step the map and aux terms accept
    # either side's sigma (losses.depth_step_bounds / tolerant_target); the logged "mse" stays
    # the MSE to the true sigma.
    depth_step_tolerance: bool = False
    # Not the authors': pixel weight, in the map and aux terms, of the pixels that a sharper
    # surface's edge within their disc makes look sharper than they are
    # (losses.hidden_side_weights); 1 = every pixel alike.
    hidden_side: float = 1.0
    # Not the authors': weight of the depth-step head's pixel loss (B's ``step_bounds`` output
    # against losses.depth_step_bounds); 0 = no such term (B needs ``step_head`` otherwise).
    step_bounds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Variant:
    """Which auxiliary modules / losses are used during training."""
    discriminator: bool = True
    calibrator: bool = True
    content: bool = True
    aux: bool = True

    @property
    def name(self):
        """Its key in ``VARIANTS`` if it is one, else e.g. ``BD+aux`` / ``BDSC-aux``."""
        for key, value in VARIANTS.items():
            if value == self:
                return key
        mods = "B" + "D" * self.discriminator + "S" * self.calibrator + "C" * self.content
        return mods + ("+aux" if self.aux else "-aux")


# The patent's ablation (Fig. 6): only the full model adds the auxiliary loss.
VARIANTS = {
    "B": Variant(discriminator=False, calibrator=False, content=False, aux=False),
    "BD": Variant(discriminator=True, calibrator=False, content=False, aux=False),
    "BDC": Variant(discriminator=True, calibrator=False, content=True, aux=False),
    "BDSC_noaux": Variant(discriminator=True, calibrator=True, content=True, aux=False),
    "BDSC": Variant(discriminator=True, calibrator=True, content=True, aux=True),
}


def resolve_variant(name, discriminator=None, calibrator=None, content=None, aux=None):
    """Variant from a name in ``VARIANTS`` with optional per-module overrides (None = keep)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {sorted(VARIANTS)}")
    base = VARIANTS[name]
    overrides = {k: v for k, v in dict(discriminator=discriminator, calibrator=calibrator,
                                       content=content, aux=aux).items() if v is not None}
    return dataclasses.replace(base, **overrides)


def _num_replicas():
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def _is_loss_scaled(opt):
    return isinstance(opt, keras.optimizers.LossScaleOptimizer)


class DMENetTrainer(keras.Model):
    """Training wrapper around B, D, S, C with DMENet's custom ``train_step`` / ``test_step``.

    blur_estimator: ``BlurEstimator`` (B); the only network used at test time.
    discriminator / calibrator / content: ``DomainDiscriminator`` / ``SharpnessCalibrator`` /
      ``ContentLoss`` or None when the variant does not use them.
    weights: ``LossWeights``. use_aux: add the auxiliary loss.
    pretrain_steps: number of leading MSE-only steps of B (the loop switches phases via
      ``phase_for_step`` / ``set_phase``).
    freeze_norm_step: from this step on (0 = never) B's BatchNorm runs on its moving statistics
      in the joint step (``PHASE_FROZEN_NORM``).
    pixel_loss_step: from this step on ``weights.pixel_loss`` trains the map and aux terms; the
      MSE before it (phases with ``MSE_SUFFIX``).
    mask_threshold: threshold on B's sigma/7 output for the validation mask accuracy (default
      1/7: sigma > 1 px, the data engine's mask threshold). Blur masks are scored with B's map
      (only B is used at test time); with S, ``val_calibrated_*`` also scores ``sigmoid(S(B))``
      at 0.5.

    ``fit()`` would train the current ``phase`` only; ``run_training`` switches phases.
    """

    def __init__(self, blur_estimator, discriminator=None, calibrator=None, content=None, *,
                 weights=LossWeights(), use_aux=True, pretrain_steps=0, freeze_norm_step=0,
                 pixel_loss_step=0, mask_threshold=None,
                 name="dmenet_trainer", **kwargs):
        super().__init__(name=name, **kwargs)
        self.blur_estimator = blur_estimator
        self.discriminator = discriminator
        self.calibrator = calibrator
        self.content = content
        if content is not None:
            content.trainable = False
        self.weights_cfg = weights
        self.use_aux = bool(use_aux)
        self.pretrain_steps = int(pretrain_steps)
        self.freeze_norm_step = int(freeze_norm_step)
        self.pixel_loss_step = int(pixel_loss_step)
        if self.pixel_loss_step > 0 and weights.pixel_loss == "mse":
            raise ValueError("pixel_loss_step needs a pixel loss other than mse")
        self.phase = self.phase_for_step(0)
        if mask_threshold is None:
            mask_threshold = DEFAULT_MASK_THRESHOLD_PX / SIGMA_MAX_PX   # in B's sigma/7 units
        self.mask_threshold = float(mask_threshold)
        self.b_optimizer = None
        self.d_optimizer = None

        # Training metrics: unweighted loss terms (mean per example); the aux term is logged
        # under the pixel loss that trains it (aux_mse / aux_l1).
        names = ["total", "mse"]
        if self.use_aux:
            kinds = {weights.pixel_loss, "mse"} if self.pixel_loss_step > 0 else {weights.pixel_loss}
            names += sorted(f"aux_{k}" for k in kinds)
        if weights.step_bounds > 0:
            if not getattr(blur_estimator, "step_head", False):
                raise ValueError("a step_bounds loss weight needs a B built with step_head=True")
            names.append(STEP_BOUNDS)
        if content is not None:
            names.append("content")
        if calibrator is not None:
            names.append("calibration_bce")
        if discriminator is not None:
            names += ["adversarial_bce", "d_bce", "d_accuracy"]
        self._train_metric_names = names
        self.train_trackers = {n: keras.metrics.Mean(name=n) for n in names}
        # Validation metrics.
        self.val_mse = keras.metrics.MeanSquaredError(name="val_mse")
        self.val_mae = keras.metrics.MeanAbsoluteError(name="val_mae")
        self.val_mask_accuracy = keras.metrics.BinaryAccuracy(
            name="val_mask_accuracy", threshold=self.mask_threshold)
        self.val_mask_auc = keras.metrics.AUC(name="val_mask_auc", num_thresholds=200)
        self.val_calibrated_accuracy = keras.metrics.BinaryAccuracy(
            name="val_calibrated_accuracy", threshold=0.5)
        self.val_calibrated_auc = keras.metrics.AUC(name="val_calibrated_auc",
                                                    num_thresholds=200)

    # ----------------------------------------------------------------------------- setup
    @property
    def variant(self):
        return Variant(discriminator=self.discriminator is not None,
                       calibrator=self.calibrator is not None,
                       content=self.content is not None, aux=self.use_aux)

    def compile(self, b_optimizer=None, d_optimizer=None, jit_compile=False, **kwargs):
        """Set the optimizers (Adam 1e-4, beta1 0.9 by default) and build their variables.

        Call inside the strategy scope the trainer was created in. Under the
        ``mixed_float16`` policy every optimizer is wrapped in ``LossScaleOptimizer``.
        """
        if b_optimizer is None:
            b_optimizer = keras.optimizers.Adam(1e-4, beta_1=0.9, name="b_adam")
        if self.discriminator is not None and d_optimizer is None:
            d_optimizer = keras.optimizers.Adam(1e-4, beta_1=0.9, name="d_adam")
        if self.discriminator is None:
            d_optimizer = None
        float16 = keras.mixed_precision.global_policy().name == "mixed_float16"
        if float16:
            if not _is_loss_scaled(b_optimizer):
                b_optimizer = keras.optimizers.LossScaleOptimizer(b_optimizer,
                                                                 name="b_loss_scale")
            if d_optimizer is not None and not _is_loss_scaled(d_optimizer):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer,
                                                                 name="d_loss_scale")
        super().compile(optimizer=b_optimizer, jit_compile=bool(jit_compile),
                        auto_scale_loss=False, **kwargs)
        self.b_optimizer = b_optimizer
        self.d_optimizer = d_optimizer
        # Explicit build: required for MirroredStrategy and so checkpoints restore at once.
        self.b_optimizer.build(self.generator_variables)
        if self.d_optimizer is not None:
            self.d_optimizer.build(self.discriminator_variables)

    @property
    def optimizers(self):
        """Every optimizer the train step uses (B+S first, then D)."""
        return [o for o in (self.b_optimizer, self.d_optimizer) if o is not None]

    @property
    def generator_variables(self):
        """Variables B's optimizer updates: B and S (never D, never C)."""
        v = list(self.blur_estimator.trainable_variables)
        if self.calibrator is not None:
            v += list(self.calibrator.trainable_variables)
        return v

    @property
    def discriminator_variables(self):
        return [] if self.discriminator is None else list(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return list(self.train_trackers.values()) + [
            self.val_mse, self.val_mae, self.val_mask_accuracy, self.val_mask_auc,
            self.val_calibrated_accuracy, self.val_calibrated_auc]

    @property
    def train_metrics(self):
        return list(self.train_trackers.values())

    @property
    def val_metrics(self):
        return [self.val_mse, self.val_mae, self.val_mask_accuracy, self.val_mask_auc,
                self.val_calibrated_accuracy, self.val_calibrated_auc]

    def reset_train_metrics(self):
        for m in self.train_metrics:
            m.reset_state()

    def reset_val_metrics(self):
        for m in self.val_metrics:
            m.reset_state()

    def phase_for_step(self, step):
        """``pretrain`` for the first ``pretrain_steps`` steps, then ``joint``; from
        ``freeze_norm_step`` on (if > 0) ``joint_frozen_norm``; before ``pixel_loss_step``
        with ``MSE_SUFFIX``."""
        step = int(step)
        if step < self.pretrain_steps:
            phase = PHASE_PRETRAIN
        elif 0 < self.freeze_norm_step <= step:
            phase = PHASE_FROZEN_NORM
        else:
            phase = PHASE_JOINT
        return phase + MSE_SUFFIX if step < self.pixel_loss_step else phase

    def set_phase(self, phase):
        """Switch the train step (the caller must rebuild its train function)."""
        base = phase.removesuffix(MSE_SUFFIX)
        if base not in _BASE_PHASES or (base != phase and self.pixel_loss_step == 0):
            raise ValueError(f"unknown phase {phase!r}")
        self.phase = phase

    @property
    def pixel_loss(self):
        """The pixel loss of the map and aux terms in the current phase."""
        return "mse" if self.phase.endswith(MSE_SUFFIX) else self.weights_cfg.pixel_loss

    def call(self, inputs, training=False):
        """B's forward pass: image (N,H,W,3) -> output dict (see ``BlurEstimator``)."""
        return self.blur_estimator(inputs, training=training)

    # ----------------------------------------------------------------------------- helpers
    def _track(self, name, per_example):
        """Accumulate the mean of a per-example vector, weighted by the example count."""
        per_example = tf.cast(per_example, tf.float32)
        self._track_value(name, tf.reduce_mean(per_example), tf.shape(per_example)[0])

    def _track_value(self, name, value, count):
        """Accumulate this replica's mean ``value`` over ``count`` examples.

        The metric sums value * count and count over replicas, so its result is the mean over
        the global batch.
        """
        self.train_trackers[name].update_state(
            tf.cast(value, tf.float32), sample_weight=tf.cast(count, tf.float32))

    def _logs(self):
        """Current means of the terms this phase trains (one aux name: that of its loss)."""
        return {n: self.train_trackers[n].result() for n in self._train_metric_names
                if not n.startswith("aux_") or n == f"aux_{self.pixel_loss}"}

    @staticmethod
    def _apply(optimizer, tape, scaled_loss, variables):
        """Apply the gradients of ``scaled_loss`` (``optimizer.scale_loss(loss)``, computed
        inside ``tape``); variables the loss does not reach are skipped (e.g. the aux heads
        when the aux loss is off). LossScaleOptimizer unscales them in ``apply``."""
        grads = tape.gradient(scaled_loss, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if not pairs:
            raise ValueError("the loss does not depend on any of the optimised variables")
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])

    # ----------------------------------------------------------------------------- steps
    def train_step(self, data):
        if self.b_optimizer is None:
            raise RuntimeError("DMENetTrainer.compile() must be called before training")
        if self.phase.startswith(PHASE_PRETRAIN):
            return self._pretrain_step(data)
        return self._joint_step(data)

    def _pixel_weights(self, syn):
        """(N,H,W,1) MSE weights of a synthetic batch (``LossWeights.smooth`` times
        ``LossWeights.hidden_side``), or None when every pixel counts alike."""
        w = self.weights_cfg
        parts = []
        if w.smooth != 1.0:
            parts.append(losses.visibility_weights(syn["image"], w.smooth))
        if w.hidden_side != 1.0:
            parts.append(losses.hidden_side_weights(
                tf.cast(syn["sigma_norm"], tf.float32) * SIGMA_MAX_PX, w.hidden_side))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else parts[0] * parts[1]

    def _step_bounds(self, syn):
        """(lo, hi) sigma/7 (N,H,W,1) of ``losses.depth_step_bounds`` of the true sigma: what
        the pixel terms accept near depth steps (``LossWeights.depth_step_tolerance``) and the
        depth-step head's target (``LossWeights.step_bounds``); None when neither uses them."""
        w = self.weights_cfg
        if not (w.depth_step_tolerance or w.step_bounds > 0):
            return None
        lo, hi = losses.depth_step_bounds(tf.cast(syn["sigma_norm"], tf.float32) * SIGMA_MAX_PX)
        return lo / SIGMA_MAX_PX, hi / SIGMA_MAX_PX

    def _map_losses(self, defocus, syn, weights, bounds=None):
        """(weighted MSE to the true sigma, weighted training pixel loss) of B's map on a
        synthetic batch, each (N,); the same tensor when the pixel loss is the MSE to the true
        sigma. weights: ``_pixel_weights``; bounds: ``_step_bounds``."""
        mse = losses.mse_per_example(defocus, syn["sigma_norm"], weights)
        if self.pixel_loss == "mse" and bounds is None:
            return mse, mse
        target = syn["sigma_norm"] if bounds is None else losses.tolerant_target(defocus, bounds)
        return mse, losses.pixel_loss_per_example(defocus, target, weights, self.pixel_loss)

    def _pretrain_step(self, data):
        """B alone, map loss only (the authors' ``loss_init``; the MSE unless --pixel_loss)."""
        syn = data["synthetic"]
        b_vars = list(self.blur_estimator.trainable_variables)
        with tf.GradientTape() as tape:
            out = self.blur_estimator(syn["image"], training=True)
            bounds = self._step_bounds(syn) if self.weights_cfg.depth_step_tolerance else None
            mse, pixel = self._map_losses(out["defocus"], syn, self._pixel_weights(syn), bounds)
            loss = losses.replica_mean(pixel)
            scaled = self.b_optimizer.scale_loss(loss)
        self._apply(self.b_optimizer, tape, scaled, b_vars)
        self._track("total", pixel)
        self._track("mse", mse)
        logs = self._logs()
        return {k: v for k, v in logs.items() if k in ("total", "mse")}

    def _joint_step(self, data):
        w = self.weights_cfg
        syn = data["synthetic"]
        use_d = self.discriminator is not None
        use_s = self.calibrator is not None
        need_mask = use_s or use_d
        if need_mask and "real_mask" not in data:
            raise ValueError("this variant needs 'real_mask' batches")
        if use_d and "real_unlabelled" not in data:
            raise ValueError("this variant needs 'real_unlabelled' batches")
        g_vars = self.generator_variables
        B = self.blur_estimator

        with tf.GradientTape() as tape:
            # B separately on each domain batch: BatchNorm statistics per domain (moving ones
            # in the frozen-norm phase).
            b_training = not self.phase.startswith(PHASE_FROZEN_NORM)
            out_s = B(syn["image"], training=b_training)
            out_m = B(data["real_mask"]["image"], training=b_training) if need_mask else None
            out_u = B(data["real_unlabelled"]["image"], training=b_training) if use_d else None

            if use_d:
                with tape.stop_recording():
                    self._discriminator_step(out_s["feature"], out_m["feature"],
                                             out_u["feature"])

            pixel_weights, step_bounds = self._pixel_weights(syn), self._step_bounds(syn)
            bounds = step_bounds if w.depth_step_tolerance else None
            mse, pixel = self._map_losses(out_s["defocus"], syn, pixel_weights, bounds)
            total = losses.replica_mean(pixel)
            self._track("mse", mse)
            if self.use_aux:
                aux = losses.aux_per_example(out_s, syn["sigma_norm"], pixel_weights,
                                             self.pixel_loss, bounds)
                total += w.aux * losses.replica_mean(aux)
                self._track(f"aux_{self.pixel_loss}", aux)
            if w.step_bounds > 0:
                step = losses.pixel_loss_per_example(out_s[STEP_BOUNDS],
                                                     tf.concat(step_bounds, axis=-1),
                                                     pixel_weights, self.pixel_loss)
                total += w.step_bounds * losses.replica_mean(step)
                self._track(STEP_BOUNDS, step)
            if self.content is not None:
                content = losses.content_per_example(self.content, out_s["defocus"],
                                                     syn["sigma_norm"])
                total += w.content * losses.replica_mean(content)
                self._track("content", content)
            if use_s:
                logits = self.calibrator(out_m["defocus"], training=True)
                calib = losses.bce_logits_per_example(logits, data["real_mask"]["mask"])
                total += w.calibration * losses.replica_mean(calib)
                self._track("calibration_bce", calib)
            if use_d:
                # Generator: make real features read as synthetic (authors' loss_g).
                adv_m = losses.bce_logits_per_example(
                    self.discriminator(out_m["feature"], training=True), losses.SYNTHETIC_LABEL)
                adv_u = losses.bce_logits_per_example(
                    self.discriminator(out_u["feature"], training=True), losses.SYNTHETIC_LABEL)
                total += w.adversarial * 0.5 * (losses.replica_mean(adv_m)
                                                + losses.replica_mean(adv_u))
                self._track_value("adversarial_bce",
                                  0.5 * (tf.reduce_mean(adv_m) + tf.reduce_mean(adv_u)),
                                  tf.shape(adv_m)[0])
            scaled = self.b_optimizer.scale_loss(total)

        self._apply(self.b_optimizer, tape, scaled, g_vars)
        # ``total`` is this replica's share of the global mean: x replicas = local mean.
        self._track_value("total", total * _num_replicas(), tf.shape(mse)[0])
        return self._logs()

    def _discriminator_step(self, feat_s, feat_m, feat_u):
        """One step of D's optimizer on D's variables only (authors' ``optim_d``).

        L_D = BCE(D(f_syn), 1) + (BCE(D(f_real), 0) + BCE(D(f_unlabelled), 0)) / 2,
        scaled by the adversarial weight.
        """
        feat_s, feat_m, feat_u = (tf.stop_gradient(f) for f in (feat_s, feat_m, feat_u))
        D = self.discriminator
        d_vars = self.discriminator_variables
        with tf.GradientTape() as tape:
            logit_s = D(feat_s, training=True)
            logit_m = D(feat_m, training=True)
            logit_u = D(feat_u, training=True)
            l_s = losses.bce_logits_per_example(logit_s, losses.SYNTHETIC_LABEL)
            l_m = losses.bce_logits_per_example(logit_m, losses.REAL_LABEL)
            l_u = losses.bce_logits_per_example(logit_u, losses.REAL_LABEL)
            loss = self.weights_cfg.adversarial * (
                losses.replica_mean(l_s)
                + 0.5 * (losses.replica_mean(l_m) + losses.replica_mean(l_u)))
            scaled = self.d_optimizer.scale_loss(loss)
        self._apply(self.d_optimizer, tape, scaled, d_vars)
        self._track_value("d_bce", tf.reduce_mean(l_s) + 0.5 * (
            tf.reduce_mean(l_m) + tf.reduce_mean(l_u)), tf.shape(l_s)[0])
        acc = tf.concat([losses.domain_accuracy_per_example(logit_s, losses.SYNTHETIC_LABEL),
                         losses.domain_accuracy_per_example(logit_m, losses.REAL_LABEL),
                         losses.domain_accuracy_per_example(logit_u, losses.REAL_LABEL)], axis=0)
        self._track("d_accuracy", acc)

    def test_step(self, data):
        """Validation on one batch.

        data: ``{"image", "sigma_norm"}`` (synthetic: MSE / MAE on sigma/7),
        ``{"image", "mask"}`` (real blur masks: accuracy / AUC of the blur score) or a dict
        with ``"synthetic"`` and/or ``"real_mask"`` entries of those forms.
        """
        used = []
        if "synthetic" in data or "real_mask" in data:
            if "synthetic" in data:
                used += self._val_synthetic(data["synthetic"])
            if "real_mask" in data:
                used += self._val_mask(data["real_mask"])
        elif "sigma_norm" in data:
            used += self._val_synthetic(data)
        elif "mask" in data:
            used += self._val_mask(data)
        else:
            raise ValueError(f"validation element needs 'sigma_norm' or 'mask', got {list(data)}")
        return {m.name: m.result() for m in used}

    def _val_synthetic(self, batch):
        pred = self.blur_estimator(batch["image"], training=False)["defocus"]
        y = tf.cast(batch["sigma_norm"], tf.float32)
        self.val_mse.update_state(y, tf.cast(pred, tf.float32))
        self.val_mae.update_state(y, tf.cast(pred, tf.float32))
        return [self.val_mse, self.val_mae]

    def blur_score(self, image, training=False):
        """Per-pixel blur score in [0, 1] (N,H,W,1): sigmoid(S(B(x))) if S exists, else B(x)."""
        defocus = self.blur_estimator(image, training=training)["defocus"]
        if self.calibrator is None:
            return tf.cast(defocus, tf.float32)
        return tf.sigmoid(tf.cast(self.calibrator(defocus, training=training), tf.float32))

    def _val_mask(self, batch):
        defocus = tf.cast(self.blur_estimator(batch["image"], training=False)["defocus"],
                          tf.float32)
        mask = tf.cast(batch["mask"], tf.float32)
        self.val_mask_accuracy.update_state(mask, defocus)
        self.val_mask_auc.update_state(mask, defocus)
        used = [self.val_mask_accuracy, self.val_mask_auc]
        if self.calibrator is not None:
            prob = tf.sigmoid(tf.cast(self.calibrator(defocus, training=False), tf.float32))
            self.val_calibrated_accuracy.update_state(mask, prob)
            self.val_calibrated_auc.update_state(mask, prob)
            used += [self.val_calibrated_accuracy, self.val_calibrated_auc]
        return used
