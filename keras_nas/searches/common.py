"""Pieces every search runner shares: data loading and the output folder."""

import os

from keras_nas import data as data_lib


def load_data(args):
    """Loads the dataset the common CLI options describe."""
    return data_lib.load(
        args.dataset,
        image_size=args.image_size,
        channels=args.channels,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        seed=args.seed,
        augment=args.augment,
        data_dir=args.data_dir,
    )


def out_dir(args, method):
    """`--out`, or `runs/<method>` when it was not given."""
    return args.out or os.path.join("runs", method)


def common_config(args):
    """The common options as a plain dict, for `config.json`."""
    keys = (
        "dataset", "data_dir", "image_size", "channels", "batch_size",
        "validation_split", "augment", "seed",
    )
    return {k: getattr(args, k, None) for k in keys}


def add_runtime_arguments(parser):
    """Options for spreading a search: chief/worker roles and devices."""
    group = parser.add_argument_group("scale-out options")
    group.add_argument("--chief", default=None, metavar="HOST:PORT",
                       help="address of the KerasTuner chief (sets KERASTUNER_ORACLE_IP/PORT)")
    group.add_argument("--worker-id", default=None,
                       help="'chief' to run the chief, any other name for a worker (sets KERASTUNER_TUNER_ID)")
    group.add_argument("--strategy", choices=("default", "mirrored"), default="default",
                       help="mirrored: train each model on all local GPUs (tf.distribute.MirroredStrategy)")
    group.add_argument("--mixed-precision", action="store_true",
                       help="float16 compute with float32 variables (GPUs with tensor cores)")
    group.add_argument("--jit-compile", action="store_true", help="compile train steps with XLA")
    group.add_argument("--max-failures", type=int, default=3,
                       help="stop after this many failed trials in a row (NaN loss, build error); "
                            "a failed trial's reason is kept in results.json")
    group.add_argument("--lease-seconds", type=float, default=300.0,
                       help="a running trial whose worker sent no heartbeat for this long goes to another worker")


def setup_runtime(args):
    """Applies the scale-out options; returns the distribution strategy or None.

    `--chief HOST:PORT --worker-id ID` is the command-line form of KerasTuner's
    `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT` and `KERASTUNER_TUNER_ID`
    environment variables (which also work on their own).
    """
    import keras
    import tensorflow as tf

    max_failures = getattr(args, "max_failures", 3)
    if not isinstance(max_failures, int) or max_failures < 1:
        raise ValueError(f"`--max-failures` must be an int >= 1. Received: --max-failures {max_failures!r}")
    lease = getattr(args, "lease_seconds", 300.0)
    if not isinstance(lease, (int, float)) or lease <= 0:
        raise ValueError(f"`--lease-seconds` must be > 0. Received: --lease-seconds {lease!r}")
    chief = getattr(args, "chief", None)
    worker_id = getattr(args, "worker_id", None)
    if chief is not None:
        host, sep, port = chief.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"`--chief` must be HOST:PORT. Received: --chief {chief!r}")
        if not worker_id:
            raise ValueError("`--worker-id` is required with `--chief` ('chief' for the chief process).")
        os.environ["KERASTUNER_ORACLE_IP"] = host
        os.environ["KERASTUNER_ORACLE_PORT"] = port
        os.environ["KERASTUNER_TUNER_ID"] = worker_id
    elif worker_id:
        raise ValueError("`--worker-id` needs `--chief HOST:PORT`.")
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
    from keras_nas import io

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
            record["reason"] = lines[-1] if lines else ""
            record["message"] = str(trial.message)
        records.append(record)
    return records
