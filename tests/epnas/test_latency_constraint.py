"""EPNAS `latency_ms<=X`: the latency joins the soft constraints of Eq. 2-3, from a latency table or timed (issue 24)."""

import json
import os

import pytest

from keras_nas import cli, latency
from keras_nas.epnas.constraints import child_latency, constraint_report, parse_constraint, parse_constraints
from keras_nas.epnas.reward import constrained_reward
from keras_nas.epnas.space import EPNASSpace

ARCH = [
    {"type": "conv2d", "filter_width": 3, "pool_width": 2, "channels": 16, "activation": "relu", "src1": 0,
     "src2": -1},
    {"type": "MaxPool2d", "filter_width": 3, "pool_width": 2, "channels": 16, "activation": "relu", "src1": 1,
     "src2": -1},
]


def _table(space="epnas"):
    entries = {
        "epnas/conv|type=conv2d|k=3|in=8x8x1|out=16": 1.25,
        "epnas/act|act=relu|in=8x8x16": 0.25,
        "epnas/pool|type=MaxPool2d|p=2|in=8x8x16": 0.5,
        "epnas/head|in=4x4x16|classes=10": 0.5,
    }
    return {"space": space, "device": {}, "runtime": "tflite", "threads": 1, "versions": {},
            "created": "2026-12-03T00:00:00Z", "config": {"image_size": 8, "channels": 1, "num_classes": 10},
            "overhead_ms": 0.5, "entries": entries}


@pytest.fixture(scope="module")
def model():
    return EPNASSpace("layers").build(ARCH, (8, 8, 1), 10)


def test_latency_ms_is_a_constraint_resource():
    assert parse_constraint("latency_ms<=2.5") == {"resource": "latency_ms", "lower": None, "upper": 2.5,
                                                   "text": "latency_ms<=2.5"}


def test_predicted_latency_and_its_penalty_and_reward_match_hand_values(model):
    usage, source = child_latency(model, _table())
    assert (usage, source) == (pytest.approx(0.5 + 1.25 + 0.25 + 0.5 + 0.5), "table")  # 3.0 ms
    constraints = parse_constraints(["latency_ms<=2", "params<=1e6"])
    # Eq. 2: 3.0 / 2 - 1 = 0.5 over the bound -> 0.9 ** 0.5; Eq. 3: P x prod V
    reward, penalties = constrained_reward(0.8, {"latency_ms": usage, "params": 200}, constraints)
    assert penalties == {"latency_ms": pytest.approx(0.9**0.5), "params": 1.0}
    assert reward == pytest.approx(0.8 * 0.9**0.5)
    (report,) = constraint_report({"latency_ms": usage}, parse_constraints(["latency_ms<=4"]))
    assert report["satisfied"] and report["penalty"] == 1.0 and report["usage"] == pytest.approx(3.0)


def test_without_a_table_the_child_is_timed(model):
    usage, source = child_latency(model)
    assert source == "measured" and usage > 0


def test_a_table_of_another_space_is_refused(model):
    with pytest.raises(ValueError, match="must be a latency table of the epnas space; it is one of the resnet"):
        latency.read_table(_table("resnet"), space="epnas")


def _refused(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_cli_checks_the_latency_table_against_the_constraints_and_mode(tmp_path, capsys):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_table()))
    out = tmp_path / "run"
    base = ["search", "epnas", "--out", str(out), "--latency-table", str(path)]
    assert _refused(base, capsys) == ("keras-nas: error: `--latency-table` is read for a latency_ms constraint "
                                      "only; add `--constraint` latency_ms<=X. Received: --latency-table "
                                      f"{path}")
    assert "must be a latency table of the epnas-module space; it is one of the epnas space" in _refused(
        base + ["--constraint", "latency_ms<=2", "--mode", "module"], capsys)
    path.write_text(json.dumps(_table("resnet")))
    assert "must be a latency table of the epnas space" in _refused(base + ["--constraint", "latency_ms<=2"], capsys)
    assert "must be an existing latency table JSON file" in _refused(
        ["search", "epnas", "--out", str(out), "--latency-table", str(tmp_path / "none.json")], capsys)
    assert not out.exists()


@pytest.mark.slow
def test_search_with_a_latency_table_reports_target_predicted_and_measured(tmp_path):
    # Every key of the search's space at 0.01 ms (a real tflite table of its 510 entries takes ~6 min here);
    # the saved child's `measured` is a real TFLite timing.
    keys = latency.table_keys("epnas", image_size=8, channels=1, num_classes=10, channel_table=(16, 32))
    table = dict(_table(), entries=dict.fromkeys(keys, 0.01), overhead_ms=0.02)
    path = str(tmp_path / "t.json")
    latency.save_table(table, path)
    out = str(tmp_path / "run")
    assert cli.main(["search", "epnas", "--constraint", "latency_ms<=0.05", "--latency-table", path, "--out", out,
                     "--episodes", "1", "--branches", "2", "--steps", "1", "--top-k", "1", "--epochs", "1",
                     "--channel-table", "16,32", "--max-layers", "4", "--verbose", "0"]) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    target = results["latency_target"]
    assert target["target"] == "latency_ms<=0.05" and target["runtime"] == "tflite" and target["measured"] > 0
    # The soft constraint is the bound less the default latency margin 0.1; "met" is judged against the bound.
    assert target["search_bound"] == "latency_ms<=0.045" and target["margin"] == 0.1
    assert target["met"] is (target["measured"] <= 0.05)
    for child in results["children"]:
        assert child["penalties"]["latency_ms"] == pytest.approx(0.9 ** max(0.0, child["latency_ms"] / 0.045 - 1))
    chosen = results["best"] or results["best_by_reward"]
    assert target["predicted"] == next(c["latency_ms"] for c in results["children"]
                                       if c["trial_id"] == chosen["trial_id"])
