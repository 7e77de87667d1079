"""`kill -9` in the middle of an EPNAS search, then the same command again."""

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


def _completed(trials_dir):
    done = {}
    if not os.path.isdir(trials_dir):
        return done
    for name in sorted(os.listdir(trials_dir)):
        path = os.path.join(trials_dir, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            with open(path) as f:
                state = json.load(f)  # written atomically: always valid JSON
            if state["status"] == "COMPLETED":
                done[name] = os.path.getmtime(os.path.join(trials_dir, name, "summary.json"))
    return done


def test_kill_mid_episode_then_resume(tmp_path):
    out = str(tmp_path / "run")
    command = [sys.executable, "-m", "keras_nas.cli", "search", "epnas", "--out", out, "--verbose", "0",
               "--episodes", "2", "--branches", "2", "--steps", "2", "--top-k", "1", "--epochs", "2",
               "--channel-table", "16,32", "--max-layers", "4", "--prediction", "--prediction-epochs", "2",
               "--batch-scale", "2", "--lr-scale", "2", "--constraint", "params<=5000"]
    trials = os.path.join(out, "trials")
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while len(_completed(trials)) < 3:  # inside episode 1: step 0 merged, step 1 running
            assert process.poll() is None, open(tmp_path / "first.log").read()[-3000:]
            assert time.time() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = _completed(trials)
    with open(tmp_path / "second.log", "w") as log:
        result = subprocess.run(command, env=_env(), stdout=log, stderr=subprocess.STDOUT, timeout=900)
    assert result.returncode == 0, open(tmp_path / "second.log").read()[-3000:]
    after = _completed(trials)
    assert len(after) == 8
    assert {k: after[k] for k in finished} == finished  # finished children were not retrained
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["children_trained"] == 8 and len(results["episodes"]) == 2
