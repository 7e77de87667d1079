"""`keras-nas search cnas`: channel-level architecture search (paper 004, CNAS).

Three steps (sec. 2.1): (1) train the one-shot network with a channel mask
on every edge; (2) search the sparse network: each iteration scores every
remaining input channel by Taylor saliency (Algorithm 1), zeroes the
fraction gamma with the lowest, and fine-tunes one epoch, until
|W*| / |W| reaches rho (sec. 2.2); (3) materialise the physically sparse
network and retrain it from scratch (CNAS-R) or fine-tune it (CNAS-W).
Baselines of Figure 2(b) at the same parameter count: a smaller dense
one-shot network and random pruning. Writes `results.json` (with the
Table 1 statistics per cell), `topology.png`, `pruning.png`,
`history.png`, `sparse_model.keras` (W* with the searched weights) and
`best_model.keras` (the final model). Every phase checkpoints each epoch
(masks included): the same command resumes.

Defaults run on the bundled digits on a CPU in a few minutes; the paper's
CIFAR-10 setting is `recipes/cnas_cifar10.py`, the DenseNet-BC space
`recipes/cnas_densenet_bc.py`.
"""

# The command line imports this module to list and check its options before TensorFlow loads, so
# the functions that train import the TensorFlow-backed modules (and keras_nas' own) where they run.

import math
import os
import time

from keras_nas import io
from keras_nas.engine import common_options
from keras_nas.engine import results as contract
from keras_nas.engine import entry
from keras_nas.engine.options import Option, OptionError
from keras_nas.engine import runtime as common

SPACES = ("nasnet", "densenet-bc")
MODES = ("retrain", "finetune")
DATA_FORMATS = ("channels_last", "channels_first")
# = keras_nas.cnas.SALIENCY_FORMS (not imported here: that module loads
# TensorFlow, and the CLI builds its parser before anything heavy loads).
SALIENCY_FORMS = ("taylor", "reciprocal")


SPACE = "CNAS search space (CPU-small defaults; the paper's values in brackets)"
SEARCH = "CNAS search"
TRAIN = "training (one-shot and final)"
OPTIONS = (
    Option("space", "nasnet", "NASNet-shaped cells (Fig. 1) or DenseNet-BC (sec. 3.4)", choices=SPACES,
           group=SPACE),
    Option("cells", 1, "normal cells per stage N", low=1, paper=6, group=SPACE),
    Option("nodes", 3, "nodes per cell", low=1, paper=5, group=SPACE),
    Option("ops_per_node", 2, "ops per node", low=1, paper=2, group=SPACE),
    Option("init_channels", 8, "node output channels C of stage 1 (even, a multiple of --ops-per-node)", low=2,
           group=SPACE),
    Option("layers_per_block", 3, "densenet-bc: bottleneck layers per block", low=1, paper=19, group=SPACE),
    Option("growth_rate", 6, "densenet-bc: growth rate k", low=1, paper=12, group=SPACE),
    Option("dropout", 0.0, "spatial dropout rate", low=0, high=1, high_open=True, paper="used, rate not given",
           group=SPACE),
    Option("sparse_data_format", "auto", "feature-map layout of the materialised (sparse) model; auto: "
           "channels_first for nasnet (its channel selections become block copies: faster on CPU, see "
           "benchmarks/RESULTS.md), channels_last for densenet-bc (the only layout it has). Same weights and "
           "function.", choices=("auto",) + DATA_FORMATS, group=SPACE),
    Option("sparsity", None, "target rho = |W*|/|W| (default 0.46 without --target-latency-ms, none with it)",
           type=float, low=0, high=1, low_open=True, high_open=True, paper=0.46, group=SEARCH),
    Option("target_latency_ms", None, "also zero channels until the materialised sparse model's batch-1 latency "
           "on this machine (TFLite, 1 thread, measured after every iteration) is at most MS; alone or with "
           "--sparsity (both must hold)", type=float, low=0, low_open=True, group=SEARCH, metavar="MS"),
    Option("latency_table", None, "with --target-latency-ms: a cnas latency table (keras-nas latency-table --space "
           "cnas at this run's input size and network: --cnas-space and that space's --cells, --nodes, --ops-per-node, "
           "--init-channels or --layers-per-block, --growth-rate): channels then go in "
           "increasing saliency per ms they save (ours, not the paper's), and results.json gives the table's "
           "prediction beside the measurement", validate=common_options.latency_table_file("cnas"), paper="none",
           group=SEARCH, metavar="TABLE.json"),
    common_options.latency_margin_option(SEARCH, "--target-latency-ms"),
    Option("gamma", 0.1, "share of remaining input channels zeroed per iteration", low=0, high=1, low_open=True,
           high_open=True, paper=0.1, group=SEARCH),
    Option("saliency_batches", 10, "minibatches m per Taylor saliency", low=1, group=SEARCH),
    Option("saliency_form", "taylor", "taylor: zero the lowest normalised |x dx| (Molchanov); reciprocal: "
           "accumulate 1/|x dx| and zero the largest, as Algorithm 1 writes it", choices=SALIENCY_FORMS,
           group=SEARCH),
    Option("finetune_epochs", 1, "fine-tuning epochs between iterations", low=1, paper=1, group=SEARCH),
    Option("search_learning_rate", 0.01, "learning rate while fine-tuning between iterations", low=0,
           low_open=True, group=SEARCH),
    Option("epochs", 6, "one-shot training epochs", low=1, paper=150, group=SEARCH),
    Option("mode", "retrain", "retrain: CNAS-R (re-initialise); finetune: CNAS-W", choices=MODES, group=TRAIN),
    Option("final_epochs", 8, "epochs of the final sparse model", low=1, paper=630, group=TRAIN),
    Option("learning_rate", 0.05, "SGDR l_max", low=0, low_open=True, paper=0.05, group=TRAIN),
    Option("min_learning_rate", 1e-4, "SGDR l_min", low=0, low_open=True, paper=1e-4, group=TRAIN),
    Option("t0", None, "SGDR T_0 in epochs (default: the phase's epochs)", type=int, low=1, paper=10, group=TRAIN),
    Option("t_mult", 2, "SGDR T_mult", low=1, paper=2, group=TRAIN),
    Option("momentum", 0.9, "Nesterov momentum (0: plain SGD)", low=0, high=1, high_open=True, paper=0.9,
           group=TRAIN),
    Option("weight_decay", 2e-4, "weight decay", low=0, paper=2e-4, group=TRAIN),
    Option("baselines", True, "also train the Fig. 2(b) baselines: small dense network and random pruning",
           group=TRAIN),
)
# Settings added after results folders were written without them, with the value those runs had:
# folders from before `--sparse-data-format` built their sparse model channels last, those from
# before `--saliency-form` ranked by |x dx| ("taylor"). `--latency-margin` came with the latency targets,
# before any release: a folder of an earlier latency-target run resumes with the default margin.
ADDED_DEFAULTS = {"sparse_data_format": "channels_last", "saliency_form": "taylor", "skip_unreadable_images": False,
                  "strategy": "default", "mixed_precision": False, "jit_compile": False, "target_latency_ms": None,
                  "latency_table": None, "latency_margin": None}
DEFAULT_SPARSITY = 0.46  # Table 1's rho


def target_sparsity(args):
    """rho of the run: `--sparsity`, else 0.46 unless a latency target alone decides."""
    if args.sparsity is not None:
        return args.sparsity
    return None if args.target_latency_ms is not None else DEFAULT_SPARSITY


def upgrade_legacy_config(config):
    """A config.json of keras_nas 0.1 in today's names (`t_mul` -> `t_mult`)."""
    config = dict(config)
    if "t_mul" in config:
        config["t_mult"] = config.pop("t_mul")
    return config


def check(args):
    """The options checked against each other (each alone is checked by its `Option`)."""
    if args.space != "nasnet" and args.sparse_data_format == "channels_first":
        raise OptionError("`sparse_data_format` channels_first applies to `space` nasnet only.",
                          sparse_data_format=args.sparse_data_format, space=args.space)
    if args.space == "nasnet" and (args.init_channels % args.ops_per_node or args.init_channels % 2):
        raise OptionError("`init_channels` must be even and divisible by `ops_per_node`.",
                          init_channels=args.init_channels, ops_per_node=args.ops_per_node)
    if args.min_learning_rate > args.learning_rate:
        raise OptionError("`min_learning_rate` must be <= `learning_rate`.", min_learning_rate=args.min_learning_rate,
                          learning_rate=args.learning_rate)
    common_options.latency_margin(args.latency_margin, args.target_latency_ms is not None, "target_latency_ms")
    if args.latency_table is not None:
        if args.target_latency_ms is None:
            raise OptionError("`latency_table` is read for a latency target only; add `target_latency_ms`.",
                              names=("target_latency_ms",), latency_table=args.latency_table)
        from keras_nas import latency  # pure Python at import (its measuring loads TensorFlow)

        latency.read_option_table("latency_table", args.latency_table, "cnas")
    one_shot = "CNAS is one one-shot search, not a set of trials"
    common_options.refuse_unused(args, {
        "chief": f"{one_shot}; use `strategy` mirrored to spread it over local devices.",
        "worker_id": f"{one_shot}.",
        "max_failures": f"{one_shot}; a diverged phase stops the search with its reason.",
        "lease_seconds": f"{one_shot} (leases are for distributed trials).",
    })


def sparse_data_format(args):
    """Layout of the materialised model: `--sparse-data-format`, `auto` resolved per space."""
    value = getattr(args, "sparse_data_format", "auto")
    if value == "auto":
        return "channels_first" if args.space == "nasnet" else "channels_last"
    return value


def latency_table_settings(args):
    """The cnas latency table settings this run needs (`keras-nas latency-table --space cnas` options)."""
    if args.space == "nasnet":
        space = {"cells": args.cells, "nodes": args.nodes, "ops_per_node": args.ops_per_node,
                 "init_channels": args.init_channels}
    else:
        space = {"layers_per_block": args.layers_per_block, "growth_rate": args.growth_rate}
    return {"cnas_space": args.space, **space, "sparse_data_format": sparse_data_format(args)}


def sparse_overrides(args):
    """Builder keyword arguments of a sparse model (`data_format` only where the space has one)."""
    return {"data_format": sparse_data_format(args)} if args.space == "nasnet" else {}


def builder(args, input_shape, num_classes, **overrides):
    """`(**kwargs) -> model` for the chosen space (`selection=`, `masked=`, `return_topology=`)."""
    from keras_nas.cnas.nasnet_space import channel_nasnet
    from keras_nas.cnas.densenet_space import densenet_bc

    if args.space == "nasnet":
        base = {"cells_per_stage": args.cells, "nodes": args.nodes, "channels": args.init_channels,
                "ops_per_node": args.ops_per_node}
        fn = channel_nasnet
    else:
        base = {"layers_per_block": args.layers_per_block, "growth_rate": args.growth_rate}
        fn = densenet_bc
    base.update(num_classes=num_classes, input_shape=tuple(input_shape), dropout=args.dropout, **overrides)
    return lambda **kwargs: fn(**{**base, **kwargs})


def _scope(strategy):
    import contextlib

    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def train_phase(name, model, dataset, out, *, epochs, lr_fn, args, strategy, learning_rate, callbacks=(),
                state_fn=None, on_restore=None, skip_fit=None, message=None):
    """Fits `model` in `<out>/<name>` with per-epoch checkpoints; returns the phase summary (resumes)."""
    import keras

    from keras_nas import training
    from keras_nas.engine.checkpoint import EpochCheckpoint

    directory = os.path.join(out, name)
    summary_path = os.path.join(directory, "done.json")
    final_weights = os.path.join(directory, "final.weights.h5")
    done = io.read_json(summary_path)
    if done is not None and os.path.exists(final_weights):
        model.load_weights(final_weights)
        print(f"[{name}] finished earlier ({done['epochs_done']} epochs); not redone", flush=True)
        return done
    if message:
        print(message, flush=True)
    with _scope(strategy):
        model.compile(
            optimizer=training.make_optimizer("nesterov" if args.momentum else "sgd", learning_rate,
                                              args.momentum, args.weight_decay),
            loss="sparse_categorical_crossentropy", metrics=["accuracy"],
            jit_compile=bool(getattr(args, "jit_compile", False)),
        )
    checkpoint = EpochCheckpoint(directory, state_fn=state_fn)
    with _scope(strategy):
        initial_epoch, extra = checkpoint.restore(model)
    if on_restore is not None:
        on_restore(extra)
    if initial_epoch:
        print(f"[{name}] resuming after epoch {initial_epoch}", flush=True)
    start = time.perf_counter()
    if initial_epoch < epochs and not (skip_fit and skip_fit()):
        model.fit(
            dataset.train, validation_data=dataset.validation, epochs=epochs, initial_epoch=initial_epoch,
            callbacks=[keras.callbacks.LearningRateScheduler(lr_fn), *callbacks, checkpoint,
                       keras.callbacks.TensorBoard(os.path.join(out, "logs", name), write_graph=False),
                       keras.callbacks.TerminateOnNaN()],
            verbose=args.verbose, shuffle=False,  # the tf.data pipeline shuffles each epoch itself
        )
    seconds = time.perf_counter() - start
    history = checkpoint.history
    if any(not math.isfinite(v) for v in history.get("loss", [])):
        raise RuntimeError(f"Training diverged in phase `{name}` (loss not finite); lower --learning-rate and run "
                           "again with --overwrite.")
    test_loss, test_accuracy = model.evaluate(dataset.test, verbose=0)[:2]
    val_loss, val_accuracy = model.evaluate(dataset.validation, verbose=0)[:2]
    # A phase with nothing to fit (a search whose one-shot network already meets its targets) wrote no checkpoint.
    os.makedirs(directory, exist_ok=True)
    model.save_weights(final_weights)
    done = {"phase": name, "epochs_done": len(history.get("loss", [])), "history": history,
            "val_accuracy": float(val_accuracy), "test_accuracy": float(test_accuracy),
            "test_loss": float(test_loss), "seconds": seconds, "params": int(model.count_params()),
            "extra": state_fn() if state_fn else {}}
    io.atomic_write_json(summary_path, done)
    return done


def _lr(args, epochs):
    from keras_nas.training import sgdr_learning_rate

    t_0 = args.t0 or epochs
    return lambda epoch: sgdr_learning_rate(epoch, learning_rate=args.learning_rate,
                                            min_learning_rate=args.min_learning_rate, t_0=t_0, t_mult=args.t_mult)


def max_iterations(input_channels, gamma):
    """Iterations enough for any run: gamma of the remaining, at least one channel each."""
    return int(math.ceil(math.log(1.0 / max(input_channels, 2)) / math.log(1.0 - gamma))) + 10


def dense_baseline(args, input_shape, num_classes, target_params):
    """The narrower dense network of the same shape closest to `target_params` (Fig. 2(b) "no pruning").

    Widths (`--init-channels`, or `--growth-rate` for DenseNet-BC) below the
    one-shot network's are tried; the closest parameter count wins.
    """
    from keras_nas.cnas.channel_graph import ChannelGraph

    build = builder(args, input_shape, num_classes)
    if args.space == "nasnet":
        key, limit = "channels", args.init_channels
        step = 2 * args.ops_per_node // math.gcd(2, args.ops_per_node)
    else:
        key, limit, step = "growth_rate", args.growth_rate, 1
    best = None
    for width in range(step, max(limit, step + 1), step):
        _, topology = build(**{key: width, "return_topology": True, "masked": False})
        params = ChannelGraph(topology).total_params
        if best is None or abs(params - target_params) < abs(best[1] - target_params):
            best = (width, params)
        if params > target_params:
            break
    return {key: best[0]}, best[1]


def _plots(out, report, iterations, total_params, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [str(r["cell"]) for r in report]
    pos = np.arange(len(report))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.5 * len(report) + 4), 3.8))
    axes[0].bar(pos - 0.2, [r["X"] for r in report], 0.4, label="|X| one-shot", color="0.7")
    axes[0].bar(pos + 0.2, [r["d_to_x"] for r in report], 0.4, label="|d->x|")
    axes[0].bar(pos + 0.2, [r["z_to_x"] for r in report], 0.4, bottom=[r["d_to_x"] for r in report], label="|z->x|")
    axes[0].set_xticks(pos, labels, rotation=90 if len(report) > 10 else 0, fontsize=7)
    axes[0].set_xlabel("cell")
    axes[0].set_ylabel("input channels")
    axes[0].set_title("Input channels per cell (Table 1)")
    axes[0].legend(fontsize=7)
    axes[1].bar(pos - 0.2, [r["params"] for r in report], 0.4, label="params one-shot", color="0.7")
    axes[1].bar(pos + 0.2, [r["params_star"] for r in report], 0.4, label="params final")
    axes[1].set_xticks(pos, labels, rotation=90 if len(report) > 10 else 0, fontsize=7)
    axes[1].set_xlabel("cell")
    axes[1].set_title("Weights per cell")
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    io.save_figure(fig, os.path.join(out, "topology.png"))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    its = [0] + [r["iteration"] for r in iterations]
    ax.plot(its, [1.0] + [r["sparsity"] for r in iterations], marker="o", label="|W'|/|W|")
    ax.set_xlabel("iteration")
    if iterations and "val_accuracy" in iterations[0]:
        # Both lie in [0, 1]: one axis, one legend.
        ax.plot([r["iteration"] for r in iterations], [r["val_accuracy"] for r in iterations], color="C1",
                marker="x", label="val accuracy (after fine-tuning)")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"Progressive zeroing (|W| = {total_params:,})")
    ax.grid(alpha=0.3)
    io.save_figure(fig, os.path.join(out, "pruning.png"))


def _targets_text(rho, latency_ms, margin=0.0):
    aim = (f" (searching for {common_options.search_latency(latency_ms, margin):.4g} ms)" if latency_ms and margin
           else "")
    parts = ([f"rho = {rho}"] if rho is not None else []) + ([f"latency <= {latency_ms} ms{aim}"] if latency_ms else [])
    return " and ".join(parts)


def sparse_latency_function(graph, build, args):
    """`(masks, model=None) -> ms`: batch-1 TFLite latency (1 thread) of the sparse model of `masks` (or of `model`).

    The sparse model is built from the masks' channel selection in the
    channel order `cnas.materialize` gives the final model (`channel_layout`:
    contiguous kept channels read as slices, not gathers; weights do not
    change its latency); timed by `keras_nas.latency.measure_model`, median
    of 30 calls over 5 interpreters.
    """
    from keras_nas import latency
    from keras_nas.cnas.layout import channel_layout

    def measure(masks, model=None):
        if model is None:
            selection = channel_layout(graph.topology, graph.selection(masks))
            model = build(selection=selection, **sparse_overrides(args))
        return latency.measure_model(model, runtime="tflite", threads=1)

    return measure


def run(args):
    import keras
    import numpy as np

    from keras_nas import cnas, costs, training
    from keras_nas.cnas.channel_pruning import ChannelPruning

    check(args)
    out = args.out
    strategy, dataset = common.start(args)
    build = builder(args, dataset.input_shape, dataset.num_classes)
    keras.utils.set_random_seed(args.seed)
    with _scope(strategy):
        oneshot, topology = build(return_topology=True)
    graph = cnas.ChannelGraph(topology)
    floor = graph.sparsity(graph.minimal_masks())
    rho = target_sparsity(args)
    margin = common_options.latency_margin(args.latency_margin, args.target_latency_ms is not None,
                                           "target_latency_ms")
    # The latency the pruning stops at: the target less the margin (headroom for timing noise; ours).
    goal_ms = (None if args.target_latency_ms is None else
               common_options.search_latency(args.target_latency_ms, margin))
    if rho is not None and rho <= floor:
        raise OptionError(f"`sparsity` must be above {floor:.3f} for this network: the weights outside the "
                          "searchable edges and one input channel per cell remain.", sparsity=rho)
    table, cost_fn = None, None  # the table is checked against the run before anything is written
    if args.latency_table is not None:
        from keras_nas import latency
        from keras_nas.cnas import latency_model

        table = latency.read_option_table("latency_table", args.latency_table, "cnas", dataset.input_shape,
                                          dataset.num_classes, **latency_table_settings(args))
        shapes = latency_model.edge_shapes(oneshot, graph)

        def cost_fn(masks):
            return latency_model.channel_savings(graph, masks, shapes, table)
    option_list = OPTIONS + common_options.SEARCH_OPTIONS
    config = common.run_config(args, "cnas", option_list)
    resumed = common.open_results(args, "keras-nas search cnas", config, option_list, added_defaults=ADDED_DEFAULTS,
                                  upgrade=upgrade_legacy_config)
    io.write_preprocessing(out, dataset)
    total = graph.total_params
    print(f"{'Resuming' if resumed else 'Starting'} CNAS ({args.space}, CNAS-{'R' if args.mode == 'retrain' else 'W'}) "
          f"on {dataset.name} {dataset.input_shape}: one-shot |W| = {total:,} weights, "
          f"|X| = {graph.input_channels(graph.full_masks()):,} input channels on {len(graph.edges)} edges; "
          f"target {_targets_text(rho, args.target_latency_ms, margin)} -> {out}", flush=True)
    latency_fn, latency_report = None, None
    if args.target_latency_ms is not None:
        latency_fn = sparse_latency_function(graph, build, args)
        with _scope(strategy):
            dense = build(masked=False)
        latency_report = {"target_ms": args.target_latency_ms, "margin": margin, "search_target_ms": goal_ms,
                          "runtime": "tflite", "threads": 1,
                          "oneshot_ms": latency_fn(None, model=dense),
                          "ranking": "saliency per ms saved" if table is not None else "saliency"}
        if table is not None:
            latency_report["table"] = args.latency_table
        del dense
        print(f"[latency] the one-shot network takes {latency_report['oneshot_ms']:.4f} ms (TFLite, 1 thread, batch "
              f"1); target {_targets_text(None, args.target_latency_ms, margin)}", flush=True)

    # (1) one-shot model.
    oneshot_done = train_phase("oneshot", oneshot, dataset, out, epochs=args.epochs, lr_fn=_lr(args, args.epochs),
                               args=args, strategy=strategy, learning_rate=args.learning_rate,
                               message=f"[oneshot] training the one-shot network for {args.epochs} epochs")
    print(f"[oneshot] val accuracy {oneshot_done['val_accuracy']:.4f}, test accuracy "
          f"{oneshot_done['test_accuracy']:.4f}", flush=True)

    # (2) progressive zeroing to rho.
    search = ChannelPruning(topology, rho, gamma=args.gamma, saliency_batches=args.saliency_batches,
                            finetune_epochs=args.finetune_epochs, saliency_data=dataset.train, strategy=strategy,
                            saliency_form=args.saliency_form, target_latency_ms=goal_ms,
                            latency_fn=latency_fn, cost_fn=cost_fn)
    iterations = max_iterations(graph.input_channels(graph.full_masks()), args.gamma) * args.finetune_epochs
    search_done = train_phase(
        "search", oneshot, dataset, out, epochs=iterations, lr_fn=lambda epoch: args.search_learning_rate,
        args=args, strategy=strategy, learning_rate=args.search_learning_rate, callbacks=[search],
        state_fn=lambda: {"iterations": search.history},
        on_restore=lambda extra: search.set_history(extra.get("iterations", [])),
        skip_fit=lambda: search.meets_targets(cnas.read_masks(oneshot, graph)),
        message=f"[search] zeroing gamma = {args.gamma} of the remaining input channels per iteration "
                f"({args.saliency_batches} minibatches of Taylor saliency ({args.saliency_form} form), "
                f"{args.finetune_epochs} fine-tuning "
                "epoch(s) each)",
    )
    log = search_done["extra"].get("iterations", [])
    masks = cnas.read_masks(oneshot, graph)
    final_params = graph.count_params(masks)
    reached = search.meets_targets(masks)
    if not reached:
        print(f"[search] stopped at {final_params / total:.3f} of |W|"
              f"{', ' + str(search.history[-1].get('latency_ms')) + ' ms' if args.target_latency_ms else ''}: "
              "nothing more can be removed", flush=True)

    # (3) the physically sparse model.
    sparse, selection = cnas.materialize(oneshot, graph,
                                            lambda sel: build(selection=sel, **sparse_overrides(args)))
    images = next(iter(dataset.validation))[0]
    difference = float(np.max(np.abs(oneshot.predict(images, verbose=0) - sparse.predict(images, verbose=0))))
    if sparse.count_params() != final_params:
        raise RuntimeError(f"materialised model has {sparse.count_params()} weights, expected {final_params}")
    io.save_model(sparse, os.path.join(out, "sparse_model.keras"))
    report = graph.cell_report(masks)
    print(f"[search] W*: {final_params:,} weights ({final_params / total:.3f} of |W|), "
          f"|X*| = {graph.input_channels(masks):,}, {sum(r['nodes_removed'] for r in report)} node(s) and "
          f"{sum(r['edges_removed'] for r in report)} edge(s) removed, {len(log)} iterations; materialised "
          f"model max |p_masked - p_sparse| = {difference:.2e}", flush=True)

    if args.mode == "retrain":
        keras.utils.set_random_seed(args.seed + 1)
        with _scope(strategy):
            final = build(selection=selection, **sparse_overrides(args))
    else:
        final = sparse
    name = "CNAS-R" if args.mode == "retrain" else "CNAS-W"
    final_done = train_phase("final", final, dataset, out, epochs=args.final_epochs,
                             lr_fn=_lr(args, args.final_epochs), args=args, strategy=strategy,
                             learning_rate=args.learning_rate,
                             message=f"[final] {name}: training the sparse model for {args.final_epochs} epochs")
    io.save_model(final, os.path.join(out, "best_model.keras"))
    print(f"[final] {name}: val accuracy {final_done['val_accuracy']:.4f}, test accuracy "
          f"{final_done['test_accuracy']:.4f}", flush=True)

    baselines = {}
    if args.baselines:
        widths, dense_params = dense_baseline(args, dataset.input_shape, dataset.num_classes, final_params)
        keras.utils.set_random_seed(args.seed + 2)
        with _scope(strategy):
            dense = build(masked=False, **widths)
        print(f"[baseline] no pruning: dense network {widths} with {dense_params:,} weights", flush=True)
        done = train_phase("baseline_dense", dense, dataset, out, epochs=args.final_epochs,
                           lr_fn=_lr(args, args.final_epochs), args=args, strategy=strategy,
                           learning_rate=args.learning_rate)
        baselines["no_pruning"] = {**widths, "params": done["params"], "val_accuracy": done["val_accuracy"],
                                   "test_accuracy": done["test_accuracy"]}
        random_masks = cnas.random_masks(graph, final_params, seed=args.seed)
        keras.utils.set_random_seed(args.seed + 3)
        with _scope(strategy):
            randomly = build(selection=graph.selection(random_masks), **sparse_overrides(args))
        print(f"[baseline] random pruning: {graph.count_params(random_masks):,} weights", flush=True)
        done = train_phase("baseline_random", randomly, dataset, out, epochs=args.final_epochs,
                           lr_fn=_lr(args, args.final_epochs), args=args, strategy=strategy,
                           learning_rate=args.learning_rate)
        baselines["random_pruning"] = {"params": done["params"], "val_accuracy": done["val_accuracy"],
                                       "test_accuracy": done["test_accuracy"]}
        for key, b in baselines.items():
            print(f"[baseline] {key}: {b['params']:,} weights ({b['params'] / final_params - 1:+.1%} against "
                  f"W*), test accuracy {b['test_accuracy']:.4f}", flush=True)

    if latency_report is not None:
        latency_report["searched_ms"] = log[-1].get("latency_ms") if log else latency_report["oneshot_ms"]
        latency_report["measured_ms"] = latency_fn(None, model=final)
        latency_report["met"] = latency_report["measured_ms"] <= args.target_latency_ms
        predicted = ""
        if table is not None:  # `latency` was imported with the table
            latency_report["predicted_ms"] = latency.predict_latency(final, table)
            predicted = f", {latency_report['predicted_ms']:.4f} ms predicted by the table"
        print(f"[latency] final model: {latency_report['measured_ms']:.4f} ms measured{predicted} (one-shot "
              f"{latency_report['oneshot_ms']:.4f} ms), target {args.target_latency_ms} ms "
              f"{'met' if latency_report['met'] else 'NOT met'}", flush=True)
    _plots(out, report, log, total, f"CNAS ({args.space}), {_targets_text(rho, args.target_latency_ms)}")
    training.plot_history(final_done["history"], os.path.join(out, "history.png"), title=f"{name} final model")
    costs_final = costs.profile(final).to_dict()
    costs_oneshot = costs.profile(oneshot).to_dict()
    results = {
        "space": args.space,
        "mode": name,
        "oneshot_params": total,
        "final_params": final_params,
        "sparsity": final_params / total,
        "target_sparsity": rho,
        "reached": reached,
        "input_channels": graph.input_channels(graph.full_masks()),
        "final_input_channels": graph.input_channels(masks),
        "nodes_removed": sum(r["nodes_removed"] for r in report),
        "edges_removed": sum(r["edges_removed"] for r in report),
        "iterations": log,
        "cells": report,
        "materialize_max_abs_difference": difference,
        "sparse_data_format": sparse_data_format(args),
        "saliency_form": args.saliency_form,
        "oneshot": {k: oneshot_done[k] for k in ("val_accuracy", "test_accuracy", "seconds")},
        "search_seconds": search_done["seconds"],
        "final": {k: final_done[k] for k in ("val_accuracy", "test_accuracy", "seconds", "params")},
        "val_accuracy": final_done["val_accuracy"],
        "test_accuracy": final_done["test_accuracy"],
        "macs": {"oneshot": costs_oneshot["macs"], "final": costs_final["macs"]},
        "costs": costs_final,
        "baselines": baselines,
    }
    if latency_report is not None:
        results["latency"] = latency_report
    best = contract.best_block(os.path.join(out, "best_model.keras"), {"space": args.space, "mode": name,
                               "sparse_model": os.path.join(out, "sparse_model.keras")},
                               final_done["val_accuracy"], dataset)
    results = contract.write(out, "cnas", results, best)
    print(f"Done: {name} with {final_params:,} of {total:,} weights (rho {final_params / total:.3f}), test accuracy "
          f"{final_done['test_accuracy']:.4f}; results in {out}", flush=True)
    return results


search = entry.searcher(__name__, "cnas", "a CNAS channel search and the training of its sparse model",
                        'result = keras_nas.cnas.search("digits", directory="runs/cnas", sparsity=0.5)')
