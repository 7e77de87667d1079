"""EPNAS (Zhou et al. 2019, paper 002): a REINFORCE policy morphs networks under soft resource constraints.

Read from the smallest piece to the command: `space` and `morphism` (the
networks and their edits), `constraints` and `reward` (Eq. 1-3),
`policy`, `oracle`, `random_oracle` (the baseline), `parameter_store` and
`scaled_sgd` (prediction with shared parameters, sec. 3.4), `tuner`, `command`."""

from keras_nas._lazy import exports

_NAMES = {
    "search": "command",
    "EPNASSpace": "space",
    "parse_constraints": "constraints",
    "soft_penalty": "reward",
    "constrained_reward": "reward",
    "EPNASPolicy": "policy",
    "EPNASOracle": "oracle",
    "RandomArchitectureOracle": "random_oracle",
    "ParameterStore": "parameter_store",
    "ScaledSGD": "scaled_sgd",
    "EPNASTuner": "tuner",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
