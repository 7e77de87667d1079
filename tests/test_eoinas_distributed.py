"""`keras-nas search eoinas` seeds spread over a KerasTuner chief and two workers on loopback."""

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
def test_two_workers_search_one_seed_each(tmp_path):
    port = _free_port()
    out = str(tmp_path / "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    base = [sys.executable, "-m", "keras_nas.cli", "search", "eoinas", "--seeds", "2", "--cells", "3",
            "--init-channels", "4", "--epochs", "2", "--warmup-epochs", "1", "--prune-interval", "1",
            "--edge-mode", "darts", "--eval-cells", "3", "--eval-channels", "4", "--eval-epochs", "1",
            "--verbose", "0", "--out", out, "--chief", f"127.0.0.1:{port}"]
    processes = {}
    for name in ("chief", "w0", "w1"):
        log = open(tmp_path / f"{name}.log", "w")
        processes[name] = subprocess.Popen(base + ["--worker-id", name], env=env, stdout=log,
                                           stderr=subprocess.STDOUT)
    for name, process in processes.items():
        try:
            process.wait(timeout=1200)
        except subprocess.TimeoutExpired:
            process.kill()
        assert process.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert [t["status"] for t in results["trials"]] == ["COMPLETED", "COMPLETED"]
    assert sorted(t["values"]["seed"] for t in results["trials"]) == [0, 1]
    # Each worker searched one seed (each seed's search ran once).
    logs = [(tmp_path / f"{name}.log").read_text() for name in ("w0", "w1")]
    assert all("EoiNAS seed" in log for log in logs)
    assert os.path.exists(os.path.join(out, "best_model.keras"))
