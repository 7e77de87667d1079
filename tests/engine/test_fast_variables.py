import keras
import numpy as np
from tensorflow.python.ops import gen_resource_variable_ops

from keras_nas.engine.fast_variables import fast_variable_creation


def _build(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Conv2D(3, 3, name="conv"), keras.layers.BatchNormalization(name="bn")])
    model.build((None, 5, 5, 2))
    return model


def test_variables_are_the_same_and_the_op_is_restored():
    original = gen_resource_variable_ops.var_handle_op
    plain = _build(0)
    with fast_variable_creation():
        assert gen_resource_variable_ops.var_handle_op is not original
        fast = _build(0)
    assert gen_resource_variable_ops.var_handle_op is original
    assert [v.path for v in fast.weights] == [v.path.replace(plain.name, fast.name) for v in plain.weights]
    for a, b in zip(plain.weights, fast.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    fast.weights[0].assign(np.ones(fast.weights[0].shape))  # a working resource
    assert float(fast.weights[0].numpy().sum()) == np.prod(fast.weights[0].shape)


def test_the_op_is_restored_after_an_error():
    original = gen_resource_variable_ops.var_handle_op
    try:
        with fast_variable_creation():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gen_resource_variable_ops.var_handle_op is original
