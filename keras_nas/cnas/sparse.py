"""The physically sparse CNAS model: only surviving channels, edges and kernel rows (paper 004, sec. 2.1)."""

import warnings

import keras
import numpy as np

from keras_nas.cnas.layout import channel_layout


def mask_layers(model, graph):
    """The `ChannelMask` layer of every edge of `graph`, in edge order."""
    return [model.get_layer(graph.topology["edges"][name]["mask"]) for name in graph.edges]


def read_masks(model, graph):
    return {name: np.asarray(layer.mask.numpy()) for name, layer in zip(graph.edges, mask_layers(model, graph))}


def write_masks(model, graph, masks):
    """Writes the propagated masks (`graph.effective`) into the model's mask layers."""
    eff = graph.effective(masks)
    for name, layer in zip(graph.edges, mask_layers(model, graph)):
        layer.set_mask(eff[name])
    for name, values in graph.consumer_masks(eff).items():
        model.get_layer(name).set_mask(values)
    return eff


def _permute_columns(weight, value, order):
    """Output columns of a producer layer in the sparse model's channel order (`channel_layout`)."""
    if weight.path.endswith("depthwise_kernel") or value.ndim == 0 or value.shape[-1] != len(order):
        return value
    return np.take(value, order, axis=-1)


def _weight(layer, name):
    (weight,) = [w for w in layer.weights if w.path.endswith(name)]
    return np.asarray(weight.numpy())


def _row_axis(layer, value):
    """Axis of a sliced layer's weight that runs over its input channels (None: not per input channel).

    Kernels are `(..., inputs, outputs)` (Conv2D, Dense, the depthwise
    `(..., inputs, multiplier)`); a BatchNormalization reading the channels
    holds one entry per channel; other vectors (biases, a
    `FactorizedReduce`'s own BatchNorm) run over outputs.
    """
    if value.ndim >= 2:
        return value.ndim - 2
    if isinstance(layer, keras.layers.BatchNormalization):
        return 0
    return None


def copy_weights(source, target, topology, selection):
    """Copies weights by layer name, keeping only the selected input rows (in order) of sliced layers.

    Layers in `selection["permutations"]` (producers of a permuted source,
    `channel_layout`) get their output columns in that order.
    """
    permutations = selection.get("permutations", {})
    merged, renamed = topology.get("merged", {}), topology.get("renamed", {})
    for layer in target.layers:
        if not layer.weights:
            continue
        if layer.name in merged:
            # One kernel for several edges, side by side: each edge's kept input rows.
            (dst_w,) = layer.weights
            parts = [np.take(_weight(source.get_layer(src), name), selection["edges"][edge], axis=-2)
                     for edge, src, name in merged[layer.name] if edge in selection["edges"]]
            value = np.concatenate(parts, axis=-2)
            if value.shape != tuple(dst_w.shape):
                raise ValueError(f"Cannot merge weights into `{dst_w.path}`: {value.shape} vs {tuple(dst_w.shape)}.")
            dst_w.assign(value)
            continue
        if layer.name in renamed:
            src_name, weight_name = renamed[layer.name]
            src_weights = [w for w in source.get_layer(src_name).weights if w.path.endswith(weight_name)]
        else:
            src_weights = source.get_layer(layer.name).weights
        rule = topology["slices"].get(layer.name)
        indices = None
        if rule is not None:
            kind, key = rule
            indices = selection["edges" if kind == "edge" else "sources"][key]
        for dst_w, src_w in zip(layer.weights, src_weights):
            value = np.asarray(src_w.numpy())
            axis = _row_axis(layer, value) if indices is not None else None
            if axis is not None:
                value = np.take(value, indices, axis=axis)
            if layer.name in permutations:
                value = _permute_columns(src_w, value, permutations[layer.name])
            if value.shape != tuple(dst_w.shape):
                raise ValueError(f"Cannot slice weight `{src_w.path}` {src_w.shape} to {tuple(dst_w.shape)}.")
            dst_w.assign(value)


def materialize(model, graph, build, layout=True):
    """Builds the physically sparse network of `model`'s masks, with `model`'s weights.

    Args:
        model: masked one-shot Keras model.
        graph: its `ChannelGraph`.
        build: callable `selection -> model` (the space builder with
            `selection=`).
        layout: bool. Order each source's channels so that the edges'
            kept channels are contiguous (`channel_layout`: the gathers
            become slices, folded into the producers' kernels). Defaults
            to `True`.

    Returns:
        `(sparse_model, selection)`. Same predictions as `model` (float
        tolerance); `sparse_model.count_params() == graph.count_params(masks)`.
    """
    masks = read_masks(model, graph)
    eff = graph.effective(masks)
    if any(not np.array_equal(eff[n], (masks[n] > 0.5).astype(np.float32)) for n in graph.edges):
        warnings.warn(
            "Some masks keep channels whose source is removed; materialising the propagated masks "
            "(write masks with `write_masks`).", stacklevel=2,
        )
    selection = channel_layout(graph.topology, graph.selection(masks)) if layout else graph.selection(masks)
    sparse = build(selection)
    copy_weights(model, sparse, graph.topology, selection)
    return sparse, selection
