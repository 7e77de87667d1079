"""ChannelMask and ChannelSelect: exact zeroing, the alive gate, config and .keras round-trips."""

import keras
import numpy as np
import pytest

from keras_nas.cnas.channel_mask import ChannelMask
from keras_nas.cnas.channel_select import ChannelSelect


def test_mask_zeroes_exactly_the_chosen_channels():
    layer = ChannelMask()
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 5)).astype("float32")
    layer(x)
    layer.set_mask([1, 0, 1, 0, 1])
    y = np.asarray(layer(x))
    np.testing.assert_array_equal(y[..., [1, 3]], 0.0)
    np.testing.assert_array_equal(y[..., [0, 2, 4]], x[..., [0, 2, 4]])
    assert layer.spatial_size == 16
    assert not layer.mask.trainable and layer.trainable_weights == []


def test_alive_gate_is_zero_only_when_every_channel_is_removed():
    layer = ChannelMask(return_alive=True)
    x = np.ones((3, 2, 2, 2), "float32")
    _, alive = layer(x)
    assert alive.shape == (3, 1, 1, 1) and np.all(np.asarray(alive) == 1)
    layer.set_mask([0, 1])
    assert np.all(np.asarray(layer(x)[1]) == 1)
    layer.set_mask([0, 0])
    assert np.all(np.asarray(layer(x)[1]) == 0)


def test_set_mask_rejects_wrong_values():
    layer = ChannelMask()
    layer(np.ones((1, 2, 2, 3), "float32"))
    with pytest.raises(ValueError, match="0/1 vector of length 3"):
        layer.set_mask([1, 0])
    with pytest.raises(ValueError, match="0/1 vector"):
        layer.set_mask([1, 0.5, 1])
    with pytest.raises(TypeError, match="`return_alive` must be a bool"):
        ChannelMask(return_alive="yes")


def test_get_config_round_trips_and_mask_survives_keras_saving(tmp_path):
    layer = ChannelMask(return_alive=True, name="m")
    restored = ChannelMask.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    inputs = keras.Input((4, 4, 3))
    y, alive = ChannelMask(return_alive=True, name="m")(inputs)
    y = keras.layers.Multiply()([y, alive])
    model = keras.Model(inputs, y)
    model.get_layer("m").set_mask([0, 1, 1])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.get_layer("m").mask.numpy(), [0, 1, 1])
    x = np.ones((1, 4, 4, 3), "float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_channel_select_gathers_in_order_and_round_trips():
    layer = ChannelSelect([2, 0])
    x = np.arange(6.0, dtype="float32").reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(np.asarray(layer(x))[0, 0], [[2.0, 0.0], [5.0, 3.0]])
    assert ChannelSelect.from_config(layer.get_config()).indices == [2, 0]
    with pytest.raises(ValueError, match="`indices` must be a non-empty list"):
        ChannelSelect([])
    with pytest.raises(ValueError, match="`indices` must be < the 3 input channels"):
        ChannelSelect([3])(x)


def test_channel_select_from_several_inputs_equals_numpy_take_of_their_concatenation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 3, 3, 5)).astype("float32")
    b = rng.normal(size=(2, 3, 3, 7)).astype("float32")
    full = np.concatenate([a, b], axis=-1)
    cases = [
        list(range(12)),  # everything: a plain concatenation
        [1, 2, 3, 6, 7],  # one run in each input: two slices
        [0, 2, 4, 5, 7, 9, 11, 10, 3],  # many runs: gathers, any order
        [8, 9, 0],  # out of input order
    ]
    for indices in cases:
        layer = ChannelSelect(indices)
        np.testing.assert_array_equal(np.asarray(layer([a, b])), full[..., indices])
    assert ChannelSelect([5, 6, 7])([a, b]).shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="`indices` must be < the 12 input channels"):
        ChannelSelect([12])([a, b])


def test_channel_runs_split_at_input_boundaries_and_gaps():
    from keras_nas.cnas.channel_select import channel_runs, channel_segments

    assert channel_runs([0, 1, 2, 5, 6, 3], [4, 3]) == [(0, 0, 3), (1, 1, 3), (0, 3, 4)]
    assert channel_runs([3, 4, 5], [4, 3]) == [(0, 3, 4), (1, 0, 2)]
    assert channel_segments([(0, 0, 3), (0, 5, 6), (1, 0, 2)]) == [(0, [(0, 0, 3), (0, 5, 6)]), (1, [(1, 0, 2)])]


def test_multi_input_channel_select_survives_keras_saving(tmp_path):
    a, b = keras.Input((2, 2, 3)), keras.Input((2, 2, 4))
    model = keras.Model([a, b], ChannelSelect([0, 4, 5, 2], name="s")([a, b]))
    path = str(tmp_path / "s.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("s").get_config() == model.get_layer("s").get_config()
    x = [np.arange(12.0).reshape(1, 2, 2, 3), np.arange(16.0).reshape(1, 2, 2, 4) + 100]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
