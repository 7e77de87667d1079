"""A functional classifier that also trains an auxiliary head (DARTS evaluation)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_nas")
class AuxiliaryHeadModel(keras.Model):
    """Functional model whose loss adds `auxiliary_weight` x the auxiliary head's loss.

    Its output is only the main class probabilities, so `predict`,
    `evaluate`, `.keras` saving and SavedModel export see a plain classifier.
    The graph feeds the main and auxiliary probabilities into an
    `AuxiliaryTap` layer (the output); `train_step` reads both tensors through
    a view of the same layers and minimises `loss(main) + auxiliary_weight *
    loss(aux)` with the compiled loss (DARTS `train.py`: weight 0.4).

    Args:
        inputs: Keras input tensor.
        outputs: output tensor of the `AuxiliaryTap` layer.
        main_layer: str. Name of the layer giving the main probabilities.
            Defaults to `"main_predictions"`.
        auxiliary_layer: str. Name of the layer giving the auxiliary
            probabilities. Defaults to `"auxiliary_predictions"`.
        auxiliary_weight: float. Weight of the auxiliary loss. Defaults to `0.4`.
        **kwargs: `name`, `trainable`.

    Example:

    >>> model = AuxiliaryHeadModel(inputs, tap_output, auxiliary_weight=0.4)
    >>> model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> model.fit(dataset.train)
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        # Only `inputs, outputs, name` as named arguments: Keras then treats this
        # class as a functional model and saves/revives its graph.
        main_layer = kwargs.pop("main_layer", "main_predictions")
        auxiliary_layer = kwargs.pop("auxiliary_layer", "auxiliary_predictions")
        auxiliary_weight = kwargs.pop("auxiliary_weight", 0.4)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        if not isinstance(auxiliary_weight, (int, float)) or auxiliary_weight < 0:
            raise ValueError(
                f"`auxiliary_weight` must be a number >= 0. Received: auxiliary_weight={auxiliary_weight!r}")
        self.main_layer = main_layer
        self.auxiliary_layer = auxiliary_layer
        self.auxiliary_weight = float(auxiliary_weight)
        view = keras.Model(
            self.inputs, [self.get_layer(main_layer).output, self.get_layer(auxiliary_layer).output]
        )
        # Kept out of Keras' attribute tracking: the view shares every layer
        # with this model and must not be saved a second time.
        object.__setattr__(self, "_training_view", view)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            main, aux = self._training_view(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=main, sample_weight=sample_weight, training=True)
            if self.auxiliary_weight:
                aux_loss = self.compute_loss(x=x, y=y, y_pred=aux, sample_weight=sample_weight, training=True)
                loss = loss + self.auxiliary_weight * aux_loss
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
            scaled = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        grads = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(grads, weights))
        return self.compute_metrics(x, y, main, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update({
            "main_layer": self.main_layer,
            "auxiliary_layer": self.auxiliary_layer,
            "auxiliary_weight": self.auxiliary_weight,
        })
        return config
