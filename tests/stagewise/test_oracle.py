"""StageWiseOracle fed with fake metrics (no training): Algorithm 1 decisions, waiting, reload."""

import keras_tuner
import pytest

from keras_nas.stagewise.oracle import StageWiseOracle
from keras_nas.stagewise.oracle import grow_stages, grow_within_budget


def _oracle(tmp_path, **kwargs):
    settings = dict(num_stages=3, initial_depth=2, delta=2, iterations=2)
    settings.update(kwargs)
    oracle = StageWiseOracle(**settings)
    oracle._set_project_dir(str(tmp_path), "search")
    return oracle


def _finish(oracle, trial, importance, accuracy=0.5, status="COMPLETED"):
    metrics = {"val_accuracy": accuracy}
    metrics.update({f"importance_{i}": v for i, v in enumerate(importance)})
    oracle.update_trial(trial.trial_id, metrics)
    trial.status = status
    oracle.end_trial(trial)


def _depths(trial):
    values = trial.hyperparameters.values
    return [values[f"depth_{i}"] for i in range(3)]


def test_grow_stages_only_where_t_is_more_important():
    depths, grown = grow_stages([6, 6, 6], [0.9, 0.8, 0.7], [0.8, 0.9, 0.7], delta=2)
    assert depths == [6, 8, 6]
    assert grown == [False, True, False]  # ties do not grow (strict >)


def _cost(depths):
    # A hand-made cost: 100 params and 1,000 MACs per module, latency 0.5 ms per module of stage 2.
    return {"params": 100 * sum(depths), "macs": 1000 * sum(depths), "latency_ms": 0.5 * depths[2]}


def test_budget_stops_growth_largest_gain_first():
    # Algorithm 1 grows stages 0, 1 and 2 (gains 0.1, 0.3, 0.2); 850 params leave room for 2 modules more than
    # [2, 2, 2] = 600: stage 1 (largest gain) grows first, then stage 2, and stage 0 would reach 900.
    depths, grown, blocked, cost = grow_within_budget([2, 2, 2], [0.5, 0.5, 0.5], [0.6, 0.8, 0.7], 1, _cost,
                                                      {"params": 850})
    assert depths == [2, 3, 3] and grown == [False, True, True]
    assert blocked == [{"stage": 0, "resource": "params", "value": 900, "limit": 850}]
    assert cost == {"params": 800, "macs": 8000, "latency_ms": 1.5}
    # A latency budget blocks the stage that costs latency only.
    depths, grown, blocked, _ = grow_within_budget([2, 2, 2], [0.5] * 3, [0.6] * 3, 2, _cost, {"latency_ms": 1.5})
    assert depths == [4, 4, 2] and [b["stage"] for b in blocked] == [2]
    # No budget reached: the same decision as Algorithm 1.
    assert grow_within_budget([2, 2, 2], [0.5] * 3, [0.6, 0.4, 0.6], 1, _cost, {"macs": 10**6})[:2] == \
        tuple(grow_stages([2, 2, 2], [0.5] * 3, [0.6, 0.4, 0.6], 1))


def test_budgets_in_decisions_and_saved_state(tmp_path):
    oracle = _oracle(tmp_path, iterations=1, delta=1, budgets={"params": 700, "macs": None}, cost_fn=_cost)
    a0, t1 = oracle.create_trial("w0"), oracle.create_trial("w1")
    _finish(oracle, a0, [0.5, 0.5, 0.5])
    _finish(oracle, t1, [0.7, 0.6, 0.4])
    assert _depths(oracle.create_trial("w0")) == [3, 2, 2]
    (decision,) = oracle.decisions
    assert decision["grown"] == [True, False, False] and decision["cost"]["params"] == 700
    assert decision["blocked"] == [{"stage": 1, "resource": "params", "value": 800, "limit": 700}]
    assert oracle.get_state()["budgets"] == {"params": 700}
    other = _oracle(tmp_path, iterations=1, delta=1, budgets={"params": 800}, cost_fn=_cost)
    with pytest.raises(ValueError, match="The saved search used"):
        other.reload()
    with pytest.raises(ValueError, match="`budgets` need a `cost_fn"):
        StageWiseOracle(budgets={"params": 1})
    with pytest.raises(ValueError, match="`budgets` may limit"):
        StageWiseOracle(budgets={"flops": 1}, cost_fn=_cost)


def test_algorithm_1_order_decisions_and_2n_plus_1_trials(tmp_path):
    oracle = _oracle(tmp_path)
    a0 = oracle.create_trial("w0")
    assert _depths(a0) == [2, 2, 2] and a0.hyperparameters.values["role"] == "initial"
    t1 = oracle.create_trial("w1")  # T only needs A's depths: trains in parallel
    assert _depths(t1) == [4, 4, 4] and t1.hyperparameters.values["role"] == "temporary"
    assert oracle.create_trial("w2").status == "IDLE"  # the decision waits for A and T
    _finish(oracle, a0, [0.5, 0.5, 0.5])
    assert oracle.create_trial("w2").status == "IDLE"
    _finish(oracle, t1, [0.6, 0.4, 0.5])
    c1 = oracle.create_trial("w0")
    assert _depths(c1) == [4, 2, 2] and c1.hyperparameters.values["iteration"] == 1
    t2 = oracle.create_trial("w1")  # T of iteration 2 = candidate 1 + delta
    assert _depths(t2) == [6, 4, 4]
    _finish(oracle, c1, [0.3, 0.3, 0.3])
    _finish(oracle, t2, [0.2, 0.4, 0.4])
    c2 = oracle.create_trial("w0")
    assert _depths(c2) == [4, 4, 4]
    _finish(oracle, c2, [0.1, 0.1, 0.1])
    assert oracle.create_trial("w0").status == "STOPPED"
    assert len(oracle.trials) == 2 * 2 + 1
    assert [d["grown"] for d in oracle.decisions] == [[True, False, False], [False, True, True]]
    assert oracle.decisions[1]["importance_a"] == [0.3, 0.3, 0.3]


def test_eleven_models_for_five_iterations(tmp_path):
    oracle = _oracle(tmp_path, iterations=5, initial_depth=6)
    trained = 0
    while True:
        trial = oracle.create_trial("w")
        if trial.status == "STOPPED":
            break
        _finish(oracle, trial, [0.5 + 0.01 * trained] * 3)
        trained += 1
    assert trained == 11  # Table V: 11 evaluated models


def test_reload_mid_search_continues_without_retraining(tmp_path):
    oracle = _oracle(tmp_path)
    a0, t1 = oracle.create_trial("w"), oracle.create_trial("w2")
    _finish(oracle, a0, [0.5, 0.5, 0.5])
    _finish(oracle, t1, [0.4, 0.6, 0.6])
    c1 = oracle.create_trial("w")  # decision 1 taken, candidate running
    assert _depths(c1) == [2, 4, 4]

    again = _oracle(tmp_path)
    again.reload()
    assert again.decisions == oracle.decisions
    assert again.plan == oracle.plan
    # The running candidate is retried first; finished A and T are not.
    retried = again.create_trial("w")
    assert retried.trial_id == c1.trial_id and _depths(retried) == [2, 4, 4]
    t2 = again.create_trial("w2")
    assert _depths(t2) == [4, 6, 6] and t2.trial_id not in (a0.trial_id, t1.trial_id)
    assert again.end_order == [a0.trial_id, t1.trial_id]


def test_reload_with_other_settings_is_refused(tmp_path):
    oracle = _oracle(tmp_path)
    _finish(oracle, oracle.create_trial("w"), [0.5, 0.5, 0.5])
    other = _oracle(tmp_path, delta=1)
    with pytest.raises(ValueError, match="The saved search used"):
        other.reload()


def test_failed_trial_stops_the_search(tmp_path):
    oracle = _oracle(tmp_path)
    a0, t1 = oracle.create_trial("w1"), oracle.create_trial("w2")
    _finish(oracle, a0, [0.5, 0.5, 0.5])
    _finish(oracle, t1, [0.5, 0.5, 0.5], status="FAILED")
    assert oracle.create_trial("w").status == "STOPPED"
    assert "failed" in oracle.stopped_reason


def test_missing_importance_metric_is_reported(tmp_path):
    oracle = _oracle(tmp_path)
    a0, t1 = oracle.create_trial("w1"), oracle.create_trial("w2")
    _finish(oracle, a0, [0.5, 0.5])
    _finish(oracle, t1, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="reported no `importance_2`"):
        oracle.create_trial("w")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(iterations=0), "`iterations` must be a positive int. Received: iterations=0"),
        (dict(delta=-1), "`delta` must be a positive int"),
        (dict(initial_depth=1.5), "`initial_depth` must be a positive int"),
        (dict(max_trials=3), "`max_trials` is fixed by Algorithm 1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StageWiseOracle(**kwargs)


def test_objective_defaults_to_validation_accuracy():
    oracle = StageWiseOracle()
    assert oracle.objective == keras_tuner.Objective("val_accuracy", "max")
    assert oracle.max_trials == 11
