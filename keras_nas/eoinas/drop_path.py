"""Drop-path (stochastic depth per sample) for DARTS evaluation cells."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_nas")
class DropPath(keras.layers.Layer):
    """Zeroes a whole sample's path with probability `rate` while training.

    Kept paths are divided by `1 - rate` (DARTS `drop_path`). The rate lives
    in a non-trainable variable so a callback can raise it over training
    (DARTS: `drop_path_prob * epoch / epochs`) without re-tracing.

    Args:
        rate: float. Drop probability in [0, 1). Defaults to `0.0`.
        **kwargs: base `Layer` arguments.

    Example:

    >>> layer = DropPath(0.2)
    >>> layer(np.ones((4, 2, 2, 3)), training=False).shape
    (4, 2, 2, 3)
    """

    def __init__(self, rate=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate!r}")
        self.rate = float(rate)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def build(self, input_shape):
        self.current_rate = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.rate),
            trainable=False, name="current_rate",
        )

    def call(self, inputs, training=None):
        if not training:
            return inputs
        keep = 1.0 - ops.cast(self.current_rate, inputs.dtype)
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = ops.cast(noise < keep, inputs.dtype)
        return inputs * mask / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
