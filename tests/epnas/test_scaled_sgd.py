import numpy as np
import pytest

import keras

from keras_nas.epnas.scaled_sgd import ScaledSGD


def _model(seed=0):
    # Two heads on separate output columns: neither's gradient depends on the other's weights.
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    outputs = [keras.layers.Dense(1, name=name)(inputs) for name in ("head", "other")]
    return keras.Model(inputs, keras.layers.Concatenate()(outputs))


def _train(optimizer, steps=3):
    model = _model()
    model.compile(optimizer=optimizer, loss="mse")
    x = np.arange(12, dtype="float32").reshape(4, 3) / 4.0
    y = np.ones((4, 2), "float32") * 5.0  # gradients large enough for clipnorm=1 to clip
    for _ in range(steps):
        model.train_on_batch(x, y)
    return {w.path: np.asarray(w) for w in model.weights}


def test_paths_of_a_functional_model():
    assert sorted(w.path for w in _model().weights) == ["head/bias", "head/kernel", "other/bias", "other/kernel"]


def test_a_multiplier_is_sgd_with_that_many_times_the_rate():
    # Clipping is active (the gradients' norms exceed 1) and momentum carries over steps.
    kwargs = dict(momentum=0.9, nesterov=True, clipnorm=1.0)
    scaled = _train(ScaledSGD({"head/kernel": 0.1, "head/bias": 0.1}, learning_rate=0.5, **kwargs))
    slow = _train(keras.optimizers.SGD(learning_rate=0.05, **kwargs))
    fast = _train(keras.optimizers.SGD(learning_rate=0.5, **kwargs))
    for path in ("head/kernel", "head/bias"):
        np.testing.assert_allclose(scaled[path], slow[path], rtol=1e-5, atol=1e-6)
    for path in ("other/kernel", "other/bias"):
        np.testing.assert_allclose(scaled[path], fast[path], rtol=1e-5, atol=1e-6)
    assert not np.allclose(slow["head/kernel"], fast["head/kernel"], atol=1e-3)
    # A multiplier of 0 freezes the variable.
    start = _train(keras.optimizers.SGD(learning_rate=0.5), steps=0)
    frozen = _train(ScaledSGD({"head/bias": 0.0}, learning_rate=0.5, **kwargs))
    np.testing.assert_array_equal(frozen["head/bias"], start["head/bias"])


def test_get_config_round_trip_and_saved_model(tmp_path):
    optimizer = ScaledSGD({"head/kernel": 0.2}, learning_rate=0.3, momentum=0.9, nesterov=True, clipnorm=5.0)
    config = optimizer.get_config()
    clone = ScaledSGD.from_config(config)
    assert clone.learning_rate_multipliers == {"head/kernel": 0.2}
    assert clone.get_config() == config
    model = _model()
    model.compile(optimizer=optimizer, loss="mse")
    model.train_on_batch(np.ones((2, 3), "float32"), np.zeros((2, 2), "float32"))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, ScaledSGD)
    assert loaded.optimizer.learning_rate_multipliers == {"head/kernel": 0.2}


@pytest.mark.parametrize("multipliers, error, match", [
    ([0.1], TypeError, "must be a dict"),
    ({"head/kernel": -1.0}, ValueError, ">= 0"),
    ({"head/kernel": True}, ValueError, ">= 0"),
    ({3: 1.0}, ValueError, "variable paths"),
])
def test_bad_multipliers(multipliers, error, match):
    with pytest.raises(error, match=match):
        ScaledSGD(multipliers, learning_rate=0.1)


def test_unknown_variable_path_is_named():
    model = _model()
    model.compile(optimizer=ScaledSGD({"head/kernal": 0.5}, learning_rate=0.1), loss="mse")
    with pytest.raises(ValueError, match="head/kernal"):
        model.train_on_batch(np.ones((2, 3), "float32"), np.zeros((2, 2), "float32"))
