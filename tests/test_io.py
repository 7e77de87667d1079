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
