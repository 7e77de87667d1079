"""Results folders: atomic JSON files, config, preprocessing and saved models.

Every search writes into one folder that a person can read and a crashed run can
resume from. Files are written to a temporary name and renamed into place, so a
`kill -9` never leaves a half-written file behind for the next run to read.
"""

import json
import os
import shutil
import tempfile

import numpy as np

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
PREPROCESSING_FILE = "preprocessing.json"


def _to_jsonable(obj):
    """Converts NumPy scalars/arrays and tuples so `json.dump` accepts them."""
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        obj = float(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        # JSON has no NaN/inf; keep the information as a string.
        return str(obj)
    return obj


def atomic_write_text(path, text):
    """Writes `text` to `path` through a temporary file and an atomic rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically (NumPy types allowed)."""
    atomic_write_text(path, json.dumps(_to_jsonable(obj), indent=2) + "\n")


def atomic_copy(source, path):
    """Copies `source` to `path` through a temporary file and a rename."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.part")
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)


def read_json(path, default=None):
    """Reads a JSON file, returning `default` when it does not exist."""
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def prepare_out_dir(out, config, overwrite=False, added_defaults=None):
    """Creates (or reopens) a results folder and records `config.json`.

    A folder that already holds a `config.json` is resumed, unless `overwrite`
    is set, in which case it is emptied first. Settings that change what is
    searched cannot change on resume: the differing keys are reported.

    Args:
        out: str. The results folder.
        config: dict. Every setting of the run (JSON-safe).
        overwrite: bool. Start afresh, deleting what the folder holds.
        added_defaults: dict or None. Settings added to a method after
            folders may have been written without them, each with the value
            those runs implicitly had (e.g. `{"update_unsampled_ops": True}`):
            a folder whose `config.json` lacks the key resumes if the new
            value equals it.

    Returns:
        bool. True when an earlier run in this folder is being resumed.
    """
    out = os.fspath(out)
    config = _to_jsonable(config)
    if overwrite and os.path.isdir(out):
        shutil.rmtree(out)
    previous = read_json(os.path.join(out, CONFIG_FILE))
    if previous is not None:
        previous = {**_to_jsonable(dict(added_defaults or {})), **previous}
        ignored = {"out", "overwrite", "verbose", "resume", "chief", "worker_id"}
        changed = sorted(
            k
            for k in set(previous) | set(config)
            if k not in ignored and previous.get(k) != config.get(k)
        )
        if changed:
            details = ", ".join(
                f"{k}: {previous.get(k)!r} -> {config.get(k)!r}" for k in changed
            )
            raise ValueError(
                f"The results folder `{out}` holds a run with other settings "
                f"({details}). Give the earlier values to resume it, pass "
                "`--overwrite` to start afresh, or choose another `--out`."
            )
        return True
    os.makedirs(out, exist_ok=True)
    atomic_write_json(os.path.join(out, CONFIG_FILE), config)
    return False


def write_preprocessing(out, dataset):
    """Saves what a serving graph needs to reproduce `dataset`'s inputs."""
    atomic_write_json(os.path.join(out, PREPROCESSING_FILE), dataset.preprocessing())


def find_preprocessing(model_path):
    """Looks for `preprocessing.json` beside a saved model or one folder up."""
    folder = os.path.dirname(os.path.abspath(model_path))
    for candidate in (folder, os.path.dirname(folder)):
        found = read_json(os.path.join(candidate, PREPROCESSING_FILE))
        if found is not None:
            return found
    return None


def save_figure(fig, path, dpi=100):
    """Saves a matplotlib figure as PNG atomically (temporary name, then rename) and closes it."""
    import matplotlib.pyplot as plt

    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.part.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
