"""One edge of a DARTS search cell: every candidate op, mixed or sampled."""

import keras
import tensorflow as tf
from keras import ops

EDGE_MODES = ("gdas", "darts", "gumbel_soft")



@keras.saving.register_keras_serializable(package="keras_nas")
class GumbelEdge(keras.layers.Layer):
    """Applies the candidate ops of an edge under per-edge architecture weights.

    The edge owns the ops' weights only; the architecture logits alpha live
    in the search model (shared by all cells of a type, as in DARTS/GDAS), which
    passes this edge's row of weights and the sampled op index at each call.

    - `"gdas"` (EoiNAS on GDAS, Eq. 4-5 with the hard sample): only the
      sampled op runs (`tf.switch_case`), its output is multiplied by the
      straight-through weight `h = one_hot - stop_gradient(p) + p`, and the
      other (zero-valued) entries of `h` are added as in the GDAS code, so the
      gradient reaches every alpha of the edge.
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
            `keras_nas.spaces.darts_ops.OPS`. Defaults to the 8 DARTS ops.
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

    Example:

    >>> edge = GumbelEdge(8, strides=1)
    >>> w = tf.one_hot(4, 8)
    >>> edge(np.ones((2, 6, 6, 8)), w, tf.constant(4)).shape
    (2, 6, 6, 8)
    """

    def __init__(self, channels, strides=1, primitives=None, edge_mode="gdas", affine=False, **kwargs):
        super().__init__(**kwargs)
        from keras_nas.spaces import darts_ops

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
            if not op.built:
                op.build(inputs_shape)

    def call(self, inputs, edge_weights, edge_index=None, training=None):
        if self.edge_mode == "gdas":
            branches = [
                (lambda op=op: op(inputs, training=training)) for op in self.candidate_ops
            ]
            chosen = tf.switch_case(tf.cast(edge_index, tf.int32), branches)
            w_chosen = tf.gather(edge_weights, edge_index)
            # sum(h) - h[index] is 0 in value but carries the gradient of the
            # other entries of h (GDAS `weigsum`).
            rest = ops.sum(edge_weights) - w_chosen
            return chosen * ops.cast(w_chosen, chosen.dtype) + ops.cast(rest, chosen.dtype)
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
