"""What each kind of tf_defocus model computes: the one owner of the per-kind facts.

Two kinds (``artifacts.ModelInfo.kind``):

* ``defocus`` -- DMENet's blur estimator (Keras inference model ``blur_estimator``). Its raw
  ("native") output ``y`` is the Gaussian-equivalent blur sigma / 7 in [0, 1]:
  sigma [px] = 7 y, focus = 1 - y, blur score = sigma, mask (1 = blurred) = sigma >
  ``mask_threshold_px``. Input H and W must be multiples of 16 (VGG19 to conv5_4 downsamples
  by 16).
* ``dof_weight`` -- DoFNet (``dofnet``), the training-free DoF weight map and the classical
  methods. ``y`` is a focus weight in [0, 1], 1 = in focus, with no blur unit: focus = y,
  blur score = 1 - y, mask = y < ``mask_threshold_weight``. Any input size.

Each ``KindSpec`` gives the size multiple, the Keras model name, the output of the ``.keras``
inference model and the outputs of the exported signatures (SavedModel ``serve``, TFLite), with
their units, and converts native outputs: ``signature_outputs(y)`` (TF tensors or NumPy, no
clipping: what the exported graph computes), ``native_from_signature(value)`` (the inverse, for
models loaded from a SavedModel / TFLite file) and ``maps(native, ...)`` (NumPy, clipped to
[0, 1]: sigma, focus, blur score and mask as ``predict``, ``evaluate`` and
``inference.Estimator`` use them). ``tf_defocus.artifacts.model_info`` builds every
``ModelInfo`` from these specs.
"""

import dataclasses
from typing import NamedTuple

import numpy as np

from tf_defocus.config import Section, setting
from tf_defocus.units import SIGMA_MAX_PX

KIND_DEFOCUS = "defocus"        # output is sigma/7 in [0,1]; sigma [px] = 7 * output
KIND_DOF_WEIGHT = "dof_weight"  # output is a focus weight in [0,1], 1 = in focus; no blur unit
KINDS = (KIND_DEFOCUS, KIND_DOF_WEIGHT)

DEFAULT_MASK_THRESHOLD_PX = 1.0
"""Blur masks mark ``sigma_px > 1.0`` px as blurred: visibly defocused, like the human
annotations of CUHK. SYNDOF's own ``blur_map_binary`` used CoC > 1 px, i.e. threshold 0."""
DEFAULT_MASK_THRESHOLD_WEIGHT = 0.5
"""A focus-weight map marks ``weight < 0.5`` as blurred."""


@dataclasses.dataclass(frozen=True)
class MaskSettings(Section):
    """The mask rule of ``KindSpec.maps`` as config settings (predict and evaluate derive
    from it)."""
    mask_threshold_px: float = setting(DEFAULT_MASK_THRESHOLD_PX, "Sigma [px] above which a "
                                       "pixel counts as blurred (mask of a defocus map).", low=0)
    mask_threshold_weight: float = setting(DEFAULT_MASK_THRESHOLD_WEIGHT, "Focus weight below "
                                           "which a pixel counts as blurred (mask of a "
                                           "focus-weight map).", low=0, high=1)


class Maps(NamedTuple):
    """A native map read in the units of its kind (all (H, W), the native map's dtype).

    sigma_px: blur sigma [px] (defocus kind), None for a focus weight (no blur unit).
    focus: 1 = in focus. blur_score: higher = more blurred (sigma [px] or 1 - weight).
    mask: bool, True = blurred.
    """
    sigma_px: np.ndarray | None
    focus: np.ndarray
    blur_score: np.ndarray
    mask: np.ndarray


@dataclasses.dataclass(frozen=True)
class KindSpec:
    """The facts of one model kind (see the module docstring).

    size_multiple: input H and W must be multiples of this [px]. model_name: name of the Keras
    inference model. keras_output / keras_units: the ``.keras`` inference model's single
    output (native units). signature_output_names / signature_units: outputs of the exported
    ``serve`` signature and TFLite models. map_output: the signature output that carries the
    map (read back by ``native_from_signature``).
    """
    kind: str
    model_name: str
    size_multiple: int
    keras_output: str
    keras_units: str
    signature_output_names: tuple
    signature_units: str
    map_output: str

    @property
    def has_sigma(self):
        """True if the map has a blur unit (sigma [px])."""
        return self.kind == KIND_DEFOCUS

    def signature_outputs(self, native):
        """Exported outputs from the native output ``y`` (TF tensor or array, not clipped):
        defocus ``{"sigma_px": 7 y, "focus": 1 - y}``; dof_weight ``{"focus": y}``."""
        if self.has_sigma:
            return {"sigma_px": native * SIGMA_MAX_PX, "focus": 1.0 - native}
        return {"focus": native}

    def native_from_signature(self, value):
        """The native map from the ``map_output`` value of an exported model (array)."""
        return value / SIGMA_MAX_PX if self.map_output == "sigma_px" else value

    def sigma_px(self, native, sigma_max_px=SIGMA_MAX_PX):
        """Blur sigma [px] of a native map already clipped to [0, 1] (defocus kind only);
        ``sigma_max_px``: the sigma of native 1 (7 px; 7 / scale for a map read at a smaller
        scale, ``inference.Estimator``)."""
        if not self.has_sigma:
            raise ValueError(f"a {self.kind} model outputs a focus weight with no blur unit")
        return native * sigma_max_px

    def focus(self, native):
        """Focus map (1 = in focus) of a native map already clipped to [0, 1]."""
        return 1.0 - native if self.has_sigma else native

    def maps(self, native, mask_threshold_px=DEFAULT_MASK_THRESHOLD_PX,
             mask_threshold_weight=DEFAULT_MASK_THRESHOLD_WEIGHT, sigma_max_px=SIGMA_MAX_PX):
        """``Maps`` of a native map (array; clipped to [0, 1] first, dtype kept); ``sigma_max_px``
        as in ``sigma_px``."""
        native = np.clip(native, 0.0, 1.0)
        if self.has_sigma:
            sigma = self.sigma_px(native, sigma_max_px)
            return Maps(sigma_px=sigma, focus=self.focus(native), blur_score=sigma,
                        mask=sigma > mask_threshold_px)
        return Maps(sigma_px=None, focus=self.focus(native), blur_score=1.0 - native,
                    mask=native < mask_threshold_weight)


DEFOCUS = KindSpec(
    kind=KIND_DEFOCUS, model_name="blur_estimator", size_multiple=16,
    keras_output="defocus",
    keras_units=f"defocus: Gaussian-equivalent blur sigma / {SIGMA_MAX_PX:g} in [0,1]; "
                f"sigma_px = {SIGMA_MAX_PX:g} * defocus",
    signature_output_names=("sigma_px", "focus"),
    signature_units=f"sigma_px: Gaussian-equivalent blur sigma in pixels (0..{SIGMA_MAX_PX:g}); "
                    f"focus: 1 - sigma/{SIGMA_MAX_PX:g}",
    map_output="sigma_px")
DOF_WEIGHT = KindSpec(
    kind=KIND_DOF_WEIGHT, model_name="dofnet", size_multiple=1,
    keras_output="focus",
    keras_units="focus: depth-of-field weight in [0,1], 1 = in focus (no blur unit)",
    signature_output_names=("focus",),
    signature_units="focus: depth-of-field weight in [0,1], 1 = in focus (no blur unit)",
    map_output="focus")
SPECS = {s.kind: s for s in (DEFOCUS, DOF_WEIGHT)}
MODEL_NAME_TO_KIND = {s.model_name: s.kind for s in SPECS.values()}
MAX_SIZE_MULTIPLE = max(s.size_multiple for s in SPECS.values())
"""A size that is a multiple of this suits every kind (tiles, fixed TFLite input sizes)."""


def kind_of_outputs(names):
    """The kind of an exported model from its output names (a defocus model is recognised by
    its ``sigma_px`` output), else None."""
    names = set(names)
    if DEFOCUS.map_output in names:
        return KIND_DEFOCUS
    if names == set(DOF_WEIGHT.signature_output_names):
        return KIND_DOF_WEIGHT
    return None


def spec(kind):
    """The ``KindSpec`` of ``kind``; ValueError for an unknown kind."""
    try:
        return SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}") from None
