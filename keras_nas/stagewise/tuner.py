"""Thin KerasTuner Tuner that trains one stage-wise network per trial."""

import contextlib
import gc
import os
import time

import keras

from keras_nas import io, training
from keras_nas.stagewise.importance import CRITERIA, stage_importance
from keras_nas.engine.search_tuner import SearchTuner
from keras_nas.stagewise.weight_transfer import transfer_weights

SEARCH_MODEL = "search_model.keras"
FINAL_MODEL = "model.keras"
SUMMARY = "summary.json"
SEARCH_SUMMARY = "search_summary.json"


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")


class StageWiseTuner(SearchTuner):
    """Builds, trains and scores the network a `StageWiseOracle` proposes.

    For each trial: build the network with `build_model(stage_depths)`
    (optionally initialised from `donor` with
    `keras_nas.stagewise.weight_transfer.transfer_weights`), train it for `epochs` with
    SGD and a step schedule (paper 000: lr 0.01, x0.1 at epochs 100 and 150
    of 200), compute the stage importance on `importance_data`
    (`keras_nas.stagewise.importance`), and for candidates train
    `final_epochs` more (the paper's extra 100 epochs; the schedule goes on
    where it stopped). Importance is taken before the final training so A
    and T of a decision are compared after the same training.

    Reports `val_accuracy` (after all training), `search_val_accuracy`
    (before the final training), `importance_0 ..`, `train_seconds`,
    `importance_seconds` and, with `test_data`, `test_accuracy`. Writes into
    the trial folder `search_model.keras` (after `epochs`), `model.keras`
    (final) and `summary.json`; TensorBoard logs go to `logs_dir/trial_<id>`.
    Both training phases back up every epoch, and a finished phase is never
    redone, so a killed search resumes mid-trial.

    Args:
        oracle: `keras_nas.stagewise.StageWiseOracle`.
        build_model: callable. `build_model(stage_depths) -> keras.Model`
            (uncompiled), e.g. `lambda d: stage_resnet(d, input_shape=...)`.
        epochs: int. Training epochs per network. Defaults to `200`.
        final_epochs: int. Extra epochs for candidates. Defaults to `0`.
        optimizer: str. `"sgd"` or `"nesterov"` (the reference code's) or
            `"adam"`. Defaults to `"nesterov"`.
        learning_rate: float. Defaults to `0.01`.
        momentum: float. Defaults to `0.9`.
        weight_decay: float. Decoupled weight decay. Defaults to `0`.
        milestones: list of int or None. Epochs where the learning rate is
            multiplied by 0.1. Defaults to 50% and 75% of `epochs` (100 and
            150 of 200).
        criterion: str. `"pls"`, `"inffs"` or `"ilfs"`. Defaults to `"pls"`.
        importance_samples: int or None. Training examples for the importance
            score. Defaults to all of one pass.
        pool_size: int or None. Pooling window of the stage features.
            Defaults to `8`.
        n_components, alpha, tokens: criterion settings (PLS, inf-FS, il-FS).
        donor: str, `keras.Model` or None. A trained deeper network whose
            weights initialise every trial (weight transfer). Defaults to None.
        logs_dir: str or None. TensorBoard root. Defaults to None (no logs).
        seed: int. Each trial is seeded with `seed + trial number`.
        jit_compile: bool. XLA-compile the train step. Defaults to False.
        **kwargs: passed to `SearchTuner` / `keras_tuner.Tuner`
            (`directory`, `project_name`, `distribution_strategy`, ...).

    Example:

    ```python
    tuner = StageWiseTuner(oracle, build_model=lambda d: stage_resnet(d, input_shape=(8, 8, 1)),
                           epochs=5, directory="runs/sw", project_name="trials")
    tuner.search(dataset.train, validation_data=dataset.validation)
    ```
    """

    def __init__(
        self,
        oracle,
        build_model,
        *,
        epochs=200,
        final_epochs=0,
        optimizer="nesterov",
        learning_rate=0.01,
        momentum=0.9,
        weight_decay=0.0,
        milestones=None,
        criterion="pls",
        importance_samples=None,
        pool_size=8,
        n_components=2,
        alpha=0.5,
        tokens=6,
        donor=None,
        logs_dir=None,
        seed=0,
        jit_compile=False,
        **kwargs,
    ):
        if not callable(build_model):
            raise TypeError(f"`build_model` must be callable. Received: build_model={build_model!r}")
        _check_int("epochs", epochs, 1)
        _check_int("final_epochs", final_epochs, 0)
        if optimizer not in training.OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {list(training.OPTIMIZERS)}. Received: optimizer={optimizer!r}"
            )
        if criterion not in CRITERIA:
            raise ValueError(f"`criterion` must be one of {list(CRITERIA)}. Received: criterion={criterion!r}")
        if not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be > 0. Received: learning_rate={learning_rate!r}")
        if milestones is not None:
            milestones = [int(m) for m in milestones]
        if importance_samples is not None:
            _check_int("importance_samples", importance_samples, 2)
        if donor is not None and not isinstance(donor, (str, os.PathLike, keras.Model)):
            raise TypeError(f"`donor` must be a path or a keras.Model. Received: donor={donor!r}")
        super().__init__(oracle=oracle, **kwargs)
        self.build_model = build_model
        self.epochs = epochs
        self.final_epochs = final_epochs
        self.optimizer_name = optimizer
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.milestones = milestones
        self.criterion = criterion
        self.importance_samples = importance_samples
        self.pool_size = pool_size
        self.n_components = n_components
        self.alpha = alpha
        self.tokens = tokens
        self.donor = donor
        self.logs_dir = logs_dir
        self.seed = int(seed)
        self.jit_compile = bool(jit_compile)
        self._donor_model = None

    # -- pieces ---------------------------------------------------------

    def _learning_rate(self, epoch):
        return training.learning_rate_at(
            epoch,
            learning_rate=self.learning_rate,
            epochs=self.epochs,
            schedule="step",
            milestones=self.milestones,
        )

    def _donor(self):
        if self.donor is None:
            return None
        if self._donor_model is None:
            if isinstance(self.donor, keras.Model):
                self._donor_model = self.donor
            else:
                self._donor_model = keras.saving.load_model(self.donor, compile=False)
        return self._donor_model

    def _scope(self):
        if self.distribution_strategy is None:
            return contextlib.nullcontext()
        return self.distribution_strategy.scope()

    def _callbacks(self, trial_id, phase, trial_dir):
        callbacks = [
            keras.callbacks.LearningRateScheduler(self._learning_rate),
            keras.callbacks.BackupAndRestore(os.path.join(trial_dir, f"backup_{phase}")),
            *self.fit_callbacks(),
        ]
        if self.logs_dir:
            callbacks.append(
                keras.callbacks.TensorBoard(
                    os.path.join(self.logs_dir, f"trial_{trial_id}", phase), write_graph=False
                )
            )
        return callbacks

    @staticmethod
    def stage_depths(trial):
        """`[depth_0, ..]` of a trial (read from its values: on a distributed
        worker `self.oracle` is a gRPC client without the oracle's settings)."""
        values = trial.hyperparameters.values
        stages = sum(1 for name in values if name.startswith("depth_"))
        return [int(values[f"depth_{i}"]) for i in range(stages)]

    # -- one trial ------------------------------------------------------

    def run_trial(self, trial, train_data, validation_data=None, importance_data=None, test_data=None, verbose=2, **_):
        trial_dir = self.get_trial_dir(trial.trial_id)
        depths = self.stage_depths(trial)
        role = trial.hyperparameters.get("role")
        search_path = os.path.join(trial_dir, SEARCH_MODEL)
        search_summary = io.read_json(os.path.join(trial_dir, SEARCH_SUMMARY))
        keras.utils.set_random_seed(self.seed + int(trial.trial_id))

        if search_summary is not None and os.path.exists(search_path):
            # The search phase of this trial finished before the process died.
            with self._scope():
                model = keras.saving.load_model(search_path)
        else:
            with self._scope():
                model = self.build_model(depths)
                donor = self._donor()
                if donor is not None:
                    transfer_weights(donor, model)
                model.compile(
                    optimizer=training.make_optimizer(
                        self.optimizer_name, self.learning_rate, self.momentum, self.weight_decay
                    ),
                    loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"],
                    jit_compile=self.jit_compile,
                )
            start = time.perf_counter()
            history = model.fit(
                train_data,
                validation_data=validation_data,
                epochs=self.epochs,
                callbacks=self._callbacks(trial.trial_id, "search", trial_dir),
                verbose=verbose,
                shuffle=False,  # the tf.data pipeline shuffles itself
            )
            train_seconds = time.perf_counter() - start
            self.check_finite(history)
            start = time.perf_counter()
            importance = stage_importance(
                model,
                importance_data if importance_data is not None else train_data,
                criterion=self.criterion,
                samples=self.importance_samples,
                pool_size=self.pool_size,
                n_components=self.n_components,
                alpha=self.alpha,
                tokens=self.tokens,
            )
            importance_seconds = time.perf_counter() - start
            search_summary = {
                "stage_depths": depths,
                "role": role,
                "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
                "importance": importance,
                "train_seconds": train_seconds,
                "importance_seconds": importance_seconds,
            }
            io.save_model(model, search_path)
            io.atomic_write_json(os.path.join(trial_dir, SEARCH_SUMMARY), search_summary)

        summary = dict(search_summary)
        history = {k: list(v) for k, v in search_summary["history"].items()}
        if role == "candidate" and self.final_epochs:
            start = time.perf_counter()
            final = model.fit(
                train_data,
                validation_data=validation_data,
                initial_epoch=self.epochs,
                epochs=self.epochs + self.final_epochs,
                callbacks=self._callbacks(trial.trial_id, "final", trial_dir),
                verbose=verbose,
                shuffle=False,
            )
            self.check_finite(final)
            summary["final_train_seconds"] = time.perf_counter() - start
            for k, values in final.history.items():
                history.setdefault(k, []).extend(float(v) for v in values)
        io.save_model(model, os.path.join(trial_dir, FINAL_MODEL))

        search_val = search_summary["history"].get("val_accuracy", [float("nan")])[-1]
        metrics = {
            "val_accuracy": float(history.get("val_accuracy", [search_val])[-1]),
            "search_val_accuracy": float(search_val),
            "train_seconds": float(search_summary["train_seconds"] + summary.get("final_train_seconds", 0.0)),
            "importance_seconds": float(search_summary["importance_seconds"]),
        }
        for i, value in enumerate(search_summary["importance"]):
            metrics[f"importance_{i}"] = float(value)
        if test_data is not None:
            metrics["test_accuracy"] = float(model.evaluate(test_data, verbose=0)[1])
        summary.update(history=history, metrics=metrics)
        io.atomic_write_json(os.path.join(trial_dir, SUMMARY), summary)
        del model
        gc.collect()
        return metrics

    def load_model(self, trial):
        """The trained network of a finished trial."""
        return keras.saving.load_model(os.path.join(self.get_trial_dir(trial.trial_id), FINAL_MODEL))
