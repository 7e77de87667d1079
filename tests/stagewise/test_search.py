"""`keras-nas search stagewise`: option errors, a tiny real search, resume, weight transfer."""

import argparse
import json
import os

import keras
import pytest

from keras_nas import cli
from keras_nas.stagewise.resnet import stage_resnet
from tests.helpers import assert_only_owned, check_results_contract

TINY = ["--epochs", "3", "--iterations", "1", "--m0", "1", "--verbose", "0", "--importance-samples", "64"]


def _run(tmp_path, *extra, out="run"):
    return cli.main(["search", "stagewise", "--out", str(tmp_path / out), *TINY, *extra])


@pytest.mark.parametrize(
    "options, message",
    [
        (["--m0", "0"], "`--m0` must be an int >= 1. Received: --m0 0"),
        (["--milestones", "a,b"], "`--milestones` must be comma-separated increasing positive epochs"),
        (["--donor", "missing.keras"], "`--donor` must be an existing .keras file"),
        (["--module", "cell", "--block", "bottleneck"], "`--block` applies to `--module` residual only"),
        (["--max-failures", "2"], "`--max-failures` does not apply here: Algorithm 1 needs every network"),
        (["--alpha", "2"], "`--alpha` must be a float in [0, 1]. Received: --alpha 2"),
        (["--max-params", "0"], "`--max-params` must be an int >= 1. Received: --max-params 0"),
        (["--max-latency-ms", "-1"], "`--max-latency-ms` must be a float > 0"),
        (["--max-params", "1000"], "`--max-params` must leave room for the initial network resnet:2,2,2 (params "),
    ],
)
def test_bad_options_fail_before_anything_is_written(tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "stagewise", "--out", str(tmp_path / "run"), *options])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_too_shallow_donor_is_refused_before_training(tmp_path, capsys):
    donor = str(tmp_path / "donor.keras")
    stage_resnet((1, 1, 1), input_shape=(8, 8, 1), num_classes=10).save(donor)
    with pytest.raises(SystemExit):
        _run(tmp_path, "--donor", donor)
    assert "cannot be deeper than the donor's" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tiny_search_end_to_end_and_resume(tmp_path):
    assert _run(tmp_path) == 0
    out = tmp_path / "run"
    results = json.loads((out / "results.json").read_text())
    assert results["models_trained"] == 3 == results["expected_models"]
    (candidate,) = results["candidates"]
    for key in ("stage_depths", "params", "macs", "val_accuracy", "memory_mb", "latency_ms", "emissions", "depth"):
        assert candidate[key] is not None
    assert candidate["depth"] == 2 * sum(candidate["stage_depths"]) + 2
    # One candidate: the ensemble is that network, so it predicts as best_model.keras does.
    assert results["ensemble"]["members"] == [candidate["trial_id"]]
    for name in ("best_model.keras", "stage_depths.png", "accuracy_vs_macs.png", "preprocessing.json"):
        assert (out / name).exists()
    model = keras.saving.load_model(str(out / "best_model.keras"))
    assert model.output_shape == (None, 10)
    assert_only_owned(out)
    checked = check_results_contract(out, beats_chance_by=0.2)
    assert results["ensemble"]["test_accuracy"] == pytest.approx(checked["best"]["test_accuracy"])
    assert checked["best"]["val_accuracy"] == max(c["val_accuracy"] for c in results["candidates"])
    assert checked["best"]["architecture"] == "resnet:" + ",".join(map(str, checked["best"]["stage_depths"]))

    stamps = {p: os.path.getmtime(p) for p in out.glob("trials/trial_*/search_model.keras")}
    assert len(stamps) == 3
    assert _run(tmp_path) == 0  # same command: resumes, trains nothing
    assert stamps == {p: os.path.getmtime(p) for p in out.glob("trials/trial_*/search_model.keras")}
    again = json.loads((out / "results.json").read_text())
    assert again["candidates"][0]["val_accuracy"] == candidate["val_accuracy"]


def test_parameter_budget_stops_growth_and_is_reported(tmp_path, capsys):
    from keras_nas import costs

    # resnet:1,1,1 fits, and any deeper stage of the first candidate does not.
    limit = costs.profile(stage_resnet((1, 1, 1), input_shape=(8, 8, 1), num_classes=10)).params + 1
    assert _run(tmp_path, "--max-params", str(limit), "--epochs", "1") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    (decision,) = results["decisions"]
    assert decision["stage_depths"] == [1, 1, 1] and decision["cost"]["params"] == limit - 1
    assert all(b["resource"] == "params" and b["value"] > limit for b in decision["blocked"])
    assert results["budgets"]["params"] == {"target": limit, "predicted": limit - 1, "measured": limit - 1,
                                            "met": True}
    out = capsys.readouterr().out
    assert f"budget params <= {limit:,}: best model {limit - 1:,} (met)" in out


def _made_up_table(path, space, priced, ms, settings, **config):
    """A `space` table with made-up entries: every key of kind `priced` `ms`, the others and the overhead 0."""
    from keras_nas import latency

    size = {"image_size": 8, "channels": 1, "num_classes": 10}
    config = {**size, **settings, **config}
    keys = latency.table_keys(space, **config)
    table = {"space": space, "device": latency.device_info(), "runtime": "tflite", "threads": 1, "versions": {},
             "created": "2026-12-04T00:00:00Z", "config": config, "overhead_ms": 0.0,
             "entries": {k: (ms if k.split("|")[0] == priced else 0.0) for k in keys}}
    path.write_text(json.dumps(table))
    return str(path)


def _resnet_table(path, block_ms=1.0, **config):
    """A resnet table with made-up entries: every basic block `block_ms`, stem, head and overhead 0."""
    return _made_up_table(path, "resnet", "resnet/basic", block_ms, {"stages": 3}, **config)


def _nasnet_table(path, cell_ms=1.0, **config):
    """A nasnet table (stages 3, filters 8) with made-up entries: every normal cell `cell_ms`, the rest 0."""
    return _made_up_table(path, "nasnet", "nasnet/normal", cell_ms, {"stages": 3, "filters": 8}, **config)


def test_bad_latency_table_options_fail_before_anything_is_written(tmp_path, capsys):
    table = _resnet_table(tmp_path / "t.json")
    other = _resnet_table(tmp_path / "t16.json", image_size=16)
    cells = _nasnet_table(tmp_path / "nasnet.json")
    for options, message in [
        (["--latency-table", table], "`--latency-table` is read for a latency budget only; add `--max-latency-ms`"),
        (["--latency-table", str(tmp_path / "none.json"), "--max-latency-ms", "1"],
         "`--latency-table` must be an existing latency table JSON file (`keras-nas latency-table --space "
         "resnet|nasnet`)"),
        (["--latency-table", table, "--max-latency-ms", "9", "--block", "bottleneck"],
         "`--latency-table` was measured for image_size=8, channels=1, num_classes=10, stages=3, block=basic; this "
         "run needs `keras-nas latency-table --space resnet --image-size 8 --channels 1 --num-classes 10 --stages 3 "
         "--block bottleneck`"),
        (["--latency-table", other, "--max-latency-ms", "9"],
         "`--latency-table` was measured for image_size=16, channels=1, num_classes=10, stages=3, block=basic; this "
         "run needs `keras-nas latency-table --space resnet --image-size 8 --channels 1 --num-classes 10 --stages 3 "
         "--block basic`"),
        # A table of the other module's space, each way.
        (["--latency-table", table, "--max-latency-ms", "9", "--module", "cell"],
         "`--latency-table`: `table` must be a latency table of the nasnet space; it is one of the resnet space "
         "(`keras-nas latency-table --space nasnet`)"),
        (["--latency-table", cells, "--max-latency-ms", "9"],
         "`--latency-table`: `table` must be a latency table of the resnet space; it is one of the nasnet space "
         "(`keras-nas latency-table --space resnet`)"),
        (["--latency-table", cells, "--max-latency-ms", "9", "--module", "cell", "--filters", "16"],
         "`--latency-table` was measured for image_size=8, channels=1, num_classes=10, stages=3, filters=8; this "
         "run needs `keras-nas latency-table --space nasnet --image-size 8 --channels 1 --num-classes 10 --stages 3 "
         "--filters 16`"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            _run(tmp_path, *options)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not (tmp_path / "run").exists()


def test_latency_budget_from_a_table_stops_growth(tmp_path, capsys):
    # Every block costs 1 ms in the table: resnet:1,1,1 predicts 3 ms and any grown stage 4 ms. The budget 4.2
    # less the default latency margin 0.1 is 3.78 < 4: no stage grows (without the margin each one could).
    table = _resnet_table(tmp_path / "t.json")
    assert _run(tmp_path, "--max-latency-ms", "4.2", "--latency-table", table, "--epochs", "1") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    (decision,) = results["decisions"]
    assert decision["stage_depths"] == [1, 1, 1] and decision["cost"]["latency_ms"] == 3.0
    assert [b["value"] for b in decision["blocked"]] == [4.0, 4.0, 4.0]
    assert [b["limit"] for b in decision["blocked"]] == [pytest.approx(3.78)] * 3
    budget = results["budgets"]["latency_ms"]
    assert budget["target"] == 4.2 and budget["predicted"] == 3.0 and budget["table"] == table
    assert budget["search_target"] == pytest.approx(3.78) and budget["margin"] == 0.1
    assert 0 < budget["measured"] < 3.5 and budget["met"] is True  # the real model is far faster than made-up 3 ms
    assert (budget["runtime"], budget["threads"]) == ("tflite", 1)
    out = capsys.readouterr().out
    assert "stage 1 not grown: latency_ms 4 > budget less the latency margin 3.78" in out
    assert (f"budget latency_ms <= 4.2 (searched for 3.78): best model predicted 3 from {table}, measured "
            f"{budget['measured']:,.6g} on this machine (TFLite, 1 thread) (met)") in out


def test_a_nasnet_table_prices_cell_networks_before_anything_is_trained(tmp_path, capsys):
    from keras_nas import latency
    from keras_nas.stagewise import command

    # Every normal cell costs 1 ms in the table: nasnet:1,1,1 predicts 3 ms > 2.5, refused before training.
    table = _nasnet_table(tmp_path / "t.json")
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path, "--module", "cell", "--max-latency-ms", "2.5", "--latency-table", table)
    assert exit_info.value.code == 2
    assert ("`--max-latency-ms` must leave room for the initial network nasnet:1,1,1 (latency_ms 3)"
            in capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
    args = argparse.Namespace(module="cell", block="basic", filters=8, stages=3, l2=0.0)
    assert command.latency_space(args) == ("nasnet", {"stages": 3, "filters": 8})
    cost = command.cost_function(command.builder(args, (8, 8, 1), 10), measure_latency=True,
                                 table=latency.read_table(table))
    assert [cost(d)["latency_ms"] for d in ([1, 1, 1], [2, 1, 1], [1, 3, 2])] == [3.0, 4.0, 6.0]


def test_a_bottleneck_table_prices_bottleneck_networks_before_anything_is_trained(tmp_path, capsys):
    from keras_nas import latency
    from keras_nas.stagewise import command

    # Every bottleneck block costs 1 ms in the table: resnet:1,1,1 predicts 3 ms > 2.5, refused before training.
    table = _made_up_table(tmp_path / "t.json", "resnet", "resnet/bottleneck", 1.0,
                           {"stages": 3, "block": "bottleneck"})
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path, "--block", "bottleneck", "--max-latency-ms", "2.5", "--latency-table", table)
    assert exit_info.value.code == 2
    assert ("`--max-latency-ms` must leave room for the initial network resnet-bottleneck:1,1,1 (latency_ms 3)"
            in capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
    args = argparse.Namespace(module="residual", block="bottleneck", stages=3, l2=0.0)
    assert command.latency_space(args) == ("resnet", {"stages": 3, "block": "bottleneck"})
    cost = command.cost_function(command.builder(args, (8, 8, 1), 10), measure_latency=True,
                                 table=latency.read_table(table))
    assert [cost(d)["latency_ms"] for d in ([1, 1, 1], [2, 1, 1], [1, 3, 2])] == [3.0, 4.0, 6.0]


@pytest.mark.slow  # trains three NASNet-A networks: ~100 s on 2 cores
def test_cell_latency_budget_from_a_nasnet_table_stops_growth(tmp_path):
    # Every normal cell costs 1 ms in the table (reductions, stem, head 0): nasnet:1,1,1 predicts 3 ms and any
    # grown stage 4 ms > 3.5.
    table = _nasnet_table(tmp_path / "t.json")
    assert _run(tmp_path, "--module", "cell", "--max-latency-ms", "3.5", "--latency-table", table,
                "--epochs", "1") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    (decision,) = results["decisions"]
    assert decision["stage_depths"] == [1, 1, 1] and decision["cost"]["latency_ms"] == 3.0
    assert [b["value"] for b in decision["blocked"]] == [4.0, 4.0, 4.0]
    budget = results["budgets"]["latency_ms"]
    assert budget["target"] == 3.5 and budget["predicted"] == 3.0 and budget["table"] == table
    assert 0 < budget["measured"] < 3.5 and budget["met"] is True  # the real model is far faster than made-up 3 ms
    assert results["candidates"][0]["stage_depths"] == [1, 1, 1]


@pytest.mark.slow
def test_weight_transfer_search(tmp_path):
    donor = str(tmp_path / "donor.keras")
    stage_resnet((3, 3, 3), input_shape=(8, 8, 1), num_classes=10).save(donor)
    assert _run(tmp_path, "--donor", donor, out="transfer") == 0
    results = json.loads((tmp_path / "transfer" / "results.json").read_text())
    assert results["models_trained"] == 3
