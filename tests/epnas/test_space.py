import json

import keras
import numpy as np
import pytest

from keras_nas.epnas.space import KINDS, SCALES, EPNASSpace, architecture_from_json, architecture_to_json


def layer(type="conv2d", fw=3, pw=2, ch=16, act="relu", src1=0, src2=-1):
    return {"type": type, "filter_width": fw, "pool_width": pw, "channels": ch, "activation": act,
            "src1": src1, "src2": src2}


def branch(type="conv-conv", fw=3, pw=2, ch=8, src1=0, src2=0, propagate=1):
    return {"type": type, "filter_width": fw, "pool_width": pw, "channels": ch, "src1": src1, "src2": src2,
            "propagate": propagate}


def test_layer_encoding_builds_the_described_network():
    space = EPNASSpace("layers")
    arch = [layer(ch=32, act="crelu"), layer("MaxPool2d", src1=1), layer("dep-sep-conv2d", fw=5, ch=16, src1=2, src2=1),
            layer("add", src1=3, src2=0)]
    model = space.build(arch, (8, 8, 1), 10)
    names = {l.name: l for l in model.layers}
    assert model.output_shape == (None, 10)
    assert names["predictions"].activation.__name__ == "softmax"
    assert names["predictions"].dtype_policy.compute_dtype == "float32"
    # crelu: the conv makes channels / 2 and the concat restores them.
    assert names["L0_conv2d__conv"].filters == 16
    assert names["L0_conv2d__act_crelu"].output.shape[-1] == 32
    assert names["L1_MaxPool2d__pool"].output.shape[1:3] == (4, 4)
    assert names["L2_dep-sep-conv2d__conv"].kernel_size == (5, 5)
    # The skip from node 1 (8x8x32) into a 4x4x16 output is matched by a strided 1x1 conv.
    assert names["L2_dep-sep-conv2d__skip"].strides == (2, 2)
    assert names["L2_dep-sep-conv2d__add"].output.shape[1:] == (4, 4, 16)
    # `add` of node 3 (4x4x16) and the input (8x8x1).
    assert names["L3_add__add"].output.shape[1:] == (4, 4, 16)
    x = np.ones((2, 8, 8, 1), "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0).sum(axis=-1), 1.0, rtol=1e-5)


def test_module_encoding_builds_stacked_cells():
    space = EPNASSpace("module", num_stages=2, cells_per_stage=2, filters=8)
    cell = [branch("conv-maxpool"), branch("1x7-7x1-none", src1=1, propagate=1), branch("avgpool-none", src1=0)]
    model = space.build(cell, (8, 8, 3), 5)
    names = {l.name for l in model.layers}
    assert {"C0_B0_conv-maxpool__op1_conv", "C0_B0_conv-maxpool__op2_pool", "C3_B1_1x7-7x1-none__op1_conv7x1",
            "C3_out__conv", "reduce1__pool"} <= names
    assert model.get_layer("C2_out__conv").filters == 16  # channels double in stage 2
    assert model.get_layer("C2_B0_conv-maxpool__op1_conv").filters == 16
    assert model.output_shape == (None, 5)


def test_json_round_trip_and_saving(tmp_path):
    space = EPNASSpace("layers")
    arch = space.random_architecture(np.random.default_rng(3))
    assert architecture_from_json(architecture_to_json(arch)) == arch
    model = space.build(arch, (8, 8, 1), 10)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize(
    "arch, message",
    [
        ([layer(type="conv3d"), layer(src1=1)], r"`type` must be one of .*conv3d"),
        ([layer(), layer(src1=2)], r"layer 1: `src1` must be an int in \[0, 1\]"),
        ([layer(), layer(src2=-2)], r"`src2` must be an int in \[-1, 1\]"),
        ([layer(ch=17), layer(src1=1)], r"`channels` must be one of"),
        ([layer()], r"must have 2..12 layers. Received: 1 layers"),
        ([layer(), {"type": "conv2d"}], r"missing \["),
        ([layer(), layer(act="tanh", src1=1)], r"`activation` must be one of"),
    ],
)
def test_invalid_layer_encodings_are_named(arch, message):
    with pytest.raises(ValueError, match=message):
        EPNASSpace("layers").validate(arch)


def test_invalid_module_encoding():
    with pytest.raises(ValueError, match=r"branch 0: `src2` must be an int in \[0, 0\]"):
        EPNASSpace("module").validate([branch(src2=1)])
    with pytest.raises(ValueError, match="`propagate` must be one of"):
        EPNASSpace("module").validate([branch(propagate=2)])


def test_space_arguments_are_checked():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        EPNASSpace("cells")
    with pytest.raises(ValueError, match="`initial_layers`"):
        EPNASSpace("layers", max_layers=4, initial_layers=(3, 6))


def _random_action(space, arch, rng):
    masks = space.action_masks(arch)
    insert = {name: int(rng.choice([i for i, m in enumerate(masks[name]) if m])) for name, _ in space.action_heads()}
    return {"scale": [int(rng.integers(len(SCALES))) for _ in range(space.partitions)], "insert": insert}


@pytest.mark.parametrize("mode", ["layers", "module"])
def test_every_action_keeps_the_network_valid(mode):
    space = EPNASSpace(mode, max_layers=6 if mode == "layers" else 4, initial_layers=(2, 4) if mode == "layers" else None)
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(40):
        arch = space.random_architecture(rng)
        for _ in range(6):
            arch = space.apply_action(arch, _random_action(space, arch, rng))  # validates
            sizes.add(len(arch))
    assert min(sizes) == space.min_layers and max(sizes) == space.max_layers
    # A sample of the morphed networks builds.
    space.build(arch, (8, 8, 1), 10)


def test_insert_rewires_the_path_and_shifts_sources():
    space = EPNASSpace("layers")
    arch = [layer(), layer(src1=1), layer(src1=2, src2=1)]
    insert = {"kind": KINDS.index("insert"), "type": 0, "filter_width": 1, "pool_width": 0, "channels": 1,
              "activation": 0, "place": 1, "skip": 0}
    out = space.apply_action(arch, {"scale": [0] * space.partitions, "insert": insert})
    assert len(out) == 4
    assert out[1] == layer(ch=32, src1=1)  # reads node 1, writes node 2
    assert out[2]["src1"] == 2  # the old layer 1 now reads the inserted layer
    assert (out[3]["src1"], out[3]["src2"]) == (3, 1)  # a skip from node 1 still comes from node 1


def test_remove_reconnects_to_the_removed_layers_input():
    space = EPNASSpace("layers")
    arch = [layer(), layer(src1=1), layer(src1=2, src2=2)]
    out = space.apply_action(arch, {"insert": {"kind": KINDS.index("remove"), "place": 1}})
    assert out == [layer(), layer(src1=1, src2=1)]
    # Place past the end removes the last layer; remove at the minimum size is a no-op.
    assert space.apply_action(out, {"insert": {"kind": 2, "place": 16}}) == out


def test_scale_moves_one_step_per_partition():
    space = EPNASSpace("layers", partitions=2)
    arch = [layer(ch=16), layer("MaxPool2d", src1=1), layer(ch=256, fw=7, src1=2), layer(ch=32, src1=3)]
    up, down = SCALES.index("channels_up"), SCALES.index("width_up")
    out = space.apply_action(arch, {"scale": [up, down]})
    assert [e["channels"] for e in out] == [32, 32, 256, 32]
    assert out[2]["filter_width"] == 7 and out[3]["filter_width"] == 5
    assert space.partition(5) == [[0, 1, 2], [3, 4]]


def test_module_insert_cuts_the_sources_output():
    space = EPNASSpace("module")
    cell = [branch(), branch(src1=1)]
    insert = {"kind": 1, "type": 3, "filter_width": 1, "pool_width": 0, "channels": 0, "place": 9, "src1": 2,
              "src2": 0, "propagate": 1}
    out = space.apply_action(cell, {"insert": insert})
    assert out[2]["src1"] == 2 and out[2]["type"] == "conv-none"
    assert out[1]["propagate"] == 0 and out[2]["propagate"] == 1


def test_masks_follow_the_size():
    space = EPNASSpace("layers", max_layers=4, initial_layers=(2, 3))
    masks = space.action_masks([layer(), layer(src1=1)])
    assert sum(masks["place"]) == 2 + 5  # D_L: L + 5 places
    assert masks["kind"] == [1, 1, 0]  # no remove at the minimum size
    assert space.action_masks([layer()] + [layer(src1=i) for i in range(1, 4)])["kind"] == [1, 0, 1]
    assert len(space.features([layer(), layer(src1=1, src2=0)])[1]) == len(space.feature_sizes())
    json.dumps(masks)


def test_space_config_round_trip():
    space = EPNASSpace("module", max_layers=4, channels=(8, 16), num_stages=2, cells_per_stage=1, filters=8)
    config = space.get_config()
    assert EPNASSpace.from_config(json.loads(json.dumps(config))).get_config() == config


def test_random_networks_start_with_a_convolution():
    space = EPNASSpace("layers")
    rng = np.random.default_rng(0)
    assert all(space.random_architecture(rng)[0]["type"] in ("conv2d", "dep-sep-conv2d") for _ in range(20))
