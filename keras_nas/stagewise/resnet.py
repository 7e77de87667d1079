"""ResNets whose stages each have their own depth (stage-wise NAS, paper 000)."""

import keras
from keras import layers

BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("padding", "projection")
# He et al. 2016: CIFAR ResNets use 16/32/64 filters, ImageNet ResNets 64..512
# (x4 output expansion in bottleneck blocks).
_CIFAR_WIDTHS = (16, 32, 64)
_IMAGENET_WIDTHS = (64, 128, 256, 512)
_EXPANSION = 4


def default_widths(stages, block="basic"):
    """Filters of each stage when `stage_resnet` is given no `widths`: the family's, doubling after them.

    >>> default_widths(4), default_widths(5, "bottleneck")
    ([16, 32, 64, 128], [64, 128, 256, 512, 1024])
    """
    base = _CIFAR_WIDTHS if block == "basic" else _IMAGENET_WIDTHS
    return [base[min(i, len(base) - 1)] * 2 ** max(0, i - len(base) + 1) for i in range(stages)]


def _check_depths(stage_depths):
    if isinstance(stage_depths, (str, bytes)) or not hasattr(stage_depths, "__len__"):
        raise TypeError(
            "`stage_depths` must be a list/tuple of positive ints (modules per "
            f"stage). Received: stage_depths={stage_depths!r}"
        )
    depths = list(stage_depths)
    if not depths or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError(
            "`stage_depths` must be a non-empty list of positive ints. "
            f"Received: stage_depths={stage_depths!r}"
        )
    return depths


def _check_classifier(input_shape, num_classes):
    """`input_shape` as a tuple if it is (height, width, channels) of positive ints and `num_classes` >= 2."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or any(not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive ints. "
            f"Received: input_shape={input_shape!r}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
    return input_shape


def _regularizer(l2_regularization):
    if not isinstance(l2_regularization, (int, float)) or l2_regularization < 0:
        raise ValueError(
            "`l2_regularization` must be a float >= 0. Received: "
            f"l2_regularization={l2_regularization!r}"
        )
    return keras.regularizers.L2(l2_regularization) if l2_regularization else None


def _conv(filters, kernel_size, strides, name, regularizer):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
        name=name,
    )


def _bn(name):
    return layers.BatchNormalization(epsilon=1.001e-5, name=name)


def _padding_shortcut(x, filters, strides, name):
    """Option A of He et al. 2016: subsample, then zero-pad the new channels.

    Built from stock layers (pooling, reshape, 3-D zero padding over the
    channel axis) so the model saves and serves without custom objects.
    """
    if strides > 1:
        x = layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample")(x)
    extra = filters - x.shape[-1]
    if extra:
        h, w, c = x.shape[1:]
        x = layers.Reshape((h, w, c, 1), name=f"{name}_expand")(x)
        x = layers.ZeroPadding3D(
            ((0, 0), (0, 0), (extra // 2, extra - extra // 2)), name=f"{name}_pad"
        )(x)
        x = layers.Reshape((h, w, filters), name=f"{name}_squeeze")(x)
    return x


def _conv_bn(x, filters, kernel_size, strides, regularizer, name, index, relu=True):
    """`{name}_conv{index}` -> `{name}_bn{index}` (-> `{name}_relu{index}`)."""
    x = _conv(filters, kernel_size, strides, f"{name}_conv{index}", regularizer)(x)
    x = _bn(f"{name}_bn{index}")(x)
    return layers.ReLU(name=f"{name}_relu{index}")(x) if relu else x


def _add_shortcut(x, y, strides, shortcut, regularizer, name):
    """`relu(shortcut(x) + y)`; the shortcut is the identity unless the shape changes."""
    filters = y.shape[-1]
    if strides > 1 or x.shape[-1] != filters:
        if shortcut == "projection":
            x = _conv(filters, 1, strides, f"{name}_shortcut_conv", regularizer)(x)
            x = _bn(f"{name}_shortcut_bn")(x)
        else:
            x = _padding_shortcut(x, filters, strides, f"{name}_shortcut")
    x = layers.Add(name=f"{name}_add")([x, y])
    return layers.ReLU(name=f"{name}_out")(x)


def apply_basic_block(x, filters, strides, shortcut, regularizer, name):
    """Two 3x3 convolutions with an identity (or downsampling) shortcut."""
    y = _conv_bn(x, filters, 3, strides, regularizer, name, 1)
    y = _conv_bn(y, filters, 3, 1, regularizer, name, 2, relu=False)
    return _add_shortcut(x, y, strides, shortcut, regularizer, name)


def apply_bottleneck_block(x, filters, strides, shortcut, regularizer, name):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a projection shortcut (option B)."""
    y = _conv_bn(x, filters, 1, strides, regularizer, name, 1)
    y = _conv_bn(y, filters, 3, 1, regularizer, name, 2)
    y = _conv_bn(y, filters * _EXPANSION, 1, 1, regularizer, name, 3, relu=False)
    return _add_shortcut(x, y, strides, shortcut, regularizer, name)


def stage_resnet(
    stage_depths,
    *,
    block="basic",
    widths=None,
    input_shape=(32, 32, 3),
    num_classes=10,
    shortcut=None,
    l2_regularization=0.0,
    name=None,
):
    """A ResNet with a free number of residual blocks in every stage.

    The search space of stage-wise NAS (Jordao et al. 2020, Fig. 2): stages of
    residual modules operating on one resolution, separated by a stride-2
    first block. Two families (He et al. 2016):

    - `block="basic"` (CIFAR): a 3x3 stem conv with `widths[0]` filters, basic
      blocks of two 3x3 convs, widths 16/32/64 by default, global average
      pooling and a softmax layer. `stage_resnet((7, 7, 7))`, `((9, 9, 9))`
      and `((18, 18, 18))` are ResNet-44, -56 and -110 (paper 000 Table III:
      0.66 M, 0.86 M and 1.7 M parameters).
    - `block="bottleneck"` (ImageNet): 7x7 stride-2 stem and 3x3 stride-2 max
      pooling, bottleneck blocks (x4 expansion), widths 64/128/256/512;
      `stage_resnet((3, 4, 6, 3), block="bottleneck", input_shape=(224, 224,
      3), num_classes=1000)` is ResNet-50.

    Shortcuts that change shape are zero-padded identities (`"padding"`,
    He et al.'s option A, the CIFAR default: Table III's parameter counts) or
    1x1 conv + BN projections (`"projection"`, option B, the ImageNet
    default; the paper's reference code uses a 1x1 projection on CIFAR too,
    which adds 2,656 parameters to every CIFAR ResNet and still rounds to
    Table III's numbers).

    Every layer has a stable name: `stem_*`, then
    `stage{s}_block{b}_{conv1,bn1,relu1,conv2,...,add,out}` with 0-based `s`
    and `b`, then `head_pool` and `predictions`. Block `b` of stage `s` has
    the same weight shapes in every network of one family, so weights move
    between networks of different depths
    (`keras_nas.stagewise.weight_transfer.transfer_weights`).

    Args:
        stage_depths: list of int. Residual blocks per stage (the search's
            `m_i`); its length is the number of stages `S`.
        block: str. `"basic"` or `"bottleneck"`. Defaults to `"basic"`.
        widths: list of int, one per stage. Filters of each stage (bottleneck:
            before expansion). Defaults to 16, 32, 64, ... (basic) or
            64, 128, 256, 512, ... (bottleneck), doubling after the 3rd/4th.
        input_shape: tuple. `(height, width, channels)`. Defaults to
            `(32, 32, 3)`.
        num_classes: int. Defaults to `10`.
        shortcut: str or None. `"padding"` or `"projection"`. Defaults to
            `"padding"` for basic blocks and `"projection"` for bottlenecks.
        l2_regularization: float. L2 penalty on every conv kernel and the
            classifier (the reference code uses `1e-4`). Defaults to `0`.
        name: str. Model name. Defaults to `resnet_<d1>_<d2>_...`.

    Returns:
        A `keras.Model` mapping float32 images to class probabilities (last
        layer `"predictions"`, float32 under any dtype policy).

    Example:

    ```python
    model = stage_resnet((6, 8, 6), input_shape=(32, 32, 3), num_classes=10)
    model.get_layer("stage1_block7_out")  # last block of the middle stage
    ```
    """
    depths = _check_depths(stage_depths)
    if block not in BLOCKS:
        raise ValueError(f"`block` must be one of {list(BLOCKS)}. Received: block={block!r}")
    if shortcut is None:
        shortcut = "padding" if block == "basic" else "projection"
    if shortcut not in SHORTCUTS:
        raise ValueError(
            f"`shortcut` must be one of {list(SHORTCUTS)}. Received: shortcut={shortcut!r}"
        )
    if widths is None:
        widths = default_widths(len(depths), block)
    widths = list(widths)
    if len(widths) != len(depths) or any(
        isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths
    ):
        raise ValueError(
            "`widths` must be a list of positive ints with one entry per stage "
            f"({len(depths)}). Received: widths={widths!r}"
        )
    input_shape = _check_classifier(input_shape, num_classes)
    regularizer = _regularizer(l2_regularization)

    inputs = keras.Input(input_shape, name="images")
    if block == "basic":
        x = _conv(widths[0], 3, 1, "stem_conv", regularizer)(inputs)
        x = _bn("stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
        apply_block = apply_basic_block
    else:
        x = _conv(widths[0], 7, 2, "stem_conv", regularizer)(inputs)
        x = _bn("stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
        apply_block = apply_bottleneck_block
    for s, (depth, filters) in enumerate(zip(depths, widths)):
        for b in range(depth):
            strides = 2 if s > 0 and b == 0 else 1
            x = apply_block(x, filters, strides, shortcut, regularizer, f"stage{s}_block{b}")
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = layers.Dense(
        num_classes,
        activation="softmax",
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
        dtype="float32",
        name="predictions",
    )(x)
    name = name or "resnet_" + "_".join(str(d) for d in depths)
    return keras.Model(inputs, outputs, name=name)


def stage_resnet_depth(stage_depths, block="basic"):
    """Weighted layers on the main path: `2 sum(m) + 2` (basic) or `3 sum(m) + 2`.

    The convention of the ResNet names (ResNet-56 = 2 * 27 + 2).
    """
    per_block = 2 if block == "basic" else 3
    return per_block * sum(stage_depths) + 2
