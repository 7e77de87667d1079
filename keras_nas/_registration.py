"""Registers keras_nas' custom Keras objects as soon as Keras is loaded.

`import keras_nas` must make every `best_model.keras` loadable with plain
`keras.saving.load_model`, which finds custom classes only once their module
has run `keras.saving.register_keras_serializable`. Importing those modules
means importing Keras and TensorFlow (seconds), which `import keras_nas` and
the command line's `--help` and argument errors must not pay. So: if Keras is
already loaded, the modules are imported now; otherwise a one-shot import
hook imports them right after the first `import keras` of the process.
"""

import importlib
import importlib.abc
import sys

# Every module that defines a registered layer, model, optimizer or callback.
MODULES = (
    "keras_nas.layers.factorized_reduce",
    "keras_nas.layers.folded_batch_normalization",
    "keras_nas.engine.checkpoint",
    "keras_nas.epnas.scaled_sgd",
    "keras_nas.eoinas.zero",
    "keras_nas.eoinas.drop_path",
    "keras_nas.eoinas.gumbel_edge",
    "keras_nas.eoinas.search_cell",
    "keras_nas.eoinas.supernet",
    "keras_nas.eoinas.auxiliary_tap",
    "keras_nas.eoinas.auxiliary_head",
    "keras_nas.eoinas.architecture_warmup",
    "keras_nas.eoinas.temperature_schedule",
    "keras_nas.eoinas.drop_path_schedule",
    "keras_nas.eoinas.operation_pruning",
    "keras_nas.cnas.channel_mask",
    "keras_nas.cnas.channel_select",
    "keras_nas.cnas.channels_first_factorized_reduce",
    "keras_nas.cnas.channel_pruning",
)


def register():
    """Imports every module that registers a keras_nas class (idempotent)."""
    for name in MODULES:
        importlib.import_module(name)


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Finds `keras` as usual, then runs `register()` once its module has loaded.

    The finder stays in place until Keras has really been executed: a
    `find_spec` that does not load the module (TensorFlow probes for Keras
    that way when it is imported first) must not use it up.
    """

    _finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self._finding:
            return None
        self._finding = True
        try:
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None) if finder is not self else None
                spec = find(fullname, path, target) if find else None
                if spec is not None:
                    break
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):
            original(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            register()

        loader.exec_module = exec_module
        return spec


def register_when_keras_loads():
    if "keras" in sys.modules:
        register()
    elif not any(isinstance(f, _AfterKeras) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())
