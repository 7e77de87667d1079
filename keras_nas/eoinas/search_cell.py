"""A DARTS search cell: 2 input nodes, `steps` intermediate nodes, every edge searched."""

import keras
from keras import ops

from keras_nas.layers.factorized_reduce import FactorizedReduce
from keras_nas.eoinas.gumbel_edge import GumbelEdge, build_by_shape
from keras_nas.eoinas import darts_ops


def cell_edges(steps=4):
    """(source node, target node) of every edge, in DARTS order.

    Nodes 0 and 1 are the cell inputs; intermediate node `i` (numbered
    `i + 2`) has an edge from every earlier node.

    >>> cell_edges(2)
    [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    """
    return [(j, i + 2) for i in range(steps) for j in range(i + 2)]


@keras.saving.register_keras_serializable(package="keras_nas")
class SearchCell(keras.layers.Layer):
    """Normal or reduction cell of the search network (Fig. 3, Eq. 3-4).

    Node `x_j = sum_{i<j} f_{i,j}(x_i)`, each `f_{i,j}` a `GumbelEdge`; the cell
    output concatenates the last `multiplier` intermediate nodes. In a
    reduction cell the edges leaving the two input nodes have stride 2. The
    input from two cells back is reduced with `FactorizedReduce` when the
    previous cell was a reduction cell, as in DARTS.

    Args:
        channels: int. Channels of every node.
        reduction: bool. Reduction cell. Defaults to `False`.
        reduction_prev: bool. The previous cell was a reduction cell.
            Defaults to `False`.
        steps: int. Intermediate nodes. Defaults to `4`.
        multiplier: int. Intermediate nodes concatenated into the output.
            Defaults to `4`.
        primitives: list of str. Candidate ops. Defaults to the 8 DARTS ops.
        edge_mode: str. `GumbelEdge` mode. Defaults to `"gdas"`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: list `[s0, s1]` of the outputs of the two previous cells.
        edge_weights: tensor `(num_edges, num_ops)`.
        edge_index: int32 tensor `(num_edges,)` (sampled ops).
        lower_case: bool. Passed to every `GumbelEdge`.

    Example:

    >>> cell = SearchCell(8)
    >>> w = tf.fill((14, 8), 1 / 8)
    >>> cell([np.ones((2, 6, 6, 24)), np.ones((2, 6, 6, 24))], w, tf.zeros(14, "int32")).shape
    (2, 6, 6, 32)
    """

    def __init__(self, channels, reduction=False, reduction_prev=False, steps=4, multiplier=4,
                 primitives=None, edge_mode="gdas", **kwargs):
        super().__init__(**kwargs)

        if not 1 <= multiplier <= steps:
            raise ValueError(f"`multiplier` must be in [1, steps={steps}]. Received: multiplier={multiplier!r}")
        self.channels = channels
        self.reduction = bool(reduction)
        self.reduction_prev = bool(reduction_prev)
        self.steps = steps
        self.multiplier = multiplier
        self.primitives = list(darts_ops.PRIMITIVES if primitives is None else primitives)
        self.edge_mode = edge_mode
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(channels, affine=False, name="preprocess0")
        else:
            self.preprocess0 = darts_ops.relu_conv_bn(channels, 1, 1, affine=False, name="preprocess0")
        self.preprocess1 = darts_ops.relu_conv_bn(channels, 1, 1, affine=False, name="preprocess1")
        self.edges = [
            GumbelEdge(
                channels,
                strides=2 if self.reduction and source < 2 else 1,
                primitives=self.primitives,
                edge_mode=edge_mode,
                affine=False,
                name=f"edge_{source}_{target}",
            )
            for source, target in cell_edges(steps)
        ]

    def build(self, inputs_shape, edge_weights_shape=None, edge_index_shape=None):
        s0_shape, s1_shape = inputs_shape
        build_by_shape(self.preprocess0, s0_shape)
        build_by_shape(self.preprocess1, s1_shape)
        node_shape = tuple(s1_shape[:-1]) + (self.channels,)
        for (source, _), edge in zip(cell_edges(self.steps), self.edges):
            edge.build(node_shape)

    def call(self, inputs, edge_weights, edge_index, training=None, lower_case=False):
        s0, s1 = inputs
        states = [self.preprocess0(s0, training=training), self.preprocess1(s1, training=training)]
        k = 0
        for i in range(self.steps):
            total = 0
            for j in range(i + 2):
                total = total + self.edges[k](states[j], edge_weights[k], edge_index[k], training=training,
                                              lower_case=lower_case)
                k += 1
            states.append(total)
        return ops.concatenate(states[-self.multiplier:], axis=-1)

    def compute_output_shape(self, inputs_shape, edge_weights_shape=None, edge_index_shape=None):
        s1 = inputs_shape[1]
        div = 2 if self.reduction else 1
        size = lambda n: None if n is None else (n + div - 1) // div  # noqa: E731
        return (s1[0], size(s1[1]), size(s1[2]), self.channels * self.multiplier)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "reduction": self.reduction,
            "reduction_prev": self.reduction_prev,
            "steps": self.steps,
            "multiplier": self.multiplier,
            "primitives": list(self.primitives),
            "edge_mode": self.edge_mode,
        }
