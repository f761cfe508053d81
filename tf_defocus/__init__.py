"""tf_defocus: single-image defocus maps (DMENet) and depth-of-field weight maps, TF2 / Keras 3.

Units: blur sigma in pixels (see ``tf_defocus.units``).

Importing the package registers its custom Keras layers and models, so a saved
``blur_estimator.keras`` / ``dofnet.keras`` loads with ``keras.saving.load_model(path)`` after
``import tf_defocus``. ``load_estimator`` and ``dof_weight_map`` are imported on first use.
"""

__version__ = "0.1.0"

# Commands (python -m tf_defocus.train, tf-defocus-export, ...) hide TensorFlow's start-up log
# lines unless --verbose, and predict / evaluate / montage use TensorFlow's BFC CPU allocator:
# both must run before the import below loads TensorFlow.
from tf_defocus import cli as _cli  # noqa: E402  (standard library only)
_cli.bfc_allocator_for_inference_commands()
_cli.quiet_if_cli_entry_point()

from tf_defocus import models as _models  # noqa: E402,F401  (registers the custom layers)

_LAZY = {
    "load_estimator": "tf_defocus.inference",
    "dof_weight_map": "tf_defocus.dof",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tf_defocus' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
