import argparse
import os

import pytest

from keras_nas.engine import common_options, options
from keras_nas.engine import runtime as common


def _args(**kw):
    return argparse.Namespace(**{**options.defaults(common_options.RUNTIME_OPTIONS), **kw})


def test_chief_and_worker_set_kerastuner_environment(monkeypatch):
    for key in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        # setenv first so monkeypatch restores the variable after the test.
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    assert common.role() == "single"
    assert common.setup_runtime(_args(chief="127.0.0.1:8123", worker_id="w1")) is None
    assert os.environ["KERASTUNER_ORACLE_IP"] == "127.0.0.1"
    assert os.environ["KERASTUNER_ORACLE_PORT"] == "8123"
    assert common.role() == "worker"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert common.role() == "chief"


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"chief": "localhost"}, "`chief` must be HOST:PORT"),
        ({"chief": "localhost:80"}, "`worker_id` is required with `chief`"),
        ({"worker_id": "w1"}, r"`worker_id` needs `chief` \(HOST:PORT\)"),
    ],
)
def test_bad_runtime_options(kw, match):
    with pytest.raises(ValueError, match=match):
        common.setup_runtime(_args(**kw))
