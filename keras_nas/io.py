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
from keras_nas.engine.options import OptionError, OptionTypeError

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
PREPROCESSING_FILE = "preprocessing.json"


def to_jsonable(obj):
    """Converts NumPy scalars/arrays and tuples so `json.dump` accepts them."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
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
    _atomic_write(path, text, "w")


def atomic_write_bytes(path, content):
    """Writes `content` (bytes) to `path` through a temporary file and an atomic rename."""
    _atomic_write(path, content, "wb")


def _atomic_write(path, text, mode):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file readable by its owner only; give it the
        # mode every other file gets, so workers on a shared file system read it.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically (NumPy types allowed)."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def atomic_copy(source, path):
    """Copies `source` to `path` through a temporary file and a rename."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.part")
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)


class BrokenFileError(ValueError):
    """A file keras_nas reads is damaged (cut short, edited by hand, not what its name says)."""


def read_json(path, default=None):
    """Reads a JSON file, returning `default` when it does not exist.

    A file that exists but does not parse raises `BrokenFileError` naming
    it, instead of a `json` traceback.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return default
    try:
        with open(path) as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BrokenFileError(
            f"{path} is not valid JSON ({error}): it was cut short or edited by hand. Restore it from a "
            "copy, or start the run afresh with --overwrite (overwrite=True)."
        ) from None
    except IsADirectoryError:
        raise BrokenFileError(f"{path} is a folder; a JSON file was expected there.") from None


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


def save_model(model, path):
    """Saves a Keras model as `.keras` atomically (temporary name beside it, then rename)."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.part.keras")
    model.save(tmp)
    os.replace(tmp, path)


def check_keras_path(name, path):
    """`path` if it names an existing `.keras` file; `OptionError` naming `name` otherwise."""

    if not isinstance(path, (str, os.PathLike)):
        raise OptionTypeError(f"`{name}` must be the path of a .keras file.", **{name: path})
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise OptionError(f"`{name}` must be a .keras file (Keras' saving format).", **{name: path})
    if not os.path.isfile(path):
        raise OptionError(f"`{name}` must be an existing .keras file; there is none at that path.",
                          **{name: path})
    return path


def load_model(path, name="model"):
    """Loads a `.keras` model (uncompiled); a damaged file raises `BrokenFileError` naming it.

    `keras.saving.load_model` reports a file that is not a Keras archive,
    or one with a flipped bit, with errors such as "File not found" or a
    zip traceback; this names the file and the cause in one line.
    """
    import zipfile

    import keras  # deferred: this module is read by the command line before TensorFlow loads

    path = check_keras_path(name, path)
    if not zipfile.is_zipfile(path):
        raise BrokenFileError(f"{path} is not a valid .keras file (not a zip archive); it was cut short, "
                              "damaged, or is another kind of file.")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise BrokenFileError(f"{path} is not a valid .keras file ({error}).") from error
    if damaged is not None:
        raise BrokenFileError(f"{path} is not a valid .keras file: its member {damaged} fails its checksum "
                              "(the file is damaged); save or copy it again.")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds here (ValueError, TypeError, OSError, KeyError)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BrokenFileError(f"{path} is not a valid .keras file: {reason}") from error
