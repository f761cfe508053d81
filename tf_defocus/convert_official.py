"""Import the authors' DMENet checkpoint (``DMENet_BDCS.npz``, TF1 + TensorLayer 1.11.1).

    python -m tf_defocus.convert_official --npz=DMENet_BDCS.npz --out=blur_estimator.keras

The npz maps TF variable names (``main_net/defocus_net/encoder/conv1_1/kernel:0``) to float32
arrays; ``../shared/reference/dmenet_bdcs_npz_keys.tsv`` lists all 321. Every array is placed
by name, never by order:

* ``main_net/defocus_net/encoder/convB_I`` -> B layer ``blockB_convI`` (Keras VGG19 names);
* ``main_net/defocus_net/decoder/<scope>/<layer>`` -> B layer ``<scope>_<layer>``
  (``u3/c1`` -> ``u3_c1``, ``u0/b_res0`` -> ``u0_b_res0``, ``uf/c3`` -> ``uf_c3``);
* ``main_net/binary_net/lK/<layer>`` -> S layer ``lK_<layer>``;
* ``discriminator/feature/hK/<layer>`` -> D layer ``hK_<layer>``;
* the encoder's classification head (``conv6_1``, ``c_logits_1``, ``c_logits_2``; never
  trained, unused at inference) is skipped explicitly.

Leaves: conv ``kernel`` (HWIO, as Keras) and ``bias``; BN ``beta``, ``moving_mean``,
``moving_variance`` (no gamma anywhere). Any missing, unknown or mis-shaped key is refused with
a message listing them. Outputs are written atomically with a ``ModelInfo`` sidecar.
"""

import dataclasses
import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from tf_defocus import cli
from tf_defocus import config as cfglib
from tf_defocus.config import Section, setting

ESTIMATOR_PREFIX = "main_net/defocus_net/"
CALIBRATOR_PREFIX = "main_net/binary_net/"
DISCRIMINATOR_PREFIX = "discriminator/feature/"
# The encoder's classification head: in the file, never used by any loss or at inference.
UNUSED_KEYS = frozenset(ESTIMATOR_PREFIX + "encoder/" + k for k in (
    "conv6_1/kernel:0", "conv6_1/bias:0", "c_logits_1/kernel:0", "c_logits_1/bias:0",
    "c_logits_1/W:0", "c_logits_1/b:0", "c_logits_2/W:0", "c_logits_2/b:0"))
NUM_KEYS = {"estimator": 249, "calibrator": 47, "discriminator": 17}
MAX_LISTED = 60


class OfficialCheckpointError(ValueError):
    """The npz cannot be converted (message names the file and every offending key)."""


# ---------------------------------------------------------------- name mapping

def official_scope(part, layer_name):
    """TensorLayer scope of the Keras layer ``layer_name`` of ``part``, or None if unmapped.

    part: "estimator" (B), "calibrator" (S) or "discriminator" (D).
    """
    if part == "estimator":
        m = re.fullmatch(r"block(\d)_conv(\d)", layer_name)
        if m:
            return f"{ESTIMATOR_PREFIX}encoder/conv{m.group(1)}_{m.group(2)}"
        m = re.fullmatch(r"(u[0-4]_aux|u[0-4]|uf)_(.+)", layer_name)
        if m:
            return f"{ESTIMATOR_PREFIX}decoder/{m.group(1)}/{m.group(2)}"
        return None
    if part == "calibrator":
        m = re.fullmatch(r"(l\d)_(.+)", layer_name)
        return f"{CALIBRATOR_PREFIX}{m.group(1)}/{m.group(2)}" if m else None
    if part == "discriminator":
        m = re.fullmatch(r"(h\d)_(.+)", layer_name)
        return f"{DISCRIMINATOR_PREFIX}{m.group(1)}/{m.group(2)}" if m else None
    raise ValueError(f"unknown part {part!r}")


def expected_variables(model, part):
    """Dict npz key -> Keras variable for every weight of ``model`` (a B, S or D model)."""
    import keras
    out = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        scope = official_scope(part, layer.name)
        if scope is None:
            raise RuntimeError(f"{part}: layer {layer.name!r} has weights but no official name")
        if isinstance(layer, keras.layers.Conv2D):
            leaves = {"kernel": layer.kernel}
            if layer.use_bias:
                leaves["bias"] = layer.bias
        elif isinstance(layer, keras.layers.BatchNormalization):
            if layer.scale:
                raise RuntimeError(f"{layer.name}: official BN layers have no gamma")
            leaves = {"beta": layer.beta, "moving_mean": layer.moving_mean,
                      "moving_variance": layer.moving_variance}
        else:
            raise RuntimeError(f"{part}: unexpected weighted layer {layer.name!r} ({type(layer).__name__})")
        if len(leaves) != len(layer.weights):
            raise RuntimeError(f"{layer.name}: {len(layer.weights)} weights, mapped {len(leaves)}")
        for leaf, var in leaves.items():
            out[f"{scope}/{leaf}:0"] = var
    return out


def _part_of(key):
    if key.startswith(ESTIMATOR_PREFIX):
        return "estimator"
    if key.startswith(CALIBRATOR_PREFIX):
        return "calibrator"
    if key.startswith(DISCRIMINATOR_PREFIX):
        return "discriminator"
    return None


# ---------------------------------------------------------------- reading and checking

def read_npz(path):
    """Load every array of the npz ``path`` -> dict key -> np.ndarray (keys normalised to ``:0``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OfficialCheckpointError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {}
            for key in data.files:
                name = key if re.search(r":\d+$", key) else key + ":0"
                if name in arrays:
                    raise OfficialCheckpointError(f"{path}: key {key!r} appears twice")
                arrays[name] = data[key]
    except OfficialCheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise OfficialCheckpointError(f"{path}: not a readable .npz file ({err})") from err
    if not arrays:
        raise OfficialCheckpointError(f"{path}: the file holds no arrays")
    return arrays


def _listing(title, items):
    lines = [f"  {len(items)} {title}:"]
    lines += [f"    {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(f"    ... and {len(items) - MAX_LISTED} more")
    return lines


def check_arrays(arrays, expected, source, optional_parts=()):
    """Refuse ``arrays`` unless they match ``expected`` (dict part -> dict key -> variable).

    optional_parts: parts whose keys may be absent altogether (if any key of such a part is
    present, the part must be complete). Returns the set of parts present. Raises
    ``OfficialCheckpointError`` listing every missing, unknown, mis-shaped or non-finite key.
    """
    present = {p for p in expected if any(k in arrays for k in expected[p])}
    missing, shapes, bad_values = [], [], []
    known = set(UNUSED_KEYS)
    for part, variables in expected.items():
        known.update(variables)
        if part in optional_parts and part not in present:
            continue
        for key, var in variables.items():
            if key not in arrays:
                missing.append(key)
                continue
            a = arrays[key]
            if tuple(a.shape) != tuple(var.shape):
                shapes.append(f"{key}: file {tuple(a.shape)}, model {tuple(var.shape)}")
            elif not np.issubdtype(a.dtype, np.floating):
                bad_values.append(f"{key}: dtype {a.dtype}, expected float32")
            elif not np.all(np.isfinite(a)):
                bad_values.append(f"{key}: contains NaN or Inf")
            elif key.endswith("moving_variance:0") and np.any(a < 0):
                bad_values.append(f"{key}: negative variance")
    unknown = sorted(k for k in arrays if k not in known)
    if missing or unknown or shapes or bad_values:
        lines = [f"{source}: refusing to convert; the file does not match DMENet "
                 f"(TensorLayer 1.11.1 names, see tf_defocus/convert_official.py):"]
        if missing:
            lines += _listing("missing keys", sorted(missing))
        if unknown:
            lines += _listing("unknown keys", unknown)
        if shapes:
            lines += _listing("mis-shaped keys", sorted(shapes))
        if bad_values:
            lines += _listing("bad values", sorted(bad_values))
        if any(re.search(r"/[Wb]_conv2d:0$", k) for k in unknown):
            lines.append("  hint: W_conv2d/b_conv2d are pre-1.11 TensorLayer names; the authors' "
                         "code (TensorLayer 1.11.1) writes kernel/bias.")
        raise OfficialCheckpointError("\n".join(lines))
    return present


def _assign(arrays, variables):
    for key, var in variables.items():
        var.assign(np.asarray(arrays[key], dtype=np.float32))


# ---------------------------------------------------------------- library API

@dataclasses.dataclass
class OfficialModels:
    """Networks filled from the official checkpoint (width 1.0).

    estimator: ``BlurEstimator`` (B, with aux heads); calibrator / discriminator:
    ``SharpnessCalibrator`` (S) / ``DomainDiscriminator`` (D), or None if the file had none.
    skipped: keys deliberately not used (the encoder classification head).
    """
    estimator: object
    calibrator: object = None
    discriminator: object = None
    skipped: tuple = ()


def convert_arrays(arrays, source="<arrays>", require_all=True):
    """Build B, S, D at width 1.0 and fill them from ``arrays`` (dict npz key -> array).

    require_all: the file must also hold S and D (as DMENet_BDCS.npz does); with False, a
    file with only B's keys (e.g. the authors' pre-training ``*_init.npz``) is accepted.
    """
    from tf_defocus.models import BlurEstimator, DomainDiscriminator, SharpnessCalibrator
    models = {"estimator": BlurEstimator(width=1.0), "calibrator": SharpnessCalibrator(width=1.0),
              "discriminator": DomainDiscriminator(width=1.0)}
    expected = {p: expected_variables(m, p) for p, m in models.items()}
    for p, n in NUM_KEYS.items():
        if len(expected[p]) != n:
            raise RuntimeError(f"{p}: model has {len(expected[p])} weights, checkpoint {n}")
    optional = () if require_all else ("calibrator", "discriminator")
    present = check_arrays(arrays, expected, source, optional_parts=optional)
    if "estimator" not in present:
        raise OfficialCheckpointError(f"{source}: no keys of the blur estimator "
                                      f"({ESTIMATOR_PREFIX}...)")
    for part in present:
        _assign(arrays, expected[part])
    return OfficialModels(
        estimator=models["estimator"],
        calibrator=models["calibrator"] if "calibrator" in present else None,
        discriminator=models["discriminator"] if "discriminator" in present else None,
        skipped=tuple(sorted(k for k in arrays if k in UNUSED_KEYS)))


# ---------------------------------------------------------------- conversion

@dataclasses.dataclass(frozen=True)
class ConvertConfig(Section):
    """One conversion; each field is a flag of the CLI of the same name (written as JSON beside
    the output)."""
    npz: str = setting(None, "The authors' checkpoint, e.g. DMENet_BDCS.npz.")
    out: str = setting("blur_estimator.keras", "Inference model to write (.keras, image -> "
                                               "defocus sigma/7).")
    trainable_out: str = setting("", "Optional .keras path for the full BlurEstimator (aux "
                                     "heads and D feature included) to fine-tune from.")
    calibrator_out: str = setting("", "Optional .keras path for the sharpness calibrator S.")
    discriminator_out: str = setting("", "Optional .keras path for the domain discriminator D.")
    estimator_only: bool = setting(False, "Accept files without S and D arrays (e.g. the "
                                          "authors' pre-training *_init.npz).")

    def check(self):
        for name in ("out", "trainable_out", "calibrator_out", "discriminator_out"):
            path = getattr(self, name)
            if (path or name == "out") and not path.endswith(".keras"):
                raise ValueError(f"--{name} must end in .keras, got {path!r}")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save_keras(model, path):
    from tf_defocus.imageio import atomic_path
    with atomic_path(Path(path)) as tmp:
        model.save(tmp)


def _smoke_check(estimator, source):
    """Forward a 64x64 ramp image; the converted model must give finite values in [0,1]."""
    x = np.linspace(0, 1, 64 * 64 * 3, dtype=np.float32).reshape(1, 64, 64, 3)
    y = np.asarray(estimator.inference_model()(x, training=False))
    if not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > 1:
        raise OfficialCheckpointError(f"{source}: converted model gives non-finite or out-of-range "
                                      f"output (min {np.nanmin(y)}, max {np.nanmax(y)})")
    return float(y.min()), float(y.max())


def convert(config, log=print):
    """Run one conversion described by ``ConvertConfig``; returns the list of written paths."""
    import tf_defocus
    from tf_defocus import artifacts
    from tf_defocus.imageio import write_text

    log(f"reading {config.npz}")
    arrays = read_npz(config.npz)
    log(f"  {len(arrays)} arrays, {sum(a.size for a in arrays.values()):,} values")
    models = convert_arrays(arrays, source=config.npz, require_all=not config.estimator_only)
    log(f"  blur estimator: {NUM_KEYS['estimator']} arrays placed")
    for part, m in (("calibrator", models.calibrator), ("discriminator", models.discriminator)):
        log(f"  {part}: " + (f"{NUM_KEYS[part]} arrays validated" if m is not None else "absent"))
    if models.skipped:
        log(f"  skipped {len(models.skipped)} arrays of the unused encoder classification head")
    lo, hi = _smoke_check(models.estimator, config.npz)
    log(f"  smoke test on a 64x64 ramp: defocus in [{lo:.4f}, {hi:.4f}]")

    digest = _sha256(config.npz)
    source = f"DMENet official checkpoint {os.path.basename(config.npz)} sha256:{digest}"
    written = []
    inference = models.estimator.inference_model()
    _save_keras(inference, config.out)
    artifacts.write_info(config.out, artifacts.model_info(
        artifacts.KIND_DEFOCUS, artifacts.FORM_KERAS, source_model=source,
        tf_defocus_version=tf_defocus.__version__))
    written.append(config.out)
    extra = ((config.trainable_out, models.estimator, "trainable blur estimator"),
             (config.calibrator_out, models.calibrator, "calibrator"),
             (config.discriminator_out, models.discriminator, "discriminator"))
    for path, model, what in extra:
        if not path:
            continue
        if model is None:
            raise OfficialCheckpointError(f"{config.npz}: has no {what} weights to write to {path}")
        _save_keras(model, path)
        written.append(path)
    config_path = Path(config.out).with_name(Path(config.out).stem + ".convert_config.json")
    write_text(config_path, json.dumps({**cfglib.to_dict(config), "npz_sha256": digest},
                                       indent=2, sort_keys=True))
    written.append(str(config_path))
    for p in written:
        log(f"wrote {p}")
    return written


main, run = cli.config_app(ConvertConfig, convert,
                           errors={OfficialCheckpointError: 1, ValueError: 1, OSError: 1})
"""``main(argv, flag_values=None)`` -> exit code; ``run()``: the console script
(``tf-defocus-convert-official``). A checkpoint that cannot be converted: exit 1."""


if __name__ == "__main__":
    run()
