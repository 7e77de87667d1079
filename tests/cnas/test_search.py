"""CNAS search procedure: the pruning callback stops at rho, checkpoints resume with masks, CLI checks."""

import argparse
import json
import os

import keras
import numpy as np
import pytest

from keras_nas import data as data_lib
from keras_nas import cnas
from keras_nas.cnas.channel_pruning import ChannelPruning
from keras_nas.engine.checkpoint import EpochCheckpoint
from keras_nas.engine import options
from keras_nas.cnas import command
from keras_nas.cnas.nasnet_space import channel_nasnet
from keras_nas.training import sgdr_learning_rate


@pytest.fixture(scope="module")
def synthetic():
    return data_lib.load("synthetic", input_shape=(8, 8, 1), num_classes=3, num_examples=96, batch_size=16)


def _model(data):
    model, topology = channel_nasnet(1, 2, 4, input_shape=data.input_shape, num_classes=3, return_topology=True)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    return model, topology


def test_pruning_stops_when_rho_is_reached(synthetic):
    model, topology = _model(synthetic)
    callback = ChannelPruning(topology, 0.7, gamma=0.2, saliency_batches=2, saliency_data=synthetic.train, verbose=0)
    model.fit(synthetic.train, epochs=50, callbacks=[callback], verbose=0)
    graph = callback.graph
    sparsities = [r["sparsity"] for r in callback.history]
    assert sparsities[-1] <= 0.7 < sparsities[-2]
    assert graph.sparsity(cnas.read_masks(model, graph)) == pytest.approx(sparsities[-1])
    assert len(callback.history) == len(sparsities) and callback.reached
    # gamma of the remaining input channels per iteration (before the last, capped one)
    first = callback.history[0]
    assert first["removed"] == round(0.2 * graph.input_channels(graph.full_masks()))


def test_checkpoint_restores_weights_masks_optimizer_and_epoch(synthetic, tmp_path):
    model, topology = _model(synthetic)
    graph = cnas.ChannelGraph(topology)
    callback = ChannelPruning(topology, 0.5, gamma=0.2, saliency_batches=2, saliency_data=synthetic.train, verbose=0)
    checkpoint = EpochCheckpoint(str(tmp_path), state_fn=lambda: {"iterations": callback.history})
    model.fit(synthetic.train, epochs=2, callbacks=[callback, checkpoint], verbose=0)
    masks = cnas.read_masks(model, graph)
    keras.backend.clear_session()
    fresh, _ = _model(synthetic)
    start, extra = EpochCheckpoint(str(tmp_path)).restore(fresh)
    assert start == 2 and len(extra["iterations"]) == 2
    restored = cnas.read_masks(fresh, graph)
    assert all(np.array_equal(masks[n], restored[n]) for n in graph.edges)
    for a, b in zip(model.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert sorted(os.listdir(tmp_path)) == ["epoch0002.optimizer.npz", "epoch0002.weights.h5", "state.json"]


def test_callbacks_get_config_round_trip(synthetic):
    _, topology = _model(synthetic)
    callback = ChannelPruning(topology, 0.46, gamma=0.1, saliency_batches=7, finetune_epochs=2,
                              saliency_form="reciprocal")
    config = callback.get_config()
    assert config["saliency_form"] == "reciprocal"
    again = ChannelPruning(**json.loads(json.dumps(config)))
    assert again.get_config() == config and again.graph.total_params == callback.graph.total_params
    checkpoint = EpochCheckpoint("runs/x")
    assert EpochCheckpoint(**checkpoint.get_config()).directory == "runs/x"


def test_sgdr_restarts_at_t0_then_t0_times_tmul():
    lr = lambda e: sgdr_learning_rate(e, learning_rate=0.05, min_learning_rate=1e-4, t_0=10, t_mult=2)  # noqa: E731
    assert lr(0) == pytest.approx(0.05) and lr(10) == pytest.approx(0.05) and lr(30) == pytest.approx(0.05)
    assert lr(5) == pytest.approx((0.05 + 1e-4) / 2)
    assert lr(20) == pytest.approx((0.05 + 1e-4) / 2)  # half of the 20-epoch second cycle
    assert lr(29) < lr(28) < lr(11)


def _args(**overrides):
    """The CNAS settings at their defaults (as `keras-nas search cnas` would pass them), with `overrides`."""
    from keras_nas.engine import common_options

    lists = (common_options.DATA_OPTIONS, common_options.FOLDER_OPTIONS, common_options.RUNTIME_OPTIONS, command.OPTIONS)
    values = {k: v for option_list in lists for k, v in options.defaults(option_list).items()}
    return argparse.Namespace(**{**values, "verbose": 0, **overrides})


def _refusal(*argv):
    """The one-line message `keras-nas search cnas ARGV` refuses with (nothing is run)."""
    from keras_nas import cli

    with pytest.raises(ValueError) as info:
        cli.parse(["search", "cnas", *argv])
    return options.render(info.value, options.cli_spelling)


@pytest.mark.parametrize("argv, message", [
    (["--sparsity", "1.0"], "`--sparsity` must be a float in (0, 1). Received: --sparsity 1.0"),
    (["--sparsity", "0"], "`--sparsity` must be a float in (0, 1). Received: --sparsity 0"),
    (["--gamma", "1.2"], "`--gamma` must be a float in (0, 1). Received: --gamma 1.2"),
    (["--init-channels", "7"], "`--init-channels` must be even and divisible by `--ops-per-node`. "
                               "Received: --init-channels 7, --ops-per-node 2"),
    (["--final-epochs", "0"], "`--final-epochs` must be an int >= 1. Received: --final-epochs 0"),
    (["--t0", "0"], "`--t0` must be an int >= 1. Received: --t0 0"),
    (["--saliency-form", "inverse"], "`--saliency-form` must be one of ['taylor', 'reciprocal']. "
                                     "Received: --saliency-form inverse"),
    (["--max-failures", "5"], "`--max-failures` does not apply here: CNAS is one one-shot search, not a set of "
                              "trials; a diverged phase stops the search with its reason. Received: --max-failures 5"),
    (["--chief", "host:8000", "--worker-id", "chief"], "`--chief` does not apply here: CNAS is one one-shot search, "
     "not a set of trials; use `--strategy` mirrored to spread it over local devices. Received: --chief host:8000"),
])
def test_options_are_checked_before_anything_is_written(argv, message):
    assert _refusal(*argv) == message


def test_the_cli_rejects_rho_below_what_the_network_can_reach(tmp_path):
    from keras_nas import cli

    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        cli.main(["search", "cnas", "--sparsity", "0.01", "--out", str(out)])
    assert not out.exists()


def test_dense_baseline_is_the_closest_narrower_network():
    args = _args(init_channels=8)
    widths, params = command.dense_baseline(args, (8, 8, 1), 10, 16000)
    bigger = channel_nasnet(1, 3, widths["channels"] + 2, input_shape=(8, 8, 1), masked=False).count_params()
    smaller = channel_nasnet(1, 3, widths["channels"] - 2, input_shape=(8, 8, 1), masked=False).count_params()
    assert abs(params - 16000) <= min(abs(bigger - 16000), abs(smaller - 16000))


def test_sparse_data_format_resolves_per_space_and_channels_first_is_nasnet_only():
    assert command.sparse_overrides(_args()) == {"data_format": "channels_first"}
    assert command.sparse_overrides(_args(space="densenet-bc")) == {}
    assert command.sparse_overrides(_args(sparse_data_format="channels_last")) == {"data_format": "channels_last"}
    assert _refusal("--space", "densenet-bc", "--sparse-data-format", "channels_first").startswith(
        "`--sparse-data-format` channels_first applies to `--space` nasnet only.")


def test_the_cli_and_the_pruning_module_offer_the_same_saliency_forms():
    assert command.SALIENCY_FORMS == cnas.SALIENCY_FORMS
    assert _args().saliency_form == "taylor"
    with pytest.raises(ValueError, match="`saliency_form` must be one of \\['taylor', 'reciprocal'\\]. Received: "
                                         "saliency_form='inverse'"):
        ChannelPruning({"fixed_params": 0}, 0.5, saliency_form="inverse")


def test_reciprocal_form_prunes_the_largest_accumulated_reciprocal(synthetic):
    """One iteration of each form on the same network and data, checked against the raw saliency."""
    model, topology = _model(synthetic)
    graph = cnas.ChannelGraph(topology)
    layers = cnas.mask_layers(model, graph)
    full = graph.full_masks()
    batches = synthetic.train.take(2).cache()  # the same two minibatches every time (train reshuffles)
    list(batches)
    raw = {form: dict(zip(graph.edges, cnas.taylor_saliency(model, layers, batches, 2, form=form)))
           for form in cnas.SALIENCY_FORMS}
    chosen = {}
    for form in cnas.SALIENCY_FORMS:
        callback = ChannelPruning(topology, 0.9, gamma=0.2, saliency_batches=2, saliency_data=batches,
                                  verbose=0, saliency_form=form)
        callback.set_model(model)
        cnas.write_masks(model, graph, full)
        callback.on_epoch_begin(0)
        new = cnas.read_masks(model, graph)
        importance = cnas.channel_importance(raw[form], full, form)
        expected, _ = cnas.zero_least_salient(graph, full, importance, 0.2, callback.target_params)
        assert all(np.array_equal(new[n], expected[n]) for n in graph.edges)
        # The first channel to go: the lowest normalised |x dx|, or the largest normalised 1/|x dx|.
        normalised = cnas.normalize_layerwise(raw[form], full)
        flat = [(normalised[n][i], n, i) for n in graph.edges for i in range(len(full[n]))]
        value, name, i = (min if form == "taylor" else max)(flat)
        assert new[name][i] == 0
        chosen[form] = {(n, i) for n in graph.edges for i in np.flatnonzero(new[n] == 0)}
    assert chosen["taylor"] != chosen["reciprocal"]  # the forms rank across layers differently


def test_a_phase_with_nothing_to_fit_still_saves_its_weights_and_resumes(tmp_path):
    # A search whose one-shot network already meets its targets fits nothing in the "search" phase; the phase must
    # still leave its weights and summary (it once failed writing them into a folder no checkpoint had made).
    import types

    import keras
    import tensorflow as tf

    from keras_nas.cnas import command

    x, y = np.zeros((8, 4, 4, 1), "float32"), np.zeros((8,), "int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    dataset = types.SimpleNamespace(train=data, validation=data, test=data)
    args = types.SimpleNamespace(momentum=0.9, weight_decay=0.0, jit_compile=False, verbose=0)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    run = dict(epochs=3, lr_fn=lambda epoch: 0.1, args=args, strategy=None, learning_rate=0.1,
               skip_fit=lambda: True)
    done = command.train_phase("search", model, dataset, str(tmp_path), **run)
    assert done["epochs_done"] == 0 and (tmp_path / "search" / "final.weights.h5").exists()
    assert command.train_phase("search", model, dataset, str(tmp_path), **run) == done  # read back, not redone
