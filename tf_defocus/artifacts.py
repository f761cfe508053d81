"""What a saved tf_defocus model is, written beside every artifact as JSON.

Every artifact the project writes (``.keras`` inference model, SavedModel directory, ``.tflite``
file) carries a ``ModelInfo`` so loaders know what the output means without guessing:

* ``.keras``: the model's own ``name`` says the kind (``blur_estimator`` or ``dofnet``) and a
  sidecar ``<file>.json`` may add detail;
* SavedModel directory: ``<dir>/tf_defocus.json`` (TF Serving ignores extra files);
* ``.tflite``: sidecar ``<file without suffix>.json``.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from tf_defocus.units import SIGMA_MAX_PX

KIND_DEFOCUS = "defocus"      # output is sigma/7 in [0,1]; sigma [px] = 7 * output
KIND_DOF_WEIGHT = "dof_weight"  # output is a focus weight in [0,1], 1 = in focus; no blur unit
KINDS = (KIND_DEFOCUS, KIND_DOF_WEIGHT)
MODEL_NAME_TO_KIND = {"blur_estimator": KIND_DEFOCUS, "dofnet": KIND_DOF_WEIGHT}
INFO_FILENAME = "tf_defocus.json"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Metadata of an exported model.

    kind: ``defocus`` or ``dof_weight``.
    input_size: (H, W) for fixed-size models, None for any size (multiple of ``size_multiple``).
    normalisation: how to feed the input, e.g. "float32 RGB in [0,1]" or "uint8 RGB 0..255".
    outputs: output names in the serving signature / TFLite model.
    max_pixels: SavedModel only: the ``serving_default`` bytes signature refuses requests of
      more pixels (all their images together, read from the headers before decoding) with
      InvalidArgument; None = no limit.
    """
    kind: str
    input_size: tuple | None = None
    size_multiple: int = 16
    normalisation: str = "float32 RGB in [0,1], NHWC"
    outputs: tuple = ("sigma_px", "focus")
    units: str = f"sigma_px: Gaussian-equivalent blur sigma in pixels (0..{SIGMA_MAX_PX:g}); focus: 1 - sigma/{SIGMA_MAX_PX:g}"
    quantization: str = "none"
    version: int = 1
    source_model: str = ""
    tf_defocus_version: str = ""
    max_pixels: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; expected one of {KINDS}")

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        d = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if d.get("input_size") is not None:
            d["input_size"] = tuple(d["input_size"])
        if "outputs" in d:
            d["outputs"] = tuple(d["outputs"])
        return cls(**d)


def info_path(model_path):
    """Where the ModelInfo JSON of ``model_path`` lives."""
    p = Path(model_path)
    if p.is_dir():
        return p / INFO_FILENAME
    if p.suffix == ".keras":
        return p.with_name(p.name + ".json")
    return p.with_suffix(".json")


def write_info(model_path, info):
    """Write ``info`` beside ``model_path`` (atomically)."""
    from tf_defocus.imageio import write_text
    write_text(info_path(model_path), info.to_json())


def read_info(model_path):
    """Return the ModelInfo of ``model_path`` or None if no sidecar exists."""
    p = info_path(model_path)
    if not p.is_file():
        return None
    return ModelInfo.from_json(p.read_text())


def tflite_input(x, details):
    """Images ``x`` (float, RGB in [0,1]) in the encoding of a TFLite input tensor: float32
    for float inputs; integer inputs (int8 exports: uint8 with scale 1/255, zero point 0) are
    quantized with the tensor's scale and zero point, or take the raw 0..255 pixel values when
    it has none. details: a LiteRT input detail dict (``dtype``, ``quantization``)."""
    dtype = details["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return np.asarray(x, np.float32)
    scale, zero = details["quantization"]
    x = np.asarray(x, np.float32)
    x = x / scale + zero if scale else x * 255.0
    info = np.iinfo(dtype)
    return np.clip(np.round(x), info.min, info.max).astype(dtype)
