import json
import os

import numpy as np
import pytest

from keras_nas import io


def test_atomic_write_json_handles_numpy_and_leaves_no_temp(tmp_path):
    path = tmp_path / "r.json"
    io.atomic_write_json(path, {"a": np.int64(3), "b": np.array([1.5, 2]), "c": float("nan"), "t": (1, 2)})
    assert json.loads(path.read_text()) == {"a": 3, "b": [1.5, 2.0], "c": "nan", "t": [1, 2]}
    assert os.listdir(tmp_path) == ["r.json"]


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "r.json"
    io.atomic_write_json(path, {"ok": 1})
    with pytest.raises(TypeError):
        io.atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert os.listdir(tmp_path) == ["r.json"]


def test_prepare_out_dir_resume_and_overwrite(tmp_path):
    out = tmp_path / "run"
    assert io.prepare_out_dir(out, {"epochs": 3, "verbose": 1}) is False
    (out / "x.txt").write_text("work")
    assert io.prepare_out_dir(out, {"epochs": 3, "verbose": 2}) is True
    with pytest.raises(ValueError, match=r"other settings \(epochs: 3 -> 4\).*--overwrite"):
        io.prepare_out_dir(out, {"epochs": 4})
    assert io.prepare_out_dir(out, {"epochs": 4}, overwrite=True) is False
    assert not (out / "x.txt").exists()
    assert io.read_json(out / "config.json") == {"epochs": 4}


def test_prepare_out_dir_resumes_a_folder_written_before_a_setting_existed(tmp_path):
    out = tmp_path / "run"
    io.prepare_out_dir(out, {"epochs": 3})
    added = {"update_unsampled_ops": True}
    assert io.prepare_out_dir(out, {"epochs": 3, "update_unsampled_ops": True}, added_defaults=added) is True
    with pytest.raises(ValueError, match=r"update_unsampled_ops: True -> False"):
        io.prepare_out_dir(out, {"epochs": 3, "update_unsampled_ops": False}, added_defaults=added)
    with pytest.raises(ValueError, match=r"update_unsampled_ops: None -> True"):
        io.prepare_out_dir(out, {"epochs": 3, "update_unsampled_ops": True})
