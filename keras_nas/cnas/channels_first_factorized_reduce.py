"""DARTS' factorized reduction on channels-first tensors (the channels-first CNAS networks)."""

import keras
from keras import ops

from keras_nas.layers.factorized_reduce import FactorizedReduce


@keras.saving.register_keras_serializable(package="keras_nas")
class ChannelsFirstFactorizedReduce(FactorizedReduce):
    """`FactorizedReduce` for `(batch, channels, height, width)` tensors.

    Same computation and weights (`conv_1`, `conv_2`, `bn`) as
    `FactorizedReduce`: ReLU, two stride-2 1x1 convolutions on pixel grids
    offset by one, concatenation, BatchNorm. Used by
    `keras_nas.cnas.channel_nasnet` with `data_format="channels_first"`,
    where weights are copied by layer name from the channels-last network.

    The reduction itself runs channels last between two transposes:
    measured on a CPU (TF 2.21, oneDNN), a channels-first 1x1 convolution at
    stride 2 took ~10x its channels-last time and every channels-first
    subsampling (strided slice, 1x1 pooling) several times more than the
    transposes. On even sizes the offset grid is a slice of the input
    (no padded copy; the padded row and column are never sampled).

    Args:
        filters: int. Output channels (even).
        affine: bool. Learn the BatchNorm scale and offset. Defaults to `True`.
        **kwargs: base `Layer` arguments.

    Example:

    >>> ChannelsFirstFactorizedReduce(16)(np.ones((2, 8, 8, 8))).shape
    (2, 16, 4, 4)
    """

    def build(self, input_shape):
        super().build(_channels_last(input_shape))

    def call(self, inputs, training=None):
        x = ops.relu(ops.transpose(inputs, (0, 2, 3, 1)))
        height, width = x.shape[1], x.shape[2]
        if height is not None and width is not None and height % 2 == 0 and width % 2 == 0:
            shifted = x[:, 1:, 1:, :]
        else:  # pad first so odd sizes give matching halves
            shifted = ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        out = ops.concatenate([self.conv_1(x), self.conv_2(shifted)], axis=-1)
        return ops.transpose(self.bn(out, training=training), (0, 3, 1, 2))

    def compute_output_shape(self, input_shape):
        out = super().compute_output_shape(_channels_last(input_shape))
        return (out[0], out[3], out[1], out[2])


def _channels_last(shape):
    return (shape[0], shape[2], shape[3], shape[1])
