"""EoiNAS/GDAS supernet speed, measured side by side in one run (CPU by default).

1. One bilevel training step (weight step + architecture step) of the same
   supernet in `gdas` mode (only the sampled op of each edge runs) and in
   `darts` mode (all 8 ops run), on the same batch. Target: gdas >= 4x faster.
2. One weight step of the `gdas` supernet whose live mask leaves exactly the
   sampled op on every edge, against a fixed network made of those same ops
   (plain Keras layers, no sampling, no `Case` ops). Target: <= 1.3x.

    PYTHONPATH=. python benchmarks/bench_eoinas.py [--cells 5 --channels 16 --image-size 16 --batch 32]

Measured on 2 quiet CPU cores (2026-11-26, defaults; wall / CPU time):
gdas vs darts bilevel step 3.84x / 3.92x (170.0 vs 653.6 ms wall), with
`update_unsampled_ops=False` 3.89x / 4.13x (167.9 ms); the day before, the
same code measured 3.97x / 3.94x and earlier code 4.06x and 4.18x: the
figure sits at the 4x target within run-to-run noise (another quiet run:
default 3.52x / 3.91x, `update_unsampled_ops=False` 3.84x / 4.13x, with
also `lower_arch_case=True` 4.08x / 4.21x). Machinery (part 2):
forward+backward 1.30x / 1.29x; full weight step 1.48x / 1.45x with the
default update (SGD, clipping and weight decay also run over the 7
unsampled ops' weights of every edge, as the 2019 PyTorch GDAS code does
once they have a gradient) and 1.38x / 1.27x with
`update_unsampled_ops=False` (SGD on the sampled ops only, as GDAS on
PyTorch >= 2); a second quiet run of the latter alone against the fixed
network gave 1.29x / 1.28x, and a loaded one 1.27x wall: at the 1.3x
target within noise, the default update is not.
At the paper's search size (2026-11-26, `--cells 8 --channels 16
--image-size 32 --batch 64`, quiet; part 1 and part 2 run separately):
gdas vs darts 3.81x / 3.83x (1394.6 vs 5307.6 ms wall), the same with
`update_unsampled_ops=False` (1396.7 ms: at this size the update is no
longer what costs); machinery, full weight step 1.52x / 1.53x by default,
1.43x / 1.46x with the sampled update, forward+backward 1.44x / 1.44x.
What grows with the tensors is the functional `Case`: the same
forward+backward with the edges' `Case` lowered (`lower_case=True`, as the
architecture step can run it) is 1.28x / 1.26x the fixed network, but
takes 221 s to trace instead of 87 s. A second experiment (small size):
the architecture step with each sampled op's weights read through
`stop_gradient` inside its branch (no weight gradients built, exact alpha
gradient) gave 3.92x / 4.08x against 3.70x / 3.91x, traced in 121 s
instead of 79 s. Neither is in the library yet.
Before the edges' `Case` ops were kept functional and the straight-through
weight became a custom gradient: forward+backward 1.49x, full step 1.58x,
and tracing the gdas supernet took 180 s instead of 70 s.
"""

import argparse
import gc
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nas.layers.search_cell import cell_edges  # noqa: E402
from keras_nas.spaces import darts, darts_ops  # noqa: E402


def time_interleaved(fns, runs, rounds=7):
    """Median wall and process-CPU seconds per call of each fn, in interleaved rounds.

    Interleaving makes the functions share the machine's noise; CPU time
    (all threads of this process) is the steadier figure when other work
    shares the cores.
    """
    for fn in fns:
        fn()
        fn()
    wall, cpu = [[] for _ in fns], [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(runs):
                fn()
            wall[i].append((time.perf_counter() - start) / runs)
            cpu[i].append((time.process_time() - start_cpu) / runs)
    return [float(np.median(t)) for t in wall], [float(np.median(t)) for t in cpu]


def supernet(mode, args, **kwargs):
    model = darts.search_network(cells=args.cells, channels=args.channels, num_classes=10,
                                 input_shape=(args.image_size, args.image_size, 3), edge_mode=mode, **kwargs)
    model.compile(jit_compile=False)
    return model


def fixed_network(model, ops_by_kind, args):
    """The supernet's topology with one plain op per edge (the sampled ones)."""
    inputs = keras.Input((args.image_size, args.image_size, 3))
    s = keras.layers.Conv2D(3 * args.channels, 3, padding="same", use_bias=False)(inputs)
    s0 = s1 = keras.layers.BatchNormalization()(s)
    for i, cell in enumerate(model.cell_layers):
        kind = "reduce" if cell.reduction else "normal"
        c = cell.channels
        if cell.reduction_prev:
            from keras_nas.layers import FactorizedReduce

            p0 = FactorizedReduce(c, affine=False)(s0)
        else:
            p0 = darts_ops.relu_conv_bn(c, 1, 1, affine=False)(s0)
        states = [p0, darts_ops.relu_conv_bn(c, 1, 1, affine=False)(s1)]
        k = 0
        for node in range(cell.steps):
            terms = []
            for j in range(node + 2):
                strides = 2 if cell.reduction and j < 2 else 1
                terms.append(darts_ops.make_op(ops_by_kind[kind][k], c, strides, affine=False,
                                               name=f"c{i}_e{k}")(states[j]))
                k += 1
            states.append(keras.layers.Add()(terms))
        s0, s1 = s1, keras.layers.Concatenate()(states[-cell.multiplier:])
    x = keras.layers.GlobalAveragePooling2D()(s1)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--skip-bilevel", action="store_true", help="only the machinery comparison (part 2)")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x = tf.random.normal((args.batch, args.image_size, args.image_size, 3))
    y = tf.random.uniform((args.batch,), 0, 10, dtype=tf.int32)
    data = ((x, y), (x, y))

    if not args.skip_bilevel:
        steps = []
        t0 = time.perf_counter()
        for mode, kwargs in (("gdas", {}), ("gdas", {"update_unsampled_ops": False}), ("darts", {})):
            step = tf.function(supernet(mode, args, **kwargs).train_step)
            step(data)
            steps.append(lambda step=step: step(data))
            print(f"{mode} {kwargs or ''} supernet traced ({time.perf_counter() - t0:.0f} s so far)", flush=True)
        wall, cpu = time_interleaved(steps, max(1, args.runs // 2))
        for label, t in (("wall", wall), ("CPU", cpu)):
            print(f"[{label} time] bilevel step gdas {t[0] * 1000:.1f} ms (sampled ops' update only: "
                  f"{t[1] * 1000:.1f} ms), darts {t[2] * 1000:.1f} ms: speed-up gdas vs darts {t[2] / t[0]:.2f}x, "
                  f"with update_unsampled_ops=False {t[2] / t[1]:.2f}x (target >= 4x)", flush=True)
        print()
        # The three supernets (held by their traced steps) would stay in
        # memory through part 2: at the paper's size (--cells 8 --image-size
        # 32 --batch 64) that is more than 24 GB.
        del steps, step
        gc.collect()

    model = supernet("gdas", args)
    rng = np.random.default_rng(0)
    num_edges, num_ops = len(cell_edges(4)), len(model.primitives)
    ops_by_kind = {}
    for kind in ("normal", "reduce"):
        chosen = rng.integers(0, num_ops, num_edges)
        model.lives[kind].assign(np.eye(num_ops, dtype="float32")[chosen])
        ops_by_kind[kind] = [model.primitives[k] for k in chosen]
    gumbel_step = tf.function(lambda: model.weight_step(x, y))
    # The same supernet and sample with `update_unsampled_ops=False`: SGD,
    # clipping and weight decay on the sampled ops' weights only.
    sampled_model = supernet("gdas", args, update_unsampled_ops=False)
    for kind in ("normal", "reduce"):
        sampled_model.lives[kind].assign(model.lives[kind].numpy())
    sampled_step = tf.function(lambda: sampled_model.weight_step(x, y))
    fixed = fixed_network(model, ops_by_kind, args)
    optimizer = keras.optimizers.SGD(0.025, momentum=0.9)
    optimizer.build(fixed.trainable_variables)

    @tf.function
    def fixed_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, fixed(x, training=True)))
        grads = tape.gradient(loss, fixed.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        grads = [g + 3e-4 * v for g, v in zip(grads, fixed.trainable_variables)]
        optimizer.apply(grads, fixed.trainable_variables)
        return loss

    # Forward + backward only: the supernet's SGD update also touches the
    # (zero-gradient) weights of the 7 ops not sampled on each edge.
    @tf.function
    def gumbel_grads():
        return model._forward_backward(x, y, "weights")[1:3]

    @tf.function
    def fixed_grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, fixed(x, training=True)))
        return loss, tape.gradient(loss, fixed.trainable_variables)

    t0 = time.perf_counter()
    fns = [gumbel_step, fixed_step, gumbel_grads, fixed_grads, sampled_step]
    wall, cpu = time_interleaved(fns, max(1, args.runs // 2))
    print(f"(part 2 incl. tracing: {time.perf_counter() - t0:.0f} s)")
    for label, t in (("wall", wall), ("CPU", cpu)):
        print(f"[{label} time] gdas supernet weight step (one live op per edge): {t[0] * 1000:8.1f} ms")
        print(f"[{label} time]   ... with update_unsampled_ops=False:             {t[4] * 1000:8.1f} ms")
        print(f"[{label} time] fixed network of the same ops, weight step:      {t[1] * 1000:8.1f} ms")
        print(f"[{label} time] Gumbel-edge machinery overhead, full step: {t[0] / t[1]:.2f}x, with "
              f"update_unsampled_ops=False {t[4] / t[1]:.2f}x (target <= 1.3x); forward+backward only: "
              f"{t[2] * 1000:.1f} ms vs {t[3] * 1000:.1f} ms -> {t[2] / t[3]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
