"""One EoiNAS / GDAS / DARTS cell search on one dataset: the supernet trained with its schedules and pruning.

`one_shot_search` is one seed's search (sec. 4.2, Algorithm 1): the
bilevel supernet of `darts.search_network` trained with the temperature
schedule, the architecture warm-up and gradual operation pruning (Eq. 5-7),
checkpointed each epoch. `SEARCH_OPTIONS` are its settings; the seed tuner
runs it once per seed and `command` builds the whole search on it.
"""

import inspect
import os
import time

from keras_nas import io
from keras_nas.engine import options
from keras_nas.engine.options import Option, OptionError
from keras_nas.eoinas.genotypes import EDGE_MODES, EXECUTORS

VARIANTS = ("eoinas", "gop", "gdas")


def _criterion(variant):
    return {"eoinas": "importance", "gop": "alpha", "gdas": "alpha"}[variant]


def final_scores(model, variant, importance_lambda=0.5):
    """Per-cell-type scores the genotype is derived from (I for EoiNAS, beta otherwise)."""
    # TensorFlow-backed: the command line imports this module for its options before TensorFlow loads.
    from keras_nas.eoinas.operation_pruning import alpha_scores, operation_importance

    state = model.search_state()
    scores = {}
    for kind in ("normal", "reduce"):
        if variant == "eoinas":
            scores[kind] = operation_importance(state["alpha"][kind], state["live"][kind], state["accuracy"][kind],
                                                state["counts"][kind], importance_lambda)
        else:
            scores[kind] = alpha_scores(state["alpha"][kind], state["live"][kind])
    return scores


SEARCH = "EoiNAS search (paper 003; CPU-small defaults, the paper's values in recipes/)"
# The settings of one one-shot search (`one_shot_search`), with the CLI's CPU-small defaults.
SEARCH_OPTIONS = (
    Option("variant", "eoinas", "eoinas: prune + derive by importance I; gop: prune by alpha; gdas: no pruning "
           "(Table 3)", choices=VARIANTS, group=SEARCH),
    Option("edge_mode", "gdas", "gdas: compute only the sampled op; darts: softmax mixture; gumbel_soft: relaxed "
           "sample", choices=EDGE_MODES, group=SEARCH),
    Option("cells", 5, "search-network cells", low=3, paper=8, group=SEARCH),
    Option("init_channels", 8, "search-network channels C", low=1, paper=16, group=SEARCH),
    Option("epochs", 8, "search epochs", low=1, paper=160, group=SEARCH),
    Option("warmup_epochs", 1, "epochs with frozen alpha", low=0, paper=20, group=SEARCH),
    Option("prune_interval", 1, "epochs between prunings", low=1, paper=20, group=SEARCH),
    Option("learning_rate", 0.025, "weights: SGD learning rate, cosine to --min-learning-rate", low=0,
           low_open=True, paper=0.025, group=SEARCH),
    Option("min_learning_rate", 0.001, "weights: final learning rate", low=0, paper=0.001, group=SEARCH),
    Option("arch_learning_rate", 3e-4, "alpha: Adam learning rate", low=0, low_open=True, paper=3e-4, group=SEARCH),
    Option("importance_lambda", 0.5, "lambda of Eq. (7)", low=0, paper=0.5, group=SEARCH),
    Option("tau_max", 5.0, "initial Gumbel temperature", low=0, low_open=True, paper=5, group=SEARCH),
    Option("tau_min", 0.1, "final Gumbel temperature", low=0, low_open=True, paper="0 (0.1 in GDAS' code)",
           group=SEARCH),
    Option("update_unsampled_ops", True, "gdas: also apply momentum and weight decay to the ops an edge did not "
           "sample (2019 GDAS code); --no-update-unsampled-ops updates the sampled ops only (GDAS on PyTorch >= "
           "2), faster; one replica only", group=SEARCH),
    Option("executor", "auto", "ops: the step's loop runs eagerly over small compiled op functions, only "
           "sampled ops run (first step in seconds); graph: the whole step as one traced graph (minutes to "
           "trace; for --strategy mirrored and --mixed-precision); auto: ops where it can run, else graph",
           choices=EXECUTORS, group=SEARCH),
    Option("lower_weight_case", False, "graph executor, gdas: run the weight step's sampled ops as lowered "
           "Switch/Merge instead of functional Case ops: faster graph steps at the paper's size, minutes longer "
           "to trace", group=SEARCH),
    Option("lower_arch_case", False, "graph executor, gdas: the same for the architecture step (skips the unused "
           "weight gradients)", group=SEARCH),
    Option("latency_weight", 0.0, "add this weight x the derived network's expected latency (from a darts "
           "latency table, over the reference: --target-latency-ms, else the start's) to the architecture loss "
           "(FBNet/ProxylessNAS-style, differentiable through the op probabilities); 0: off", low=0,
           paper="none (EoiNAS has no latency term)", group=SEARCH),
)


def validate_search_options(**values):
    """Checks the settings of `SEARCH_OPTIONS` alone and against each other; returns them with defaults."""
    values = options.check_values(SEARCH_OPTIONS, values)
    if values["warmup_epochs"] >= values["epochs"]:
        raise OptionError("`warmup_epochs` must be smaller than `epochs`.", warmup_epochs=values["warmup_epochs"],
                          epochs=values["epochs"])
    if values["tau_min"] > values["tau_max"]:
        raise OptionError("`tau_min` must be <= `tau_max`.", tau_min=values["tau_min"], tau_max=values["tau_max"])
    if values["min_learning_rate"] > values["learning_rate"]:
        raise OptionError("`min_learning_rate` must be <= `learning_rate`.",
                          min_learning_rate=values["min_learning_rate"], learning_rate=values["learning_rate"])
    for name in ("lower_weight_case", "lower_arch_case"):
        if values[name] and values["executor"] == "ops":
            raise OptionError(f"`{name}=True` shapes the one-graph step: it needs `executor='graph'` or 'auto'.",
                              **{name: True}, executor="ops")
    for name in ("update_unsampled_ops", "lower_weight_case", "lower_arch_case"):
        if values[name] != (name == "update_unsampled_ops") and values["edge_mode"] != "gdas":
            raise OptionError(f"`{name}={values[name]}` needs `edge_mode='gdas'` (the other modes run every op).",
                              **{name: values[name]}, edge_mode=values["edge_mode"])
    return values


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
    if search_kwargs.get("latency_weight") and not search_kwargs.get("latency_costs"):
        raise ValueError("`latency_weight` > 0 needs `latency_costs` (keras_nas.eoinas.latency_cost.edge_costs of "
                         "a darts latency table).")
    checked = {o.name for o in SEARCH_OPTIONS}
    defaults = {name: p.default for name, p in parameters.items() if name in checked}
    validate_search_options(**{**defaults, **{k: v for k, v in search_kwargs.items() if k in checked}})
    return dict(search_kwargs)


def one_shot_search(dataset, directory, *, seed=0, cells=8, init_channels=16, epochs=160, warmup_epochs=20,
                    prune_interval=20, variant="eoinas", edge_mode="gdas", learning_rate=0.025,
                    min_learning_rate=0.001, momentum=0.9, weight_decay=3e-4, grad_clip=5.0,
                    arch_learning_rate=3e-4, arch_weight_decay=1e-3, importance_lambda=0.5, tau_max=5.0,
                    tau_min=0.1, tau_schedule="exponential", update_unsampled_ops=True, lower_weight_case=False,
                    lower_arch_case=False, executor="auto", latency_weight=0.0, latency_costs=None,
                    latency_reference_ms=None, verbose=2):
    """One EoiNAS search (Algorithm 1) in `directory`; resumes from its checkpoint.

    Defaults are the paper's CIFAR-10 settings (sec. 4.2). Writes
    `genotype.json`, `genotype.png`, `pruning.json`, `search.json` and
    TensorBoard logs into `directory`.

    `latency_costs` (`keras_nas.eoinas.latency_cost.edge_costs` of a darts
    latency table) makes the search track the derived network's expected
    latency; `latency_weight` > 0 adds it to the architecture loss over
    `latency_reference_ms` (see `BilevelSearchModel`).

    Returns:
        dict: `genotype` (DARTS JSON form), `val_accuracy`, `history`,
        `search_seconds`, `pruning` (decisions), and with `latency_costs`
        `expected_latency_ms` (at the end).
    """
    import keras
    import tensorflow as tf

    # TensorFlow-backed (see `final_scores`).
    from keras_nas import eoinas, training
    from keras_nas.engine.checkpoint import EpochCheckpoint
    from keras_nas.eoinas import darts

    validate_search_options(
        variant=variant, edge_mode=edge_mode, cells=cells, init_channels=init_channels, epochs=epochs,
        warmup_epochs=warmup_epochs, prune_interval=prune_interval, learning_rate=learning_rate,
        min_learning_rate=min_learning_rate, arch_learning_rate=arch_learning_rate,
        importance_lambda=importance_lambda, tau_max=tau_max, tau_min=tau_min,
        update_unsampled_ops=update_unsampled_ops, lower_weight_case=lower_weight_case,
        lower_arch_case=lower_arch_case, executor=executor, latency_weight=latency_weight)
    done = io.read_json(os.path.join(directory, "search.json"))
    if done is not None:
        return done
    os.makedirs(directory, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = darts.search_network(
        cells=cells, channels=init_channels, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
        edge_mode=edge_mode, weight_decay=weight_decay, arch_weight_decay=arch_weight_decay,
        grad_clip=grad_clip, temperature=tau_max, update_unsampled_ops=update_unsampled_ops,
        lower_weight_case=lower_weight_case, lower_arch_case=lower_arch_case, executor=executor,
        latency_costs=latency_costs, latency_weight=latency_weight, latency_reference_ms=latency_reference_ms,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        arch_optimizer=keras.optimizers.Adam(learning_rate=arch_learning_rate, beta_1=0.5, beta_2=0.999),
        # XLA would compile all branches of every edge's `Case` op; the graph
        # already runs only the sampled op.
        jit_compile=False,
    )
    checkpoint = EpochCheckpoint(directory, optimizers=("optimizer", "arch_optimizer"))
    initial_epoch, _ = checkpoint.restore(model)
    pruning_log = os.path.join(directory, "pruning.json")
    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch: training.learning_rate_at(
            epoch, learning_rate=learning_rate, epochs=epochs, schedule="cosine",
            min_learning_rate=min_learning_rate)),
        eoinas.TemperatureSchedule(epochs, tau_max=tau_max, tau_min=tau_min, schedule=tau_schedule),
        eoinas.ArchitectureWarmup(warmup_epochs),
    ]
    if variant != "gdas":
        callbacks.append(eoinas.OperationPruning(warmup_epochs, prune_interval, criterion=_criterion(variant),
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
    if latency_costs:
        result["expected_latency_ms"] = float(model.expected_latency())
    io.atomic_write_json(os.path.join(directory, "search.json"), result)
    return io.read_json(os.path.join(directory, "search.json"))
