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

import argparse
import os

from keras_nas import io
from keras_nas.searches import common

MODULES = ("residual", "cell")


def add_arguments(parser):
    """The method's options (paper value in brackets in each help)."""
    group = parser.add_argument_group("stage-wise options")
    group.add_argument("--module", dest="module_type", choices=MODULES, default="residual",
                       help="residual blocks (ResNet) or NASNet-A cells [both]")
    group.add_argument("--block", choices=("basic", "bottleneck"), default="basic",
                       help="residual block type [basic on CIFAR, bottleneck on ImageNet]")
    group.add_argument("--criterion", choices=("pls", "inffs", "ilfs"), default="pls",
                       help="stage importance criterion [pls, Table II]")
    group.add_argument("--m0", type=int, default=2, help="initial modules per stage (default 2) [paper: 6]")
    group.add_argument("--delta", type=int, default=1, help="growth step (default 1) [paper: 2 residual, 1 cell]")
    group.add_argument("--iterations", type=int, default=2, help="iterations n; trains 2n+1 networks (default 2) [paper: 5]")
    group.add_argument("--stages", type=int, default=3, help="number of stages S [3; 4 on ImageNet 224]")
    group.add_argument("--epochs", type=int, default=12, help="training epochs per network (default 12) [paper: 200]")
    group.add_argument("--final-epochs", type=int, default=0, help="extra epochs for each candidate (default 0) [paper: 100]")
    group.add_argument("--optimizer", choices=("sgd", "nesterov", "adam"), default="nesterov",
                       help="[SGD; the reference code uses Nesterov momentum 0.9]")
    group.add_argument("--learning-rate", type=float, default=0.05, help="initial learning rate (default 0.05) [paper: 0.01]")
    group.add_argument("--momentum", type=float, default=0.9, help="[0.9]")
    group.add_argument("--l2", type=float, default=1e-4, help="L2 penalty on kernels [1e-4, reference code]")
    group.add_argument("--milestones", default=None,
                       help="comma-separated epochs where the lr drops x0.1 [100,150]; default 50%%,75%% of --epochs")
    group.add_argument("--importance-samples", type=int, default=None,
                       help="training examples scored for importance [all]")
    group.add_argument("--pool-size", type=int, default=8, help="pooling window of stage features [8]")
    group.add_argument("--n-components", type=int, default=2, help="PLS components [2]")
    group.add_argument("--alpha", type=float, default=0.5, help="inf-FS mixing weight [0.5]")
    group.add_argument("--tokens", type=int, default=6, help="il-FS tokens [6]")
    group.add_argument("--filters", type=int, default=8, help="cell modules: filters F of stage 1 (default 8) [paper: 32]")
    group.add_argument("--donor", default=None,
                       help="weight transfer: a trained deeper .keras network of the same family [ResNet-110]")


def _check(args):
    """Every option checked before anything is trained or written."""
    for name in ("m0", "delta", "iterations", "stages", "epochs", "pool_size", "n_components", "tokens", "filters"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"`--{name.replace('_', '-')}` must be a positive int. Received: {value}")
    if args.final_epochs < 0:
        raise ValueError(f"`--final-epochs` must be >= 0. Received: {args.final_epochs}")
    if args.importance_samples is not None and args.importance_samples < 2:
        raise ValueError(f"`--importance-samples` must be >= 2. Received: {args.importance_samples}")
    if args.learning_rate <= 0:
        raise ValueError(f"`--learning-rate` must be > 0. Received: {args.learning_rate}")
    if args.l2 < 0:
        raise ValueError(f"`--l2` must be >= 0. Received: {args.l2}")
    if not 0 <= args.alpha <= 1:
        raise ValueError(f"`--alpha` must be in [0, 1]. Received: {args.alpha}")
    if args.tokens < 2:
        raise ValueError(f"`--tokens` must be >= 2. Received: {args.tokens}")
    milestones = None
    if args.milestones:
        try:
            milestones = [int(m) for m in str(args.milestones).split(",")]
        except ValueError:
            milestones = None
        if not milestones or min(milestones) < 1:
            raise ValueError(
                f"`--milestones` must be comma-separated positive epochs such as 100,150. "
                f"Received: {args.milestones!r}"
            )
    if args.module_type == "cell" and args.block != "basic":
        raise ValueError("`--block` applies to `--module residual` only.")
    if args.donor is not None and not (os.path.isfile(args.donor) and args.donor.endswith(".keras")):
        raise ValueError(f"`--donor` must be an existing .keras file. Received: {args.donor!r}")
    return milestones


def builder(args, input_shape, num_classes):
    """`stage_depths -> model` for the chosen module type."""
    from keras_nas import spaces

    if args.module_type == "cell":
        return lambda depths: spaces.stage_nasnet(
            depths, filters=args.filters, input_shape=input_shape,
            num_classes=num_classes, l2_regularization=args.l2,
        )
    return lambda depths: spaces.stage_resnet(
        depths, block=args.block, input_shape=input_shape,
        num_classes=num_classes, l2_regularization=args.l2,
    )


def check_donor(donor_path, args):
    """Loads the donor and checks it is deep enough for every network of the search."""
    import keras

    from keras_nas.weight_transfer import stage_depths_of

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
    for s in range(num_stages):
        ax.plot([m["iteration"] for m in path], [m["stage_depths"][s] for m in path], marker="o", label=f"stage {s}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("modules in stage")
    ax.set_title("Stage depth per iteration")
    ax.legend()
    ax.grid(alpha=0.3)
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


def summarize(tuner, oracle, dataset, out, latency=True):
    """The candidate table, ensemble, best model and plots of a finished search."""
    import keras

    from keras_nas import costs
    from keras_nas.tuners.stage_wise_tuner import FINAL_MODEL, SUMMARY

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
        results["best"] = {
            "trial_id": best["trial_id"],
            "stage_depths": best["stage_depths"],
            "val_accuracy": best["val_accuracy"],
            "test_accuracy": best["test_accuracy"],
            "path": os.path.join(out, "best_model.keras"),
        }
    if models:
        _plots(out, models, oracle.num_stages)
    io.atomic_write_json(os.path.join(out, io.RESULTS_FILE), results)
    return results


def run(args):
    """Runs (or resumes) the search described by `args`; returns results.json's dict."""
    from keras_nas.oracles import StageWiseOracle
    from keras_nas.tuners import StageWiseTuner

    milestones = _check(args)
    out = common.out_dir(args, "stagewise")
    strategy = common.setup_runtime(args)
    dataset = common.load_data(args)
    build = builder(args, dataset.input_shape, dataset.num_classes)
    # Fail before training on an architecture the input cannot carry.
    build([args.m0] * args.stages)
    if args.donor:
        check_donor(args.donor, args)
    keys = ("module_type", "block", "criterion", "m0", "delta", "iterations", "stages", "epochs",
            "final_epochs", "optimizer", "learning_rate", "momentum", "l2", "milestones",
            "importance_samples", "pool_size", "n_components", "alpha", "tokens", "filters", "donor")
    config = {"method": "stagewise", **common.common_config(args), **{k: getattr(args, k) for k in keys}}
    resumed = io.prepare_out_dir(out, config, overwrite=args.overwrite)
    io.write_preprocessing(out, dataset)
    print(
        f"{'Resuming' if resumed else 'Starting'} stage-wise search on {dataset.name} "
        f"{dataset.input_shape}: {args.module_type} modules, m0={args.m0}, delta={args.delta}, "
        f"{args.iterations} iterations ({2 * args.iterations + 1} networks), "
        f"{args.epochs} epochs each, criterion {args.criterion} -> {out}",
        flush=True,
    )
    oracle = StageWiseOracle(
        num_stages=args.stages, initial_depth=args.m0, delta=args.delta,
        iterations=args.iterations, seed=args.seed, lease_seconds=common.oracle_arguments(args)["lease_seconds"],
    )
    tuner = StageWiseTuner(
        oracle,
        build,
        epochs=args.epochs,
        final_epochs=args.final_epochs,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        momentum=args.momentum,
        milestones=milestones,
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
    if results["stopped_reason"]:
        reasons = "; ".join(
            f"trial {t['trial_id']}: {t.get('reason', t['status'])}"
            for t in results["trials"] if t["status"] != "COMPLETED"
        )
        print(f"The search stopped early: {results['stopped_reason']} ({reasons}). "
              "Fix the cause and run the same command with --overwrite.", flush=True)
    for d in results["decisions"]:
        print(
            f"iteration {d['iteration']}: A {d['previous_depths']} vs T {d['temporary_depths']}, "
            f"importance A {[round(v, 4) for v in d['importance_a']]} T "
            f"{[round(v, 4) for v in d['importance_t']]} -> {d['stage_depths']}",
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
        print(f"best candidate {results['best']['stage_depths']} saved to {results['best']['path']}", flush=True)
    print(f"{results['models_trained']} networks trained; results in {out}", flush=True)
    return results
