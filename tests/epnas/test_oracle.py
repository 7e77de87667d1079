"""EPNASOracle and the random baseline fed with fake metrics (no training): episodes, waiting, REINFORCE, reload."""

import json

import numpy as np
import pytest

from keras_nas.epnas.oracle import EPNASOracle
from keras_nas.epnas.random_oracle import RandomArchitectureOracle
from keras_nas.epnas.space import EPNASSpace

SPACE = EPNASSpace("layers", max_layers=6, initial_layers=(2, 4))


def _oracle(tmp_path, **kwargs):
    settings = dict(space=SPACE, constraints=["params<=1000"], episodes=2, branches=2, steps=2, top_k=1,
                    action_units=16, seed=1)
    settings.update(kwargs)
    oracle = EPNASOracle(**settings)
    oracle._set_project_dir(str(tmp_path), "search")
    return oracle


def _finish(oracle, trial, reward, status="COMPLETED"):
    oracle.update_trial(trial.trial_id, {"reward": reward, "val_accuracy": reward})
    trial.status = status
    oracle.end_trial(trial)


def _arch(trial):
    return json.loads(trial.hyperparameters.values["architecture"])


def test_branches_run_in_parallel_and_steps_wait(tmp_path):
    oracle = _oracle(tmp_path)
    assert oracle.max_trials == 8
    t0, t1 = oracle.create_trial("w0"), oracle.create_trial("w1")
    assert (t0.status, t1.status) == ("RUNNING", "RUNNING")
    values = t0.hyperparameters.values
    assert (values["episode"], values["step"], values["branch"]) == (0, 0, 0)
    assert json.loads(values["constraints"])[0]["upper"] == 1000.0 and values["penalty_base"] == 0.9
    assert all(isinstance(v, (str, int, float)) for v in values.values())
    SPACE.validate(_arch(t0))
    assert oracle.create_trial("w2").status == "IDLE"  # step 0 outstanding
    _finish(oracle, t0, 0.3)
    assert oracle.create_trial("w0").status == "IDLE"
    _finish(oracle, t1, 0.7)
    t2 = oracle.create_trial("w0")
    assert t2.status == "RUNNING" and t2.hyperparameters.values["step"] == 1
    # Step 1 of branch 0 grows out of step 0's child of branch 0.
    assert oracle.children[t2.trial_id]["parent"] == _arch(t0)
    # ... and knows where its layers sat in that parent (the sharing keys it reads, section 3.4).
    child = oracle.children[t2.trial_id]
    positions = json.loads(t2.hyperparameters.values["parent_positions"])
    assert positions == [-1 if p is None else p for p in SPACE.parent_positions(child["parent"], child["action"])]
    assert len(positions) == len(_arch(t2))
    assert not oracle.history


def test_episode_end_updates_the_policy_and_starts_from_the_top_k(tmp_path):
    oracle = _oracle(tmp_path)
    before = [w.copy() for w in oracle.policy.model.get_weights()]
    rewards = [0.3, 0.7, 0.2, 0.1]
    trials = []
    for step in range(2):
        batch = [oracle.create_trial(f"w{b}") for b in range(2)]
        for trial, reward in zip(batch, rewards[2 * step: 2 * step + 2]):
            _finish(oracle, trial, reward)
        trials += batch
    assert len(oracle.history) == 0  # the update waits for the next request
    nxt = oracle.create_trial("w0")
    (episode,) = oracle.history
    # rewards[n][t]: branch 0 = trials 0, 2; branch 1 = trials 1, 3
    assert episode["rewards"] == [[0.3, 0.2], [0.7, 0.1]]
    assert episode["baseline_used"] == pytest.approx([(0.5 + 0.8) / 2, (0.2 + 0.1) / 2])
    assert episode["best_trial"] == trials[1].trial_id and episode["top_k"] == [trials[1].trial_id]
    assert oracle.baseline == pytest.approx([0.65, 0.15])
    after = oracle.policy.model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    # top_k = 1: both branches of episode 1 start from the best child.
    assert oracle.starts["1"] == [_arch(trials[1])] * 2
    assert oracle.children[nxt.trial_id]["parent"] == _arch(trials[1])
    assert nxt.hyperparameters.values["episode"] == 1


def test_failed_child_earns_zero(tmp_path):
    oracle = _oracle(tmp_path, episodes=1, steps=1)
    a, b = oracle.create_trial("w0"), oracle.create_trial("w1")
    _finish(oracle, a, 0.5)
    b.status = "FAILED"
    oracle.end_trial(b)
    assert oracle.create_trial("w0").status == "STOPPED"
    assert oracle.history[0]["rewards"] == [[0.5], [0.0]]


def test_reload_continues_exactly(tmp_path):
    oracle = _oracle(tmp_path)
    for _ in range(2):
        batch = [oracle.create_trial(f"w{b}") for b in range(2)]
        for trial in batch:
            _finish(oracle, trial, 0.5 + 0.1 * int(trial.trial_id))
    running = oracle.create_trial("w0")  # episode 1 begins after the update
    state = oracle.get_state()
    json.dumps(state)  # JSON-safe

    again = _oracle(tmp_path)
    again.reload()
    assert again.children == json.loads(json.dumps(oracle.children))
    assert again.history == json.loads(json.dumps(oracle.history))
    assert again.baseline == oracle.baseline
    for a, b in zip(again.policy.model.get_weights(), oracle.policy.model.get_weights()):
        np.testing.assert_allclose(a, b)
    # The running trial is retried; the next one is what the first oracle proposes.
    retried = again.create_trial("w0")
    assert retried.trial_id == running.trial_id
    assert again.create_trial("w1").hyperparameters.values == oracle.create_trial("w1").hyperparameters.values


def test_reload_drops_a_trial_the_saved_state_never_started(tmp_path):
    oracle = _oracle(tmp_path)
    first = oracle.create_trial("w0")
    orphan = oracle.create_trial("w1")
    # Killed between KerasTuner's _save_trial and save(): oracle.json without the second trial.
    state = oracle.get_state()
    state["start_order"].remove(orphan.trial_id)
    state["ongoing_trials"].pop("w1")
    with open(tmp_path / "search" / "oracle.json", "w") as f:
        json.dump(state, f)
    assert (tmp_path / "search" / f"trial_{orphan.trial_id}" / "trial.json").exists()
    again = _oracle(tmp_path)
    again.reload()
    assert sorted(again.trials) == [first.trial_id]
    assert again.create_trial("w0").trial_id == first.trial_id  # the interrupted one is retried
    assert again.create_trial("w1").trial_id == orphan.trial_id  # then the lost one is proposed again


def test_reload_with_other_settings_is_refused(tmp_path):
    oracle = _oracle(tmp_path)
    _finish(oracle, oracle.create_trial("w"), 0.5)
    other = _oracle(tmp_path, constraints=["params<=2000"])
    with pytest.raises(ValueError, match=r"The saved EPNAS search used other settings \(constraints\)"):
        other.reload()


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="`branches` must be a positive int. Received: branches=0"):
        EPNASOracle(SPACE, branches=0)
    with pytest.raises(ValueError, match="`max_trials` is episodes"):
        EPNASOracle(SPACE, max_trials=3)
    with pytest.raises(ValueError, match="Contradictory constraints"):
        EPNASOracle(SPACE, constraints=["flops<=1", "flops>=2"])


def test_random_baseline_same_budget_and_reload(tmp_path):
    oracle = RandomArchitectureOracle(SPACE, constraints=["params<=1000"], max_trials=3, seed=2)
    oracle._set_project_dir(str(tmp_path), "random")
    trials = [oracle.create_trial(f"w{i}") for i in range(3)]
    assert all(t.status == "RUNNING" for t in trials)  # no waiting
    archs = [_arch(t) for t in trials]
    assert archs[0] != archs[1]
    for t in trials:
        SPACE.validate(_arch(t))
        _finish(oracle, t, 0.4)
    assert oracle.create_trial("w0").status == "STOPPED"
    again = RandomArchitectureOracle(SPACE, constraints=["params<=1000"], max_trials=3, seed=2)
    again._set_project_dir(str(tmp_path), "random")
    again.reload()
    assert [again.children[t.trial_id]["architecture"] for t in trials] == archs
