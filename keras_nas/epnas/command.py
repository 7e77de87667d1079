"""EPNAS (Zhou et al., paper 002): an LSTM policy morphs networks under resource constraints.

Each episode starts N branches from networks (random at first, then the
top-k children of the last episode); for T steps the policy scales groups of
layers and inserts/removes a layer (or a branch of a cell in module search),
every child is trained as one KerasTuner trial and rewarded with
r = val_accuracy x prod_i 0.9^violation_i (Eq. 2-3); REINFORCE updates the
policy after each episode. `--prediction` trains each child briefly with
batch size and learning rate scaled up together and shared parameters
(section 3.4). `--baseline random` runs random search on the same budget and
constraints. The defaults run in a few minutes on a CPU on the bundled
digits; the paper's CIFAR-10 settings are in `recipes/epnas_cifar10_layers.py`
and `recipes/epnas_cifar10_module.py` (15 episodes, 8 branches, 10 / 5 steps,
20 epochs per child or 10 with prediction, Nesterov, SGDR).
"""

# The command line imports this module to list and check its options before TensorFlow loads, so
# the functions that train import the TensorFlow-backed modules (and keras_nas' own) where they run.

import os

from keras_nas import io
from keras_nas.engine import common_options, options
from keras_nas.engine import entry
from keras_nas.engine.options import Option, OptionError
from keras_nas.engine import runtime as common

BASELINES = ("none", "random")
INSERT_INITS = ("identity", "fresh")
# Settings added after results folders were written without them, with the value those runs had
# (`results_folder.open_folder(added_defaults=...)`): such a folder resumes unless the setting is changed.
# `--latency-margin` came with the latency constraint, before any release: a folder of an earlier
# latency-constrained run resumes with the default margin.
ADDED_DEFAULTS = {"insert_init": "fresh", "shared_lr_scale": 1.0, "shared_shrink": 1.0, "shared_noise": 0.0,
                  "prediction_decay_epochs": None, "skip_unreadable_images": False, "strategy": "default",
                  "mixed_precision": False, "jit_compile": False, "latency_table": None,
                  "latency_margin": None}


GROUP = "EPNAS options"


def _constraint(name, value):
    from keras_nas.epnas.constraints import parse_constraint

    try:
        parse_constraint(value)
    except (TypeError, ValueError) as error:
        raise options.reword(error, {name: value}, f"`{name}`: ") from None
    return value


def _channel_table(name, value):
    return options.check_int_list(name, value, low=1, metavar="comma-separated channel counts such as 16,32,64")


def _initial_layers(name, value):
    values = options.check_int_list(name, value, low=1, length=2, metavar="LOW,HIGH with 1 <= LOW <= HIGH")
    if values[0] > values[1]:
        raise OptionError(f"`{name}` must be LOW,HIGH with 1 <= LOW <= HIGH.", **{name: values})
    return values


OPTIONS = (
    Option("mode", "layers", "layer-by-layer search (Table 2) or module/cell search (Table 3)",
           choices=("layers", "module"), paper="both", group=GROUP),
    Option("constraint", None, "resource constraint, repeatable: params|flops|macs|intensity|memory_mb|latency_ms "
           "with <= or >=, e.g. --constraint params<=2e6 --constraint intensity>=80 --constraint latency_ms<=2",
           repeat=True, validate=_constraint, paper="Table 5", metavar="RESOURCE<=VALUE", group=GROUP),
    Option("latency_table", None, "with a latency_ms constraint: predict each child's latency from this table "
           "(keras-nas latency-table --space epnas for --mode layers, --space epnas-module with these --stages, "
           "--cells-per-stage, --filters, --channel-table for --mode module; same input size) instead of timing "
           "each child (TFLite, 1 thread, batch 1)", validate=common_options.latency_table_file("epnas|epnas-module"),
           metavar="TABLE.json", group=GROUP),
    common_options.latency_margin_option(GROUP, "a latency_ms<=X constraint"),
    Option("penalty_base", 0.9, "base penalty p of Eq. 2", low=0, high=1, paper=0.9, group=GROUP),
    Option("episodes", 3, "episodes", low=1, paper=15, group=GROUP),
    Option("branches", 3, "parallel branches N per episode", low=1, paper=8, group=GROUP),
    Option("steps", 2, "steps T per episode", low=1, paper="10 layers, 5 module", group=GROUP),
    Option("top_k", 2, "children that start the next episode", low=1, paper=8, group=GROUP),
    Option("baseline", "none", "random: random search on the same budget (episodes x branches x steps) and "
           "constraints", choices=BASELINES, group=GROUP),
    Option("epochs", 10, "epochs per child", low=1, paper=20, group=GROUP),
    Option("prediction", False, "performance prediction + parameter sharing (section 3.4)", paper="both, Table 4",
           group=GROUP),
    Option("prediction_epochs", 5, "epochs per child with prediction", low=1, paper=10, group=GROUP),
    Option("batch_scale", 4, "batch-size factor with prediction", low=1, paper="8: 128->1024", group=GROUP),
    Option("lr_scale", 4.0, "learning-rate factor with prediction", low=0, low_open=True, paper="10: 0.05->0.5",
           group=GROUP),
    Option("patience", 3, "early-stopping patience with prediction", low=1, group=GROUP),
    Option("prediction_decay", "exponential", "decay of the scaled-up learning rate over the prediction epochs",
           choices=("exponential", "cosine"), group=GROUP),
    Option("sharing_keys", "parent", "dictionary keys a child reads: its layers' numbers in the parent network "
           "(layers behind an insert/remove keep their parameters) or its own layer numbers",
           choices=("parent", "position"), group=GROUP),
    Option("insert_init", "fresh", "with prediction + parent keys, how a conv layer an insert action adds starts: "
           "fresh (random, the literal reading) or identity (Net2Net-style function-preserving start)",
           choices=INSERT_INITS, paper="not given", group=GROUP),
    Option("shared_lr_scale", 1.0, "with prediction, the layers a child reads from the dictionary train at this "
           "multiple of the scaled-up learning rate; new layers and layers behind a changed input at the full rate "
           "(1: one rate, the literal reading; see benchmarks/RESULTS.md)", low=0, low_open=True, paper=1,
           group=GROUP),
    Option("shared_shrink", 1.0, "with prediction, a child's weights read from the dictionary start at SHRINK x "
           "shared + NOISE x fresh (shrink and perturb, Ash & Adams 2020; 1: the shared values as they are; the "
           "measured settings are in benchmarks/RESULTS.md)", low=0, high=1, low_open=True, paper=1, group=GROUP),
    Option("shared_noise", 0.0, "see --shared-shrink: the share of the layer's fresh initialisation added", low=0,
           paper=0, group=GROUP),
    Option("prediction_decay_epochs", None, "with prediction, epochs over which the learning rate decays to "
           "--min-learning-rate (default: all --prediction-epochs)", type=int, low=1, paper="not given",
           group=GROUP),
    Option("learning_rate", 0.05, "SGDR l_max", low=0, low_open=True, paper=0.05, group=GROUP),
    Option("min_learning_rate", 0.001, "SGDR l_min", low=0, paper=0.001, group=GROUP),
    Option("t0", 10, "SGDR T_0", low=1, paper=10, group=GROUP),
    Option("t_mult", 2.0, "SGDR T_mult", low=0, low_open=True, paper=2, group=GROUP),
    Option("momentum", 0.9, "Nesterov momentum", low=0, high=1, high_open=True, paper=0.9, group=GROUP),
    Option("weight_decay", 1e-4, "decoupled weight decay", low=0, paper="not given", group=GROUP),
    Option("clipnorm", 5.0, "gradient-norm clipping of child training, 0 = off", low=0, paper="not given",
           group=GROUP),
    Option("channel_table", None, "channel table, comma-separated", parse=options.int_list, validate=_channel_table,
           paper="16,32,64,96,128,256 layers; 8,12,16,24,32 module", metavar="C1,C2,...", group=GROUP),
    Option("max_layers", None, "MAX_LAYERS / MAX_BRANCHES", type=int, low=1, paper="12 / 5", group=GROUP),
    Option("min_layers", None, "fewest layers / branches", type=int, low=1, paper="2 / 1", group=GROUP),
    Option("initial_layers", None, "LOW,HIGH size of random initial networks", parse=options.int_list,
           validate=_initial_layers, paper="3,6 / 2,4", metavar="LOW,HIGH", group=GROUP),
    Option("partitions", None, "F, parts scaled together", type=int, low=1, paper="4 / 2", group=GROUP),
    Option("stages", 2, "module mode: stages of cells", low=1, paper=3, group=GROUP),
    Option("cells_per_stage", 1, "module mode: cells per stage", low=1, paper=2, group=GROUP),
    Option("filters", 16, "module mode: stage-1 channels", low=1, paper=32, group=GROUP),
    Option("policy_learning_rate", 6e-4, "Adam learning rate of the policy", low=0, low_open=True, paper=6e-4,
           group=GROUP),
    Option("entropy_weight", 0.0, "entropy bonus of the policy loss", low=0, paper=0, group=GROUP),
)


def upgrade_legacy_config(config):
    """A config.json of keras_nas 0.1 in today's forms (comma-separated lists as lists)."""
    config = dict(config)
    for key in ("channel_table", "initial_layers"):
        if isinstance(config.get(key), str):
            config[key] = options.int_list(config[key])
    return config


def check(args):
    """The options checked against each other (each alone is checked by its `Option`); returns the constraints."""
    from keras_nas.epnas.constraints import parse_constraints

    if args.top_k > args.branches * args.steps:
        raise OptionError("`top_k` cannot exceed the children of an episode (`branches` x `steps`).",
                          top_k=args.top_k, branches=args.branches, steps=args.steps)
    if args.min_learning_rate > args.learning_rate:
        raise OptionError("`min_learning_rate` must be <= `learning_rate`.", min_learning_rate=args.min_learning_rate,
                          learning_rate=args.learning_rate)
    if args.prediction_decay_epochs is not None and args.prediction_decay_epochs > args.prediction_epochs:
        raise OptionError("`prediction_decay_epochs` must be <= `prediction_epochs`.",
                          prediction_decay_epochs=args.prediction_decay_epochs,
                          prediction_epochs=args.prediction_epochs)
    if args.min_layers is not None and args.max_layers is not None and args.min_layers > args.max_layers:
        raise OptionError("`min_layers` must be <= `max_layers`.", min_layers=args.min_layers,
                          max_layers=args.max_layers)
    try:
        constraints = parse_constraints(args.constraint)
    except (TypeError, ValueError) as error:
        raise options.reword(error, vars(args), "`constraint`: ") from None
    search_constraints(args, constraints)
    latency_table = getattr(args, "latency_table", None)
    if latency_table is not None:
        from keras_nas import latency  # pure Python at import (its measuring loads TensorFlow)
        from keras_nas.epnas.constraints import constrains_latency

        if not constrains_latency(constraints):
            raise OptionError("`latency_table` is read for a latency_ms constraint only; add `constraint` "
                              "latency_ms<=X.", names=("constraint",), latency_table=latency_table)
        try:
            latency.read_table(latency_table, space=latency_space(args)[0])
        except (TypeError, ValueError) as error:
            raise OptionError(f"`latency_table`: {str(error).split(' Received: ')[0]}",
                              latency_table=latency_table) from None
    return constraints


def search_constraints(args, constraints):
    """The parsed `constraints` as the search applies them: a latency_ms upper bound less `latency_margin`."""
    from keras_nas.epnas.constraints import with_latency_margin

    bounded = any(c["resource"] == "latency_ms" and c["upper"] is not None for c in constraints)
    margin = common_options.latency_margin(getattr(args, "latency_margin", None), bounded, "constraint")
    try:
        return with_latency_margin(constraints, margin) if bounded else constraints
    except ValueError as error:
        raise OptionError(f"`constraint`: {error}", names=("latency_margin",), constraint=args.constraint,
                          latency_margin=margin) from None


def latency_space(args):
    """`(space, settings)` of the latency table a run's children need (`keras_nas.latency` spaces).

    Layer-by-layer children are priced op by op from an `epnas` table (its
    channel table is not compared: a child whose key the table lacks is
    refused by `predict_latency`); module networks by a fitted
    `epnas-module` table of the run's stages, cells per stage, filters and
    channel table.

    Example:

    >>> latency_space(argparse.Namespace(mode="module", stages=2, cells_per_stage=1, filters=16,
    ...                                  channel_table=None))
    ('epnas-module', {'stages': 2, 'cells_per_stage': 1, 'filters': 16, 'channel_table': None})
    """
    if args.mode == "layers":
        return "epnas", {}
    return "epnas-module", {"stages": args.stages, "cells_per_stage": args.cells_per_stage,
                            "filters": args.filters, "channel_table": args.channel_table}


def check_table_input(args, dataset):
    """`OptionError` unless the `--latency-table` was measured at the dataset's input size and classes."""
    if getattr(args, "latency_table", None) is None:
        return None
    from keras_nas import latency

    space, settings = latency_space(args)
    return latency.read_option_table("latency_table", args.latency_table, space, dataset.input_shape,
                                     dataset.num_classes, **settings)


def make_space(args):
    from keras_nas.epnas.space import EPNASSpace

    try:
        return EPNASSpace(
            args.mode, max_layers=args.max_layers, min_layers=args.min_layers, initial_layers=args.initial_layers,
            channels=args.channel_table, partitions=args.partitions, num_stages=args.stages,
            cells_per_stage=args.cells_per_stage, filters=args.filters,
        )
    except ValueError as error:
        raise options.reword(error, vars(args), "The EPNAS space options do not fit together: ") from None


def best_so_far(values):
    out, best = [], float("-inf")
    for v in values:
        best = max(best, v)
        out.append(best)
    return out


def plot_rewards(curves, path, title="Best reward vs trained children"):
    """`curves`: name -> list of rewards in training order; draws each child and the running best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, rewards in curves.items():
        x = list(range(1, len(rewards) + 1))
        line, = ax.plot(x, best_so_far(rewards), label=f"{name} (best so far)")
        ax.scatter(x, rewards, s=10, alpha=0.4, color=line.get_color())
    ax.set_xlabel("trained children")
    ax.set_ylabel("reward (Eq. 3)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    io.save_figure(fig, path)


def children(oracle, tuner):
    """Every child in training (trial) order with its metrics and summary."""
    from keras_nas.epnas.tuner import SUMMARY

    rows = []
    for trial_id in sorted(oracle.trials, key=int):
        trial = oracle.trials[trial_id]
        info = getattr(oracle, "children", {}).get(trial_id, {})
        metrics = {n: trial.metrics.get_last_value(n) for n in trial.metrics.metrics}
        summary = io.read_json(os.path.join(tuner.get_trial_dir(trial_id), SUMMARY), {})
        values = trial.hyperparameters.values
        rows.append({
            "trial_id": trial_id,
            "status": trial.status,
            "episode": values.get("episode"),
            "step": values.get("step"),
            "branch": values.get("branch"),
            "architecture": info.get("architecture") or summary.get("architecture"),
            "action": info.get("action"),
            "reward": float(metrics.get("reward", 0.0) or 0.0) if trial.status == "COMPLETED" else 0.0,
            "val_accuracy": metrics.get("val_accuracy"),
            "params": metrics.get("params"),
            "flops": metrics.get("flops"),
            "compute_intensity": metrics.get("compute_intensity"),
            "macs": metrics.get("macs"),
            "memory_mb": metrics.get("memory_mb"),
            "latency_ms": metrics.get("latency_ms"),
            "train_seconds": metrics.get("train_seconds"),
            "shared_fraction": metrics.get("shared_fraction"),
            "penalties": summary.get("penalties"),
        })
    return rows


def feasible(row):
    """Whether a child meets every constraint (each soft penalty of Eq. 2 is 1)."""
    return all(p >= 1.0 for p in (row["penalties"] or {}).values())


def latency_target(model_path, row, constraints, table=None):
    """`{"target", "search_bound", "margin", "predicted", "measured", "met", ...}` of the saved child's latency bound.

    `constraints` are those the search applied (`search_constraints`):
    `target` is the bound as given, `search_bound` the one less the margin.
    `predicted` is the latency the search used (the table's sum; None when
    the children were timed); `measured` times the saved model on this
    machine: with the table's runtime and threads when there is a table,
    else as the search timed it (TFLite, 1 thread, `keras_nas.latency.measure_model`);
    `met` compares it with the bounds as given.
    """
    from keras_nas import costs, latency

    target = next(c for c in constraints if c["resource"] == "latency_ms")
    model = io.load_model(model_path)
    if table is not None:
        runtime, threads, predicted = table["runtime"], table["threads"], row.get("latency_ms")
        try:
            measured = latency.measure_model(model, runtime=runtime, threads=threads)
        except RuntimeError:  # tf: the search's thread pools are set up; time with them (threads None)
            measured, threads = costs.measure_latency(model), None
    else:
        runtime, threads, predicted = "tflite", 1, None
        measured = latency.measure_model(model, runtime=runtime, threads=threads)
    upper = target.get("target_upper", target["upper"])
    met = (target["lower"] is None or measured >= target["lower"]) and (upper is None or measured <= upper)
    return {"target": target.get("target", target["text"]), "search_bound": target["text"],
            "margin": target.get("margin"),
            "predicted": predicted, "measured": measured, "met": bool(met), "runtime": runtime, "threads": threads}


def summarize(oracle, tuner, out, constraints, penalty_base, method, dataset=None, latency_table=None):
    """results.json, reward.png and best_model.keras of a finished search.

    The reward (Eq. 1-3) trades accuracy against soft penalties, so the child
    of highest reward may break a constraint. `best` is the child of highest
    reward among those that meet every constraint; `best_by_reward` is added
    when that is another child. When no child meets them, `best` is None and
    best_model.keras is the child of highest reward (`best_by_reward`).
    """
    from keras_nas.engine import results as contract
    from keras_nas.epnas.constraints import constraint_report
    from keras_nas.epnas.tuner import MODEL

    rows = children(oracle, tuner)
    done = [r for r in rows if r["status"] in ("COMPLETED", "FAILED", "INVALID")]
    rewards = [r["reward"] for r in done]
    block = {
        "children_trained": sum(r["status"] == "COMPLETED" for r in rows),
        "constraints": constraints,
        "penalty_base": penalty_base,
        "reward_curve": best_so_far(rewards),
        "children": rows,
        "episodes": getattr(oracle, "history", []),
        "trials": common.trial_records(oracle),
    }
    best = None
    completed = [r for r in rows if r["status"] == "COMPLETED"]
    if completed:
        rank = lambda r: (r["reward"], r["val_accuracy"] or 0.0, -int(r["trial_id"]))  # noqa: E731
        by_reward = max(completed, key=rank)
        meeting = [r for r in completed if feasible(r)]
        chosen = max(meeting, key=rank) if meeting else by_reward
        path = os.path.join(out, "best_model.keras")
        io.atomic_copy(os.path.join(tuner.get_trial_dir(chosen["trial_id"]), MODEL), path)

        def describe(row, model_path):
            usages = {k: row[k] for k in ("params", "flops", "macs", "compute_intensity", "memory_mb", "latency_ms")
                      if row.get(k) is not None}
            report = constraint_report(usages, constraints, penalty_base)
            return contract.best_block(
                model_path, row["architecture"], row["val_accuracy"], dataset if model_path == path else None,
                trial_id=row["trial_id"], compute_intensity=row["compute_intensity"], reward=row["reward"],
                constraints_satisfied=all(c["satisfied"] for c in report)), report

        described, report = describe(chosen, path)
        block["constraint_report"] = report
        if any(c["resource"] == "latency_ms" for c in constraints):
            block["latency_target"] = latency_target(path, chosen, constraints, latency_table)
        block["feasible_children"] = len(meeting)
        block["constraints_satisfied_share"] = len(meeting) / len(completed)
        if meeting:
            best = described
            if by_reward is not chosen:
                trial_model = os.path.join(tuner.get_trial_dir(by_reward["trial_id"]), MODEL)
                block["best_by_reward"] = describe(by_reward, trial_model)[0]
        else:
            block["best_by_reward"] = described
    if rewards:
        plot_rewards({method: rewards}, os.path.join(out, "reward.png"))
    return contract.write(out, method, block, best)


def build_search(args, space, constraints, dataset, out, strategy=None, latency_table=None):
    """The oracle and tuner of a run (EPNAS, or random search with `--baseline random`)."""
    from keras_nas.epnas.oracle import EPNASOracle
    from keras_nas.epnas.random_oracle import RandomArchitectureOracle
    from keras_nas.epnas.tuner import EPNASTuner

    sharing_dir = os.path.join(out, "shared_parameters") if args.prediction else None
    if args.baseline == "random":
        oracle = RandomArchitectureOracle(space, constraints=constraints,
                                          max_trials=args.episodes * args.branches * args.steps,
                                          penalty_base=args.penalty_base, seed=args.seed,
                                          **common.oracle_arguments(args))
    else:
        oracle = EPNASOracle(
            space, constraints=constraints, episodes=args.episodes, branches=args.branches, steps=args.steps,
            top_k=args.top_k, penalty_base=args.penalty_base, policy_learning_rate=args.policy_learning_rate,
            entropy_weight=args.entropy_weight, sharing_dir=sharing_dir, seed=args.seed,
            **common.oracle_arguments(args),
        )
    tuner = EPNASTuner(
        oracle, space, dataset.input_shape, dataset.num_classes,
        epochs=args.epochs, learning_rate=args.learning_rate, min_learning_rate=args.min_learning_rate,
        t0=args.t0, t_mult=args.t_mult, momentum=args.momentum, weight_decay=args.weight_decay,
        clipnorm=args.clipnorm or None, prediction=args.prediction, prediction_epochs=args.prediction_epochs,
        batch_scale=args.batch_scale, lr_scale=args.lr_scale, patience=args.patience,
        sharing_dir=sharing_dir if args.baseline != "random" else None,
        prediction_decay=getattr(args, "prediction_decay", "exponential"),
        sharing_keys=getattr(args, "sharing_keys", "parent"),
        insert_init=getattr(args, "insert_init", "fresh"),
        shared_lr_scale=getattr(args, "shared_lr_scale", 1.0), shared_shrink=getattr(args, "shared_shrink", 1.0),
        shared_noise=getattr(args, "shared_noise", 0.0),
        prediction_decay_epochs=getattr(args, "prediction_decay_epochs", None), seed=args.seed,
        jit_compile=getattr(args, "jit_compile", False), distribution_strategy=strategy,
        logs_dir=os.path.join(out, "logs"), latency_table=latency_table, directory=out, project_name="trials",
    )
    return oracle, tuner


def run_config(args):
    """The settings of a run for `config.json` (compared on resume)."""
    return common.run_config(args, "epnas", OPTIONS + common_options.SEARCH_OPTIONS)


def run(args):
    """Runs (or resumes) the search described by `args`; returns results.json's dict."""
    import numpy as np

    constraints = search_constraints(args, check(args))
    shown = ", ".join(c["text"] + (f" ({c['target']} less the latency margin)" if "target" in c else "")
                      for c in constraints)
    method = "random" if args.baseline == "random" else "epnas"
    out = args.out
    strategy, dataset = common.start(args)
    space = make_space(args)
    # Fail before training on an input the space cannot carry.
    space.build(space.random_architecture(np.random.default_rng(0)), dataset.input_shape, dataset.num_classes)
    table = check_table_input(args, dataset)
    resumed = common.open_results(args, "keras-nas search epnas", run_config(args),
                                  OPTIONS + common_options.SEARCH_OPTIONS, added_defaults=ADDED_DEFAULTS,
                                  upgrade=upgrade_legacy_config)
    io.write_preprocessing(out, dataset)
    budget = args.episodes * args.branches * args.steps
    print(
        f"{'Resuming' if resumed else 'Starting'} {'random search' if method == 'random' else 'EPNAS'} "
        f"({args.mode}) on {dataset.name} {dataset.input_shape}: {args.episodes} episodes x {args.branches} "
        f"branches x {args.steps} steps = {budget} children, "
        + (f"{args.prediction_epochs} epochs with prediction + sharing" if args.prediction else f"{args.epochs} epochs")
        + f" each; constraints: {shown or 'none'} -> {out}",
        flush=True,
    )
    oracle, tuner = build_search(args, space, constraints, dataset, out, strategy, latency_table=table)
    common.run_search(tuner, oracle, out, method, dataset.train, validation_data=dataset.validation,
                      verbose=args.verbose)
    if common.role() == "worker":
        return {}
    results = summarize(oracle, tuner, out, constraints, args.penalty_base, method, dataset, latency_table=table)
    common.check_trained(results["children_trained"], "child", results["trials"], out)
    b = results["best"]
    if b is None and "best_by_reward" in results:
        b = results["best_by_reward"]
        print(f"No child meets every constraint ({shown}); best_model.keras "
              "is the child of highest reward (`best_by_reward` in results.json).", flush=True)
    if b is not None:
        print(
            f"{'best child' if b is results['best'] else 'child'} {b['trial_id']}: {b['params']:,} params, "
            f"{b['flops'] / 1e6:.2f} MFLOPs, intensity {b['compute_intensity']:.1f} FLOPs/byte, "
            f"val acc {b['val_accuracy']:.4f}, test acc {b['test_accuracy']:.4f}, reward {b['reward']:.4f}",
            flush=True,
        )
        for c in results["constraint_report"]:
            print(f"  {c['constraint']}: usage {c['usage']:.4g}, penalty {c['penalty']:.4f}", flush=True)
        if "latency_target" in results:
            t = results["latency_target"]
            predicted = "timed" if t["predicted"] is None else f"predicted {t['predicted']:.3f} ms"
            print(f"  latency target {t['target']} (searched for {t['search_bound']}): {predicted}, measured "
                  f"{t['measured']:.4f} ms on this machine ({t['runtime']}, {t['threads'] or 'default'} thread(s)), "
                  f"{'met' if t['met'] else 'NOT met'}", flush=True)
        if results.get("best_by_reward") and results["best"] is not None:
            r = results["best_by_reward"]
            print(f"  (child {r['trial_id']} has a higher reward, {r['reward']:.4f}, but breaks a constraint)",
                  flush=True)
        print(f"saved {os.path.join(out, 'best_model.keras')}", flush=True)
    print(f"{results['children_trained']} children trained; results in {out}", flush=True)
    return results


search = entry.searcher(__name__, "epnas", "an EPNAS search",
                        'result = keras_nas.epnas.search("digits", directory="runs/epnas", constraint=["params<=50000"])')
