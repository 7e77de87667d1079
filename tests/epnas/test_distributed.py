"""`keras-nas search epnas` as a KerasTuner chief and two workers on loopback."""

import json
import os

import pytest


@pytest.mark.slow
def test_chief_and_two_workers_share_the_branches(search_on_workers):
    out, logs = search_on_workers([
        "epnas", "--episodes", "2", "--branches", "2", "--steps", "1", "--top-k", "1", "--prediction",
        "--prediction-epochs", "1", "--batch-scale", "2", "--lr-scale", "2", "--channel-table", "16,32",
        "--max-layers", "4", "--constraint", "params<=5000"])
    results = json.loads(open(os.path.join(out, "results.json")).read())
    assert results["children_trained"] == 4 and len(results["episodes"]) == 2
    trained = [c for c in results["children"] if c["status"] == "COMPLETED"]
    best = results["best"] or results["best_by_reward"]
    assert best["trial_id"] in {c["trial_id"] for c in trained}
    # Both workers trained children (the branches of a step run in parallel), each child once.
    logs = {name: logs[name] for name in ("w0", "w1")}
    assert all("EPNAS child" in text for text in logs.values()), logs
    assert sum(text.count("EPNAS child") for text in logs.values()) == 4
