"""Stage-wise depth search (Jordao et al. 2020): grow each stage by its importance.

Algorithm 1 of the paper: train a network A with M0 modules per stage; each
iteration trains a temporary network T (every stage + DELTA), compares the
importance of each stage's features in A and T (PLS-VIP, inf-FS or il-FS),
grows the stages where T's is higher, and trains that candidate, which becomes
A. N iterations train 2N + 1 networks. The defaults run in a few minutes on a
CPU on the bundled digits; the paper's CIFAR-10 setting is in
`recipes/stagewise_cifar10.py` (m0 6, delta 2 / 1, 5 iterations, 200 epochs
+ 100 final, SGD lr 0.01 x0.1 at epochs 100 and 150).
"""

# The command line imports this module to list and check its options before TensorFlow loads, so
# the functions that train import the TensorFlow-backed modules (and keras_nas' own) where they run.

import argparse
import os

from keras_nas import io
from keras_nas.engine import common_options, options
from keras_nas.engine import entry
from keras_nas.engine.options import Option, OptionError
from keras_nas.engine import runtime as common

MODULES = ("residual", "cell")
GROUP = "stage-wise options"
# Settings added after results folders were written without them, with the value those runs had.
# `--latency-margin` came with the latency budgets, before any release: a folder of an earlier
# latency-budget run resumes with the default margin.
ADDED_DEFAULTS = {"skip_unreadable_images": False, "strategy": "default", "mixed_precision": False,
                  "jit_compile": False, "max_params": None, "max_macs": None, "max_latency_ms": None,
                  "latency_table": None, "latency_margin": None}
# --max-params / --max-macs / --max-latency-ms -> the oracle's budget names.
BUDGET_OPTIONS = {"max_params": "params", "max_macs": "macs", "max_latency_ms": "latency_ms"}


def _milestones(name, value):
    return options.check_int_list(name, value, low=1, increasing=True,
                                  metavar="comma-separated increasing positive epochs such as 100,150")


OPTIONS = (
    Option("module", "residual", "residual blocks (ResNet) or NASNet-A cells", choices=MODULES, paper="both",
           group=GROUP),
    Option("block", "basic", "residual block type", choices=("basic", "bottleneck"),
           paper="basic on CIFAR, bottleneck on ImageNet", group=GROUP),
    Option("criterion", "pls", "stage importance criterion: PLS-VIP, inf-FS or il-FS", choices=("pls", "inffs", "ilfs"),
           paper="pls, Table II", group=GROUP),
    Option("m0", 2, "initial modules per stage", low=1, paper=6, group=GROUP),
    Option("delta", 1, "growth step", low=1, paper="2 residual, 1 cell", group=GROUP),
    Option("iterations", 2, "iterations n; trains 2n+1 networks", low=1, paper=5, group=GROUP),
    Option("stages", 3, "number of stages S", low=1, paper="3; 4 on ImageNet 224", group=GROUP),
    Option("epochs", 12, "training epochs per network", low=1, paper=200, group=GROUP),
    Option("final_epochs", 0, "extra epochs for each candidate", low=0, paper=100, group=GROUP),
    Option("optimizer", "nesterov", "optimizer of every network", choices=("sgd", "nesterov", "adam"),
           paper="SGD; the reference code uses Nesterov momentum 0.9", group=GROUP),
    Option("learning_rate", 0.05, "initial learning rate", low=0, low_open=True, paper=0.01, group=GROUP),
    Option("momentum", 0.9, "SGD momentum", low=0, high=1, high_open=True, paper=0.9, group=GROUP),
    Option("l2", 1e-4, "L2 penalty on kernels", low=0, paper="1e-4, reference code", group=GROUP),
    Option("milestones", None, "comma-separated epochs where the learning rate drops x0.1 (default: 50% and 75% "
           "of --epochs)", parse=options.int_list, validate=_milestones, paper="100,150", group=GROUP,
           metavar="E1,E2"),
    Option("importance_samples", None, "training examples scored for importance (default: all)", type=int, low=2,
           paper="all", group=GROUP),
    Option("pool_size", 8, "pooling window of stage features", low=1, paper=8, group=GROUP),
    Option("n_components", 2, "PLS components", low=1, paper=2, group=GROUP),
    Option("alpha", 0.5, "inf-FS mixing weight", low=0, high=1, paper=0.5, group=GROUP),
    Option("tokens", 6, "il-FS tokens", low=2, paper=6, group=GROUP),
    Option("filters", 8, "cell modules: filters F of stage 1", low=1, paper=32, group=GROUP),
    Option("max_params", None, "budget: a stage stops growing when the candidate would have more parameters",
           type=int, low=1, paper="none", group=GROUP, metavar="N"),
    Option("max_macs", None, "budget: a stage stops growing when the candidate would need more MACs per image",
           type=int, low=1, paper="none", group=GROUP, metavar="N"),
    Option("max_latency_ms", None, "budget: a stage stops growing when the candidate's batch-1 latency, "
           "measured on this machine as TFLite (1 thread, as `keras-nas export --format tflite` serves it), would "
           "exceed it", type=float, low=0, low_open=True, paper="none",
           group=GROUP, metavar="MS"),
    Option("latency_table", None, "with --max-latency-ms: predict each candidate's latency from this table "
           "(keras-nas latency-table --space resnet for --module residual, --space nasnet for --module cell, at the "
           "data's --image-size/--channels/--num-classes and these --stages, and for resnet this --block, for "
           "nasnet these --filters; measured here or on the device) instead of timing it; the best model is still "
           "timed on this machine", validate=common_options.latency_table_file("resnet|nasnet"), paper="none",
           group=GROUP, metavar="TABLE.json"),
    common_options.latency_margin_option(GROUP, "--max-latency-ms"),
    Option("donor", None, "weight transfer: a trained deeper .keras network of the same family",
           validate=lambda name, value: io.check_keras_path(name, value), paper="ResNet-110", group=GROUP,
           metavar="MODEL.keras"),
)


def upgrade_legacy_config(config):
    """A config.json of keras_nas 0.1 in today's names (`module_type` -> `module`, milestones as a list)."""
    config = dict(config)
    if "module_type" in config:
        config["module"] = config.pop("module_type")
    if isinstance(config.get("milestones"), str):
        config["milestones"] = options.int_list(config["milestones"])
    return config


def check(args):
    """The options checked against each other (each alone is checked by its `Option`)."""
    common_options.refuse_unused(args, {
        "max_failures": "Algorithm 1 needs every network it trains, so the search stops at the first failed one "
                        "(with its reason).",
    })
    common_options.latency_margin(args.latency_margin, args.max_latency_ms is not None, "max_latency_ms")
    if args.module == "cell" and args.block != "basic":
        raise OptionError("`block` applies to `module` residual only.", module=args.module, block=args.block)
    if args.latency_table is not None:
        if args.max_latency_ms is None:
            raise OptionError("`latency_table` is read for a latency budget only; add `max_latency_ms`.",
                              names=("max_latency_ms",), latency_table=args.latency_table)
        from keras_nas import latency  # pure Python at import (its measuring loads TensorFlow)

        latency.read_option_table("latency_table", args.latency_table, latency_space(args)[0])
    if args.milestones and max(args.milestones) >= args.epochs + args.final_epochs:
        raise OptionError("`milestones` must lie within the training epochs (`epochs` + `final_epochs`).",
                          milestones=args.milestones, epochs=args.epochs, final_epochs=args.final_epochs)


def latency_space(args):
    """`(space, settings)` of the latency table the run's networks need (`keras_nas.latency` spaces).

    `--module cell` builds `stage_nasnet(filters=--filters)`: a `nasnet` table
    of these `stages` and `filters`; `--module residual` a `resnet` one of
    these `stages` and `block` (the family's widths are fixed).

    Example:

    >>> latency_space(argparse.Namespace(module="cell", stages=3, filters=8))
    ('nasnet', {'stages': 3, 'filters': 8})
    >>> latency_space(argparse.Namespace(module="residual", stages=4, block="bottleneck"))
    ('resnet', {'stages': 4, 'block': 'bottleneck'})
    """
    if args.module == "cell":
        return "nasnet", {"stages": args.stages, "filters": args.filters}
    return "resnet", {"stages": args.stages, "block": args.block}


def budgets(args):
    """`{resource: limit}` of the budgets the search applies (`StageWiseOracle(budgets=)`).

    The latency budget is `max_latency_ms` less the `latency_margin`
    (headroom for timing noise); the others are as given.
    """
    limits = {resource: getattr(args, name) for name, resource in BUDGET_OPTIONS.items()
              if getattr(args, name, None) is not None}
    if "latency_ms" in limits:
        margin = common_options.latency_margin(getattr(args, "latency_margin", None), True, "max_latency_ms")
        limits["latency_ms"] = common_options.search_latency(limits["latency_ms"], margin)
    return limits


def cost_function(build, measure_latency, table=None):
    """`stage_depths -> {"params", "macs", "latency_ms"}` of the untrained network (cached per depths).

    Latency is predicted from `table` (`keras_nas.latency.predict_latency`)
    when there is one, else measured (`keras_nas.latency.measure_model`:
    batch 1, TFLite, 1 thread, median of 30 calls over 5 interpreters, as
    every search times a model on the spot), and only when
    `measure_latency`; else it is 0.
    """
    from keras_nas import costs, latency

    cache = {}

    def cost(depths):
        key = tuple(int(d) for d in depths)
        if key not in cache:
            model = build(list(key))
            report = costs.profile(model)
            cache[key] = {"params": int(report.params), "macs": int(report.macs),
                          "latency_ms": (0.0 if not measure_latency else latency.predict_latency(model, table)
                                         if table is not None else latency.measure_model(model, runtime="tflite"))}
        return dict(cache[key])

    return cost


def check_budgets(args, cost, architecture):
    """The initial network must fit the budgets: else no candidate could."""
    from keras_nas.stagewise.oracle import over_budget

    limits = budgets(args)
    exceeded = over_budget(cost([args.m0] * args.stages), limits) if limits else None
    if exceeded:
        resource, value, limit = exceeded
        name = next(n for n, r in BUDGET_OPTIONS.items() if r == resource)
        given = getattr(args, name)
        searched = f" (searched for {limit:,.6g}, `latency_margin` below it)" if limit != given else ""
        raise OptionError(f"`{name}` must leave room for the initial network {architecture} ({resource} "
                          f"{value:,.6g}){searched}; lower `m0` or raise the budget.",
                          names=("latency_margin",) if searched else (), **{name: given, "m0": args.m0})


def builder(args, input_shape, num_classes):
    """`stage_depths -> model` for the chosen module type."""
    from keras_nas import stagewise

    if args.module == "cell":
        return lambda depths: stagewise.stage_nasnet(
            depths, filters=args.filters, input_shape=input_shape,
            num_classes=num_classes, l2_regularization=args.l2,
        )
    return lambda depths: stagewise.stage_resnet(
        depths, block=args.block, input_shape=input_shape,
        num_classes=num_classes, l2_regularization=args.l2,
    )


def check_donor(donor_path, args):
    """Loads the donor and checks it is deep enough for every network of the search."""
    import keras

    from keras_nas.stagewise.weight_transfer import stage_depths_of

    donor = keras.saving.load_model(donor_path, compile=False)
    depths = stage_depths_of(donor)
    deepest = args.m0 + args.iterations * args.delta  # T of the last iteration at most
    if len(depths) != args.stages or min(depths) < deepest:
        raise ValueError(
            f"`--donor` has stage depths {depths}; this search may build stages of "
            f"{deepest} modules ({args.stages} stages: m0 {args.m0} + {args.iterations} "
            f"iterations x delta {args.delta}) and a candidate stage cannot be deeper "
            "than the donor's. Use a deeper donor or fewer iterations."
        )
    return donor


def layer_depth(model):
    """Weighted layers on the main path (convolutions and the classifier).

    Shortcut projections are not counted: 2 sum(m) + 2 for basic-block
    ResNets (ResNet-56 = 56). Every separable conv counts once (NASNet-A:
    12 per normal cell, as in Table IV's depths up to a constant 3).
    """
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    return sum(1 for layer in model.layers if isinstance(layer, kinds) and "shortcut" not in layer.name)


def _plots(out, models, num_stages):
    """`stage_depths.png` (m_i of A per iteration) and `accuracy_vs_macs.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    path = sorted((m for m in models if m["role"] in ("initial", "candidate")), key=lambda m: m["iteration"])
    # Grouped bars, one per stage: equal depths stay visible (lines would lie on top of each other).
    width = 0.8 / num_stages
    for s in range(num_stages):
        xs = [m["iteration"] + (s - (num_stages - 1) / 2) * width for m in path]
        bars = ax.bar(xs, [m["stage_depths"][s] for m in path], width, label=f"stage {s + 1}")
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks([m["iteration"] for m in path], [f"{m['iteration']}\n" + ",".join(map(str, m["stage_depths"]))
                                                     for m in path], fontsize=8)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(0, max(max(m["stage_depths"]) for m in path) * 1.25 + 0.5)  # room for the labels and legend
    ax.set_xlabel("iteration (depths of A)")
    ax.set_ylabel("modules in stage")
    ax.set_title("Stage depths of A per iteration")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    io.save_figure(fig, os.path.join(out, "stage_depths.png"))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for role, marker in (("initial", "s"), ("temporary", "x"), ("candidate", "o")):
        chosen = [m for m in models if m["role"] == role]
        ax.scatter([m["macs"] / 1e6 for m in chosen], [m["val_accuracy"] for m in chosen], marker=marker, label=role)
        for m in chosen:
            ax.annotate(",".join(str(d) for d in m["stage_depths"]), (m["macs"] / 1e6, m["val_accuracy"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("MMACs")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Accuracy vs MACs")
    ax.legend()
    ax.grid(alpha=0.3)
    io.save_figure(fig, os.path.join(out, "accuracy_vs_macs.png"))


def ensemble_accuracy(models, data):
    """Accuracy of the averaged class probabilities of `models` on `data`.

    `data` must yield its batches in the same order on every pass (the
    validation and test pipelines are not shuffled).
    """
    import numpy as np

    labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in data])
    probabilities = sum(model.predict(data, verbose=0) for model in models) / len(models)
    return float(np.mean(np.argmax(probabilities, axis=-1) == labels))


def architecture_spec(config, stage_depths):
    """The `keras-nas train --arch` spec of a network of this search (`resnet:3,5,3`, `nasnet:2,2,2`)."""
    if config.get("module", config.get("module_type")) == "cell":
        kind = "nasnet"
    else:
        kind = "resnet-bottleneck" if config.get("block") == "bottleneck" else "resnet"
    return f"{kind}:{','.join(str(d) for d in stage_depths)}"


def summarize(tuner, oracle, dataset, out, latency=True):
    """The candidate table, ensemble, best model and plots of a finished search."""
    import keras

    from keras_nas import costs
    from keras_nas.engine import results as contract
    from keras_nas.stagewise.tuner import FINAL_MODEL, SUMMARY

    models = []
    loaded = {}
    for trial_id, info in sorted(oracle.plan.items()):
        trial = oracle.trials.get(trial_id)
        if trial is None or trial.status != "COMPLETED":
            continue
        trial_dir = tuner.get_trial_dir(trial_id)
        summary = io.read_json(os.path.join(trial_dir, SUMMARY), {})
        model = keras.saving.load_model(os.path.join(trial_dir, FINAL_MODEL), compile=False)
        loaded[trial_id] = model
        report = costs.profile(model, latency=latency)
        metrics = summary.get("metrics", {})
        seconds = metrics.get("train_seconds", 0.0)
        models.append({
            "trial_id": trial_id,
            "role": info["role"],
            "iteration": info["iteration"],
            "stage_depths": list(info["stage_depths"]),
            "depth": layer_depth(model),
            "params": report.params,
            "macs": report.macs,
            "flops": report.flops,
            "memory_mb": report.to_dict()["memory_mb"],
            "latency_ms": report.to_dict()["latency_ms"],
            "train_seconds": seconds,
            "energy_kwh": costs.training_emissions(seconds)["energy_kwh"],
            "co2_kg": costs.training_emissions(seconds)["co2_kg"],
            "emissions": costs.training_emissions(seconds),
            "val_accuracy": metrics.get("val_accuracy"),
            "search_val_accuracy": metrics.get("search_val_accuracy"),
            "test_accuracy": metrics.get("test_accuracy"),
            "importance": summary.get("importance"),
            "importance_seconds": metrics.get("importance_seconds"),
        })
    candidates = [m for m in models if m["role"] == "candidate"]
    results = {
        "method": "stagewise",
        "models_trained": len(models),
        "expected_models": 2 * oracle.iterations + 1,
        "iterations": oracle.iterations,
        "decisions": oracle.decisions,
        "candidates": candidates,
        "models": models,
        "stopped_reason": oracle.stopped_reason,
        "trials": common.trial_records(oracle),
    }
    if candidates:
        members = [loaded[c["trial_id"]] for c in candidates]
        results["ensemble"] = {
            "members": [c["trial_id"] for c in candidates],
            "params": sum(c["params"] for c in candidates),
            "macs": sum(c["macs"] for c in candidates),
            "val_accuracy": ensemble_accuracy(members, dataset.validation),
            "test_accuracy": ensemble_accuracy(members, dataset.test),
        }
        best = max(candidates, key=lambda c: (c["val_accuracy"] or 0.0, -c["macs"]))
        source = os.path.join(tuner.get_trial_dir(best["trial_id"]), FINAL_MODEL)
        io.atomic_copy(source, os.path.join(out, "best_model.keras"))
        config = io.read_json(os.path.join(out, io.CONFIG_FILE), {})
        results["best"] = contract.best_block(
            os.path.join(out, "best_model.keras"), architecture_spec(config, best["stage_depths"]),
            best["val_accuracy"], dataset, trial_id=best["trial_id"], stage_depths=best["stage_depths"])
    else:
        results["best"] = None
    if oracle.budgets:
        # Each budget: the limit, the value the search used to decide (latency measured on the untrained
        # network during the search) and the value of best_model.keras measured now.
        b = results["best"]
        predicted = oracle.cost_fn(b["stage_depths"]) if b is not None and oracle.cost_fn else {}
        if b is not None and "latency_ms" in oracle.budgets:
            from keras_nas import latency

            # As the search measured it (TFLite, 1 thread), not the best block's TensorFlow latency.
            b = {**b, "latency_ms": latency.measure_model(io.load_model(b["path"]), runtime="tflite")}
        # "met" holds against the budget as given; the search applied the latency one less the margin.
        config = io.read_json(os.path.join(out, io.CONFIG_FILE), {})
        given = {resource: config.get(name, oracle.budgets.get(resource)) for name, resource in BUDGET_OPTIONS.items()}
        results["budgets"] = {resource: {"target": given[resource], "predicted": predicted.get(resource),
                                         "measured": None if b is None else b.get(resource),
                                         "met": None if b is None or b.get(resource) is None
                                         else b[resource] <= given[resource]}
                              for resource in oracle.budgets}
        if "latency_ms" in results["budgets"]:
            # Where the prediction came from; the measurement is always TFLite, 1 thread, on this machine.
            results["budgets"]["latency_ms"].update(
                {"search_target": oracle.budgets["latency_ms"],
                 "margin": common_options.latency_margin(config.get("latency_margin"), True, "max_latency_ms"),
                 "table": config.get("latency_table"), "runtime": "tflite", "threads": 1})
    if models:
        _plots(out, models, oracle.num_stages)
    return contract.write(out, "stagewise", results, results.pop("best"))


def run(args):
    """Runs (or resumes) the search described by `args`; returns results.json's dict."""
    from keras_nas.stagewise.oracle import StageWiseOracle
    from keras_nas.stagewise.tuner import StageWiseTuner

    check(args)
    out = args.out
    strategy, dataset = common.start(args)
    build = builder(args, dataset.input_shape, dataset.num_classes)
    # Fail before training on an architecture the input cannot carry.
    build([args.m0] * args.stages)
    table = None
    if args.latency_table is not None:
        from keras_nas import latency

        space, settings = latency_space(args)
        table = latency.read_option_table("latency_table", args.latency_table, space, dataset.input_shape,
                                          dataset.num_classes, **settings)
    cost = (cost_function(build, measure_latency=args.max_latency_ms is not None, table=table) if budgets(args)
            else None)
    if cost is not None:
        check_budgets(args, cost, architecture_spec(vars(args), [args.m0] * args.stages))
    if args.donor:
        check_donor(args.donor, args)
    option_list = OPTIONS + common_options.SEARCH_OPTIONS
    config = common.run_config(args, "stagewise", option_list)
    resumed = common.open_results(args, "keras-nas search stagewise", config, option_list,
                                  added_defaults=ADDED_DEFAULTS, upgrade=upgrade_legacy_config)
    io.write_preprocessing(out, dataset)
    print(
        f"{'Resuming' if resumed else 'Starting'} stage-wise search on {dataset.name} "
        f"{dataset.input_shape}: {args.module} modules, m0={args.m0}, delta={args.delta}, "
        f"{args.iterations} iterations ({2 * args.iterations + 1} networks), "
        f"{args.epochs} epochs each, criterion {args.criterion} -> {out}",
        flush=True,
    )
    oracle = StageWiseOracle(
        num_stages=args.stages, initial_depth=args.m0, delta=args.delta,
        iterations=args.iterations, budgets=budgets(args), cost_fn=cost, seed=args.seed,
        lease_seconds=args.lease_seconds,
    )
    tuner = StageWiseTuner(
        oracle,
        build,
        epochs=args.epochs,
        final_epochs=args.final_epochs,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        momentum=args.momentum,
        milestones=args.milestones,
        criterion=args.criterion,
        importance_samples=args.importance_samples,
        pool_size=args.pool_size,
        n_components=args.n_components,
        alpha=args.alpha,
        tokens=args.tokens,
        donor=args.donor,
        logs_dir=os.path.join(out, "logs"),
        seed=args.seed,
        jit_compile=getattr(args, "jit_compile", False),
        distribution_strategy=strategy,
        directory=out,
        project_name="trials",
    )
    importance_data = dataset.train
    if args.augment and str(args.augment).lower() != "none":
        # The paper scores the training samples themselves: the same seeded
        # training split, loaded again without augmentation.
        importance_data = common.load_data(argparse.Namespace(**{**vars(args), "augment": None})).train
    tuner.search(
        dataset.train,
        validation_data=dataset.validation,
        importance_data=importance_data,
        test_data=dataset.test,
        verbose=args.verbose,
    )
    if common.role() == "worker":
        return {}
    results = summarize(tuner, oracle, dataset, out)
    common.check_trained(results["models_trained"], "network", results["trials"], out)
    if results["stopped_reason"]:
        reasons = "; ".join(
            f"trial {t['trial_id']}: {t.get('reason', t['status'])}"
            for t in results["trials"] if t["status"] != "COMPLETED"
        )
        raise RuntimeError(f"The search stopped early: {results['stopped_reason']} ({reasons}); the "
                           f"{results['models_trained']} networks trained are in {out}. Fix the cause and run the "
                           "same command with --overwrite.")
    for d in results["decisions"]:
        print(
            f"iteration {d['iteration']}: A {d['previous_depths']} vs T {d['temporary_depths']}, "
            f"importance A {[round(v, 4) for v in d['importance_a']]} T "
            f"{[round(v, 4) for v in d['importance_t']]} -> {d['stage_depths']}"
            + "".join(f"; stage {b['stage']} not grown: {b['resource']} {b['value']:,.6g} > budget "
                      f"{'less the latency margin ' if b['resource'] == 'latency_ms' else ''}{b['limit']:,.6g}"
                      for b in d.get("blocked", [])),
            flush=True,
        )
    for c in results["candidates"]:
        print(
            f"candidate it={c['iteration']} {c['stage_depths']}: depth {c['depth']}, "
            f"{c['params']:,} params, {c['macs'] / 1e6:.2f} MMACs, val acc {c['val_accuracy']:.4f}",
            flush=True,
        )
    if "ensemble" in results:
        e = results["ensemble"]
        print(f"ensemble of {len(e['members'])} candidates: val acc {e['val_accuracy']:.4f}, "
              f"test acc {e['test_accuracy']:.4f}", flush=True)
    if results["best"] is not None:
        b = results["best"]
        print(f"best candidate {b['architecture']}: val acc {b['val_accuracy']:.4f}, test acc "
              f"{b['test_accuracy']:.4f}, saved to {b['path']}", flush=True)
    for resource, r in results.get("budgets", {}).items():
        if r["measured"] is None:
            continue
        source = (f"predicted {r['predicted']:,.6g} from {r['table']}, measured " if r.get("table") else
                  "measured " if resource == "latency_ms" else "")
        where = " on this machine (TFLite, 1 thread)" if resource == "latency_ms" else ""
        aim = f" (searched for {r['search_target']:,.6g})" if r.get("margin") else ""
        print(f"budget {resource} <= {r['target']:,.6g}{aim}: best model {source}{r['measured']:,.6g}{where} "
              f"({'met' if r['met'] else 'NOT met'})", flush=True)
    print(f"{results['models_trained']} networks trained; results in {out}", flush=True)
    return results


search = entry.searcher(__name__, "stagewise", "a stage-wise depth search (Algorithm 1)",
                        'result = keras_nas.stagewise.search("digits", directory="runs/stagewise", iterations=2)')
