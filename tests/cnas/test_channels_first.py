"""Channels-first CNAS networks: same function and weights as channels last, saved and reloaded."""

import keras
import numpy as np
import pytest

from keras_nas import cnas
from keras_nas.cnas.channels_first_factorized_reduce import ChannelsFirstFactorizedReduce
from keras_nas.cnas.channel_select import ChannelSelect
from keras_nas.layers.factorized_reduce import FactorizedReduce
from keras_nas.cnas.nasnet_space import channel_nasnet
from tests.cnas.test_layout import pruned_model

SHAPE = (8, 8, 1)


def _build(**kwargs):
    return channel_nasnet(1, 3, 8, input_shape=SHAPE, num_classes=3, **kwargs)


def _pruned(seed=0, keep=0.5):
    return pruned_model(_build, seed=seed, keep=keep)


def test_channel_select_on_axis_1_equals_numpy_take_and_round_trips():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 5, 4, 4))
    indices = [4, 0, 1, 6, 7, 2]
    layer = ChannelSelect(indices, axis=1)
    expected = np.take(np.concatenate([a, b], axis=1), indices, axis=1)
    np.testing.assert_allclose(layer([a, b]), expected, rtol=1e-6)
    clone = ChannelSelect.from_config(layer.get_config())
    assert clone.axis == 1 and clone.indices == indices
    np.testing.assert_allclose(clone([a, b]), expected, rtol=1e-6)
    assert layer.compute_output_shape([(None, 3, 4, 4), (None, 5, 4, 4)]) == (None, 6, 4, 4)
    with pytest.raises(ValueError, match="axis"):
        ChannelSelect([0], axis=2)


@pytest.mark.parametrize("size", [8, 7])
def test_channels_first_factorized_reduce_equals_factorized_reduce_and_round_trips(size):
    x = np.random.default_rng(1).normal(size=(2, size, size, 6)).astype("float32")
    reference, layer = FactorizedReduce(8), ChannelsFirstFactorizedReduce(8)
    reference(x)
    layer(np.transpose(x, (0, 3, 1, 2)))
    layer.set_weights(reference.get_weights())
    for training in (False, True):
        got = np.transpose(layer(np.transpose(x, (0, 3, 1, 2)), training=training), (0, 2, 3, 1))
        np.testing.assert_allclose(got, reference(x, training=training), atol=1e-5)
    assert layer.compute_output_shape((None, 6, size, size)) == (None, 8, (size + 1) // 2, (size + 1) // 2)
    clone = ChannelsFirstFactorizedReduce.from_config(layer.get_config())
    clone(np.transpose(x, (0, 3, 1, 2)))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(np.transpose(x, (0, 3, 1, 2))), layer(np.transpose(x, (0, 3, 1, 2))))


def test_channels_first_sparse_nasnet_equals_masked_and_survives_keras_saving(tmp_path):
    model, graph, masks = _pruned()
    sparse, _ = cnas.materialize(model, graph, lambda sel: _build(selection=sel, data_format="channels_first"))
    assert sparse.count_params() == graph.count_params(masks)
    assert any(isinstance(layer, ChannelsFirstFactorizedReduce) for layer in sparse.layers)
    x = np.random.default_rng(2).normal(size=(3,) + SHAPE).astype("float32")
    expected = model(x, training=False)
    np.testing.assert_allclose(sparse(x, training=False), expected, atol=1e-5)
    path = str(tmp_path / "sparse.keras")
    sparse.save(path)
    np.testing.assert_array_equal(keras.saving.load_model(path)(x, training=False), sparse(x, training=False))


def test_channels_first_one_shot_without_masks_equals_channels_last_and_masked_is_refused():
    last, first = _build(masked=False), _build(masked=False, data_format="channels_first")
    first.set_weights(last.get_weights())
    x = np.random.default_rng(3).normal(size=(2,) + SHAPE).astype("float32")
    np.testing.assert_allclose(first(x, training=False), last(x, training=False), atol=1e-5)
    with pytest.raises(ValueError, match="data_format"):
        _build(data_format="channels_first")
    with pytest.raises(ValueError, match="data_format"):
        _build(masked=False, data_format="nchw")
