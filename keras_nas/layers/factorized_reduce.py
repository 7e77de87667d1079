"""DARTS' factorized reduction: halve the resolution with two offset 1x1 convolutions."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_nas")
class FactorizedReduce(keras.layers.Layer):
    """ReLU, two stride-2 1x1 convolutions on pixel grids offset by one, concat, BN.

    Used by DARTS as `skip_connect` in a reduction cell and to bring the
    output of the cell before a reduction cell to the new resolution. Each
    convolution gives half of `filters`, so no pixel is skipped entirely.
    Odd sizes are padded by one row/column before the offset so both halves
    have the same size (the DARTS code requires even sizes).

    Args:
        filters: int. Output channels (even). 
        affine: bool. Learn the BatchNorm scale and offset (False in the search
            network, as in DARTS). Defaults to `True`.
        **kwargs: base `Layer` arguments.

    Example:

    >>> FactorizedReduce(16)(np.ones((2, 8, 8, 8))).shape
    (2, 4, 4, 16)
    """

    def __init__(self, filters, affine=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 2 or filters % 2:
            raise ValueError(f"`filters` must be an even int >= 2. Received: filters={filters!r}")
        self.filters = filters
        self.affine = affine
        half = filters // 2
        self.conv_1 = keras.layers.Conv2D(half, 1, strides=2, use_bias=False, name="conv_1")
        self.conv_2 = keras.layers.Conv2D(half, 1, strides=2, use_bias=False, name="conv_2")
        self.bn = keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, center=affine, scale=affine, name="bn"
        )

    def build(self, input_shape):
        self.conv_1.build(input_shape)
        self.conv_2.build(input_shape)
        out = self.conv_1.compute_output_shape(input_shape)
        self.bn.build(out[:-1] + (self.filters,))

    def call(self, inputs, training=None):
        x = ops.relu(inputs)
        # Shift by one pixel; pad first so odd sizes give matching halves.
        shifted = ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        out = ops.concatenate([self.conv_1(x), self.conv_2(shifted)], axis=-1)
        return self.bn(out, training=training)

    def compute_output_shape(self, input_shape):
        out = self.conv_1.compute_output_shape(input_shape)
        return out[:-1] + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "affine": self.affine}
