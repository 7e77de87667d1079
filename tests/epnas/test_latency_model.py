"""The fitted latency tables of EPNAS module networks (`epnas-module`, issue 24): counts, fit, prediction, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_nas import cli, costs, latency
from keras_nas.epnas import latency_model
from keras_nas.epnas.space import BRANCH_CHANNELS, EPNASSpace
from tests.helpers import refused

# Every key of a table of 2 stages, filters 8, Table 3's channels (widths 8, 12, 16, 24, 32, 48, 64).
KEYS = [latency_model.feature_key(f)
        for f in latency_model.feature_names(latency_model.conv_widths(BRANCH_CHANNELS, 2, 8))]
# One branch: two 1x1 convs of 8 channels (x multiplier) on the cell input, concatenated.
CELL = [{"type": "conv-conv", "filter_width": 1, "pool_width": 2, "channels": 8, "src1": 0, "src2": 0,
         "propagate": 1}]


def _module_table(entries, **config):
    return {"space": "epnas-module", "device": {}, "runtime": "tflite", "threads": 1, "versions": {},
            "created": "2026-12-04T00:00:00Z",
            "config": {"image_size": 4, "channels": 1, "num_classes": 10, "stages": 2, "cells_per_stage": 1,
                       "filters": 8, "channel_table": None, **config},
            "overhead_ms": 0.5, "entries": entries}


def test_layer_features_by_hand():
    # filters 8, 2 stages of 1 cell at 4x4x1. Stage 0 (4x4, x1): 2 convs 8 -> 8 (16*8*8 MACs each), concat to 16,
    # out conv 16 -> 8 (16*16*8). Average pooling to 2x2. Stage 1 (x2): 2 convs 8 -> 16 (4*8*16 each), concat to
    # 32, out conv 32 -> 16 (4*32*16). The stem conv is left to the intercept.
    model = EPNASSpace("module", num_stages=2, cells_per_stage=1, filters=8).build(CELL, (4, 4, 1), 10)
    counts = latency_model.layer_features(model)
    f = latency_model.feature_key
    assert counts[f("conv")] == 6
    assert counts[f("conv_kmac_out8")] == pytest.approx((2 * 1024 + 2048) / 1e3)
    assert counts[f("conv_kmac_out16")] == pytest.approx((2 * 512 + 2048) / 1e3)
    assert set(counts) == {f(n) for n in latency_model.feature_names([8, 16])} and counts[f("pool")] == 1
    # elements in + out of each conv: stage 0 3 x (128 + 128) + (256 + 128); stage 1 2 x (32 + 64) + (128 + 64)
    assert counts[f("conv_kelement")] == pytest.approx((2 * 256 + 384 + 2 * 96 + 192) / 1e3)
    assert counts[f("pool")] == 1 and counts[f("avg_pool_kelement")] == pytest.approx(2 * 2 * 8 * 4 / 1e3)
    assert counts[f("concat")] == 2 and counts[f("concat_kelement")] == pytest.approx((16 * 16 + 4 * 32) / 1e3)


def test_a_layers_network_is_not_a_module_network():
    layers_model = EPNASSpace("layers").build(EPNASSpace("layers").random_architecture(np.random.default_rng(0)),
                                              (8, 8, 1), 10)
    with pytest.raises(ValueError, match="is not an EPNAS module network"):
        latency_model.layer_features(layers_model)


def test_sampled_cells_span_the_branch_range_and_propagation():
    space = EPNASSpace("module", max_layers=5, min_layers=1, initial_layers=(1, 5))
    rng = np.random.default_rng(0)
    cells = [latency_model.sample_cell(space, rng) for _ in range(60)]
    assert {len(c) for c in cells} == {1, 2, 3, 4, 5}
    assert {e["propagate"] for c in cells for e in c} == {0, 1}


def test_work_is_counted_per_output_width_and_unknown_widths_are_refused():
    # 12 channels (Table 3): the 1x7 conv reads the 16-channel cell input and writes 12, the 7x1 reads and writes 12.
    cell = [{"type": "1x7-7x1-none", "filter_width": 3, "pool_width": 2, "channels": 12, "src1": 0, "src2": 0,
             "propagate": 1}]
    model = EPNASSpace("module", num_stages=1, cells_per_stage=1, filters=16).build(cell, (4, 4, 1), 10)
    counts = latency_model.layer_features(model, widths=[8, 12, 16])
    assert counts["epnas-module/conv_kmac_out12"] == pytest.approx((16 * 16 * 12 * 7 + 16 * 12 * 12 * 7) / 1e3)
    assert counts["epnas-module/conv_kmac_out16"] == pytest.approx(16 * 12 * 16 / 1e3)  # the 1x1 output conv
    assert counts["epnas-module/conv_kmac_out8"] == 0
    with pytest.raises(ValueError, match="writes 12 channels, which no network of this table's settings has"):
        latency_model.layer_features(model, widths=[8, 16])


def test_the_fit_predicts_made_up_measurements_of_networks_it_has_not_seen():
    # Measurements that are an exact linear function of the counts: the fit must reproduce them, also on new networks.
    rng = np.random.default_rng(7)
    true = {k: float(c) for k, c in zip(KEYS, rng.uniform(1e-4, 1e-2, len(KEYS)))}

    def measure(model):
        return 0.01 + sum(true[k] * v for k, v in latency_model.layer_features(model).items())

    space = latency.SPACES["epnas-module"]()
    overhead, entries, extra = space.fit(4, 1, 10, measure, samples=40, filters=8)
    assert set(entries) == set(KEYS)
    assert extra["fit"]["samples"] == 40 and extra["fit"]["median_error"] < 1e-3
    assert extra["fit"]["weighting"] == "relative"
    table = _module_table(entries) | {"overhead_ms": overhead}
    module = EPNASSpace("module", max_layers=5, min_layers=1, initial_layers=(1, 5), num_stages=2, filters=8)
    for _ in range(5):
        model = module.build(latency_model.sample_cell(module, rng), (4, 4, 1), 10)
        assert costs.predict_latency(model, table) == pytest.approx(measure(model), rel=1e-2)


def test_predict_latency_sums_costs_times_counts():
    model = EPNASSpace("module", num_stages=2, cells_per_stage=1, filters=8).build(CELL, (4, 4, 1), 10)
    entries = dict.fromkeys(KEYS, 0.0)
    entries.update({"epnas-module/conv": 0.25, "epnas-module/concat": 0.125})
    assert costs.predict_latency(model, _module_table(entries)) == pytest.approx(0.5 + 6 * 0.25 + 2 * 0.125)


def test_latency_table_command_fits_a_real_table(tmp_path):
    out = tmp_path / "m.json"
    done = subprocess.run([sys.executable, "-m", "keras_nas", "latency-table", "--space", "epnas-module",
                           "--samples", "3", "--filters", "8", "--image-size", "4", "--runs", "3", "--warmup", "1",
                           "--out", str(out)], check=True, capture_output=True, text=True)
    assert "Measuring 3 random epnas-module cell networks at 4x4x1" in done.stdout
    table = json.loads(out.read_text())
    assert table["space"] == "epnas-module" and table["fit"]["samples"] == 3
    assert set(table["entries"]) == set(KEYS)
    assert (table["config"]["stages"], table["config"]["cells_per_stage"], table["config"]["filters"]) == (2, 1, 8)


def test_a_module_search_checks_its_table_before_anything_is_written(tmp_path, capsys):
    path = tmp_path / "m.json"
    entries = dict.fromkeys(KEYS, 0.001)
    path.write_text(json.dumps(_module_table(entries, image_size=8)))
    out = tmp_path / "run"
    base = ["search", "epnas", "--mode", "module", "--constraint", "latency_ms<=2", "--latency-table", str(path),
            "--out", str(out)]
    # the search's default --filters is 16; the table was fitted to networks of 8
    err = refused(base, capsys)
    assert ("this run needs `keras-nas latency-table --space epnas-module --image-size 8 --channels 1 "
            "--num-classes 10 --stages 2 --cells-per-stage 1 --filters 16`") in err
    assert not out.exists()


def test_a_module_search_prices_each_child_from_the_table(tmp_path):
    path = tmp_path / "m.json"
    entries = dict.fromkeys(KEYS, 0.0)
    entries["epnas-module/conv"] = 0.01
    latency.save_table(_module_table(entries, image_size=8), str(path))
    out = str(tmp_path / "run")
    assert cli.main(["search", "epnas", "--mode", "module", "--filters", "8", "--constraint", "latency_ms<=0.6",
                     "--latency-table", str(path), "--out", out, "--episodes", "1", "--branches", "2", "--steps",
                     "1", "--top-k", "1", "--epochs", "1", "--verbose", "0"]) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    for child in results["children"]:
        model = EPNASSpace("module", num_stages=2, cells_per_stage=1, filters=8).build(child["architecture"],
                                                                                      (8, 8, 1), 10)
        convs = latency_model.layer_features(model)["epnas-module/conv"]
        assert child["latency_ms"] == pytest.approx(0.5 + 0.01 * convs)
    target = results["latency_target"]
    assert target["target"] == "latency_ms<=0.6" and target["search_bound"] == "latency_ms<=0.54"
    assert target["measured"] > 0 and target["met"] is (target["measured"] <= 0.6)
