"""The cnas latency table (issue 24): counts of a sparse network, their fit, and the latency a channel costs."""

import json

import numpy as np
import pytest

from keras_nas import cli, latency
from keras_nas.cnas import latency_model
from keras_nas.cnas.channel_graph import ChannelGraph
from keras_nas.cnas.densenet_space import densenet_bc
from keras_nas.cnas.layout import channel_layout
from keras_nas.cnas.nasnet_space import channel_nasnet
from keras_nas.cnas.progressive import zero_least_salient

KW = dict(cells_per_stage=1, nodes=1, channels=4, stages=1, input_shape=(4, 4, 1), num_classes=3)


def _table(overhead=0.5, **entries):
    values = {f: 0.0 for f in latency_model.FEATURES}
    values.update(entries)
    return {"space": "cnas", "device": {}, "runtime": "tflite", "threads": 1, "versions": {}, "created": "",
            "config": {}, "overhead_ms": overhead,
            "entries": {latency_model.feature_key(f): v for f, v in values.items()}}


def _sparse(masks=None):
    model, topology = channel_nasnet(**KW, return_topology=True)
    graph = ChannelGraph(topology)
    masks = graph.full_masks() if masks is None else masks
    selection = channel_layout(topology, graph.selection(masks))
    return channel_nasnet(**KW, selection=selection, data_format="channels_last"), model, graph


def test_layer_features_count_a_sparse_network_by_hand():
    sparse, _, _ = _sparse()
    counts = latency_model.layer_features(sparse)
    # One cell on a 4x4 stem of 4 channels (s = 16 pixels): two 1x1 pre-processing convs 4 -> 4 (ReLU first);
    # one node reading [d_a, d_b] (8 channels, two slices and their concatenation), its ReLU and 3x3 depthwise
    # conv, two share slices of 4 channels and two pointwise convs 4 -> 2; the cell output concatenates them.
    assert counts["conv"] == 4
    assert counts["conv_kmac"] == pytest.approx((2 * 16 * 4 * 4 + 2 * 16 * 4 * 2) / 1e3)
    assert counts["depthwise"] == 1 and counts["depthwise_kmac"] == pytest.approx(16 * 8 * 9 / 1e3)
    assert counts["slice"] == 4 and counts["concat"] == 2 and counts["relu"] == 3 and counts["reduce"] == 0
    # Elements: convs in + out (2 x 128, depthwise 256, pointwise 2 x 96), slices out (128 + 2 x 64), the
    # concatenation out (64), ReLUs out (2 x 64 + 128).
    assert counts["kelement"] == pytest.approx((256 + 256 + 192 + 256 + 64 + 256) / 1e3)


def test_predict_latency_of_a_cnas_model_sums_costs_per_unit():
    sparse, _, _ = _sparse()
    table = _table(overhead=0.5, conv=0.01, depthwise_kmac=0.1, slice=0.002)
    counts = latency_model.layer_features(sparse)
    expected = 0.5 + 0.01 * 4 + 0.1 * counts["depthwise_kmac"] + 0.002 * 4
    assert latency.predict_latency(sparse, table) == pytest.approx(expected)
    assert latency_model.predict_from_features(counts, table) == pytest.approx(expected)
    # A network whose first nodes are all pruned away is still one of the space.
    kw = {**KW, "nodes": 2}
    _, topology = channel_nasnet(**kw, return_topology=True)
    graph = ChannelGraph(topology)
    masks = {name: np.zeros_like(m) for name, m in graph.full_masks().items()}
    masks["cell1_node1_op0"][np.flatnonzero(graph.from_d("cell1_node1_op0"))[0]] = 1.0
    thin = channel_nasnet(**kw, selection=graph.selection(masks))
    assert "cell1_node0_depthwise" not in [layer.name for layer in thin.layers]
    assert latency.predict_latency(thin, table) > 0.5
    with pytest.raises(ValueError, match=r"is not a CNAS network \(channel_nasnet or densenet_bc\)"):
        import keras

        latency.predict_latency(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), table)


def test_the_fit_recovers_non_negative_costs():
    rng = np.random.default_rng(0)
    truth = dict(zip(latency_model.FEATURES, rng.uniform(0.001, 0.01, len(latency_model.FEATURES))))
    counts = [{f: float(v) for f, v in zip(latency_model.FEATURES, rng.uniform(0, 50, len(truth)))} for _ in range(40)]
    measured = [0.3 + sum(truth[f] * c[f] for f in truth) for c in counts]
    overhead, entries = latency.fit_counts([{latency_model.feature_key(f): v for f, v in c.items()} for c in counts],
                                           measured)
    assert overhead == pytest.approx(0.3, abs=1e-6)
    for f, value in truth.items():
        assert entries[latency_model.feature_key(f)] == pytest.approx(value, abs=1e-6)


def test_channel_savings_by_hand():
    _, model, graph = _sparse()
    shapes = latency_model.edge_shapes(model, graph)
    assert shapes == {"cell1_node0_op0": (16, 2), "cell1_node0_op1": (16, 2)}
    table = _table(conv=1.0, slice=0.5, depthwise=2.0, relu=0.25, kelement=1.0, depthwise_kmac=1.0, conv_kmac=1.0)
    full = graph.full_masks()
    per_channel = (6 * 16 + 9 * 16 + 16 * 2) / 1e3  # elements, depthwise and pointwise work of one channel
    savings = latency_model.channel_savings(graph, full, shapes, table)
    assert savings == pytest.approx({name: per_channel for name in graph.edges})
    # op0 down to its last channel: removing it also removes its pointwise conv and share slice
    masks = {name: m.copy() for name, m in full.items()}
    masks["cell1_node0_op0"][1:] = 0
    savings = latency_model.channel_savings(graph, masks, shapes, table)
    assert savings["cell1_node0_op0"] == pytest.approx(per_channel + 1.0 + 0.5 + 16 * 2 / 1e3)
    assert savings["cell1_node0_op1"] == pytest.approx(per_channel)


def test_zero_least_salient_with_costs_removes_low_saliency_per_ms_first():
    _, _, graph = _sparse()
    full = graph.full_masks()
    # op0's channels are a little less salient, but op1's cost ten times more ms each.
    saliency = {"cell1_node0_op0": np.full(4, 1.0), "cell1_node0_op1": np.full(4, 2.0)}
    plain, _ = zero_least_salient(graph, full, saliency, 0.2)
    assert plain["cell1_node0_op0"].sum() == 4 - 2 and plain["cell1_node0_op1"].sum() == 4
    cost = {"cell1_node0_op0": 0.01, "cell1_node0_op1": 0.1}
    weighted, _ = zero_least_salient(graph, full, saliency, 0.2, cost=cost)
    assert weighted["cell1_node0_op0"].sum() == 4 and weighted["cell1_node0_op1"].sum() == 4 - 2


def _sampled_shares(graph, seed, samples):
    """Shares of the input channels `samples` masks of `sample_masks` keep, each checked to keep a `d` per cell."""
    rng = np.random.default_rng(seed)
    shares = []
    for _ in range(samples):
        masks = latency_model.sample_masks(graph, rng)
        assert all(count >= 1 for count in graph.protected(masks).values())
        shares.append(graph.input_channels(masks) / graph.input_channels(graph.full_masks()))
    return shares


def test_sample_masks_keep_a_channel_from_d_in_every_cell():
    _, topology = channel_nasnet(1, 2, 4, input_shape=(8, 8, 1), return_topology=True)
    shares = _sampled_shares(ChannelGraph(topology), seed=1, samples=10)
    assert min(shares) < 0.5 < max(shares)


def test_densenet_sample_masks_span_the_pruning_range():
    # Nine layers (cells): without a network-wide share every sample would keep about half the channels.
    _, topology = densenet_bc(3, growth_rate=4, input_shape=(8, 8, 1), return_topology=True)
    shares = _sampled_shares(ChannelGraph(topology), seed=0, samples=20)
    assert min(shares) < 0.25 and max(shares) > 0.75


def test_measure_table_fits_a_cnas_table_and_it_predicts_sparse_models(tmp_path):
    table = latency.measure_table("cnas", image_size=4, channels=1, num_classes=3, runs=3, warmup=1, instances=1,
                                  cells=1, nodes=1, init_channels=4, samples=3)
    assert table["space"] == "cnas" and table["fit"]["samples"] == 3
    assert set(table["entries"]) == {latency_model.feature_key(f) for f in latency_model.FEATURES}
    assert table["config"]["sparse_data_format"] == "channels_first" and table["config"]["nodes"] == 1
    _, topology = channel_nasnet(1, 1, 4, input_shape=(4, 4, 1), num_classes=3, return_topology=True)
    graph = ChannelGraph(topology)
    sparse = channel_nasnet(1, 1, 4, input_shape=(4, 4, 1), num_classes=3, data_format="channels_first",
                            selection=channel_layout(topology, graph.selection(graph.full_masks())))
    assert latency.predict_latency(sparse, table) > 0
    with pytest.raises(ValueError, match="`keys` does not apply to the cnas space"):
        latency.measure_table("cnas", image_size=4, channels=1, num_classes=3, keys=["cnas/conv"])
    with pytest.raises(ValueError, match="`init_channels` must be even and divisible by `ops_per_node`"):
        latency.measure_table("cnas", image_size=4, channels=1, num_classes=3, init_channels=6, ops_per_node=4)


def test_cli_refuses_cnas_table_options_that_do_not_apply(tmp_path, capsys):
    out = tmp_path / "t.json"
    for argv, message in (
            (["--space", "resnet", "--nodes", "4"], "`--nodes` does not apply to the resnet space (cnas only)."),
            (["--space", "cnas", "--init-channels", "6", "--ops-per-node", "4"],
             "`--init-channels` must be even and divisible by `--ops-per-node`."),
            (["--space", "darts", "--cells", "2"], "`--cells` must be >= 3 for the darts space")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["latency-table", "--out", str(out)] + argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_cnas_search_refuses_a_table_without_a_target_or_of_another_space(tmp_path, capsys):
    table = tmp_path / "resnet.json"
    table.write_text(json.dumps({**_table(), "space": "resnet"}))
    out = tmp_path / "run"
    for argv, message in (
            (["--latency-table", str(table)], "`--latency-table` is read for a latency target only; add "
                                              "`--target-latency-ms`."),
            (["--latency-table", str(table), "--target-latency-ms", "1"], "`--latency-table`: `table` must be a "
                                                                          "latency table of the cnas space")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["search", "cnas", "--out", str(out)] + argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_cnas_search_refuses_a_table_of_another_network_before_writing(tmp_path, capsys):
    table = tmp_path / "cnas.json"
    table.write_text(json.dumps({**_table(), "config": {"image_size": 8, "channels": 1, "num_classes": 10,
                                                         "init_channels": 16}}))
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "cnas", "--out", str(out), "--target-latency-ms", "1", "--latency-table", str(table)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "`--latency-table` was measured for image_size=8, channels=1, num_classes=10, cnas_space=nasnet, " \
           "cells=1, nodes=3, ops_per_node=2, init_channels=16, sparse_data_format=channels_first; this run needs " \
           "`keras-nas latency-table --space cnas --image-size 8 --channels 1 --num-classes 10 --cnas-space nasnet " \
           "--cells 1 --nodes 3 --ops-per-node 2 --init-channels 8 --sparse-data-format channels_first`" in err
    assert not out.exists()


DENSE = dict(blocks=1, growth_rate=2, input_shape=(4, 4, 1), num_classes=3)


def test_layer_features_count_a_sparse_densenet_by_hand():
    _, topology = densenet_bc(1, **DENSE, return_topology=True)
    graph = ChannelGraph(topology)
    sparse = densenet_bc(1, **DENSE, selection=graph.selection(graph.full_masks()))
    counts = latency_model.layer_features(sparse)
    # One block of one layer on a 4x4 stem of 2k = 4 channels (s = 16): BN1 (not folded: the block's
    # concatenation reads the stem conv too), ReLU1, 1x1 conv 4 -> 4k = 8, BN2 (folded), ReLU2, 3x3 conv 8 -> 2;
    # the block concatenates 4 + 2 channels; the final BN (after a concatenation) and ReLU.
    assert counts["conv"] == 2 and counts["conv_kmac"] == pytest.approx((16 * 8 * 4 + 16 * 2 * 8 * 9) / 1e3)
    assert (counts["depthwise"], counts["slice"], counts["concat"], counts["relu"]) == (0, 0, 1, 3)
    # BN1 2 x 64, ReLU1 64, conv1 64 + 128, ReLU2 128, conv2 128 + 32, concat 96, final BN 2 x 96, final ReLU 96.
    assert counts["kelement"] == pytest.approx((128 + 64 + 192 + 128 + 160 + 96 + 192 + 96) / 1e3)


def test_densenet_channel_savings_by_hand():
    oneshot, topology = densenet_bc(2, **DENSE, return_topology=True)
    graph = ChannelGraph(topology)
    shapes = latency_model.edge_shapes(oneshot, graph)
    # Each layer reads 4x4 pixels; an input channel feeds its 1x1 conv of 4k = 8 outputs.
    assert shapes == {"block1_layer1": (16, 8), "block1_layer2": (16, 8)}
    table = _table(kelement=1.0, conv_kmac=2.0, conv=10.0, relu=100.0, slice=1000.0)
    savings = latency_model.channel_savings(graph, graph.minimal_masks(), shapes, table)
    # A channel: 5 s elements and s x 8 multiply-accumulates (per thousand), even a layer's last one (the search
    # keeps one block-input channel per layer, so no layer goes whole).
    assert savings == {name: pytest.approx((5 * 16 + 2 * 16 * 8) / 1e3) for name in shapes}


def test_measure_table_fits_a_densenet_table_and_it_predicts_sparse_models():
    table = latency.measure_table("cnas", image_size=4, channels=1, num_classes=3, runs=3, warmup=1, instances=1,
                                  cnas_space="densenet-bc", layers_per_block=1, growth_rate=2, samples=3)
    config = table["config"]
    assert (config["cnas_space"], config["layers_per_block"], config["sparse_data_format"]) == (
        "densenet-bc", 1, "channels_last")
    assert table["fit"]["samples"] == 3
    _, topology = densenet_bc(1, growth_rate=2, input_shape=(4, 4, 1), num_classes=3, return_topology=True)
    graph = ChannelGraph(topology)
    sparse = densenet_bc(1, growth_rate=2, input_shape=(4, 4, 1), num_classes=3,
                         selection=channel_layout(topology, graph.selection(graph.full_masks())))
    assert latency.predict_latency(sparse, table) > 0
    nasnet = channel_nasnet(**KW, masked=False)
    with pytest.raises(ValueError, match=r"`table` was measured for CNAS densenet-bc networks; the model is a nasnet "
                                         r"network \(`keras-nas latency-table --space cnas --cnas-space nasnet`\)"):
        latency.predict_latency(nasnet, table)
    with pytest.raises(ValueError, match="`sparse_data_format` must be 'channels_last' for the densenet-bc space"):
        latency.table_keys("cnas", image_size=4, channels=1, num_classes=3, cnas_space="densenet-bc",
                           sparse_data_format="channels_first")
    with pytest.raises(ValueError, match=r"`cnas_space` must be one of \['nasnet', 'densenet-bc'\]"):
        latency.table_keys("cnas", image_size=4, channels=1, num_classes=3, cnas_space="resnet")


def test_cli_densenet_table_options(tmp_path, monkeypatch, capsys):
    measured = {}

    def fake_measure_table(space, **kwargs):  # the CLI's part: the densenet settings reach measure_table
        measured.update(space=space, **kwargs)
        return _table()

    monkeypatch.setattr(latency, "measure_table", fake_measure_table)
    out = tmp_path / "t.json"
    assert cli.main(["latency-table", "--space", "cnas", "--cnas-space", "densenet-bc", "--growth-rate", "4",
                     "--out", str(out)]) == 0
    assert (measured["cnas_space"], measured["layers_per_block"], measured["growth_rate"]) == ("densenet-bc", 3, 4)
    assert measured["sparse_data_format"] is None and "cells" not in measured
    for argv, message in (
            (["--space", "cnas", "--growth-rate", "4"], "`--growth-rate` applies to the cnas space with "
                                                        "`--cnas-space` densenet-bc only."),
            (["--space", "cnas", "--cnas-space", "densenet-bc", "--nodes", "4"],
             "`--nodes` applies to the cnas space with `--cnas-space` nasnet only."),
            (["--space", "cnas", "--cnas-space", "densenet-bc", "--sparse-data-format", "channels_first"],
             "`--sparse-data-format` channels_first applies to `--cnas-space` nasnet only"),
            (["--space", "resnet", "--cnas-space", "densenet-bc"], "`--cnas-space` does not apply to the resnet "
                                                                  "space (cnas only).")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["latency-table", "--out", str(tmp_path / "refused.json")] + argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "refused.json").exists()


def test_a_densenet_search_refuses_a_nasnet_table_naming_the_command(tmp_path, capsys):
    table = tmp_path / "cnas.json"
    table.write_text(json.dumps({**_table(), "config": {"image_size": 8, "channels": 1, "num_classes": 10,
                                                         "sparse_data_format": "channels_first"}}))
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "cnas", "--space", "densenet-bc", "--out", str(out), "--target-latency-ms", "1",
                  "--latency-table", str(table)])
    assert exit_info.value.code == 2
    assert ("this run needs `keras-nas latency-table --space cnas --image-size 8 --channels 1 --num-classes 10 "
            "--cnas-space densenet-bc --layers-per-block 3 --growth-rate 6 --sparse-data-format channels_last`"
            in capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.slow
def test_a_densenet_search_with_a_table_ranks_per_ms_and_reports_the_prediction(tmp_path):
    import subprocess
    import sys

    table, out = tmp_path / "d.json", tmp_path / "run"
    subprocess.run([sys.executable, "-m", "keras_nas", "latency-table", "--space", "cnas", "--cnas-space",
                    "densenet-bc", "--layers-per-block", "2", "--samples", "4", "--runs", "5", "--out", str(table)],
                   check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "keras_nas", "search", "cnas", "--space", "densenet-bc",
                    "--layers-per-block", "2", "--out", str(out), "--epochs", "1", "--final-epochs", "1", "--gamma",
                    "0.3", "--saliency-batches", "2", "--no-baselines", "--target-latency-ms", "0.001",
                    "--latency-table", str(table)], check=True, capture_output=True)
    report = json.loads((out / "results.json").read_text())["latency"]
    assert report["ranking"] == "saliency per ms saved" and report["table"] == str(table)
    assert report["predicted_ms"] > 0 and report["measured_ms"] > 0


@pytest.mark.slow
def test_a_cnas_search_with_a_table_ranks_per_ms_and_reports_the_prediction(tmp_path):
    import subprocess
    import sys

    table, out = tmp_path / "c.json", tmp_path / "run"
    subprocess.run([sys.executable, "-m", "keras_nas", "latency-table", "--space", "cnas", "--samples", "4",
                    "--runs", "5", "--out", str(table)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "keras_nas", "search", "cnas", "--out", str(out), "--epochs", "1",
                    "--final-epochs", "1", "--gamma", "0.3", "--saliency-batches", "2", "--no-baselines",
                    "--target-latency-ms", "0.001", "--latency-table", str(table)], check=True, capture_output=True)
    report = json.loads((out / "results.json").read_text())["latency"]
    assert report["ranking"] == "saliency per ms saved" and report["table"] == str(table)
    assert report["predicted_ms"] > 0 and report["measured_ms"] > 0
