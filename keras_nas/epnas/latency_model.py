"""A latency model of EPNAS module (cell) networks, fitted to measured ones.

EPNAS (paper 002) constrains latency in neither space; this is ours (issue
24). In the module space (Table 3) a branch's input is the cell input or any
earlier branch, whose width is the sum of what its operations output, so a
conv can read hundreds of different widths: a table of one entry per op and
input shape, as the layer-by-layer space has, would hold thousands of
entries. Instead, as for CNAS (`keras_nas.cnas.latency_model`), a network's
Keras layers are reduced to a few counts (`layer_features`: calls and work
of the convolutions, their work per output width, poolings and
concatenations) and a table of the
`epnas-module` space holds one latency per unit of each, fitted by
non-negative least squares to random module networks measured end to end
(`keras_nas.latency.fit_counts`), weighted by 1 / latency^2 so that the
relative error is what is minimised (the networks' latencies span two
orders of magnitude; unweighted, the fit serves the slowest ones). Then

    predicted = overhead_ms + sum(entries[key] * count[key])

BatchNorms fold into the convolution before them and ReLUs fuse into it when
the model is converted to TFLite, so they are not counted; the stem and the
head, the same in every network of a table, are left to the intercept.

How well the fit predicts measured networks: benchmarks/RESULTS.md,
"Latency tables".
"""

import numpy as np

SPACE = "epnas-module"
# Counts of a module network's layers; "k" = thousands (multiply-accumulates or tensor elements). The work of a
# convolution is counted per output width (`conv_kmac_out<W>`): what TFLite's kernels take per multiply-accumulate
# depends on it far more than on the kernel shape or the input width (benchmarks/RESULTS.md, "Latency tables").
FEATURES = ("conv", "conv_kelement", "pool", "max_pool_kelement", "avg_pool_kelement", "concat", "concat_kelement")


def conv_widths(channel_table, stages, filters):
    """The output widths of every convolution of a module network: branches' `c * 2**s`, cells' `filters * 2**s`.

    Example:

    >>> conv_widths((8, 12), stages=2, filters=16)
    [8, 12, 16, 24, 32]
    """
    return sorted({c * 2**s for c in channel_table for s in range(stages)} | {filters * 2**s for s in range(stages)})


def feature_names(widths):
    """`FEATURES` and one `conv_kmac_out<W>` per output width."""
    return FEATURES + tuple(f"conv_kmac_out{w}" for w in widths)


def feature_key(feature):
    """The table key of a count: `epnas-module/<feature>`."""
    return f"{SPACE}/{feature}"


def _size(shape):
    return int(np.prod([int(d) for d in shape[1:]]))


def layer_features(model, widths=None):
    """The counts of `feature_names(widths)` of an EPNAS module network (`EPNASSpace("module").build`), by table key.

    Args:
        model: the network.
        widths: list of int or None. Output widths to give a (maybe zero)
            count each, as a table of these widths holds; None: those the
            model has.

    Raises a `ValueError` for a model that is not one (no `stem__conv` and
    no cell branch layers `C<i>_B<j>_*`).

    Example:

    >>> from keras_nas.epnas.space import EPNASSpace
    >>> space = EPNASSpace("module", num_stages=1, cells_per_stage=1, filters=8)
    >>> cell = [{"type": "conv-maxpool", "filter_width": 3, "pool_width": 3, "channels": 8, "src1": 0, "src2": 0,
    ...          "propagate": 1}]
    >>> counts = layer_features(space.build(cell, (4, 4, 1), 10))
    >>> counts["epnas-module/conv"]  # the branch's 3x3 conv and the cell's 1x1 output conv
    2.0
    >>> counts["epnas-module/conv_kmac_out8"]  # 4x4 x 8 x 8 x 9 + 4x4 x 16 x 8
    11.264
    >>> counts["epnas-module/pool"], counts["epnas-module/concat"]
    (1.0, 1.0)
    """
    import keras

    names = [layer.name for layer in model.layers]
    if "stem__conv" not in names or not any(n.startswith("C") and "_B" in n for n in names):
        raise ValueError(f"model {model.name!r} is not an EPNAS module network (EPNASSpace('module').build).")
    counts = dict.fromkeys(feature_names(widths or ()), 0.0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name == "stem__conv":
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        shape_in, shape_out = tuple(inputs[0].shape), tuple(layer.output.shape)
        if isinstance(layer, keras.layers.Conv2D):
            width = int(shape_out[-1])
            if widths is not None and width not in widths:
                raise ValueError(f"layer {layer.name!r} writes {width} channels, which no network of this table's "
                                 f"settings has (widths {list(widths)}).")
            kmac = _size(shape_out) * int(shape_in[-1]) * int(np.prod(layer.kernel_size)) / 1e3
            counts["conv"] += 1
            counts[f"conv_kmac_out{width}"] = counts.get(f"conv_kmac_out{width}", 0.0) + kmac
            counts["conv_kelement"] += (_size(shape_in) + _size(shape_out)) / 1e3
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            counts["pool"] += 1
            kind = "max" if isinstance(layer, keras.layers.MaxPooling2D) else "avg"
            counts[f"{kind}_pool_kelement"] += _size(shape_out) * int(np.prod(layer.pool_size)) / 1e3
        elif isinstance(layer, keras.layers.Concatenate):
            counts["concat"] += 1
            counts["concat_kelement"] += _size(shape_out) / 1e3
    return {feature_key(f): v for f, v in counts.items()}


def sample_cell(space, rng):
    """A random cell of `space` with its initial sizes of branches, each propagated or not.

    The search's own initial cells have 2-4 branches that all propagate; the
    fit needs the whole range its actions reach, so the table samples from a
    space whose `initial_layers` are 1..MAX_BRANCHES, and outputs of one
    branch to all of them (the last one propagates when no other does, as
    the space builds it).
    """
    cell = space.random_architecture(rng)
    for element in cell:
        element["propagate"] = int(rng.random() < 0.5)
    return space.validate(cell)
