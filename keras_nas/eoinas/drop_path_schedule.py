"""Raises the drop-path rate of every `DropPath` layer linearly over training."""

import keras
from keras_nas.eoinas.drop_path import DropPath


@keras.saving.register_keras_serializable(package="keras_nas")
class DropPathSchedule(keras.callbacks.Callback):
    """Sets each `DropPath` layer's rate to `rate * epoch / epochs` (DARTS `train.py`).

    Args:
        epochs: int. Length of training.

    Example:

    >>> model.fit(data, epochs=600, callbacks=[DropPathSchedule(600)])
    """

    def __init__(self, epochs):
        super().__init__()
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`epochs` must be a positive int. Received: epochs={epochs!r}")
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):

        for layer in self.model._flatten_layers():
            if isinstance(layer, DropPath) and layer.built:
                layer.current_rate.assign(layer.rate * epoch / self.epochs)

    def get_config(self):
        return {"epochs": self.epochs}
