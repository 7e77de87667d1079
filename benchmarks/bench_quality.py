"""Search quality: each method against its paper's baseline, same budget, several seeds (issue 23).

Runs the library's own searches (`keras_nas.<method>.search`) on the bundled
`digits-cluttered` task (`keras_nas.data.load`; on plain `digits` nearly every
network reaches 96-98% and arms cannot separate) and compares, per seed:

- stagewise (paper 000, Tables II-III): the searched ResNet against the
  uniform-depth ResNets (`resnet:k,k,k`) of the nearest MACs below and above
  it, trained with the same optimizer, schedule and epochs as the search's
  candidate (`keras_nas.training.train_model`, the stage-wise settings).
- eoinas (paper 003, Table 3): EoiNAS against GDAS + gradual pruning (`gop`)
  and plain GDAS, each derived cell trained from scratch the same way; the
  derived cells' parameter-free op counts are reported too.
- cnas (paper 004, Fig. 2(b)): CNAS-R against random pruning and a narrower
  dense network. `--sparsity` is set to the narrower dense width's share of
  the one-shot weights, so the three arms have the same weight count (the
  dense widths are discrete: C of 2, 4, 6, ...); the count of each arm is
  printed with its gap.
- epnas (paper 002, Fig. 4): EPNAS against random search on the same number
  of children and the same constraint; best feasible reward after each child.

Every run is a results folder under `--out/<method>/<arm>/seed_<s>` written
by the search itself; a run whose results.json exists is read, not redone,
so a killed benchmark resumes. Prints per-seed numbers, the mean and
standard deviation per arm and the gap to the method's own arm in units of
its spread; writes `quality.json` and one plot per method (`<method>.png`:
per-seed points, mean and standard deviation) into `--out`.

    PYTHONPATH=. python benchmarks/bench_quality.py [--methods stagewise,eoinas,cnas,epnas] [--seeds 3]
        [--out runs/bench_quality] [--quick] [--set eoinas.epochs=12 ...]

`--quick` runs one seed at the smallest settings (a smoke run of the script).
Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATASET = "digits-cluttered"
# Every arm reads the task at 16x16 (resized from 24x24, bilinear): at 24x24 one seed of CNAS or of the three
# EoiNAS variants alone takes 10 to 25 minutes on 2 cores.
IMAGE_SIZE = 16
METHODS = ("stagewise", "cnas", "epnas", "eoinas")

# The budgets, sized for about an hour for all four methods and 3 seeds on 2 CPU cores. `--quick` shrinks them.
SETTINGS = {
    "stagewise": dict(epochs=4, iterations=1),
    # 3 cells: with the default 5 at 24x24 a supernet epoch takes 83 s here (9 runs of ~8 min).
    "eoinas": dict(epochs=4, eval_epochs=4, cells=3, eval_cells=3),
    "cnas": dict(epochs=2, final_epochs=3, finetune_epochs=1),
    "epnas": dict(episodes=2, branches=2, steps=2, epochs=2, constraint=["params<=40000"]),
}
QUICK = {
    "stagewise": dict(epochs=1, iterations=1),
    "eoinas": dict(epochs=2, eval_epochs=1, cells=3, eval_cells=3),
    "cnas": dict(epochs=1, final_epochs=1, finetune_epochs=1),
    "epnas": dict(episodes=1, branches=2, steps=1, epochs=1, constraint=["params<=40000"]),
}


def _read(path):
    with open(path) as f:
        return json.load(f)


def run_search(method, directory, seed, **options):
    """The search's results.json: read if the run finished before, else run it (resuming a killed run)."""
    import keras

    import keras_nas

    path = os.path.join(directory, "results.json")
    if os.path.exists(path):
        return _read(path)
    start = time.perf_counter()
    results = getattr(keras_nas, method).search(DATASET, directory=directory, seed=seed, verbose=0,
                                                 image_size=IMAGE_SIZE, **options).results
    print(f"    {method} {os.path.relpath(directory)}: {time.perf_counter() - start:.0f} s", flush=True)
    keras.backend.clear_session()
    return results


# ---------------------------------------------------------------------------- stagewise


def uniform_macs(depths, input_shape, num_classes):
    from keras_nas import costs, stagewise

    return costs.profile(stagewise.stage_resnet(depths, input_shape=input_shape,
                                                num_classes=num_classes)).macs


def stagewise_seed(out, seed, settings):
    import keras

    from keras_nas import data, io, stagewise, training
    from keras_nas.stagewise.command import OPTIONS

    defaults = {o.name: o.default for o in OPTIONS}
    found = run_search("stagewise", os.path.join(out, "stagewise", "searched", f"seed_{seed}"), seed, **settings)
    depths = [int(d) for d in found["best"]["architecture"].split(":")[1].split(",")]
    dataset = data.load(DATASET, seed=seed, image_size=IMAGE_SIZE)
    stages = len(depths)
    macs = {k: uniform_macs([k] * stages, dataset.input_shape, dataset.num_classes) for k in range(1, 9)}
    below = max((k for k in macs if macs[k] < found["best"]["macs"]), default=1)
    above = min((k for k in macs if macs[k] > found["best"]["macs"]), default=8)
    epochs = settings["epochs"] + settings.get("final_epochs", defaults["final_epochs"])
    row = {"searched": {"test_accuracy": found["best"]["test_accuracy"], "macs": found["best"]["macs"],
                        "params": found["best"]["params"], "architecture": found["best"]["architecture"]}}
    for arm, k in (("uniform_below", below), ("uniform_above", above)):
        folder = os.path.join(out, "stagewise", arm, f"seed_{seed}")
        path = os.path.join(folder, "summary.json")
        architecture = "resnet:" + ",".join([str(k)] * stages)
        if not os.path.exists(path) or _read(path)["architecture"] != architecture:
            keras.utils.set_random_seed(seed)
            model = stagewise.stage_resnet([k] * stages, input_shape=dataset.input_shape,
                                           num_classes=dataset.num_classes, l2_regularization=defaults["l2"])
            # The stage-wise candidate's training (StageWiseTuner): Nesterov SGD, step schedule x0.1 at 50% and
            # 75% of the epochs, no decoupled weight decay (the L2 penalty is in the kernels).
            done = training.train_model(model, dataset, epochs=epochs, optimizer=defaults["optimizer"],
                                        learning_rate=defaults["learning_rate"], momentum=defaults["momentum"],
                                        weight_decay=0.0, schedule="step", verbose=0)
            io.atomic_write_json(path, {"architecture": architecture, "macs": macs[k],
                                 "params": model.count_params(), "test_accuracy": done["test_accuracy"]})
            keras.backend.clear_session()
        summary = _read(path)
        row[arm] = {key: summary[key] for key in ("test_accuracy", "macs", "params", "architecture")}
    return row


# ---------------------------------------------------------------------------- eoinas


def parameter_free(genotype, cell="normal"):
    """`(parameter-free ops, edges)` of a cell of a genotype's dict form (the collapse guard's count)."""
    from keras_nas.eoinas.genotypes import genotype_from_dict, parameter_free_counts

    counts = parameter_free_counts(genotype_from_dict(genotype))[cell]
    return counts["total"], counts["edges"]


def eoinas_seed(out, seed, settings):
    row = {}
    for variant in ("eoinas", "gop", "gdas"):
        found = run_search("eoinas", os.path.join(out, "eoinas", variant, f"seed_{seed}"), seed, variant=variant,
                           **settings)
        free, edges = parameter_free(found["genotype"])
        row[variant] = {"test_accuracy": found["best"]["test_accuracy"], "params": found["best"]["params"],
                        "architecture": found["best"]["architecture"], "parameter_free_normal": free,
                        "normal_edges": edges}
    return row


# ---------------------------------------------------------------------------- cnas


def cnas_sparsity(settings, input_shape, num_classes):
    """rho that makes W* as large as the widest narrower dense network (the Fig. 2(b) "no pruning" arm)."""
    from keras_nas.cnas.channel_graph import ChannelGraph
    from keras_nas.cnas.command import OPTIONS
    from keras_nas.cnas.nasnet_space import channel_nasnet

    d = {o.name: o.default for o in OPTIONS}
    d.update(settings)

    def weights(channels):
        _, topology = channel_nasnet(cells_per_stage=d["cells"], nodes=d["nodes"], channels=channels,
                                     ops_per_node=d["ops_per_node"], num_classes=num_classes,
                                     input_shape=input_shape, masked=False, return_topology=True)
        return ChannelGraph(topology).total_params

    return weights(d["init_channels"] - 2) / weights(d["init_channels"])


def cnas_seed(out, seed, settings):
    from keras_nas import data

    dataset = data.load(DATASET, seed=seed, image_size=IMAGE_SIZE)
    rho = cnas_sparsity(settings, dataset.input_shape, dataset.num_classes)
    found = run_search("cnas", os.path.join(out, "cnas", "all_arms", f"seed_{seed}"), seed,
                       sparsity=round(rho, 4), baselines=True, **settings)
    base = found["baselines"]
    return {"cnas_r": {"test_accuracy": found["best"]["test_accuracy"], "params": found["final_params"]},
            "random_pruning": {"test_accuracy": base["random_pruning"]["test_accuracy"],
                               "params": base["random_pruning"]["params"]},
            "narrower_dense": {"test_accuracy": base["no_pruning"]["test_accuracy"],
                               "params": base["no_pruning"]["params"]}}


# ---------------------------------------------------------------------------- epnas


def best_feasible_curve(children):
    """Best reward among the children that meet every constraint, after each child (0 before the first)."""
    from keras_nas.epnas.command import feasible

    best, curve = 0.0, []
    for child in children:
        if child["status"] == "COMPLETED" and feasible(child):
            best = max(best, child["reward"])
        curve.append(best)
    return curve


def epnas_seed(out, seed, settings):
    row = {}
    for arm, baseline in (("epnas", "none"), ("random", "random")):
        found = run_search("epnas", os.path.join(out, "epnas", arm, f"seed_{seed}"), seed, baseline=baseline,
                           **settings)
        curve = best_feasible_curve(found["children"])
        row[arm] = {"test_accuracy": (found["best"] or {}).get("test_accuracy"), "best_feasible_reward": curve[-1],
                    "curve": curve, "params": (found["best"] or {}).get("params")}
    return row


SEEDERS = {"stagewise": stagewise_seed, "eoinas": eoinas_seed, "cnas": cnas_seed, "epnas": epnas_seed}
SCORE = {"stagewise": "test_accuracy", "eoinas": "test_accuracy", "cnas": "test_accuracy",
         "epnas": "best_feasible_reward"}
OWN_ARM = {"stagewise": "searched", "eoinas": "eoinas", "cnas": "cnas_r", "epnas": "epnas"}


# ---------------------------------------------------------------------------- report


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(method, rows):
    """Lines of the per-seed table and the per-arm mean +- std, with the verdict against the method's arm."""
    score = SCORE[method]
    arms = list(next(iter(rows.values())))
    lines = [f"{method}: {score} per seed"]
    for seed, row in rows.items():
        lines.append(f"  seed {seed}: " + ", ".join(
            f"{arm} {row[arm][score]:.4f}" + (f" ({row[arm]['architecture']})"
                                                if isinstance(row[arm].get("architecture"), str) else "")
            + (f" [{row[arm]['parameter_free_normal']}/{row[arm]['normal_edges']} parameter-free]"
               if row[arm].get("normal_edges") else "")
            + (f" {row[arm]['params']:,} params" if row[arm].get("params") else "")
            for arm in arms))
    if method == "epnas":
        for arm in arms:
            curves = [row[arm]["curve"] for row in rows.values()]
            means = [statistics.fmean(c[k] for c in curves) for k in range(len(curves[0]))]
            lines.append(f"  {arm}: mean best feasible reward after 1..{len(means)} children: "
                         + " ".join(f"{m:.3f}" for m in means))
    stats = {arm: mean_std([row[arm][score] for row in rows.values()]) for arm in arms}
    own = OWN_ARM[method]
    for arm, (mean, std) in stats.items():
        text = f"  {arm}: {mean:.4f} +- {std:.4f} over {len(rows)} seed(s)"
        if arm != own:
            gap = stats[own][0] - mean
            spread = max(stats[own][1], std)
            verdict = ("one seed: no spread" if len(rows) < 2 else "within noise" if abs(gap) <= spread else
                       f"{own} {'better' if gap > 0 else 'worse'}")
            text += f"; {own} - {arm} = {gap:+.4f} ({verdict}: spread {spread:.4f})"
        lines.append(text)
    return lines, stats


def plot(method, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from keras_nas import io

    score = SCORE[method]
    arms = list(next(iter(rows.values())))
    if method == "epnas":
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for i, arm in enumerate(arms):
            curves = np.array([row[arm]["curve"] for row in rows.values()])
            x = np.arange(1, curves.shape[1] + 1)
            mean, std = curves.mean(0), curves.std(0)
            ax.plot(x, mean, marker="o", color=f"C{i}", label=f"{arm} (mean of {len(curves)})")
            ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        ax.set_xlabel("children trained")
        ax.set_ylabel("best feasible reward so far")
        ax.legend(fontsize=8)
    else:
        fig, ax = plt.subplots(figsize=(1.6 * len(arms) + 2.5, 3.6))
        for i, arm in enumerate(arms):
            values = [row[arm][score] for row in rows.values()]
            ax.scatter([i] * len(values), values, color=f"C{i}", alpha=0.6, zorder=3)
            mean, std = mean_std(values)
            ax.errorbar([i + 0.15], [mean], yerr=[std], fmt="s", color="k", capsize=4, zorder=4)
        ax.set_xticks(range(len(arms)), arms)
        ax.set_ylabel(f"{score.replace('_', ' ')} on {DATASET}")
        ax.set_xlim(-0.5, len(arms) - 0.3)
    ax.set_title(f"{method}: {len(rows)} seed(s), points per seed, mean +- std", fontsize=9)
    ax.grid(alpha=0.3)
    io.save_figure(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/bench_quality")
    parser.add_argument("--quick", action="store_true", help="smallest settings (a smoke run)")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="override one search setting of SETTINGS (VALUE read as JSON, else as a string), "
                             "e.g. --set eoinas.epochs=12; repeatable")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        target, sep, value = item.partition("=")
        method, dot, name = target.partition(".")
        if not sep or not dot or method not in METHODS or not name:
            parser.error(f"--set must be METHOD.NAME=VALUE with METHOD one of {', '.join(METHODS)}; "
                         f"received --set {item!r}")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        overrides.setdefault(method, {})[name] = value
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or args.seeds < 1:
        parser.error(f"--methods must name some of {', '.join(METHODS)} and --seeds be >= 1; "
                     f"received --methods {args.methods!r}, --seeds {args.seeds}")
    from keras_nas import io

    os.makedirs(args.out, exist_ok=True)
    report_path = os.path.join(args.out, "quality.json")
    report = _read(report_path) if os.path.exists(report_path) else {}
    for method in methods:
        settings = {**(QUICK if args.quick else SETTINGS)[method], **overrides.get(method, {})}
        print(f"{method}: {args.seeds} seed(s) on {DATASET} at {IMAGE_SIZE}x{IMAGE_SIZE}, settings {settings}",
              flush=True)
        start = time.perf_counter()
        rows = {seed: SEEDERS[method](args.out, seed, settings) for seed in range(args.seeds)}
        lines, stats = summarize(method, rows)
        print("\n".join(lines), f"  ({time.perf_counter() - start:.0f} s)", sep="\n", flush=True)
        plot(method, rows, os.path.join(args.out, f"{method}.png"))
        report[method] = {"settings": settings, "seeds": rows, "mean_std": stats}
        io.atomic_write_json(report_path, report)
    print(f"wrote {report_path} and {', '.join(m + '.png' for m in methods)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
