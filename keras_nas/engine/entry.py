"""The Python entry point every method shares: plain arguments in, a `SearchResult` out.

`keras_nas.<method>.search(dataset, directory=..., **options)` runs the same
code as `keras-nas search <method>`: the same options (by their Python
names), checked the same way before anything is written, the same results
folder, the same resume.
"""

import argparse
import os

from keras_nas import io
from keras_nas.engine import common_options, options, results_folder


class SearchResult:
    """What a search returns: its results folder and the numbers of its `results.json`.

    Args:
        method: str. The method that ran.
        directory: str. The results folder.
        results: dict. `results.json` (see `keras_nas.engine.results`).

    Attributes:
        best: dict or None. The `best` block (architecture, params, macs,
            flops, memory_mb, latency_ms, val_accuracy, test_accuracy, path).
        best_model_path: str. `<directory>/best_model.keras`.

    Example:

    ```python
    result = keras_nas.stagewise.search("digits", directory="runs/stagewise")
    result.best["test_accuracy"], result.best["params"]
    model = result.load_best_model()
    ```
    """

    def __init__(self, method, directory, results):
        self.method = method
        self.directory = directory
        self.results = results

    @property
    def best(self):
        return self.results.get("best")

    @property
    def best_model_path(self):
        return os.path.join(self.directory, "best_model.keras")

    def load_best_model(self):
        """The best model, loaded with `keras.saving.load_model`."""
        import keras

        return keras.saving.load_model(self.best_model_path)

    def __repr__(self):
        best = self.best or {}
        return (f"SearchResult(method={self.method!r}, directory={self.directory!r}, "
                f"test_accuracy={best.get('test_accuracy')}, params={best.get('params')})")


def search(command, method, dataset="digits", *, directory=None, overwrite=False, seed=0, verbose=1, **values):
    """Checks `values` against the method's options, runs its command and returns a `SearchResult`.

    Args:
        command: the method's command module (`OPTIONS`, `check(args)`, `run(args)`).
        method: str. Its name (the default folder is `runs/<method>`).
        dataset: str or `keras_nas.data.Dataset`. A dataset name as
            `--dataset` takes it, or data loaded with `keras_nas.data.load`
            (then the data options are not used).
        directory: str or None. The results folder (`--out`).
        overwrite, seed, verbose: as `--overwrite`, `--seed`, `--verbose`.
        **values: the method's other options by their Python names
            (`epochs=3`, `constraint=["params<=1e5"]`).
    """
    option_list = tuple(command.OPTIONS) + tuple(common_options.SEARCH_OPTIONS)
    given = dict(values, out=directory if directory is not None else os.path.join("runs", method),
                 overwrite=overwrite, seed=seed, verbose=verbose)
    loaded = None
    if isinstance(dataset, str):
        given["dataset"] = dataset
    elif hasattr(dataset, "train") and hasattr(dataset, "input_shape"):
        loaded = dataset
        given["dataset"] = dataset.name
    else:
        raise options.OptionTypeError("`dataset` must be a dataset name or a `keras_nas.data.Dataset`.",
                                      dataset=type(dataset).__name__)
    known = {o.name for o in option_list}
    given = {k: _from_text(option_list, k, v) if k in known else v for k, v in given.items()}
    checked = options.check_values(option_list, given, caller=f"`keras_nas.{method}.search` options")
    args = argparse.Namespace(**checked)
    command.check(args)
    common_options.check_runtime(checked)
    results_folder.check_out(args.out, "directory")
    args.loaded_dataset = loaded
    try:
        results = command.run(args)
    finally:
        results_folder.release(args.out)  # the folder is free for the next search of this process
    return SearchResult(method, args.out, results or io.read_json(os.path.join(args.out, io.RESULTS_FILE), {}))


def searcher(module_name, method, title, example):
    """The `search` function of a method's command module (`keras_nas.<method>.search`).

    Args:
        module_name: str. The command module's `__name__`.
        method: str. The method's name.
        title: str. What it runs, for the docstring ("a stage-wise depth search").
        example: str. The line of the docstring's example that calls it.
    """

    def search_method(dataset="digits", *, directory=None, overwrite=False, seed=0, verbose=1, **values):
        import importlib

        return search(importlib.import_module(module_name), method, dataset, directory=directory,
                      overwrite=overwrite, seed=seed, verbose=verbose, **values)

    search_method.__name__ = search_method.__qualname__ = "search"
    search_method.__module__ = module_name
    search_method.__doc__ = f"""Runs (or resumes) {title} from Python; returns a `SearchResult`.

    The options are those of `keras-nas search {method}` by their Python names,
    checked before anything is written; `dataset` is a name as `--dataset`
    takes it or a `keras_nas.data.Dataset`; `directory` is `--out` (default
    `runs/{method}`); `overwrite`, `seed` and `verbose` are `--overwrite`,
    `--seed` and `--verbose`.

    Example:

    ```python
    import keras_nas

    {example}
    print(result.best["test_accuracy"], result.best["params"])
    model = result.load_best_model()
    ```
    """
    return search_method


def _from_text(option_list, name, value):
    """A list option given as its command-line text (`milestones="100,150"`) becomes its value."""
    option = next(o for o in option_list if o.name == name)
    if isinstance(value, str) and option.parse is not None:
        return option.from_text(value)
    return value
