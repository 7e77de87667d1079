"""`keras-nas search stagewise` as a KerasTuner chief and two workers on loopback."""

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
def test_chief_and_two_workers_run_algorithm_1(tmp_path):
    port = _free_port()
    out = str(tmp_path / "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    base = [sys.executable, "-m", "keras_nas.cli", "search", "stagewise", "--epochs", "1", "--iterations", "1",
            "--m0", "1", "--importance-samples", "64", "--verbose", "0", "--out", out,
            "--chief", f"127.0.0.1:{port}"]
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
    assert results["models_trained"] == 3
    assert [c["iteration"] for c in results["candidates"]] == [1]
    # Each trial was trained once, whichever worker ran it.
    summaries = [p for p in os.listdir(os.path.join(out, "trials")) if p.startswith("trial_")]
    assert len(summaries) == 3
