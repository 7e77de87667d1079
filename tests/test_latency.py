"""Latency tables: keys of a model's blocks, their sum, the table file, a tiny real measurement, the CLI (issue 24)."""

import json

import numpy as np
import pytest

from keras_nas import cli, costs, latency
from keras_nas.epnas.space import EPNASSpace
from keras_nas.stagewise.nasnet import stage_nasnet
from keras_nas.stagewise.resnet import stage_resnet

RESNET_KEYS = [
    "resnet/stem|in=8x8x1|filters=16",
    "resnet/basic|in=8x8x16|filters=16|stride=1|shortcut=padding",
    "resnet/basic|in=8x8x16|filters=16|stride=1|shortcut=padding",
    "resnet/basic|in=8x8x16|filters=32|stride=2|shortcut=padding",
    "resnet/basic|in=4x4x32|filters=64|stride=2|shortcut=padding",
    "resnet/basic|in=2x2x64|filters=64|stride=1|shortcut=padding",
    "resnet/head|in=2x2x64|classes=10",
]


def _table(entries, overhead=0.5, space="resnet"):
    return {"space": space, "device": latency.device_info(), "runtime": "tflite", "threads": 1,
            "versions": {}, "created": "2026-12-03T00:00:00Z",
            "config": {"image_size": 8, "channels": 1, "num_classes": 10}, "overhead_ms": overhead,
            "entries": entries}


def test_resnet_model_maps_to_one_key_per_block_in_layer_order():
    model = stage_resnet((2, 1, 2), input_shape=(8, 8, 1), num_classes=10)
    assert latency.model_keys(model, "resnet") == RESNET_KEYS


def test_predict_latency_sums_the_entries_and_adds_the_overhead_once():
    entries = {k: float(2**i) for i, k in enumerate(dict.fromkeys(RESNET_KEYS))}
    model = stage_resnet((2, 1, 2), input_shape=(8, 8, 1), num_classes=10)
    # stem 1 + 2 x stage-0 block 2 + stage-1 stride-2 block 4 + stage-2 blocks 8 and 16 + head 32, + overhead 0.5
    assert costs.predict_latency(model, _table(entries)) == pytest.approx(1 + 2 * 2 + 4 + 8 + 16 + 32 + 0.5)


def test_a_missing_key_is_named_with_what_to_run():
    entries = {k: 1.0 for k in RESNET_KEYS}
    model = stage_resnet((1, 1, 1), input_shape=(16, 16, 1), num_classes=10)
    with pytest.raises(ValueError, match=r"no entry 'resnet/stem\|in=16x16x1\|filters=16'.*re-run `keras-nas "
                                         r"latency-table`"):
        costs.predict_latency(model, _table(entries))


# stage_resnet((2, 1, 2), block="bottleneck") at 32x32x3, worked out by hand: the 7x7 stride-2 conv and the
# stride-2 max pooling take 32 -> 16 -> 8; widths 64, 128, 256, each block's output x4.
BOTTLENECK_KEYS = [
    "resnet/stem|in=32x32x3|filters=64|kernel=7|stride=2|pool=3",
    "resnet/bottleneck|in=8x8x64|filters=64|stride=1|shortcut=projection",  # 64 -> 256 channels at stride 1
    "resnet/bottleneck|in=8x8x256|filters=64|stride=1|shortcut=identity",
    "resnet/bottleneck|in=8x8x256|filters=128|stride=2|shortcut=projection",
    "resnet/bottleneck|in=4x4x512|filters=256|stride=2|shortcut=projection",
    "resnet/bottleneck|in=2x2x1024|filters=256|stride=1|shortcut=identity",
    "resnet/head|in=2x2x1024|classes=10",
]


def test_bottleneck_resnet_maps_to_one_key_per_block_in_layer_order():
    model = stage_resnet((2, 1, 2), block="bottleneck", input_shape=(32, 32, 3), num_classes=10)
    assert latency.model_keys(model, "resnet") == BOTTLENECK_KEYS


def test_the_bottleneck_table_holds_the_blocks_of_any_depths():
    keys = latency.table_keys("resnet", image_size=32, channels=3, num_classes=10, block="bottleneck")
    # and the identity block of stage 1, which (2, 1, 2) does not use
    assert set(keys) == set(BOTTLENECK_KEYS) | {"resnet/bottleneck|in=4x4x512|filters=128|stride=1|shortcut=identity"}
    assert len(keys) == 8
    four = latency.table_keys("resnet", image_size=32, channels=3, num_classes=10, block="bottleneck", stages=4)
    assert len(four) == 10 and "resnet/head|in=1x1x2048|classes=10" in four
    model = stage_resnet((3, 4, 6, 3), block="bottleneck", input_shape=(32, 32, 3), num_classes=10)  # ResNet-50
    assert set(latency.model_keys(model, "resnet")) <= set(four)


def test_predict_latency_of_a_bottleneck_resnet_sums_its_blocks():
    entries = {k: float(2**i) for i, k in enumerate(BOTTLENECK_KEYS)}
    model = stage_resnet((2, 1, 2), block="bottleneck", input_shape=(32, 32, 3), num_classes=10)
    table = {**_table(entries), "config": {"image_size": 32, "channels": 3, "num_classes": 10, "stages": 3,
                                           "block": "bottleneck"}}
    assert costs.predict_latency(model, table) == pytest.approx(2**7 - 1 + 0.5)


def test_a_bottleneck_resnet_with_padding_shortcuts_is_refused():
    model = stage_resnet((1, 1, 1), block="bottleneck", shortcut="padding", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="bottleneck blocks with projection shortcuts.*'stage0_block0' has a "
                                         "padding shortcut"):
        latency.model_keys(model, "resnet")


def test_a_tiny_measured_bottleneck_table_predicts_the_measured_network():
    model = stage_resnet((2,), block="bottleneck", input_shape=(8, 8, 1), num_classes=10)
    keys = latency.model_keys(model, "resnet")
    table = latency.measure_table("resnet", image_size=8, channels=1, num_classes=10, runs=5, stages=1,
                                  block="bottleneck", calibration=2)
    assert set(table["entries"]) == set(keys) and table["config"]["block"] == "bottleneck"
    # The memory term was fitted to the two end networks of the space: depth 1 and depth 6.
    ends = [latency.weight_mb(stage_resnet((d,), block="bottleneck", input_shape=(8, 8, 1))) for d in (1, 6)]
    memory = table["memory"]
    assert memory["networks"] == 2 and memory["weight_mb"] == [round(mb, 3) for mb in ends]
    assert 0 <= memory["cache_mb"] <= memory["weight_mb"][1]  # searched from 0 to the largest network's weights
    assert set(memory["median_error"]) == {"entries", "with_memory"}
    predicted = costs.predict_latency(model, table)
    measured = latency.measure_model(model, runs=5)
    # A sanity check that the built entries are the network's blocks, not a speed assertion.
    assert measured / 2 < predicted < 2 * measured


def test_the_memory_term_fit_recovers_a_made_up_slope_and_cache_size():
    # 0.05 ms per MB beyond 30 MB: the 20 MB network fits in the cache.
    weights = [20.0, 40.0, 60.0, 120.0]
    predicted = [1.0, 2.0, 3.0, 6.0]
    measured = [p + 0.05 * max(0.0, w - 30) for p, w in zip(predicted, weights)]
    slope, cache = latency.fit_memory_term(predicted, measured, weights)
    assert slope == pytest.approx(0.05) and cache == pytest.approx(30.0)
    # Predictions already at or above the measurements: no slope > 0 helps, no term.
    assert latency.fit_memory_term([2.0, 3.0], [1.0, 3.0], [10.0, 50.0]) == (0.0, 0.0)


def test_the_memory_term_adds_to_a_prediction_only_above_the_cache_size():
    import keras

    model = stage_resnet((2, 1, 2), input_shape=(8, 8, 1), num_classes=10)
    mb = latency.weight_mb(model)
    assert mb == pytest.approx(model.count_params() * 4 / 2**20)
    table = _table({k: 1.0 for k in RESNET_KEYS})
    plain = latency.predict_latency(model, table)
    assert plain == 0.5 + len(RESNET_KEYS)
    table["memory"] = {"ms_per_mb": 2.0, "cache_mb": mb / 4}
    assert latency.predict_latency(model, table) == pytest.approx(plain + 2.0 * (mb - mb / 4))
    table["memory"]["cache_mb"] = mb  # weights that fit in the cache: no term
    assert latency.predict_latency(model, table) == plain
    assert latency.memory_ms(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), {"entries": {}}) == 0.0


def test_a_resnet_table_refuses_one_calibration_network():
    with pytest.raises(ValueError, match=r"`calibration` must be 0 \(no memory term\) or >= 2 networks"):
        latency.table_keys("resnet", image_size=8, channels=1, num_classes=10, calibration=1)


def test_a_resnet_table_refuses_an_unknown_block():
    with pytest.raises(ValueError, match=r"`block` must be one of \['basic', 'bottleneck'\]"):
        latency.table_keys("resnet", image_size=8, channels=1, num_classes=10, block="wide")


def test_epnas_layers_map_to_conv_activation_pool_align_add_and_head_keys():
    arch = [
        {"type": "conv2d", "filter_width": 3, "pool_width": 2, "channels": 32, "activation": "crelu",
         "src1": 0, "src2": -1},
        {"type": "MaxPool2d", "filter_width": 3, "pool_width": 2, "channels": 32, "activation": "relu",
         "src1": 1, "src2": 1},
        {"type": "dep-sep-conv2d", "filter_width": 5, "pool_width": 2, "channels": 16, "activation": "swish",
         "src1": 2, "src2": -1},
    ]
    model = EPNASSpace("layers").build(arch, (8, 8, 1), 10)
    assert latency.model_keys(model, "epnas") == [
        "epnas/conv|type=conv2d|k=3|in=8x8x1|out=16",  # crelu: the conv makes half the channels
        "epnas/act|act=crelu|in=8x8x16",
        "epnas/pool|type=MaxPool2d|p=2|in=8x8x32",
        "epnas/align|in=8x8x32|out=4x4x32",  # the skip from the unpooled node, strided 1x1 conv
        "epnas/add|in=4x4x32",
        "epnas/conv|type=dep-sep-conv2d|k=5|in=4x4x32|out=16",
        "epnas/act|act=swish|in=4x4x16",
        "epnas/head|in=4x4x16|classes=10",
    ]


def test_the_epnas_table_holds_every_key_of_random_architectures():
    space = EPNASSpace("layers", initial_layers=(2, 12))
    keys = set(latency.table_keys("epnas", image_size=8, channels=1, num_classes=10))
    rng = np.random.default_rng(0)
    for _ in range(12):
        model = space.build(space.random_architecture(rng), (8, 8, 1), 10)
        assert set(latency.model_keys(model, "epnas")) <= keys


def test_the_resnet_table_holds_the_blocks_of_any_depths():
    keys = latency.table_keys("resnet", image_size=8, channels=1, num_classes=10)
    # and the stride-1 block of stage 1, which (2, 1, 2) does not use
    assert set(keys) == set(RESNET_KEYS) | {"resnet/basic|in=4x4x32|filters=32|stride=1|shortcut=padding"}
    assert len(keys) == 7
    assert set(latency.model_keys(stage_resnet((4, 3, 1), input_shape=(8, 8, 1)), "resnet")) <= set(keys)


def test_an_epnas_module_network_is_refused_by_the_layers_table_and_named_its_own():
    space = EPNASSpace("module", num_stages=1, cells_per_stage=1, filters=8)
    model = space.build(space.random_architecture(np.random.default_rng(0)), (8, 8, 1), 10)
    with pytest.raises(ValueError, match="its table is one of the epnas-module space"):
        latency.model_keys(model, "epnas")


# stage_nasnet((1, 2, 1), filters=8) at 8x8x1, worked out by hand: the stem makes 3F = 24 channels, normal
# cells 6f, reduction cells 4f with f = 8, 16, 32; p is the input of the cell before (none for the first).
NASNET_KEYS = [
    "nasnet/stem|in=8x8x1|filters=24",
    "nasnet/normal|ip=8x8x24|p=none|filters=8",
    "nasnet/reduce|ip=8x8x48|p=8x8x24|filters=16",  # stage 0 has one cell: p is the stem
    "nasnet/normal|ip=4x4x64|p=8x8x48|filters=16",  # p of another size: factorized reduction
    "nasnet/normal|ip=4x4x96|p=4x4x64|filters=16",
    "nasnet/reduce|ip=4x4x96|p=4x4x96|filters=32",
    "nasnet/normal|ip=2x2x128|p=4x4x96|filters=32",
    "nasnet/head|in=2x2x192|classes=10",
]


def test_nasnet_model_maps_to_one_key_per_cell_in_layer_order():
    model = stage_nasnet((1, 2, 1), filters=8, input_shape=(8, 8, 1), num_classes=10)
    assert latency.model_keys(model, "nasnet") == NASNET_KEYS


@pytest.mark.parametrize("depths", [(1, 2, 1), (2, 1, 3)])
def test_the_nasnet_table_holds_every_key_of_the_network(depths):
    keys = latency.table_keys("nasnet", image_size=8, channels=1, num_classes=10, stages=3, filters=8)
    model = stage_nasnet(depths, filters=8, input_shape=(8, 8, 1), num_classes=10)
    model_keys = latency.model_keys(model, "nasnet")  # every layer has a key or None, none is foreign
    assert set(model_keys) <= set(keys)
    assert len(model_keys) == 1 + sum(depths) + (len(depths) - 1) + 1  # stem, cells, reductions, head


def test_the_nasnet_table_has_three_normal_and_two_reduction_cases_per_stage():
    keys = latency.table_keys("nasnet", image_size=8, channels=1, num_classes=10)  # stages 3, filters 8
    kinds = [k.split("|")[0] for k in keys]
    assert [kinds.count(f"nasnet/{kind}") for kind in ("stem", "normal", "reduce", "head")] == [1, 9, 4, 1]
    assert "nasnet/normal|ip=8x8x48|p=8x8x48|filters=8" in keys  # the third cell of stage 0 on
    wider = latency.table_keys("nasnet", image_size=8, channels=1, num_classes=10, stages=2, filters=16)
    assert wider[:2] == ["nasnet/stem|in=8x8x1|filters=48", "nasnet/normal|ip=8x8x48|p=none|filters=16"]


def test_nasnet_predict_latency_sums_each_cell_once():
    entries = {k: float(2**i) for i, k in enumerate(NASNET_KEYS)}  # all distinct: a double count shows
    model = stage_nasnet((1, 2, 1), filters=8, input_shape=(8, 8, 1), num_classes=10)
    assert costs.predict_latency(model, _table(entries, space="nasnet")) == pytest.approx(2**8 - 1 + 0.5)


def test_a_resnet_is_refused_by_the_nasnet_space():
    with pytest.raises(ValueError, match="layer 'stem_relu' is not part of a stage-wise NASNet"):
        latency.model_keys(stage_resnet((1, 1, 1), input_shape=(8, 8, 1)), "nasnet")


def test_a_tiny_measured_nasnet_table_predicts_the_measured_network():
    # Two cells, the second with two inputs (the two-input entry path); stages=1 keeps the table at 4 entries.
    model = stage_nasnet((2,), filters=8, input_shape=(8, 8, 1), num_classes=10)
    keys = latency.model_keys(model, "nasnet")
    assert keys[2] == "nasnet/normal|ip=8x8x48|p=8x8x24|filters=8"
    table = latency.measure_table("nasnet", image_size=8, channels=1, num_classes=10, runs=5, keys=keys, stages=1)
    assert table["config"]["stages"] == 1 and table["config"]["filters"] == 8
    predicted = costs.predict_latency(model, table)
    measured = latency.measure_model(model, runs=5)
    # A sanity check that no cell is missed or counted twice, not a speed assertion.
    assert measured / 2 < predicted < 2 * measured


def test_table_json_round_trip_and_no_silent_overwrite(tmp_path):
    table = _table({RESNET_KEYS[0]: 0.25})
    path = str(tmp_path / "t.json")
    latency.save_table(table, path)
    assert latency.load_table(path) == json.loads(json.dumps(table))
    with pytest.raises(ValueError, match="overwrite=True"):
        latency.save_table(table, path)
    latency.save_table(_table({RESNET_KEYS[0]: 0.5}), path, overwrite=True)
    assert latency.load_table(path)["entries"] == {RESNET_KEYS[0]: 0.5}
    model = stage_resnet((1, 1, 1), input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="no entry"):
        costs.predict_latency(model, path)  # a path is read as a table


def test_a_file_that_is_not_a_table_is_refused(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"entries": {}}))
    with pytest.raises(ValueError, match="not a latency table"):
        latency.load_table(str(path))


def test_unknown_spaces_are_refused_with_the_supported_ones():
    with pytest.raises(ValueError, match=r"one of \['resnet', 'epnas', 'epnas-module', 'darts', 'nasnet', 'cnas'\]. "
                                         r"Received: space='mobilenet'"):
        latency.table_keys("mobilenet", image_size=8, channels=1, num_classes=10)


def test_a_tiny_real_measurement_has_the_table_fields_and_positive_times():
    key = "resnet/basic|in=2x2x64|filters=64|stride=1|shortcut=padding"
    table = latency.measure_table("resnet", image_size=8, channels=1, num_classes=10, runtime="tflite", runs=3,
                                  warmup=1, keys=[key])
    assert set(latency.TABLE_FIELDS) <= set(table)
    assert (table["runtime"], table["threads"], table["runs"], table["instances"]) == ("tflite", 1, 3, 5)
    assert set(table["versions"]) == {"tensorflow", "keras", "keras_nas"}
    assert list(table["entries"]) == [key]
    assert table["entries"][key] > 0 and table["overhead_ms"] > 0
    json.dumps(table)


def test_timed_calls_run_with_the_garbage_collector_off_and_restore_it():
    import gc

    states = []
    assert len(latency._timed_ms(lambda: states.append(gc.isenabled()), runs=3, warmup=2)) == 3
    assert states == [False] * 5 and gc.isenabled()


def test_tflite_timed_calls_are_spread_over_interpreters(monkeypatch):
    import keras
    import tensorflow as tf

    made, invokes = [], []

    class Counting(tf.lite.Interpreter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def invoke(self):
            invokes.append(len(made))
            return super().invoke()

    monkeypatch.setattr(tf.lite, "Interpreter", Counting)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3)])
    assert latency.measure_model(model, runs=7, warmup=2, instances=3) > 0
    # 3 interpreters; each: 1 first call + 2 warm-up + its share of the 7 timed calls (3, 2, 2)
    assert len(made) == 3 and [invokes.count(i) for i in (1, 2, 3)] == [6, 5, 5]
    made.clear()
    latency.measure_model(model, runs=2, warmup=0, instances=5)  # no more interpreters than timed calls
    assert len(made) == 2
    with pytest.raises(ValueError, match=r"`instances` must be an int >= 1. Received: instances=0"):
        latency.measure_model(model, instances=0)


def _refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize("extra, message", [
    (["--space", "mobilenet"], "`--space` must be one of ['resnet', 'nasnet', 'darts', 'epnas', 'epnas-module', "
                               "'cnas']. Received: "
                               "--space mobilenet"),
    (["--space", "resnet", "--runtime", "onnx"],
     "`--runtime` must be one of ['tf', 'tflite']. Received: --runtime onnx"),
    (["--space", "resnet", "--threads", "0"], "`--threads` must be an int >= 1. Received: --threads 0"),
    (["--space", "epnas", "--stages", "2"], "`--stages` does not apply to the epnas space (resnet, nasnet and "
                                            "epnas-module only). Received: --stages 2"),
    (["--space", "resnet", "--filters", "16"], "`--filters` does not apply to the resnet space (nasnet and "
                                               "epnas-module only). Received: --filters 16"),
    (["--space", "nasnet", "--cells-per-stage", "2"], "`--cells-per-stage` does not apply to the nasnet space "
                                                      "(epnas-module only). Received: --cells-per-stage 2"),
    (["--space", "darts", "--samples", "5"], "`--samples` does not apply to the darts space (cnas and epnas-module "
                                             "only). Received: --samples 5"),
    (["--space", "epnas-module", "--channel-table", "8,9"], "`--channel-table` must be even channel counts (crelu "
                                                            "halves them). Received: --channel-table 8,9"),
    (["--space", "nasnet", "--filters", "0"], "`--filters` must be an int >= 1. Received: --filters 0"),
    (["--space", "nasnet", "--block", "bottleneck"], "`--block` does not apply to the nasnet space (resnet only). "
                                                      "Received: --block bottleneck"),
    (["--space", "resnet", "--block", "wide"], "`--block` must be one of ['basic', 'bottleneck']. Received: "
                                               "--block wide"),
    (["--space", "resnet", "--cells", "8"], "`--cells` does not apply to the resnet space (darts and cnas only). "
                                            "Received: --cells 8"),
    (["--space", "nasnet", "--calibration", "2"], "`--calibration` does not apply to the nasnet space (resnet only). "
                                                  "Received: --calibration 2"),
    (["--space", "resnet", "--calibration", "1"], "`--calibration` must be 0 (no memory term) or >= 2 networks. "
                                                  "Received: --calibration 1"),
    (["--space", "resnet", "--calibration", "-1"], "`--calibration` must be an int >= 0. Received: --calibration -1"),
])
def test_cli_refuses_bad_options_in_one_line(extra, message, tmp_path, capsys):
    err = _refused(["latency-table", *extra, "--out", str(tmp_path / "t.json")], capsys)
    assert err == f"keras-nas: error: {message}"
    assert not (tmp_path / "t.json").exists()


def test_cli_needs_a_json_out_and_never_overwrites(tmp_path, capsys):
    assert "`--out` must be a file name ending in .json. Received: --out (not given)" in _refused(
        ["latency-table", "--space", "resnet"], capsys)
    target = tmp_path / "t.json"
    target.write_text("{}")
    err = _refused(["latency-table", "--space", "resnet", "--out", str(target)], capsys)
    assert err == f"keras-nas: error: `--out` exists; pass `--overwrite` to replace it. Received: --out {target}"
    assert target.read_text() == "{}"


def test_cli_writes_a_nasnet_table_of_the_stages_and_filters_given(tmp_path, monkeypatch, capsys):
    measured = {}

    def fake_measure_table(space, **kwargs):  # the CLI's part: the settings reach measure_table
        measured.update(space=space, **kwargs)
        return _table({k: 0.01 for k in latency.table_keys(space, image_size=8, channels=1, num_classes=10,
                                                           stages=2, filters=4)}, space=space)

    monkeypatch.setattr(latency, "measure_table", fake_measure_table)
    out = tmp_path / "nasnet.json"
    assert cli.main(["latency-table", "--space", "nasnet", "--stages", "2", "--filters", "4", "--out", str(out)]) == 0
    assert (measured["space"], measured["stages"], measured["filters"]) == ("nasnet", 2, 4)
    assert "Measuring 10 nasnet entries at 8x8x1" in capsys.readouterr().out
    assert latency.read_table(str(out), space="nasnet")["entries"]


def test_cli_writes_a_bottleneck_resnet_table(tmp_path, monkeypatch, capsys):
    measured = {}

    def fake_measure_table(space, **kwargs):  # the CLI's part: --block reaches measure_table
        measured.update(space=space, **kwargs)
        return _table({k: 0.01 for k in latency.table_keys(space, image_size=8, channels=1, num_classes=10,
                                                           stages=4, block="bottleneck")})

    monkeypatch.setattr(latency, "measure_table", fake_measure_table)
    out = tmp_path / "resnet.json"
    assert cli.main(["latency-table", "--space", "resnet", "--block", "bottleneck", "--stages", "4",
                     "--out", str(out)]) == 0
    assert (measured["space"], measured["stages"], measured["block"]) == ("resnet", 4, "bottleneck")
    assert measured["calibration"] == 6
    out_text = capsys.readouterr().out
    assert "Measuring 10 resnet entries at 8x8x1" in out_text
    assert "then 6 networks end to end to fit the memory term" in out_text
    assert cli.main(["latency-table", "--space", "resnet", "--calibration", "0", "--out", str(out),
                     "--overwrite"]) == 0
    assert measured["calibration"] == 0 and "memory term" not in capsys.readouterr().out
