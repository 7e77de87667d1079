"""Checkpoints any `fit` at every epoch end (weights, masks, optimizer, counter) so it resumes."""

import os

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="keras_nas")
class FitCheckpoint(keras.callbacks.Callback):
    """Saves weights (every variable, masks included), optimizer state and `state` each epoch.

    Files are named after the epoch and `state.json` is written last with
    an atomic rename, so a run killed at any moment restores a consistent
    epoch: `restore(model)` loads it and returns `(epochs_done, state)`;
    pass `initial_epoch=epochs_done` to `fit`. `state_fn()` adds JSON-safe
    state of other callbacks (e.g. the CNAS pruning log).

    Args:
        directory: str. Checkpoint folder.
        state_fn: callable returning a dict, or None. Not part of the config.

    Example:

    >>> checkpoint = FitCheckpoint("runs/cnas/search")
    >>> start, state = checkpoint.restore(model)
    >>> model.fit(data, epochs=10, initial_epoch=start, callbacks=[checkpoint])
    """

    def __init__(self, directory, state_fn=None):
        super().__init__()
        if not directory or not isinstance(directory, str):
            raise ValueError(f"`directory` must be a folder path. Received: directory={directory!r}")
        self.directory = directory
        self.state_fn = state_fn
        self.history = {}

    def _state_path(self):
        return os.path.join(self.directory, "state.json")

    def on_epoch_end(self, epoch, logs=None):
        from keras_nas import io

        os.makedirs(self.directory, exist_ok=True)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        weights = f"epoch{epoch + 1}.weights.h5"
        optimizer = f"epoch{epoch + 1}.optimizer.npz"
        self.model.save_weights(os.path.join(self.directory, weights))
        arrays = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(self.model.optimizer.variables)}
        np.savez(os.path.join(self.directory, optimizer), **arrays)
        previous = io.read_json(self._state_path(), {})
        state = {"epochs_done": epoch + 1, "weights": weights, "optimizer": optimizer, "history": self.history,
                 "extra": self.state_fn() if self.state_fn else {}}
        io.atomic_write_json(self._state_path(), state)
        for key in ("weights", "optimizer"):
            old = previous.get(key)
            if old and old != state[key] and os.path.exists(os.path.join(self.directory, old)):
                os.remove(os.path.join(self.directory, old))

    def restore(self, model):
        """Loads the last checkpoint into a compiled `model`; returns `(epochs_done, extra_state)`."""
        from keras_nas import io

        state = io.read_json(self._state_path())
        if not state:
            return 0, {}
        model.load_weights(os.path.join(self.directory, state["weights"]))
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        arrays = np.load(os.path.join(self.directory, state["optimizer"]))
        for i, v in enumerate(model.optimizer.variables):
            key = f"v{i}"
            if key in arrays and tuple(arrays[key].shape) == tuple(v.shape):
                v.assign(arrays[key])
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        return int(state["epochs_done"]), state.get("extra", {})

    def get_config(self):
        return {"directory": self.directory}
