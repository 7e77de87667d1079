"""The eight candidate operations of the DARTS cell space as a name -> factory table.

Every factory takes `(channels, strides, affine, name)` and returns an unbuilt
Keras layer mapping `(batch, H, W, channels)` to `(batch, H / strides,
W / strides, channels)`. `affine=False` is the search-network setting (DARTS
`MixedOp`): BatchNorm without scale/offset, and pooling followed by such a
BatchNorm so its output scale matches the convolutions.

BatchNorm uses PyTorch's defaults (momentum 0.1 -> Keras 0.9, epsilon 1e-5),
convolutions have no bias, as in the DARTS reference code.
"""

import keras

from keras_nas.eoinas.genotypes import PRIMITIVES  # noqa: F401
from keras_nas.eoinas.zero import Zero
from keras_nas.layers.factorized_reduce import FactorizedReduce


def batch_norm(affine, name):
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, center=affine, scale=affine, name=name
    )


def relu_conv_bn(channels, kernel_size, strides, affine=True, name=None):
    """ReLU -> Conv (no bias) -> BN: DARTS `ReLUConvBN` (cell preprocessing)."""
    return keras.Sequential(
        [
            keras.layers.ReLU(name="relu"),
            keras.layers.Conv2D(channels, kernel_size, strides=strides, padding="same",
                                use_bias=False, name="conv"),
            batch_norm(affine, "bn"),
        ],
        name=name,
    )


def _depthwise(kernel_size, strides, dilation, name):
    layers = [keras.layers.DepthwiseConv2D(kernel_size, padding="same", dilation_rate=dilation,
                                           use_bias=False, name=name)]
    if strides > 1:
        if dilation > 1:
            # Keras has no strided dilated depthwise conv; a stride-1 conv
            # subsampled by a 1x1 max-pool of stride 2 gives the same values
            # as PyTorch's strided dilated conv with padding=dilation.
            layers.append(keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample"))
        else:
            layers[0] = keras.layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same",
                                                     use_bias=False, name=name)
    return layers


def _relu_depthwise_pointwise_bn(channels, kernel_size, strides, dilation, affine, suffix=""):
    """The DARTS unit both conv ops repeat: ReLU, depthwise, pointwise 1x1, BN."""
    return [keras.layers.ReLU(name=f"relu{suffix}"),
            *_depthwise(kernel_size, strides, dilation, f"depthwise{suffix}"),
            keras.layers.Conv2D(channels, 1, use_bias=False, name=f"pointwise{suffix}"),
            batch_norm(affine, f"bn{suffix}")]


def sep_conv(kernel_size):
    """DARTS `SepConv`: (ReLU, depthwise, pointwise, BN) twice; stride on the first."""

    def factory(channels, strides, affine=True, name=None):
        return keras.Sequential(
            _relu_depthwise_pointwise_bn(channels, kernel_size, strides, 1, affine, "_1")
            + _relu_depthwise_pointwise_bn(channels, kernel_size, 1, 1, affine, "_2"),
            name=name,
        )

    return factory


def dil_conv(kernel_size):
    """DARTS `DilConv`: ReLU, depthwise with dilation 2, pointwise, BN."""

    def factory(channels, strides, affine=True, name=None):
        return keras.Sequential(
            _relu_depthwise_pointwise_bn(channels, kernel_size, strides, 2, affine), name=name)

    return factory


def pool(kind):
    """3x3 pooling (average pooling excludes the padding, as `count_include_pad=False`)."""
    layer_class = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D

    def factory(channels, strides, affine=True, name=None):
        layers = [layer_class(3, strides=strides, padding="same", name="pool")]
        if not affine:
            layers.append(batch_norm(False, "bn"))
        return keras.Sequential(layers, name=name)

    return factory


def skip_connect(channels, strides, affine=True, name=None):
    """Identity, or `FactorizedReduce` when the edge halves the resolution."""

    if strides == 1:
        return keras.layers.Identity(name=name)
    return FactorizedReduce(channels, affine=affine, name=name)


def zero(channels, strides, affine=True, name=None):

    return Zero(strides=strides, name=name)


OPS = {
    "none": zero,
    "max_pool_3x3": pool("max"),
    "avg_pool_3x3": pool("avg"),
    "skip_connect": skip_connect,
    "sep_conv_3x3": sep_conv(3),
    "sep_conv_5x5": sep_conv(5),
    "dil_conv_3x3": dil_conv(3),
    "dil_conv_5x5": dil_conv(5),
}


def make_op(op_name, channels, strides, affine=True, name=None):
    """Builds the op `op_name` of the table; errors list the valid names."""
    if op_name not in OPS:
        raise ValueError(f"`op_name` must be one of {list(OPS)}. Received: op_name={op_name!r}")
    if strides not in (1, 2):
        raise ValueError(f"`strides` must be 1 or 2. Received: strides={strides!r}")
    return OPS[op_name](channels, strides, affine=affine, name=name or op_name)
