"""Results folders: the marker, what --overwrite may remove, one owner, resume with the same settings."""

import json
import os
import subprocess
import sys

import pytest

from keras_nas import io
from keras_nas.engine import results_folder
from keras_nas.engine.options import OptionError, cli_spelling


def _open(out, config, **kwargs):
    resumed, lock = results_folder.open_folder(str(out), config, command="keras-nas test", **kwargs)
    if lock is not None:
        lock.release()
    return resumed


def _snapshot(root):
    """Every file under `root` with its bytes (the user's files must stay byte for byte)."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, root)] = open(path, "rb").read()
    return files


def _users_folder(path):
    path.mkdir()
    (path / "thesis.txt").write_text("four years of work")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return _snapshot(path)


def test_a_new_folder_gets_the_marker_and_resumes_with_the_same_settings(tmp_path):
    out = tmp_path / "run"
    assert _open(out, {"epochs": 3, "verbose": 1}) is False
    config = json.loads((out / "config.json").read_text())
    assert config["keras_nas"]["command"] == "keras-nas test" and config["epochs"] == 3
    assert _open(out, {"epochs": 3, "verbose": 2}, ignored={"verbose"}) is True
    with pytest.raises(OptionError, match=r"other settings \(epochs: 3 -> 4\), written by keras_nas .*`overwrite`"):
        _open(out, {"epochs": 4, "verbose": 1})


def test_a_users_folder_is_never_used_whatever_the_flags(tmp_path):
    out = tmp_path / "mine"
    before = _users_folder(out)
    for overwrite in (False, True):
        with pytest.raises(OptionError, match=r"holds other files \(sub, thesis.txt\) and no keras_nas config"):
            _open(out, {"epochs": 1}, overwrite=overwrite)
    assert _snapshot(out) == before
    assert not (out / results_folder.LOCK_FILE).exists()


def test_overwrite_removes_only_what_keras_nas_wrote(tmp_path, capsys):
    out = tmp_path / "run"
    _open(out, {"epochs": 1})
    (out / "results.json").write_text("{}")
    (out / "trials").mkdir()
    (out / "trials" / "trial_0").mkdir()
    (out / "notes.txt").write_text("my notes")
    assert _open(out, {"epochs": 2}, overwrite=True) is False
    assert sorted(os.listdir(out)) == sorted([".keras_nas.lock", "config.json", "notes.txt"])
    assert (out / "notes.txt").read_text() == "my notes"
    assert "--overwrite kept 1 entry keras_nas did not write" in capsys.readouterr().out


@pytest.mark.parametrize("out, message", [
    ("", "`out` must be a folder path, not empty"),
    ("   ", "`out` must be a folder path, not empty"),
])
def test_empty_out_is_refused(out, message):
    with pytest.raises(OptionError, match=message):
        results_folder.check_out(out)


def test_out_that_is_a_file_or_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OptionError, match="`out` must be a folder; a file of that name exists"):
        results_folder.check_out(str(tmp_path / "file"))
    if os.getuid() == 0:
        unwritable = "/proc/1/run"  # root may write everywhere but in /proc
    else:
        (tmp_path / "locked").mkdir(mode=0o500)
        unwritable = str(tmp_path / "locked" / "run")
    with pytest.raises(OptionError, match="must be a folder this user can write"):
        results_folder.check_out(unwritable)


def test_a_second_run_is_refused_while_the_first_holds_the_folder(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from keras_nas.engine import results_folder\n"
         f"results_folder.open_folder({str(out)!r}, {{'epochs': 1}}, command='keras-nas search first')\n"
         "print('held', flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OptionError) as error:
            _open(out, {"epochs": 1})
        message = error.value.render(cli_spelling)
        assert f"`--out` is in use by another keras-nas run (PID {holder.pid} on " in message
        assert "`keras-nas search first`" in message and "one run owns a results folder" in message
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing: the next run takes the folder over and says so.
    assert _open(out, {"epochs": 1}) is True


def test_a_dead_runs_lock_is_taken_over_with_a_message(tmp_path, capsys):
    out = tmp_path / "run"
    _open(out, {"epochs": 1})
    dead = {"host": os.uname().nodename, "pid": 2**22 + 12345, "started": "2026-01-01T00:00:00",
            "command": "keras-nas search old"}
    (out / results_folder.LOCK_FILE).write_text(json.dumps(dead))
    assert _open(out, {"epochs": 1}) is True
    assert "is no longer running" in capsys.readouterr().out
    assert (out / results_folder.LOCK_FILE).read_text() == ""  # released cleanly


def test_a_worker_shares_the_chiefs_folder_without_a_lock(tmp_path):
    out = tmp_path / "run"
    resumed, lock = results_folder.open_folder(str(out), {"epochs": 1}, command="chief")
    try:
        assert results_folder.open_folder(str(out), {"epochs": 1}, command="worker", role="worker") == (True, None)
    finally:
        lock.release()


def test_a_folder_of_keras_nas_0_1_is_recognised_and_upgraded(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    legacy = {"method": "stagewise", "dataset": "digits", "validation_split": 0.2, "module_type": "residual"}
    io.atomic_write_json(out / "config.json", legacy)
    (out / "results.json").write_text("{}")
    upgrade = lambda c: {**{k: v for k, v in c.items() if k != "module_type"}, "module": c["module_type"]}
    config = {"method": "stagewise", "dataset": "digits", "validation_split": 0.2, "module": "residual"}
    assert _open(out, config, upgrade=upgrade) is True
    with pytest.raises(OptionError, match=r"module: 'residual' -> 'cell'\), written by keras_nas 0.1 or earlier"):
        _open(out, {**config, "module": "cell"}, upgrade=upgrade)


def test_a_setting_added_later_resumes_an_older_folder_at_its_old_value(tmp_path):
    out = tmp_path / "run"
    _open(out, {"epochs": 3})
    added = {"update_unsampled_ops": True}
    assert _open(out, {"epochs": 3, "update_unsampled_ops": True}, added_defaults=added) is True
    with pytest.raises(OptionError, match=r"update_unsampled_ops: True -> False"):
        _open(out, {"epochs": 3, "update_unsampled_ops": False}, added_defaults=added)


def test_results_files_get_the_mode_of_every_other_file(tmp_path):
    mask = os.umask(0o022)
    try:
        io.atomic_write_json(tmp_path / "results.json", {"a": 1})
    finally:
        os.umask(mask)
    assert os.stat(tmp_path / "results.json").st_mode & 0o777 == 0o644


def test_broken_json_names_the_file_and_what_to_do(tmp_path):
    path = tmp_path / "oracle.json"
    path.write_text('{"trials": [1, 2')
    with pytest.raises(io.BrokenFileError, match=r"oracle.json is not valid JSON .*--overwrite"):
        io.read_json(path)
