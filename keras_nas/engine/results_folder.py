"""Results folders: who owns one, what `--overwrite` may remove, when a run resumes.

A results folder is recognised by its `config.json`, which carries a
`keras_nas` marker (the version and command that wrote it) beside the
settings. The rules:

- A folder that is not empty and is not a keras_nas results folder is never
  used, whatever the flags: keras_nas does not write into, or delete, what
  it did not write.
- `overwrite=True` removes only the entries keras_nas writes (`OWNED`);
  anything else in the folder stays and is listed.
- One run owns a folder: it holds `.keras_nas.lock` (host, PID, start time,
  command) with an OS file lock for as long as it runs. A second run is
  refused with the holder named; a lock left by a process that died is taken
  over with a message. KerasTuner workers of a distributed search share the
  chief's folder and take no lock.
- A folder is resumed only with the same settings; otherwise the differing
  settings are listed.
"""

import datetime
import json
import os
import shutil
import socket

from keras_nas import io
from keras_nas.engine.options import OptionError
from keras_nas import __version__

LOCK_FILE = ".keras_nas.lock"
MARKER = "keras_nas"
# Everything keras_nas writes at the top of a results folder (files and
# folders); `--overwrite` removes these and nothing else.
OWNED = frozenset({
    io.CONFIG_FILE, io.RESULTS_FILE, io.PREPROCESSING_FILE, LOCK_FILE,
    "best_model.keras", "model.keras", "sparse_model.keras",
    "genotype.json", "genotype.png", "history.png", "history.json", "stage_depths.png", "accuracy_vs_macs.png",
    "reward.png", "reward_vs_children.png", "topology.png", "pruning.png",
    "logs", "backup", "trials", "tuner", "oneshot", "search", "final", "baseline_dense", "baseline_random",
    "shared_parameters", "saved_model",
})


def _temporary(name):
    """A temporary file of an atomic write (`.tmp-*.part`, `.results.json.part`, `x.keras.part.keras`)."""
    return name.startswith(".tmp-") or (".part" in name and (name.startswith(".") or name.endswith(".part.keras")))


def _owned(name):
    return name in OWNED or _temporary(name)


def _is_results_config(config):
    """A `config.json` keras_nas wrote: with the marker, or (up to 0.1) the common data settings."""
    return isinstance(config, dict) and (isinstance(config.get(MARKER), dict)
                                         or {"dataset", "validation_split"} <= set(config))


def check_out(out, name="out"):
    """The folder path if a run may use it; `OptionError` naming `name` otherwise (nothing is written).

    Refused: an empty path, a path that is a file, a folder whose parent
    cannot be written, a non-empty folder that is not a keras_nas results
    folder.
    """
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out).strip():
        raise OptionError(f"`{name}` must be a folder path, not empty.", **{name: out})
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise OptionError(f"`{name}` must be a folder; a file of that name exists.", **{name: out})
    existing = out
    while not os.path.exists(existing):
        parent = os.path.dirname(os.path.abspath(existing))
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError(f"`{name}` must be a folder this user can write ({existing} is not writable).",
                          **{name: out})
    if os.path.isdir(out):
        entries = [e for e in os.listdir(out) if not _temporary(e) and e != LOCK_FILE]
        if entries:
            config = _read_config(out)
            if not _is_results_config(config):
                shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
                raise OptionError(
                    f"`{name}` must be a new or empty folder, or a keras_nas results folder; this one holds "
                    f"other files ({shown}) and no keras_nas config.json, so nothing in it is touched. Choose "
                    f"another `{name}`.", names=(name,), **{name: out})
    return out


def _read_config(out):
    """The folder's config.json (None if it has none; a damaged one raises `io.BrokenFileError`)."""
    return io.read_json(os.path.join(out, io.CONFIG_FILE))


# -- the lock ---------------------------------------------------------


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


_HELD = []


def release_all():
    """Releases every lock this process took (the command line calls it when a command ends)."""
    while _HELD:
        _HELD.pop().release()


def release(out):
    """Releases this process' lock on the results folder `out`, if it holds one (a Python search has ended)."""
    for lock in list(_HELD):
        if os.path.abspath(lock.folder) == os.path.abspath(out):
            lock.release()


class FolderLock:
    """The lock of one run on one results folder (held until `release()` or the process ends).

    Args:
        folder: str. The results folder (created).
        command: str. What runs, for the message a second run gets.
        name: str. The setting the folder came from, for messages.
    """

    def __init__(self, folder, command, name="out"):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_FILE)
        self.command = command
        self.name = name
        self._fd = None

    def acquire(self):
        """Takes the lock; `OptionError` naming the holder if another live run has it."""
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _try_lock(fd)
        except OSError:
            locked = None  # the file system has no locks (some network mounts): fall back to the PID
        holder = _read_holder(fd)
        if locked is False or (locked is None and holder and _holder_alive(holder)):
            os.close(fd)
            raise OptionError(
                f"`{self.name}` is in use by another keras-nas run ({_describe(holder)}); one run owns a results "
                f"folder. Wait for it to finish, stop it, or choose another `{self.name}`.",
                names=(self.name,), **{self.name: self.folder})
        if holder:
            print(f"Taking over {self.path}: the run that held it ({_describe(holder)}) is no longer running.",
                  flush=True)
        record = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        _HELD.append(self)
        return self

    def release(self):
        """Empties the lock file (an empty lock means a run that ended cleanly) and unlocks it."""
        if self._fd is None:
            return
        if self in _HELD:
            _HELD.remove(self)
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing drops the OS lock
            self._fd = None

    def __enter__(self):
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc):
        self.release()


def _try_lock(fd):
    try:
        import fcntl
    except ImportError:  # Windows: no fcntl; rely on the PID recorded in the file
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd):
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        return json.loads(text) if text else None
    except ValueError:
        return {"unreadable": True}


def _holder_alive(holder):
    return holder.get("host") != socket.gethostname() or _process_alive(int(holder.get("pid", -1)))


def _describe(holder):
    if not holder or holder.get("unreadable"):
        return "holder unknown"
    return (f"PID {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
            f"`{holder.get('command')}`")


# -- opening a folder ---------------------------------------------------


def remove_owned(out):
    """Removes what keras_nas wrote in `out` (not the lock); returns the names of other entries, kept."""
    kept = []
    for entry in sorted(os.listdir(out)):
        path = os.path.join(out, entry)
        if entry == LOCK_FILE:
            continue
        if not _owned(entry):
            kept.append(entry)
        elif os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return kept


def settings_differences(previous, config, *, ignored=(), added_defaults=None):
    """`[(key, before, now)]` of the settings that differ (the marker and `ignored` keys aside)."""
    previous = {**io.to_jsonable(dict(added_defaults or {})), **previous}
    ignored = set(ignored) | {MARKER}
    return [(k, previous.get(k), config.get(k)) for k in sorted(set(previous) | set(config))
            if k not in ignored and previous.get(k) != config.get(k)]


def open_folder(out, config, *, command, overwrite=False, ignored=(), added_defaults=None, upgrade=None,
                role="single", name="out"):
    """Takes `out` for one run and records its settings; returns `(resumed, lock)`.

    Everything the run was given must be checked before this is called: it
    is the first thing that writes. A worker of a distributed search takes
    no lock and removes nothing (the chief owns the folder).

    Args:
        out: str. The results folder.
        config: dict. Every setting of the run (JSON-safe).
        command: str. The command, recorded in the marker and the lock.
        overwrite: bool. Remove what keras_nas wrote first and start afresh.
        ignored: names of settings that may change on resume (`verbose`, ...).
        added_defaults: dict or None. Settings added after older folders
            were written, with the value those runs implicitly had.
        upgrade: callable or None. Turns a `config.json` written before the
            marker existed (keras_nas 0.1) into today's names and forms.
        role: str. `"single"`, `"chief"` or `"worker"`.
        name: str. The setting `out` came from, for messages.

    Returns:
        `(resumed, lock)`: whether an earlier run is continued, and the
        `FolderLock` (None for a worker) to `release()` at the end.
    """

    out = check_out(out, name)
    lock = None
    if role != "worker":
        lock = FolderLock(out, command, name).acquire()
    try:
        if overwrite and role != "worker":
            kept = remove_owned(out)
            if kept:
                print(f"--overwrite kept {len(kept)} entr{'y' if len(kept) == 1 else 'ies'} keras_nas did not "
                      f"write in {out}: {', '.join(kept)}", flush=True)
        config = io.to_jsonable(config)
        previous = io.read_json(os.path.join(out, io.CONFIG_FILE))
        if previous is not None and not isinstance(previous.get(MARKER), dict) and upgrade is not None:
            previous = upgrade(previous)
        if previous is not None:
            differences = settings_differences(previous, config, ignored=ignored, added_defaults=added_defaults)
            if differences:
                details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in differences)
                marker = previous.get(MARKER)
                written = marker.get("version") if isinstance(marker, dict) else "0.1 or earlier"
                raise OptionError(
                    f"`{name}` holds a run with other settings ({details}), written by keras_nas {written}. Give "
                    f"the earlier values to resume it, pass `overwrite` to start afresh, or choose another "
                    f"`{name}`.", names=("overwrite",), **{name: out})
            return True, lock
        marked = {MARKER: {"version": __version__, "command": command}, **config}
        io.atomic_write_json(os.path.join(out, io.CONFIG_FILE), marked)
        return False, lock
    except BaseException:
        if lock is not None:
            lock.release()
        raise

