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

import argparse
import os

from keras_nas import io
from keras_nas.searches import common

BASELINES = ("none", "random")
INSERT_INITS = ("identity", "fresh")
# Settings added after results folders were written without them, with the value those runs had
# (`io.prepare_out_dir(added_defaults=...)`): such a folder resumes unless the setting is changed.
ADDED_DEFAULTS = {"insert_init": "fresh", "shared_lr_scale": 1.0, "shared_shrink": 1.0, "shared_noise": 0.0,
                  "prediction_decay_epochs": None}


def _ints(text, name):
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"`--{name}` must be comma-separated positive ints. Received: {text!r}")
    return values


def add_arguments(parser):
    """The method's options (paper value in brackets in each help)."""
    g = parser.add_argument_group("EPNAS options")
    g.add_argument("--mode", choices=("layers", "module"), default="layers",
                   help="layer-by-layer search (Table 2) or module/cell search (Table 3) [both]")
    g.add_argument("--constraint", action="append", default=[], metavar="RESOURCE<=VALUE",
                   help="resource constraint, repeatable: params|flops|macs|intensity|memory_mb with <= or >=, "
                        "e.g. --constraint params<=2e6 --constraint intensity>=80 [Table 5]")
    g.add_argument("--penalty-base", type=float, default=0.9, help="base penalty p of Eq. 2 [0.9]")
    g.add_argument("--episodes", type=int, default=3, help="episodes (default 3) [15]")
    g.add_argument("--branches", type=int, default=3, help="parallel branches N per episode (default 3) [8]")
    g.add_argument("--steps", type=int, default=2, help="steps T per episode (default 2) [10 layers, 5 module]")
    g.add_argument("--top-k", type=int, default=2, help="children that start the next episode (default 2) [8]")
    g.add_argument("--baseline", choices=BASELINES, default="none",
                   help="random: random search on the same budget (episodes x branches x steps) and constraints")
    g.add_argument("--epochs", type=int, default=10, help="epochs per child (default 10) [20]")
    g.add_argument("--prediction", action=argparse.BooleanOptionalAction, default=False,
                   help="performance prediction + parameter sharing (section 3.4) [both, Table 4]")
    g.add_argument("--prediction-epochs", type=int, default=5, help="epochs per child with prediction (default 5) [10]")
    g.add_argument("--batch-scale", type=int, default=4, help="batch-size factor with prediction (default 4) [8: 128->1024]")
    g.add_argument("--lr-scale", type=float, default=4.0, help="learning-rate factor with prediction (default 4) [10: 0.05->0.5]")
    g.add_argument("--patience", type=int, default=3, help="early-stopping patience with prediction (default 3)")
    g.add_argument("--prediction-decay", choices=("exponential", "cosine"), default="exponential",
                   help="decay of the scaled-up learning rate over the prediction epochs (default exponential)")
    g.add_argument("--sharing-keys", choices=("parent", "position"), default="parent",
                   help="dictionary keys a child reads: its layers' numbers in the parent network (default: "
                        "layers behind an insert/remove keep their parameters) or its own layer numbers")
    g.add_argument("--insert-init", choices=INSERT_INITS, default="fresh",
                   help="with prediction + parent keys, how a conv layer an insert action adds starts: fresh "
                        "(random, the literal reading, default) or identity (Net2Net-style function-preserving "
                        "start; benchmarks/bench_epnas.py compares them) [not given]")
    g.add_argument("--shared-lr-scale", type=float, default=1.0,
                   help="with prediction, the layers a child reads from the dictionary train at this multiple of "
                        "the scaled-up learning rate; new layers and layers behind a changed input at the full rate "
                        "(default 1: one rate, the literal reading; 0.2 halves the time of kept/rescaled "
                        "children, see the README) [1]")
    g.add_argument("--shared-shrink", type=float, default=1.0,
                   help="with prediction, a child's weights read from the dictionary start at SHRINK x shared + "
                        "NOISE x fresh (shrink and perturb, Ash & Adams 2020; default 1: the shared values as "
                        "they are; 0.7 with --shared-noise 0.01 and --prediction-decay-epochs 3 brought every "
                        "child, deeper ones too, to its from-scratch accuracy in a median 0.21 of the "
                        "from-scratch time, see the README) [1]")
    g.add_argument("--shared-noise", type=float, default=0.0,
                   help="see --shared-shrink: the share of the layer's fresh initialisation added (default 0) [0]")
    g.add_argument("--prediction-decay-epochs", type=int, default=None,
                   help="with prediction, epochs over which the learning rate decays to --min-learning-rate "
                        "(default: all --prediction-epochs; 3 of 10: see --shared-shrink) [not given]")
    g.add_argument("--learning-rate", type=float, default=0.05, help="SGDR l_max [0.05]")
    g.add_argument("--min-learning-rate", type=float, default=0.001, help="SGDR l_min [0.001]")
    g.add_argument("--t0", type=int, default=10, help="SGDR T_0 [10]")
    g.add_argument("--t-mult", type=float, default=2.0, help="SGDR T_mult [2]")
    g.add_argument("--momentum", type=float, default=0.9, help="Nesterov momentum [0.9]")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="decoupled weight decay [not given]")
    g.add_argument("--clipnorm", type=float, default=5.0,
                   help="gradient-norm clipping of child training, 0 = off (default 5) [not given]")
    g.add_argument("--channel-table", default=None,
                   help="channel table, comma-separated [16,32,64,96,128,256 layers; 8,12,16,24,32 module]")
    g.add_argument("--max-layers", type=int, default=None, help="MAX_LAYERS / MAX_BRANCHES [12 / 5]")
    g.add_argument("--min-layers", type=int, default=None, help="fewest layers / branches [2 / 1]")
    g.add_argument("--initial-layers", default=None, help="LOW,HIGH size of random initial networks [3,6 / 2,4]")
    g.add_argument("--partitions", type=int, default=None, help="F, parts scaled together [4 / 2]")
    g.add_argument("--stages", type=int, default=2, help="module mode: stages of cells (default 2) [3]")
    g.add_argument("--cells-per-stage", type=int, default=1, help="module mode: cells per stage (default 1) [2]")
    g.add_argument("--filters", type=int, default=16, help="module mode: stage-1 channels (default 16) [32]")
    g.add_argument("--policy-learning-rate", type=float, default=6e-4, help="Adam learning rate of the policy [6e-4]")
    g.add_argument("--entropy-weight", type=float, default=0.0, help="entropy bonus of the policy loss [0]")


def check(args):
    """Every option checked before anything is trained or written; returns the parsed constraints."""
    from keras_nas.oracles.constraints import parse_constraints

    for name in ("episodes", "branches", "steps", "top_k", "epochs", "prediction_epochs", "batch_scale",
                 "patience", "t0", "stages", "cells_per_stage", "filters"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"`--{name.replace('_', '-')}` must be a positive int. Received: {value}")
    for name in ("max_layers", "min_layers", "partitions", "prediction_decay_epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"`--{name.replace('_', '-')}` must be a positive int. Received: {value}")
    for name in ("learning_rate", "lr_scale", "t_mult", "policy_learning_rate", "shared_lr_scale"):
        if getattr(args, name) <= 0:
            raise ValueError(f"`--{name.replace('_', '-')}` must be > 0. Received: {getattr(args, name)}")
    shrink = getattr(args, "shared_shrink", 1.0)
    if not 0 < shrink <= 1:
        raise ValueError(f"`--shared-shrink` must be in (0, 1]. Received: {shrink}")
    for name in ("min_learning_rate", "weight_decay", "clipnorm", "entropy_weight", "shared_noise"):
        if getattr(args, name) < 0:
            raise ValueError(f"`--{name.replace('_', '-')}` must be >= 0. Received: {getattr(args, name)}")
    insert_init = getattr(args, "insert_init", "fresh")
    if insert_init not in INSERT_INITS:
        raise ValueError(f"`--insert-init` must be one of {list(INSERT_INITS)}. Received: {insert_init!r}")
    if not 0 <= args.penalty_base <= 1:
        raise ValueError(f"`--penalty-base` must be in [0, 1]. Received: {args.penalty_base}")
    if args.top_k > args.branches * args.steps:
        raise ValueError(
            f"`--top-k` ({args.top_k}) cannot exceed the children of an episode "
            f"(--branches x --steps = {args.branches * args.steps}).")
    try:
        constraints = parse_constraints(args.constraint)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`--constraint`: {error}") from None
    space = make_space(args)
    return constraints, space


def make_space(args):
    from keras_nas.spaces.epnas import EPNASSpace

    initial = _ints(args.initial_layers, "initial-layers") if args.initial_layers else None
    if initial is not None and len(initial) != 2:
        raise ValueError(f"`--initial-layers` must be LOW,HIGH. Received: {args.initial_layers!r}")
    try:
        return EPNASSpace(
            args.mode, max_layers=args.max_layers, min_layers=args.min_layers, initial_layers=initial,
            channels=_ints(args.channel_table, "channel-table") if args.channel_table else None, partitions=args.partitions,
            num_stages=args.stages, cells_per_stage=args.cells_per_stage, filters=args.filters,
        )
    except ValueError as error:
        raise ValueError(f"EPNAS space options: {error}") from None


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
    from keras_nas.tuners.epnas_tuner import SUMMARY

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
            "train_seconds": metrics.get("train_seconds"),
            "shared_fraction": metrics.get("shared_fraction"),
            "penalties": summary.get("penalties"),
        })
    return rows


def summarize(oracle, tuner, out, constraints, penalty_base, method):
    """results.json, reward.png and best_model.keras of a finished search."""
    from keras_nas.oracles.constraints import constraint_report
    from keras_nas.tuners.epnas_tuner import MODEL

    rows = children(oracle, tuner)
    done = [r for r in rows if r["status"] in ("COMPLETED", "FAILED", "INVALID")]
    rewards = [r["reward"] for r in done]
    results = {
        "method": method,
        "children_trained": sum(r["status"] == "COMPLETED" for r in rows),
        "constraints": constraints,
        "penalty_base": penalty_base,
        "reward_curve": best_so_far(rewards),
        "children": rows,
        "episodes": getattr(oracle, "history", []),
        "trials": common.trial_records(oracle),
    }
    completed = [r for r in rows if r["status"] == "COMPLETED"]
    if completed:
        best = max(completed, key=lambda r: (r["reward"], r["val_accuracy"] or 0.0, -int(r["trial_id"])))
        usages = {k: best[k] for k in ("params", "flops", "macs", "compute_intensity", "memory_mb")}
        report = constraint_report(usages, constraints, penalty_base)
        source = os.path.join(tuner.get_trial_dir(best["trial_id"]), MODEL)
        io.atomic_copy(source, os.path.join(out, "best_model.keras"))
        results["best"] = {
            "trial_id": best["trial_id"],
            "architecture": best["architecture"],
            "params": int(best["params"]),
            "flops": int(best["flops"]),
            "compute_intensity": best["compute_intensity"],
            "val_accuracy": best["val_accuracy"],
            "reward": best["reward"],
            "constraints_satisfied": all(c["satisfied"] for c in report),
            "path": os.path.join(out, "best_model.keras"),
        }
        results["constraint_report"] = report
        results["constraints_satisfied_share"] = (
            sum(1 for r in completed if all(p >= 1.0 for p in (r["penalties"] or {}).values())) / len(completed))
    if rewards:
        plot_rewards({method: rewards}, os.path.join(out, "reward.png"))
    io.atomic_write_json(os.path.join(out, io.RESULTS_FILE), results)
    return results


def build_search(args, space, constraints, dataset, out, strategy=None):
    """The oracle and tuner of a run (EPNAS, or random search with `--baseline random`)."""
    from keras_nas.oracles import EPNASOracle, RandomArchitectureOracle
    from keras_nas.tuners import EPNASTuner

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
        directory=out, project_name="trials",
    )
    return oracle, tuner


CONFIG_KEYS = (
    "mode", "constraint", "penalty_base", "episodes", "branches", "steps", "top_k", "baseline", "epochs",
    "prediction", "prediction_epochs", "batch_scale", "lr_scale", "patience", "prediction_decay", "sharing_keys",
    "insert_init", "shared_lr_scale", "shared_shrink", "shared_noise", "prediction_decay_epochs", "learning_rate",
    "min_learning_rate", "t0", "t_mult", "momentum", "weight_decay", "clipnorm", "channel_table", "max_layers",
    "min_layers", "initial_layers", "partitions", "stages", "cells_per_stage", "filters",
    "policy_learning_rate", "entropy_weight",
)


def run_config(args):
    """The settings of a run for `config.json` (`io.prepare_out_dir` compares them on resume)."""
    return {"method": "epnas", **common.common_config(args), **{k: getattr(args, k) for k in CONFIG_KEYS}}


def run(args):
    """Runs (or resumes) the search described by `args`; returns results.json's dict."""
    import numpy as np

    constraints, space = check(args)
    method = "random" if args.baseline == "random" else "epnas"
    out = common.out_dir(args, "epnas")
    strategy = common.setup_runtime(args)
    dataset = common.load_data(args)
    # Fail before training on an input the space cannot carry.
    space.build(space.random_architecture(np.random.default_rng(0)), dataset.input_shape, dataset.num_classes)
    config = run_config(args)
    resumed = io.prepare_out_dir(out, config, overwrite=args.overwrite, added_defaults=ADDED_DEFAULTS)
    io.write_preprocessing(out, dataset)
    budget = args.episodes * args.branches * args.steps
    print(
        f"{'Resuming' if resumed else 'Starting'} {'random search' if method == 'random' else 'EPNAS'} "
        f"({args.mode}) on {dataset.name} {dataset.input_shape}: {args.episodes} episodes x {args.branches} "
        f"branches x {args.steps} steps = {budget} children, "
        + (f"{args.prediction_epochs} epochs with prediction + sharing" if args.prediction else f"{args.epochs} epochs")
        + f" each; constraints: {', '.join(c['text'] for c in constraints) or 'none'} -> {out}",
        flush=True,
    )
    oracle, tuner = build_search(args, space, constraints, dataset, out, strategy)
    common.run_search(tuner, oracle, out, method, dataset.train, validation_data=dataset.validation,
                      verbose=args.verbose)
    if common.role() == "worker":
        return {}
    results = summarize(oracle, tuner, out, constraints, args.penalty_base, method)
    if "best" in results:
        b = results["best"]
        print(
            f"best child {b['trial_id']}: {b['params']:,} params, {b['flops'] / 1e6:.2f} MFLOPs, "
            f"intensity {b['compute_intensity']:.1f} FLOPs/byte, val acc {b['val_accuracy']:.4f}, "
            f"reward {b['reward']:.4f}, constraints {'met' if b['constraints_satisfied'] else 'violated'}",
            flush=True,
        )
        for c in results["constraint_report"]:
            print(f"  {c['constraint']}: usage {c['usage']:.4g}, penalty {c['penalty']:.4f}", flush=True)
        print(f"saved {b['path']}", flush=True)
    print(f"{results['children_trained']} children trained; results in {out}", flush=True)
    return results
