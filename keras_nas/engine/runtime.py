"""Pieces every search runner shares: data loading, the results folder, runtime, trial records."""

import atexit
import os

from keras_nas import io
from keras_nas.engine import common_options, results_folder


def load_data(args, **overrides):
    """Loads the dataset the common options describe (`overrides` replace some of them).

    A dataset a Python caller passed (`args.loaded_dataset`) is used as it is.
    """
    from keras_nas import data as data_lib  # TensorFlow: loaded once the options are checked

    if getattr(args, "loaded_dataset", None) is not None:
        return args.loaded_dataset

    values = {o.name: getattr(args, o.name, o.default) for o in common_options.DATA_OPTIONS}
    values.update(overrides)
    return data_lib.load(values.pop("dataset"), **values)


def run_config(args, method, option_list):
    """Every setting of a run under its own name, for `config.json`."""
    return {"method": method, **{o.name: getattr(args, o.name, o.default) for o in option_list}}


def open_results(args, command, config, option_list, *, added_defaults=None, upgrade=None):
    """Takes `args.out` for this run (see `keras_nas.engine.results_folder`); returns whether it resumes.

    The folder's lock is released when the process ends.
    """
    ignored = {o.name for o in option_list if o.resume_free}
    # Added to every command after results folders were written without it.
    if any(o.name == "deterministic" for o in option_list):
        added_defaults = {"deterministic": False, **(added_defaults or {})}
    resumed, lock = results_folder.open_folder(
        args.out, config, command=command, overwrite=bool(getattr(args, "overwrite", False)), ignored=ignored,
        added_defaults=added_defaults, upgrade=upgrade, role=role())
    if lock is not None:
        atexit.register(lock.release)
    return resumed


def check_trained(count, what, records=None, out=None):
    """Raises `RuntimeError` (exit status 1 on the command line) when a search trained nothing."""
    if count:
        return
    reasons = failure_summary(records or [])
    raise RuntimeError(f"No {what} trained" + (f" ({reasons})" if reasons else "") + "."
                       + (f" What was recorded is in {out}." if out else "")
                       + " Fix the cause (often a learning rate too high for the data) and run again with "
                       "--overwrite.")


def start(args):
    """`(strategy, dataset)` of a checked run: the runtime first (the strategy must exist
    before any tensor does), then the data."""
    return setup_runtime(args), load_data(args)


def setup_runtime(args):
    """Applies the scale-out options; returns the distribution strategy or None.

    `--chief HOST:PORT --worker-id ID` is the command-line form of KerasTuner's
    `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT` and `KERASTUNER_TUNER_ID`
    environment variables (which also work on their own).
    """
    import keras
    import tensorflow as tf

    values = {o.name: getattr(args, o.name, o.default) for o in common_options.RUNTIME_OPTIONS}
    for option in common_options.RUNTIME_OPTIONS:
        option.check(values[option.name])
    common_options.check_runtime({**values, "overwrite": getattr(args, "overwrite", False)})
    chief = values["chief"]
    worker_id = values["worker_id"]
    if chief is not None:
        host, _, port = chief.rpartition(":")
        os.environ["KERASTUNER_ORACLE_IP"] = host
        os.environ["KERASTUNER_ORACLE_PORT"] = port
        os.environ["KERASTUNER_TUNER_ID"] = worker_id
    if getattr(args, "deterministic", False):
        # Python's, NumPy's and TensorFlow's global generators from --seed; the data order, augmentation, Gumbel
        # noise and policy sampling draw from generators seeded by --seed as well.
        keras.utils.set_random_seed(int(getattr(args, "seed", 0)))
        tf.config.experimental.enable_op_determinism()
    if getattr(args, "mixed_precision", False):
        keras.mixed_precision.set_global_policy("mixed_float16")
    if getattr(args, "strategy", "default") == "mirrored":
        return tf.distribute.MirroredStrategy()
    return None


def oracle_arguments(args):
    """Keyword arguments of every `SearchOracle` from the failure/lease options."""
    return {
        "max_consecutive_failed_trials": getattr(args, "max_failures", 3),
        "lease_seconds": getattr(args, "lease_seconds", 300.0),
    }


def failure_summary(records):
    """One line per failed trial of `trial_records`: 'trial 3: <reason>'."""
    return "; ".join(f"trial {r['trial_id']}: {r.get('reason', r['status'])}"
                     for r in records if r["status"] == "FAILED")


def run_search(tuner, oracle, out, method, *args, **kwargs):
    """`tuner.search(*args, **kwargs)`; if the search gives up, records why first.

    KerasTuner stops a search with a `RuntimeError` after
    `max_consecutive_failed_trials` failed trials in a row. Before passing
    that on, the chief writes `results.json` with every trial and the reason
    each failed one failed, so nothing finished is lost and the user can see
    what went wrong.
    """
    try:
        return tuner.search(*args, **kwargs)
    except RuntimeError as error:
        if role() == "worker":
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        records = trial_records(oracle)
        io.atomic_write_json(os.path.join(out, io.RESULTS_FILE), {
            "method": method,
            "stopped_reason": first_line,
            "trials": records,
        })
        raise RuntimeError(
            f"{first_line} Failed trials: {failure_summary(records)}. Trials so far are in "
            f"{os.path.join(out, io.RESULTS_FILE)}; fix the cause and run again with --overwrite."
        ) from error


def role():
    """'chief', 'worker' or 'single' (no distributed search)."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if os.environ.get("KERASTUNER_TUNER_ID") == "chief" else "worker"


def trial_records(oracle):
    """Every trial of a KerasTuner oracle as a plain dict for `results.json`.

    Failed trials keep their reason (the last line of the error KerasTuner
    recorded, e.g. "`loss` became nan at epoch 3 ...") and the full message.
    """
    records = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        metrics = {}
        for name in trial.metrics.metrics:
            value = trial.metrics.get_last_value(name)
            metrics[name] = None if value is None else float(value)
        record = {
            "trial_id": trial_id,
            "status": trial.status,
            "values": dict(trial.hyperparameters.values),
            "metrics": metrics,
            "score": None if trial.score is None else float(trial.score),
        }
        if trial.message:
            lines = [line for line in str(trial.message).strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else ""
            # Our own failures (NaN loss, ...) are full sentences; the exception's name adds nothing.
            record["reason"] = reason.split("FailedTrialError: ", 1)[-1]
            record["message"] = str(trial.message)
        records.append(record)
    return records
