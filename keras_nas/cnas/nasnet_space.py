"""CNAS one-shot network (paper 004, Figure 1): channels as vertices, one fixed op as edges.

Shape (Figure 1(a)): stem, then `cells_per_stage` normal cells per stage with a
reduction cell between stages (paper: N = 6, 20 cells). A cell (Figure 1(b))
pre-processes its two inputs (the two previous cells) to `C` channels each,
`d = [a, b]`; node `j` of `nodes` (paper: 5) reads the channel pool
`x_j = [d, z_0, ..., z_{j-1}]` (2C + jC channels); its `ops_per_node` ops
(paper: 2) each take a contiguous share of `x_j` and give `C / ops_per_node`
channels; `z_j` is their concatenation and the cell output the concatenation
of all `z_j`. Every searchable edge is the one fixed op
`BN(SepConv3x3(ReLU(x)))` with a `ChannelMask` on its input channels.

Why each input channel feeds exactly one op and `z_j` concatenates the ops:
Table 1's parameter counts are `|X| (9 + C/2)` plus the 1x1 pre-processing
for every cell (e.g. cell 1: 1,440 x 45 + 72 x 108 = 72,576), which holds
only for that wiring. Reduction cells pre-process both inputs with a
factorized stride-2 reduction (same parameter count as a 1x1 conv, so Table
1's cell 7 and cell 14 counts hold too) and run their nodes at half size.

Where we differ from Table 1: its counts for all 20 cells (and its total,
9,880,704, which they then give exactly) imply a 54-channel stem (3C/4) and
pre-processing convolutions that read 90 channels (5C/4) of each previous
cell's output, e.g. cell 3: 1,440 x 45 + 2 x 72 x 90 = 77,760. A cell's
nodes give 5C channels (|Y| = 360 at C = 72); the paper does not say how
they become 5C/4, so the cell output stays NASNet's concatenation of all
`z_j`. At N = 6, C = 72 our one-shot network has Table 1's |X|, |Y| and node
weights in every cell, and 15.0 M weights in all instead of 9.9 M: the
difference is the pre-processing convolutions (rho = 0.46 then leaves
6.9 M weights, not the paper's 4.6 M).

The same builder gives three networks:

- the masked one-shot network (`masked=True`, default);
- the same network without masks (`masked=False`; the mask-overhead
  benchmark and the "no pruning" baseline);
- the physically sparse network of a channel `selection`
  (`keras_nas.cnas.ChannelGraph.selection`): each edge gathers only its
  surviving channels (`ChannelSelect`), dead edges and nodes are not built,
  and the layers reading a cell output get only its surviving channels.

With `return_topology=True` the builder also returns the JSON-safe topology
(`keras_nas.cnas.ChannelGraph` reads it): every edge with its mask layer,
the source channel of each input, its weights per input channel and its fixed
weights, and the layers whose input rows fall when a channel dies. The
space knows nothing about how it is searched.
"""

import keras
import numpy as np
from keras import layers

from keras_nas.cnas.channel_mask import ChannelMask
from keras_nas.cnas.channel_select import ChannelSelect
from keras_nas.cnas.channels_first_factorized_reduce import ChannelsFirstFactorizedReduce
from keras_nas.layers.factorized_reduce import FactorizedReduce

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
# Weights of a BatchNormalization per channel: gamma, beta, moving mean, moving variance.
_BN_PER_CHANNEL = 4


def _bn(name, axis=-1):
    return layers.BatchNormalization(axis=axis, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


class TopologyBuilder:
    """Records the channel topology while a CNAS space is built (shared by every space).

    Tracks, per named source tensor, the tensor itself and the origin edge of
    each channel; builds each edge's input in one of the three modes
    (masked one-shot, plain one-shot, sparse selection).
    """

    def __init__(self, masked=True, selection=None, channel_axis=-1):
        self.masked = masked and selection is None
        self.selection = selection
        self.channel_axis = channel_axis  # -1: channels last, 1: channels first
        self.topology = {"edges": {}, "sources": {}, "consumers": [], "slices": {}, "cells": []}
        self.tensors = {}

    @property
    def sparse(self):
        return self.selection is not None

    def add_source(self, name, tensor, kind, origins=None, cell=None, producers=None):
        """Registers a tensor whose channels feed edges; `origins[i]` is the edge making channel i (None: always alive).

        `producers`: `[(start, stop, [layer names]), ...]`, channel ranges
        made by layers whose output columns may be permuted (their order is
        set by `keras_nas.cnas.channel_layout` in the sparse network).
        """
        channels = len(origins) if origins is not None else int(tensor.shape[self.channel_axis])
        origins = list(origins) if origins is not None else [None] * channels
        self.topology["sources"][name] = {"kind": kind, "origins": origins, "cell": cell}
        if producers:
            self.topology["sources"][name]["producers"] = [[int(a), int(b), list(n)] for a, b, n in producers]
        self.tensors[name] = tensor

    def alive_channels(self, name):
        """Channels of a source present in the network being built."""
        origins = self.topology["sources"][name]["origins"]
        if not self.sparse:
            return list(range(len(origins)))
        return list(self.selection["sources"][name])

    def concat_sources(self, names, new_name, kind, cell=None, layer_name=None):
        """Concatenates sources into a new one (origins carried over); returns the tensor or None if empty."""
        origins, present = [], []
        for n in names:
            origins += self.topology["sources"][n]["origins"]
            present += self._pieces(n)
        tensor = None
        if len(present) == 1:
            tensor = present[0]
        elif present:
            tensor = layers.Concatenate(axis=self.channel_axis, name=layer_name)(present)
        self.add_source(new_name, tensor, kind, origins, cell)
        self.topology["sources"][new_name]["parts"] = list(names)
        return tensor

    def _pieces(self, name):
        """The tensors holding a source's channels, in order (a sparse node output is its ops' outputs)."""
        tensor = self.tensors.get(name)
        if tensor is None:
            return []
        return list(tensor) if isinstance(tensor, (list, tuple)) else [tensor]

    def pool(self, names, layer_name):
        """Concatenation of sources for edge inputs; returns (tensor, {(source, channel): position}).

        In a sparse network the pool is the list of the present source
        tensors: each edge's `ChannelSelect` slices its channels from them
        without the concatenation being built.
        """
        positions, present, offset = {}, [], 0
        for n in names:
            pieces = self._pieces(n)
            for rank, ch in enumerate(self.alive_channels(n)):
                positions[(n, ch)] = offset + rank
            offset += sum(int(t.shape[self.channel_axis]) for t in pieces)
            present += pieces
        if len(present) == 1:
            return present[0], positions
        if self.sparse:
            return present, positions
        return layers.Concatenate(axis=self.channel_axis, name=layer_name)(present), positions

    def edge_input(self, pool, positions, inputs, name, cell, per_input, fixed, sliced_layers, outputs, node=None,
                   before_mask=None, indices_only=False):
        """The input channels of edge `name` ([(source, channel), ...]), masked or selected.

        Returns `(x, alive)`: `alive` is the gate the edge's output is
        multiplied by (masked mode) or None; `x` is None when the edge is dead
        in a sparse selection. `before_mask` (tensor -> tensor) runs between
        the channel selection and the mask (DenseNet's per-layer BN-ReLU).
        With `indices_only` (sparse networks) returns `(positions in the
        pool, None)` and builds nothing (the caller selects for several edges).
        """
        self.topology["edges"][name] = {
            "cell": cell, "mask": f"{name}_mask", "inputs": [list(i) for i in inputs],
            "per_input": int(per_input), "fixed": int(fixed), "outputs": int(outputs),
            "node": node if node is not None else name,
        }
        for layer_name in sliced_layers:
            self.topology["slices"][layer_name] = ["edge", name]
        if self.sparse:
            kept = self.selection["edges"].get(name, [])
            if not kept:
                return None, None
            indices = [positions[tuple(inputs[i])] for i in kept]
            if indices_only:
                return indices, None
        else:
            indices = [positions[tuple(i)] for i in inputs]
        x = pool
        if isinstance(pool, list) or indices != list(range(int(pool.shape[self.channel_axis]))):
            x = ChannelSelect(indices, axis=self.channel_axis, name=f"{name}_select")(pool)
        if before_mask is not None:
            x = before_mask(x)
        if not self.masked:
            return x, None
        return ChannelMask(return_alive=True, name=f"{name}_mask")(x)

    def consumer(self, layer_names, source, per_channel, cell=None):
        """Layers reading all channels of `source`: `per_channel` weights fall with each dead channel."""
        self.topology["consumers"].append(
            {"layers": list(layer_names), "source": source, "per_channel": int(per_channel), "cell": cell}
        )
        for layer_name in layer_names:
            self.topology["slices"][layer_name] = ["source", source]

    def consumer_mask(self, tensor, name):
        """Masked mode: zeroes the dead channels of the last consumer's source after its own BN-ReLU.

        A consumer that starts with BatchNormalization turns a dead (zero)
        channel into a constant; this derived mask (set by
        `keras_nas.cnas.write_masks`, never searched) removes it, as the
        sparse network does.
        """
        if not self.masked:
            return tensor
        self.topology["consumers"][-1]["mask"] = name
        return ChannelMask(name=name)(tensor)

    def finish(self, model):
        """Fixed weights = all weights (masks excluded) minus the searchable ones at full size."""
        total = sum(int(np.prod(w.shape)) for w in model.weights if not w.path.endswith("/mask"))
        searchable = sum(e["fixed"] + e["per_input"] * len(e["inputs"]) for e in self.topology["edges"].values())
        searchable += sum(
            c["per_channel"] * len(self.topology["sources"][c["source"]]["origins"]) for c in self.topology["consumers"]
        )
        if self.sparse:
            # Only meaningful for the full network; `ChannelGraph` counts sparse ones.
            self.topology["fixed_params"] = None
        else:
            self.topology["fixed_params"] = int(total - searchable)
        return self.topology


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")


def _data_format(channel_axis):
    return "channels_first" if channel_axis == 1 else "channels_last"


def _sparse_node(builder, pool, kept, node, out_channels):
    """The live ops of a node in a sparse network, sharing one selection, ReLU and depthwise conv.

    `BN(SepConv(ReLU(x_o)))` for each live op `o` reading kept channels
    `x_o`: the ReLU and the depthwise 3x3 act per channel, so one depthwise
    conv over `[x_0, x_1, ...]` (the ops' kernels side by side) computes all
    of them; each op's pointwise 1x1 conv then reads its own share. Same
    function and weights as separate ops, fewer and larger kernels.
    """
    axis, data_format = builder.channel_axis, _data_format(builder.channel_axis)
    indices = [i for _, idx in kept for i in idx]
    x = pool
    if isinstance(pool, list) or indices != list(range(int(pool.shape[axis]))):
        x = ChannelSelect(indices, axis=axis, name=f"{node}_select")(pool)
    x = layers.ReLU(name=f"{node}_relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, data_format=data_format,
                               name=f"{node}_depthwise")(x)
    outputs, start = [], 0
    for edge, idx in kept:
        y = x
        if len(kept) > 1:
            y = ChannelSelect(list(range(start, start + len(idx))), axis=axis, name=f"{edge}_share")(x)
        start += len(idx)
        y = layers.Conv2D(out_channels, 1, use_bias=False, data_format=data_format, name=f"{edge}_pointwise")(y)
        outputs.append(_bn(f"{edge}_bn", axis)(y))
    return outputs


def _cell(builder, prev_prev, prev, index, channels, reduction, nodes, ops_per_node, input_resolution):
    """One cell; `prev_prev`/`prev` are source names. Returns the output source name."""
    label = f"cell{index}"
    axis, data_format = builder.channel_axis, _data_format(builder.channel_axis)
    reduce_layer = ChannelsFirstFactorizedReduce if axis == 1 else FactorizedReduce
    d_names = []
    for side, src in (("a", prev_prev), ("b", prev)):
        tensor = builder.tensors[src]
        layer_name = f"{label}_pre{side}"
        if reduction or tensor.shape[2 if axis == 1 else 1] != input_resolution:
            y = reduce_layer(channels, name=layer_name)(tensor)
            sliced = [layer_name]
            producers = None  # two half convolutions: output order fixed
        else:
            y = layers.ReLU(name=f"{layer_name}_relu")(tensor)
            y = layers.Conv2D(channels, 1, use_bias=False, kernel_initializer="he_normal", data_format=data_format,
                              name=f"{layer_name}_conv")(y)
            y = _bn(f"{layer_name}_bn", axis)(y)
            sliced = [f"{layer_name}_conv"]
            producers = [(0, channels, [f"{layer_name}_conv", f"{layer_name}_bn"])]
        if builder.topology["sources"][src]["kind"] != "stem":
            builder.consumer(sliced, src, channels, cell=index)
        name = f"{label}_d{side}"
        builder.add_source(name, y, "d", cell=index, producers=producers)
        d_names.append(name)
    out_channels = channels // ops_per_node
    z_names = []
    for j in range(nodes):
        pool_names = d_names + z_names
        pool, positions = builder.pool(pool_names, f"{label}_node{j}_pool")
        all_inputs = [(n, c) for n in pool_names for c in range(len(builder.topology["sources"][n]["origins"]))]
        share = len(all_inputs) // ops_per_node
        outputs, origins, producers, kept = [], [], [], []
        for o in range(ops_per_node):
            edge = f"{label}_node{j}_op{o}"
            inputs = all_inputs[o * share:(o + 1) * share]
            per_input = 9 + out_channels  # depthwise 3x3 + pointwise row
            fixed = _BN_PER_CHANNEL * out_channels
            x, alive = builder.edge_input(pool, positions, inputs, edge, index, per_input, fixed,
                                         [f"{edge}_sepconv"], out_channels, node=f"{label}_node{j}",
                                         indices_only=builder.sparse)
            producers.append((len(origins), len(origins) + out_channels,
                              [f"{edge}_sepconv", f"{edge}_pointwise", f"{edge}_bn"]))
            origins += [edge] * out_channels
            if x is None:
                continue
            if builder.sparse:
                kept.append((edge, x))
                continue
            y = layers.ReLU(name=f"{edge}_relu")(x)
            y = layers.SeparableConv2D(out_channels, 3, padding="same", use_bias=False,
                                       depthwise_initializer="he_normal", pointwise_initializer="he_normal",
                                       data_format=data_format, name=f"{edge}_sepconv")(y)
            y = _bn(f"{edge}_bn", axis)(y)
            if alive is not None:
                y = layers.Multiply(name=f"{edge}_gate")([y, alive])
            outputs.append(y)
        # Where the sparse node's layers take their weights (`keras_nas.cnas.copy_weights`).
        builder.topology.setdefault("merged", {})[f"{label}_node{j}_depthwise"] = [
            [f"{label}_node{j}_op{o}", f"{label}_node{j}_op{o}_sepconv", "depthwise_kernel"]
            for o in range(ops_per_node)]
        for o in range(ops_per_node):
            edge = f"{label}_node{j}_op{o}"
            builder.topology.setdefault("renamed", {})[f"{edge}_pointwise"] = [f"{edge}_sepconv", "pointwise_kernel"]
            builder.topology["slices"][f"{edge}_pointwise"] = ["edge", edge]
        if kept:
            outputs = _sparse_node(builder, pool, kept, f"{label}_node{j}", out_channels)
        z = f"{label}_z{j}"
        tensor = None
        if len(outputs) == 1:
            tensor = outputs[0]
        elif outputs and builder.sparse:
            tensor = outputs  # read by ChannelSelect and the cell's concatenation: no node concatenation
        elif outputs:
            tensor = layers.Concatenate(axis=axis, name=f"{label}_node{j}_concat")(outputs)
        builder.add_source(z, tensor, "z", origins, cell=index, producers=producers)
        z_names.append(z)
    out = f"{label}_out"
    builder.concat_sources(z_names, out, "output", cell=index, layer_name=f"{label}_concat")
    builder.topology["cells"].append({"cell": index, "kind": "reduction" if reduction else "normal",
                                      "channels": channels})
    return out


def channel_nasnet(
    cells_per_stage=6,
    nodes=5,
    channels=16,
    *,
    ops_per_node=2,
    stages=3,
    stem_channels=None,
    num_classes=10,
    input_shape=(32, 32, 3),
    dropout=0.0,
    masked=True,
    selection=None,
    data_format="channels_last",
    return_topology=False,
    name="cnas_nasnet",
):
    """Builds the CNAS NASNet-shaped one-shot network (or a sparse one of it).

    Args:
        cells_per_stage: int. Normal cells per stage N. Paper: 6. Defaults to `6`.
        nodes: int. Nodes per cell. Paper: 5. Defaults to `5`.
        channels: int. Channels C of a node output in the first stage
            (doubled at each reduction); divisible by `ops_per_node` and even.
            Defaults to `16`.
        ops_per_node: int. Ops per node. Paper: 2. Defaults to `2`.
        stages: int. Stages (reduction cells between them). Defaults to `3`.
        stem_channels: int or None. Stem conv channels. Defaults to `channels`.
        num_classes: int. Defaults to `10`.
        input_shape: tuple. Defaults to `(32, 32, 3)`.
        dropout: float. Spatial dropout (Tompson et al. 2015, paper sec. 2.2)
            rate on every cell output. Defaults to `0.0`.
        masked: bool. Put a `ChannelMask` on every edge. Defaults to `True`.
        selection: dict or None. Build the physically sparse network of this
            channel selection (`ChannelGraph.selection`); overrides `masked`.
        data_format: str. Layout of the feature maps inside the network:
            `"channels_last"` or `"channels_first"` (not for the masked
            network: the masks and the Taylor saliency read the last axis).
            The model's input stays `(height, width, channels)` images
            (transposed once by the first layer); the weights have the
            same shapes and names in both layouts. Channels first makes
            the sparse network's channel selections block copies instead
            of per-pixel copies of a few channels: on a CPU they cost a
            fraction, while the depthwise convolutions cost more
            (benchmarks/bench_cnas.py). Defaults to `"channels_last"`.
        return_topology: bool. Also return the topology dict.
        name: str. Model name.

    Returns:
        A Keras model (softmax "predictions"), or `(model, topology)`.

    Example:

    >>> model, topology = channel_nasnet(1, 3, 8, input_shape=(8, 8, 1), return_topology=True)
    >>> len(topology["edges"])  # 5 cells x 3 nodes x 2 ops
    30
    """
    for arg, value, low in (("cells_per_stage", cells_per_stage, 1), ("nodes", nodes, 1), ("channels", channels, 2),
                            ("ops_per_node", ops_per_node, 1), ("stages", stages, 1), ("num_classes", num_classes, 2)):
        _check_int(arg, value, low)
    if channels % ops_per_node or channels % 2:
        raise ValueError(
            f"`channels` must be even and divisible by `ops_per_node`. Received: channels={channels}, "
            f"ops_per_node={ops_per_node}"
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    if len(input_shape) != 3 or min(input_shape[:2]) < 2 ** (stages - 1):
        raise ValueError(
            f"`input_shape` must be (height, width, channels) with sides >= {2 ** (stages - 1)} "
            f"for {stages} stages. Received: input_shape={input_shape}"
        )
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"`data_format` must be 'channels_last' or 'channels_first'. Received: data_format={data_format!r}"
        )
    if data_format == "channels_first" and masked and selection is None:
        raise ValueError(
            "`data_format='channels_first'` needs `masked=False` or a `selection` (the masks and the Taylor "
            "saliency read the last axis). Received: masked=True, selection=None"
        )
    axis = 1 if data_format == "channels_first" else -1
    builder = TopologyBuilder(masked=masked, selection=selection, channel_axis=axis)
    inputs = keras.Input(tuple(input_shape), name="images")
    x = inputs
    if axis == 1:
        x = layers.Permute((3, 1, 2), name="channels_first")(x)
    x = layers.Conv2D(stem_channels or channels, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      data_format=data_format, name="stem_conv")(x)
    x = _bn("stem_bn", axis)(x)
    builder.add_source("stem", x, "stem")
    prev_prev = prev = "stem"
    resolution = int(input_shape[0])
    index = 0
    for stage in range(stages):
        width = channels * 2 ** stage
        kinds = ([True] if stage > 0 else []) + [False] * cells_per_stage
        for reduction in kinds:
            index += 1
            if reduction:
                resolution = (resolution + 1) // 2
            out = _cell(builder, prev_prev, prev, index, width, reduction, nodes, ops_per_node,
                        resolution if not reduction else resolution * 2)
            if dropout:
                builder.tensors[out] = layers.SpatialDropout2D(dropout, data_format=data_format,
                                                               name=f"cell{index}_dropout")(builder.tensors[out])
            prev_prev, prev = prev, out
    y = layers.ReLU(name="head_relu")(builder.tensors[prev])
    y = layers.GlobalAveragePooling2D(data_format=data_format, name="head_pool")(y)
    y = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(y)
    builder.consumer(["predictions"], prev, num_classes)
    model = keras.Model(inputs, y, name=name)
    topology = builder.finish(model)
    topology["space"] = "nasnet"
    return (model, topology) if return_topology else model
