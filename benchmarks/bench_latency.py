"""Latency tables (issue 24): predicted against measured end-to-end latency of sampled architectures.

For each space, `--samples` random architectures (seeded) are built at one
input size; a latency table of that space is measured
(`keras_nas.latency.measure_table`, the same code as `keras-nas
latency-table`) with the chosen runtime and threads; each architecture's
latency is predicted from the table (`keras_nas.costs.predict_latency`) and
measured end to end (`keras_nas.latency.measure_model`, batch 1, same
runtime and threads, median after warm-up). Printed per architecture and as
a summary: the median absolute percentage error |predicted - measured| /
measured and Spearman's rank correlation (scipy.stats.spearmanr); the issue's
goal is a median within 15% and a rank correlation >= 0.9.

- resnet: `stage_resnet(depths)` with basic blocks, 3 stages, each depth
  uniform in 1..`--max-depth`; with `--resnet-block bottleneck`,
  `stage_resnet(depths, block="bottleneck")` (ResNet-50's family: 7x7/pool
  stem, 1x1-3x3-1x1 blocks, widths 64..512 x4), 4 stages. The table's
  memory term is fitted to `--resnet-calibration` networks of its own seed
  (`seed + 1000`), not the ones tested here; 0 tests the entries alone.
- epnas: `EPNASSpace("layers", initial_layers=(2, 12)).random_architecture`
  (Table 2's layer-by-layer space, 2 to 12 layers).
- nasnet: `stage_nasnet(depths, filters=--nasnet-filters)` (stage-wise
  `--module cell`, default filters 8 as its `--filters`), 3 stages, each
  depth uniform in 1..`--max-depth`.
- cnas: CNAS sparse networks (`channel_nasnet(1, --cnas-nodes,
  --cnas-channels)`, channels first, as `keras-nas search cnas`
  materialises them; with `--cnas-space densenet-bc`,
  `densenet_bc(--cnas-layers-per-block, --cnas-growth-rate)`) of random
  masks (`latency_model.sample_masks`, a seed apart from the
  `--cnas-fit-samples` networks the table is fitted to: the table is
  tested on networks it has not seen).
- epnas-module: EPNAS module networks (`EPNASSpace("module")` of
  `--epnas-module-stages`, `--epnas-module-filters`, 1 cell per stage, as
  `keras-nas search epnas --mode module`) of random cells of 1 to 5 branches
  (`latency_model.sample_cell`, a seed apart from the
  `--epnas-module-fit-samples` networks the table is fitted to).
- darts: `eval_network(genotype, cells=--darts-cells, channels=--darts-channels)`
  (no auxiliary head, no drop-path: the network as it serves) of genotypes
  derived (`derive_genotype`) from uniform random scores, as EoiNAS derives
  its cells.

`--stability N` instead times one small network (`stage_resnet((1, 1, 1))`)
N times with one TFLite interpreter per measurement and N times with five
(`measure_model(instances=)`) and prints both spreads: one interpreter now
and then runs slow for its whole life.

The EPNAS table has thousands of keys (every conv at every input channel
count, width and resolution); by default only the keys the sampled
architectures use are measured (`--full-table` measures them all, as
`keras-nas latency-table` does): the entries are the same measurements
either way. The 1-minute load average is printed at the start and end: a
busy machine (another benchmark on the 2 cores) disturbs the times.

    python benchmarks/bench_latency.py [--spaces resnet,epnas,epnas-module,darts,nasnet,cnas] [--runtime tflite|tf] [--threads 1]
        [--image-size 32] [--channels 3] [--samples 20] [--seed 0] [--runs 30] [--full-table]
        [--resnet-block basic|bottleneck] [--resnet-calibration 6] [--cnas-space nasnet|densenet-bc]
    python benchmarks/bench_latency.py --stability 8 --image-size 8 --channels 1

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RESNET_STAGES = {"basic": 3, "bottleneck": 4}  # the CIFAR family's stages, ResNet-50's


def sample_models(space, count, seed, image_size, channels, num_classes, max_depth, darts_cells=5,
                  darts_channels=16, nasnet_filters=8, resnet_block="basic", cnas_nodes=3,
                  cnas_channels=8, module_stages=2, module_filters=16, cnas_space="nasnet", cnas_layers=3,
                  cnas_growth=6):
    """`[(description, model)]` of `count` seeded random architectures of `space`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    models = []
    if space == "resnet":
        from keras_nas.stagewise.resnet import stage_resnet

        stages = RESNET_STAGES[resnet_block]
        for _ in range(count):
            depths = tuple(int(d) for d in rng.integers(1, max_depth + 1, size=stages))
            models.append((f"resnet:{','.join(map(str, depths))}",
                           stage_resnet(depths, block=resnet_block, input_shape=(image_size, image_size, channels),
                                        num_classes=num_classes)))
    elif space == "nasnet":
        from keras_nas.stagewise.nasnet import stage_nasnet

        for _ in range(count):
            depths = tuple(int(d) for d in rng.integers(1, max_depth + 1, size=3))
            models.append((f"nasnet:{','.join(map(str, depths))}",
                           stage_nasnet(depths, filters=nasnet_filters, input_shape=(image_size, image_size, channels),
                                        num_classes=num_classes)))
    elif space == "darts":
        from keras_nas.eoinas.darts import eval_network
        from keras_nas.eoinas.genotypes import PRIMITIVES, derive_genotype

        for _ in range(count):
            genotype = derive_genotype(rng.random((14, len(PRIMITIVES))), rng.random((14, len(PRIMITIVES))))
            ops = sum(op not in ("skip_connect", "max_pool_3x3", "avg_pool_3x3") for op, _ in genotype.normal)
            models.append((f"{ops}/8 conv normal",
                           eval_network(genotype, cells=darts_cells, channels=darts_channels, num_classes=num_classes,
                                        input_shape=(image_size, image_size, channels), auxiliary=False,
                                        drop_path=0.0)))
    elif space == "cnas":
        from keras_nas.cnas import latency_model
        from keras_nas.cnas.channel_graph import ChannelGraph
        from keras_nas.cnas.densenet_space import densenet_bc
        from keras_nas.cnas.layout import channel_layout
        from keras_nas.cnas.nasnet_space import channel_nasnet

        size = dict(num_classes=num_classes, input_shape=(image_size, image_size, channels))
        if cnas_space == "densenet-bc":
            build, kwargs, sparse = densenet_bc, dict(layers_per_block=cnas_layers, growth_rate=cnas_growth,
                                                      **size), {}
        else:
            build, kwargs = channel_nasnet, dict(cells_per_stage=1, nodes=cnas_nodes, channels=cnas_channels, **size)
            sparse = {"data_format": "channels_first"}
        _, topology = build(**kwargs, return_topology=True)
        graph = ChannelGraph(topology)
        # A seed of its own: the table fits its costs to networks of `sample_masks` with the table's seed (0).
        rng = np.random.default_rng(seed + 1000)
        for _ in range(count):
            masks = latency_model.sample_masks(graph, rng)
            share = graph.input_channels(masks) / graph.input_channels(graph.full_masks())
            models.append((f"{share:.0%} channels", build(
                **kwargs, **sparse, selection=channel_layout(topology, graph.selection(masks)))))
    elif space == "epnas-module":
        from keras_nas.epnas import latency_model
        from keras_nas.epnas.space import EPNASSpace

        module = EPNASSpace("module", min_layers=1, initial_layers=(1, 5), num_stages=module_stages,
                            cells_per_stage=1, filters=module_filters)
        # A seed of its own: the table fits its costs to cells of `sample_cell` with the table's seed (0).
        rng = np.random.default_rng(seed + 1000)
        for _ in range(count):
            cell = latency_model.sample_cell(module, rng)
            models.append((f"{len(cell)} branches", module.build(cell, (image_size, image_size, channels),
                                                                 num_classes)))
    else:
        from keras_nas.epnas.space import EPNASSpace

        epnas = EPNASSpace("layers", initial_layers=(2, 12))
        for _ in range(count):
            arch = epnas.random_architecture(rng)
            models.append((f"{len(arch)} layers", epnas.build(arch, (image_size, image_size, channels), num_classes)))
    return models


def bench_space(space, args):
    import keras
    from scipy.stats import spearmanr

    from keras_nas import costs, latency

    keras.utils.set_random_seed(args.seed)
    size = {"image_size": args.image_size, "channels": args.channels, "num_classes": args.num_classes}
    models = sample_models(space, args.samples, args.seed, **size, max_depth=args.max_depth,
                           darts_cells=args.darts_cells, darts_channels=args.darts_channels,
                           nasnet_filters=args.nasnet_filters, resnet_block=args.resnet_block,
                           cnas_nodes=args.cnas_nodes, cnas_channels=args.cnas_channels,
                           cnas_space=args.cnas_space, cnas_layers=args.cnas_layers_per_block,
                           cnas_growth=args.cnas_growth_rate,
                           module_stages=args.epnas_module_stages, module_filters=args.epnas_module_filters)
    needed = list(dict.fromkeys(k for _, m in models for k in latency.model_keys(m, space)))
    if space in ("cnas", "epnas-module") or (space == "resnet" and args.resnet_calibration):
        needed = None  # fitted together, or every entry for the calibration networks: no subset to measure
    start = time.perf_counter()
    # The table of the settings the sampled networks were built with (as keras-nas latency-table is given them).
    settings = {"darts": {"cells": args.darts_cells, "init_channels": args.darts_channels},
                "nasnet": {"stages": 3, "filters": args.nasnet_filters},
                "resnet": {"stages": RESNET_STAGES[args.resnet_block], "block": args.resnet_block,
                           "calibration": args.resnet_calibration},
                "cnas": ({"cnas_space": "densenet-bc", "layers_per_block": args.cnas_layers_per_block,
                          "growth_rate": args.cnas_growth_rate} if args.cnas_space == "densenet-bc" else
                         {"nodes": args.cnas_nodes, "init_channels": args.cnas_channels})
                | {"samples": args.cnas_fit_samples},
                "epnas-module": {"stages": args.epnas_module_stages, "filters": args.epnas_module_filters,
                                 "samples": args.epnas_module_fit_samples}}.get(space, {})
    table = latency.measure_table(space, **size, runtime=args.runtime, threads=args.threads, runs=args.runs,
                                  warmup=args.warmup, keys=None if args.full_table else needed, **settings)
    if "fit" in table:
        print(f"  fitted to {table['fit']['samples']} networks: median error {table['fit']['median_error']:.1%} on "
              f"them; costs per unit {', '.join(f'{k}={v:.3g}' for k, v in table['entries'].items())}", flush=True)
    if table.get("memory"):
        memory = table["memory"]
        print(f"  memory term {memory['ms_per_mb']:.4g} ms per MB of weights beyond {memory['cache_mb']:.1f} MB, "
              f"fitted to {memory['networks']} calibration networks ({memory['weight_mb'][0]:.1f}-"
              f"{memory['weight_mb'][1]:.1f} MB): median error on them {memory['median_error']['entries']:.1%} -> "
              f"{memory['median_error']['with_memory']:.1%}", flush=True)
    table_seconds = time.perf_counter() - start
    print(f"\n{space}: table of {len(table['entries'])} entries (overhead {table['overhead_ms']:.4f} ms) in "
          f"{table_seconds:.0f} s; {len(models)} architectures at {args.image_size}x{args.image_size}x{args.channels}",
          flush=True)
    predicted, measured = [], []
    print(f"  {'architecture':<16} {'predicted ms':>12} {'measured ms':>12} {'error':>8}")
    for description, model in models:
        p = costs.predict_latency(model, table)
        m = latency.measure_model(model, runtime=args.runtime, threads=args.threads, runs=args.runs,
                                  warmup=args.warmup)
        predicted.append(p)
        measured.append(m)
        print(f"  {description:<16} {p:12.4f} {m:12.4f} {100 * (p - m) / m:+7.1f}%", flush=True)
    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    rho = spearmanr(predicted, measured).statistic
    print(f"  {space}: median absolute error {100 * statistics.median(errors):.1f}% (max "
          f"{100 * max(errors):.1f}%), Spearman rank correlation {rho:.3f}; measured "
          f"{min(measured):.3f}-{max(measured):.3f} ms", flush=True)
    if args.remeasure:
        # How well the measurement ranks the networks against itself: the ceiling of any table's rank correlation.
        again = [latency.measure_model(model, runtime=args.runtime, threads=args.threads, runs=args.runs,
                                       warmup=args.warmup) for _, model in models]
        changes = [abs(a - m) / m for a, m in zip(again, measured)]
        print(f"  {space}: measured again, median change {100 * statistics.median(changes):.1f}% (max "
              f"{100 * max(changes):.1f}%), Spearman of the two measurements {spearmanr(measured, again).statistic:.3f}; "
              f"table against the second: {spearmanr(predicted, again).statistic:.3f}", flush=True)
    return {"space": space, "median_error": statistics.median(errors), "spearman": rho}


def stability(args):
    """Spread of repeated measurements of one network with 1 and with 5 interpreters per measurement."""
    from keras_nas import latency
    from keras_nas.stagewise.resnet import stage_resnet

    model = stage_resnet((1, 1, 1), input_shape=(args.image_size, args.image_size, args.channels),
                         num_classes=args.num_classes)
    for instances in (1, 5):
        values = [latency.measure_model(model, runtime="tflite", threads=args.threads, runs=args.runs,
                                        warmup=args.warmup, instances=instances) for _ in range(args.stability)]
        median = statistics.median(values)
        print(f"resnet:1,1,1 at {args.image_size}x{args.image_size}x{args.channels}, {instances} interpreter(s) per "
              f"measurement, {args.stability} measurements: {' '.join(f'{1000 * v:.1f}' for v in values)} us; "
              f"median {1000 * median:.1f} us, range {100 * (max(values) - min(values)) / median:.0f}% of it",
              flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="resnet,epnas")
    parser.add_argument("--runtime", default="tflite", choices=("tf", "tflite"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--max-depth", type=int, default=6, help="resnet, nasnet: most blocks (cells) per stage")
    parser.add_argument("--darts-cells", type=int, default=5, help="darts: cells of the evaluation network")
    parser.add_argument("--darts-channels", type=int, default=16, help="darts: its initial channels")
    parser.add_argument("--nasnet-filters", type=int, default=8, help="nasnet: filters F of the first stage")
    parser.add_argument("--cnas-nodes", type=int, default=3, help="cnas: nodes per cell (cnas --nodes)")
    parser.add_argument("--cnas-channels", type=int, default=8, help="cnas: C of stage 1 (cnas --init-channels)")
    parser.add_argument("--cnas-fit-samples", type=int, default=40, help="cnas: networks the table is fitted to")
    parser.add_argument("--cnas-space", default="nasnet", choices=("nasnet", "densenet-bc"),
                        help="cnas: the search's --space")
    parser.add_argument("--cnas-layers-per-block", type=int, default=3, help="cnas densenet-bc: --layers-per-block")
    parser.add_argument("--cnas-growth-rate", type=int, default=6, help="cnas densenet-bc: --growth-rate")
    parser.add_argument("--epnas-module-stages", type=int, default=2, help="epnas-module: stages (epnas --stages)")
    parser.add_argument("--epnas-module-filters", type=int, default=16, help="epnas-module: epnas --filters")
    parser.add_argument("--epnas-module-fit-samples", type=int, default=60,
                        help="epnas-module: networks the table is fitted to")
    parser.add_argument("--full-table", action="store_true", help="measure every key of the space")
    parser.add_argument("--stability", type=int, default=0, metavar="N",
                        help="time one small network N times with 1 and with 5 interpreters instead")
    parser.add_argument("--remeasure", action="store_true",
                        help="measure the architectures a second time: the rank correlation of the measurement "
                             "with itself, the ceiling of a table's")
    parser.add_argument("--resnet-calibration", type=int, default=6, metavar="N",
                        help="resnet: networks the table's memory term is fitted to (0: entries alone)")
    parser.add_argument("--resnet-block", default="basic", choices=tuple(RESNET_STAGES),
                        help="resnet: basic (3 stages) or bottleneck (4 stages) blocks")
    args = parser.parse_args(argv)
    if args.runtime == "tf":
        from keras_nas import latency

        latency._set_tf_threads(args.threads)  # before TensorFlow builds its thread pools
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); runtime {args.runtime}, "
          f"{args.threads} thread(s)", flush=True)
    if args.stability:
        return stability(args)
    summaries = [bench_space(space, args) for space in args.spaces.split(",")]
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    for s in summaries:
        print(f"{s['space']}: median |error| {100 * s['median_error']:.1f}%, Spearman {s['spearman']:.3f}")
    return summaries


if __name__ == "__main__":
    main()
