"""The results contract: one top level of `results.json` for every method.

Every search writes `results.json` as

    {"method", "version", "config",
     "best": {"architecture", "params", "macs", "flops", "memory_mb", "latency_ms",
              "val_accuracy", "test_accuracy", "path", ...},
     ...the method's own block ("trials", "history", "candidates", ...)...,
     "receipt": {"versions", "python", "platform", "device", "seeds", "config_sha256"}}

so `keras-nas report` and a user's script read any of them alike. `best`
is the model saved as `best_model.keras`; its costs are measured on that
file (`keras_nas.costs.profile`) and its test accuracy by evaluating that
file on the test split, so the numbers always describe the saved model.
"""

import hashlib
import json
import os
import platform
import sys

from keras_nas import __version__, io

BEST_KEYS = ("architecture", "params", "macs", "flops", "memory_mb", "latency_ms", "val_accuracy", "test_accuracy",
             "path")
# Shown by `keras-nas report` for the best model of any method, in this order.
REPORT_COLUMNS = ("params", "macs", "memory_mb", "latency_ms", "val_accuracy", "test_accuracy")


def config_sha256(config):
    """sha256 of a config as canonical JSON (sorted keys), without keras_nas' own folder marker."""
    plain = {k: v for k, v in config.items() if k != "keras_nas"}
    return hashlib.sha256(json.dumps(io.to_jsonable(plain), sort_keys=True).encode()).hexdigest()


def receipt(config, seeds):
    """What reproduces a run: library versions, Python, platform, device, seeds and the config's hash."""
    import keras
    import keras_tuner
    import tensorflow as tf


    gpus = tf.config.list_physical_devices("GPU")
    return {
        "versions": {"keras_nas": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                     "keras_tuner": keras_tuner.__version__},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": f"{len(gpus)} GPU" if gpus else "CPU",
        "seeds": list(seeds),
        "config_sha256": config_sha256(config),
    }


def measure(path, dataset=None, latency=True):
    """`{params, macs, flops, memory_mb, latency_ms, test_accuracy}` of the saved model at `path`.

    `test_accuracy` is the model's accuracy on `dataset.test` (None without a dataset).
    """
    import keras
    import numpy as np

    from keras_nas import costs  # TensorFlow: results.py is imported before the options are checked

    model = keras.saving.load_model(path, compile=False)
    report = costs.profile(model, latency=latency).to_dict()
    measured = {k: report.get(k) for k in ("params", "macs", "flops", "memory_mb", "latency_ms")}
    measured["test_accuracy"] = None
    if dataset is not None and dataset.test is not None:
        correct = total = 0
        for images, labels in dataset.test:
            predicted = np.argmax(model(images, training=False), axis=-1)
            correct += int(np.sum(predicted == np.asarray(labels).reshape(-1)))
            total += int(predicted.shape[0])
        measured["test_accuracy"] = correct / total if total else None
    return measured


def best_block(path, architecture, val_accuracy, dataset=None, **extra):
    """The `best` block of the model saved at `path` (see the module docstring); `extra` adds method keys."""
    block = {"architecture": architecture, **measure(path, dataset), "val_accuracy": val_accuracy, "path": path}
    ordered = {k: block[k] for k in BEST_KEYS}
    ordered.update({k: v for k, v in extra.items() if k not in ordered})
    return ordered


def write(out, method, block, best=None, seeds=None):
    """Writes `<out>/results.json` in the contract's order; returns the dict written.

    Args:
        out: str. The results folder (its `config.json` is the run's config).
        method: str. The method name (`stagewise`, `epnas`, `random`, ...).
        block: dict. The method's own results.
        best: dict or None. From `best_block`; None when nothing was trained.
        seeds: list of int or None. Defaults to the config's `seed`.
    """
    config = io.read_json(os.path.join(out, io.CONFIG_FILE), {})
    if seeds is None:
        seeds = [config["seed"]] if config.get("seed") is not None else []
    results = {"method": method, "version": __version__,
               "config": {k: v for k, v in config.items() if k != "keras_nas"}, "best": best}
    results.update({k: v for k, v in block.items() if k not in results and k != "receipt"})
    results["receipt"] = receipt(config, seeds)
    io.atomic_write_json(os.path.join(out, io.RESULTS_FILE), results)
    return results
