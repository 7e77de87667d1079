"""Stage-wise depth growth (Jordao et al. 2020, paper 000): grow the most important stage of a network.

Read from the smallest piece to the command: `resnet`, `nasnet` (the
networks), `vip`, `infinite_fs`, `infinite_latent_fs`, `importance` (stage importance),
`weight_transfer`, `oracle` (Algorithm 1), `tuner`, `command`."""

from keras_nas._lazy import exports

_NAMES = {
    "search": "command",
    "stage_resnet": "resnet",
    "stage_nasnet": "nasnet",
    "pls_vip": "vip",
    "inf_fs": "infinite_fs",
    "il_fs": "infinite_latent_fs",
    "stage_importance": "importance",
    "transfer_weights": "weight_transfer",
    "stage_depths_of": "weight_transfer",
    "StageWiseOracle": "oracle",
    "StageWiseTuner": "tuner",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
