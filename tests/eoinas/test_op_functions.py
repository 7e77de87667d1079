import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas.eoinas import darts_ops
from keras_nas.eoinas.gumbel_edge import GumbelEdge
from keras_nas.eoinas.op_functions import OpFunctions, describe
from keras_nas.layers.factorized_reduce import FactorizedReduce


def _warm_statistics(layer):
    # Moving statistics away from 0/1, so inference mode really reads them.
    for v in layer.non_trainable_variables:
        v.assign(np.random.default_rng(0).uniform(0.5, 1.5, v.shape).astype("float32"))


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("name", list(darts_ops.OPS))
def test_every_darts_op_computes_what_its_keras_layer_computes(name, strides):
    op = darts_ops.make_op(name, 4, strides, affine=False)
    x = tf.random.normal((3, 6, 6, 4), seed=1)
    op.build(x.shape)
    _warm_statistics(op)
    functions = OpFunctions()
    np.testing.assert_allclose(functions.call(op, x, training=False).numpy(), op(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)
    stats = [v.numpy().copy() for v in op.non_trainable_variables]
    y = functions.call(op, x, training=True)
    np.testing.assert_allclose(y.numpy(), op(x, training=True).numpy(), rtol=1e-4, atol=1e-4)
    if stats:  # the moving mean moved by 0.1 of the batch mean (PyTorch momentum 0.1)
        assert not np.allclose(op.non_trainable_variables[0].numpy(), stats[0])


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("name", ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "dil_conv_3x3"])
def test_input_gradient_matches_keras(name, strides):
    # max_pool_3x3's gradient is its own function (the pooling is run again beside `MaxPoolGrad`).
    op = darts_ops.make_op(name, 4, strides, affine=False)
    x = tf.random.normal((2, 6, 6, 4), seed=3)
    op.build(x.shape)
    upstream = tf.random.normal(op(x, training=True).shape, seed=4)
    grads = []
    for run in (lambda: op(x, training=True), lambda: OpFunctions().call(op, x, training=True)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(run() * upstream)
        grads.append(tape.gradient(loss, x).numpy())
    assert np.abs(grads[0]).max() > 0
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-4, atol=1e-5)


def test_affine_batch_norm_and_gradients_match_keras():
    op = darts_ops.make_op("sep_conv_3x3", 4, 1, affine=True)
    x = tf.random.normal((2, 5, 5, 4), seed=2)
    op.build(x.shape)
    functions = OpFunctions()
    weights = functions.weight_variables(op)
    assert len(weights) == len(op.trainable_variables) == 8  # 4 kernels, 2 x (gamma, beta)
    grads = []
    for run in (lambda: op(x, training=True), lambda: functions.call(op, x, training=True)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(run()))
        grads.append(tape.gradient(loss, weights))
    for a, b in zip(*grads):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-3, atol=1e-4)


def test_moving_variance_is_bessel_corrected_as_pytorch():
    bn = darts_ops.batch_norm(False, "bn")
    x = tf.random.normal((2, 3, 3, 2), seed=3)
    bn.build(x.shape)
    OpFunctions().call(bn, x, training=True)
    n = 2 * 3 * 3
    expected = 0.9 * 1.0 + 0.1 * np.var(x.numpy(), axis=(0, 1, 2)) * n / (n - 1)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected, rtol=1e-5)


def test_edges_of_one_op_and_shape_share_one_trace_across_supernets():
    from keras_nas.eoinas import op_functions

    x = tf.random.normal((2, 6, 7, 4))  # a shape no other test uses
    h = tf.one_hot([4, 4], 8)
    before = len(op_functions._FUNCTIONS)
    for supernet in range(2):  # a second OpFunctions (the next seed's supernet) traces nothing new
        functions = OpFunctions()
        for k in range(3):
            edge = GumbelEdge(4, name=f"e{k}")
            edge.build(x.shape)
            functions.call(edge.candidate_ops[4], x, training=True, straight_through=(h, k % 2, 4))
        assert functions.functions_used == 1
    assert len(op_functions._FUNCTIONS) == before + 1
    (function, _), = [v for k, v in op_functions._FUNCTIONS.items() if k[1][0] == (2, 6, 7, 4)]
    assert function.experimental_get_tracing_count() == 1
    functions.call(edge.candidate_ops[4], tf.random.normal((2, 3, 3, 4)), training=True)
    assert functions.functions_used == 2


def test_straight_through_gives_every_alpha_of_the_edge_its_gdas_gradient():
    op = darts_ops.make_op("sep_conv_3x3", 2, 1, affine=False)
    x = tf.random.normal((2, 4, 4, 2))
    op.build(x.shape)
    h = tf.Variable([[0.0, 0.0, 1.0]])  # one edge, op 2 sampled
    with tf.GradientTape() as tape:
        y = OpFunctions().call(op, x, training=True, straight_through=(h, 0, 2), weight_gradients=False)
        loss = tf.reduce_sum(y * 3.0)
    grad = tape.gradient(loss, h).numpy()[0]
    np.testing.assert_allclose(grad[2], float(tf.reduce_sum(3.0 * y)), rtol=1e-5)
    np.testing.assert_allclose(grad[:2], [3.0 * int(tf.size(y))] * 2, rtol=1e-6)


def test_mixture_weights_every_op():
    edge = GumbelEdge(2, edge_mode="darts", primitives=["skip_connect", "avg_pool_3x3"])
    x = tf.random.normal((2, 4, 4, 2))
    edge.build(x.shape)
    w = tf.constant([[0.25, 0.75]])
    y = OpFunctions().call_mixture(edge.candidate_ops, x, w, 0, training=False)
    expected = edge(x, w[0], training=False)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_unsupported_layers_are_named():
    with pytest.raises(ValueError, match="No op function for a LSTM layer"):
        describe(keras.layers.LSTM(2, name="lstm"))
    assert describe(FactorizedReduce(4))[0] == "factorized_reduce"


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("name", ["dil_conv_3x3", "dil_conv_5x5"])
def test_strided_dilated_conv_reads_the_even_pixels_at_any_size(name, size):
    # The op function convolves the subsampled input (a quarter of the work); the values are the layer's.
    op = darts_ops.make_op(name, 3, 2, affine=False)
    x = tf.random.normal((2, size, size, 3), seed=4)
    op.build(x.shape)
    y = OpFunctions().call(op, x, training=False)
    assert y.shape == op(x, training=False).shape
    np.testing.assert_allclose(y.numpy(), op(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_graph_rewrites_are_off_only_within_the_block():
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    from keras_nas.eoinas.op_functions import without_graph_rewrites

    options = context.context().function_call_options
    before = options.config_proto_serialized
    with without_graph_rewrites():
        inside = config_pb2.ConfigProto.FromString(options.config_proto_serialized)
        op = darts_ops.make_op("max_pool_3x3", 4, 1, affine=False)
        x = tf.random.normal((2, 6, 6, 4), seed=5)
        op.build(x.shape)
        np.testing.assert_allclose(OpFunctions().call(op, x, training=False).numpy(),
                                   op(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    assert inside.graph_options.rewrite_options.disable_meta_optimizer
    # The caller's other settings stay (here: the context's own config, as TensorFlow set it).
    expected = config_pb2.ConfigProto.FromString(before)
    inside.graph_options.rewrite_options.disable_meta_optimizer = False
    assert inside.graph_options.rewrite_options == expected.graph_options.rewrite_options
    inside.ClearField("graph_options")
    expected.ClearField("graph_options")
    assert inside == expected
    assert options.config_proto_serialized == before


@pytest.mark.parametrize("height, width", [(6, 6), (7, 7), (7, 6)])
def test_factorized_reduce_as_one_convolution_matches_the_layer(height, width):
    layer = FactorizedReduce(6, affine=True)
    x = tf.random.normal((2, height, width, 4), seed=6)
    layer.build(x.shape)
    functions = OpFunctions()
    weights = functions.weight_variables(layer)
    assert len(weights) == 4  # conv_1, conv_2 kernels, gamma, beta
    upstream = tf.random.normal(layer(x, training=True).shape, seed=7)
    outputs, grads = [], []
    for run in (lambda: layer(x, training=True), lambda: functions.call(layer, x, training=True)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = run()
            loss = tf.reduce_sum(y * upstream)
        outputs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [x] + [v.value for v in weights])])
    assert outputs[0].shape == (2, (height + 1) // 2, (width + 1) // 2, 6)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-4)
    for a, b in zip(*grads):
        assert np.abs(a).max() > 0
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)
