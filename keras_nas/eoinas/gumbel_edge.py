"""One edge of a DARTS search cell: every candidate op, mixed or sampled."""

import keras
import tensorflow as tf
from keras import ops
from keras_nas.eoinas import darts_ops
from keras_nas.eoinas.genotypes import EDGE_MODES

try:  # pragma: no cover - depends on the TensorFlow version
    from tensorflow.python.ops.control_flow_switch_case import _indexed_case_helper
except ImportError:  # pragma: no cover
    _indexed_case_helper = None


def run_sampled(index, branches, lower=False):
    """Runs `branches[index]()` only, as a `Case` op, lowered or not.

    `tf.switch_case` marks its `Case` op (and the gradient `Case`) for
    lowering into `Switch`/`Merge` nodes, which inlines all eight ops of an
    edge into the graph: the executor then walks every node of the seven
    branches not taken on each step, and tracing takes twice as long. A
    functional (`lower=False`) `Case` runs only the taken branch's function,
    but its gradient `Case` always computes the gradient of every input,
    weights included, since Grappler cannot prune inside it, and its cost
    grows with the size of its tensors. Lowered is faster per step and slower
    to trace: `BilevelSearchModel(lower_arch_case=True, lower_weight_case=True)`
    choose it per step. TensorFlow exposes the choice only on its internal helper (the
    public `tf.switch_case` always lowers outside XLA); on a TensorFlow
    without it we fall back to `tf.switch_case`, which gives the same values.
    `benchmarks/bench_eoinas.py` measures the steps.
    """
    index = tf.cast(index, tf.int32)
    if not lower and _indexed_case_helper is not None and not tf.executing_eagerly():
        try:
            return _indexed_case_helper(branches, None, index, "sampled_op", lower_using_switch_merge=False)
        except TypeError:  # pragma: no cover - signature changed
            pass
    return tf.switch_case(index, branches)


def build_by_shape(layer, input_shape):
    """Builds `layer` from `input_shape` alone; returns its output shape.

    A `Sequential` is built layer by layer from `compute_output_shape`
    instead of its own symbolic pass through every layer (a Functional model
    per op: most of the supernet's build time), and then calls its layers in
    turn. Same variables, same names, same weights file.
    """
    input_shape = tuple(input_shape)
    if isinstance(layer, keras.Sequential) and not layer.built:
        shape = input_shape
        with keras.name_scope(layer.name, caller=layer):  # the variable paths `Sequential.build` gives
            for sub in layer.layers:
                shape = build_by_shape(sub, shape)
        layer.built = True
        return shape
    if not layer.built:
        layer.build(input_shape)
    return tuple(layer.compute_output_shape(input_shape))


@tf.custom_gradient
def straight_through(chosen, edge_weights, index):
    """GDAS' `chosen * h[index] + (sum(h) - h[index])` with `h` the hard one-hot.

    In value this is `chosen` (h[index] is 1 and the other entries 0), so the
    forward pass returns it as is and only the gradient is formed:
    `d/dchosen = g`, `d/dh[index] = sum(g * chosen)` and `d/dh[k] = sum(g)`
    for every other op `k`, exactly the gradient of the GDAS expression. It
    saves the two full-size element-wise ops per edge and step (and one in
    the backward pass) that the literal expression costs. (In float32
    `1 - p + p` can be one ulp below 1; the forward value here is exact.)
    """

    def grad(upstream):
        total = tf.reduce_sum(upstream)
        dot = tf.reduce_sum(upstream * chosen)
        num_ops = tf.shape(edge_weights)[0]
        d_weights = tf.where(tf.range(num_ops) == index, dot, total)
        return upstream, tf.cast(d_weights, edge_weights.dtype), None

    return tf.identity(chosen), grad


@keras.saving.register_keras_serializable(package="keras_nas")
class GumbelEdge(keras.layers.Layer):
    """Applies the candidate ops of an edge under per-edge architecture weights.

    The edge owns the ops' weights only; the architecture logits alpha live
    in the search model (shared by all cells of a type, as in DARTS/GDAS), which
    passes this edge's row of weights and the sampled op index at each call.

    - `"gdas"` (EoiNAS on GDAS, Eq. 4-5 with the hard sample): only the
      sampled op runs (a `Case` op, see `run_sampled`), and
      `straight_through` gives it the gradient of GDAS' output
      `op(x) * h[index] + sum of the other (zero-valued) entries of h`, with
      `h = one_hot - stop_gradient(p) + p`, so the gradient reaches every
      alpha of the edge.
    - `"darts"` (Eq. 1-2): the softmax mixture of all ops.
    - `"gumbel_soft"`: every op weighted by the relaxed Gumbel-softmax sample
      (what the public EoiNAS code runs).

    Pruned ops never get sampled (their logit is -inf) and get weight 0, so
    the live set shrinks without rebuilding or re-tracing.

    Args:
        channels: int. Channels of the edge's input and output.
        strides: int. 1, or 2 for edges leaving the input nodes of a reduction
            cell. Defaults to `1`.
        primitives: list of str. Names of the candidate ops in
            `keras_nas.eoinas.darts_ops.OPS`. Defaults to the 8 DARTS ops.
        edge_mode: str. One of `"gdas"`, `"darts"`, `"gumbel_soft"`. Defaults
            to `"gdas"`.
        affine: bool. BatchNorm scale/offset in the ops. Defaults to `False`
            (DARTS search setting).
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: tensor `(batch, H, W, channels)`.
        edge_weights: tensor `(num_ops,)`: the mixing weights (gdas: the
            straight-through one-hot).
        edge_index: int32 scalar tensor: the sampled op (used by `"gdas"`).
        training: bool.
        lower_case: bool. Lower the `Case` op of `"gdas"` (see
            `run_sampled`): `True` when only alpha's gradient is wanted.

    Example:

    >>> edge = GumbelEdge(8, strides=1)
    >>> w = tf.one_hot(4, 8)
    >>> edge(np.ones((2, 6, 6, 8)), w, tf.constant(4)).shape
    (2, 6, 6, 8)
    """

    def __init__(self, channels, strides=1, primitives=None, edge_mode="gdas", affine=False, **kwargs):
        super().__init__(**kwargs)

        primitives = list(darts_ops.PRIMITIVES if primitives is None else primitives)
        if edge_mode not in EDGE_MODES:
            raise ValueError(f"`edge_mode` must be one of {list(EDGE_MODES)}. Received: edge_mode={edge_mode!r}")
        if not primitives:
            raise ValueError("`primitives` must name at least one op. Received: primitives=[]")
        self.channels = channels
        self.strides = strides
        self.primitives = primitives
        self.edge_mode = edge_mode
        self.affine = affine
        self.candidate_ops = [
            darts_ops.make_op(p, channels, strides, affine=affine, name=p) for p in primitives
        ]

    def build(self, inputs_shape, edge_weights_shape=None, edge_index_shape=None):
        # Every op is built here, outside `tf.switch_case`: variables cannot be
        # created inside a branch of a traced conditional.
        for op in self.candidate_ops:
            build_by_shape(op, inputs_shape)

    def call(self, inputs, edge_weights, edge_index=None, training=None, lower_case=False):
        if self.edge_mode == "gdas":
            branches = [
                (lambda op=op: op(inputs, training=training)) for op in self.candidate_ops
            ]
            edge_index = tf.cast(edge_index, tf.int32)
            chosen = run_sampled(edge_index, branches, lower=lower_case)
            # The gradient reaches every entry of h (GDAS `weigsum`).
            return straight_through(chosen, edge_weights, edge_index)
        outputs = [op(inputs, training=training) for op in self.candidate_ops]
        stacked = ops.stack(outputs, axis=0)
        w = ops.cast(ops.reshape(edge_weights, (-1, 1, 1, 1, 1)), stacked.dtype)
        return ops.sum(stacked * w, axis=0)

    def compute_output_shape(self, inputs_shape, edge_weights_shape=None, edge_index_shape=None):
        return self.candidate_ops[0].compute_output_shape(inputs_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "strides": self.strides,
            "primitives": list(self.primitives),
            "edge_mode": self.edge_mode,
            "affine": self.affine,
        }
