import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolate_test():
    """Seeds every test and undoes process-wide state a test may leave behind.

    `keras_nas.searches.common.setup_runtime` sets the KERASTUNER_* variables
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
