import math
import time

import keras_tuner
import pytest

from keras_nas.engine.search_oracle import SearchOracle
from keras_nas.engine.search_tuner import SearchTuner


class CountingOracle(SearchOracle):
    """Proposes x = 0, 1, 2, ... ; IDLE for the first `idle` requests."""

    def __init__(self, idle=0, **kwargs):
        super().__init__(objective=keras_tuner.Objective("score", "max"), **kwargs)
        self.idle = idle
        self.requests = 0

    def populate_space(self, trial_id):
        self.requests += 1
        if self.requests <= self.idle:
            return {"status": "IDLE"}
        return {"status": "RUNNING", "values": {"x": len(self.trials)}}


def _oracle(tmp_path, **kwargs):
    oracle = CountingOracle(**kwargs)
    oracle._set_project_dir(str(tmp_path), "p")
    return oracle


def _complete(oracle, trial, score=1.0):
    oracle.update_trial(trial.trial_id, {"score": score})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


def test_dead_worker_trial_goes_to_another_worker_and_counts_once(tmp_path):
    oracle = _oracle(tmp_path, max_trials=2, lease_seconds=0.05)
    first = oracle.create_trial("dead")
    time.sleep(0.1)
    taken = oracle.create_trial("alive")
    assert taken.trial_id == first.trial_id
    assert oracle.expired_leases[0]["tuner_id"] == "dead"
    _complete(oracle, taken)
    # The "dead" worker was only slow and reports too: recorded once.
    _complete(oracle, first)
    assert oracle.end_order == [first.trial_id]
    second = oracle.create_trial("alive")
    assert second.trial_id != first.trial_id
    _complete(oracle, second)
    assert oracle.create_trial("alive").status == "STOPPED"
    assert oracle.ongoing_trials == {}


def test_heartbeats_keep_the_lease(tmp_path):
    oracle = _oracle(tmp_path, max_trials=2, lease_seconds=0.15)
    trial = oracle.create_trial("w1")
    for _ in range(4):
        time.sleep(0.06)
        oracle.get_trial(trial.trial_id)  # heartbeat
    other = oracle.create_trial("w2")
    assert other.trial_id != trial.trial_id
    assert oracle.expired_leases == []


def test_worker_waits_instead_of_exiting_while_others_run(tmp_path):
    oracle = _oracle(tmp_path, max_trials=1)
    trial = oracle.create_trial("w1")
    assert oracle.create_trial("w2").status == "IDLE"
    _complete(oracle, trial)
    assert oracle.create_trial("w2").status == "STOPPED"
    assert oracle.create_trial("w1").status == "STOPPED"


def test_state_is_written_atomically_and_reloads(tmp_path):
    oracle = _oracle(tmp_path, max_trials=3, lease_seconds=42)
    done = oracle.create_trial("w")
    _complete(oracle, done, 0.5)
    running = oracle.create_trial("w")
    files = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert not [f for f in files if f.startswith(".tmp")]
    reloaded = _oracle(tmp_path, max_trials=3)
    reloaded.reload()
    assert reloaded.lease_seconds == 42
    assert reloaded.trials[done.trial_id].score == 0.5
    # A trial that was running when the process died is retried, not lost.
    assert reloaded.create_trial("w").trial_id == running.trial_id


def test_bad_lease(tmp_path):
    with pytest.raises(ValueError, match="`lease_seconds` must be a positive number"):
        CountingOracle(lease_seconds=0)


class SleepyTuner(SearchTuner):
    def __init__(self, *args, sleep=0.0, losses=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.sleep = sleep
        self.losses = losses

    def run_trial(self, trial, *args, **kwargs):
        time.sleep(self.sleep)
        x = trial.hyperparameters.values["x"]
        if self.losses:
            self.check_finite({"loss": [self.losses[x]]})
        return {"score": float(x)}


def test_tuner_heartbeat_outlives_a_short_lease(tmp_path):
    oracle = CountingOracle(max_trials=1, lease_seconds=0.3)
    tuner = SleepyTuner(oracle=oracle, directory=str(tmp_path), project_name="p",
                        heartbeat_seconds=0.05, sleep=0.8)
    tuner.search(verbose=0)
    assert oracle.expired_leases == []
    assert len(oracle.end_order) == 1


def test_idle_answers_are_waited_out_not_spun(tmp_path):
    oracle = CountingOracle(idle=4, max_trials=1)
    tuner = SleepyTuner(oracle=oracle, directory=str(tmp_path), project_name="p")
    start = time.perf_counter()
    tuner.search(verbose=0)
    # 4 IDLE answers -> 4 backed-off requests (0.1 + 0.2 + 0.4 + 0.8 s).
    assert oracle.requests == 5
    assert time.perf_counter() - start >= 1.4


def test_nan_loss_fails_the_trial_and_the_search_goes_on(tmp_path):
    oracle = CountingOracle(max_trials=3, max_consecutive_failed_trials=3)
    tuner = SleepyTuner(oracle=oracle, directory=str(tmp_path), project_name="p",
                        losses=[1.0, math.nan, 0.5])
    tuner.search(verbose=0)
    statuses = [oracle.trials[t].status for t in oracle.end_order]
    assert statuses == ["COMPLETED", "FAILED", "COMPLETED"]
    assert "`loss` became nan at epoch 1" in oracle.trials[oracle.end_order[1]].message


def test_consecutive_failures_stop_the_search_with_a_message(tmp_path):
    oracle = CountingOracle(max_trials=5, max_consecutive_failed_trials=2)
    tuner = SleepyTuner(oracle=oracle, directory=str(tmp_path), project_name="p",
                        losses=[math.inf] * 5)
    with pytest.raises(RuntimeError, match="consecutive failures exceeded the limit of 2"):
        tuner.search(verbose=0)


def test_trial_records_keep_failure_reasons(tmp_path):
    from keras_nas.engine.runtime import trial_records

    oracle = CountingOracle(max_trials=2, max_consecutive_failed_trials=3)
    tuner = SleepyTuner(oracle=oracle, directory=str(tmp_path), project_name="p",
                        losses=[math.nan, 0.5])
    tuner.search(verbose=0)
    records = trial_records(oracle)
    assert [r["status"] for r in records] == ["FAILED", "COMPLETED"]
    assert records[0]["reason"].endswith("`loss` became nan at epoch 1; the trial is ended as failed.")
    assert records[1]["metrics"] == {"score": 1.0} and "reason" not in records[1]


def test_run_search_records_failed_trials_before_giving_up(tmp_path):
    import json

    from keras_nas.engine.runtime import run_search

    oracle = CountingOracle(max_trials=5, max_consecutive_failed_trials=2)
    tuner = SleepyTuner(oracle=oracle, directory=str(tmp_path), project_name="p",
                        losses=[math.nan] * 5)
    with pytest.raises(RuntimeError, match=r"consecutive failures exceeded the limit of 2\..*trial 0: "):
        run_search(tuner, oracle, str(tmp_path), "demo", verbose=0)
    with open(tmp_path / "results.json") as f:
        results = json.load(f)
    assert results["stopped_reason"].startswith("Number of consecutive failures exceeded the limit of 2")
    assert [t["status"] for t in results["trials"]] == ["FAILED", "FAILED"]
    assert all("`loss` became nan at epoch 1" in t["reason"] for t in results["trials"])


def test_reload_drops_a_trial_written_before_the_oracle_state(tmp_path):
    import json

    oracle = _oracle(tmp_path, max_trials=5)
    _complete(oracle, oracle.create_trial("w0"))
    orphan = oracle.create_trial("w1")
    # Killed between KerasTuner's _save_trial and save(): the trial file exists,
    # the saved oracle state does not know the trial.
    state = oracle.get_state()
    state["start_order"].remove(orphan.trial_id)
    state["ongoing_trials"].pop("w1")
    with open(oracle._get_oracle_fname(), "w") as f:
        json.dump(state, f)
    again = _oracle(tmp_path, max_trials=5)
    again.reload()
    assert len(again.trials) == 1
    retry = again.create_trial("w2")
    assert retry.trial_id == orphan.trial_id and retry.hyperparameters.values == {"x": 1}
