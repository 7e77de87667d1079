"""`keras-nas search eoinas`: EoiNAS (paper 003) on GDAS, its ablations and DARTS.

Pipeline (sec. 4.2): search normal + reduction cells with the bilevel
supernet for every seed (KerasTuner trials), keep the genotype of the seed
with the best validation accuracy, draw it, then train the network built from
it and save `<out>/best_model.keras`.

Variants (Table 3): `gdas` = baseline (no pruning, cells from alpha),
`gop` = + gradual operation pruning by alpha, `eoinas` = pruning and cells by
the operation importance indicator I (Eq. 7). `--edge-mode darts` runs the
same supernet as a DARTS softmax mixture.
"""

import argparse
import inspect
import os
import time

from keras_nas import io

VARIANTS = ("eoinas", "gop", "gdas")
EDGE_MODES = ("gdas", "darts", "gumbel_soft")


def _criterion(variant):
    return {"eoinas": "importance", "gop": "alpha", "gdas": "alpha"}[variant]


def final_scores(model, variant, importance_lambda=0.5):
    """Per-cell-type scores the genotype is derived from (I for EoiNAS, beta otherwise)."""
    from keras_nas.callbacks.operation_pruning import alpha_scores, operation_importance

    state = model.search_state()
    scores = {}
    for kind in ("normal", "reduce"):
        if variant == "eoinas":
            scores[kind] = operation_importance(state["alpha"][kind], state["live"][kind], state["accuracy"][kind],
                                                state["counts"][kind], importance_lambda)
        else:
            scores[kind] = alpha_scores(state["alpha"][kind], state["live"][kind])
    return scores


def validate_search_options(epochs, warmup_epochs, prune_interval, variant, edge_mode, cells, channels,
                            importance_lambda, tau_max, tau_min, update_unsampled_ops=True, lower_weight_case=False,
                            lower_arch_case=False):
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {list(VARIANTS)}. Received: variant={variant!r}")
    if edge_mode not in EDGE_MODES:
        raise ValueError(f"`edge_mode` must be one of {list(EDGE_MODES)}. Received: edge_mode={edge_mode!r}")
    for name, value, low in (("epochs", epochs, 1), ("prune_interval", prune_interval, 1), ("cells", cells, 3),
                             ("channels", channels, 1), ("warmup_epochs", warmup_epochs, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
    if warmup_epochs >= epochs:
        raise ValueError(
            f"`warmup_epochs` must be smaller than `epochs`. Received: warmup_epochs={warmup_epochs}, epochs={epochs}")
    if importance_lambda < 0:
        raise ValueError(f"`importance_lambda` must be >= 0. Received: importance_lambda={importance_lambda}")
    if not 0 < tau_min <= tau_max:
        raise ValueError(f"`tau_min`/`tau_max` must satisfy 0 < tau_min <= tau_max. Received: {tau_min}, {tau_max}")
    for name, value in (("update_unsampled_ops", update_unsampled_ops), ("lower_weight_case", lower_weight_case),
                        ("lower_arch_case", lower_arch_case)):
        if not isinstance(value, bool):
            raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    if not update_unsampled_ops and edge_mode != "gdas":
        raise ValueError("`update_unsampled_ops=False` needs `edge_mode='gdas'` (the other modes train every op). "
                         f"Received: edge_mode={edge_mode!r}")
    for name, value in (("lower_weight_case", lower_weight_case), ("lower_arch_case", lower_arch_case)):
        if value and edge_mode != "gdas":
            raise ValueError(f"`{name}=True` needs `edge_mode='gdas'` (the other modes have no sampled op). "
                             f"Received: edge_mode={edge_mode!r}")


def _read_history(path, epochs_done):
    """Per-epoch logs from the CSVLogger file, last row per epoch, epochs < epochs_done."""
    import csv

    if not os.path.exists(path):
        return {}
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            # An epoch logged twice (killed after the log, before the
            # checkpoint, then run again): the later row is the one kept.
            rows[int(row.pop("epoch"))] = row
    epochs = [e for e in sorted(rows) if e < epochs_done]
    keys = sorted({k for e in epochs for k in rows[e]})
    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return None

    history = {k: [number(rows[e].get(k)) for e in epochs] for k in keys}
    # CSVLogger adds "val_*" columns of "NA" when fit has no validation data:
    # a column with no value at all is not part of the history.
    return {k: [float("nan") if v is None else v for v in values]
            for k, values in history.items() if any(v is not None for v in values)}


def check_search_kwargs(search_kwargs):
    """Refuses unknown or invalid `one_shot_search` arguments; returns a copy.

    `EoiNASSeedTuner` calls it in its constructor: a trial that raised them
    would only be recorded as failed, one seed after the other. `dataset`,
    `directory` and `seed` are the tuner's to pass.
    """
    if search_kwargs is None:
        return {}
    if not isinstance(search_kwargs, dict):
        raise TypeError(f"`search_kwargs` must be a dict. Received: search_kwargs={search_kwargs!r}")
    parameters = inspect.signature(one_shot_search).parameters
    reserved = sorted({"dataset", "directory", "seed"} & set(search_kwargs))
    if reserved:
        raise ValueError(f"`search_kwargs` must not set {reserved}: the tuner passes the dataset, each trial's "
                         f"directory and the oracle's seed. Received: search_kwargs={search_kwargs!r}")
    unknown = sorted(set(search_kwargs) - set(parameters))
    if unknown:
        raise TypeError(f"`search_kwargs` has keys `one_shot_search` does not take: {unknown}. "
                        f"Expected some of {sorted(set(parameters) - {'dataset', 'directory', 'seed'})}.")
    options = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    options.update(search_kwargs)
    checked = inspect.signature(validate_search_options).parameters
    validate_search_options(**{name: options[name] for name in checked})
    return dict(search_kwargs)


def one_shot_search(dataset, directory, *, seed=0, cells=8, channels=16, epochs=160, warmup_epochs=20,
                    prune_interval=20, variant="eoinas", edge_mode="gdas", learning_rate=0.025,
                    min_learning_rate=0.001, momentum=0.9, weight_decay=3e-4, grad_clip=5.0,
                    arch_learning_rate=3e-4, arch_weight_decay=1e-3, importance_lambda=0.5, tau_max=5.0,
                    tau_min=0.1, tau_schedule="exponential", update_unsampled_ops=True, lower_weight_case=False,
                    lower_arch_case=False, verbose=2):
    """One EoiNAS search (Algorithm 1) in `directory`; resumes from its checkpoint.

    Defaults are the paper's CIFAR-10 settings (sec. 4.2). Writes
    `genotype.json`, `genotype.png`, `pruning.json`, `search.json` and
    TensorBoard logs into `directory`.

    Returns:
        dict: `genotype` (DARTS JSON form), `val_accuracy`, `history`,
        `search_seconds`, `pruning` (decisions).
    """
    import keras
    import tensorflow as tf

    from keras_nas import callbacks as cb
    from keras_nas import training
    from keras_nas.spaces import darts

    validate_search_options(epochs, warmup_epochs, prune_interval, variant, edge_mode, cells, channels,
                            importance_lambda, tau_max, tau_min, update_unsampled_ops, lower_weight_case,
                            lower_arch_case)
    done = io.read_json(os.path.join(directory, "search.json"))
    if done is not None:
        return done
    os.makedirs(directory, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = darts.search_network(
        cells=cells, channels=channels, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
        edge_mode=edge_mode, weight_decay=weight_decay, arch_weight_decay=arch_weight_decay,
        grad_clip=grad_clip, temperature=tau_max, update_unsampled_ops=update_unsampled_ops,
        lower_weight_case=lower_weight_case, lower_arch_case=lower_arch_case,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        arch_optimizer=keras.optimizers.Adam(learning_rate=arch_learning_rate, beta_1=0.5, beta_2=0.999),
        # XLA would compile all branches of every edge's `Case` op; the graph
        # already runs only the sampled op.
        jit_compile=False,
    )
    checkpoint = cb.SearchCheckpoint(directory)
    initial_epoch = checkpoint.restore(model)
    pruning_log = os.path.join(directory, "pruning.json")
    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch: training.learning_rate_at(
            epoch, learning_rate=learning_rate, epochs=epochs, schedule="cosine",
            min_learning_rate=min_learning_rate)),
        cb.TemperatureSchedule(epochs, tau_max=tau_max, tau_min=tau_min, schedule=tau_schedule),
        cb.ArchitectureWarmup(warmup_epochs),
    ]
    if variant != "gdas":
        callbacks.append(cb.OperationPruning(warmup_epochs, prune_interval, criterion=_criterion(variant),
                                             importance_lambda=importance_lambda, log_path=pruning_log))
    # Appended per epoch (Keras CSVLogger), so a killed search keeps the
    # history of its finished epochs.
    history_csv = os.path.join(directory, "history.csv")
    callbacks += [checkpoint, keras.callbacks.CSVLogger(history_csv, append=True), keras.callbacks.TerminateOnNaN(),
                  keras.callbacks.TensorBoard(os.path.join(directory, "logs"), write_graph=False)]
    # Weight half and architecture half side by side (Algorithm 1 lines 3-4).
    data = tf.data.Dataset.zip((dataset.train, dataset.validation.repeat()))
    start = time.perf_counter()
    history = {}
    if initial_epoch < epochs:
        history = model.fit(data, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                            verbose=verbose).history
    seconds = time.perf_counter() - start
    history = _read_history(history_csv, epochs_done=initial_epoch + len(next(iter(history.values()), [])))
    io.atomic_write_json(os.path.join(directory, "history.json"), history)
    scores = final_scores(model, variant, importance_lambda)
    genotype = darts.derive_genotype(scores["normal"], scores["reduce"], model.primitives, model.steps,
                                     model.multiplier)
    darts.save_genotype(genotype, os.path.join(directory, "genotype.json"))
    darts.plot_genotype(genotype, os.path.join(directory, "genotype.png"), title=f"{variant} seed {seed}")
    arch_acc = history.get("arch_accuracy") or [float("nan")]
    state = model.search_state()
    result = {
        "seed": seed,
        "genotype": darts.genotype_to_dict(genotype),
        # Accuracy of the sampled architectures on the validation half in the
        # last epoch (GDAS/EoiNAS choose the best seed on validation accuracy).
        "val_accuracy": float(arch_acc[-1]),
        "history": history,
        "search_seconds": seconds,
        "pruning": io.read_json(pruning_log, default={}).get("decisions", []),
        "scores": {k: v for k, v in scores.items()},
        "alpha": state["alpha"],
        "live_ops": {k: [[model.primitives[j] for j in range(v.shape[1]) if v[i, j] > 0.5]
                         for i in range(v.shape[0])] for k, v in state["live"].items()},
    }
    io.atomic_write_json(os.path.join(directory, "search.json"), result)
    return io.read_json(os.path.join(directory, "search.json"))


def add_arguments(parser):
    s = parser.add_argument_group("EoiNAS search (paper 003; CPU-small defaults, paper values in recipes/)")
    s.add_argument("--variant", choices=VARIANTS, default="eoinas",
                   help="eoinas: prune + derive by importance I; gop: prune by alpha; gdas: no pruning")
    s.add_argument("--edge-mode", choices=EDGE_MODES, default="gdas",
                   help="gdas: compute only the sampled op; darts: softmax mixture; gumbel_soft: relaxed sample")
    s.add_argument("--cells", type=int, default=5, help="search-network cells (paper: 8)")
    s.add_argument("--init-channels", type=int, default=8, help="search-network channels C (paper: 16)")
    s.add_argument("--epochs", type=int, default=8, help="search epochs (paper: 160)")
    s.add_argument("--warmup-epochs", type=int, default=1, help="epochs with frozen alpha (paper: 20)")
    s.add_argument("--prune-interval", type=int, default=1, help="epochs between prunings (paper: 20)")
    s.add_argument("--seeds", type=int, default=1, help="searches with seeds 0..N-1, one KerasTuner trial each (paper: 4)")
    s.add_argument("--learning-rate", type=float, default=0.025, help="weights: SGD lr, cosine to --min-learning-rate")
    s.add_argument("--min-learning-rate", type=float, default=0.001)
    s.add_argument("--arch-learning-rate", type=float, default=3e-4, help="alpha: Adam lr")
    s.add_argument("--importance-lambda", type=float, default=0.5, help="lambda of Eq. (7)")
    s.add_argument("--tau-max", type=float, default=5.0, help="initial Gumbel temperature")
    s.add_argument("--tau-min", type=float, default=0.1, help="final Gumbel temperature")
    s.add_argument("--update-unsampled-ops", action=argparse.BooleanOptionalAction, default=True,
                   help="gdas: also apply momentum and weight decay to the ops an edge did not sample (2019 GDAS "
                        "code); --no-update-unsampled-ops updates the sampled ops only (GDAS on PyTorch >= 2), "
                        "faster; one replica only")
    s.add_argument("--lower-weight-case", action=argparse.BooleanOptionalAction, default=False,
                   help="gdas: run the weight step's sampled ops as lowered Switch/Merge instead of functional Case "
                        "ops: faster steps at the paper's size, minutes longer to trace; for long searches")
    s.add_argument("--lower-arch-case", action=argparse.BooleanOptionalAction, default=False,
                   help="gdas: the same for the architecture step (skips the unused weight gradients)")
    e = parser.add_argument_group("training the derived network")
    e.add_argument("--eval-cells", type=int, default=5, help="cells (paper: 20)")
    e.add_argument("--eval-channels", type=int, default=16, help="channels C (paper: 36)")
    e.add_argument("--eval-epochs", type=int, default=10, help="epochs (paper: 600)")
    e.add_argument("--eval-learning-rate", type=float, default=0.025)
    e.add_argument("--drop-path", type=float, default=0.0, help="drop-path rate (paper: 0.3)")
    e.add_argument("--auxiliary-weight", type=float, default=0.4, help="auxiliary head loss weight; 0 = no head")


def _search_kwargs(args):
    return {
        "cells": args.cells, "channels": args.init_channels, "epochs": args.epochs,
        "warmup_epochs": args.warmup_epochs, "prune_interval": args.prune_interval, "variant": args.variant,
        "edge_mode": args.edge_mode, "learning_rate": args.learning_rate,
        "min_learning_rate": args.min_learning_rate, "arch_learning_rate": args.arch_learning_rate,
        "importance_lambda": args.importance_lambda, "tau_max": args.tau_max, "tau_min": args.tau_min,
        "update_unsampled_ops": args.update_unsampled_ops, "lower_weight_case": args.lower_weight_case,
        "lower_arch_case": args.lower_arch_case,
    }


def run(args):
    from keras_nas import training
    from keras_nas.callbacks.drop_path_schedule import DropPathSchedule
    from keras_nas.oracles.seed_oracle import SeedOracle
    from keras_nas.searches import common
    from keras_nas.spaces import darts
    from keras_nas.tuners.eoinas_seed_tuner import EoiNASSeedTuner

    search_kwargs = _search_kwargs(args)
    check_search_kwargs(search_kwargs)
    if not isinstance(args.seeds, int) or args.seeds < 1:
        raise ValueError(f"`--seeds` must be an int >= 1. Received: {args.seeds!r}")
    for name in ("eval_cells", "eval_channels", "eval_epochs"):
        if getattr(args, name) < (3 if name == "eval_cells" else 1):
            raise ValueError(f"`--{name.replace('_', '-')}` is too small. Received: {getattr(args, name)}")
    if not 0 <= args.drop_path < 1:
        raise ValueError(f"`--drop-path` must be in [0, 1). Received: {args.drop_path}")
    if args.auxiliary_weight < 0:
        raise ValueError(f"`--auxiliary-weight` must be >= 0. Received: {args.auxiliary_weight}")
    out = common.out_dir(args, "eoinas")
    config = {**common.common_config(args), **search_kwargs, "seeds": args.seeds,
              **{k: getattr(args, k) for k in ("eval_cells", "eval_channels", "eval_epochs",
                                                "eval_learning_rate", "drop_path", "auxiliary_weight")}}
    strategy = common.setup_runtime(args)
    if not args.update_unsampled_ops and strategy is not None and strategy.num_replicas_in_sync > 1:
        raise ValueError("`--no-update-unsampled-ops` runs on one replica only. Received: "
                         f"{strategy.num_replicas_in_sync} replicas (--strategy mirrored)")
    dataset = common.load_data(args)
    # Folders written before these settings existed ran with these values.
    resumed = io.prepare_out_dir(out, config, overwrite=args.overwrite,
                                 added_defaults={"update_unsampled_ops": True, "lower_weight_case": False,
                                                 "lower_arch_case": False})
    io.write_preprocessing(out, dataset)
    print(f"{'Resuming' if resumed else 'Starting'} EoiNAS ({args.variant}, edge mode {args.edge_mode}) on "
          f"{dataset.name} {dataset.input_shape}: {args.seeds} seed(s) x {args.epochs} epochs -> {out}", flush=True)
    search_kwargs["verbose"] = args.verbose
    oracle = SeedOracle(seeds=list(range(args.seed, args.seed + args.seeds)), **common.oracle_arguments(args))
    tuner = EoiNASSeedTuner(oracle, search_kwargs=search_kwargs, directory=out, project_name="tuner",
                            overwrite=False, distribution_strategy=strategy)
    common.run_search(tuner, oracle, out, "eoinas", dataset=dataset)
    if common.role() == "worker":
        return {"role": "worker"}
    # KerasTuner pads the best trials with unfinished ones: keep completed ones.
    completed = [t for t in oracle.get_best_trials(len(oracle.trials)) if t.status == "COMPLETED"]
    if not completed:
        raise RuntimeError(f"Every seed's search failed ({common.failure_summary(common.trial_records(oracle))}). "
                           "Fix the cause and run the same command with --overwrite.")
    best = completed[0]
    search = io.read_json(os.path.join(tuner.trial_search_dir(best.trial_id), "search.json"))
    genotype = darts.genotype_from_dict(search["genotype"])
    darts.save_genotype(genotype, os.path.join(out, "genotype.json"))
    darts.plot_genotype(genotype, os.path.join(out, "genotype.png"),
                        title=f"EoiNAS ({args.variant}) best seed {search['seed']}")
    print(f"Best seed {search['seed']} (val accuracy {search['val_accuracy']:.4f}); genotype: "
          f"{darts.genotype_to_dict(genotype)}", flush=True)
    model = darts.eval_network(genotype, cells=args.eval_cells, channels=args.eval_channels,
                               num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                               auxiliary=args.auxiliary_weight > 0, drop_path=args.drop_path,
                               auxiliary_weight=args.auxiliary_weight or 0.4)
    print(f"Training the derived network ({darts.count_params_without_auxiliary(model):,} parameters without "
          f"the auxiliary head) for {args.eval_epochs} epochs", flush=True)
    result = training.train_model(model, dataset, epochs=args.eval_epochs, optimizer="sgd",
                                  learning_rate=args.eval_learning_rate, momentum=0.9, weight_decay=3e-4,
                                  schedule="cosine", out=out, verbose=args.verbose,
                                  callbacks=[DropPathSchedule(args.eval_epochs)])
    training.plot_history(result["history"], os.path.join(out, "history.png"), title="derived network")
    results = {
        "method": "eoinas",
        "variant": args.variant,
        "edge_mode": args.edge_mode,
        "best_seed": search["seed"],
        "genotype": darts.genotype_to_dict(genotype),
        "trials": common.trial_records(oracle),
        "search": {k: search[k] for k in ("val_accuracy", "search_seconds", "pruning", "live_ops")},
        "final": result,
        "params_without_auxiliary": darts.count_params_without_auxiliary(model),
        "costs": training.summarize_costs(model, result["train_seconds"]),
    }
    io.atomic_write_json(os.path.join(out, io.RESULTS_FILE), results)
    print(f"Test accuracy {result['test_accuracy']:.4f}; model in {os.path.join(out, 'best_model.keras')}",
          flush=True)
    return results
