"""EoiNAS/GDAS latency targets (issue 24): the darts table, the expected-latency term, the derivation under a target."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas import cli, costs, data, latency
from keras_nas.eoinas import darts, genotypes, latency_cost

SIZE = {"image_size": 8, "channels": 1, "num_classes": 10}


def _table(value=None, **config):
    """A darts table with made-up entries: distinct values, so a wrong key or a double count shows."""
    keys = latency.table_keys("darts", **SIZE, **config)
    entries = {k: (value if value is not None else 0.001 * (i + 1)) for i, k in enumerate(keys)}
    return {"space": "darts", "device": latency.device_info(), "runtime": "tflite", "threads": 1, "versions": {},
            "created": "2026-12-04T00:00:00Z",
            "config": {**SIZE, "cells": 5, "init_channels": 16, **config}, "overhead_ms": 0.25, "entries": entries}


@pytest.mark.parametrize("auxiliary", [False, True])
def test_every_layer_of_an_eval_network_has_a_table_key(auxiliary):
    keys = set(latency.table_keys("darts", **SIZE))
    assert len(keys) == 51
    model = darts.eval_network("GDAS_V1", cells=5, channels=16, input_shape=(8, 8, 1), auxiliary=auxiliary,
                               drop_path=0.2)
    model_keys = latency.model_keys(model, "darts")
    # stem + 5 cells x (2 pre-processing + 8 ops + 4 node sums + 1 concat) + head; no auxiliary head, no drop path
    assert len(model_keys) == 1 + 5 * 15 + 1
    assert set(model_keys) <= keys
    assert model_keys[0] == "darts/stem|in=8x8x1|filters=48"
    # Cell 1 reduces: GDAS_V1's first reduce op reads input 0 at 8x8 with 32 channels, stride 2.
    assert "darts/op|op=sep_conv_5x5|in=8x8x32|stride=2" in model_keys
    assert "darts/pre|type=factorized_reduce|in=8x8x64|out=32" in model_keys  # cell 2 reads cell 0 (4 x 16)
    assert model_keys[-1] == "darts/head|in=2x2x256|classes=10"


def test_an_imagenet_stem_is_refused():
    model = darts.eval_network("DARTS_V2", cells=3, channels=8, input_shape=(128, 128, 3), auxiliary=False)
    with pytest.raises(ValueError, match="CIFAR evaluation network only"):
        latency.model_keys(model, "darts")


@pytest.mark.parametrize("name", ["DARTS_V1", "DARTS_V2", "GDAS_V1"])
def test_genotype_latency_from_edge_costs_equals_predict_latency_of_the_built_network(name):
    table = _table()
    model = darts.eval_network(name, cells=5, channels=16, input_shape=(8, 8, 1), auxiliary=False)
    edge = latency_cost.edge_costs(table)
    assert genotypes.genotype_latency(darts.GENOTYPES[name], edge) == pytest.approx(
        costs.predict_latency(model, table), rel=1e-12)


def test_edge_costs_sum_each_op_over_the_cells_of_its_type():
    edge = latency_cost.edge_costs(_table(value=1.0))
    normal, reduce = np.array(edge["normal"]), np.array(edge["reduce"])
    assert normal.shape == reduce.shape == (14, 8)
    assert (normal[:, 0] == 0).all() and (reduce[:, 0] == 0).all()  # none costs nothing
    assert (normal[:, 1:] == 3).all() and (reduce[:, 1:] == 2).all()  # 3 normal and 2 reduction cells
    # overhead + stem + 5 x (2 pre + 4 sums + concat) + head
    assert edge["constant_ms"] == pytest.approx(0.25 + 1 + 5 * 7 + 1)


def test_a_table_of_another_size_is_named():
    with pytest.raises(ValueError, match="no entry 'darts/stem"):
        latency_cost.edge_costs({**_table(), "config": {**_table()["config"], "image_size": 16}})


def _uniform_case():
    costs_ = {"constant_ms": 1.0, "normal": np.zeros((14, 8)), "reduce": np.zeros((14, 8))}
    costs_["normal"][0, 4] = 7.0  # sep_conv_3x3 on edge 0 (node 0 keeps both of its 2 inputs)
    costs_["reduce"][5, 5] = 9.0  # edge 5: node 2 (4 inputs, keeps 2)
    return costs_


def test_expected_latency_by_hand():
    costs_ = _uniform_case()
    zeros = {k: np.zeros((14, 8)) for k in ("normal", "reduce")}
    ones = {k: np.ones((14, 8)) for k in ("normal", "reduce")}
    # uniform over the 7 ops that are not none: 1 + 1 x 7/7 + 2/4 x 9/7
    assert latency_cost.expected_latency_numpy(zeros, ones, costs_) == pytest.approx(1 + 1 + 0.5 * 9 / 7)
    live = {k: v.copy() for k, v in ones.items()}
    live["normal"][0, [1, 2, 3]] = 0  # 4 live ops left besides none
    assert latency_cost.expected_latency_numpy(zeros, live, costs_) == pytest.approx(1 + 7 / 4 + 0.5 * 9 / 7)


def test_expected_latency_in_tensorflow_equals_numpy_with_pruned_ops():
    rng = np.random.default_rng(0)
    edge = latency_cost.edge_costs(_table())
    alphas = {k: rng.normal(size=(14, 8)) for k in ("normal", "reduce")}
    lives = {k: (rng.random((14, 8)) > 0.3).astype("float64") for k in ("normal", "reduce")}
    value = latency_cost.expected_latency(
        [tf.constant(alphas[k], tf.float32) for k in ("normal", "reduce")],
        [tf.constant(lives[k], tf.float32) for k in ("normal", "reduce")],
        [tf.constant(edge[k], tf.float32) for k in ("normal", "reduce")],
        tf.constant([0.0] + [1.0] * 7), tf.constant(latency_cost.keep_weights(), tf.float32))
    assert float(value) + edge["constant_ms"] == pytest.approx(
        latency_cost.expected_latency_numpy(alphas, lives, edge), rel=1e-5)


@pytest.mark.parametrize("executor", ["ops", pytest.param("graph", marks=pytest.mark.slow)])
def test_the_latency_weight_moves_alpha_towards_cheaper_ops(executor):
    edge = latency_cost.edge_costs(_table())
    dataset = data.load("digits", batch_size=16)
    steps = tf.data.Dataset.zip((dataset.train, dataset.validation.repeat())).take(6)
    found = {}
    for weight in (0.0, 50.0):
        keras.utils.set_random_seed(0)
        model = darts.search_network(cells=3, channels=4, input_shape=(8, 8, 1), latency_costs=edge,
                                     latency_weight=weight, executor=executor)
        model.compile(arch_optimizer=keras.optimizers.Adam(0.2, beta_1=0.5))
        start = float(model.expected_latency())
        history = model.fit(steps, epochs=1, verbose=0).history
        found[weight] = float(model.expected_latency())
        assert "expected_latency_ms" in history
    assert start == pytest.approx(model.latency_reference_ms, rel=1e-5)  # the reference: uniform alpha
    cheapest = edge["constant_ms"] + sum(float(np.sum(latency_cost.keep_weights() * np.array(edge[k])[:, 1:].min(1)))
                                         for k in ("normal", "reduce"))
    print(start, cheapest, found)
    # The accuracy gradient alone moves it little; with the weight it falls by a good part of what can be saved.
    assert start - found[50.0] > 0.2 * (start - cheapest)
    assert start - found[50.0] > 3 * abs(start - found[0.0])


def test_a_latency_weight_without_costs_is_refused_and_the_config_round_trips():
    with pytest.raises(ValueError, match="`latency_weight` > 0 needs `latency_costs`"):
        darts.search_network(cells=3, channels=4, input_shape=(8, 8, 1), latency_weight=1.0)
    edge = latency_cost.edge_costs(_table())
    model = darts.search_network(cells=3, channels=4, input_shape=(8, 8, 1), latency_costs=edge, latency_weight=0.5,
                                 latency_reference_ms=2.0)
    config = model.get_config()
    assert darts.BilevelSearchModel.from_config(config).get_config() == config
    assert config["latency_weight"] == 0.5 and config["latency_reference_ms"] == 2.0


def _costs_by_op():
    # Each op's cost is its column number: max_pool 1 ... dil_conv_5x5 7 (none 0).
    return {"constant_ms": 0.0, "normal": np.tile(np.arange(8.0), (14, 1)), "reduce": np.zeros((14, 8))}


def test_fit_latency_target_swaps_the_cheapest_score_per_ms_and_keeps_the_edges():
    costs_ = _costs_by_op()
    scores = np.zeros((14, 8))
    scores[:, 7] = 1.0  # every edge prefers dil_conv_5x5 (7 ms)
    scores[:, 6] = 0.9  # then dil_conv_3x3 (6 ms)
    scores[0, 7] = 5.0  # edge 0 holds on to its op
    searched = genotypes.derive_genotype(scores, scores)
    assert genotypes.genotype_latency(searched, costs_) == 8 * 7
    genotype, swaps, met = genotypes.fit_latency_target(scores, scores, costs_, 8 * 7 - 3)
    assert met and len(swaps) == 3
    assert genotypes.genotype_latency(genotype, costs_) == 8 * 7 - 3
    assert all(s["op"] == "dil_conv_5x5" and s["next"] == "dil_conv_3x3" and not s["pruned"] for s in swaps)
    assert (0, 0) not in {(s["node"], s["input"]) for s in swaps}  # the edge of the high score kept its op
    assert [j for _, j in genotype.normal] == [j for _, j in searched.normal]  # same inputs


def test_fit_latency_target_uses_pruned_ops_last_and_says_when_it_cannot_meet_the_target():
    costs_ = _costs_by_op()
    scores = np.full((14, 8), -np.inf)
    scores[:, 7] = 1.0  # only dil_conv_5x5 is live
    genotype, swaps, met = genotypes.fit_latency_target(scores, scores, costs_, 50.0)
    assert met and swaps[0]["pruned"] and swaps[0]["next"] == "max_pool_3x3"  # the largest saving first
    genotype, swaps, met = genotypes.fit_latency_target(scores, scores, costs_, 1.0)
    assert not met and genotypes.genotype_latency(genotype, costs_) == 8  # every edge at max_pool (1 ms)


def _refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_cli_refuses_a_bad_latency_weight_and_a_table_of_another_space(tmp_path, capsys):
    out = tmp_path / "run"
    assert _refused(["search", "eoinas", "--out", str(out), "--latency-weight", "-1"], capsys) == (
        "keras-nas: error: `--latency-weight` must be a float >= 0. Received: --latency-weight -1")
    table = tmp_path / "resnet.json"
    table.write_text(json.dumps({**_table(), "space": "resnet"}))
    err = _refused(["search", "eoinas", "--out", str(out), "--latency-table", str(table)], capsys)
    assert err.startswith("keras-nas: error: `--latency-table`: `table` must be a latency table of the darts space")
    assert not out.exists()


def test_cli_refuses_a_table_measured_for_another_eval_network(tmp_path, capsys):
    table = tmp_path / "darts.json"
    table.write_text(json.dumps(_table()))
    out = tmp_path / "run"
    err = _refused(["search", "eoinas", "--out", str(out), "--latency-table", str(table), "--eval-channels", "8"],
                   capsys)
    assert "`--latency-table` was measured for image_size=8, channels=1, num_classes=10, cells=5, init_channels=16; " \
           "this run needs `keras-nas latency-table --space darts --image-size 8 --channels 1 --num-classes 10 " \
           "--cells 5 --init-channels 8`" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_search_with_a_latency_target_meets_it_on_this_machine(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "keras_nas", "search", "eoinas", "--out", str(out), "--epochs", "2",
               "--eval-epochs", "1", "--latency-weight", "1", "--target-latency-ms", "1000"]
    subprocess.run(command, check=True, capture_output=True)
    results = json.loads((out / "results.json").read_text())
    report = results["latency"]
    assert (out / "latency_table.json").exists()  # measured on the spot
    assert report["met"] and report["measured_ms"] <= 1000 and report["predicted_ms"] > 0
    assert report["swaps"] == []  # the searched cells already met a loose target
    assert report["margin"] == 0.1 and report["search_target_ms"] == pytest.approx(900)
