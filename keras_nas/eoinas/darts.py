"""DARTS cell space: genotypes, the search network and the evaluation network.

A genotype is data: for each cell type a list of `(op, input)` pairs, two per
intermediate node, plus the nodes concatenated into the output (DARTS
`genotypes.py` form). `eval_network` stacks the cells a genotype describes as
in the DARTS / GDAS / EoiNAS evaluation (sec. 4.3-4.4); `search_network`
builds the supernet of sec. 3.1 / 4.2.
"""

import os

import keras
import numpy as np

from keras_nas import io
from keras_nas.eoinas.auxiliary_tap import AuxiliaryTap
from keras_nas.eoinas.drop_path import DropPath
from keras_nas.layers.factorized_reduce import FactorizedReduce
from keras_nas.eoinas.auxiliary_head import AuxiliaryHeadModel
from keras_nas.eoinas.supernet import BilevelSearchModel
from keras_nas.eoinas import darts_ops
from keras_nas.eoinas.darts_ops import OPS, PRIMITIVES
from keras_nas.eoinas.genotypes import (  # noqa: F401  (the genotype helpers, as data, live there)
    GENOTYPES,
    Genotype,
    derive_genotype,
    genotype_from_dict,
    genotype_to_dict,
    load_genotype,
    save_genotype,
)

# -- evaluation network --------------------------------------------------


def _cell(s0, s1, genotype, channels, reduction, reduction_prev, drop_path, name):
    """One discrete cell (DARTS `model.Cell`) applied functionally with named layers."""
    pairs = genotype.reduce if reduction else genotype.normal
    concat = genotype.reduce_concat if reduction else genotype.normal_concat
    if reduction_prev:
        s0 = FactorizedReduce(channels, name=f"{name}_preprocess0")(s0)
    else:
        s0 = darts_ops.relu_conv_bn(channels, 1, 1, name=f"{name}_preprocess0")(s0)
    s1 = darts_ops.relu_conv_bn(channels, 1, 1, name=f"{name}_preprocess1")(s1)
    states = [s0, s1]
    for node in range(len(pairs) // 2):
        hs = []
        for slot in range(2):
            op_name, source = pairs[2 * node + slot]
            strides = 2 if reduction and source < 2 else 1
            layer_name = f"{name}_node{node + 2}_{slot}_{op_name}"
            h = darts_ops.make_op(op_name, channels, strides, affine=True, name=layer_name)(states[source])
            if drop_path > 0 and not (op_name == "skip_connect" and strides == 1):
                # DARTS drops every path except identities.
                h = DropPath(drop_path, name=f"{layer_name}_drop_path")(h)
            hs.append(h)
        states.append(keras.layers.Add(name=f"{name}_node{node + 2}")(hs))
    return keras.layers.Concatenate(name=f"{name}_output")([states[i] for i in concat])


def _auxiliary_head(x, num_classes, imagenet, name="auxiliary"):
    """DARTS `AuxiliaryHeadCIFAR` / `AuxiliaryHeadImageNet`.

    On CIFAR (8x8 input) exactly DARTS': avg-pool 5 stride 3 -> 2x2, 1x1 conv
    128, 2x2 conv 768. Smaller maps (tiny CPU inputs) pool over what there is.
    """
    size = int(x.shape[1])
    pool = min(5, size)
    x = keras.layers.ReLU(name=f"{name}_relu0")(x)
    x = keras.layers.AveragePooling2D(pool, strides=2 if imagenet else 3, name=f"{name}_pool")(x)
    x = keras.layers.Conv2D(128, 1, use_bias=False, name=f"{name}_conv1")(x)
    x = darts_ops.batch_norm(True, f"{name}_bn1")(x)
    x = keras.layers.ReLU(name=f"{name}_relu1")(x)
    x = keras.layers.Conv2D(768, min(2, int(x.shape[1])), use_bias=False, name=f"{name}_conv2")(x)
    x = darts_ops.batch_norm(True, f"{name}_bn2")(x)
    x = keras.layers.ReLU(name=f"{name}_relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_flatten")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=f"{name}_predictions")(x)


def eval_network(genotype, cells=20, channels=36, num_classes=10, input_shape=(32, 32, 3), auxiliary=True,
                 drop_path=0.2, auxiliary_weight=0.4, stem="auto", name=None):
    """Network of `cells` discrete cells for training from scratch (sec. 4.3-4.4).

    CIFAR form (DARTS `NetworkCIFAR`): 3x3 stem of `3 * channels`, reduction
    cells at 1/3 and 2/3 of the depth (channels doubled), global pooling and a
    softmax layer `"predictions"`. ImageNet form (`NetworkImageNet`, 224x224,
    14 cells, 48 channels): two stride-2 stems bringing the input to 1/8.
    With `auxiliary`, an auxiliary classifier after the cell at 2/3 depth is
    trained with weight `auxiliary_weight` (sec. 4.3: 0.4) by
    `AuxiliaryHeadModel`; the model's only output is still the main softmax.

    Args:
        genotype: `Genotype`, its dict form, or a name in `GENOTYPES`.
        cells: int. Number of cells. Defaults to `20`.
        channels: int. Initial channels C. Defaults to `36`.
        num_classes: int. Defaults to `10`.
        input_shape: tuple `(H, W, C)`. Defaults to `(32, 32, 3)`.
        auxiliary: bool. Auxiliary head. Defaults to `True`.
        drop_path: float. Drop-path rate in [0, 1). Defaults to `0.2`.
        auxiliary_weight: float. Auxiliary loss weight. Defaults to `0.4`.
        stem: str. `"cifar"`, `"imagenet"` or `"auto"` (ImageNet stems for
            inputs of 128 pixels or more). Defaults to `"auto"`.
        name: str. Model name. Defaults to `"darts_eval_network"`.

    Returns:
        A Keras model (an `AuxiliaryHeadModel` when `auxiliary`).

    Example:

    >>> model = eval_network("DARTS_V2", cells=20, channels=36)
    >>> model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    """
    if isinstance(genotype, str):
        if genotype not in GENOTYPES:
            raise ValueError(f"`genotype` must be one of {sorted(GENOTYPES)}. Received: genotype={genotype!r}")
        genotype = GENOTYPES[genotype]
    elif isinstance(genotype, dict):
        genotype = genotype_from_dict(genotype)
    elif not isinstance(genotype, Genotype):
        raise TypeError(f"`genotype` must be a Genotype, dict or name. Received: {type(genotype).__name__}")
    if not isinstance(cells, int) or cells < 3:
        raise ValueError(f"`cells` must be an int >= 3. Received: cells={cells!r}")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"`channels` must be a positive int. Received: channels={channels!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
    if not isinstance(drop_path, (int, float)) or not 0 <= drop_path < 1:
        raise ValueError(f"`drop_path` must be in [0, 1). Received: drop_path={drop_path!r}")
    if stem not in ("auto", "cifar", "imagenet"):
        raise ValueError(f"`stem` must be one of ['auto', 'cifar', 'imagenet']. Received: stem={stem!r}")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (H, W, C). Received: input_shape={input_shape}")
    imagenet = stem == "imagenet" or (stem == "auto" and min(input_shape[:2]) >= 128)
    bn = darts_ops.batch_norm

    inputs = keras.Input(input_shape, name="images")
    if imagenet:
        x = keras.layers.Conv2D(channels // 2, 3, strides=2, padding="same", use_bias=False, name="stem0_conv1")(inputs)
        x = bn(True, "stem0_bn1")(x)
        x = keras.layers.ReLU(name="stem0_relu")(x)
        x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False, name="stem0_conv2")(x)
        s0 = bn(True, "stem0_bn2")(x)
        x = keras.layers.ReLU(name="stem1_relu")(s0)
        x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False, name="stem1_conv")(x)
        s1 = bn(True, "stem1_bn")(x)
        c_curr, reduction_prev = channels, True
    else:
        x = keras.layers.Conv2D(3 * channels, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
        s0 = s1 = bn(True, "stem_bn")(x)
        c_curr, reduction_prev = channels, False
    reductions = BilevelSearchModel.reduction_indices(cells)
    aux_probs = None
    for i in range(cells):
        reduction = i in reductions
        if reduction:
            c_curr *= 2
        s0, s1 = s1, _cell(s0, s1, genotype, c_curr, reduction, reduction_prev, drop_path, f"cell_{i}")
        reduction_prev = reduction
        if auxiliary and i == 2 * cells // 3:
            aux_probs = _auxiliary_head(s1, num_classes, imagenet)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(s1)
    name = name or "darts_eval_network"
    if aux_probs is None:
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
        return keras.Model(inputs, outputs, name=name)
    main = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="main_predictions")(x)
    outputs = AuxiliaryTap(name="predictions")([main, aux_probs])
    return AuxiliaryHeadModel(inputs, outputs, auxiliary_weight=auxiliary_weight, name=name)


def count_params_without_auxiliary(model):
    """Trainable parameters outside the auxiliary head (how DARTS reports size)."""
    return int(sum(
        np.prod(w.shape) for layer in model.layers if not layer.name.startswith("auxiliary")
        for w in layer.trainable_weights
    ))


# -- search network ------------------------------------------------------


def search_network(cells=8, channels=16, num_classes=10, input_shape=(32, 32, 3), edge_mode="gdas", **kwargs):
    """The cell-search supernet (sec. 3.1, 4.2: 8 cells, C = 16 on CIFAR-10).

    Args:
        cells: int. Defaults to `8`.
        channels: int. Defaults to `16`.
        num_classes: int. Defaults to `10`.
        input_shape: tuple. Defaults to `(32, 32, 3)`.
        edge_mode: str. `"gdas"` (sample one op per edge, EoiNAS/GDAS),
            `"darts"` (softmax mixture) or `"gumbel_soft"`. Defaults to `"gdas"`.
        **kwargs: more `BilevelSearchModel` arguments.

    Returns:
        `keras_nas.eoinas.BilevelSearchModel`.
    """
    return BilevelSearchModel(cells=cells, channels=channels, num_classes=num_classes, input_shape=input_shape,
                              edge_mode=edge_mode, **kwargs)


# -- drawing -------------------------------------------------------------


def plot_genotype(genotype, path, title=None):
    """Draws the normal and the reduction cell side by side as a PNG (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # An arc diagram: the nodes on one line in DARTS' order, each node's first
    # input arcing above the line and its second below, so no edge crosses a
    # node and every op name sits alone at the top of its own arc.
    fig, axes = plt.subplots(2, 1, figsize=(10, 7.5))
    for ax, kind in zip(axes, ("normal", "reduce")):
        pairs = getattr(genotype, kind)
        concat = getattr(genotype, f"{kind}_concat")
        steps = len(pairs) // 2
        names = ["$c_{k-2}$", "$c_{k-1}$"] + [str(i) for i in range(steps)] + ["$c_k$"]
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(-1.6, 1.6)
        ax.axis("off")
        fig.canvas.draw()  # the axes' display transform is final from here on
        to_display, to_data = ax.transData.transform, ax.transData.inverted().transform
        for edge, (op, source) in enumerate(pairs):
            target = edge // 2 + 2
            rad = -0.45 if edge % 2 == 0 else 0.45  # negative: above the line (left to right)
            ax.annotate("", xy=(target, 0), xytext=(source, 0),
                        arrowprops={"arrowstyle": "-|>", "color": "0.35", "shrinkA": 11, "shrinkB": 11,
                                    "connectionstyle": f"arc3,rad={rad}"})
            # The apex of matplotlib's arc3 curve: midpoint + rad/2 * (dy, -dx), in display units.
            (x0, y0), (x1, y1) = to_display((source, 0)), to_display((target, 0))
            apex = to_data(((x0 + x1) / 2 + rad / 2 * (y1 - y0), (y0 + y1) / 2 - rad / 2 * (x1 - x0)))
            ax.text(*apex, op, fontsize=8, ha="center", va="bottom" if rad < 0 else "top", color="tab:blue",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9})
        for node, name in enumerate(names):
            color = "lightgreen" if node < 2 else ("khaki" if node == len(names) - 1 else "lightblue")
            ax.text(node, 0, name, ha="center", va="center", fontsize=10, bbox={"boxstyle": "round", "fc": color})
        ax.text(len(names) - 1, -0.35, "concat of " + ", ".join(str(i - 2) for i in concat), ha="center",
                va="top", fontsize=8, color="0.35")
        ax.set_title(f"{kind} cell")
    if title:
        fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    io.save_figure(fig, path)
    return path


__all__ = [
    "Genotype", "GENOTYPES", "PRIMITIVES", "OPS", "derive_genotype", "eval_network", "search_network",
    "load_genotype", "save_genotype", "genotype_to_dict", "genotype_from_dict", "plot_genotype",
    "count_params_without_auxiliary",
]
