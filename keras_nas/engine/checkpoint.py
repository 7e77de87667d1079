"""One checkpoint for every `fit` keras_nas runs: weights, optimizers, counter and extra state, each epoch."""

import os

import keras
import numpy as np

from keras_nas import io

STATE_FILE = "state.json"
# Written by keras_nas 0.1 / before 0.2's single checkpoint: the EoiNAS supernet's state file.
LEGACY_SEARCH_STATE = "search_state.json"


@keras.saving.register_keras_serializable(package="keras_nas")
class EpochCheckpoint(keras.callbacks.Callback):
    """Saves a model's weights, its optimizers' slots and `state_fn()` at every epoch end, to resume.

    Every variable of the model is saved, so the search state held in
    variables travels with it (EoiNAS' alpha, live-op masks, importance
    statistics, temperature and warm-up flag; CNAS' channel masks). Each
    epoch writes new weight and optimizer files and then replaces
    `state.json`, which names them, atomically: a run killed at any moment
    restores the last complete epoch. `restore(model)` loads it into a
    compiled model and returns `(epochs_done, extra_state)`; pass
    `initial_epoch=epochs_done` to `fit`.

    Folders written by the two earlier checkpoint callbacks (CNAS'
    `FitCheckpoint`, EoiNAS' `SearchCheckpoint`) restore as well.

    Args:
        directory: str. Checkpoint folder.
        optimizers: tuple of str. The model attributes holding optimizers
            whose slots are saved (`("optimizer", "arch_optimizer")` for the
            bilevel supernet). Defaults to `("optimizer",)`.
        state_fn: callable returning a JSON-safe dict, or None. More state
            to keep (the CNAS pruning log). Not part of the config.

    Example:

    >>> checkpoint = EpochCheckpoint("runs/cnas/search")
    >>> start, state = checkpoint.restore(model)
    >>> model.fit(data, epochs=10, initial_epoch=start, callbacks=[checkpoint])
    """

    def __init__(self, directory, optimizers=("optimizer",), state_fn=None):
        super().__init__()
        if not directory or not isinstance(directory, str):
            raise ValueError(f"`directory` must be a folder path. Received: directory={directory!r}")
        optimizers = tuple(optimizers)
        if not optimizers or not all(isinstance(o, str) and o for o in optimizers):
            raise ValueError(f"`optimizers` must be a non-empty tuple of attribute names. Received: "
                             f"optimizers={optimizers!r}")
        self.directory = directory
        self.optimizers = optimizers
        self.state_fn = state_fn
        self.history = {}

    def _path(self, name):
        return os.path.join(self.directory, name)

    def _optimizer_variables(self, model):
        return [getattr(model, name).variables for name in self.optimizers]

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        weights, optimizer = f"epoch{epoch + 1:04d}.weights.h5", f"epoch{epoch + 1:04d}.optimizer.npz"
        self.model.save_weights(self._path(weights))
        arrays = {f"opt{i}_{j}": np.asarray(v.numpy())
                  for i, variables in enumerate(self._optimizer_variables(self.model)) for j, v in enumerate(variables)}
        partial = self._path(f".{optimizer}.part.npz")
        np.savez(partial, **arrays)
        os.replace(partial, self._path(optimizer))
        io.atomic_write_json(self._path(STATE_FILE), {
            "epochs_done": epoch + 1, "weights": weights, "optimizer": optimizer, "history": self.history,
            "logs": {k: float(v) for k, v in (logs or {}).items()},
            "extra": self.state_fn() if self.state_fn else {},
        })
        keep = {weights, optimizer, STATE_FILE}
        for name in os.listdir(self.directory):
            # Only this callback's own files of earlier epochs (and of the earlier callbacks' formats).
            if name not in keep and name.endswith((".weights.h5", ".optimizer.npz", ".npz")) and name.startswith(
                    ("epoch", "search-", "optimizers-")):
                os.remove(self._path(name))

    def _read_state(self):
        state = io.read_json(self._path(STATE_FILE))
        if state:
            return state
        legacy = io.read_json(self._path(LEGACY_SEARCH_STATE))
        if legacy:  # EoiNAS' SearchCheckpoint: `optimizers` names the npz
            return {**legacy, "optimizer": legacy["optimizers"], "extra": {}}
        return None

    def restore(self, model):
        """Loads the last checkpoint into a compiled `model`; returns `(epochs_done, extra_state)` ((0, {}) if none)."""
        state = self._read_state()
        if not state:
            return 0, {}
        model.load_weights(self._path(state["weights"]))
        if "optimizer" in self.optimizers and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # others (the supernet's alpha optimizer) build themselves
        arrays = np.load(self._path(state["optimizer"]))
        for i, variables in enumerate(self._optimizer_variables(model)):
            for j, v in enumerate(variables):
                # `v{j}`: FitCheckpoint's name for the slots of its one optimizer.
                key = f"opt{i}_{j}" if f"opt{i}_{j}" in arrays else (f"v{j}" if i == 0 else None)
                if key in arrays and tuple(arrays[key].shape) == tuple(v.shape):
                    v.assign(arrays[key])
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        return int(state["epochs_done"]), state.get("extra", {})

    def get_config(self):
        return {"directory": self.directory, "optimizers": list(self.optimizers)}
