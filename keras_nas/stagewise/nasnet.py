"""NASNet-A networks whose stages each have their own number of cells (paper 000)."""

import keras
from keras import layers
from keras_nas.stagewise.resnet import _check_classifier, _check_depths, _regularizer

# NASNet-A cells (Zoph et al. 2018, Fig. 4); wiring as in Keras' NASNet
# application. BN settings of the reference TF-slim CIFAR models
# (`nasnet_cifar_arg_scope`: decay 0.9, epsilon 1e-5); the ImageNet models'
# 0.9997 leaves the moving statistics at their initial values for thousands
# of steps, so short runs evaluate at chance.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _bn(name):
    return layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _sep_block(x, filters, kernel_size, strides, regularizer, name):
    """relu - separable conv - BN, twice (the first strided)."""
    for i in (1, 2):
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
        x = layers.SeparableConv2D(
            filters,
            kernel_size,
            strides=strides if i == 1 else 1,
            padding="same",
            use_bias=False,
            depthwise_regularizer=regularizer,
            pointwise_regularizer=regularizer,
            name=f"{name}_sep{i}",
        )(x)
        x = _bn(f"{name}_bn{i}")(x)
    return x


def _conv1x1(x, filters, regularizer, name):
    x = layers.ReLU(name=f"{name}_relu")(x)
    x = layers.Conv2D(
        filters, 1, padding="same", use_bias=False, kernel_initializer="he_normal",
        kernel_regularizer=regularizer, name=f"{name}_conv",
    )(x)
    return _bn(f"{name}_bn")(x)


def _adjust(p, ip, filters, regularizer, name):
    """Brings the previous-previous input `p` to the shape of `ip`."""
    if p is None:
        p = ip
    if p.shape[1] != ip.shape[1]:
        # Factorized reduction: two offset stride-2 1x1 paths, concatenated.
        p = layers.ReLU(name=f"{name}_relu")(p)
        p1 = layers.AveragePooling2D(1, strides=2, name=f"{name}_pool1")(p)
        p1 = layers.Conv2D(filters // 2, 1, use_bias=False, kernel_initializer="he_normal",
                           kernel_regularizer=regularizer, name=f"{name}_conv1")(p1)
        p2 = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_shift_pad")(p)
        p2 = layers.Cropping2D(((1, 0), (1, 0)), name=f"{name}_shift_crop")(p2)
        p2 = layers.AveragePooling2D(1, strides=2, name=f"{name}_pool2")(p2)
        p2 = layers.Conv2D(filters - filters // 2, 1, use_bias=False, kernel_initializer="he_normal",
                           kernel_regularizer=regularizer, name=f"{name}_conv2")(p2)
        p = layers.Concatenate(name=f"{name}_concat")([p1, p2])
        return _bn(f"{name}_bn")(p)
    if p.shape[-1] != filters:
        return _conv1x1(p, filters, regularizer, name)
    return p


def apply_normal_cell(ip, p, filters, regularizer, name):
    """NASNet-A normal cell; output has `6 * filters` channels."""
    p = _adjust(p, ip, filters, regularizer, f"{name}_adjust")
    h = _conv1x1(ip, filters, regularizer, f"{name}_h")
    x1 = layers.Add(name=f"{name}_add1")([
        _sep_block(h, filters, 5, 1, regularizer, f"{name}_left1"),
        _sep_block(p, filters, 3, 1, regularizer, f"{name}_right1"),
    ])
    x2 = layers.Add(name=f"{name}_add2")([
        _sep_block(p, filters, 5, 1, regularizer, f"{name}_left2"),
        _sep_block(p, filters, 3, 1, regularizer, f"{name}_right2"),
    ])
    x3 = layers.Add(name=f"{name}_add3")([
        layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_left3")(h), p,
    ])
    x4 = layers.Add(name=f"{name}_add4")([
        layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_left4")(p),
        layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_right4")(p),
    ])
    x5 = layers.Add(name=f"{name}_add5")([
        _sep_block(h, filters, 3, 1, regularizer, f"{name}_left5"), h,
    ])
    return layers.Concatenate(name=f"{name}_out")([p, x1, x2, x3, x4, x5])


def apply_reduction_cell(ip, p, filters, regularizer, name):
    """NASNet-A reduction cell (stride 2); output has `4 * filters` channels."""
    p = _adjust(p, ip, filters, regularizer, f"{name}_adjust")
    h = _conv1x1(ip, filters, regularizer, f"{name}_h")
    x1 = layers.Add(name=f"{name}_add1")([
        _sep_block(h, filters, 5, 2, regularizer, f"{name}_left1"),
        _sep_block(p, filters, 7, 2, regularizer, f"{name}_right1"),
    ])
    x2 = layers.Add(name=f"{name}_add2")([
        layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_left2")(h),
        _sep_block(p, filters, 7, 2, regularizer, f"{name}_right2"),
    ])
    x3 = layers.Add(name=f"{name}_add3")([
        layers.AveragePooling2D(3, strides=2, padding="same", name=f"{name}_left3")(h),
        _sep_block(p, filters, 5, 2, regularizer, f"{name}_right3"),
    ])
    x4 = layers.Add(name=f"{name}_add4")([
        layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_left4")(x1), x2,
    ])
    x5 = layers.Add(name=f"{name}_add5")([
        _sep_block(x1, filters, 3, 1, regularizer, f"{name}_left5"),
        layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_right5")(h),
    ])
    return layers.Concatenate(name=f"{name}_out")([x2, x3, x4, x5])


def stage_nasnet(
    stage_cells,
    *,
    filters=32,
    stem_multiplier=3,
    input_shape=(32, 32, 3),
    num_classes=10,
    l2_regularization=0.0,
    name=None,
):
    """A CIFAR NASNet-A with a free number of normal cells in every stage.

    The cell search space of stage-wise NAS (Jordao et al. 2020, Table IV):
    a 3x3 stem conv (`stem_multiplier * filters` channels), then per stage
    `stage_cells[s]` NASNet-A normal cells (Zoph et al. 2018) with
    `filters * 2**s` filters, a NASNet-A reduction cell between stages,
    ReLU, global average pooling and a softmax layer. Filters double at each
    reduction. With `filters=32` (NASNet-A 6 @ 768), `stage_nasnet((6, 6, 6))`
    is the NASNet241 of Table IV (3.3 M parameters). No auxiliary head and no
    drop path: the paper trains cells with plain SGD.

    Stable names: `stem_*`, `stage{s}_cell{b}_*` (0-based), `reduce{s}_*`
    (the reduction cell after stage `s`), `head_*`, `predictions`.

    Args:
        stage_cells: list of int. Normal cells per stage (`m_i`).
        filters: int. Filters `F` of the first stage's cells. Defaults to
            `32`.
        stem_multiplier: int. Stem conv filters = `stem_multiplier * F`
            (TF-slim CIFAR setting). Defaults to `3`.
        input_shape: tuple. Defaults to `(32, 32, 3)`.
        num_classes: int. Defaults to `10`.
        l2_regularization: float. L2 penalty on every kernel. Defaults to `0`.
        name: str. Defaults to `nasnet_<d1>_<d2>_...`.

    Returns:
        A `keras.Model` from images to class probabilities.

    Example:

    ```python
    model = stage_nasnet((2, 3, 2), filters=8, input_shape=(8, 8, 1))
    ```
    """

    depths = _check_depths(stage_cells)
    for arg, value in (("filters", filters), ("stem_multiplier", stem_multiplier)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{arg}` must be a positive int. Received: {arg}={value!r}")
    input_shape = _check_classifier(input_shape, num_classes)
    regularizer = _regularizer(l2_regularization)

    inputs = keras.Input(input_shape, name="images")
    x = layers.Conv2D(
        stem_multiplier * filters, 3, padding="same", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer=regularizer, name="stem_conv",
    )(inputs)
    x = _bn("stem_bn")(x)
    p = None
    for s, cells in enumerate(depths):
        stage_filters = filters * 2**s
        if s > 0:
            x, p = apply_reduction_cell(x, p, stage_filters, regularizer, f"reduce{s - 1}"), x
        for b in range(cells):
            x, p = apply_normal_cell(x, p, stage_filters, regularizer, f"stage{s}_cell{b}"), x
    x = layers.ReLU(name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = layers.Dense(
        num_classes, activation="softmax", kernel_regularizer=regularizer,
        dtype="float32", name="predictions",
    )(x)
    name = name or "nasnet_" + "_".join(str(d) for d in depths)
    return keras.Model(inputs, outputs, name=name)
