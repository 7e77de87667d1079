"""Thin KerasTuner Tuner that builds, costs, trains and rewards one EPNAS child per trial."""

import contextlib
import gc
import json
import os
import time

import keras

from keras_nas import costs, io
from keras_nas.epnas.constraints import child_latency, constrains_latency, table_space
from keras_nas.latency import read_table
from keras_nas.epnas.reward import constrained_reward
from keras_nas.epnas.prediction import (PREDICTION_DECAYS, child_callbacks, compile_child, prediction_learning_rate,
                                         rebatch, shared_multipliers, shrink_perturb_layers)
from keras_nas.epnas.morphism import INSERT_INITS
from keras_nas.training import sgdr_learning_rate
from keras_nas.engine.search_tuner import SearchTuner
from keras_nas.epnas.parameter_store import ParameterStore

MODEL = "model.keras"
SUMMARY = "summary.json"
SHARING_KEYS = ("parent", "position")
def _check_number(name, value, valid, expected):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value):
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def _check_positive(name, value, integer=False):
    bad = isinstance(value, bool) or not isinstance(value, (int,) if integer else (int, float)) or value <= 0
    if bad:
        kind = "a positive int" if integer else "a positive number"
        raise ValueError(f"`{name}` must be {kind}. Received: {name}={value!r}")


class EPNASTuner(SearchTuner):
    """Trains the child networks an `EPNASOracle` (or `RandomArchitectureOracle`) proposes.

    Per trial: build the architecture in the trial values with
    `space.build`, measure its resources with `keras_nas.costs.profile`
    (params, FLOPs, MACs, compute intensity, memory), train it and report
    `reward = val_accuracy * prod_i V(U_i)` (Eq. 3) with the constraints the
    oracle put in the trial. Training follows section 4.1: Nesterov momentum,
    SGDR (`l_max 0.05, l_min 0.001, T_0 10, T_mult 2`), 20 epochs. With
    performance prediction (section 3.4) the batch size and learning rate are
    scaled up together (paper: 128 -> 1024 and 0.05 -> 0.5), an aggressive
    decay (exponential by default) spans the `prediction_epochs` (paper: 10),
    training stops early when the validation accuracy stalls, and the child
    starts from the shared parameter dictionary
    (`keras_nas.epnas.parameter_store.ParameterStore`) and contributes its trained
    weights back.

    Writes `model.keras` and `summary.json` into each trial folder; a
    finished trial is never retrained and an interrupted one resumes from its
    last epoch (`BackupAndRestore`).

    Args:
        oracle: `EPNASOracle` or `RandomArchitectureOracle`.
        space: `EPNASSpace` of the search.
        input_shape: tuple. Image shape.
        num_classes: int.
        epochs: int. Epochs per child without prediction. Defaults to `20`.
        learning_rate, min_learning_rate, t0, t_mult: SGDR settings.
        momentum: float. Defaults to `0.9`.
        weight_decay: float. Decoupled weight decay (not given in the paper).
            Defaults to `1e-4`.
        clipnorm: float or None. Gradient-norm clipping (not in the paper;
            keeps large-learning-rate prediction runs finite). Defaults to None.
        prediction: bool. Performance prediction. Defaults to `False`.
        prediction_epochs: int. Defaults to `10`.
        batch_scale: int. Batch-size factor with prediction. Defaults to `8`.
        lr_scale: float. Learning-rate factor with prediction. Defaults to `10`.
        patience: int. Early-stopping patience (epochs). Defaults to `3`.
        prediction_decay: str. The "aggressive decay" of the scaled-up
            learning rate over `prediction_epochs` (see
            `prediction_learning_rate`): `"exponential"` (front-loaded) or
            `"cosine"`. The paper names no shape; a child that starts from
            shared parameters loses less of them under the front-loaded
            decay (benchmarks/bench_epnas.py measures both). Defaults to
            `"exponential"`.
        sharing_dir: str or None. Parameter-sharing folder (used with
            prediction). Defaults to None.
        sharing_keys: str. Which dictionary keys (layer number, op type) a
            child reads. `"parent"`: the numbers its layers had in the parent
            network it was morphed from, so layers behind an insert/remove
            keep their parameters and an inserted layer starts fresh;
            `"position"`: its own layer numbers (after an insert at `p` the
            layers behind `p` read their neighbours' keys). Section 3.4 says
            "layer number" and "share parameters across steps"; the paper
            does not say in which network the number is counted. Defaults
            to `"parent"`.
        insert_init: str. How a conv layer inserted by the child's action
            starts when the child reads the dictionary with `"parent"` keys.
            `"fresh"`: Keras' random initialisation (the paper is silent;
            the literal reading); `"identity"`: Net2Net's function-preserving
            "deeper" start (identity kernel, a batch norm that passes its
            input through, statistics from the first training batch; see
            `keras_nas.epnas.morphism`), so the child starts from its
            parent's function (layer-by-layer search only). Measured
            (benchmarks/bench_epnas.py): identity gets an inserted child to
            its plateau sooner but the plateau stays nearer the parent's
            accuracy, so fresh reaches the child's from-scratch accuracy
            more often and predicts it better. Defaults to `"fresh"`.
        shared_lr_scale: float. With prediction and a dictionary, the
            layers a child reads from the dictionary train at this multiple
            of the scaled-up learning rate; the layers it adds, the
            classifier and every layer whose input is not what it was in
            the parent (behind an inserted conv, a removed layer or a
            changed resolution: `inherited_layers`) at the full rate
            (`shared_multipliers`, `keras_nas.epnas.ScaledSGD`).
            The paper scales one rate for the whole network (`1.0`, its
            literal reading), and a child then first loses part of what it
            inherited at the 10x rate and needs epochs to get it back; a
            lower rate recovers it sooner but leaves children with an
            inserted conv a little below their from-scratch accuracy
            (benchmarks/RESULTS.md). Defaults to `1.0`.
        shared_shrink: float in (0, 1]. With prediction and a dictionary,
            the trainable weights a child reads from the dictionary start
            at `shared_shrink * shared + shared_noise * fresh` ("shrink and
            perturb", `shrink_perturb`; Ash & Adams 2020), where `fresh` is
            the layer's own random initialisation. The paper copies the
            shared values (`1.0` with `shared_noise=0`, the default). A
            child started from its parent's weights settles near the
            parent: a deeper child (an inserted conv), 0.02-0.04 more
            accurate than its parent from scratch, then stays ~0.01 below
            its from-scratch accuracy and a search ranks it too low; shrink
            and perturb lets every child reach its own accuracy sooner
            (benchmarks/RESULTS.md). Defaults to `1.0`.
        shared_noise: float >= 0. See `shared_shrink`. Defaults to `0.0`.
        prediction_decay_epochs: int or None. Epochs over which the
            prediction run's learning rate decays to `min_learning_rate`
            (it stays there after them); None: `prediction_epochs`, the
            whole run. The paper gives "aggressive decay" and an early stop
            at 10 epochs, not the decay's length; with a decay over 3 of the
            10 epochs a child that starts from shared parameters reaches its
            plateau in 2 epochs (see `shared_shrink`). Defaults to None.
        seed: int. Each trial is seeded with `seed + trial number`.
        jit_compile: bool. Defaults to `False`.
        logs_dir: str or None. TensorBoard root: each child logs to
            `logs_dir/trial_<id>`. Defaults to None (no logs).
        latency_table: dict, str or None. A latency table of the `epnas`
            space for the layer-by-layer mode, of the `epnas-module` space
            for the module mode (`keras-nas latency-table --space epnas` or
            `--space epnas-module`), or its path:
            a `latency_ms` constraint then uses each child's predicted
            latency; None measures each child (`child_latency`). Read only
            when a `latency_ms` constraint is given. Defaults to None.
        **kwargs: passed to `SearchTuner` (`directory`, `project_name`, ...).

    Example:

    ```python
    tuner = EPNASTuner(oracle, space, input_shape=(8, 8, 1), num_classes=10, epochs=5,
                       directory="runs/epnas", project_name="trials")
    tuner.search(dataset.train, validation_data=dataset.validation)
    ```
    """

    def __init__(
        self,
        oracle,
        space,
        input_shape,
        num_classes,
        *,
        epochs=20,
        learning_rate=0.05,
        min_learning_rate=0.001,
        t0=10,
        t_mult=2,
        momentum=0.9,
        weight_decay=1e-4,
        clipnorm=None,
        prediction=False,
        prediction_epochs=10,
        batch_scale=8,
        lr_scale=10.0,
        patience=3,
        prediction_decay="exponential",
        sharing_dir=None,
        sharing_keys="parent",
        insert_init="fresh",
        shared_lr_scale=1.0,
        shared_shrink=1.0,
        shared_noise=0.0,
        prediction_decay_epochs=None,
        seed=0,
        jit_compile=False,
        logs_dir=None,
        latency_table=None,
        **kwargs,
    ):
        for name, value in (("epochs", epochs), ("prediction_epochs", prediction_epochs),
                            ("batch_scale", batch_scale), ("patience", patience), ("t0", t0)):
            _check_positive(name, value, integer=True)
        for name, value in (("learning_rate", learning_rate), ("lr_scale", lr_scale), ("t_mult", t_mult),
                            ("shared_lr_scale", shared_lr_scale)):
            _check_positive(name, value)
        if prediction_decay_epochs is not None:
            _check_positive("prediction_decay_epochs", prediction_decay_epochs, integer=True)
        _check_number("shared_shrink", shared_shrink, lambda v: 0 < v <= 1, "a number in (0, 1]")
        _check_number("shared_noise", shared_noise, lambda v: v >= 0, "a number >= 0")
        if prediction_decay not in PREDICTION_DECAYS:
            raise ValueError(f"`prediction_decay` must be one of {list(PREDICTION_DECAYS)}. "
                             f"Received: prediction_decay={prediction_decay!r}")
        if sharing_keys not in SHARING_KEYS:
            raise ValueError(f"`sharing_keys` must be one of {list(SHARING_KEYS)}. Received: sharing_keys={sharing_keys!r}")
        if insert_init not in INSERT_INITS:
            raise ValueError(
                f"`insert_init` must be one of {list(INSERT_INITS)}. Received: insert_init={insert_init!r}")
        super().__init__(oracle=oracle, **kwargs)
        self.space = space
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        self.epochs = epochs
        self.learning_rate = float(learning_rate)
        self.min_learning_rate = float(min_learning_rate)
        self.t0 = t0
        self.t_mult = t_mult
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.clipnorm = clipnorm
        self.prediction = bool(prediction)
        self.prediction_epochs = prediction_epochs
        self.batch_scale = batch_scale
        self.lr_scale = float(lr_scale)
        self.patience = patience
        self.prediction_decay = prediction_decay
        self.sharing_dir = sharing_dir
        self.sharing_keys = sharing_keys
        self.insert_init = insert_init
        self.shared_lr_scale = float(shared_lr_scale)
        self.shared_shrink = float(shared_shrink)
        self.shared_noise = float(shared_noise)
        self.prediction_decay_epochs = prediction_decay_epochs
        self.seed = int(seed)
        self.logs_dir = logs_dir
        self.jit_compile = bool(jit_compile)
        self.latency_table = None if latency_table is None else read_table(latency_table, space=table_space(space))
        self._rebatched = {}

    def _scope(self):
        if self.distribution_strategy is None:
            return contextlib.nullcontext()
        return self.distribution_strategy.scope()

    def _schedule(self):
        """`(epochs, learning-rate function)` of a child."""
        if self.prediction:
            lr = self.learning_rate * self.lr_scale
            decay_epochs = self.prediction_decay_epochs or self.prediction_epochs
            return self.prediction_epochs, lambda e: prediction_learning_rate(
                e, lr, self.min_learning_rate, decay_epochs, self.prediction_decay)
        return self.epochs, lambda e: sgdr_learning_rate(
            e, self.learning_rate, self.min_learning_rate, self.t0, self.t_mult)

    def _train_data(self, train_data):
        if not self.prediction or self.batch_scale == 1:
            return train_data
        key = id(train_data)
        if key not in self._rebatched:
            self._rebatched[key] = rebatch(train_data, self.batch_scale)
        return self._rebatched[key]

    def sharing_key_map(self, values, architecture):
        """Dictionary keys a child reads (section 3.4), from the trial's `parent_positions`.

        `sharing_keys="parent"`: the layer numbers its layers had in the
        parent network (inserted layers start fresh); `"position"` or no
        parent known (random baseline, trials of older searches): its own.
        """
        positions = self.parent_positions(values)
        return None if positions is None else self.space.sharing_key_map(architecture, positions)

    def parent_positions(self, values):
        """The trial's `parent_positions` (None: inserted), or None without parent keys."""
        positions = values.get("parent_positions")
        if self.sharing_keys == "position" or positions is None:
            return None
        return [None if p < 0 else p for p in json.loads(positions)]

    @staticmethod
    def architecture(trial):
        return json.loads(trial.hyperparameters.values["architecture"])

    def build_child(self, architecture):
        with self._scope():
            return self.space.build(architecture, self.input_shape, self.num_classes)

    def run_trial(self, trial, train_data, validation_data=None, verbose=2, **_):
        trial_dir = self.get_trial_dir(trial.trial_id)
        done = io.read_json(os.path.join(trial_dir, SUMMARY))
        if done is not None and os.path.exists(os.path.join(trial_dir, MODEL)):
            return done["metrics"]  # finished before the process died
        values = trial.hyperparameters.values
        architecture = self.architecture(trial)
        constraints = json.loads(values.get("constraints", "[]"))
        keras.utils.set_random_seed(self.seed + int(trial.trial_id))
        model = self.build_child(architecture)
        report = costs.profile(model)
        usages = {
            "params": report.params, "flops": report.flops, "macs": report.macs,
            "compute_intensity": report.compute_intensity, "memory_mb": report.memory_mb,
        }
        if constrains_latency(constraints):
            usages["latency_ms"], _ = child_latency(model, self.latency_table)
        shared_fraction = 0.0
        store = None
        multipliers = None
        if self.prediction and self.sharing_dir:

            store = ParameterStore(self.sharing_dir)
            key_map = self.sharing_key_map(values, architecture)
            perturb = self.shared_shrink != 1.0 or self.shared_noise != 0.0
            fresh = {layer.name: layer.get_weights() for layer in model.layers if layer.weights} if perturb else None
            shared_fraction, shared_keys = store.load_into(model, key_map=key_map, return_keys=True)
            if perturb:
                shrink_perturb_layers(model, fresh, shared_keys, self.shared_shrink, self.shared_noise)
                del fresh
            if self.shared_lr_scale != 1.0:
                parent = values.get("parent_architecture")
                # Only its layers' input shapes are read: built outside any distribution scope.
                parent_model = None if parent is None else self.space.build(
                    json.loads(parent), self.input_shape, self.num_classes)
                multipliers = shared_multipliers(model, shared_keys, self.shared_lr_scale, parent_model, key_map)
                del parent_model
            positions = self.parent_positions(values)
            if self.insert_init == "identity" and positions is not None and None in positions:
                for images, _ in self._train_data(train_data).take(1):
                    self.space.init_inserted(model, architecture, positions, inputs=images)
        epochs, schedule = self._schedule()
        with self._scope():
            compile_child(model, schedule(0), momentum=self.momentum, weight_decay=self.weight_decay,
                          clipnorm=self.clipnorm, multipliers=multipliers, jit_compile=self.jit_compile)
        schedule_callback, *stopping = child_callbacks(schedule, self.patience if self.prediction else None,
                                                      restore_best=self.prediction)
        callbacks = [
            schedule_callback,
            keras.callbacks.BackupAndRestore(os.path.join(trial_dir, "backup")),
            *self.fit_callbacks(),
            *stopping,
        ]
        if self.logs_dir:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(self.logs_dir, f"trial_{trial.trial_id}"),
                                                         write_graph=False))
        start = time.perf_counter()
        history = model.fit(self._train_data(train_data), validation_data=validation_data, epochs=epochs,
                            callbacks=callbacks, verbose=verbose, shuffle=False)
        train_seconds = time.perf_counter() - start
        self.check_finite(history)
        hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        val_accuracy = max(hist.get("val_accuracy", [0.0]))
        reward, penalties = constrained_reward(val_accuracy, usages, constraints,
                                               float(values.get("penalty_base", 0.9)))
        io.save_model(model, os.path.join(trial_dir, MODEL))
        if store is not None:
            store.contribute(model, trial.trial_id, int(values.get("global_step", 0)), val_accuracy)
        metrics = {
            "reward": float(reward),
            "val_accuracy": float(val_accuracy),
            "train_seconds": float(train_seconds),
            "epochs_trained": float(len(hist.get("loss", []))),
            "shared_fraction": float(shared_fraction),
            **{k: float(v) for k, v in usages.items()},
        }
        summary = {"architecture": architecture, "usages": usages, "penalties": penalties,
                   "history": hist, "metrics": metrics}
        io.atomic_write_json(os.path.join(trial_dir, SUMMARY), summary)
        print(
            f"EPNAS child {trial.trial_id} (episode {values.get('episode')}, step {values.get('step')}, "
            f"branch {values.get('branch')}): {len(architecture)} elements, {report.params:,} params, "
            f"{report.flops / 1e6:.2f} MFLOPs, intensity {report.compute_intensity:.1f}, "
            f"val acc {val_accuracy:.4f}, reward {reward:.4f}, {train_seconds:.1f} s"
            + (f", {shared_fraction:.0%} shared" if store is not None else ""),
            flush=True,
        )
        del model
        gc.collect()
        return metrics

    def load_model(self, trial):
        return keras.saving.load_model(os.path.join(self.get_trial_dir(trial.trial_id), MODEL))
