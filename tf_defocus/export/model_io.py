"""Loading and checking the Keras inference models that ``tf_defocus.export`` converts.

A tf_defocus inference model is a single-input, single-output ``keras.Model`` named
``blur_estimator`` (output sigma/7 in [0,1]) or ``dofnet`` (output focus weight in [0,1]):
image (N,H,W,3) float32 RGB in [0,1] -> (N,H,W,1). The kind comes from the model name via
``tf_defocus.artifacts.MODEL_NAME_TO_KIND``.
"""

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from tf_defocus import artifacts

INFERENCE_FILENAMES = tuple(f"{name}.keras" for name in artifacts.MODEL_NAME_TO_KIND)


class ExportError(ValueError):
    """Bad input to an export (not a tf_defocus model, bad size, no calibration images...)."""


def _register_custom_objects():
    """Import the model modules so ``keras.saving.load_model`` knows the custom layers."""
    import importlib
    for module in ("tf_defocus.models", "tf_defocus.models.dofnet"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or not module.startswith(e.name):
                raise


def resolve_model_path(path):
    """A ``.keras`` file, or a training ``model_dir`` holding exactly one of
    ``blur_estimator.keras`` / ``dofnet.keras`` -> Path of the ``.keras`` file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            raise ExportError(f"{path}: is a SavedModel directory; export from the trained "
                              f"'.keras' inference model instead (e.g. <model_dir>/blur_estimator.keras)")
        found = [p / n for n in INFERENCE_FILENAMES if (p / n).is_file()]
        if len(found) != 1:
            raise ExportError(f"{path}: directory holds {len(found)} of {list(INFERENCE_FILENAMES)}; "
                              f"pass the .keras file itself")
        return found[0]
    if p.suffix != ".keras":
        raise ExportError(f"{path}: not a trained tf_defocus model: expected a '.keras' inference "
                          f"model file (blur_estimator.keras or dofnet.keras), got {p.suffix or 'no suffix'!r}")
    return p


def load_inference_model(path):
    """Load a tf_defocus ``.keras`` inference model; returns ``(model, kind, info_or_None)``.

    Raises FileNotFoundError / ExportError naming ``path`` for anything that is not one.
    """
    import keras
    p = resolve_model_path(path)
    _register_custom_objects()
    try:
        model = keras.saving.load_model(os.fspath(p), compile=False)
    except Exception as e:  # noqa: BLE001 (keras raises many types for a bad archive)
        raise ExportError(f"{p}: not a loadable Keras model ({type(e).__name__}: {e})") from e
    if hasattr(model, "inference_model") and model.name not in artifacts.MODEL_NAME_TO_KIND:
        model = model.inference_model()   # a trainable BlurEstimator / DoFNet saved whole
    kind = check_inference_model(model, name=str(p))
    info = artifacts.read_info(p)
    if info is not None and info.kind != kind:
        raise ExportError(f"{p}: sidecar says kind {info.kind!r} but the model name says {kind!r}")
    return model, kind, info


def check_inference_model(model, name="model"):
    """Check the inference-model contract; returns the kind (``defocus`` | ``dof_weight``)."""
    kind = artifacts.MODEL_NAME_TO_KIND.get(model.name)
    if kind is None:
        raise ExportError(f"{name}: model name {model.name!r} is not a tf_defocus inference model "
                          f"(expected one of {sorted(artifacts.MODEL_NAME_TO_KIND)})")
    inputs = list(model.inputs)
    outputs = model.outputs
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(f"{name}: expected one input and one output, got {len(inputs)} and "
                          f"{len(outputs)}")
    in_shape, out_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] != 3:
        raise ExportError(f"{name}: input shape {in_shape}; expected (N, H, W, 3) RGB")
    if len(out_shape) != 4 or out_shape[-1] != 1:
        raise ExportError(f"{name}: output shape {out_shape}; expected (N, H, W, 1)")
    return kind


def export_friendly(model, tflite=False):
    """See ``tf_defocus.export.rewrite.export_friendly`` (imported lazily: needs keras)."""
    from tf_defocus.export.rewrite import export_friendly as rewrite
    return rewrite(model, tflite=tflite)


# ----------------------------------------------------------------------------- atomic output

@contextlib.contextmanager
def staged_directory(final, overwrite=False):
    """Yield an empty temporary directory beside ``final``; on success it replaces ``final``.

    Refuses an existing ``final`` unless ``overwrite``. The temporary name starts with a dot
    and is not an integer, so TF Serving (which watches ``<model>/<integer version>/``) never
    sees a half-written version. On failure the temporary directory is removed.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final}: already exists; pass overwrite=True (--overwrite) to "
                              f"replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)   # mkdtemp makes 0700; servers often run as another user
        if final.exists():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
