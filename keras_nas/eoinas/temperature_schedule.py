"""Anneals the Gumbel-softmax temperature of a cell-search model each epoch."""

import math

import keras

SCHEDULES = ("exponential", "linear")


def temperature_at(epoch, epochs, tau_max=5.0, tau_min=0.1, schedule="exponential"):
    """T at the start of `epoch` (0-based) of `epochs`.

    EoiNAS (sec. 4.2) decays T exponentially from 5 "to 0"; an exponential
    never reaches 0, so it ends at `tau_min` (GDAS' code also stops at 0.1):
    `T = tau_max * (tau_min / tau_max) ** (epoch / (epochs - 1))`.
    `"linear"` is GDAS' schedule.
    """
    progress = epoch / max(epochs - 1, 1)
    if schedule == "exponential":
        return tau_max * math.exp(progress * math.log(tau_min / tau_max))
    if schedule == "linear":
        return tau_max - (tau_max - tau_min) * progress
    raise ValueError(f"`schedule` must be one of {list(SCHEDULES)}. Received: schedule={schedule!r}")


@keras.saving.register_keras_serializable(package="keras_nas")
class TemperatureSchedule(keras.callbacks.Callback):
    """Sets `model.temperature` (a variable, no re-tracing) at each epoch start.

    Args:
        epochs: int. Length of the search.
        tau_max: float. Initial T (sec. 4.2: 5). Defaults to `5.0`.
        tau_min: float. Final T (> 0). Defaults to `0.1`.
        schedule: str. `"exponential"` (EoiNAS) or `"linear"` (GDAS).
            Defaults to `"exponential"`.

    Example:

    >>> model.fit(data, epochs=160, callbacks=[TemperatureSchedule(160)])
    """

    def __init__(self, epochs, tau_max=5.0, tau_min=0.1, schedule="exponential"):
        super().__init__()
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`epochs` must be a positive int. Received: epochs={epochs!r}")
        if not 0 < tau_min <= tau_max:
            raise ValueError(
                f"`tau_min` and `tau_max` must satisfy 0 < tau_min <= tau_max. Received: "
                f"tau_min={tau_min!r}, tau_max={tau_max!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {list(SCHEDULES)}. Received: schedule={schedule!r}")
        self.epochs = epochs
        self.tau_max = tau_max
        self.tau_min = tau_min
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        self.model.temperature.assign(
            temperature_at(epoch, self.epochs, self.tau_max, self.tau_min, self.schedule))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["temperature"] = float(self.model.temperature.numpy())

    def get_config(self):
        return {"epochs": self.epochs, "tau_max": self.tau_max, "tau_min": self.tau_min, "schedule": self.schedule}
