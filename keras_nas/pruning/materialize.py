"""The physically sparse CNAS model: only surviving channels, edges and kernel rows (paper 004, sec. 2.1)."""

import warnings

import numpy as np


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


def copy_weights(source, target, topology, selection):
    """Copies weights by layer name, keeping only the selected rows of sliced layers."""
    for layer in target.layers:
        if not layer.weights:
            continue
        src = source.get_layer(layer.name)
        rule = topology["slices"].get(layer.name)
        indices = None
        if rule is not None:
            kind, key = rule
            indices = selection["edges" if kind == "edge" else "sources"][key]
        for dst_w, src_w in zip(layer.weights, src.weights):
            value = np.asarray(src_w.numpy())
            if value.shape != tuple(dst_w.shape):
                axes = [i for i, (a, b) in enumerate(zip(value.shape, dst_w.shape)) if a != b]
                if len(axes) != 1 or indices is None or len(indices) != dst_w.shape[axes[0]]:
                    raise ValueError(
                        f"Cannot slice weight `{src_w.path}` {value.shape} to {tuple(dst_w.shape)}."
                    )
                value = np.take(value, indices, axis=axes[0])
            dst_w.assign(value)


def materialize(model, graph, build):
    """Builds the physically sparse network of `model`'s masks, with `model`'s weights.

    Args:
        model: masked one-shot Keras model.
        graph: its `ChannelGraph`.
        build: callable `selection -> model` (the space builder with
            `selection=`).

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
    selection = graph.selection(masks)
    sparse = build(selection)
    copy_weights(model, sparse, graph.topology, selection)
    return sparse, selection
