import numpy as np
import pytest

from keras_nas.parameter_store import ParameterStore, model_entries, shape_distance, splice
from keras_nas.spaces.epnas import EPNASSpace


def test_splice_pads_and_crops():
    kernel = np.arange(9, dtype="float32").reshape(3, 3, 1, 1)
    big = splice(kernel, (5, 5, 2, 3), spatial_dims=2)
    assert big.shape == (5, 5, 2, 3)
    np.testing.assert_array_equal(big[1:4, 1:4, 0, 0], kernel[:, :, 0, 0])  # centred
    assert big[0].sum() == 0 and big[:, :, 1].sum() == 0 and big[:, :, :, 1:].sum() == 0
    small = splice(kernel, (1, 1, 1, 1), spatial_dims=2)
    assert small[0, 0, 0, 0] == 4  # the centre tap
    init = np.full((4,), 7.0)
    np.testing.assert_array_equal(splice(np.array([1.0, 2.0]), (4,), init=init), [1, 2, 7, 7])
    np.testing.assert_array_equal(splice(np.array([1.0, 2.0, 3.0]), (2,)), [1, 2])
    with pytest.raises(ValueError, match="same rank"):
        splice(np.ones((2, 2)), (2,))


def test_shape_distance():
    assert shape_distance([[3, 3, 8, 16]], [[3, 3, 8, 16]]) == 0
    assert shape_distance([[3, 3, 8, 16]], [[3, 3, 8, 32]]) < shape_distance([[3, 3, 8, 16]], [[3, 3, 8, 64]])
    assert shape_distance([[3]], [[3], [3]]) == float("inf")


def _layers(ch, fw=3):
    return [{"type": "conv2d", "filter_width": fw, "pool_width": 2, "channels": ch, "activation": "relu",
             "src1": 0, "src2": -1},
            {"type": "conv2d", "filter_width": 3, "pool_width": 2, "channels": 16, "activation": "relu",
             "src1": 1, "src2": -1}]


def test_clash_keeps_the_more_accurate_child_and_loads_spliced(tmp_path):
    space = EPNASSpace("layers")
    a = space.build(_layers(16), (8, 8, 1), 10)
    b = space.build(_layers(16), (8, 8, 1), 10)
    assert set(model_entries(a)) == {"L0_conv2d", "L1_conv2d", "predictions"}
    store = ParameterStore(tmp_path)
    store.contribute(a, "0", step=0, accuracy=0.5)
    store.contribute(b, "1", step=0, accuracy=0.8)
    assert store.consolidate(0) == {"keys": 3, "children": 2}
    assert store.index()["L0_conv2d"][next(iter(store.index()["L0_conv2d"]))]["trial_id"] == "1"
    # Same shapes: an exact copy of the winner.
    c = space.build(_layers(16), (8, 8, 1), 10)
    assert store.load_into(c) == pytest.approx(1.0)
    for x, y in zip(c.weights, b.weights):  # the classifier too: an identical child predicts identically
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    # Scaled layer 0 (32 channels, 5x5): spliced/padded from the 16-channel 3x3 kernel.
    d = space.build(_layers(32, fw=5), (8, 8, 1), 10)
    fresh = d.get_layer("L0_conv2d__conv").kernel.numpy().copy()
    store.load_into(d)
    kernel = d.get_layer("L0_conv2d__conv").kernel.numpy()
    np.testing.assert_array_equal(kernel[1:4, 1:4, :, :16], b.get_layer("L0_conv2d__conv").kernel.numpy())
    np.testing.assert_array_equal(kernel[:, :, :, 16:], fresh[:, :, :, 16:])  # padded with the fresh init
    gamma = d.get_layer("L0_conv2d__bn").gamma.numpy()
    np.testing.assert_array_equal(gamma[:16], b.get_layer("L0_conv2d__bn").gamma.numpy())
    # A later, less accurate child with the same key and shape replaces the entry (new step).
    store.contribute(a, "2", step=1, accuracy=0.1)
    store.consolidate(1)
    assert next(iter(store.index()["L0_conv2d"].values()))["trial_id"] == "2"


def test_store_arguments(tmp_path):
    with pytest.raises(ValueError, match="`max_variants` must be a positive int"):
        ParameterStore(tmp_path, max_variants=0)
    empty = ParameterStore(tmp_path / "none")
    assert empty.load_into(EPNASSpace("layers").build(_layers(16), (8, 8, 1), 10)) == 0.0


def test_consolidating_the_same_step_twice_keeps_the_values(tmp_path):
    space = EPNASSpace("layers")
    a = space.build(_layers(16), (8, 8, 1), 10)
    store = ParameterStore(tmp_path)
    for _ in range(2):  # e.g. a step merged again after a crash
        store.contribute(a, "0", step=0, accuracy=0.5)
        store.consolidate(0)
    assert store.load_into(space.build(_layers(16), (8, 8, 1), 10)) == pytest.approx(1.0)
