"""The `>>>` examples of the pure functions run and print what they show.

The examples that train or build whole networks are checked by the tests of
their class; these are the cheap ones, run here so they cannot drift from the
code (a wrong number in an example is a wrong number in the docs).
"""

import doctest
import importlib

import numpy as np
import pytest

EXAMPLES = [
    ("keras_nas.cli", "settings_argv"),
    ("keras_nas.folding", "batch_norm_affine"),
    ("keras_nas.folding", "fold_into_kernel"),
    ("keras_nas.cnas.channel_select", "channel_runs"),
    ("keras_nas.eoinas.search_cell", "cell_edges"),
    ("keras_nas.eoinas.command", "undertrained_warning"),
    ("keras_nas.epnas.constraints", "parse_constraint"),
    ("keras_nas.epnas.constraints", "parse_constraints"),
    ("keras_nas.epnas.constraints", "with_latency_margin"),
    ("keras_nas.epnas.reward", "soft_penalty"),
    ("keras_nas.epnas.parameter_store", "splice"),
    ("keras_nas.cnas.layout", "gray_rank"),
    ("keras_nas.cnas.taylor", "minibatch_term"),
    ("keras_nas.cnas.taylor", "channel_importance"),
    ("keras_nas.training", "sgdr_learning_rate"),
    ("keras_nas.epnas.prediction", "prediction_learning_rate"),
    ("keras_nas.epnas.prediction", "shrink_perturb"),
    ("keras_nas.latency", "key"),
    ("keras_nas.latency", "table_keys"),
    ("keras_nas.latency", "fit_counts"),
    ("keras_nas.latency", "fit_memory_term"),
    ("keras_nas.cnas.latency_model", "layer_features"),
    ("keras_nas.epnas.latency_model", "layer_features"),
    ("keras_nas.epnas.latency_model", "conv_widths"),
    ("keras_nas.engine.common_options", "latency_margin"),
    ("keras_nas.engine.common_options", "search_latency"),
]


@pytest.mark.parametrize("module_name, name", EXAMPLES)
def test_docstring_example(module_name, name):
    module = importlib.import_module(module_name)
    tests = [t for t in doctest.DocTestFinder().find(getattr(module, name), name, globs={"np": np, **vars(module)})
             if t.name == name and t.examples]
    assert tests, f"{module_name}.{name} has no >>> example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} example lines of {module_name}.{name} fail"
