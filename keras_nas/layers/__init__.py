"""Keras layers more than one part of keras_nas uses (EoiNAS and CNAS cells; BatchNorm folding for export)."""

from keras_nas._lazy import exports

_NAMES = {
    "FactorizedReduce": "factorized_reduce",
    "FoldedBatchNormalization": "folded_batch_normalization",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
