"""Plain supervised training of a fixed architecture, shared by the CLI and searches.

`train_model` compiles a model with the optimiser and schedule the papers use,
fits it with TensorBoard logs, keeps the best weights, resumes after a crash
(Keras' `BackupAndRestore`) and writes a readable results folder.
"""

import math
import os
import time

import keras

from keras_nas import io
from keras_nas import costs as costs_lib

OPTIMIZERS = ("sgd", "nesterov", "adam")
SCHEDULES = ("cosine", "step", "constant")


def learning_rate_at(epoch, *, learning_rate, epochs, schedule, min_learning_rate=0.0, milestones=None, gamma=0.1):
    """Learning rate of an epoch under an epoch-level schedule.

    - `cosine`: from `learning_rate` to `min_learning_rate` over `epochs`
      (DARTS / EoiNAS / EPNAS style).
    - `step`: multiplied by `gamma` at each epoch in `milestones` (paper 000:
      0.01, x0.1 at epochs 100 and 150). Defaults to milestones at 50% and 75%.
    - `constant`.
    """
    if schedule == "constant":
        return learning_rate
    if schedule == "cosine":
        progress = epoch / max(epochs, 1)
        return min_learning_rate + 0.5 * (learning_rate - min_learning_rate) * (
            1 + math.cos(math.pi * progress)
        )
    if schedule == "step":
        # At least epoch 1: a run of one or two epochs starts at the full rate.
        milestones = milestones or (max(1, int(epochs * 0.5)), max(1, int(epochs * 0.75)))
        return learning_rate * gamma ** sum(epoch >= m for m in milestones)
    raise ValueError(f"`schedule` must be one of {list(SCHEDULES)}. Received: schedule={schedule!r}")


def sgdr_learning_rate(epoch, learning_rate=0.05, min_learning_rate=0.001, t_0=10, t_mult=2):
    """SGDR (Loshchilov & Hutter 2017) at an epoch: cosine from `learning_rate`
    to `min_learning_rate`, restarting after T_0, T_0 * T_mult, ... epochs.

    Used by EPNAS (sec. 4.1: l_max 0.05, l_min 0.001, T_0 10, T_mult 2) and
    CNAS (l_max 0.05, l_min 1e-4, T_0 10, T_mult 2). `t_mult=1` with
    `t_0=epochs` is a single cosine decay.

    >>> sgdr_learning_rate(10)  # the first restart
    0.05
    """
    start, period = 0.0, float(t_0)
    while epoch >= start + period:
        start += period
        period *= t_mult
    return min_learning_rate + 0.5 * (learning_rate - min_learning_rate) * (
        1 + math.cos(math.pi * (epoch - start) / period))


def make_optimizer(name, learning_rate, momentum=0.9, weight_decay=0.0, clipnorm=None,
                   learning_rate_multipliers=None):
    """SGD (optionally Nesterov) or Adam, with decoupled weight decay.

    `learning_rate_multipliers` (`{variable path: multiplier}`, SGD only)
    gives some variables a multiple of the rate
    (`keras_nas.epnas.ScaledSGD`).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {list(OPTIMIZERS)}. Received: optimizer={name!r}")
    kwargs = {"learning_rate": learning_rate, "weight_decay": weight_decay or None}
    if clipnorm:
        kwargs["clipnorm"] = clipnorm
    if name == "adam":
        if learning_rate_multipliers:
            raise ValueError("`learning_rate_multipliers` needs an SGD optimizer ('sgd' or 'nesterov'). "
                             f"Received: optimizer={name!r}")
        return keras.optimizers.Adam(**kwargs)
    if learning_rate_multipliers:
        from keras_nas.epnas.scaled_sgd import ScaledSGD  # EPNAS' optimizer; only EPNAS children ask for it

        return ScaledSGD(learning_rate_multipliers, momentum=momentum, nesterov=name == "nesterov", **kwargs)
    return keras.optimizers.SGD(momentum=momentum, nesterov=name == "nesterov", **kwargs)


def train_model(
    model,
    dataset,
    *,
    epochs=10,
    optimizer="sgd",
    learning_rate=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="cosine",
    milestones=None,
    out=None,
    verbose=2,
    callbacks=(),
    compile_model=True,
):
    """Trains `model` on `dataset.train`, validating on `dataset.validation`.

    With `out`, writes `<out>/logs` (TensorBoard), `<out>/best_model.keras`
    (best validation accuracy), `<out>/model.keras` (last epoch) and backs up
    every epoch to `<out>/backup`, so the same call after a crash resumes at
    the last finished epoch.

    Args:
        model: Keras model (class probabilities out).
        dataset: `keras_nas.data.Dataset`.
        epochs: int. Defaults to `10`.
        optimizer: str. One of `"sgd"`, `"nesterov"`, `"adam"`.
        learning_rate: float. Initial learning rate. Defaults to `0.05`.
        momentum: float. SGD momentum. Defaults to `0.9`.
        weight_decay: float. Decoupled weight decay. Defaults to `5e-4`.
        schedule: str. `"cosine"`, `"step"` or `"constant"`.
        milestones: list of int. Epochs of the `step` schedule.
        out: str or None. Results folder.
        verbose: int. Keras `fit` verbosity.
        callbacks: extra Keras callbacks.
        compile_model: bool. Compile with the sparse cross-entropy loss.

    Returns:
        dict with `history`, `val_accuracy` (best epoch), `test_accuracy`
        and `test_loss` (with `out`: of `best_model.keras`, the best epoch,
        plus `last_epoch_test_accuracy`; without: of the last epoch),
        `train_seconds`.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive int. Received: epochs={epochs!r}")
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"`learning_rate` must be > 0. Received: learning_rate={learning_rate!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {list(SCHEDULES)}. Received: schedule={schedule!r}")
    if compile_model:
        model.compile(
            optimizer=make_optimizer(optimizer, learning_rate, momentum, weight_decay),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    cbs = [
        keras.callbacks.LearningRateScheduler(
            lambda epoch: learning_rate_at(
                epoch, learning_rate=learning_rate, epochs=epochs, schedule=schedule, milestones=milestones
            )
        ),
        *callbacks,
    ]
    if out is not None:
        os.makedirs(out, exist_ok=True)
        cbs += [
            keras.callbacks.BackupAndRestore(os.path.join(out, "backup")),
            keras.callbacks.ModelCheckpoint(
                os.path.join(out, "best_model.keras"),
                monitor="val_accuracy",
                save_best_only=True,
            ),
            keras.callbacks.TensorBoard(os.path.join(out, "logs"), write_graph=False),
        ]
    start = time.perf_counter()
    history = model.fit(
        dataset.train,
        validation_data=dataset.validation,
        epochs=epochs,
        callbacks=cbs,
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles each epoch itself
    )
    seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in values] for k, values in history.history.items()}
    last_loss, last_accuracy = model.evaluate(dataset.test, verbose=0)[:2]
    result = {"history": hist, "val_accuracy": max(hist.get("val_accuracy", [float("nan")])),
              "test_accuracy": float(last_accuracy), "test_loss": float(last_loss), "train_seconds": seconds}
    if out is not None:
        io.save_model(model, os.path.join(out, "model.keras"))
        # The test numbers belong to the model `val_accuracy` describes: best_model.keras (best epoch).
        best = keras.saving.load_model(os.path.join(out, "best_model.keras"))
        test_loss, test_accuracy = best.evaluate(dataset.test, verbose=0)[:2]
        result.update(test_accuracy=float(test_accuracy), test_loss=float(test_loss),
                      last_epoch_test_accuracy=float(last_accuracy))
    return result


def plot_history(history, path, title=None):
    """Saves loss and accuracy curves of a Keras history dict as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key in (metric, f"val_{metric}"):
            if key in history:
                # Markers too, so a run of one or two epochs still shows its points.
                ax.plot(range(1, len(history[key]) + 1), history[key], label=key,
                        marker="o" if len(history[key]) <= 20 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    io.save_figure(fig, path)


def summarize_costs(model, train_seconds=None, latency=True):
    """Cost report of `model` (+ training energy/CO2 when the time is known)."""
    report = costs_lib.profile(model, latency=latency).to_dict()
    if train_seconds is not None:
        report["emissions"] = costs_lib.training_emissions(train_seconds)
    return report


__all__ = ["train_model", "make_optimizer", "learning_rate_at", "plot_history", "summarize_costs"]
