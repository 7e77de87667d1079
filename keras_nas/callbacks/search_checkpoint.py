"""Checkpoints a one-shot cell search every epoch so it resumes after a crash."""

import os

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="keras_nas")
class SearchCheckpoint(keras.callbacks.Callback):
    """Saves the supernet and both optimizers at every epoch end.

    The model's weights include alpha, the live-op masks, the importance
    statistics (C^e, C^a), the temperature and the warm-up flag, so
    `restore()` brings back the whole search state; it returns the epoch
    to pass to `fit(initial_epoch=...)`. Files are replaced atomically.

    Args:
        directory: str. Folder for `search.weights.h5`, `optimizers.npz` and
            `search_state.json`.

    Example:

    >>> checkpoint = SearchCheckpoint("runs/eoinas/search")
    >>> start = checkpoint.restore(model)
    >>> model.fit(data, epochs=160, initial_epoch=start, callbacks=[checkpoint])
    """

    def __init__(self, directory):
        super().__init__()
        if not directory:
            raise ValueError(f"`directory` must be a folder path. Received: directory={directory!r}")
        self.directory = directory

    @property
    def _paths(self):
        d = self.directory
        return (os.path.join(d, "search.weights.h5"), os.path.join(d, "optimizers.npz"),
                os.path.join(d, "search_state.json"))

    @staticmethod
    def _optimizers(model):
        return [model.optimizer, model.arch_optimizer]

    def on_epoch_end(self, epoch, logs=None):
        from keras_nas import io

        os.makedirs(self.directory, exist_ok=True)
        weights, optimizers, state = self._paths
        tmp = weights + ".part.weights.h5"
        self.model.save_weights(tmp)
        os.replace(tmp, weights)
        arrays = {}
        for i, opt in enumerate(self._optimizers(self.model)):
            for j, v in enumerate(opt.variables):
                arrays[f"opt{i}_{j}"] = np.asarray(v.numpy())
        tmp = optimizers + ".part.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, optimizers)
        io.atomic_write_json(state, {"epochs_done": epoch + 1, "logs": dict(logs or {})})

    def restore(self, model):
        """Loads the last checkpoint into a compiled `model`; returns the epochs done (0 if none)."""
        from keras_nas import io

        weights, optimizers, state = self._paths
        info = io.read_json(state, default=None)
        if not info or not os.path.exists(weights):
            return 0
        model.load_weights(weights)
        if os.path.exists(optimizers):
            arrays = np.load(optimizers)
            for i, opt in enumerate(self._optimizers(model)):
                for j, v in enumerate(opt.variables):
                    key = f"opt{i}_{j}"
                    if key in arrays and tuple(arrays[key].shape) == tuple(v.shape):
                        v.assign(arrays[key])
        return int(info["epochs_done"])

    def get_config(self):
        return {"directory": self.directory}
