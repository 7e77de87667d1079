import numpy as np
import pytest

from keras_nas.epnas.parameter_store import ParameterStore, model_entries, shape_distance, splice
from keras_nas.epnas.space import EPNASSpace


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


def _conv(ch, src, kind="conv2d"):
    return {"type": kind, "filter_width": 3, "pool_width": 2, "channels": ch, "activation": "relu",
            "src1": src, "src2": -1}


def test_parent_positions_and_key_map_follow_insert_and_remove():
    from keras_nas.epnas.space import KINDS

    space = EPNASSpace("layers", channels=(16, 32), max_layers=5, min_layers=2)
    parent = [_conv(16, 0), _conv(32, 1), _conv(16, 2, "MaxPool2d")]
    keep = {"scale": [0] * space.partitions, "insert": {"kind": 0}}
    assert space.parent_positions(parent, keep) == [0, 1, 2]
    insert = {"kind": KINDS.index("insert"), "type": 0, "filter_width": 1, "pool_width": 0, "channels": 0,
              "activation": 0, "place": 1, "skip": 0}
    child = space.apply_action(parent, {"insert": insert})
    positions = space.parent_positions(parent, {"insert": insert})
    assert positions == [0, None, 1, 2]
    assert space.sharing_key_map(child, positions) == {
        "L0_conv2d": "L0_conv2d", "L1_conv2d": None, "L2_conv2d": "L1_conv2d", "L3_MaxPool2d": "L2_MaxPool2d"}
    # Places past the end append; remove at place p (clipped to the last layer) shifts the rest back.
    assert space.parent_positions(parent, {"insert": {**insert, "place": 7}}) == [0, 1, 2, None]
    assert space.parent_positions(parent, {"insert": {"kind": KINDS.index("remove"), "place": 0}}) == [1, 2]
    assert space.parent_positions(parent, {"insert": {"kind": KINDS.index("remove"), "place": 9}}) == [0, 1]
    # No-ops (insert at the maximum size, remove at the minimum size) keep every position.
    full = parent + [_conv(16, 3), _conv(16, 4)]
    assert space.parent_positions(full, {"insert": insert}) == [0, 1, 2, 3, 4]
    assert space.parent_positions(parent[:2], {"insert": {"kind": KINDS.index("remove"), "place": 0}}) == [0, 1]
    with pytest.raises(ValueError, match="one entry per element"):
        space.sharing_key_map(child, [0, 1])
    # Module mode: every cell's branch j reads its parent branch.
    module = EPNASSpace("module", num_stages=2, cells_per_stage=1)
    cell = [{"type": "conv-none", "filter_width": 3, "pool_width": 2, "channels": 8, "src1": 0, "src2": 0,
             "propagate": 1}]
    assert module.sharing_key_map(cell * 2, [None, 0]) == {
        "C0_B0_conv-none": None, "C0_B1_conv-none": "C0_B0_conv-none",
        "C1_B0_conv-none": None, "C1_B1_conv-none": "C1_B0_conv-none"}


def test_after_an_insert_the_layers_behind_it_load_their_parent_weights(tmp_path):
    from keras_nas.epnas.space import KINDS

    space = EPNASSpace("layers", channels=(16, 32), max_layers=5)
    parent = [_conv(16, 0), _conv(32, 1), _conv(16, 2)]
    trained = space.build(parent, (8, 8, 1), 10)
    store = ParameterStore(tmp_path)
    store.contribute(trained, "0", step=0, accuracy=0.9)
    store.consolidate(0)
    insert = {"kind": KINDS.index("insert"), "type": 0, "filter_width": 1, "pool_width": 0, "channels": 0,
              "activation": 0, "place": 1, "skip": 0}
    action = {"insert": insert}
    child = space.apply_action(parent, action)  # conv16 1x1 inserted after layer 0
    # Keyed by its own positions, every layer after the insert reads its neighbour's key: the child's
    # 32-channel L2 reads the parent's 16-channel L2 (padded), not its own parent layer L1.
    own = space.build(child, (8, 8, 1), 10)
    store.load_into(own)
    assert not np.array_equal(own.get_layer("L2_conv2d__conv").kernel.numpy(),
                              trained.get_layer("L1_conv2d__conv").kernel.numpy())
    assert own.get_layer("L2_conv2d__conv").kernel.shape[-1] == 32  # reads key L2: the parent's 16-channel L2
    # Keyed by the parent positions, each inherited layer gets exactly its parent's weights.
    model = space.build(child, (8, 8, 1), 10)
    fresh = model.get_layer("L1_conv2d__conv").kernel.numpy().copy()
    key_map = space.sharing_key_map(child, space.parent_positions(parent, action))
    fraction = store.load_into(model, key_map=key_map)
    for i, j in ((0, 0), (1, 2), (2, 3)):  # parent layer i is child layer j
        for role in ("conv", "bn"):
            for x, y in zip(model.get_layer(f"L{j}_conv2d__{role}").get_weights(),
                            trained.get_layer(f"L{i}_conv2d__{role}").get_weights()):
                np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(model.get_layer("L1_conv2d__conv").kernel.numpy(), fresh)  # new layer: fresh
    new_size = sum(w.size for n in ("L1_conv2d__conv", "L1_conv2d__bn") for w in model.get_layer(n).get_weights())
    total = sum(w.numpy().size for w in model.weights)
    assert fraction == pytest.approx(1 - new_size / total)
