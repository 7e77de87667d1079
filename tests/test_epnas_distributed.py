"""`keras-nas search epnas` as a KerasTuner chief and two workers on loopback."""

import json
import os
import socket
import subprocess
import sys

import pytest


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_share_the_branches(tmp_path):
    port = _free_port()
    out = str(tmp_path / "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    base = [sys.executable, "-m", "keras_nas.cli", "search", "epnas", "--episodes", "2", "--branches", "2",
            "--steps", "1", "--top-k", "1", "--prediction", "--prediction-epochs", "1", "--batch-scale", "2",
            "--lr-scale", "2", "--channel-table", "16,32", "--max-layers", "4", "--constraint", "params<=5000",
            "--verbose", "0", "--out", out, "--chief", f"127.0.0.1:{port}"]
    processes = {}
    for name in ("chief", "w0", "w1"):
        log = open(tmp_path / f"{name}.log", "w")
        processes[name] = subprocess.Popen(base + ["--worker-id", name], env=env, stdout=log, stderr=subprocess.STDOUT)
    for name, process in processes.items():
        try:
            process.wait(timeout=400)
        except subprocess.TimeoutExpired:
            process.kill()
        assert process.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    results = json.loads(open(os.path.join(out, "results.json")).read())
    assert results["children_trained"] == 4 and len(results["episodes"]) == 2
    assert "best" in results
    # Both workers trained children (the branches of a step run in parallel), each child once.
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("w0", "w1")}
    assert all("EPNAS child" in text for text in logs.values()), logs
    assert sum(text.count("EPNAS child") for text in logs.values()) == 4
