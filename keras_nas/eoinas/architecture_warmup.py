"""Freezes the architecture parameters for the first epochs of a cell search."""

import keras


@keras.saving.register_keras_serializable(package="keras_nas")
class ArchitectureWarmup(keras.callbacks.Callback):
    """Sets `model.arch_enabled` to 0 before epoch `warmup_epochs`, 1 after.

    Algorithm 1 / sec. 3.3: only the weights are trained for the first 20
    epochs, which balances parameterised and parameter-free ops before alpha
    starts to move. A variable, so the compiled step is not re-traced.

    Args:
        warmup_epochs: int. Epochs with frozen alpha. Defaults to `20`.

    Example:

    >>> model.fit(data, epochs=160, callbacks=[ArchitectureWarmup(20)])
    """

    def __init__(self, warmup_epochs=20):
        super().__init__()
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"`warmup_epochs` must be an int >= 0. Received: warmup_epochs={warmup_epochs!r}")
        self.warmup_epochs = warmup_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.arch_enabled.assign(0.0 if epoch < self.warmup_epochs else 1.0)

    def get_config(self):
        return {"warmup_epochs": self.warmup_epochs}
