"""keras_nas: neural architecture search for Keras 3.

Four searches from the literature on one set of pieces:
stage-wise depth growth (Jordao et al. 2020), EPNAS (Zhou et al. 2019),
EoiNAS (Zhou et al. 2020, on GDAS/DARTS cells) and CNAS (Heinrich et al. 2018).

`import keras_nas` is quick: the submodules (`keras_nas.data`,
`keras_nas.costs`, ...) load on first use, and keras_nas' custom layers,
models, optimizers and callbacks are registered with Keras as soon as Keras
loads, so `keras.saving.load_model` opens every model keras_nas saves.
"""

__version__ = "0.2.0"

import importlib as _importlib

from keras_nas import _registration

_SUBMODULES = ("cli", "cnas", "costs", "data", "engine", "eoinas", "epnas", "export", "folding", "io", "latency", "layers",
               "stagewise", "training")


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"keras_nas.{name}")
    raise AttributeError(f"module 'keras_nas' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))


_registration.register_when_keras_loads()
