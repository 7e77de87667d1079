"""Joins an auxiliary classifier into a functional graph without exposing it."""

import keras


@keras.saving.register_keras_serializable(package="keras_nas")
class AuxiliaryTap(keras.layers.Layer):
    """Returns its first input; the second (auxiliary predictions) is ignored.

    Keeps an auxiliary head (DARTS/NASNet "auxiliary tower") inside a
    functional model whose only output is the main prediction, so the model
    saves, exports and serves like any classifier while
    `keras_nas.eoinas.AuxiliaryHeadModel` reads the auxiliary output during
    training.

    Args:
        **kwargs: base `Layer` arguments.

    Example:

    >>> AuxiliaryTap()([np.ones((2, 3)), np.zeros((2, 3))]).shape
    (2, 3)
    """

    passes_first_input = True  # `keras_nas.export.output_kind` looks through it

    def call(self, inputs):
        main, _ = inputs
        return main

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return super().get_config()
