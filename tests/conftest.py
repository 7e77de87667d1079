import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolate_test():
    """Seeds every test and undoes process-wide state a test may leave behind.

    `keras_nas.engine.runtime.setup_runtime` sets the KERASTUNER_* variables
    and the mixed-precision policy for the whole process, as the CLI needs; a
    test that calls it must not turn every later tuner into a distributed
    worker (which would wait for a chief that is not there).
    """
    environ = dict(os.environ)
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    os.environ.clear()
    os.environ.update(environ)


@pytest.fixture
def tensorflow_only():
    """Runs a Python script in a fresh process without keras_nas on the path.

    The script must print its result as JSON on its last line; the fixture
    returns it parsed. Checks that an exported model serves with TensorFlow
    alone.
    """

    def run(script, cwd, timeout=300):
        script += "assert not any(m.startswith('keras_nas') for m in sys.modules)\n"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                cwd=str(cwd), env=env, timeout=timeout)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture
def search_on_workers(tmp_path):
    """Runs `keras-nas search ...` as a KerasTuner chief and workers on loopback.

    Returns a function `(search_argv, workers=("w0", "w1"), timeout=400) ->
    (out, logs)`: the shared results folder and each process's output by
    name; fails with the log of any process that did not exit 0.
    """
    import socket
    import subprocess
    import sys

    def run(search_argv, workers=("w0", "w1"), timeout=400):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = str(tmp_path / "run")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
        base = [sys.executable, "-m", "keras_nas.cli", "search", *search_argv, "--verbose", "0", "--out", out,
                "--chief", f"127.0.0.1:{port}"]
        processes = {}
        for name in ("chief", *workers):
            with open(tmp_path / f"{name}.log", "w") as log:
                processes[name] = subprocess.Popen(base + ["--worker-id", name], env=env, stdout=log,
                                                   stderr=subprocess.STDOUT)
        for name, process in processes.items():
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        return out, {name: (tmp_path / f"{name}.log").read_text() for name in processes}

    return run

