"""CNAS costs, measured side by side in one run (CPU by default).

1. One training step of the one-shot network with a `ChannelMask` on every
   edge (and the alive gate) against the same network without masks, on
   the same batch. Target: at most 1.1x.
2. The physically sparse (materialised) network of a pruned one-shot
   network against the one-shot network itself: CPU latency ratio at batch
   1 beside the MACs ratio (target: the two agree within 25%). The masks
   come from progressive zeroing (gamma 0.1) to rho with random saliency;
   the topology, not the criterion, sets the cost.

    PYTHONPATH=. python benchmarks/bench_cnas.py [--cells 2 --nodes 5 --channels 16 --image-size 32 --batch 64]
    PYTHONPATH=. python benchmarks/bench_cnas.py --space densenet-bc --sparsity 0.7

Measured on 2 CPU cores (NASNet-shaped defaults): step ratio 1.02x; MACs
ratio 0.39, latency ratio 0.38 at batch 32 (3% apart) but 0.75 at batch 1,
where 80 edges of small ops are bound by per-op overhead, not MACs.
DenseNet-BC (6 layers/block, k 12, rho 0.7): step ratio 0.92-1.06x; MACs
0.74 vs latency 0.94-0.97: the pruned 1x1 convolutions are memory-bound on
a CPU and the gathers of the surviving channels cost about what they save.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nas import costs, pruning  # noqa: E402
from keras_nas.spaces import channel_nasnet, densenet_bc  # noqa: E402


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


def latency_ms(models, runs, batch=1, rounds=5):
    """Median inference time of one batch per model (compiled), interleaved."""
    fns, x = [], None
    for model in models:
        shape = tuple(model.inputs[0].shape[1:])
        x = tf.random.stateless_normal((batch,) + shape, seed=(0, 0))
        fn = tf.function(lambda t, m=model: m(t, training=False))
        for _ in range(5):
            fn(x).numpy()
        fns.append(fn)
    times = [[] for _ in models]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(runs):
                fn(x).numpy()
            times[i].append((time.perf_counter() - start) / runs * 1000.0)
    return [statistics.median(t) for t in times]


def prune(graph, rho, gamma, seed):
    masks = graph.full_masks()
    rng = np.random.default_rng(seed)
    target = int(rho * graph.total_params)
    iterations = 0
    while graph.count_params(masks) > target:
        saliency = {n: rng.random(len(m)) for n, m in masks.items()}
        masks, info = pruning.zero_least_salient(graph, masks, saliency, gamma, target)
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
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sparsity", type=float, default=0.46)
    parser.add_argument("--gamma", type=float, default=0.1)
    parser.add_argument("--latency-batches", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    keras.utils.set_random_seed(0)

    masked, topology = build(args, return_topology=True)
    plain = build(args, masked=False)
    graph = pruning.ChannelGraph(topology)
    x = np.random.default_rng(0).normal(size=(args.batch, args.image_size, args.image_size, 3)).astype("float32")
    y = np.arange(args.batch) % 10
    print(f"{args.space} one-shot network: |W| = {graph.total_params:,}, {len(graph.edges)} edges, "
          f"|X| = {graph.input_channels(graph.full_masks()):,}, batch {args.batch}, {args.image_size}x{args.image_size}")
    with_masks, without = step_seconds([masked, plain], x, y, args.runs)
    print(f"1. training step: with masks {with_masks * 1000:.1f} ms, without {without * 1000:.1f} ms -> "
          f"ratio {with_masks / without:.3f}x (target <= 1.1x)")

    masks, iterations = prune(graph, args.sparsity, args.gamma, seed=0)
    pruning.write_masks(masked, graph, masks)
    sparse, _ = pruning.materialize(masked, graph, lambda sel: build(args, selection=sel))
    macs_oneshot, macs_sparse = costs.count_macs(masked), costs.count_macs(sparse)
    macs_ratio = macs_sparse / macs_oneshot
    print(f"2. after {iterations} zeroing iterations to rho = {args.sparsity}: |W*| = {sparse.count_params():,} "
          f"({graph.sparsity(masks):.3f} of |W|), |X*| = {graph.input_channels(masks):,}")
    print(f"   MACs     one-shot {macs_oneshot / 1e6:.2f} M, materialised {macs_sparse / 1e6:.2f} M -> ratio {macs_ratio:.3f}")
    for batch in args.latency_batches:
        lat_oneshot, lat_sparse, lat_plain = latency_ms([masked, sparse, plain], runs=max(2, 20 // batch), batch=batch)
        latency_ratio = lat_sparse / lat_oneshot
        gap = abs(latency_ratio - macs_ratio) / macs_ratio
        print(f"   latency at batch {batch}: one-shot {lat_oneshot:.2f} ms (without masks {lat_plain:.2f} ms), "
              f"materialised {lat_sparse:.2f} ms -> ratio {latency_ratio:.3f}, {gap * 100:.0f}% from the MACs ratio "
              "(target within 25%)")


if __name__ == "__main__":
    main()
