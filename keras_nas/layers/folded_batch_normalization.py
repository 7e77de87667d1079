"""Stands in for a BatchNormalization layer folded into the convolution before it."""

import keras


@keras.saving.register_keras_serializable(package="keras_nas")
class FoldedBatchNormalization(keras.layers.Layer):
    """Returns its input: the BatchNormalization it replaces lives in the previous convolution.

    `keras_nas.folding.fold_batch_norms` puts one in place of every
    BatchNormalization it folds, so the folded model keeps the graph's
    structure and layer names. Unlike `keras.layers.Identity` it accepts
    the `training` and `mask` arguments the BatchNormalization was called
    with. It computes nothing and has no weights.

    Args:
        **kwargs: base `Layer` arguments (`name`, ...).

    Example:

    >>> FoldedBatchNormalization(name="bn")(np.ones((1, 2, 2, 3)), training=False).shape
    (1, 2, 2, 3)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape
