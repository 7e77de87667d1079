"""Keeps a fixed subset of channels: the input of a physically sparse CNAS edge."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_nas")
class ChannelSelect(keras.layers.Layer):
    """Gathers the given channels (last axis) of its input, in order.

    The materialised CNAS model (paper 004, sec. 2.1: "partial matrix
    operations") feeds each edge only its surviving input channels; this
    layer picks them from the node's channel pool, so the edge's kernels
    hold only the weights of those channels. Plain `tf.gather`: serves
    under TensorFlow alone.

    Args:
        indices: list of int. Channels to keep (non-empty, each >= 0).
        **kwargs: base `Layer` arguments.

    Example:

    >>> ChannelSelect([2, 0])(np.arange(3.0).reshape(1, 1, 1, 3)).numpy().ravel().tolist()
    [2.0, 0.0]
    """

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        indices = [int(i) for i in indices] if isinstance(indices, (list, tuple)) else indices
        if not isinstance(indices, list) or not indices or min(indices) < 0:
            raise ValueError(f"`indices` must be a non-empty list of ints >= 0. Received: indices={indices!r}")
        self.indices = indices

    def build(self, input_shape):
        if input_shape[-1] is not None and max(self.indices) >= input_shape[-1]:
            raise ValueError(
                f"`indices` must be < the {input_shape[-1]} input channels. Received: max index {max(self.indices)}"
            )

    def call(self, inputs):
        return ops.take(inputs, self.indices, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (len(self.indices),)

    def get_config(self):
        return {**super().get_config(), "indices": list(self.indices)}
