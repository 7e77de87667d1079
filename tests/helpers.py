"""Assertions several test files share (import as `from tests.helpers import ...`)."""

import os


def assert_only_owned(out):
    """Everything at the top of a results folder is something `--overwrite` may remove (and nothing else is there)."""
    from keras_nas.engine import results_folder

    stray = sorted(set(os.listdir(out)) - results_folder.OWNED)
    assert not stray, f"{out} holds entries keras_nas does not list as its own: {stray}"


def check_results_contract(out, *, beats_chance_by):
    """results.json of `out` has the contract's top level, and `best` describes best_model.keras itself.

    Returns results.json. The test accuracy is recomputed by evaluating
    best_model.keras on the test split of the run's own data settings, and it
    must exceed chance (1 / classes) by `beats_chance_by`: a search that
    learned nothing fails here.
    """
    import json

    import keras
    import numpy as np

    from keras_nas import data
    from keras_nas.engine import common_options
    from keras_nas.engine.results import BEST_KEYS, config_sha256

    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    keys = list(results)
    assert keys[:4] == ["method", "version", "config", "best"] and keys[-1] == "receipt", keys
    assert results["receipt"]["config_sha256"] == config_sha256(results["config"])
    assert set(results["receipt"]["versions"]) == {"keras_nas", "tensorflow", "keras", "keras_tuner"}
    best = results["best"]
    if best is None:
        return results
    assert list(best)[:len(BEST_KEYS)] == list(BEST_KEYS)
    model = keras.saving.load_model(os.path.join(out, "best_model.keras"), compile=False)
    assert best["params"] == model.count_params()
    config = results["config"]
    settings = {o.name: config.get(o.name, o.default) for o in common_options.DATA_OPTIONS}
    dataset = data.load(settings.pop("dataset"), **settings)
    correct = total = 0
    for images, labels in dataset.test:
        correct += int(np.sum(np.argmax(model(images, training=False), axis=-1) == np.asarray(labels)))
        total += len(labels)
    assert best["test_accuracy"] == correct / total
    chance = 1.0 / dataset.num_classes
    assert best["test_accuracy"] >= chance + beats_chance_by, (
        f"test accuracy {best['test_accuracy']:.3f} is not {beats_chance_by} above chance ({chance:.3f})")
    return results


def refused(argv, capsys):
    """The one line `keras-nas ARGV` writes to stderr when it refuses an argument (exit code 2, no traceback)."""
    import pytest

    from keras_nas import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err
