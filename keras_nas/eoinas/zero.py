"""The `none` operation of the DARTS space."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_nas")
class Zero(keras.layers.Layer):
    """Outputs zeros shaped like the input subsampled by `strides`.

    DARTS' `none` op: an edge that carries no information. Its output has the
    spatial size the other ops of the edge produce, so it can be summed with
    them (or chosen by the `Case` op of a `GumbelEdge`).

    Args:
        strides: int. 1 (same size) or 2 (half size, as in a reduction cell).
            Defaults to `1`.
        **kwargs: base `Layer` arguments (`name`, ...).

    Example:

    >>> Zero(strides=2)(np.ones((1, 8, 8, 3))).shape
    (1, 4, 4, 3)
    """

    def __init__(self, strides=1, **kwargs):
        super().__init__(**kwargs)
        if strides not in (1, 2):
            raise ValueError(f"`strides` must be 1 or 2. Received: strides={strides!r}")
        self.strides = strides

    def call(self, inputs):
        return ops.zeros_like(inputs[:, :: self.strides, :: self.strides, :])

    def compute_output_shape(self, input_shape):
        def sub(n):
            return None if n is None else (n + self.strides - 1) // self.strides

        return (input_shape[0], sub(input_shape[1]), sub(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}
