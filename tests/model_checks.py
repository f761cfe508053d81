"""Reusable checks for tf_defocus Keras models (config and ``.keras`` round trips, counts)."""

import numpy as np
import keras


def param_counts(model):
    """(trainable values, non-trainable values) of ``model``."""
    count = lambda ws: int(sum(int(np.prod(w.shape)) for w in ws))
    return count(model.trainable_weights), count(model.non_trainable_weights)


def as_numpy_outputs(out):
    """Model output (tensor, list or dict) -> dict name -> np.ndarray."""
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return {str(i): np.asarray(v) for i, v in enumerate(out)}
    return {"output": np.asarray(out)}


def assert_same_outputs(a, b, atol=0.0):
    """Assert two models' outputs (any structure) are equal within ``atol``."""
    a, b = as_numpy_outputs(a), as_numpy_outputs(b)
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    for k in a:
        assert a[k].shape == b[k].shape, (k, a[k].shape, b[k].shape)
        assert a[k].dtype == b[k].dtype, (k, a[k].dtype, b[k].dtype)
        np.testing.assert_allclose(a[k], b[k], atol=atol, rtol=0, err_msg=f"output {k}")


def randomize_weights(model, seed=0):
    """Give every weight (incl. BN statistics) random values so round trips cannot pass by luck.

    Variances (names containing "variance") are kept positive.
    """
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if "variance" in w.path:
            value = rng.uniform(0.5, 2.0, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        w.assign(value.astype(w.dtype))


def assert_config_round_trip(model, inputs):
    """from_config(get_config()) rebuilds an equal model: same config, weights -> same outputs."""
    config = model.get_config()
    clone = model.__class__.from_config(config)
    assert clone.get_config() == config
    assert clone.name == model.name
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]
    clone.set_weights(model.get_weights())
    assert_same_outputs(model(inputs, training=False), clone(inputs, training=False))
    return clone


def assert_keras_round_trip(model, inputs, path, expect_class=None):
    """Save to ``path`` (.keras), reload with ``keras.saving.load_model``, compare outputs exactly."""
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == model.name
    if expect_class is not None:
        assert isinstance(loaded, expect_class), type(loaded)
    assert len(loaded.weights) == len(model.weights)
    assert_same_outputs(model(inputs, training=False), loaded(inputs, training=False))
    return loaded
