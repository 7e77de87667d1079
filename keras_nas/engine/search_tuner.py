"""Base KerasTuner Tuner of every keras_nas search: heartbeats, waiting, failures."""

import math
import threading
import time

import keras
import keras_tuner
from keras_nas import io


class SearchTuner(keras_tuner.Tuner):
    """A KerasTuner Tuner that works with `keras_nas.engine.SearchOracle`.

    Subclasses implement `run_trial(trial, ...)` and return the metrics, as for
    `keras_tuner.Tuner`. This base class adds:

    - **Heartbeats.** While a trial runs, a background thread renews its lease
      at the oracle every `heartbeat_seconds` (over gRPC on a worker), so the
      chief can tell a slow trial from a dead worker.
    - **Waiting without spinning.** When the oracle answers `IDLE` (an
      episode still running elsewhere, a trial waiting for another), the
      tuner sleeps with a growing back-off instead of asking again at once
      (stock KerasTuner asks again in a tight loop).
    - **Failed trials.** `check_finite(history)` turns a NaN/inf loss into a
      `keras_tuner.errors.FailedTrialError` naming the epoch; KerasTuner then
      ends the trial as FAILED with that message and stops the search only
      after `max_consecutive_failed_trials` in a row (an oracle argument).
      A model that cannot be built ends the same way.

    Args:
        heartbeat_seconds: float. Interval of the lease heartbeat. Defaults
            to `20`.
        max_idle_sleep: float. Longest wait between two requests while the
            oracle is idle. Defaults to `5`.
        **kwargs: passed to `keras_tuner.Tuner` (`oracle`, `directory`,
            `project_name`, `distribution_strategy`, ...).
    """

    def __init__(self, *args, heartbeat_seconds=20.0, max_idle_sleep=5.0, **kwargs):
        if not isinstance(heartbeat_seconds, (int, float)) or heartbeat_seconds <= 0:
            raise ValueError(
                "`heartbeat_seconds` must be a positive number. Received: "
                f"heartbeat_seconds={heartbeat_seconds!r}"
            )
        super().__init__(*args, **kwargs)
        self.heartbeat_seconds = float(heartbeat_seconds)
        self.max_idle_sleep = float(max_idle_sleep)
        self._asked_without_trial = 0
        self._heartbeat_stop = None

    def reload(self):

        io.read_json(self._get_tuner_fname())  # a damaged file is named (KerasTuner's json error is not)
        super().reload()

    # -- waiting --------------------------------------------------------

    def pre_create_trial(self):
        if self._asked_without_trial:
            # The last request returned IDLE: back off 0.1 s, 0.2 s, ... up to
            # `max_idle_sleep`.
            time.sleep(min(0.1 * 2 ** (self._asked_without_trial - 1), self.max_idle_sleep))
        self._asked_without_trial += 1
        super().pre_create_trial()

    # -- heartbeats -----------------------------------------------------

    def on_trial_begin(self, trial):
        self._asked_without_trial = 0
        stop = threading.Event()
        self._heartbeat_stop = stop

        def beat():
            while not stop.wait(self.heartbeat_seconds):
                try:
                    self.oracle.get_trial(trial.trial_id)
                except Exception:  # a missed beat is retried at the next one
                    pass

        threading.Thread(target=beat, name=f"heartbeat-{trial.trial_id}", daemon=True).start()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        if self._heartbeat_stop is not None:
            self._heartbeat_stop.set()
            self._heartbeat_stop = None
        super().on_trial_end(trial)

    # -- failures -------------------------------------------------------

    @staticmethod
    def fit_callbacks():
        """Callbacks every trial's `fit` should use (stop at a NaN loss)."""
        return [keras.callbacks.TerminateOnNaN()]

    @staticmethod
    def check_finite(history):
        """Raises `FailedTrialError` if a loss in a Keras history is NaN/inf."""
        logs = history.history if hasattr(history, "history") else history
        for name, values in logs.items():
            if "loss" not in name:
                continue
            for epoch, value in enumerate(values):
                if value is None or not math.isfinite(float(value)):
                    raise keras_tuner.errors.FailedTrialError(
                        f"`{name}` became {value} at epoch {epoch + 1}; the trial "
                        "is ended as failed."
                    )
