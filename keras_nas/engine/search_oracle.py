"""Base KerasTuner Oracle of every keras_nas search: leases and atomic state."""

import os
import time

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from keras_nas import io

RUNNING = trial_module.TrialStatus.RUNNING
IDLE = trial_module.TrialStatus.IDLE
STOPPED = trial_module.TrialStatus.STOPPED


def check_positive_int(name, value):
    """Raises a Keras-style `ValueError` unless `value` is an int >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")


class SearchOracle(keras_tuner.Oracle):
    """A KerasTuner Oracle that survives dead workers and killed processes.

    Subclasses implement `populate_space` (and keep their own state in
    `get_state`/`set_state`) exactly as for `keras_tuner.Oracle`; this base
    class adds what a long search on many machines needs:

    - **Leases.** Every running trial holds a lease that the worker renews
      with each heartbeat (`get_trial`, sent every few seconds by
      `keras_nas.engine.SearchTuner`) and each reported metric. A trial whose
      lease runs out — its worker died — goes back to the queue and the next
      worker asking for work runs it. In stock KerasTuner the chief waits for
      such a trial forever (keras-team/keras-tuner#915).
    - **No early stop.** A worker asking for work when the search has none
      left, while other workers still run trials, is told to wait (`IDLE`)
      rather than to exit, so it can take over a trial whose worker dies.
    - **Each trial counted once.** A trial ended twice (a slow worker whose
      lease had expired finishing after all) is recorded once.
    - **Atomic state.** `oracle.json` and every `trial.json` are written to a
      temporary file and renamed, so a `kill -9` never leaves a half-written
      file for the resumed search to read. On reload, trials that were running
      are retried (KerasTuner's behaviour); finished ones are not.

    Args:
        lease_seconds: float. Time a running trial may go without a heartbeat
            before it is handed to another worker. Defaults to `300`.
        **kwargs: passed to `keras_tuner.Oracle` (`objective`, `max_trials`,
            `max_consecutive_failed_trials`, ...).

    Example:

    ```python
    class MyOracle(SearchOracle):
        def populate_space(self, trial_id):
            return {"status": "RUNNING", "values": {"depth": 3}}
    ```
    """

    def __init__(self, *args, lease_seconds=300.0, **kwargs):
        if not isinstance(lease_seconds, (int, float)) or lease_seconds <= 0:
            raise ValueError(
                f"`lease_seconds` must be a positive number. Received: "
                f"lease_seconds={lease_seconds!r}"
            )
        super().__init__(*args, **kwargs)
        self.lease_seconds = float(lease_seconds)
        # trial_id -> wall-clock deadline; not persisted: a reloaded oracle
        # retries every trial that was running.
        self._lease_deadlines = {}
        self.expired_leases = []

    # -- leases ---------------------------------------------------------

    def _renew(self, trial_id):
        if any(t.trial_id == trial_id for t in self.ongoing_trials.values()):
            self._lease_deadlines[trial_id] = time.time() + self.lease_seconds

    def _expire_leases(self):
        now = time.time()
        for tuner_id, trial in list(self.ongoing_trials.items()):
            deadline = self._lease_deadlines.get(trial.trial_id)
            if deadline is None:
                self._lease_deadlines[trial.trial_id] = now + self.lease_seconds
                continue
            if now <= deadline:
                continue
            self.ongoing_trials.pop(tuner_id)
            self.tuner_ids.discard(tuner_id)
            self._lease_deadlines.pop(trial.trial_id, None)
            if trial.trial_id not in self._retry_queue:
                self._retry_queue.append(trial.trial_id)
            self.expired_leases.append({"trial_id": trial.trial_id, "tuner_id": tuner_id, "time": now})
            print(
                f"Trial {trial.trial_id} of worker {tuner_id} sent no heartbeat for "
                f"{self.lease_seconds:.0f} s; handing it to another worker.",
                flush=True,
            )

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        self._expire_leases()
        others_running = any(t != tuner_id for t in self.ongoing_trials)
        trial = super().create_trial(tuner_id)
        if trial.status == RUNNING:
            self._renew(trial.trial_id)
        elif trial.status == STOPPED and others_running:
            # Keep this worker: it may have to take over a dead worker's trial.
            self.tuner_ids.add(tuner_id)
            trial.status = IDLE
        return trial

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        self._renew(trial_id)
        return super().update_trial(trial_id, metrics, step=step)

    @keras_tuner.synchronized
    def get_trial(self, trial_id):
        # Workers call this as their heartbeat.
        self._renew(trial_id)
        return super().get_trial(trial_id)

    @keras_tuner.synchronized
    def end_trial(self, trial):
        trial_id = trial.trial_id
        self._lease_deadlines.pop(trial_id, None)
        if trial_id in self._retry_queue and trial.status == trial_module.TrialStatus.COMPLETED:
            self._retry_queue.remove(trial_id)
        if trial_id in self.end_order:
            # Already ended by the worker that took it over: count it once.
            for tuner_id, ongoing in list(self.ongoing_trials.items()):
                if ongoing.trial_id == trial_id:
                    self.ongoing_trials.pop(tuner_id)
            return
        super().end_trial(trial)

    # -- atomic persistence ---------------------------------------------

    def save(self):
        io.atomic_write_json(self._get_oracle_fname(), self.get_state())

    def reload(self):
        # KerasTuner's own reading of a damaged state file ends in a json traceback that
        # does not name the file: read each once first (io.read_json names it).
        io.read_json(self._get_oracle_fname())
        for name in sorted(os.listdir(self._project_dir)):
            if name.startswith("trial_"):
                io.read_json(os.path.join(self._project_dir, name, "trial.json"))
        super().reload()
        # KerasTuner writes a new trial's trial.json before oracle.json: a
        # process killed in between leaves a trial the saved state never
        # started. Reloaded, it would count towards the budget and never run;
        # dropped, its id is handed out again.
        started = set(self.start_order)
        for trial_id in [t for t in self.trials if t not in started]:
            del self.trials[trial_id]

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        io.atomic_write_json(path, trial.get_state())

    def get_state(self):
        state = super().get_state()
        state["lease_seconds"] = self.lease_seconds
        state["expired_leases"] = list(self.expired_leases)
        return state

    def set_state(self, state):
        super().set_state(state)
        self.lease_seconds = state.get("lease_seconds", self.lease_seconds)
        self.expired_leases = list(state.get("expired_leases", []))
        self._lease_deadlines = {}
