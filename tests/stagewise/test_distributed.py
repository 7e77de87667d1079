"""`keras-nas search stagewise` as a KerasTuner chief and two workers on loopback."""

import json
import os

import pytest


@pytest.mark.slow
def test_chief_and_two_workers_run_algorithm_1(search_on_workers):
    out, _ = search_on_workers(["stagewise", "--epochs", "1", "--iterations", "1", "--m0", "1",
                                "--importance-samples", "64"])
    results = json.loads(open(os.path.join(out, "results.json")).read())
    assert results["models_trained"] == 3
    assert [c["iteration"] for c in results["candidates"]] == [1]
    # Each trial was trained once, whichever worker ran it.
    summaries = [p for p in os.listdir(os.path.join(out, "trials")) if p.startswith("trial_")]
    assert len(summaries) == 3
