"""The supernet's layers as small compiled functions of their input and weights.

The eager step of `BilevelSearchModel(executor="ops")` runs only each
edge's sampled op, as the PyTorch GDAS code does, but calls it through one
`tf.function` per op *kind and input shape*, shared by every edge holding
that op: the weights are arguments of the function, not captures. A search
network of 8 cells x 14 edges x 8 ops then needs a few dozen small traces
instead of one graph of all 896 ops and their `Case` branches (which took
minutes and gigabytes to trace: benchmarks/RESULTS.md).

The body of each function is plain TensorFlow written from the layers'
configs (ReLU, convolutions, pooling, BatchNormalization, FactorizedReduce,
Zero, Identity, pooling + Dense head), not the layers' Keras `call`, so a
trace is cheap and BatchNormalization runs as TensorFlow's fused kernel.
The values are the layers' own: same padding, strides and dilation; batch
statistics in training. One difference, written down: the fused kernel
updates the moving variance with the Bessel-corrected batch variance, as
PyTorch's `BatchNorm2d` (the DARTS/GDAS reference) does, where the Keras
layer uses the biased one; the normalisation itself is the same.

Keras has no public way to call a layer with weights passed in at this cost
(`Layer.stateless_call` runs the layer's own Python `call`, whose tracing
costs many times more per op, and keeps BatchNormalization unfused), hence this.
"""

import contextlib

import keras
import tensorflow as tf

from keras_nas.eoinas.gumbel_edge import straight_through
from keras_nas.eoinas.zero import Zero
from keras_nas.layers.factorized_reduce import FactorizedReduce


def leaves(layer):
    """The layers `layer` applies, in order: a `Sequential` (or list) is opened, recursively."""
    if isinstance(layer, (list, tuple)):
        return [leaf for item in layer for leaf in leaves(item)]
    if isinstance(layer, keras.Sequential):
        return leaves(list(layer.layers))
    return [layer]


def _check_channels_last(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"Only channels_last layers run as op functions. Received: {layer.name!r} "
                         f"with data_format={layer.data_format!r}")


def describe(layer):
    """Hashable description of one leaf layer: what its function computes, without names or weights."""
    _check_channels_last(layer)
    if isinstance(layer, keras.layers.ReLU):
        if layer.max_value is not None or float(layer.negative_slope) or float(layer.threshold):
            raise ValueError(f"Only a plain ReLU runs as an op function. Received: {layer.get_config()}")
        return ("relu",)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return ("depthwise", tuple(layer.kernel_size), tuple(layer.strides), layer.padding,
                tuple(layer.dilation_rate), layer.use_bias)
    if isinstance(layer, keras.layers.Conv2D):
        if layer.groups != 1 or layer.activation not in (None, keras.activations.linear):
            raise ValueError(f"Only a plain Conv2D runs as an op function. Received: {layer.name!r}")
        return ("conv", tuple(layer.kernel_size), tuple(layer.strides), layer.padding,
                tuple(layer.dilation_rate), layer.use_bias)
    if isinstance(layer, keras.layers.BatchNormalization):
        if layer.axis not in (-1, 3, [-1], [3]):
            raise ValueError(f"Only a last-axis BatchNormalization runs as an op function. Received: {layer.axis}")
        return ("bn", float(layer.momentum), float(layer.epsilon), layer.center, layer.scale)
    if isinstance(layer, keras.layers.MaxPooling2D):
        return ("max_pool", tuple(layer.pool_size), tuple(layer.strides), layer.padding)
    if isinstance(layer, keras.layers.AveragePooling2D):
        return ("avg_pool", tuple(layer.pool_size), tuple(layer.strides), layer.padding)
    if isinstance(layer, keras.layers.Identity):
        return ("identity",)
    if isinstance(layer, Zero):
        return ("zero", layer.strides)
    if isinstance(layer, FactorizedReduce):
        return ("factorized_reduce",) + describe(layer.bn)
    if isinstance(layer, keras.layers.GlobalAveragePooling2D):
        if layer.keepdims:
            raise ValueError("Only GlobalAveragePooling2D(keepdims=False) runs as an op function.")
        return ("global_pool",)
    if isinstance(layer, keras.layers.Dense):
        activation = keras.activations.serialize(layer.activation)
        activation = activation if isinstance(activation, str) else activation.get("config", activation)
        if activation not in ("softmax", "linear"):
            raise ValueError(f"Only a linear or softmax Dense runs as an op function. Received: {activation!r}")
        return ("dense", activation, layer.use_bias)
    raise ValueError(f"No op function for a {type(layer).__name__} layer ({layer.name!r}).")


def _bn_variables(bn):
    """(trainable, statistics) variables of a BatchNormalization, in call order."""
    trainable = ([bn.gamma] if bn.scale else []) + ([bn.beta] if bn.center else [])
    return trainable, [bn.moving_mean, bn.moving_variance]


def variables(layer_leaves):
    """`(weights, statistics)`: the Keras variables the function of `layer_leaves` takes, in order."""
    weights, stats = [], []
    for layer in layer_leaves:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            weights += [layer.kernel] + ([layer.bias] if layer.use_bias else [])
        elif isinstance(layer, keras.layers.BatchNormalization):
            w, s = _bn_variables(layer)
            weights += w
            stats += s
        elif isinstance(layer, FactorizedReduce):
            w, s = _bn_variables(layer.bn)
            weights += [layer.conv_1.kernel, layer.conv_2.kernel] + w
            stats += s
    return weights, stats


def _batch_norm(spec, x, weights, stats, new_stats, training):
    _, momentum, epsilon, center, scale = spec
    channels = x.shape[-1]
    gamma = weights.pop(0) if scale else tf.ones((channels,), x.dtype)
    beta = weights.pop(0) if center else tf.zeros((channels,), x.dtype)
    mean, variance = stats.pop(0), stats.pop(0)
    # PyTorch's momentum 0.1 is Keras' 0.9: the new statistics weigh 1 - momentum.
    y, new_mean, new_variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, mean=mean, variance=variance, epsilon=epsilon, is_training=training,
        exponential_avg_factor=1.0 - momentum if training else 1.0)
    if training:
        new_stats += [new_mean, new_variance]
    return y


def _conv(spec, x, weights, depthwise):
    _, _, strides, padding, dilation, use_bias = spec
    kernel = weights.pop(0)
    if depthwise:
        y = tf.nn.depthwise_conv2d(x, kernel, strides=(1,) + strides + (1,), padding=padding.upper(),
                                   dilations=dilation)
    else:
        y = tf.nn.conv2d(x, kernel, strides=strides, padding=padding.upper(), dilations=dilation)
    return tf.nn.bias_add(y, weights.pop(0)) if use_bias else y


def _max_pool(x, pool_size, strides, padding):
    """`tf.nn.max_pool2d` whose gradient function runs the pooling again beside `MaxPoolGrad`.

    The backward pass of an op function is a function of its own. There a
    lone `MaxPoolGrad` runs TensorFlow's generic CPU kernel, several times
    slower than oneDNN's, which it uses only when the forward `MaxPool` is in
    the same graph (benchmarks/RESULTS.md, `bench_op_functions.py --parts
    max-pool`). The price is one more forward pooling; the gradient is the
    same.
    """

    @tf.custom_gradient
    def pool(inputs):
        def grad(upstream):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = tf.nn.max_pool2d(inputs, pool_size, strides, padding)
            return tape.gradient(outputs, inputs, output_gradients=upstream)

        return tf.nn.max_pool2d(inputs, pool_size, strides, padding), grad

    return pool(x)


def _factorized_reduce(x, kernel_1, kernel_2):
    """`FactorizedReduce.call` before its BatchNormalization, as one 2x2 stride-2 convolution.

    The layer applies ReLU, then one 1x1 stride-2 conv to the even pixels
    and another to the odd ones (one pixel down and right, zero-padded), and
    concatenates. That is a 2x2 stride-2 conv whose top-left tap holds
    `kernel_1` for the first half of the outputs, whose bottom-right tap holds
    `kernel_2` for the second half, and whose other taps are zero; the
    gradient reaches the two kernels through the concatenation that builds it.
    One convolution instead of a pad, a shift, two convolutions and a concat
    makes forward + backward faster (benchmarks/RESULTS.md,
    `bench_op_functions.py --parts ops`).
    """
    x = tf.nn.relu(x)
    odd_rows, odd_cols = x.shape[1] % 2, x.shape[2] % 2
    if odd_rows or odd_cols:  # the layer's zero padding of the shifted half
        x = tf.pad(x, [[0, 0], [0, odd_rows], [0, odd_cols], [0, 0]])
    none_1, none_2 = tf.zeros_like(kernel_1), tf.zeros_like(kernel_2)
    top_left = tf.concat([kernel_1, none_2], axis=-1)
    bottom_right = tf.concat([none_1, kernel_2], axis=-1)
    off = tf.zeros_like(top_left)
    kernel = tf.concat([tf.concat([top_left, off], axis=1), tf.concat([off, bottom_right], axis=1)], axis=0)
    return tf.nn.conv2d(x, kernel, 2, "VALID")


def _strided_dilated_depthwise(spec, following):
    """A stride-1 "same" depthwise conv of dilation 2 and odd kernel, followed by a 1x1 max-pool of stride 2."""
    return (spec[0] == "depthwise" and spec[2] == (1, 1) and spec[3] == "same" and spec[4] == (2, 2)
            and all(k % 2 for k in spec[1]) and following is not None
            and following[:3] == ("max_pool", (1, 1), (2, 2)))


def apply(specs, x, weights, stats, training):
    """Runs the leaves described by `specs` on `x`; returns `(y, new statistics)`.

    `weights` and `stats` are tensors in the order of `variables`; in training
    the new moving statistics come back in the order of `stats`.
    """
    weights, stats, new_stats = list(weights), list(stats), []
    specs = list(specs)
    while specs:
        spec = specs.pop(0)
        kind = spec[0]
        if _strided_dilated_depthwise(spec, specs[0] if specs else None):
            # A dilation-2 depthwise conv subsampled by 2 (how `darts_ops` writes PyTorch's strided dilated
            # conv) reads only the even pixels: the same values as a plain conv on the subsampled input,
            # at a quarter of the work.
            specs.pop(0)
            x = _conv(("depthwise", spec[1], (1, 1), "same", (1, 1), spec[5]), x[:, ::2, ::2, :], weights,
                      depthwise=True)
        elif kind == "relu":
            x = tf.nn.relu(x)
        elif kind in ("conv", "depthwise"):
            x = _conv(spec, x, weights, depthwise=kind == "depthwise")
        elif kind == "bn":
            x = _batch_norm(spec, x, weights, stats, new_stats, training)
        elif kind == "max_pool":
            x = _max_pool(x, spec[1], spec[2], spec[3].upper())
        elif kind == "avg_pool":
            x = tf.nn.avg_pool2d(x, spec[1], spec[2], spec[3].upper())
        elif kind == "zero":
            x = tf.zeros_like(x[:, ::spec[1], ::spec[1], :])
        elif kind == "factorized_reduce":
            x = _factorized_reduce(x, weights.pop(0), weights.pop(0))
            x = _batch_norm(spec[1:], x, weights, stats, new_stats, training)
        elif kind == "global_pool":
            x = tf.reduce_mean(x, axis=[1, 2])
        elif kind == "dense":
            x = tf.matmul(x, weights.pop(0))
            if spec[2]:
                x = tf.nn.bias_add(x, weights.pop(0))
            if spec[1] == "softmax":
                x = tf.nn.softmax(x)
        # "identity": x as it is
    return x, new_stats


_NO_REWRITES = {}


@contextlib.contextmanager
def without_graph_rewrites():
    """Calls of op functions within it skip Grappler's graph rewrites; the caller's other options are kept.

    An op function is a handful of ops: the rewrites find nothing to gain
    there (the same step time) but add to each function's first call, paid
    for every kind and shape of op and for its gradient (benchmarks/RESULTS.md,
    `bench_op_functions.py --parts first-call`). The options are TensorFlow's thread-local function
    call options, so they reach the backward functions a `GradientTape`
    runs within the block and leave the user's own functions as they are.
    The same options must be in force at every call of a function (they
    are part of its instantiation), hence one block around each step.
    """
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    options = context.context().function_call_options
    saved = options.config_proto_serialized
    if saved not in _NO_REWRITES:  # (the setter takes a proto, not bytes): both protos parsed once
        config = config_pb2.ConfigProto.FromString(saved)
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        _NO_REWRITES[saved] = (config, config_pb2.ConfigProto.FromString(saved))
    without, original = _NO_REWRITES[saved]
    options.config_proto_serialized = without
    try:
        yield
    finally:
        options.config_proto_serialized = original


# (specs, input shapes, training, weight gradients, op index, mixture) -> [tf.function, concrete function]
_FUNCTIONS = {}


class _Traced:
    """A callable without `__code__`: TensorFlow's retracing warning then counts each function apart.

    (It counts closures of one `def` together, and each of ours is traced
    once, for its own kind and shape.)
    """

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)


class OpFunctions:
    """Compiled functions of the supernet's layers, one per layer kind, input shape and use.

    `call(layer, x, ...)` calls the function for the layer's kind and input
    shape (traced at first use) with the layer's variables as arguments; in
    training it assigns the new BatchNormalization statistics. Under a `GradientTape`
    the gradient reaches the variables read (and `x`); with
    `weight_gradients=False` the function stops the gradient at the weights,
    so its backward pass computes only what the architecture step needs.

    `straight_through=(edge_weights, edge, op_index)` sends the output through
    `keras_nas.eoinas.gumbel_edge.straight_through` (GDAS: the gradient
    reaches every alpha of the edge); `call_mixture` runs every op of an
    edge and sums them weighted by `edge_weights[edge]` (DARTS,
    Gumbel-softmax).

    Example:

    >>> functions = OpFunctions()
    >>> y = functions.call(model.stem_conv, images, training=True)
    >>> functions.functions_used  # one per kind, shape and use so far
    1
    """

    def __init__(self):
        # The compiled functions depend on the layers' kinds and shapes only (the variables are arguments),
        # so every supernet in the process shares them: the next EoiNAS seed traces nothing.
        self._functions = _FUNCTIONS
        self._used = set()
        self._descriptions = {}
        self._constants = {}

    @property
    def functions_used(self):
        """Compiled functions this instance has used (each traced once, by whichever instance came first)."""
        return len(self._used)

    def _describe(self, parts):
        """`(specs, counts, weight variables, statistic variables)` of `parts` (lists of layers)."""
        key = tuple(tuple(id(layer) for layer in part) for part in parts)
        if key not in self._descriptions:
            part_leaves = [leaves(list(part)) for part in parts]
            var_lists = [variables(part) for part in part_leaves]
            weights = [v for w, _ in var_lists for v in w]
            stats = [v for _, s in var_lists for v in s]
            self._descriptions[key] = (
                # The variables' shapes too: a convolution's output channels are its kernel's.
                (tuple(tuple(describe(leaf) for leaf in part) for part in part_leaves),
                 tuple(tuple(v.shape) for v in weights + stats)),
                tuple((len(w), len(s)) for w, s in var_lists),
                weights,
                stats,
            )
        return self._descriptions[key]

    def _constant(self, value):
        if value not in self._constants:
            self._constants[value] = tf.constant(value, tf.int32)
        return self._constants[value]

    def _function(self, specs, counts, shapes, training, weight_gradients, op_index, mixture):
        # The input shapes are part of the key: each function is traced once, then called as one concrete
        # function.
        key = (specs, shapes, training, weight_gradients, op_index, mixture)
        self._used.add(key)
        if key in self._functions:
            return self._functions[key]

        specs = specs[0]

        def run(x, edge_weights, edge, weight_vars, stat_vars):
            # The variables come in as arguments (traced by shape and dtype, so every edge with this op
            # and shape shares the trace); the new statistics are assigned here, in the function.
            weights = [w.read_value() for w in weight_vars]
            if not weight_gradients:
                weights = [tf.stop_gradient(w) for w in weights]
            stats = [v.read_value() for v in stat_vars]
            outputs, new_stats, w_at, s_at = [], [], 0, 0
            for part, (n_weights, n_stats) in zip(specs, counts):
                y, new = apply(part, x, weights[w_at:w_at + n_weights], stats[s_at:s_at + n_stats], training)
                outputs.append(y)
                new_stats += new
                w_at, s_at = w_at + n_weights, s_at + n_stats
            for v, value in zip(stat_vars, new_stats):
                v.assign(value)
            if mixture:
                row = tf.cast(edge_weights[edge], outputs[0].dtype)
                return tf.add_n([row[i] * out for i, out in enumerate(outputs)])
            if op_index is not None:
                return straight_through(outputs[0], edge_weights[edge], tf.constant(op_index, tf.int32))
            return outputs[0]

        self._functions[key] = [tf.function(_Traced(run), autograph=False), None]
        return self._functions[key]

    def _run(self, parts, x, training, weight_gradients, edge_weights, edge, op_index, mixture):
        specs, counts, weight_vars, stat_vars = self._describe(parts)
        edge_weights = self._constant(0) if edge_weights is None else edge_weights
        entry = self._function(specs, counts, (tuple(x.shape), tuple(edge_weights.shape)), bool(training),
                               bool(weight_gradients), op_index, mixture)
        args = (x, edge_weights, self._constant(edge), [v.value for v in weight_vars], [v.value for v in stat_vars])
        if entry[1] is None:
            # Called as a concrete function from then on: a third of the call overhead of `tf.function`.
            entry[1] = entry[0].get_concrete_function(*args)
        return entry[1](*args)

    def call(self, layers, x, training, weight_gradients=True, straight_through=None):
        """Applies `layers` (a layer, a `Sequential`, or a tuple of layers run in order) to `x`.

        Args:
            layers: the layer(s).
            x: input tensor.
            training: bool. Batch statistics (and their update) or moving ones.
            weight_gradients: bool. Whether a tape can differentiate the
                weights (False: only `x` and the edge weights).
            straight_through: `(edge_weights, edge, op_index)` or None.
        """
        parts = (tuple(layers) if isinstance(layers, (list, tuple)) else (layers,),)
        edge_weights, edge, op_index = straight_through or (None, 0, None)
        return self._run(parts, x, training, weight_gradients, edge_weights, edge, op_index, False)

    def call_mixture(self, ops_, x, edge_weights, edge, training, weight_gradients=True):
        """`sum_i edge_weights[edge, i] * ops_[i](x)`, one compiled function for the edge."""
        parts = tuple((op,) for op in ops_)
        return self._run(parts, x, training, weight_gradients, edge_weights, edge, None, True)

    def weight_variables(self, layers):
        """The trainable variables `call(layers, ...)` reads (for the gradient)."""
        parts = (tuple(layers) if isinstance(layers, (list, tuple)) else (layers,),)
        return self._describe(parts)[2]
