"""An oracle that hands out a fixed list of random seeds, one per trial."""

import keras_tuner

from keras_nas.engine.search_oracle import RUNNING, STOPPED, SearchOracle


class SeedOracle(SearchOracle):
    """Runs one trial per seed (EoiNAS sec. 4.2: 4 searches, best on validation).

    Each trial's only hyperparameter is `seed`; trials can go to separate
    KerasTuner workers. The seeds still to run follow from the trials the
    oracle already holds, so a reloaded oracle does not repeat a finished one.

    Args:
        seeds: list of int. Seeds to run. Defaults to `[0, 1, 2, 3]`.
        objective: str or `keras_tuner.Objective`. Defaults to
            `Objective("val_accuracy", "max")`.
        **kwargs: `SearchOracle` arguments.

    Example:

    >>> oracle = SeedOracle(seeds=[0, 1])  # the tuner takes `directory`, `project_name`
    """

    def __init__(self, seeds=(0, 1, 2, 3), objective=None, **kwargs):
        seeds = list(seeds)
        if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise ValueError(f"`seeds` must be a non-empty list of ints >= 0. Received: seeds={seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"`seeds` must not repeat. Received: seeds={seeds!r}")
        hyperparameters = keras_tuner.HyperParameters()
        hyperparameters.Int("seed", 0, 2**31 - 1)
        super().__init__(
            objective=objective or keras_tuner.Objective("val_accuracy", "max"),
            max_trials=len(seeds),
            hyperparameters=hyperparameters,
            **kwargs,
        )
        self.seeds = seeds

    def populate_space(self, trial_id):
        used = {t.hyperparameters.values.get("seed") for t in self.trials.values() if t.trial_id != trial_id}
        for seed in self.seeds:
            if seed not in used:
                return {"status": RUNNING, "values": {"seed": seed}}
        return {"status": STOPPED, "values": None}

    def get_state(self):
        return {**super().get_state(), "seeds": list(self.seeds)}

    def set_state(self, state):
        super().set_state(state)
        self.seeds = list(state.get("seeds", self.seeds))
