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

# The command line imports this module to list and check its options before TensorFlow loads, so
# the functions that train import the TensorFlow-backed modules (and keras_nas' own) where they run.

import os

from keras_nas import io
from keras_nas.engine import common_options
from keras_nas.engine import results as contract
from keras_nas.engine import entry
from keras_nas.engine.options import Option, OptionError
from keras_nas.eoinas.one_shot import SEARCH, SEARCH_OPTIONS, check_search_kwargs, validate_search_options

EVAL = "training the derived network"
LATENCY = "latency target (issue 24; none of this is in the paper)"

OPTIONS = SEARCH_OPTIONS + (
    Option("seeds", 1, "searches with seeds --seed .. --seed + N - 1, one KerasTuner trial each", low=1, paper=4,
           group=SEARCH),
    Option("limit_skip_connections", None, "keep at most K skip connections in the derived normal cell, the "
           "weakest giving way to their next-best op (P-DARTS sec. 3.3; off by default)", type=int, low=0,
           paper="off (P-DARTS: 2)", group=SEARCH, metavar="K"),
    Option("collapse_skip_threshold", 2, "warn when the derived normal cell has more skip connections than this "
           "(P-DARTS, DARTS+) or parameter-free ops on most edges", low=0, paper="2 (P-DARTS, DARTS+)",
           group=SEARCH, resume_free=True),
    Option("eval_cells", 5, "cells", low=3, paper=20, group=EVAL),
    Option("eval_channels", 16, "channels C", low=1, paper=36, group=EVAL),
    Option("eval_epochs", 10, "epochs", low=1, paper=600, group=EVAL),
    Option("eval_learning_rate", 0.025, "SGD learning rate, cosine to 0", low=0, low_open=True, paper=0.025,
           group=EVAL),
    Option("drop_path", 0.0, "drop-path rate", low=0, high=1, high_open=True, paper=0.3, group=EVAL),
    Option("auxiliary_weight", 0.4, "auxiliary head loss weight; 0 = no head", low=0, paper=0.4, group=EVAL),
    Option("target_latency_ms", None, "derive cells whose evaluation network predicts at most this batch-1 latency "
           "from the latency table (the least score given up per ms saved); also the reference of "
           "--latency-weight. The final model is then measured on this machine", type=float, low=0, low_open=True,
           group=LATENCY, metavar="MS"),
    Option("latency_table", None, "a darts latency table of the evaluation network (keras-nas latency-table --space "
           "darts with this data's --image-size/--channels and --cells/--init-channels = --eval-cells/"
           "--eval-channels); without it, --latency-weight or --target-latency-ms measure one on the spot into "
           "<out>/latency_table.json (TFLite, 1 thread)", validate=common_options.latency_table_file("darts"),
           group=LATENCY, metavar="TABLE.json"),
    common_options.latency_margin_option(LATENCY, "--target-latency-ms"),
)
# Settings added after results folders were written without them, with the value those runs had.
# `--latency-margin` came with the latency targets, before any release: a folder of an earlier
# latency-target run resumes with the default margin.
ADDED_DEFAULTS = {"update_unsampled_ops": True, "lower_weight_case": False, "lower_arch_case": False, "executor": "auto",
                  "skip_unreadable_images": False, "strategy": "default", "mixed_precision": False,
                  "jit_compile": False, "limit_skip_connections": None, "latency_weight": 0.0,
                  "target_latency_ms": None, "latency_table": None, "latency_margin": None}


def upgrade_legacy_config(config):
    """A config.json of keras_nas 0.1: its `channels` held the supernet's channels (the image channels were lost)."""
    config = dict(config)
    if "init_channels" not in config and "channels" in config:
        config["init_channels"] = config.pop("channels")
        config["channels"] = "not recorded (keras_nas 0.1 wrote the supernet's channels under this key)"
    return config


def check(args):
    """The options checked against each other (each alone is checked by its `Option`)."""
    validate_search_options(**{o.name: getattr(args, o.name) for o in SEARCH_OPTIONS})
    common_options.latency_margin(args.latency_margin, args.target_latency_ms is not None, "target_latency_ms")
    if not args.update_unsampled_ops and args.strategy == "mirrored":
        raise OptionError("`update_unsampled_ops=False` runs on one replica only.", update_unsampled_ops=False,
                          strategy=args.strategy)
    if args.executor == "ops" and (args.strategy == "mirrored" or args.mixed_precision):
        raise OptionError("`executor='ops'` runs without a distribution strategy, in float32; use 'graph' or "
                          "'auto'.", executor="ops", strategy=args.strategy, mixed_precision=args.mixed_precision)


def uses_latency(args):
    """Whether the run needs a latency table: a latency weight, a target or a table given."""
    return bool(args.latency_weight or args.target_latency_ms or args.latency_table)


def check_latency_table(args, dataset):
    """The `--latency-table` read and checked against the data and the evaluation network; None without one."""
    if args.latency_table is None:
        return None
    from keras_nas import latency

    return latency.read_option_table("latency_table", args.latency_table, "darts", dataset.input_shape,
                                     dataset.num_classes, cells=args.eval_cells, init_channels=args.eval_channels)


def latency_table(args, dataset, out):
    """The table of the run: `--latency-table`, or one measured here into `<out>/latency_table.json` (kept)."""
    from keras_nas import latency

    table = check_latency_table(args, dataset)
    if table is not None:
        return table, args.latency_table
    path = os.path.join(out, "latency_table.json")
    if os.path.exists(path):
        return latency.read_table(path, space="darts"), path
    height, _, channels = dataset.input_shape
    print(f"Measuring a darts latency table of the evaluation network ({args.eval_cells} cells, C "
          f"{args.eval_channels}, {height}x{height}x{channels}; TFLite, 1 thread) -> {path}", flush=True)
    table = latency.measure_table("darts", image_size=height, channels=channels, num_classes=dataset.num_classes,
                                  cells=args.eval_cells, init_channels=args.eval_channels)
    latency.save_table(table, path)
    return table, path


def _search_kwargs(args):
    return {o.name: getattr(args, o.name) for o in SEARCH_OPTIONS}


def undertrained_warning(arch_accuracy, num_classes, when):
    """A one-line warning when the supernet was near chance when the cells were decided, else None.

    GDAS derives the cells from alpha at the end of the search; EoiNAS and
    GOP fix them earlier, at their last pruning decision. A supernet whose
    sampled networks were still near chance on the validation half then
    (`arch_accuracy`) gives near-random cells: on digits-cluttered it stays
    there until pruning leaves one op per edge (benchmarks/RESULTS.md
    "Search quality"). "Near chance" is our rule, not a paper's: below a
    quarter of the way from chance to 1. `when` says when, for the message.

    Example:

    >>> undertrained_warning(0.15, 10, "after 4 epochs").split(",")[0]
    'the supernet was at 0.150 architecture accuracy (chance 0.100) after 4 epochs'
    >>> undertrained_warning(0.62, 10, "after 16 epochs") is None
    True
    """
    chance = 1.0 / num_classes
    if not arch_accuracy < chance + (1.0 - chance) / 4:  # (NaN: nothing recorded, no warning)
        return None
    return (f"the supernet was at {arch_accuracy:.3f} architecture accuracy (chance {chance:.3f}) {when}, "
            "so the cells are close to random draws; give it more --epochs (and, with pruning, a longer "
            "--warmup-epochs and --prune-interval)")


def _decision_accuracy(search, epochs):
    """`(architecture accuracy, when)` at which the best seed's cells were decided."""
    decided = [d["epoch"] for d in search.get("pruning") or []]
    accuracy = (search.get("history") or {}).get("arch_accuracy") or []
    if decided and len(accuracy) >= max(decided):  # the accuracy of the epoch that ended with the decision
        return float(accuracy[max(decided) - 1]), f"when it took its last pruning decision (epoch {max(decided)})"
    return float(search["val_accuracy"]), f"after {epochs} epochs"


def _scores_after_skip_limit(search, collapse):
    """The normal cell's scores with the skip connections `--limit-skip-connections` removed set to -inf."""
    import numpy as np

    from keras_nas.eoinas.genotypes import PRIMITIVES

    normal = np.array(search["scores"]["normal"], dtype="float64")
    rows = np.cumsum([0] + [i + 2 for i in range(4)])  # first edge of each of the 4 nodes
    for r in collapse.get("skip_limit", {}).get("replaced", []):
        normal[rows[r["node"]] + r["input"], PRIMITIVES.index("skip_connect")] = -np.inf
    return normal


def run(args):
    from keras_nas import training
    from keras_nas.eoinas.drop_path_schedule import DropPathSchedule
    from keras_nas.eoinas.seed_oracle import SeedOracle
    from keras_nas.engine import runtime as common
    import numpy as np

    from keras_nas.eoinas import darts, genotypes
    from keras_nas.eoinas.seed_tuner import EoiNASSeedTuner

    check(args)
    search_kwargs = _search_kwargs(args)
    out = args.out
    strategy, dataset = common.start(args)
    check_latency_table(args, dataset)
    option_list = OPTIONS + common_options.SEARCH_OPTIONS
    config = common.run_config(args, "eoinas", option_list)
    resumed = common.open_results(args, "keras-nas search eoinas", config, option_list,
                                  added_defaults=ADDED_DEFAULTS, upgrade=upgrade_legacy_config)
    io.write_preprocessing(out, dataset)
    costs = None
    if uses_latency(args):
        from keras_nas.eoinas import latency_cost

        table, table_path = latency_table(args, dataset, out)
        costs = latency_cost.edge_costs(table)
        search_kwargs.update(latency_costs=costs, latency_reference_ms=args.target_latency_ms)
    search_kwargs = check_search_kwargs(search_kwargs)
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
    common.check_trained(len(completed), "seed's search", common.trial_records(oracle), out)
    best = completed[0]
    search = io.read_json(os.path.join(tuner.trial_search_dir(best.trial_id), "search.json"))
    genotype = darts.genotype_from_dict(search["genotype"])
    collapse = {"threshold": args.collapse_skip_threshold, "searched": genotypes.parameter_free_counts(genotype)}
    if args.limit_skip_connections is not None:
        genotype, replaced = genotypes.limit_skip_connections(
            np.array(search["scores"]["normal"], dtype="float64"), np.array(search["scores"]["reduce"], dtype="float64"),
            args.limit_skip_connections)
        collapse["skip_limit"] = {"limit": args.limit_skip_connections, "replaced": replaced,
                                  "searched_genotype": search["genotype"]}
        print(f"Skip connections limited to {args.limit_skip_connections} in the normal cell (P-DARTS): "
              f"{len(replaced)} replaced", flush=True)
    latency_report = None
    if costs is not None:
        latency_report = {"table": table_path, "runtime": table["runtime"], "threads": table["threads"],
                          "weight": args.latency_weight, "target_ms": args.target_latency_ms,
                          "searched_expected_ms": search.get("expected_latency_ms"),
                          "searched_predicted_ms": genotypes.genotype_latency(genotype, costs)}
        if args.target_latency_ms is not None:
            # The derivation aims at the target less the margin (headroom for timing noise; ours).
            margin = common_options.latency_margin(args.latency_margin, True, "target_latency_ms")
            goal_ms = common_options.search_latency(args.target_latency_ms, margin)
            genotype, swaps, met = genotypes.fit_latency_target(
                _scores_after_skip_limit(search, collapse), np.array(search["scores"]["reduce"], dtype="float64"),
                costs, goal_ms)
            latency_report.update(margin=margin, search_target_ms=goal_ms, swaps=swaps, predicted_met=met)
            aim = f" (derived for {goal_ms:.4g} ms, the margin {margin} below)" if margin else ""
            print(f"Latency target {args.target_latency_ms} ms{aim}: the searched cells predict "
                  f"{latency_report['searched_predicted_ms']:.4f} ms; {len(swaps)} op(s) swapped for cheaper ones, "
                  f"{genotypes.genotype_latency(genotype, costs):.4f} ms predicted"
                  f"{'' if met else ' (not reachable: every kept edge holds its cheapest op)'}",
                  flush=True)
        latency_report["predicted_ms"] = genotypes.genotype_latency(genotype, costs)
    collapse["parameter_free"] = genotypes.parameter_free_counts(genotype)
    collapse["warning"] = genotypes.collapse_warning(genotype, args.collapse_skip_threshold)
    if collapse["warning"]:
        print(f"Warning: {collapse['warning']}.", flush=True)
    darts.save_genotype(genotype, os.path.join(out, "genotype.json"))
    darts.plot_genotype(genotype, os.path.join(out, "genotype.png"),
                        title=f"EoiNAS ({args.variant}) best seed {search['seed']}")
    print(f"Best seed {search['seed']} (val accuracy {search['val_accuracy']:.4f}); genotype: "
          f"{darts.genotype_to_dict(genotype)}", flush=True)
    decision_accuracy, when = _decision_accuracy(search, args.epochs)
    undertrained = undertrained_warning(decision_accuracy, dataset.num_classes, when)
    if undertrained:
        print(f"Warning: {undertrained}.", flush=True)
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
    if latency_report is not None:
        from keras_nas import latency

        latency_report["measured_ms"] = latency.measure_model(model, runtime=table["runtime"],
                                                              threads=table["threads"])
        if args.target_latency_ms is not None:
            latency_report["met"] = latency_report["measured_ms"] <= args.target_latency_ms
        print(f"Latency of the final model on this machine ({table['runtime']}, {table['threads']} thread(s), batch "
              f"1): {latency_report['measured_ms']:.4f} ms measured, {latency_report['predicted_ms']:.4f} ms "
              f"predicted" + (f", target {args.target_latency_ms} ms {'met' if latency_report['met'] else 'NOT met'}"
                              if args.target_latency_ms is not None else ""), flush=True)
    results = {
        "variant": args.variant,
        "edge_mode": args.edge_mode,
        "best_seed": search["seed"],
        "genotype": darts.genotype_to_dict(genotype),
        "parameter_free": collapse.pop("parameter_free"),
        "collapse": collapse,
        "trials": common.trial_records(oracle),
        "search": {**{k: search[k] for k in ("val_accuracy", "search_seconds", "pruning", "live_ops")},
                   "undertrained_warning": undertrained},
        "final": result,
        "params_without_auxiliary": darts.count_params_without_auxiliary(model),
        "costs": training.summarize_costs(model, result["train_seconds"]),
    }
    if latency_report is not None:
        results["latency"] = latency_report
    best = contract.best_block(os.path.join(out, "best_model.keras"), darts.genotype_to_dict(genotype),
                               result["val_accuracy"], dataset, seed=search["seed"],
                               params_without_auxiliary=results["params_without_auxiliary"])
    results = contract.write(out, "eoinas", results, best, seeds=list(range(args.seed, args.seed + args.seeds)))
    print(f"Test accuracy {best['test_accuracy']:.4f}; model in {best['path']}", flush=True)
    return results


search = entry.searcher(__name__, "eoinas", "an EoiNAS cell search and the training of its best cells",
                        'result = keras_nas.eoinas.search("digits", directory="runs/eoinas", seeds=2)')
