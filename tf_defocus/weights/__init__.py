"""Weights shipped inside the package (package data).

``DEFAULT_MODEL``: the built-in default defocus model, a ``blur_estimator.keras`` inference model
(input RGB [0, 1], output sigma / 7) trained by ``configs/default_model.flags`` (seven cycles
of one schedule; trained as seven chained one-cycle runs, ``configs/default_model_cycle.flags``,
then ``configs/warm_restart.flags``, ``third_cycle``, ``fourth_cycle``, ``fifth_cycle``,
``sixth_cycle`` and ``seventh_cycle.flags``) on the built-in realistic data, then its last
stage (``configs/default_model_polish.flags``: 4,000 steps at 1e-5 with more all-in-focus scenes;
trained as ``configs/polish_cycle7_aif.flags``), ending with the ``guided_edges`` fill (``propagation.guided_fill`` with ``propagation.GUIDED_EDGES``); its ``ModelInfo`` sidecar is
``default_model.keras.json`` beside it. See
``docs/MODEL_CARD.md`` for data, recipe, metrics and limits.
"""

from pathlib import Path

DEFAULT_MODEL = Path(__file__).with_name("default_model.keras")
