"""What the derived network costs in latency, from a `darts` latency table (issue 24).

The search network is not the network a user deploys: EoiNAS, GDAS and
DARTS train the cells they derive in the evaluation network
(`keras_nas.eoinas.darts.eval_network`, other cells and channels). So the
latency a search targets is the evaluation network's, read from a latency
table measured for it (`keras-nas latency-table --space darts`, or the
search measures one on the spot).

`edge_costs` turns the table into one number per (cell type, edge, op): the
op's latency on that edge summed over every cell of that type in the
evaluation network, and a constant for everything the cells' choices do not
change (stem, pre-processing, node sums, concatenations, head, the table's
overhead). Then

- a genotype's latency is `constant + sum of cost[kind][edge, op]` over its
  chosen ops (`keras_nas.eoinas.genotypes.genotype_latency`); it equals
  `keras_nas.costs.predict_latency` of the built network;
- the expected latency of the architecture distribution (FBNet, Wu et al.
  2019, Eq. 6; ProxylessNAS, Cai et al. 2019, Eq. 3) is
  `constant + sum_kind sum_e (2 / n_in(e)) sum_o q[e, o] cost[kind][e, o]`,
  `q` the softmax of alpha over the live ops that are not `none` (a derived
  cell never holds `none`, and it costs nothing: counting it would reward a
  choice derivation ignores), and `2 / n_in(e)` because a node keeps two of
  its `n_in` inputs. It is differentiable in alpha (`expected_latency`).
"""

import numpy as np

from keras_nas import latency
from keras_nas.eoinas.genotypes import PRIMITIVES


def edge_costs(table, primitives=PRIMITIVES, steps=4, multiplier=4):
    """`{"constant_ms", "normal", "reduce"}` of a darts table: ms per (edge, op) summed over the cells of a type.

    Args:
        table: dict or str. A `darts` latency table (`keras-nas latency-table
            --space darts`), or its JSON path.
        primitives: op names of the columns. Defaults to DARTS' eight.
        steps: int. Intermediate nodes per cell. Defaults to `4`.
        multiplier: int. Nodes concatenated into a cell's output. Defaults
            to `4`.

    Returns:
        dict: `constant_ms` (float) and, per cell type, a list of lists
        `(edges, ops)` (JSON-safe; `none` costs 0).

    Raises:
        ValueError: the table lacks an entry the evaluation network needs.

    Example:

    >>> costs = edge_costs("darts_8.json")
    >>> np.array(costs["normal"]).shape
    (14, 8)
    """
    table = latency.read_table(table, space="darts")
    config = table["config"]
    entries = table["entries"]

    def entry(k):
        if k not in entries:
            raise ValueError(f"`table` has no entry {k!r}; re-run `keras-nas latency-table --space darts` for "
                             "this network's input size, --cells and --init-channels.")
        return float(entries[k])

    stem, cells, head = latency.darts_cells(config["image_size"], config["channels"], config["cells"],
                                            config["init_channels"], steps, multiplier)
    constant = float(table["overhead_ms"]) + entry(latency.key("darts/stem", **{"in": latency.shape_text(stem[0])},
                                                               filters=stem[1]))
    edges = sum(i + 2 for i in range(steps))
    costs = {"normal": np.zeros((edges, len(primitives))), "reduce": np.zeros((edges, len(primitives)))}
    for cell in cells:
        c = cell["C"]
        kind, shape = cell["pre0"]
        constant += entry(latency.key("darts/pre", type=kind, **{"in": latency.shape_text(shape)}, out=c))
        constant += entry(latency.key("darts/pre", type="relu_conv_bn", **{"in": latency.shape_text(cell["pre1"])},
                                      out=c))
        out = latency.shape_text((cell["size"], cell["size"], c))
        constant += steps * entry(latency.key("darts/add", **{"in": out}))
        constant += entry(latency.key("darts/concat", **{"in": out}, n=multiplier))
        cost = costs["reduce" if cell["reduction"] else "normal"]
        for k, _, shape, stride in latency.darts_edges(cell, steps):
            for o, op in enumerate(primitives):
                if op != "none":
                    cost[k, o] += entry(latency.darts_op_key(op, shape, stride))
    constant += entry(latency.key("darts/head", **{"in": latency.shape_text(head)}, classes=config["num_classes"]))
    return {"constant_ms": constant, **{kind: value.tolist() for kind, value in costs.items()}}


def keep_weights(steps=4):
    """`2 / n_in` per edge: the share of its node's inputs a derived cell keeps (two of the node's `i + 2`)."""
    return np.concatenate([np.full(i + 2, 2.0 / (i + 2)) for i in range(steps)])


def expected_latency_numpy(alphas, lives, costs, primitives=PRIMITIVES, steps=4):
    """The expected latency (ms) of the module doc, in NumPy (the reference `expected_latency` is tested against).

    Args:
        alphas, lives: dicts cell type -> array `(edges, ops)`.
        costs: `edge_costs(...)`.
    """
    weights = keep_weights(steps)
    total = float(costs["constant_ms"])
    for kind in ("normal", "reduce"):
        mask = (np.asarray(lives[kind]) > 0.5) & (np.array(primitives) != "none")[None, :]
        alpha = np.where(mask, np.asarray(alphas[kind], dtype="float64"), -np.inf)
        top = np.max(np.where(mask, alpha, -1e300), axis=1, keepdims=True)
        e = np.where(mask, np.exp(alpha - top), 0.0)
        q = e / np.maximum(e.sum(axis=1, keepdims=True), 1e-300)
        total += float(np.sum(weights[:, None] * q * np.asarray(costs[kind])))
    return total


def expected_latency(alphas, lives, cost_tensors, none_mask, keep):
    """The expected latency (ms) as a TensorFlow scalar, differentiable in `alphas` (see the module doc).

    Args:
        alphas, lives: sequences of float tensors `(edges, ops)`, normal then reduce.
        cost_tensors: the same for the costs.
        none_mask: float tensor `(ops,)`, 0 for `none`.
        keep: float tensor `(edges,)`, `keep_weights`.

    Returns:
        float32 scalar without the constant (add `costs["constant_ms"]`).
    """
    import tensorflow as tf

    total = tf.constant(0.0)
    for alpha, live, cost in zip(alphas, lives, cost_tensors):
        mask = tf.cast(live > 0.5, alpha.dtype) * none_mask[None, :]
        top = tf.reduce_max(tf.where(mask > 0, alpha, tf.fill(tf.shape(alpha), -1e30)), axis=1, keepdims=True)
        shifted = tf.where(mask > 0, alpha - tf.stop_gradient(top), tf.zeros_like(alpha))
        e = tf.exp(shifted) * mask
        q = e / tf.maximum(tf.reduce_sum(e, axis=1, keepdims=True), 1e-30)
        total += tf.reduce_sum(keep[:, None] * q * cost)
    return total
