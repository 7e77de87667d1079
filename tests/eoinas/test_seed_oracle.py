import pytest

from keras_nas.eoinas.seed_oracle import SeedOracle


def _oracle(tmp_path, seeds):
    oracle = SeedOracle(seeds=seeds)
    oracle._set_project_dir(str(tmp_path), "seeds")
    return oracle


def test_one_trial_per_seed_then_stop(tmp_path):
    oracle = _oracle(tmp_path, [3, 5])
    seen = []
    for worker in ("a", "b"):
        trial = oracle.create_trial(worker)
        seen.append(trial.hyperparameters.get("seed"))
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.1 * len(seen)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert seen == [3, 5]
    assert oracle.create_trial("c").status == "STOPPED"
    assert oracle.get_best_trials(1)[0].hyperparameters.get("seed") == 5


def test_state_round_trip_keeps_seeds(tmp_path):
    oracle = _oracle(tmp_path, [0, 1, 2])
    state = oracle.get_state()
    other = _oracle(tmp_path / "x", [9])
    other.set_state(state)
    assert other.seeds == [0, 1, 2]


def test_bad_seeds():
    with pytest.raises(ValueError, match="`seeds` must not repeat"):
        SeedOracle(seeds=[1, 1])
    with pytest.raises(ValueError, match="`seeds` must be a non-empty list"):
        SeedOracle(seeds=[])


@pytest.mark.parametrize("search_kwargs, error, message", [
    ({"epochs": 8}, ValueError, r"`warmup_epochs` must be smaller than `epochs`.*warmup_epochs=20, epochs=8"),
    ({"epoch": 8}, TypeError, r"`search_kwargs` has keys `one_shot_search` does not take: \['epoch'\]"),
    ({"seed": 1}, ValueError, r"`search_kwargs` must not set \['seed'\]"),
    ([("epochs", 8)], TypeError, r"`search_kwargs` must be a dict"),
])
def test_seed_tuner_refuses_bad_search_kwargs_before_any_trial(tmp_path, search_kwargs, error, message):
    from keras_nas.eoinas.seed_tuner import EoiNASSeedTuner

    with pytest.raises(error, match=message):
        EoiNASSeedTuner(SeedOracle([0]), search_kwargs=search_kwargs, directory=str(tmp_path))
    assert not any(tmp_path.iterdir())  # refused before the tuner wrote anything


def test_seed_tuner_keeps_valid_search_kwargs(tmp_path):
    from keras_nas.eoinas.seed_tuner import EoiNASSeedTuner

    kwargs = {"epochs": 8, "warmup_epochs": 2, "prune_interval": 2}
    tuner = EoiNASSeedTuner(SeedOracle([0]), search_kwargs=kwargs, directory=str(tmp_path))
    assert tuner.search_kwargs == kwargs
