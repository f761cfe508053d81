"""What a saved tf_defocus model is, written beside every artifact as JSON.

Every artifact the project writes (``.keras`` inference model, SavedModel directory, ``.tflite``
file) carries a ``ModelInfo`` so loaders know what the output means without guessing:

* ``.keras``: the model's own ``name`` says the kind (``blur_estimator`` or ``dofnet``) and a
  sidecar ``<file>.json`` may add detail;
* SavedModel directory: ``<dir>/tf_defocus.json`` (TF Serving ignores extra files);
* ``.tflite``: sidecar ``<file without suffix>.json``.

``model_info(kind, form, ...)`` is the one way to build a ``ModelInfo``; what each kind means
(size multiple, outputs, units) lives in ``tf_defocus.model_kinds``.
"""

import dataclasses
import json
from pathlib import Path

from tf_defocus import model_kinds
from tf_defocus.model_kinds import KIND_DEFOCUS, KIND_DOF_WEIGHT, KINDS, MODEL_NAME_TO_KIND  # noqa: F401

INFO_FILENAME = "tf_defocus.json"
FORM_KERAS = "keras"          # a ``.keras`` inference model: its one output, native units
FORM_SIGNATURE = "signature"  # SavedModel ``serve`` / TFLite: the named signature outputs


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Metadata of an exported model.

    kind: ``defocus`` or ``dof_weight`` (``tf_defocus.model_kinds``).
    input_size: (H, W) for fixed-size models, None for any size (multiple of ``size_multiple``).
    normalisation: how to feed the input, e.g. "float32 RGB in [0,1]" or "uint8 RGB 0..255".
    outputs: output names in the serving signature / TFLite model.
    max_pixels: SavedModel only: the ``serving_default`` bytes signature refuses requests of
      more pixels (all their images together, read from the headers before decoding) with
      InvalidArgument; None = no limit.
    tile_size: the tile side [px] the ``Estimator`` uses by default for this model
      (``tiling.tile_size_for_width``: 1280 px for a width-1/4 DMENet); None =
      ``tiling.DEFAULT_TILE_SIZE``.
    """
    kind: str
    input_size: tuple | None = None
    size_multiple: int = model_kinds.DEFOCUS.size_multiple
    normalisation: str = "float32 RGB in [0,1], NHWC"
    outputs: tuple = model_kinds.DEFOCUS.signature_output_names
    units: str = model_kinds.DEFOCUS.signature_units
    quantization: str = "none"
    version: int = 1
    source_model: str = ""
    tf_defocus_version: str = ""
    max_pixels: int | None = None
    tile_size: int | None = None

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


def model_info(kind, form, **fields):
    """The ``ModelInfo`` of a ``kind`` model saved as ``form``: ``FORM_KERAS`` (the ``.keras``
    inference model: its one output in native units) or ``FORM_SIGNATURE`` (SavedModel /
    TFLite: the exported signature outputs). Kind, size multiple, outputs and units come from
    ``tf_defocus.model_kinds``; ``fields`` set the rest (input_size, normalisation, version,
    source_model, ...)."""
    spec = model_kinds.spec(kind)
    if form == FORM_KERAS:
        outputs, units = (spec.keras_output,), spec.keras_units
    elif form == FORM_SIGNATURE:
        outputs, units = spec.signature_output_names, spec.signature_units
    else:
        raise ValueError(f"form must be {FORM_KERAS!r} or {FORM_SIGNATURE!r}, got {form!r}")
    return ModelInfo(kind=kind, size_multiple=spec.size_multiple, outputs=outputs, units=units,
                     **fields)


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

