"""`keras-nas search eoinas` seeds spread over a KerasTuner chief and two workers on loopback."""

import json
import os

import pytest


@pytest.mark.slow
def test_two_workers_search_one_seed_each(search_on_workers):
    out, logs = search_on_workers([
        "eoinas", "--seeds", "2", "--cells", "3", "--init-channels", "4", "--epochs", "2", "--warmup-epochs", "1",
        "--prune-interval", "1", "--edge-mode", "darts", "--eval-cells", "3", "--eval-channels", "4",
        "--eval-epochs", "1"], timeout=1200)
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert [t["status"] for t in results["trials"]] == ["COMPLETED", "COMPLETED"]
    assert sorted(t["values"]["seed"] for t in results["trials"]) == [0, 1]
    # Each worker searched one seed (each seed's search ran once).
    assert all("EoiNAS seed" in logs[name] for name in ("w0", "w1"))
    assert os.path.exists(os.path.join(out, "best_model.keras"))
