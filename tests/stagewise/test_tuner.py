"""StageWiseTuner on tiny data: one trial per network, metrics, resume after a kill."""

import json
import os

import pytest

from keras_nas import data
from keras_nas.stagewise.oracle import StageWiseOracle
from keras_nas.stagewise.resnet import stage_resnet
from keras_nas.stagewise.tuner import StageWiseTuner


class Interrupt(BaseException):
    """Stands for the process being killed (not caught by KerasTuner)."""


def _setup(tmp_path, builds, stop_at=None):
    oracle = StageWiseOracle(num_stages=3, initial_depth=1, delta=1, iterations=1)

    def build(depths):
        if stop_at is not None and len(builds) == stop_at:
            raise Interrupt()
        builds.append(list(depths))
        return stage_resnet(depths, input_shape=(8, 8, 1), num_classes=3)

    tuner = StageWiseTuner(
        oracle, build, epochs=1, final_epochs=1, learning_rate=0.05,
        importance_samples=16, directory=str(tmp_path), project_name="trials",
    )
    return oracle, tuner


def _data():
    return data.load("synthetic", input_shape=(8, 8, 1), num_classes=3, num_examples=48, batch_size=16)


@pytest.mark.slow  # keeps the default suite within 15 minutes; `pytest -m slow` runs it
def test_search_trains_three_networks_and_reports_importance(tmp_path):
    ds, builds = _data(), []
    oracle, tuner = _setup(tmp_path, builds)
    tuner.search(ds.train, validation_data=ds.validation, verbose=0)
    assert builds[:2] == [[1, 1, 1], [2, 2, 2]] and len(builds) == 3
    assert len(oracle.decisions) == 1
    for trial_id, trial in oracle.trials.items():
        assert trial.status == "COMPLETED"
        for name in ("val_accuracy", "importance_0", "importance_1", "importance_2", "train_seconds"):
            assert trial.metrics.exists(name)
        summary = json.loads(open(os.path.join(tuner.get_trial_dir(trial_id), "summary.json")).read())
        epochs = 2 if oracle.plan[trial_id]["role"] == "candidate" else 1  # final epochs for candidates
        assert len(summary["history"]["loss"]) == epochs
    assert tuner.load_model(oracle.trials["0"]).name == "resnet_1_1_1"

    # A candidate killed during its final training: the search phase is not redone.
    candidate = oracle.trials[oracle.end_order[-1]]
    os.remove(os.path.join(tuner.get_trial_dir(candidate.trial_id), "model.keras"))
    metrics = tuner.run_trial(candidate, ds.train, validation_data=ds.validation, verbose=0)
    assert len(builds) == 3
    assert os.path.exists(os.path.join(tuner.get_trial_dir(candidate.trial_id), "model.keras"))
    assert metrics["importance_0"] == candidate.metrics.get_last_value("importance_0")


def test_killed_search_resumes_without_retraining_finished_trials(tmp_path):
    ds, builds = _data(), []
    _, tuner = _setup(tmp_path, builds, stop_at=2)
    with pytest.raises(Interrupt):
        tuner.search(ds.train, validation_data=ds.validation, verbose=0)
    assert builds == [[1, 1, 1], [2, 2, 2]]
    resumed = []
    oracle, tuner = _setup(tmp_path, resumed)
    tuner.search(ds.train, validation_data=ds.validation, verbose=0)
    assert len(resumed) == 1  # only the candidate is built and trained
    assert len(oracle.end_order) == 3


def test_bad_arguments():
    oracle = StageWiseOracle()
    with pytest.raises(TypeError, match="`build_model` must be callable"):
        StageWiseTuner(oracle, None)
    with pytest.raises(ValueError, match=r"`criterion` must be one of \['pls', 'inffs', 'ilfs'\]"):
        StageWiseTuner(oracle, stage_resnet, criterion="vip")
    with pytest.raises(ValueError, match="`final_epochs` must be an int >= 0. Received: final_epochs=-1"):
        StageWiseTuner(oracle, stage_resnet, final_epochs=-1)


def test_a_failed_network_stops_the_search_with_its_reason(tmp_path):
    ds = _data()
    oracle = StageWiseOracle(num_stages=3, initial_depth=1, delta=1, iterations=2)

    def build(depths):
        if max(depths) > 1:
            raise ValueError("too deep for this test")
        return stage_resnet(depths, input_shape=(8, 8, 1), num_classes=3)

    tuner = StageWiseTuner(oracle, build, epochs=1, importance_samples=16,
                           directory=str(tmp_path), project_name="trials")
    tuner.search(ds.train, validation_data=ds.validation, verbose=0)
    assert [oracle.trials[t].status for t in oracle.end_order] == ["COMPLETED", "FAILED"]
    assert "failed" in oracle.stopped_reason
    assert "too deep for this test" in oracle.trials[oracle.end_order[1]].message
