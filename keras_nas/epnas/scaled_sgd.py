"""SGD whose learning rate is multiplied per variable."""

import numbers

import keras


@keras.saving.register_keras_serializable(package="keras_nas")
class ScaledSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` with a learning-rate multiplier per variable.

    Variable `v` is updated with `learning_rate * learning_rate_multipliers[v.path]`
    (1 for the variables not named): the momentum buffer, Nesterov's look-ahead
    and gradient clipping work exactly as in SGD, only the step size differs.
    Decoupled weight decay (`weight_decay`) keeps the global rate. Keras has
    no per-variable learning rate (the usual wrapper scales gradients, which
    differs once `clipnorm` clips them); this subclass scales the rate inside
    `update_step` instead, so a multiplier of `m` is exactly SGD with `m`
    times the rate for that variable. EPNAS' performance prediction uses it
    to train the parameters a child reads from the dictionary more gently
    than its new ones (`EPNASTuner(shared_lr_scale=...)`).

    Args:
        learning_rate_multipliers: dict. `{variable.path: multiplier >= 0}`.
            Defaults to `None` (plain SGD).
        **kwargs: the arguments of `keras.optimizers.SGD` (`learning_rate`,
            `momentum`, `nesterov`, `weight_decay`, `clipnorm`, ...).

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="head")])
    >>> head = model.get_layer("head")
    >>> optimizer = ScaledSGD({head.kernel.path: 0.1, head.bias.path: 0.1}, learning_rate=0.5,
    ...                       momentum=0.9, nesterov=True)
    >>> model.compile(optimizer=optimizer, loss="mse")  # the head learns at 0.05
    """

    def __init__(self, learning_rate_multipliers=None, **kwargs):
        multipliers = {} if learning_rate_multipliers is None else learning_rate_multipliers
        if not isinstance(multipliers, dict):
            raise TypeError(
                "`learning_rate_multipliers` must be a dict of {variable path: multiplier}. "
                f"Received: learning_rate_multipliers={learning_rate_multipliers!r}")
        for path, value in multipliers.items():
            bad = (not isinstance(path, str) or isinstance(value, bool) or not isinstance(value, numbers.Real)
                   or value < 0)
            if bad:
                raise ValueError(
                    "`learning_rate_multipliers` must map variable paths (str) to numbers >= 0. "
                    f"Received: {path!r}: {value!r}")
        super().__init__(**kwargs)
        self.learning_rate_multipliers = {str(k): float(v) for k, v in multipliers.items()}
        self._multiplier_by_index = {}

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        paths = {v.path for v in variables}
        unknown = sorted(set(self.learning_rate_multipliers) - paths)
        if unknown:
            raise ValueError(
                f"`learning_rate_multipliers` names variables the optimizer does not train: {unknown[:5]}. "
                f"Trained variables include: {sorted(paths)[:5]}")
        self._multiplier_by_index = {
            self._get_variable_index(v): self.learning_rate_multipliers[v.path]
            for v in variables if v.path in self.learning_rate_multipliers}

    def update_step(self, gradient, variable, learning_rate):
        # A Python float per variable, looked up while tracing: no cost per step.
        multiplier = self._multiplier_by_index.get(self._get_variable_index(variable), 1.0)
        if multiplier != 1.0:
            learning_rate = keras.ops.multiply(keras.ops.cast(learning_rate, variable.dtype), multiplier)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["learning_rate_multipliers"] = dict(self.learning_rate_multipliers)
        return config
