"""A real search whose trials diverge: failed trials keep their reason, the search stops cleanly."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_eoinas_seeds_that_diverge_are_failed_trials_with_reasons(tmp_path):
    out = str(tmp_path / "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # A learning rate of 1e30 makes the loss NaN in the first epoch.
    command = [sys.executable, "-m", "keras_nas.cli", "search", "eoinas", "--out", out, "--verbose", "0",
               "--cells", "3", "--init-channels", "4", "--epochs", "2", "--warmup-epochs", "1",
               "--prune-interval", "1", "--edge-mode", "darts", "--seeds", "2", "--learning-rate", "1e30",
               "--max-failures", "2"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "keras-nas: stopped: Number of consecutive failures exceeded the limit of 2" in result.stderr
    # KerasTuner prints each failed trial's traceback as it goes; ours ends the output.
    assert result.stderr.strip().splitlines()[-1] == "(set KERAS_NAS_DEBUG=1 for the traceback)"
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert [t["status"] for t in results["trials"]] == ["FAILED", "FAILED"]
    assert all("became nan" in t["reason"] for t in results["trials"])
