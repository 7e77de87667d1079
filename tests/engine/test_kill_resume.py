"""`kill -9` in the middle of a search, then the same command again.

Each test starts a real `keras-nas search ...` process, kills it with SIGKILL
as soon as some work has finished, runs the same command again and checks
that the search completes without redoing the finished work.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _command(method, out, options):
    return [sys.executable, "-m", "keras_nas.cli", "search", method, "--out", out, "--verbose", "0", *options]


def _kill_when(command, ready, log_path, timeout=900):
    """Starts `command`, SIGKILLs it once `ready()` is true; fails if it ends first."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while not ready():
            if process.poll() is not None:
                pytest.fail(f"finished before it could be killed:\n{open(log_path).read()[-3000:]}")
            if time.time() > deadline:
                process.kill()
                pytest.fail("the awaited work never finished")
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()


def _run(command, log_path, timeout=1200):
    with open(log_path, "w") as log:
        result = subprocess.run(command, env=_env(), stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    assert result.returncode == 0, open(log_path).read()[-3000:]


def _completed_trials(trials_dir):
    done = []
    if not os.path.isdir(trials_dir):
        return done
    for name in sorted(os.listdir(trials_dir)):
        path = os.path.join(trials_dir, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            try:
                with open(path) as f:
                    if json.load(f)["status"] == "COMPLETED":
                        done.append(name)
            except (ValueError, KeyError):
                pytest.fail(f"{path} is not valid JSON: state must be written atomically")
    return done


def _mtimes(folder):
    stamps = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name != "trial.json":
                path = os.path.join(root, name)
                stamps[path] = os.path.getmtime(path)
    return stamps


def test_stagewise_resumes_after_kill(tmp_path):
    out = str(tmp_path / "run")
    trials = os.path.join(out, "trials")
    command = _command("stagewise", out, ["--epochs", "1", "--iterations", "1", "--m0", "1",
                                          "--importance-samples", "64"])
    _kill_when(command, lambda: bool(_completed_trials(trials)), tmp_path / "first.log")
    finished = _completed_trials(trials)
    stamps = {name: _mtimes(os.path.join(trials, name)) for name in finished}
    _run(command, tmp_path / "second.log")
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["models_trained"] == 3
    # Trials finished before the kill were not trained again.
    for name in finished:
        assert _mtimes(os.path.join(trials, name)) == stamps[name], name


def test_eoinas_resumes_from_its_last_epoch_after_kill(tmp_path):
    out = str(tmp_path / "run")
    state = os.path.join(out, "tuner", "trial_0", "search", "state.json")  # engine.checkpoint.STATE_FILE

    def two_epochs_done():
        try:
            with open(state) as f:
                return json.load(f)["epochs_done"] >= 2
        except (OSError, ValueError):
            return False

    command = _command("eoinas", out, ["--cells", "3", "--init-channels", "4", "--epochs", "5",
                                       "--warmup-epochs", "1", "--prune-interval", "1", "--edge-mode", "darts",
                                       "--eval-cells", "3", "--eval-channels", "4", "--eval-epochs", "1"])
    _kill_when(command, two_epochs_done, tmp_path / "first.log")
    with open(state) as f:
        done_at_kill = json.load(f)["epochs_done"]
    _run(command, tmp_path / "second.log")
    with open(os.path.join(out, "tuner", "trial_0", "search", "history.csv")) as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    # Epochs finished before the kill ran once; at most the running one twice.
    assert sorted(set(epochs)) == [0, 1, 2, 3, 4]
    assert len(epochs) <= 5 + 1
    assert all(epochs.count(e) == 1 for e in range(done_at_kill - 1))
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert 0.0 <= results["search"]["val_accuracy"] <= 1.0
    with open(os.path.join(out, "tuner", "trial_0", "search", "search.json")) as f:
        search = json.load(f)
    # The history spans the kill: one entry per epoch.
    assert len(search["history"]["loss"]) == 5
    assert os.path.exists(os.path.join(out, "best_model.keras"))
