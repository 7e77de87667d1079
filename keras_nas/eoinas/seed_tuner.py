"""One EoiNAS cell search per KerasTuner trial, each with its own seed."""

import os

from keras_nas.engine.search_tuner import SearchTuner
from keras_nas.eoinas.one_shot import check_search_kwargs, one_shot_search


class EoiNASSeedTuner(SearchTuner):
    """Runs `keras_nas.eoinas.one_shot.one_shot_search` for the trial's seed.

    Each trial searches in `<directory>/<project_name>/trial_<id>/search`
    (checkpointed every epoch, so a restarted trial resumes), writes its
    `genotype.json` there and reports `val_accuracy`: the accuracy of the
    architectures sampled on the validation half during the last search epoch
    (what GDAS/EoiNAS pick the best of 4 seeds by).

    Args:
        oracle: `keras_nas.eoinas.SeedOracle`.
        search_kwargs: dict. Arguments of `one_shot_search` besides `dataset`,
            `directory` and `seed`.
        **kwargs: `SearchTuner` arguments (`directory`, `project_name`, ...).

    Example:

    >>> import keras_nas
    >>> from keras_nas.eoinas.seed_oracle import SeedOracle
    >>> data = keras_nas.data.load("digits")
    >>> tuner = EoiNASSeedTuner(
    ...     SeedOracle([0, 1]),
    ...     search_kwargs={"epochs": 8, "warmup_epochs": 2, "prune_interval": 2, "cells": 5, "init_channels": 8},
    ...     directory="runs/x")
    >>> tuner.search(dataset=data)
    """

    def __init__(self, oracle, search_kwargs=None, **kwargs):

        self.search_kwargs = check_search_kwargs(search_kwargs)
        super().__init__(oracle=oracle, **kwargs)

    def trial_search_dir(self, trial_id):
        return os.path.join(self.project_dir, f"trial_{trial_id}", "search")

    def run_trial(self, trial, dataset, **kwargs):

        seed = int(trial.hyperparameters.get("seed"))
        directory = self.trial_search_dir(trial.trial_id)
        # Progress on every process (KerasTuner's trial display is the chief's only).
        print(f"[{self.tuner_id}] EoiNAS seed {seed}: one-shot search in {directory}", flush=True)
        result = one_shot_search(dataset, directory=directory, seed=seed, **self.search_kwargs)
        self.check_finite(result["history"])
        return {"val_accuracy": result["val_accuracy"]}

    # Trials build their own model inside `one_shot_search`; nothing to save here.
    def save_model(self, trial_id, model, step=0):
        pass

    def load_model(self, trial):
        return None
