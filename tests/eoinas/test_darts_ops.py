import numpy as np
import pytest

from keras_nas.eoinas import darts_ops


@pytest.mark.parametrize("op_name", darts_ops.PRIMITIVES)
@pytest.mark.parametrize("strides", [1, 2])
def test_op_output_shape(op_name, strides):
    op = darts_ops.make_op(op_name, 8, strides, affine=False)
    out = op(np.random.rand(2, 8, 8, 8).astype("float32"), training=True)
    assert tuple(out.shape) == (2, 8 // strides, 8 // strides, 8)


@pytest.mark.parametrize("op_name", ["sep_conv_3x3", "dil_conv_5x5", "skip_connect", "max_pool_3x3"])
def test_stride_two_on_odd_size_rounds_up(op_name):
    out = darts_ops.make_op(op_name, 4, 2)(np.ones((1, 7, 7, 4), "float32"))
    assert tuple(out.shape) == (1, 4, 4, 4)


def test_none_op_outputs_zeros():
    out = darts_ops.make_op("none", 4, 2)(np.ones((1, 4, 4, 4), "float32"))
    assert float(np.abs(np.asarray(out)).sum()) == 0.0


def test_sep_conv_parameter_count():
    # 2 x (depthwise 3x3x8 + pointwise 8x8) + 2 BN x (gamma, beta) x 8 trainable.
    op = darts_ops.make_op("sep_conv_3x3", 8, 1)
    op.build((None, 8, 8, 8))
    trainable = sum(int(np.prod(w.shape)) for w in op.trainable_weights)
    assert trainable == 2 * (9 * 8 + 8 * 8) + 2 * 2 * 8


def test_search_ops_have_no_affine_batch_norm():
    op = darts_ops.make_op("dil_conv_3x3", 8, 1, affine=False)
    op.build((None, 8, 8, 8))
    assert sum(int(np.prod(w.shape)) for w in op.trainable_weights) == 9 * 8 + 8 * 8


def test_unknown_op_lists_valid_names():
    with pytest.raises(ValueError, match="`op_name` must be one of .*sep_conv_3x3"):
        darts_ops.make_op("conv_7x7", 8, 1)


def test_bad_stride():
    with pytest.raises(ValueError, match="`strides` must be 1 or 2. Received: strides=3"):
        darts_ops.make_op("skip_connect", 8, 3)
