"""CNAS on a DenseNet-BC shaped one-shot network (paper 004, sec. 3.4, Figure 4).

Dense blocks of bottleneck layers (Huang et al. 2017): layer `l` of a block
reads `x = [block input, y_0, ..., y_{l-1}]` and computes
`Conv3x3(ReLU(BN(Conv1x1(ReLU(BN(x))))))` with `growth_rate` outputs; blocks
are joined by transition layers (BN-ReLU-Conv1x1 with compression, 2x2
average pooling). The searchable vertices are each layer's input channels,
masked after the layer's own BN-ReLU, right before the 1x1 conv they feed:
zeroing one removes its BN entries and its 1x1 conv row (Figure 4(b)). The
channel bookkeeping, masks, Taylor saliency and materialisation are the
same as the NASNet-shaped space (`keras_nas.cnas.nasnet_space`); in the
topology and the Table 1 report, each bottleneck layer is a "cell" whose
`d` is the block input and whose `z` are the earlier layers' outputs.
"""

import keras
from keras import layers

from keras_nas.cnas.nasnet_space import _BN_PER_CHANNEL, TopologyBuilder, _bn, _check_int


def densenet_bc(
    layers_per_block=19,
    growth_rate=12,
    *,
    blocks=3,
    compression=0.5,
    bottleneck_width=4,
    num_classes=10,
    input_shape=(32, 32, 3),
    dropout=0.0,
    masked=True,
    selection=None,
    return_topology=False,
    name="cnas_densenet_bc",
):
    """Builds the CNAS DenseNet-BC one-shot network (or a sparse one of it).

    Args:
        layers_per_block: int. Bottleneck layers per dense block. Paper sec.
            3.4: 19. Defaults to `19`.
        growth_rate: int. k, outputs per layer. DenseNet-BC: 12. Defaults to `12`.
        blocks: int. Dense blocks. Defaults to `3`.
        compression: float in (0, 1]. Transition compression theta. Defaults to `0.5`.
        bottleneck_width: int. The 1x1 conv gives `bottleneck_width * k`. Defaults to `4`.
        num_classes: int. Defaults to `10`.
        input_shape: tuple. Defaults to `(32, 32, 3)`.
        dropout: float. Spatial dropout rate after each layer. Defaults to `0.0`.
        masked: bool. Put a `ChannelMask` on every layer's input. Defaults to `True`.
        selection: dict or None. Build the sparse network of this selection.
        return_topology: bool. Also return the topology dict.
        name: str. Model name.

    Returns:
        A Keras model, or `(model, topology)`.

    Example:

    >>> model, topology = densenet_bc(2, 4, input_shape=(8, 8, 1), return_topology=True)
    >>> len(topology["edges"])  # 3 blocks x 2 layers
    6
    """
    for arg, value, low in (("layers_per_block", layers_per_block, 1), ("growth_rate", growth_rate, 1),
                            ("blocks", blocks, 1), ("bottleneck_width", bottleneck_width, 1),
                            ("num_classes", num_classes, 2)):
        _check_int(arg, value, low)
    if not 0 < compression <= 1:
        raise ValueError(f"`compression` must be in (0, 1]. Received: compression={compression}")
    if not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    builder = TopologyBuilder(masked=masked, selection=selection)
    width = bottleneck_width * growth_rate
    inputs = keras.Input(tuple(input_shape), name="images")
    x = layers.Conv2D(2 * growth_rate, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name="stem_conv")(inputs)
    builder.add_source("block1_in", x, "d", cell="stem", producers=[(0, 2 * growth_rate, ["stem_conv"])])
    block_in = "block1_in"
    for b in range(1, blocks + 1):
        sources = [block_in]
        for i in range(layers_per_block):
            label = f"block{b}_layer{i + 1}"
            pool, positions = builder.pool(sources, f"{label}_pool")
            inputs_ = [(n, c) for n in sources for c in range(len(builder.topology["sources"][n]["origins"]))]

            def bn_relu(t, label=label):
                t = _bn(f"{label}_bn1")(t)
                return layers.ReLU(name=f"{label}_relu1")(t)

            per_input = _BN_PER_CHANNEL + width  # BN entries + 1x1 conv row
            fixed = _BN_PER_CHANNEL * width + 9 * width * growth_rate
            y, alive = builder.edge_input(pool, positions, inputs_, label, label, per_input, fixed,
                                          [f"{label}_bn1", f"{label}_conv1"], growth_rate, before_mask=bn_relu)
            if y is not None:
                y = layers.Conv2D(width, 1, use_bias=False, kernel_initializer="he_normal", name=f"{label}_conv1")(y)
                y = _bn(f"{label}_bn2")(y)
                y = layers.ReLU(name=f"{label}_relu2")(y)
                y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                                  name=f"{label}_conv2")(y)
                if dropout:
                    y = layers.SpatialDropout2D(dropout, name=f"{label}_dropout")(y)
                if alive is not None:
                    y = layers.Multiply(name=f"{label}_gate")([y, alive])
            builder.add_source(f"{label}_out", y, "z", [label] * growth_rate, cell=label,
                               producers=[(0, growth_rate, [f"{label}_conv2"])])
            builder.topology["cells"].append({"cell": label, "kind": f"block{b}", "channels": growth_rate})
            sources.append(f"{label}_out")
        out = f"block{b}_out"
        tensor = builder.concat_sources(sources, out, "output", cell=f"block{b}", layer_name=f"block{b}_concat")
        full = len(builder.topology["sources"][out]["origins"])
        prefix = f"transition{b}" if b < blocks else "final"
        filters = max(1, int(compression * full))
        if b < blocks:
            builder.consumer([f"{prefix}_bn", f"{prefix}_conv"], out, _BN_PER_CHANNEL + filters, cell=prefix)
        else:
            builder.consumer([f"{prefix}_bn", "predictions"], out, _BN_PER_CHANNEL + num_classes)
        t = _bn(f"{prefix}_bn")(tensor)
        t = layers.ReLU(name=f"{prefix}_relu")(t)
        t = builder.consumer_mask(t, f"{prefix}_mask")
        if b < blocks:
            t = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal",
                              name=f"transition{b}_conv")(t)
            t = layers.AveragePooling2D(2, padding="same", name=f"transition{b}_pool")(t)
            block_in = f"block{b + 1}_in"
            builder.add_source(block_in, t, "d", cell=f"transition{b}",
                               producers=[(0, filters, [f"transition{b}_conv"])])
        else:
            t = layers.GlobalAveragePooling2D(name="head_pool")(t)
            y = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(t)
    model = keras.Model(inputs, y, name=name)
    topology = builder.finish(model)
    topology["space"] = "densenet-bc"
    return (model, topology) if return_topology else model
