"""CNAS with a latency target (issue 24): the pruning goes on until the sparse model's latency meets it."""

import json
import subprocess
import sys

import keras
import pytest

from keras_nas import cli
from keras_nas import data as data_lib
from keras_nas.cnas.channel_pruning import ChannelPruning
from keras_nas.cnas.nasnet_space import channel_nasnet


@pytest.fixture(scope="module")
def synthetic():
    return data_lib.load("synthetic", input_shape=(8, 8, 1), num_classes=3, num_examples=96, batch_size=16)


def _model(data):
    model, topology = channel_nasnet(1, 2, 4, input_shape=data.input_shape, num_classes=3, return_topology=True)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    return model, topology


def _channels_latency(graph):
    """A stand-in for the measured latency: 0.01 ms per kept input channel."""
    return lambda masks: 0.01 * graph.input_channels(masks)


def test_a_latency_target_alone_prunes_in_full_steps_until_it_is_met(synthetic):
    model, topology = _model(synthetic)
    callback = ChannelPruning(topology, None, gamma=0.2, saliency_batches=2, saliency_data=synthetic.train,
                              verbose=0, target_latency_ms=0.5)
    callback.set_latency_fn(_channels_latency(callback.graph))
    model.fit(synthetic.train, epochs=50, callbacks=[callback], verbose=0)
    history = callback.history
    assert callback.reached and history[-1]["latency_ms"] <= 0.5 < history[-2]["latency_ms"]
    assert [r["latency_ms"] for r in history] == pytest.approx([0.01 * r["remaining"] for r in history])
    # no weight target: each iteration removes gamma of what is left (at least one), never a capped last step
    before = callback.graph.input_channels(callback.graph.full_masks())
    for record in history:
        assert record["removed"] == max(1, round(0.2 * before))
        before = record["remaining"]


def test_with_both_targets_both_must_hold(synthetic):
    model, topology = _model(synthetic)
    callback = ChannelPruning(topology, 0.9, gamma=0.2, saliency_batches=2, saliency_data=synthetic.train,
                              verbose=0, target_latency_ms=0.5)
    callback.set_latency_fn(_channels_latency(callback.graph))
    model.fit(synthetic.train, epochs=50, callbacks=[callback], verbose=0)
    history = callback.history
    assert history[0]["sparsity"] <= 0.9  # the weight target held early, the latency target later
    assert history[-1]["latency_ms"] <= 0.5 < history[-2]["latency_ms"]


def test_latency_target_arguments_are_checked_and_round_trip(synthetic):
    _, topology = _model(synthetic)
    with pytest.raises(ValueError, match="`target_sparsity` or `target_latency_ms` must be given"):
        ChannelPruning(topology, None)
    with pytest.raises(ValueError, match=r"`target_latency_ms` must be a float > 0. Received: target_latency_ms=0"):
        ChannelPruning(topology, None, target_latency_ms=0)
    callback = ChannelPruning(topology, None, target_latency_ms=1.5, saliency_data=synthetic.train)
    config = callback.get_config()
    again = ChannelPruning(**config)
    assert again.get_config() == config and again.target_latency_ms == 1.5 and again.target_params is None
    with pytest.raises(ValueError, match="`latency_fn` must be set"):
        again.meets_targets(again.graph.full_masks())


def test_cli_refuses_a_bad_latency_target_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "cnas", "--out", str(out), "--target-latency-ms", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("keras-nas: error: `--target-latency-ms` must be a float > 0. "
                                               "Received: --target-latency-ms 0")
    assert not out.exists()


@pytest.mark.slow
def test_a_cnas_search_with_a_latency_target_meets_it_on_this_machine(tmp_path):
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "keras_nas", "search", "cnas", "--out", str(out), "--epochs", "1",
                    "--final-epochs", "1", "--gamma", "0.3", "--saliency-batches", "2", "--no-baselines",
                    "--target-latency-ms", "1000"], check=True, capture_output=True)
    results = json.loads((out / "results.json").read_text())
    report = results["latency"]
    assert report["met"] and 0 < report["measured_ms"] <= 1000 and report["oneshot_ms"] > 0
    assert report["margin"] == 0.1 and report["search_target_ms"] == pytest.approx(900)
    assert results["target_sparsity"] is None and results["iterations"] == []  # met before any pruning
