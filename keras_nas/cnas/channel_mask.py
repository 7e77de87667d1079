"""CNAS channel mask: a fixed 0/1 gate per input channel of a searchable edge."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_nas")
class ChannelMask(keras.layers.Layer):
    """Multiplies each input channel by a non-trainable 0/1 mask.

    The mask of a CNAS edge (paper 004, Figure 1(c)): a zeroed channel is a
    removed vertex, so every weight it feeds is removed as well. The mask is
    a non-trainable variable (saved with the weights, restored on resume);
    the Taylor saliency of a channel is the gradient of the loss with respect
    to its mask entry (`keras_nas.cnas.taylor_saliency`).

    With `return_alive=True` the layer also returns the edge's "alive" gate
    `max(mask)` (no gradient) as a `(batch, 1, 1, 1)` tensor: the edge's output
    is multiplied by it, so an edge whose inputs are all zeroed gives exact
    zeros (its BatchNorm offset would otherwise survive) and disappears, as in
    the physically sparse model.

    Args:
        return_alive: bool. Also return the alive gate. Defaults to `False`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: tensor `(batch, ..., channels)`.

    Example:

    >>> layer = ChannelMask()
    >>> y = layer(np.ones((2, 4, 4, 3)))
    >>> layer.set_mask([1, 0, 1])
    >>> layer(np.ones((1, 1, 1, 3))).numpy().ravel().tolist()
    [1.0, 0.0, 1.0]
    """

    def __init__(self, return_alive=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(return_alive, bool):
            raise TypeError(f"`return_alive` must be a bool. Received: return_alive={return_alive!r}")
        self.return_alive = return_alive
        self.spatial_size = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel axis of the input must be known. Received: input_shape={input_shape}")
        # Elements a channel holds per example: the Taylor term is a mean over them.
        self.spatial_size = int(np.prod([d for d in input_shape[1:-1] if d is not None] or [1]))
        self.mask = self.add_weight(
            name="mask", shape=(int(channels),), initializer="ones", trainable=False, dtype="float32"
        )

    def set_mask(self, values):
        """Assigns a 0/1 vector (length = channels)."""
        values = np.asarray(values, dtype="float32").reshape(-1)
        if values.shape != tuple(self.mask.shape) or not np.all((values == 0) | (values == 1)):
            raise ValueError(
                f"`values` must be a 0/1 vector of length {self.mask.shape[0]}. Received: {values.tolist()}"
            )
        self.mask.assign(values)

    def call(self, inputs):
        mask = ops.cast(self.mask, inputs.dtype)
        outputs = inputs * mask
        if not self.return_alive:
            return outputs
        alive = ops.stop_gradient(ops.max(mask))
        return outputs, ops.ones_like(inputs[:, :1, :1, :1]) * alive

    def compute_output_shape(self, input_shape):
        if not self.return_alive:
            return tuple(input_shape)
        return tuple(input_shape), (input_shape[0],) + (1,) * (len(input_shape) - 1)

    def get_config(self):
        return {**super().get_config(), "return_alive": self.return_alive}
