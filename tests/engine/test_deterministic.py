"""`--deterministic`: two tiny searches of each method with the same seed write the same numbers."""

import json

import pytest
import tensorflow as tf

from keras_nas import cli


@pytest.fixture(autouse=True)
def _op_determinism_off_afterwards():
    # --deterministic turns TensorFlow's op determinism on for the process; the tests after these run without.
    yield
    # TensorFlow has no public switch back (no disable_op_determinism in 2.21); its private one is the flag.
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism() if hasattr(tf_config, "disable_op_determinism") else \
        tf_config.enable_op_determinism.__globals__.get("_pywrap_determinism").enable(False)

# Keys whose values are wall-clock measurements or places, not results.
VARYING = ("seconds", "latency", "emissions", "energy", "co2", "receipt", "path", "created", "date", "time",
           "directory", "trial_dir", "started", "finished", "heartbeat", "worker")

TINY = {
    "stagewise": ["--epochs", "1", "--iterations", "1", "--m0", "1", "--importance-samples", "64"],
    "epnas": ["--episodes", "1", "--branches", "2", "--steps", "1", "--epochs", "1", "--constraint",
              "params<=50000"],
    "cnas": ["--epochs", "1", "--final-epochs", "1", "--finetune-epochs", "1", "--sparsity", "0.8",
             "--init-channels", "4"],
    "eoinas": ["--cells", "3", "--init-channels", "4", "--epochs", "2", "--warmup-epochs", "1", "--eval-cells", "3",
               "--eval-channels", "4", "--eval-epochs", "1"],
}


def numbers(value, root):
    """`results.json` without wall-clock figures and with the results folder's path taken out."""
    if isinstance(value, dict):
        return {k: numbers(v, root) for k, v in value.items() if not any(word in k for word in VARYING)}
    if isinstance(value, list):
        return [numbers(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<out>")
    return value


def _search(tmp_path, method, name):
    out = tmp_path / name
    assert cli.main(["search", method, "--out", str(out), "--deterministic", "--seed", "3", "--verbose", "0",
                     *TINY[method]]) == 0
    return numbers(json.loads((out / "results.json").read_text()), str(out))


@pytest.mark.parametrize("method", [
    "stagewise", pytest.param("epnas", marks=pytest.mark.slow),
    pytest.param("cnas", marks=pytest.mark.slow), pytest.param("eoinas", marks=pytest.mark.slow)])
def test_two_deterministic_searches_give_the_same_numbers(tmp_path, method):
    first, second = _search(tmp_path, method, "a"), _search(tmp_path, method, "b")
    assert first["config"]["deterministic"] is True
    assert first["best"]["val_accuracy"] == second["best"]["val_accuracy"]
    assert first == second
