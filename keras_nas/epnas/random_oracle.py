"""Random search over an EPNAS space: the baseline of paper 002 (Fig. 4, Table 5)."""

import keras_tuner
import numpy as np

from keras_nas.epnas.oracle import child_values, constraints_from, space_from
from keras_nas.engine.search_oracle import SearchOracle


class RandomArchitectureOracle(SearchOracle):
    """Proposes independent random architectures of an EPNAS space.

    The comparison of EPNAS' section 4.1: the same space (random networks
    drawn as EPNAS' initial ones), the same constraints and reward (Eq. 3,
    computed by the same tuner) and the same budget of trained children
    (`max_trials`, e.g. episodes x branches x steps of the EPNAS run). Trials
    are independent, so every worker is always busy.

    Args:
        space: `EPNASSpace`, its config or a mode.
        constraints: list of str or parsed dicts. Defaults to none.
        max_trials: int. Children to train. Defaults to `10`.
        penalty_base: float. `p_i` of Eq. (2). Defaults to `0.9`.
        seed: int. Trial `i` draws from `default_rng([seed, 1, i])`.
        **kwargs: passed to `SearchOracle`.

    Example:

    ```python
    oracle = RandomArchitectureOracle("layers", constraints=["params<=50000"], max_trials=18)
    ```
    """

    def __init__(self, space="layers", constraints=None, max_trials=10, penalty_base=0.9, seed=0,
                 objective=None, **kwargs):
        if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
            raise ValueError(f"`max_trials` must be a positive int. Received: max_trials={max_trials!r}")
        kwargs.setdefault("max_consecutive_failed_trials", max_trials)
        objective = objective or keras_tuner.Objective("reward", "max")
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        # KerasTuner replaces a seed of 0 by a random one; EPNAS' samples must not move on resume.
        self.seed = int(seed)
        self.space = space_from(space)
        self.constraints = constraints_from(constraints)
        self.penalty_base = float(penalty_base)
        self.children = {}

    def populate_space(self, trial_id):
        rng = np.random.default_rng([self.seed, 1, int(trial_id)])
        architecture = self.space.random_architecture(rng)
        self.children[trial_id] = {"architecture": architecture, "global_step": len(self.children)}
        values = child_values(architecture, self.constraints, self.penalty_base,
                              episode=-1, step=0, branch=0, global_step=int(trial_id))
        return {"status": "RUNNING", "values": values}

    def get_state(self):
        state = super().get_state()
        state.update(children=self.children, random_settings={
            "space": self.space.get_config(), "constraints": self.constraints, "penalty_base": self.penalty_base})
        return state

    def set_state(self, state):
        super().set_state(state)
        self.children = {k: dict(v) for k, v in state.get("children", {}).items()}
