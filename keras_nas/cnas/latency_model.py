"""A latency model of CNAS sparse networks, fitted to measured ones, and the latency one input channel costs.

CNAS (paper 004) has no latency term; this is ours (issue 24). A sparse
network's kept channels are a combinatorial choice (each edge any subset of
its inputs), so a table cannot hold one entry per block as the other spaces'
tables do. Instead the network's Keras layers are reduced to a few counts
(`layer_features`): calls and work per kind of op (convolutions and their
multiply-accumulates, depthwise convolutions, channel slices, concatenations,
ReLUs, factorized reductions, elements moved), for the NASNet-shaped space
and the DenseNet-BC one alike (a table is measured for one of them). A table of the `cnas` space holds one
latency per unit of each count, fitted by non-negative least squares
(scikit-learn's `LinearRegression(positive=True)`) to sparse networks of
random masks measured end to end (`keras_nas.latency.fit_counts`), and the fixed part of
the network as its `overhead_ms`. Then

    predicted = overhead_ms + sum(entries[key] * count[key])

and the latency an input channel of an edge costs is what the counts lose
when it goes (`channel_savings`): in the NASNet-shaped space its share of
the node's slice, ReLU and depthwise convolution and of the edge's
pointwise convolution, plus the calls of the ops that disappear with the
edge's (or node's) last channel; in the DenseNet-BC space its share of the
layer's slice, BN-ReLU and 1x1 convolution, plus the whole layer with its
last channel.
Channels then go in increasing saliency per millisecond saved
(`keras_nas.cnas.zero_least_salient(..., cost=...)`).

How well the fit predicts measured networks: benchmarks/RESULTS.md,
"Latency tables".
"""

import numpy as np

# Counts of a sparse network's layers; "k" = thousands (multiply-accumulates or tensor elements).
FEATURES = ("conv", "conv_kmac", "depthwise", "depthwise_kmac", "slice", "concat", "relu", "reduce", "kelement")


def feature_key(feature):
    """The table key of a count: `cnas/<feature>`."""
    return f"cnas/{feature}"


def _size(shape):
    return int(np.prod([int(d) for d in shape[1:]]))


def _channels(shape, data_format):
    return int(shape[1] if data_format == "channels_first" else shape[-1])


def _spatial(shape, data_format):
    dims = shape[2:] if data_format == "channels_first" else shape[1:-1]
    return int(np.prod([int(d) for d in dims]))


def layer_features(model):
    """The counts of `FEATURES` of a CNAS sparse network (`channel_nasnet` or `densenet_bc` with a `selection`).

    Layers that every network of the space has once (the input transpose,
    the stem's BatchNorm, the head's pooling and classifier) are left to
    the fitted intercept; BatchNorms after a convolution fold into it when
    the model is converted. A BatchNorm that does not (DenseNet-BC's
    BN-ReLU-conv order) becomes a multiply and an add, and an average
    pooling (its transitions) reads and writes its elements: both count as
    elements moved (the NASNet-shaped space has neither).

    Example:

    >>> from keras_nas.cnas.channel_graph import ChannelGraph
    >>> from keras_nas.cnas.nasnet_space import channel_nasnet
    >>> _, topology = channel_nasnet(1, 1, 4, stages=1, input_shape=(4, 4, 1), return_topology=True)
    >>> graph = ChannelGraph(topology)
    >>> sparse = channel_nasnet(1, 1, 4, stages=1, input_shape=(4, 4, 1),
    ...                         selection=graph.selection(graph.full_masks()))
    >>> layer_features(sparse)["depthwise"]  # the node's two ops share one depthwise conv
    1.0
    """
    import keras

    from keras_nas.cnas.channel_select import ChannelSelect
    from keras_nas.cnas.channels_first_factorized_reduce import ChannelsFirstFactorizedReduce
    from keras_nas.layers.factorized_reduce import FactorizedReduce

    counts = dict.fromkeys(FEATURES, 0.0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        shape_in, shape_out = tuple(inputs[0].shape), tuple(layer.output.shape)
        data_format = getattr(layer, "data_format", "channels_last")
        if isinstance(layer, FactorizedReduce):
            axis_format = "channels_first" if isinstance(layer, ChannelsFirstFactorizedReduce) else "channels_last"
            counts["reduce"] += 1
            macs = _spatial(shape_out, axis_format) * _channels(shape_in, axis_format) * layer.filters // 2
            counts["conv_kmac"] += macs / 1e3
            counts["kelement"] += (_size(shape_in) + _size(shape_out)) / 1e3
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            counts["depthwise"] += 1
            counts["depthwise_kmac"] += _size(shape_out) * int(np.prod(layer.kernel_size)) / 1e3
            counts["kelement"] += (_size(shape_in) + _size(shape_out)) / 1e3
        elif isinstance(layer, keras.layers.Conv2D) and layer.name != "stem_conv":
            counts["conv"] += 1
            macs = _size(shape_out) * _channels(shape_in, data_format) * int(np.prod(layer.kernel_size))
            counts["conv_kmac"] += macs / 1e3
            counts["kelement"] += (_size(shape_in) + _size(shape_out)) / 1e3
        elif isinstance(layer, ChannelSelect):
            runs = sum(len(r) for _, r in layer._segments)
            counts["slice"] += runs
            counts["concat"] += runs > 1
            counts["kelement"] += _size(shape_out) / 1e3
        elif isinstance(layer, keras.layers.Concatenate):
            counts["concat"] += 1
            counts["kelement"] += _size(shape_out) / 1e3
        elif isinstance(layer, keras.layers.ReLU) and layer.name != "head_relu":
            counts["relu"] += 1
            counts["kelement"] += _size(shape_out) / 1e3
        elif isinstance(layer, keras.layers.BatchNormalization) and not _after_conv(layer):
            counts["kelement"] += 2 * _size(shape_out) / 1e3  # a multiply and an add, each reading and writing
        elif isinstance(layer, keras.layers.AveragePooling2D):
            counts["kelement"] += (_size(shape_in) + _size(shape_out)) / 1e3
    return counts


def _after_conv(layer):
    """Whether `layer` alone reads a convolution's output (a BatchNorm there folds into the convolution).

    (DenseNet-BC's first BN-ReLU of a block reads the stem or transition
    convolution's output, which the block's concatenation reads too: that
    BatchNorm stays.)
    """
    import keras

    # Keras has no public graph-walking API for functional models (see keras_nas.folding).
    producer = layer.input._keras_history[0]
    return (isinstance(producer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
            and len(producer._outbound_nodes) == 1)


def predict_from_features(counts, table):
    """`overhead_ms + sum(entries[cnas/<f>] * counts[f])` (pure)."""
    entries = table["entries"]
    return float(table["overhead_ms"]) + sum(entries[feature_key(f)] * float(counts[f]) for f in FEATURES)


def sample_masks(graph, rng):
    """Random masks spanning the search's range: a keep share per cell in [0.02, 1], varied per edge.

    Each edge of a cell keeps each input channel with probability
    `p_cell * u_e` (`p_cell` uniform in [0.02, 1], `u_e` in [0.5, 1.5],
    clipped to 1), so thin and whole edges, dead edges and dead nodes
    occur, and the cells' resolutions and widths vary apart (which lets
    the fit tell work per element from work per multiply-accumulate); one
    channel from `d` per cell stays (as the search keeps it). In the
    DenseNet-BC space every layer is a cell, and the shares of its dozens
    of cells would average out to networks that all keep about half their
    channels: there a network-wide share `g` (uniform in [0.02, 1]) is drawn
    first and `p_cell = g * u_cell` (`u_cell` in [0.5, 1.5]), so the
    networks span the range a search prunes through.
    """
    shares = {}
    masks = {}
    network = rng.uniform(0.02, 1.0) if graph.topology.get("space") == "densenet-bc" else None
    for name, full in graph.full_masks().items():
        cell = graph.cell_of(name)
        if cell not in shares:
            shares[cell] = (rng.uniform(0.02, 1.0) if network is None else
                            min(1.0, max(0.02, network * rng.uniform(0.5, 1.5))))
        keep = min(1.0, shares[cell] * rng.uniform(0.5, 1.5))
        masks[name] = (rng.random(len(full)) < keep).astype(np.float32)
    floor = graph.minimal_masks()
    return graph.effective({n: np.maximum(masks[n], floor[n]) for n in masks})


def edge_shapes(model, graph):
    """`{edge: (spatial size, output channels)}` of every edge of a one-shot network (its mask layer's input).

    The output channels are those of the convolution an input channel feeds:
    the edge's pointwise convolution (NASNet-shaped), the layer's 1x1
    bottleneck convolution (DenseNet-BC).
    """
    shapes = {}
    densenet = graph.topology.get("space") == "densenet-bc"
    for name in graph.edges:
        edge = graph.topology["edges"][name]
        shape = tuple(model.get_layer(edge["mask"]).input.shape)
        outputs = model.get_layer(f"{name}_conv1").filters if densenet else edge["outputs"]
        shapes[name] = (int(np.prod(shape[1:-1])), int(outputs))
    return shapes


def channel_savings(graph, masks, shapes, table):
    """Milliseconds removing one more kept input channel of each edge saves, by the table's fitted costs (pure).

    Per channel of an edge at spatial size `s` with `out` outputs: the
    node's slice copy, ReLU and 3x3 depthwise convolution, the edge's share
    slice and its pointwise convolution lose `s` elements and `9 s` and
    `s out` multiply-accumulates. The edge's last channel also removes its
    pointwise convolution and share slice, the node's last its depthwise
    convolution, ReLU and slice. Removing a node's output does not count
    what it saves downstream (those channels are removed with it, for free).

    In the DenseNet-BC space (an edge is a bottleneck layer, `out` its 1x1
    convolution's width) a channel is the layer's slice copy, BatchNorm (a
    multiply and an add), ReLU and 1x1 convolution input: `5 s` elements
    and `s out` multiply-accumulates. No layer loses its last channel (each
    is a cell, and the search keeps one block-input channel per cell), so
    there is no whole-layer saving.

    Returns:
        dict edge -> float > 0 in milliseconds (floored at 1e-9, so the ratio stays finite).
    """
    entries = {f: table["entries"][feature_key(f)] for f in FEATURES}
    if graph.topology.get("space") == "densenet-bc":
        return _densenet_savings(graph, shapes, entries)
    eff = graph.effective(masks)
    node_kept = {}
    for name in graph.edges:
        node = graph.topology["edges"][name].get("node", name)
        node_kept[node] = node_kept.get(node, 0) + int(eff[name].sum())
    savings = {}
    for name in graph.edges:
        s, out = shapes[name]
        kept = int(eff[name].sum())
        node = graph.topology["edges"][name].get("node", name)
        # Elements: the node's slice copy, ReLU, depthwise input and output, the share copy, the pointwise input.
        ms = (entries["kelement"] * 6 * s + entries["depthwise_kmac"] * 9 * s + entries["conv_kmac"] * s * out) / 1e3
        if kept <= 1:
            ms += entries["conv"] + entries["slice"] + entries["kelement"] * s * out / 1e3
        if node_kept[node] <= 1:
            ms += entries["depthwise"] + entries["relu"] + entries["slice"]
        savings[name] = max(ms, 1e-9)
    return savings


def _densenet_savings(graph, shapes, entries):
    """`channel_savings` of the DenseNet-BC space (see there)."""
    savings = {}
    for name in graph.edges:
        s, out = shapes[name]
        savings[name] = max((entries["kelement"] * 5 * s + entries["conv_kmac"] * s * out) / 1e3, 1e-9)
    return savings
