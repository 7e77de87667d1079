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
        directory: str. Folder for `search-<epoch>.weights.h5`,
            `optimizers-<epoch>.npz` and `search_state.json` (which names the
            last complete pair).

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
    def _state_path(self):
        return os.path.join(self.directory, "search_state.json")

    def _files(self, epochs_done):
        return (os.path.join(self.directory, f"search-{epochs_done:04d}.weights.h5"),
                os.path.join(self.directory, f"optimizers-{epochs_done:04d}.npz"))

    @staticmethod
    def _optimizers(model):
        return [model.optimizer, model.arch_optimizer]

    def on_epoch_end(self, epoch, logs=None):
        from keras_nas import io

        os.makedirs(self.directory, exist_ok=True)
        # Weights and optimizer slots of this epoch go to new files; the state
        # file, replaced atomically last, names them. A kill at any moment
        # leaves the previous epoch's consistent set in use.
        weights, optimizers = self._files(epoch + 1)
        self.model.save_weights(weights)
        arrays = {}
        for i, opt in enumerate(self._optimizers(self.model)):
            for j, v in enumerate(opt.variables):
                arrays[f"opt{i}_{j}"] = np.asarray(v.numpy())
        tmp = optimizers + ".part.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, optimizers)
        io.atomic_write_json(self._state_path, {
            "epochs_done": epoch + 1,
            "weights": os.path.basename(weights),
            "optimizers": os.path.basename(optimizers),
            "logs": {k: float(v) for k, v in (logs or {}).items()},
        })
        keep = {os.path.basename(weights), os.path.basename(optimizers)}
        for name in os.listdir(self.directory):
            if (name.startswith("search-") or name.startswith("optimizers-")) and name not in keep:
                os.remove(os.path.join(self.directory, name))

    def restore(self, model):
        """Loads the last checkpoint into a compiled `model`; returns the epochs done (0 if none)."""
        from keras_nas import io

        info = io.read_json(self._state_path, default=None)
        if not info:
            return 0
        weights = os.path.join(self.directory, info["weights"])
        optimizers = os.path.join(self.directory, info["optimizers"])
        model.load_weights(weights)
        arrays = np.load(optimizers)
        for i, opt in enumerate(self._optimizers(model)):
            for j, v in enumerate(opt.variables):
                key = f"opt{i}_{j}"
                if key in arrays and tuple(arrays[key].shape) == tuple(v.shape):
                    v.assign(arrays[key])
        return int(info["epochs_done"])

    def get_config(self):
        return {"directory": self.directory}
