"""CNAS costs, measured side by side in one run (CPU by default).

1. One training step of the one-shot network with a `ChannelMask` on every
   edge (and the alive gate) against the same network without masks, on
   the same batch. Target: at most 1.1x.
2. The physically sparse (materialised) network of a pruned one-shot
   network against the one-shot network itself: inference latency ratio
   beside the MACs ratio (target: the two agree within 25%), at batch 1
   and 32 (`--latency-batches`). The masks come from progressive zeroing
   (gamma 0.1) to rho with random saliency; the topology, not the
   criterion, sets the cost. The models (one-shot, materialised,
   materialised without `channel_layout`, one-shot without masks, and for
   NASNet the materialised and unmasked one-shot networks with
   channels-first feature maps) run interleaved, round by round
   (`--rounds`, ~0.3 s per model per round); printed: the median per-round
   ratio (and its range), the ratio of the fastest rounds, and the ratio of
   this process's CPU time (robust when other processes share the cores;
   with `--threads 1` it is the single-thread compute time). The
   channels-first rows are also compared with the one-shot's fastest form
   per round (masked, or without masks in either layout) beside the MACs
   ratio to the one-shot without masks (its MACs are 3% fewer).

    PYTHONPATH=. python benchmarks/bench_cnas.py [--cells 2 --nodes 5 --channels 16 --image-size 32 --batch 64]
    PYTHONPATH=. python benchmarks/bench_cnas.py --space densenet-bc --sparsity 0.7
    ... [--threads 1] [--skip-step] [--channels 48 | --growth-rate 32] [--latency-batches 1 8]
    ... --cells 6 --channels 72 --latency-batches 1 8 --rounds 5   # the paper's N and C (Table 1)

What the materialised model does to follow its MACs (keras_nas.cnas,
ChannelSelect): an edge reads its kept channels straight from the sources
(no pool concatenation; in NASNet no node concatenation either), as slices
of contiguous runs (a whole source costs nothing, a gather only past 4
runs); `channel_layout` permutes each producer's output columns (Gray-code
order of "which consumers keep this channel", folded into the kernels and
BatchNorm entries) so the kept channels are contiguous; in NASNet the live
ops of a node share one ReLU and one depthwise conv (both per channel).
Nothing computes a pruned channel. The same `ChannelSelect` slicing made
the one-shot network itself faster (its edges read contiguous halves of
the pool, formerly with a slow last-axis `tf.gather`).

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nas import cnas, costs, folding  # noqa: E402
from keras_nas.cnas.nasnet_space import channel_nasnet  # noqa: E402
from keras_nas.cnas.densenet_space import densenet_bc  # noqa: E402


def build(args, **kwargs):
    shape = (args.image_size, args.image_size, 3)
    if args.space == "nasnet":
        return channel_nasnet(args.cells, args.nodes, args.channels, input_shape=shape, **kwargs)
    return densenet_bc(args.layers_per_block, args.growth_rate, input_shape=shape, **kwargs)


def step_seconds(models, x, y, runs, rounds=5):
    """Median time of one compiled training step per model, interleaved to share machine noise."""
    steps = []
    for model in models:
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy", jit_compile=False)
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
        steps.append(model)
    times = [[] for _ in models]
    for _ in range(rounds):
        for i, model in enumerate(steps):
            start = time.perf_counter()
            for _ in range(runs):
                model.train_on_batch(x, y)
            times[i].append((time.perf_counter() - start) / runs)
    return [statistics.median(t) for t in times]


def latency_ms(models, batch=1, rounds=5, round_seconds=0.3):
    """Inference time of one batch per model (compiled graph), interleaved round by round.

    Each round runs every model in turn for about `round_seconds` (the
    same number of calls per model, set by the slowest). Returns
    `(medians, rounds, cpu_rounds)`: the median wall time per model, the
    per-round wall times (to pair models measured under the same machine
    load) and the per-round CPU times of this process (`process_time`:
    not inflated when other processes share the cores; with `--threads 1`
    it is the single-thread compute time).
    """
    fns, x, warm = [], None, []
    for model in models:
        shape = tuple(model.inputs[0].shape[1:])
        x = tf.random.stateless_normal((batch,) + shape, seed=(0, 0))
        fn = tf.function(lambda t, m=model: m(t, training=False))
        for _ in range(3):
            fn(x).numpy()
        start = time.perf_counter()
        for _ in range(3):
            fn(x).numpy()
        warm.append((time.perf_counter() - start) / 3)
        fns.append(fn)
    runs = max(2, int(round_seconds / max(warm)))
    times = [[] for _ in models]
    cpu = [[] for _ in models]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(runs):
                fn(x).numpy()
            times[i].append((time.perf_counter() - start) / runs * 1000.0)
            cpu[i].append((time.process_time() - start_cpu) / runs * 1000.0)
    return [statistics.median(t) for t in times], times, cpu


def paired_ratio(numerator, denominator):
    """Median and range of the per-round ratios (both measured in the same round)."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return statistics.median(ratios), min(ratios), max(ratios)


def agreement(ratio, macs_ratio, tolerance=0.25):
    """How far a latency ratio is from the MACs ratio (relative), and whether that is within the target."""
    gap = abs(ratio - macs_ratio) / macs_ratio
    return gap, "met" if gap <= tolerance else "NOT met"


def prune(graph, rho, gamma, seed):
    masks = graph.full_masks()
    rng = np.random.default_rng(seed)
    target = int(rho * graph.total_params)
    iterations = 0
    while graph.count_params(masks) > target:
        saliency = {n: rng.random(len(m)) for n, m in masks.items()}
        masks, info = cnas.zero_least_salient(graph, masks, saliency, gamma, target)
        iterations += 1
        if info["removed"] == 0:  # rho below what this network can reach
            break
    return masks, iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", choices=("nasnet", "densenet-bc"), default="nasnet")
    parser.add_argument("--cells", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers-per-block", type=int, default=6)
    parser.add_argument("--growth-rate", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64, help="batch of the training-step comparison")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=11, help="interleaved rounds per latency (median reported)")
    parser.add_argument("--sparsity", type=float, default=0.46)
    parser.add_argument("--gamma", type=float, default=0.1)
    parser.add_argument("--latency-batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--skip-step", action="store_true", help="skip the training-step comparison (1.)")
    parser.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0: TF default)")
    parser.add_argument("--fold", action=argparse.BooleanOptionalAction, default=True,
                        help="also time both networks as `keras-nas export` serves them (BatchNorm folded)")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)

    masked, topology = build(args, return_topology=True)
    plain = build(args, masked=False)
    graph = cnas.ChannelGraph(topology)
    width = f"C = {args.channels}" if args.space == "nasnet" else f"k = {args.growth_rate}"
    print(f"{args.space} one-shot network ({width}): |W| = {graph.total_params:,}, {len(graph.edges)} edges, "
          f"|X| = {graph.input_channels(graph.full_masks()):,}, {args.image_size}x{args.image_size}")
    if not args.skip_step:
        x = np.random.default_rng(0).normal(size=(args.batch, args.image_size, args.image_size, 3)).astype("float32")
        y = np.arange(args.batch) % 10
        with_masks, without = step_seconds([masked, plain], x, y, args.runs)
        print(f"1. training step at batch {args.batch}: with masks {with_masks * 1000:.1f} ms, without "
              f"{without * 1000:.1f} ms -> ratio {with_masks / without:.3f}x (target <= 1.1x)")

    masks, iterations = prune(graph, args.sparsity, args.gamma, seed=0)
    cnas.write_masks(masked, graph, masks)
    sparse, _ = cnas.materialize(masked, graph, lambda sel: build(args, selection=sel))
    unordered, _ = cnas.materialize(masked, graph, lambda sel: build(args, selection=sel), layout=False)
    models = [masked, sparse, unordered, plain]
    if args.space == "nasnet":
        # The same networks with channels-first feature maps (same weights and function).
        first, _ = cnas.materialize(masked, graph, lambda sel: build(args, selection=sel,
                                                                        data_format="channels_first"))
        plain_first = build(args, masked=False, data_format="channels_first")
        plain_first.set_weights(plain.get_weights())
        models += [first, plain_first]
    folded_at = len(models)
    if args.fold:  # as exported for serving: BatchNormalization folded into the convolutions
        models += [folding.fold_batch_norms(m) for m in models[:2] + models[4:5]]
    macs_oneshot, macs_sparse = costs.count_macs(masked), costs.count_macs(sparse)
    macs_ratio = macs_sparse / macs_oneshot
    macs_plain_ratio = macs_sparse / costs.count_macs(plain)  # to the one-shot without masks
    print(f"2. after {iterations} zeroing iterations to rho = {args.sparsity}: |W*| = {sparse.count_params():,} "
          f"({graph.sparsity(masks):.3f} of |W|), |X*| = {graph.input_channels(masks):,}")
    print(f"   MACs     one-shot {macs_oneshot / 1e6:.2f} M, materialised {macs_sparse / 1e6:.2f} M "
          f"-> ratio {macs_ratio:.3f}")
    for batch in args.latency_batches:
        medians, times, cpu = latency_ms(models, batch=batch, rounds=args.rounds)
        lat_oneshot, lat_sparse, lat_unordered, lat_plain = medians[:4]
        ratio, low, high = paired_ratio(times[1], times[0])
        best = min(times[1]) / min(times[0])  # fastest round of each: least disturbed by other processes
        cpu_ratio = paired_ratio(cpu[1], cpu[0])[0]
        unordered_ratio = paired_ratio(times[2], times[0])[0]
        (gap, verdict), (cpu_gap, cpu_verdict) = agreement(ratio, macs_ratio), agreement(cpu_ratio, macs_ratio)
        print(f"   latency at batch {batch}: one-shot {lat_oneshot:.2f} ms (without masks {lat_plain:.2f} ms), "
              f"materialised {lat_sparse:.2f} ms (without channel layout {lat_unordered:.2f} ms, ratio "
              f"{unordered_ratio:.3f})")
        print(f"      -> latency ratio {ratio:.3f} (median of {args.rounds} rounds, range {low:.3f}-{high:.3f}, "
              f"fastest rounds {best:.3f}); CPU-time ratio {cpu_ratio:.3f}; MACs ratio {macs_ratio:.3f}")
        print(f"      -> latency {gap * 100:.0f}% apart from MACs ({verdict}), "
              f"CPU time {cpu_gap * 100:.0f}% apart ({cpu_verdict}); target within 25%")
        if args.space == "nasnet":
            ratio, low, high = paired_ratio(times[4], times[0])
            cpu_ratio = paired_ratio(cpu[4], cpu[0])[0]
            # The one-shot's fastest form (masked, or without masks in either layout), per round.
            fastest = [min(r) for r in zip(times[0], times[3], times[5])]
            fastest_cpu = [min(r) for r in zip(cpu[0], cpu[3], cpu[5])]
            (gap, verdict), (cpu_gap, cpu_verdict) = agreement(ratio, macs_ratio), agreement(cpu_ratio, macs_ratio)
            print(f"   channels first: materialised {medians[4]:.2f} ms, one-shot without masks {medians[5]:.2f} ms")
            print(f"      -> latency ratio {ratio:.3f} (range {low:.3f}-{high:.3f}, fastest rounds "
                  f"{min(times[4]) / min(times[0]):.3f}); CPU-time ratio {cpu_ratio:.3f}; MACs ratio {macs_ratio:.3f}")
            print(f"      -> latency {gap * 100:.0f}% apart from MACs ({verdict}), "
                  f"CPU time {cpu_gap * 100:.0f}% apart ({cpu_verdict}); target within 25%")
            fast, fast_cpu = paired_ratio(times[4], fastest)[0], paired_ratio(cpu[4], fastest_cpu)[0]
            print(f"      -> to the one-shot's fastest form (per round: masked, or without masks in either layout): "
                  f"latency {fast:.3f}, CPU time {fast_cpu:.3f}; MACs ratio to the one-shot without masks "
                  f"{macs_plain_ratio:.3f} ({abs(fast - macs_plain_ratio) / macs_plain_ratio * 100:.0f}% / "
                  f"{abs(fast_cpu - macs_plain_ratio) / macs_plain_ratio * 100:.0f}% apart)")
        if args.fold:
            print(f"   BatchNorm folded (as `keras-nas export` serves them): one-shot {medians[folded_at]:.2f} ms, "
                  f"materialised {medians[folded_at + 1]:.2f} ms"
                  + (f", channels first {medians[folded_at + 2]:.2f} ms" if args.space == "nasnet" else ""))
            for label, i in [("channels last", folded_at + 1)] + (
                    [("channels first", folded_at + 2)] if args.space == "nasnet" else []):
                ratio, low, high = paired_ratio(times[i], times[folded_at])
                cpu_ratio = paired_ratio(cpu[i], cpu[folded_at])[0]
                (gap, verdict), (cpu_gap, cpu_verdict) = agreement(ratio, macs_ratio), agreement(cpu_ratio, macs_ratio)
                print(f"      {label}: latency ratio {ratio:.3f} (range {low:.3f}-{high:.3f}); CPU-time ratio "
                      f"{cpu_ratio:.3f}; MACs ratio {macs_ratio:.3f} -> {gap * 100:.0f}% / {cpu_gap * 100:.0f}% "
                      f"apart ({verdict} / {cpu_verdict})")

if __name__ == "__main__":
    main()
