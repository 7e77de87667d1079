"""Assertions several test files share (import as `from tests.helpers import ...`)."""

import os


def assert_only_owned(out):
    """Everything at the top of a results folder is something `--overwrite` may remove (and nothing else is there)."""
    from keras_nas.engine import results_folder

    stray = sorted(set(os.listdir(out)) - results_folder.OWNED)
    assert not stray, f"{out} holds entries keras_nas does not list as its own: {stray}"
