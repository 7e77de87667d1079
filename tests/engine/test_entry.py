"""The Python entry point of every method: plain arguments in, a SearchResult out, checked before writing."""

import pytest

import keras_nas
from keras_nas.engine.entry import SearchResult

METHODS = ("stagewise", "epnas", "eoinas", "cnas")


@pytest.mark.parametrize("method", METHODS)
def test_bad_options_are_refused_before_anything_is_written(method, tmp_path):
    search = getattr(keras_nas, method).search
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"`seed` must be an int in \[0, 2147483647\]. Received: seed=-1"):
        search("digits", directory=str(out), seed=-1)
    with pytest.raises(TypeError, match=r"Unknown `keras_nas\.%s\.search` options \['epoch'\]" % method):
        search("digits", directory=str(out), epoch=3)
    with pytest.raises(TypeError, match="`dataset` must be a dataset name or a `keras_nas.data.Dataset`"):
        search(42, directory=str(out))
    assert not out.exists()


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "thesis.txt").write_text("mine")
    with pytest.raises(ValueError, match="`directory`"):
        keras_nas.stagewise.search("digits", directory=str(tmp_path), overwrite=True)
    assert (tmp_path / "thesis.txt").read_text() == "mine"


def test_search_on_a_loaded_dataset_returns_its_result_and_resumes(tmp_path):
    data = keras_nas.data.load("digits", seed=1)
    options = dict(epochs=1, iterations=1, m0=1, importance_samples=64, verbose=0)
    result = keras_nas.stagewise.search(data, directory=str(tmp_path / "sw"), seed=1, **options)
    assert isinstance(result, SearchResult) and result.method == "stagewise"
    assert result.best["path"] == result.best_model_path
    assert result.load_best_model().count_params() == result.best["params"]
    assert result.results["config"]["dataset"] == "digits" and result.results["receipt"]["seeds"] == [1]
    again = keras_nas.stagewise.search(data, directory=str(tmp_path / "sw"), seed=1, **options)
    # Resumed: nothing retrained, the same best (its latency is timed again on this machine).
    unchanged = lambda best: {k: v for k, v in best.items() if k != "latency_ms"}  # noqa: E731
    assert unchanged(again.best) == unchanged(result.best)
