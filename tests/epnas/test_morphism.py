"""Identity start of an inserted EPNAS layer (Net2Net "deeper"): kernels, batch norm, the child keeps the
parent's function, the tuner and CLI options."""

import keras
import numpy as np
import pytest

from keras_nas import cli
from keras_nas.engine import results_folder
from keras_nas.epnas.parameter_store import ParameterStore
from keras_nas.epnas import command as epnas
from keras_nas.epnas.space import EPNASSpace
from keras_nas.epnas.morphism import identity_kernel, passthrough_batch_norm


def _layer(kind, channels, src, activation="relu", width=3):
    return {"type": kind, "filter_width": width, "pool_width": 2, "channels": channels, "activation": activation,
            "src1": src, "src2": -1}


def _insert(place, kind=0, channels=0, activation=0, width=1):
    return {"scale": [0] * 4, "insert": {"kind": 1, "type": kind, "filter_width": width, "pool_width": 0,
                                         "channels": channels, "activation": activation, "place": place, "skip": 0}}


def test_identity_kernel_copies_the_shared_channels_at_the_centre_tap():
    kernel = identity_kernel((3, 3, 2, 3))
    assert kernel.shape == (3, 3, 2, 3) and kernel.sum() == 2
    np.testing.assert_array_equal(kernel[1, 1], [[1, 0, 0], [0, 1, 0]])
    assert identity_kernel((1, 1, 4, 2))[0, 0].tolist() == [[1, 0], [0, 1], [0, 0], [0, 0]]


def test_passthrough_batch_norm_undoes_its_normalisation():
    gamma, beta, mean, variance = passthrough_batch_norm([1.0, -2.0], [4.0, 0.25], 3, epsilon=1e-3)
    np.testing.assert_allclose(gamma, [np.sqrt(4.001), np.sqrt(0.251), 0.0])
    np.testing.assert_allclose(beta, [1.0, -2.0, 0.0])
    np.testing.assert_allclose(mean, [1.0, -2.0, 0.0])
    np.testing.assert_allclose(variance, [4.0, 0.25, 1.0])
    x = np.array([3.0, 0.5])
    np.testing.assert_allclose((x - mean[:2]) / np.sqrt(variance[:2] + 1e-3) * gamma[:2] + beta[:2], x)
    selu = passthrough_batch_norm([1.0], [1.0], 1, epsilon=0.0, scale=2.0)
    assert selu[0][0] == pytest.approx(0.5) and selu[1][0] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def parent_store(tmp_path_factory):
    keras.utils.set_random_seed(0)
    space = EPNASSpace("layers", channels=(16, 32, 64), max_layers=6)
    parent = [_layer("conv2d", 16, 0), _layer("MaxPool2d", 16, 1), _layer("conv2d", 32, 2)]
    model = space.build(parent, (8, 8, 1), 5)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking batch-norm statistics and affine parameters
        if layer.name.endswith("__bn"):
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                               rng.uniform(0.5, 2, c)])
    store = ParameterStore(tmp_path_factory.mktemp("shared"))
    store.contribute(model, "parent", step=0, accuracy=0.5)
    store.consolidate(0)
    images = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    return space, parent, model.predict(images, verbose=0), store, images


@pytest.mark.parametrize(
    "action, name",
    [
        (_insert(1, channels=1), "conv 16 -> 32 channels after the first layer"),
        (_insert(3, channels=2, width=0), "1x1 conv 32 -> 64 at the end"),
        (_insert(3, channels=0), "conv 32 -> 16: half the channels pass"),
        (_insert(1, kind=1), "separable conv"),
        (_insert(2, channels=1, activation=1), "crelu"),
        (_insert(3, channels=1, activation=3), "selu"),
    ],
)
def test_identity_insert_keeps_the_parents_function(parent_store, action, name):
    space, parent, expected, store, images = parent_store
    child = space.apply_action(parent, action)
    positions = space.parent_positions(parent, action)
    model = space.build(child, (8, 8, 1), 5)
    store.load_into(model, key_map=space.sharing_key_map(child, positions))
    fresh = model.predict(images, verbose=0)
    assert space.init_inserted(model, child, positions, inputs=images) == 1
    got = model.predict(images, verbose=0)
    if "half" in name:  # 16 of the 32 channels are cut (the parent's function is lost): the 16 pass through
        key = f"L3_{child[3]['type']}"
        probe = keras.Model(model.input, [model.get_layer(f"{key}__conv").input,
                                           model.get_layer(f"{key}__act_relu").output])
        x, y = (keras.ops.convert_to_numpy(t) for t in probe(images, training=False))
        np.testing.assert_allclose(y, x[..., :16], atol=1e-4)
    else:
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=name)
        assert np.abs(fresh - expected).max() > 1e-3


def test_identity_insert_without_data_is_exact_in_inference(parent_store):
    space, parent, expected, store, images = parent_store
    action = _insert(1, channels=0)
    child, positions = space.apply_action(parent, action), space.parent_positions(parent, action)
    model = space.build(child, (8, 8, 1), 5)
    store.load_into(model, key_map=space.sharing_key_map(child, positions))
    space.init_inserted(model, child, positions)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-4)


def test_only_inserted_convs_of_layer_search_are_touched():
    space = EPNASSpace("layers", channels=(16, 32), max_layers=6)
    arch = [_layer("conv2d", 16, 0), _layer("MaxPool2d", 16, 1), _layer("conv2d", 16, 2)]
    model = space.build(arch, (8, 8, 1), 3)
    before = [w.copy() for w in model.get_weights()]
    assert space.init_inserted(model, arch, [0, None, 1]) == 0  # an inserted pooling has no weights
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    module = EPNASSpace("module", max_layers=3, num_stages=1, cells_per_stage=1, filters=8)
    cell = [{"type": "conv-none", "filter_width": 3, "pool_width": 2, "channels": 8, "src1": 0, "src2": 0,
             "propagate": 1}]
    assert module.init_inserted(module.build(cell, (8, 8, 1), 3), cell, [None]) == 0


def test_tuner_validates_insert_init(tmp_path):
    from keras_nas.epnas.tuner import EPNASTuner

    with pytest.raises(ValueError, match=r"`insert_init` must be one of \['identity', 'fresh'\]. "
                                         r"Received: insert_init='zero'"):
        EPNASTuner(None, EPNASSpace(), (8, 8, 1), 10, insert_init="zero")


def _open(out, config, **kwargs):
    resumed, lock = results_folder.open_folder(out, config, command="keras-nas search epnas", **kwargs)
    lock.release()
    return resumed


def test_cli_insert_init_choices_and_old_results_folders_resume(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["search", "epnas", "--out", str(tmp_path / "x"), "--insert-init", "zero"])
    assert "--insert-init" in capsys.readouterr().err and not (tmp_path / "x").exists()
    parse = lambda argv: cli.parse(argv)[1]
    new = str(tmp_path / "new")
    assert epnas.run_config(parse(["search", "epnas", "--out", new]))["insert_init"] == "fresh"
    identity = parse(["search", "epnas", "--out", new, "--insert-init", "identity"])
    assert epnas.run_config(identity)["insert_init"] == "identity"
    # A folder written before the option existed: its config.json has no `insert_init`, and it ran with
    # fresh inserted layers. The same command resumes it; asking for identity layers there is refused.
    old = str(tmp_path / "old")
    legacy = epnas.run_config(parse(["search", "epnas", "--out", old]))
    del legacy["insert_init"]
    _open(old, legacy)
    config = epnas.run_config(parse(["search", "epnas", "--out", old]))
    assert _open(old, config, added_defaults=epnas.ADDED_DEFAULTS) is True
    config = epnas.run_config(parse(["search", "epnas", "--out", old, "--insert-init", "identity"]))
    with pytest.raises(ValueError, match="insert_init: 'fresh' -> 'identity'"):
        _open(old, config, added_defaults=epnas.ADDED_DEFAULTS)



def test_old_results_folders_resume_with_one_learning_rate(tmp_path):
    # Folders written before --shared-lr-scale trained every layer at one rate (1.0, still the default): the
    # same command resumes them; asking for another rate there is refused, the setting named.
    parse = lambda argv: cli.parse(argv)[1]
    old = str(tmp_path / "old")
    legacy = epnas.run_config(parse(["search", "epnas", "--out", old, "--prediction"]))
    assert legacy["shared_lr_scale"] == 1.0
    del legacy["shared_lr_scale"]
    _open(old, legacy)
    config = epnas.run_config(parse(["search", "epnas", "--out", old, "--prediction"]))
    assert _open(old, config, added_defaults=epnas.ADDED_DEFAULTS) is True
    config = epnas.run_config(parse(["search", "epnas", "--out", old, "--prediction", "--shared-lr-scale", "0.2"]))
    with pytest.raises(ValueError, match=r"shared_lr_scale: 1.0 -> 0.2\), written by keras_nas .* Give the earlier"):
        _open(old, config, added_defaults=epnas.ADDED_DEFAULTS)


def test_tuner_reads_inserted_positions(tmp_path):
    from keras_nas.epnas.oracle import EPNASOracle
    from keras_nas.epnas.tuner import EPNASTuner

    space = EPNASSpace("layers", max_layers=4, initial_layers=(2, 3), channels=(16, 32))
    oracle = EPNASOracle(space, episodes=1, branches=1, steps=1, action_units=16, seed=0)
    tuner = EPNASTuner(oracle, space, (8, 8, 1), 10, directory=str(tmp_path), project_name="t")
    assert tuner.insert_init == "fresh" and tuner.shared_lr_scale == 1.0
    assert tuner.parent_positions({"parent_positions": "[0, -1, 1]"}) == [0, None, 1]
    assert tuner.parent_positions({}) is None
