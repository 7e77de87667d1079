"""EPNAS figures (paper 002), measured side by side in one run.

1. Best reward vs number of trained children, EPNAS against random search
   on the same budget (episodes x branches x steps children), the same
   space, constraints, reward (Eq. 3) and child training, for each seed, on
   the bundled digits. Prints a table (best reward after every episode's
   worth of children) and draws `reward_vs_children.png` (paper Fig. 4's
   comparison).
2. Performance prediction with parameter sharing (section 3.4): a parent
   network is trained with the standard setting (20 epochs, SGDR) and its
   parameters go into the dictionary (what the dictionary of a running
   search holds after a few steps); each child (the parent after one
   scale/insert/remove action) is then trained (a) from scratch with the
   standard setting (paper: 20 epochs, SGDR l_max 0.05, T_0 10, T_mult 2)
   and (b) with prediction as `EPNASTuner` does it (batch size and learning
   rate scaled together, `--decay` of the learning rate over
   `--prediction-epochs`, early stop) starting from the shared parameters,
   read at the keys its layers had in the parent
   (`EPNASSpace.sharing_key_map`). Side by side, for the same child: (c)
   the same prediction run without the dictionary and (d) with sharing and
   the other decay (exponential / cosine). "Its accuracy" is the accuracy
   the from-scratch run reaches: its best validation accuracy (what a
   search records for a child) and, also printed, its last epoch's; a run
   has reached it once its validation accuracy is within `--tolerance`. The
   time each run needs to get there is compared (graph tracing excluded:
   one warm-up batch, then the weights and optimizer are reset); the paper
   reports 1/5, the issue asks <= 1/3. Printed per child and run, with the
   averages, and the whole-run ratio (whole prediction run / whole scratch
   run), plus the share of a child's weights the dictionary provides with
   parent keys and with its own positions as keys. Times are wall-clock on
   a shared machine: the runs of one child follow each other, so a busy
   neighbour skews single ratios; the epochs to the target are printed too.

   Data for part 2 (`--prediction-data`): CIFAR-10 cannot be downloaded
   here, and on the bundled 8x8 digits children reach ~98% within 1-2
   epochs from scratch, leaving nothing to save. The default `cluttered`
   task is built from the same digits and needs many epochs, as CIFAR-10
   does: each 8x8 digit is upscaled to 14x14 (bilinear), rotated uniformly
   in +-15 degrees, put at a random place on a 24x24 canvas together with
   two 7x7 fragments of other digits (clutter) and Gaussian noise (sigma
   0.2 on [0, 1] intensities). The 1,797 digits are split 80/20 (stratified)
   before rendering, so no validation image shares a digit with training:
   8 renderings of each training digit (11,496 images), 16 of each
   validation digit (5,760; `--validation-renderings`). `digits` runs part
   2 on the bundled digits (batch scale 2, lr scale 2).

   Until 2026-11-26 the validation set had 4 renderings (1,440 images):
   the standard error of an accuracy near 0.8 on it is ~0.011, as large as
   the 0.01 tolerance, and the target (the best of 20 noisy from-scratch
   epochs) sat above the child's true accuracy, so single runs reached it
   or missed it by chance. 16 renderings halve that noise. The summary
   gives, besides the mean over the runs that reached the target, the
   median over all runs (a miss counts as never), the number of runs
   within 1/3, and how well the prediction runs rank the children
   (Kendall's tau against the from-scratch accuracies; the paper uses
   prediction for "relative performance ranking").

    python benchmarks/bench_epnas.py [--quick] [--skip-search | --skip-prediction] [--out runs/bench_epnas]

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def search(kind, dataset, space, constraints, out, seed, episodes, branches, steps, top_k, epochs):
    """One EPNAS or random search; returns the rewards in training order and the wall time."""
    from keras_nas.epnas.oracle import EPNASOracle
    from keras_nas.epnas.random_oracle import RandomArchitectureOracle
    from keras_nas.epnas.tuner import EPNASTuner

    if kind == "epnas":
        oracle = EPNASOracle(space, constraints=constraints, episodes=episodes, branches=branches, steps=steps,
                             top_k=top_k, seed=seed)
    else:
        oracle = RandomArchitectureOracle(space, constraints=constraints, max_trials=episodes * branches * steps,
                                          seed=seed)
    tuner = EPNASTuner(oracle, space, dataset.input_shape, dataset.num_classes, epochs=epochs, clipnorm=5.0,
                       seed=seed, directory=out, project_name=f"{kind}_seed{seed}", overwrite=True)
    start = time.perf_counter()
    tuner.search(dataset.train, validation_data=dataset.validation, verbose=0)
    seconds = time.perf_counter() - start
    rewards = []
    for trial_id in sorted(oracle.trials, key=int):
        trial = oracle.trials[trial_id]
        rewards.append(float(trial.metrics.get_last_value("reward")) if trial.status == "COMPLETED" else 0.0)
    return rewards, seconds


class _Clock:
    """Keras callback recording (wall seconds, process CPU seconds since fit began, val_accuracy) per epoch.

    The CPU time (`time.process_time`: all threads of this process) hardly
    moves when a neighbour process competes for the cores; the wall time does.
    """

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = time.perf_counter()
                self.cpu_start = time.process_time()
                self.points = []

            def on_epoch_end(self, epoch, logs=None):
                self.points.append((time.perf_counter() - self.start, time.process_time() - self.cpu_start,
                                    float(logs["val_accuracy"])))

        return Clock()


def _fit(model, train, validation, epochs, schedule, batch_scale=1, early_stop=None, multipliers=None,
         restore_best=False):
    """Trains a child as `EPNASTuner` does (`keras_nas.epnas.prediction`), with an epoch clock."""
    from keras_nas.epnas.prediction import child_callbacks, compile_child, rebatch

    train = rebatch(train, batch_scale)
    compile_child(model, schedule(0), momentum=0.9, weight_decay=1e-4, clipnorm=5.0, multipliers=multipliers)
    # Trace the train and test steps first (one batch each), then restore the weights and zero the
    # optimizer: graph tracing, the same fixed cost for both runs, is kept out of the timings.
    weights = model.get_weights()
    x, y = next(iter(train))
    model.train_on_batch(x, y)
    vx, vy = next(iter(validation))
    model.test_on_batch(vx, vy)
    model.set_weights(weights)
    for variable in model.optimizer.variables:
        variable.assign(variable.numpy() * 0)
    model.reset_metrics()
    clock = _Clock()
    schedule_callback, *stopping = child_callbacks(schedule, early_stop or (epochs if restore_best else None),
                                                   restore_best=restore_best)
    callbacks = [schedule_callback, clock, *stopping]
    model.fit(train, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
    return clock.points


def time_to(points, target, cpu=False):
    """Wall (or CPU) seconds of the first epoch whose validation accuracy reaches `target`, else None."""
    for seconds, cpu_seconds, accuracy in points:
        if accuracy >= target:
            return cpu_seconds if cpu else seconds
    return None


def epochs_to(points, target):
    for epoch, (_, _, accuracy) in enumerate(points, 1):
        if accuracy >= target:
            return epoch
    return None


def cluttered_digits(seed=0, canvas=24, digit=14, train_renderings=8, validation_renderings=4, clutter=2,
                     fragment=7, noise=0.2, max_angle=15.0, batch_size=64):
    """The harder task of part 2 (module docstring): rendered, cluttered, noisy bundled digits.

    Returns an object with `train`, `validation` (batched tf.data of
    normalised images and labels), `input_shape` and `num_classes`.
    """
    import types

    import numpy as np
    import tensorflow as tf
    from scipy import ndimage
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bundled = load_digits()
    images = bundled.images.astype("float32") / 16.0
    labels = bundled.target.astype("int32")
    train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels,
                                          random_state=seed)
    rng = np.random.default_rng(seed)
    zoom = digit / images.shape[1]

    def render(indices, renderings):
        x = np.zeros((len(indices) * renderings, canvas, canvas, 1), "float32")
        y = np.repeat(labels[indices], renderings)
        for k, i in enumerate(np.repeat(indices, renderings)):
            image = np.zeros((canvas, canvas), "float32")
            for _ in range(clutter):  # fragments of other digits of the same split
                other = np.clip(ndimage.zoom(images[rng.choice(indices)], zoom, order=1), 0, 1)
                oy, ox = rng.integers(0, digit - fragment + 1, 2)
                py, px = rng.integers(0, canvas - fragment + 1, 2)
                window = image[py:py + fragment, px:px + fragment]
                np.maximum(window, other[oy:oy + fragment, ox:ox + fragment], out=window)
            big = ndimage.zoom(images[i], zoom, order=1)
            big = np.clip(ndimage.rotate(big, rng.uniform(-max_angle, max_angle), reshape=False, order=1), 0, 1)
            py, px = rng.integers(0, canvas - digit + 1, 2)
            window = image[py:py + digit, px:px + digit]
            np.maximum(window, big, out=window)
            x[k, ..., 0] = image + rng.normal(0.0, noise, image.shape)
        return x, y

    x_train, y_train = render(train_idx, train_renderings)
    x_val, y_val = render(val_idx, validation_renderings)
    mean, std = x_train.mean(), x_train.std()
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    train = (tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(y_train), seed=seed)
             .batch(batch_size).prefetch(2))
    validation = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(256).prefetch(2)
    return types.SimpleNamespace(train=train, validation=validation, input_shape=x_train.shape[1:],
                                 num_classes=10, num_train=len(y_train), num_validation=len(y_val))


def _conv(channels, src, kind="conv2d", width=3):
    return {"type": kind, "filter_width": width, "pool_width": 2, "channels": channels, "activation": "relu",
            "src1": src, "src2": -1}


def _insert(space, place, channels_index, width_index=1):
    from keras_nas.epnas.space import KINDS

    return {"scale": [0] * space.partitions, "insert": {
        "kind": KINDS.index("insert"), "type": 0, "filter_width": width_index, "pool_width": 0,
        "channels": channels_index, "activation": 0, "place": place, "skip": 0}}


def prediction_speedup(dataset, out, args):
    """Time to the from-scratch accuracy: scratch vs prediction + sharing, for several children."""
    import shutil

    import keras

    from keras_nas.epnas.parameter_store import ParameterStore
    from keras_nas.epnas.space import KINDS, SCALES, EPNASSpace
    from keras_nas.training import sgdr_learning_rate
    from keras_nas.epnas.prediction import prediction_learning_rate, shared_multipliers, shrink_perturb_layers

    space = EPNASSpace("layers", channels=(16, 32, 64), max_layers=8)
    n = space.partitions
    if args.prediction_data == "digits":
        parent = [_conv(32, 0), _conv(32, 1), _conv(32, 2, "MaxPool2d"), _conv(64, 3)]
        middle = 2
    else:
        # Two poolings: the receptive field covers a 14-pixel digit on the 24x24 canvas.
        parent = [_conv(32, 0), _conv(32, 1, "MaxPool2d"), _conv(32, 2), _conv(32, 3, "MaxPool2d"), _conv(64, 4)]
        middle = 3
    keep = {"scale": [0] * n, "insert": {"kind": 0}}
    actions = {
        "keep": keep,
        "channels_up (part 0)": {"scale": [SCALES.index("channels_up")] + [0] * (n - 1), "insert": {"kind": 0}},
        "width_up (last part)": {"scale": [0] * (n - 1) + [SCALES.index("width_up")], "insert": {"kind": 0}},
        "insert conv at end": _insert(space, len(parent), 2, width_index=0),
        f"insert conv at {middle}": _insert(space, middle, 1),
        "remove layer 1": {"scale": [0] * n, "insert": {"kind": KINDS.index("remove"), "place": 1}},
    }
    if args.quick:
        actions = {k: actions[k] for k in ("keep", "width_up (last part)", f"insert conv at {middle}")}
    if args.children:
        wanted = [w.strip() for w in args.children.split(",")]
        actions = {k: v for k, v in actions.items() if any(w in k for w in wanted)}
    lr_pp = 0.05 * args.lr_scale
    decay_epochs = args.decay_epochs or args.prediction_epochs
    pp_schedule = lambda e: prediction_learning_rate(e, lr_pp, 0.001, decay_epochs, args.decay)  # noqa: E731
    other = "cosine" if args.decay == "exponential" else "exponential"
    other_schedule = lambda e: prediction_learning_rate(e, lr_pp, 0.001, decay_epochs, other)  # noqa: E731
    # The paper's literal reading at this part's default scales: one rate, the shared values as they are,
    # decay over the whole run (the main column until 2026-11-26).
    literal_batch_scale, literal_lr_scale = args.literal_scales
    literal_schedule = lambda e: prediction_learning_rate(  # noqa: E731
        e, 0.05 * literal_lr_scale, 0.001, args.prediction_epochs, args.decay)
    is_literal = (args.shared_lr_scale, args.shared_shrink, args.shared_noise, decay_epochs, args.batch_scale,
                  args.lr_scale) == (1.0, 1.0, 0.0, args.prediction_epochs, literal_batch_scale, literal_lr_scale)
    scratch_schedule = lambda e: sgdr_learning_rate(e, 0.05, 0.001, 10, 2)  # noqa: E731

    shutil.rmtree(os.path.join(out, "shared"), ignore_errors=True)
    store = ParameterStore(os.path.join(out, "shared"))
    keras.utils.set_random_seed(0)
    parent_model = space.build(parent, dataset.input_shape, dataset.num_classes)
    # The dictionary of a running search holds parameters trained over earlier steps: the parent here
    # is trained once with the standard setting. EPNASTuner's prediction runs restore their best
    # epoch's weights before they go into the dictionary (EarlyStopping(restore_best_weights=True)),
    # so the parent's best epoch is stored too, not its last (SGDR's 20th epoch sits mid-cycle).
    points = _fit(parent_model, dataset.train, dataset.validation, args.scratch_epochs, scratch_schedule,
                  restore_best=True)
    best_epoch = max(range(len(points)), key=lambda i: points[i][2])
    print(f"parent ({len(parent)} layers, {parent_model.count_params():,} params): val acc "
          f"{points[best_epoch][2]:.4f} at its best epoch ({best_epoch + 1}, stored), {points[-1][2]:.4f} after "
          f"{args.scratch_epochs} epochs, {points[-1][0]:.0f} s", flush=True)
    store.contribute(parent_model, "parent", step=0, accuracy=max(a for _, _, a in points))
    store.consolidate(0)
    # The batch-norm statistics of an identity-started inserted layer (EPNASTuner: its first training batch).
    images = next(iter(dataset.train.unbatch().batch(256)))[0]
    other_init = "fresh" if args.insert_init == "identity" else "identity"
    other_shared_lr = 1.0 if args.shared_lr_scale != 1.0 else 0.2

    def shared_child(child, positions, key_map, insert_init, shared_lr_scale=args.shared_lr_scale,
                     shrink=args.shared_shrink, noise=args.shared_noise):
        """The child started from the dictionary, and its learning-rate multipliers (as `EPNASTuner`)."""
        model = space.build(child, dataset.input_shape, dataset.num_classes)
        perturb = shrink != 1.0 or noise != 0.0
        fresh = {layer.name: layer.get_weights() for layer in model.layers if layer.weights} if perturb else None
        shared, keys = store.load_into(model, key_map=key_map, return_keys=True)
        if perturb:
            shrink_perturb_layers(model, fresh, keys, shrink, noise)
        inserted = space.init_inserted(model, child, positions, inputs=images) if insert_init == "identity" else 0
        multipliers = (shared_multipliers(model, keys, shared_lr_scale, parent_model, key_map)
                       if shared_lr_scale != 1.0 else None)
        return model, shared, inserted, multipliers

    rows = []
    for name, action in actions.items():
        child = space.apply_action(parent, action)
        positions = space.parent_positions(parent, action)
        key_map = space.sharing_key_map(child, positions)
        for repeat in range(args.repeats):
            keras.utils.set_random_seed(1 + repeat)
            scratch = _fit(space.build(child, dataset.input_shape, dataset.num_classes), dataset.train,
                           dataset.validation, args.scratch_epochs, scratch_schedule)
            keras.utils.set_random_seed(1 + repeat)
            literal = store.load_into(space.build(child, dataset.input_shape, dataset.num_classes))
            keras.utils.set_random_seed(1 + repeat)
            model, shared, inserted, multipliers = shared_child(child, positions, key_map, args.insert_init)
            predicted = _fit(model, dataset.train, dataset.validation, args.prediction_epochs, pp_schedule,
                             args.batch_scale, early_stop=args.patience, multipliers=multipliers)
            row = {"child": name, "repeat": repeat, "layers": len(child), "shared_fraction": shared,
                   "shared_fraction_own_positions": literal, "scratch": scratch, "prediction": predicted,
                   "insert_init": args.insert_init if inserted else None}
            has_conv_insert = any(p is None and e["type"] in ("conv2d", "dep-sep-conv2d")
                                  for e, p in zip(child, positions))
            if args.compare_insert_init and has_conv_insert:
                keras.utils.set_random_seed(1 + repeat)
                model, _, _, multipliers = shared_child(child, positions, key_map, other_init)
                row[f"prediction_{other_init}_insert"] = _fit(
                    model, dataset.train, dataset.validation, args.prediction_epochs, pp_schedule,
                    args.batch_scale, early_stop=args.patience, multipliers=multipliers)
            if args.no_sharing_run:
                keras.utils.set_random_seed(1 + repeat)
                row["no_sharing"] = _fit(space.build(child, dataset.input_shape, dataset.num_classes),
                                         dataset.train, dataset.validation, args.prediction_epochs, pp_schedule,
                                         args.batch_scale, early_stop=args.patience)
            if args.compare_decay:
                keras.utils.set_random_seed(1 + repeat)
                model, _, _, multipliers = shared_child(child, positions, key_map, args.insert_init)
                row[f"prediction_{other}"] = _fit(model, dataset.train, dataset.validation, args.prediction_epochs,
                                                  other_schedule, args.batch_scale, early_stop=args.patience,
                                                  multipliers=multipliers)
            if args.compare_literal and not is_literal:
                keras.utils.set_random_seed(1 + repeat)
                model, _, _, _ = shared_child(child, positions, key_map, args.insert_init, shared_lr_scale=1.0,
                                              shrink=1.0, noise=0.0)
                row["prediction_literal"] = _fit(model, dataset.train, dataset.validation, args.prediction_epochs,
                                                 literal_schedule, literal_batch_scale, early_stop=args.patience)
            if args.compare_shared_lr:
                keras.utils.set_random_seed(1 + repeat)
                model, _, _, multipliers = shared_child(child, positions, key_map, args.insert_init,
                                                        shared_lr_scale=other_shared_lr)
                row["prediction_other_shared_lr"] = _fit(
                    model, dataset.train, dataset.validation, args.prediction_epochs, pp_schedule,
                    args.batch_scale, early_stop=args.patience, multipliers=multipliers)
            _measure(row, args.tolerance)
            rows.append(row)
            print(_row_line(row), flush=True)
    return rows


def _ratio(value):
    return "never" if value is None else f"{value:.2f}"


RUNS = ("prediction", "no_sharing", "prediction_cosine", "prediction_exponential", "prediction_fresh_insert",
        "prediction_identity_insert", "prediction_other_shared_lr", "prediction_literal")


def _measure(row, tolerance):
    """Adds, per target ("best": the from-scratch run's best validation accuracy, what a search records
    as a child's accuracy; "final": its last epoch), the time (and epochs) each run needs to reach it
    minus `tolerance`, and the ratios to the from-scratch time (wall and CPU)."""
    scratch = row["scratch"]
    targets = {"best": max(a for _, _, a in scratch), "final": scratch[-1][2]}
    row["scratch_accuracy_best"], row["scratch_accuracy_final"] = targets["best"], targets["final"]
    row["scratch_seconds_total"] = scratch[-1][0]
    for target_name, accuracy in targets.items():
        target = accuracy - tolerance
        t_scratch = time_to(scratch, target)
        c_scratch = time_to(scratch, target, cpu=True)
        row[f"scratch_seconds_to_{target_name}"] = t_scratch
        row[f"scratch_cpu_seconds_to_{target_name}"] = c_scratch
        row[f"scratch_epochs_to_{target_name}"] = epochs_to(scratch, target)
        for run in RUNS:
            if run not in row:
                continue
            t = time_to(row[run], target)
            c = time_to(row[run], target, cpu=True)
            row[f"{run}_seconds_to_{target_name}"] = t
            row[f"{run}_cpu_seconds_to_{target_name}"] = c
            row[f"{run}_cpu_ratio_to_{target_name}"] = None if c is None else c / c_scratch
            row[f"{run}_epochs_to_{target_name}"] = epochs_to(row[run], target)
            row[f"{run}_ratio_to_{target_name}"] = None if t is None else t / t_scratch
    for run in RUNS:
        if run in row:
            row[f"{run}_accuracy"] = max(a for _, _, a in row[run])
            row[f"{run}_ratio_total"] = row[run][-1][0] / scratch[-1][0]
            row[f"{run}_cpu_ratio_total"] = row[run][-1][1] / scratch[-1][1]


HEADER = ("child | run | shared (own-position keys) | scratch acc best / final | scratch s (epochs) to best / "
          "final | pred acc | pred s (epochs) to best / final | RATIO to best / final | CPU RATIO to best / final | "
          "whole-run ratio wall / CPU | w/o sharing: acc, ratio to best | other decay: acc, ratio to best | "
          "other insert init: acc, ratio to best | other shared-layer lr: acc, ratio to best | literal: acc, "
          "ratio to best")

OTHER_RUNS = {"no_sharing": "prediction without sharing", "prediction_cosine": "prediction + sharing, cosine decay",
              "prediction_exponential": "prediction + sharing, exponential decay",
              "prediction_fresh_insert": "prediction + sharing, inserted conv fresh",
              "prediction_identity_insert": "prediction + sharing, inserted conv identity",
              "prediction_other_shared_lr": "prediction + sharing, the other shared-layer learning rate",
              "prediction_literal": "prediction + sharing, the paper's literal reading (one rate, shared values "
                                    "copied, decay over all prediction epochs)"}


def action_group(child):
    """keep / scale / insert / remove, from a child's name in `prediction_speedup`."""
    for group in ("keep", "insert", "remove"):
        if child.startswith(group):
            return group
    return "scale"


def _row_line(r):
    def took(run, target):
        t = r.get(f"{run}_seconds_to_{target}")
        return "never" if t is None else f"{t:.1f} ({r[f'{run}_epochs_to_{target}']})"

    def extra(run):
        if run is None or run not in r:
            return "-"
        return (f"{r[f'{run}_accuracy']:.4f}, {_ratio(r[f'{run}_ratio_to_best'])} "
                f"(CPU {_ratio(r[f'{run}_cpu_ratio_to_best'])})")

    decay = next((run for run in ("prediction_cosine", "prediction_exponential") if run in r), None)
    init = next((run for run in ("prediction_fresh_insert", "prediction_identity_insert") if run in r), None)
    return (f"{r['child']} | {r['repeat']} | {r['shared_fraction']:.0%} ({r['shared_fraction_own_positions']:.0%}) | "
            f"{r['scratch_accuracy_best']:.4f} / {r['scratch_accuracy_final']:.4f} | "
            f"{took('scratch', 'best')} / {took('scratch', 'final')} | {r['prediction_accuracy']:.4f} | "
            f"{took('prediction', 'best')} / {took('prediction', 'final')} | "
            f"{_ratio(r['prediction_ratio_to_best'])} / {_ratio(r['prediction_ratio_to_final'])} | "
            f"{_ratio(r['prediction_cpu_ratio_to_best'])} / {_ratio(r['prediction_cpu_ratio_to_final'])} | "
            f"{r['prediction_ratio_total']:.2f} / {r['prediction_cpu_ratio_total']:.2f} | {extra('no_sharing')} | "
            + (f"{decay.split('_')[1]} {extra(decay)}" if decay else "-")
            + " | " + (f"{init.split('_')[1]} {extra(init)}" if init else "-")
            + " | " + extra("prediction_other_shared_lr") + " | " + extra("prediction_literal"))


def _finite(value):
    return None if math.isinf(value) else value


def _stats(rows, run, target):
    wall = [r[f"{run}_ratio_to_{target}"] for r in rows if r.get(f"{run}_ratio_to_{target}") is not None]
    cpu = [r[f"{run}_cpu_ratio_to_{target}"] for r in rows if r.get(f"{run}_cpu_ratio_to_{target}") is not None]
    # The median over every run, a run that never reached the target counting as infinitely slow.
    every = [r.get(f"{run}_ratio_to_{target}") for r in rows if run in r]
    every = [math.inf if w is None else w for w in every]
    return {"reached": len(wall), "runs": len(every),
            "median_ratio_all_runs": _finite(statistics.median(every)) if every else None,
            "mean_ratio": sum(wall) / len(wall) if wall else None, "max_ratio": max(wall) if wall else None,
            "median_ratio": statistics.median(wall) if wall else None,
            "within_third": sum(w <= 1 / 3 for w in wall),
            "mean_cpu_ratio": sum(cpu) / len(cpu) if cpu else None, "max_cpu_ratio": max(cpu) if cpu else None,
            "median_cpu_ratio": statistics.median(cpu) if cpu else None,
            "within_third_cpu": sum(c <= 1 / 3 for c in cpu)}


def _stats_text(st):
    text = f"reached {st['reached']}/{st['runs']}"
    if st["reached"]:
        text += (f", ratio wall median over all runs {_ratio(st['median_ratio_all_runs'])}, over the runs that reached "
                 f"it mean {st['mean_ratio']:.2f} median {st['median_ratio']:.2f} "
                 f"max {st['max_ratio']:.2f} (<= 1/3 in {st['within_third']}), CPU mean {st['mean_cpu_ratio']:.2f} "
                 f"median {st['median_cpu_ratio']:.2f} max {st['max_cpu_ratio']:.2f} "
                 f"(<= 1/3 in {st['within_third_cpu']})")
    return text


def summarize(rows, args):
    """The averages printed at the end (and stored in bench_epnas.json), overall and per action."""
    lines, summary = [], {}
    groups = [g for g in ("keep", "scale", "insert", "remove") if any(action_group(r["child"]) == g for r in rows)]
    for target in ("best", "final"):
        st = _stats(rows, "prediction", target)
        summary[target] = dict(st)
        lines.append(f"target = from-scratch {target} accuracy - {args.tolerance}: prediction + sharing "
                     f"{_stats_text(st)} (time to it / from-scratch time to it; paper: 0.2, issue: <= 0.33)")
        for group in groups:
            gst = _stats([r for r in rows if action_group(r["child"]) == group], "prediction", target)
            summary[target][f"action_{group}"] = gst
            lines.append(f"    {group}: {_stats_text(gst)}")
        for run, name in OTHER_RUNS.items():
            if any(run in r for r in rows):
                ost = _stats(rows, run, target)
                summary[target][run] = ost
                lines.append(f"    {name}: {_stats_text(ost)}")
    totals = [r["prediction_ratio_total"] for r in rows]
    cpu_totals = [r["prediction_cpu_ratio_total"] for r in rows]
    summary["mean_ratio_total"] = sum(totals) / len(totals)
    summary["mean_cpu_ratio_total"] = sum(cpu_totals) / len(cpu_totals)
    lines.append(f"whole prediction run / whole from-scratch run: mean wall {summary['mean_ratio_total']:.2f}, "
                 f"CPU {summary['mean_cpu_ratio_total']:.2f}")
    ranking = rank_agreement(rows)
    if ranking is not None:
        summary["ranking"] = ranking
        lines.append(f"ranking of the {ranking['children']} children (mean accuracy over repeats), prediction + "
                     f"sharing vs from scratch: Kendall tau {ranking['kendall_tau']:.2f} (section 3.4: prediction "
                     f"is for \"relative performance ranking\")")
    return lines, summary


def rank_agreement(rows):
    """Kendall's tau between the children's from-scratch and predicted best accuracies (means over repeats).

    None with fewer than three children.
    """
    from scipy.stats import kendalltau

    children = sorted({r["child"] for r in rows})
    if len(children) < 3:
        return None

    def mean(child, key):
        values = [r[key] for r in rows if r["child"] == child]
        return sum(values) / len(values)

    scratch = [mean(c, "scratch_accuracy_best") for c in children]
    predicted = [mean(c, "prediction_accuracy") for c in children]
    return {"children": len(children), "kendall_tau": float(kendalltau(scratch, predicted).statistic),
            "scratch": dict(zip(children, scratch)), "prediction": dict(zip(children, predicted))}


def plot(curves, path, budget_marks):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_nas.epnas.command import best_so_far

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {"epnas": "tab:blue", "random": "tab:orange"}
    for (kind, seed), rewards in curves.items():
        ax.plot(range(1, len(rewards) + 1), best_so_far(rewards), color=colors[kind], alpha=0.9,
                linestyle=("-", "--", ":", "-.")[seed % 4], label=f"{kind} seed {seed}")
    for mark in budget_marks:
        ax.axvline(mark, color="grey", alpha=0.15)
    ax.set_xlabel("trained children")
    ax.set_ylabel("best reward so far (Eq. 3)")
    ax.set_title("EPNAS vs random search, same budget and constraints")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, small budget, 3 children in part 2")
    parser.add_argument("--out", default="runs/bench_epnas")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10, help="child epochs in part 1 (one full SGDR cycle, T_0 = 10)")
    parser.add_argument("--constraint", action="append", default=None)
    parser.add_argument("--prediction-data", choices=("cluttered", "digits"), default="cluttered",
                        help="part 2 data (see the docstring)")
    parser.add_argument("--validation-renderings", type=int, default=16,
                        help="part 2, cluttered: renderings of each validation digit (see the docstring)")
    parser.add_argument("--scratch-epochs", type=int, default=20, help="part 2 from scratch [paper: 20]")
    parser.add_argument("--prediction-epochs", type=int, default=10, help="part 2 with prediction [paper: 10]")
    # Batch 64 here. The paper's x8 (128 -> 1024) leaves CIFAR-10's 45,000 training images 44 steps per
    # epoch; x4 (64 -> 256) leaves the 11,496 cluttered images 45. The learning rate keeps the paper's
    # lr/batch ratio increase (10 / 8 = 1.25): x5. digits (1,149 images): x2 / x2.
    parser.add_argument("--batch-scale", type=int, default=None, help="[paper: 8] (default 4; digits 2)")
    parser.add_argument("--lr-scale", type=float, default=None, help="[paper: 10] (default 5; digits 2)")
    parser.add_argument("--patience", type=int, default=3, help="part 2 early-stopping patience (epochs)")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="accuracy below the from-scratch one still counted as reached")
    parser.add_argument("--repeats", type=int, default=2, help="part 2: runs per child (different seeds)")
    parser.add_argument("--decay", choices=("exponential", "cosine"), default="exponential",
                        help="part 2: decay of the prediction runs (EPNASTuner's prediction_decay)")
    parser.add_argument("--no-sharing-run", action=argparse.BooleanOptionalAction, default=True,
                        help="part 2: also time prediction without the dictionary")
    parser.add_argument("--compare-decay", action=argparse.BooleanOptionalAction, default=True,
                        help="part 2: also time prediction + sharing with the other decay")
    parser.add_argument("--insert-init", choices=("identity", "fresh"), default="fresh",
                        help="part 2: how an inserted conv starts (EPNASTuner's insert_init)")
    parser.add_argument("--compare-insert-init", action=argparse.BooleanOptionalAction, default=True,
                        help="part 2: children with an inserted conv also run with the other insert init")
    parser.add_argument("--shared-lr-scale", type=float, default=1.0,
                        help="part 2: learning-rate multiple of the layers read from the dictionary "
                             "(EPNASTuner's shared_lr_scale; 1 = one rate for the whole child)")
    parser.add_argument("--shared-shrink", type=float, default=1.0,
                        help="part 2: shrink and perturb of the shared start (EPNASTuner(shared_shrink=...)) [1]")
    parser.add_argument("--shared-noise", type=float, default=0.0, help="part 2: see --shared-shrink [0]")
    parser.add_argument("--decay-epochs", type=int, default=None,
                        help="part 2: epochs of the prediction decay (EPNASTuner(prediction_decay_epochs=...); "
                             "default: --prediction-epochs)")
    parser.add_argument("--compare-literal", action=argparse.BooleanOptionalAction, default=True,
                        help="part 2: also the paper's literal prediction run (one rate, no shrink, decay over all "
                             "prediction epochs, the default batch and lr scales) when the main run differs from it")
    parser.add_argument("--compare-shared-lr", action=argparse.BooleanOptionalAction, default=True,
                        help="part 2: also run prediction + sharing with the other shared-layer rate "
                             "(1 when --shared-lr-scale is not 1, else 0.2)")
    parser.add_argument("--children", default=None,
                        help="part 2: comma-separated name fragments of the children to run (default: all)")
    parser.add_argument("--skip-search", action="store_true", help="skip part 1 (EPNAS vs random search)")
    parser.add_argument("--skip-prediction", action="store_true",
                        help="skip part 2 (performance prediction + sharing vs from scratch)")
    args = parser.parse_args(argv)
    if args.skip_search and args.skip_prediction:
        parser.error("--skip-search and --skip-prediction together leave nothing to run")
    if args.quick:
        args.seeds, args.episodes, args.branches, args.repeats = 1, 2, 3, 1
    digits_part2 = args.prediction_data == "digits"
    args.literal_scales = (2, 2.0) if digits_part2 else (4, 5.0)
    if args.batch_scale is None:
        args.batch_scale = 2 if digits_part2 else 4
    if args.lr_scale is None:
        args.lr_scale = 2.0 if digits_part2 else 5.0
    constraints = args.constraint or ["params<=5000", "flops<=400000"]

    from keras_nas import data
    from keras_nas.epnas.constraints import parse_constraints
    from keras_nas.epnas.space import EPNASSpace

    parsed = parse_constraints(constraints)
    os.makedirs(args.out, exist_ok=True)
    dataset = data.load("digits", seed=0)
    report = {"settings": vars(args), "constraints": constraints}

    if not args.skip_search:
        space = EPNASSpace("layers", channels=(16, 32, 64), max_layers=8)
        budget = args.episodes * args.branches * args.steps
        per_episode = args.branches * args.steps
        curves, seconds = {}, {}
        for seed in range(args.seeds):
            for kind in ("epnas", "random"):
                rewards, secs = search(kind, dataset, space, parsed, args.out, seed, args.episodes, args.branches,
                                       args.steps, args.top_k, args.epochs)
                curves[(kind, seed)] = rewards
                seconds[(kind, seed)] = secs
                print(f"{kind} seed {seed}: {len(rewards)} children in {secs:.0f} s, best reward {max(rewards):.4f}",
                      flush=True)
        from keras_nas.epnas.command import best_so_far

        marks = list(range(per_episode, budget + 1, per_episode))
        print(f"\nBest reward vs trained children (budget {budget}, constraints {', '.join(constraints)}):")
        print("children | " + " | ".join(f"{k} s{s}" for k, s in curves) + " | EPNAS mean | random mean")
        table = []
        for m in marks:
            row = {f"{k}_seed{s}": best_so_far(r)[m - 1] for (k, s), r in curves.items()}
            e = sum(best_so_far(curves[("epnas", s)])[m - 1] for s in range(args.seeds)) / args.seeds
            r = sum(best_so_far(curves[("random", s)])[m - 1] for s in range(args.seeds)) / args.seeds
            row.update(children=m, epnas_mean=e, random_mean=r)
            table.append(row)
            print(f"{m:8d} | " + " | ".join(f"{row[f'{k}_seed{s}']:.4f}" for k, s in curves)
                  + f" | {e:.4f} | {r:.4f}")
        final = table[-1]
        print(f"at {budget} children: EPNAS {final['epnas_mean']:.4f} vs random {final['random_mean']:.4f} "
              f"(difference {final['epnas_mean'] - final['random_mean']:+.4f})", flush=True)
        plot(curves, os.path.join(args.out, "reward_vs_children.png"), marks)
        report["search"] = {"table": table, "curves": {f"{k}_seed{s}": r for (k, s), r in curves.items()},
                            "seconds": {f"{k}_seed{s}": v for (k, s), v in seconds.items()}}

    if not args.skip_prediction:
        report.update(prediction_part(dataset, args))
    with open(os.path.join(args.out, "bench_epnas.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def prediction_part(dataset, args):
    """Part 2: prediction + sharing against from scratch; returns its report entries."""
    digits_part2 = args.prediction_data == "digits"
    part2 = dataset if digits_part2 else cluttered_digits(
        seed=0, validation_renderings=args.validation_renderings)
    print(f"\nPerformance prediction + sharing vs from scratch on {args.prediction_data} "
          f"(batch x{args.batch_scale}, lr x{args.lr_scale:g}, {args.decay} decay over "
          f"{args.decay_epochs or args.prediction_epochs} of {args.prediction_epochs} epochs, patience "
          f"{args.patience}, inserted conv {args.insert_init}, layers read from the dictionary at "
          f"x{args.shared_lr_scale:g} the rate, shrink {args.shared_shrink:g} noise {args.shared_noise:g}; "
          f"from scratch "
          f"{args.scratch_epochs} epochs, SGDR)", flush=True)
    print(HEADER, flush=True)
    rows = prediction_speedup(part2, args.out, args)
    print("\nSummary:")
    print(HEADER)
    for r in rows:
        print(_row_line(r))
    lines, summary = summarize(rows, args)
    for line in lines:
        print(line, flush=True)
    return {"prediction_summary": summary, "prediction": rows}


if __name__ == "__main__":
    main()
