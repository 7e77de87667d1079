"""A KerasTuner chief and workers as real processes on loopback (no training)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

SCRIPT = r'''
import json, os, sys, time
import keras_tuner
from keras_nas.engine.search_oracle import SearchOracle
from keras_nas.engine.search_tuner import SearchTuner

LOG = os.environ["TOY_LOG"]
ME = os.environ["KERASTUNER_TUNER_ID"]

class Oracle(SearchOracle):
    def populate_space(self, trial_id):
        return {"status": "RUNNING", "values": {"x": len(self.trials)}}

class Tuner(SearchTuner):
    def run_trial(self, trial, *args, **kwargs):
        x = trial.hyperparameters.values["x"]
        open(os.path.join(LOG, f"start-{x}-{ME}"), "w").close()
        time.sleep(120 if os.environ.get("TOY_SLOW") == "1" else 0.7)
        open(os.path.join(LOG, f"end-{x}-{ME}"), "w").close()
        return {"score": float(x)}

oracle = Oracle(objective=keras_tuner.Objective("score", "max"),
                max_trials=int(os.environ["TOY_TRIALS"]), lease_seconds=float(os.environ["TOY_LEASE"]))
tuner = Tuner(oracle=oracle, directory=os.environ["TOY_DIR"], project_name="p", heartbeat_seconds=0.5)
tuner.search(verbose=0)
if ME == "chief":
    summary = {"end_order": oracle.end_order,
               "status": {t: oracle.trials[t].status for t in oracle.end_order},
               "expired": oracle.expired_leases}
    with open(os.path.join(LOG, "..", "summary.json"), "w") as f:
        json.dump(summary, f)
'''


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path, tuner_id, port, trials, lease, **extra):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(port),
        "KERASTUNER_TUNER_ID": tuner_id,
        "TOY_LOG": str(tmp_path / "log"),
        "TOY_DIR": str(tmp_path / "search"),
        "TOY_TRIALS": str(trials),
        "TOY_LEASE": str(lease),
        "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **extra,
    }
    script = tmp_path / "toy_search.py"
    if not script.exists():
        script.write_text(SCRIPT)
    log = open(tmp_path / f"{tuner_id}.out", "w")
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(tmp_path, process, name, timeout=120):
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
    out = (tmp_path / f"{name}.out").read_text()
    assert process.returncode == 0, out[-3000:]


def _wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_chief_and_two_workers_run_every_trial_once(tmp_path):
    (tmp_path / "log").mkdir()
    port = _free_port()
    chief = _start(tmp_path, "chief", port, trials=6, lease=30)
    workers = [_start(tmp_path, f"worker{i}", port, trials=6, lease=30) for i in range(2)]
    for name, process in [("worker0", workers[0]), ("worker1", workers[1]), ("chief", chief)]:
        _finish(tmp_path, process, name)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["end_order"]) == [f"{i}" for i in range(6)]
    assert set(summary["status"].values()) == {"COMPLETED"}
    ends = sorted(p for p in os.listdir(tmp_path / "log") if p.startswith("end-"))
    assert len(ends) == 6  # each trial trained exactly once
    assert {e.rsplit("-", 1)[1] for e in ends} == {"worker0", "worker1"}


@pytest.mark.slow  # keeps the default suite within 15 minutes; `pytest -m slow` runs it
def test_killed_worker_trial_is_finished_by_another(tmp_path):
    (tmp_path / "log").mkdir()
    port = _free_port()
    chief = _start(tmp_path, "chief", port, trials=3, lease=3)
    doomed = _start(tmp_path, "doomed", port, trials=3, lease=3, TOY_SLOW="1")
    assert _wait_for(lambda: any(p.startswith("start-") for p in os.listdir(tmp_path / "log")), 120)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    survivor = _start(tmp_path, "survivor", port, trials=3, lease=3)
    for name, process in (("survivor", survivor), ("chief", chief)):
        _finish(tmp_path, process, name)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["end_order"]) == ["0", "1", "2"]
    assert [e["tuner_id"] for e in summary["expired"]] == ["doomed"]
    ends = [p for p in os.listdir(tmp_path / "log") if p.startswith("end-")]
    assert sorted(ends) == ["end-0-survivor", "end-1-survivor", "end-2-survivor"]
