"""End-to-end `keras-nas search cnas` runs (slow): results, export, kill -9 and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tests.helpers import assert_only_owned, check_results_contract

pytestmark = pytest.mark.slow

SMALL = ["--sparsity", "0.5", "--epochs", "2", "--final-epochs", "1", "--saliency-batches", "3",
         "--gamma", "0.2", "--verbose", "0"]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _cli(*argv, timeout=900):
    result = subprocess.run([sys.executable, "-m", "keras_nas.cli", *argv], env=_env(), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def test_search_writes_results_and_an_exportable_model(tmp_path):
    out = str(tmp_path / "cnas")
    log = _cli("search", "cnas", *SMALL, "--out", out)
    assert "CNAS iteration 1:" in log and "Done: CNAS-R" in log
    results = json.load(open(os.path.join(out, "results.json")))
    assert results["final_params"] <= 0.5 * results["oneshot_params"]
    assert results["sparsity"] == pytest.approx(results["final_params"] / results["oneshot_params"])
    assert results["materialize_max_abs_difference"] < 1e-4 and results["saliency_form"] == "taylor"
    assert results["final"]["params"] == results["final_params"]
    assert {"X", "Y", "params", "X_star", "params_star", "d_to_x", "z_to_x"} <= set(results["cells"][0])
    assert set(results["baselines"]) == {"no_pruning", "random_pruning"}
    assert results["baselines"]["random_pruning"]["params"] <= results["final_params"]
    for name in ("best_model.keras", "sparse_model.keras", "topology.png", "pruning.png", "history.png"):
        assert os.path.exists(os.path.join(out, name)), name
    assert_only_owned(out)
    checked = check_results_contract(out, beats_chance_by=0.1)
    assert checked["best"]["params"] == results["final_params"] == results["final"]["params"]
    _cli("export", os.path.join(out, "best_model.keras"), "--out", str(tmp_path / "export"))
    assert os.path.exists(tmp_path / "export" / "1" / "saved_model.pb")  # TF Serving version 1
    again = _cli("search", "cnas", *SMALL, "--out", out)
    assert "CNAS iteration" not in again and again.count("not redone") == 5  # 5 phases, all done


def test_killed_search_resumes_at_its_last_iteration(tmp_path):
    out = str(tmp_path / "cnas")
    command = [sys.executable, "-m", "keras_nas.cli", "search", "cnas", *SMALL, "--no-baselines",
               "--mode", "finetune", "--out", out]
    state = os.path.join(out, "search", "state.json")
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while not (os.path.exists(state) and json.load(open(state))["epochs_done"] >= 2):
            assert process.poll() is None, open(tmp_path / "first.log").read()[-3000:]
            assert time.time() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()
    done_before = json.load(open(state))["epochs_done"]
    log = _cli("search", "cnas", *SMALL, "--no-baselines", "--mode", "finetune", "--out", out)
    assert f"[search] resuming after epoch {done_before}" in log
    assert "[oneshot] finished earlier (2 epochs); not redone" in log
    results = json.load(open(os.path.join(out, "results.json")))
    numbers = [r["iteration"] for r in results["iterations"]]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > done_before
    assert results["mode"] == "CNAS-W" and results["sparsity"] <= 0.5
