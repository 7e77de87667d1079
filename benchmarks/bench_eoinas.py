"""EoiNAS/GDAS supernet speed of the one-graph step, measured side by side in one run (CPU by default).

Every step here is one traced graph (`tf.function` of the step:
`BilevelSearchModel(executor="graph")`'s path). The default `ops` executor,
its start-up and memory, beside PyTorch GDAS: `benchmarks/bench_supernet.py`.

1. One bilevel training step (weight step + architecture step) of the same
   supernet in `gdas` mode (only the sampled op of each edge runs) and in
   `darts` mode (all 8 ops run), on the same batch. Target: gdas >= 4x faster.
2. One weight step of the `gdas` supernet whose live mask leaves exactly the
   sampled op on every edge, against a fixed network made of those same ops
   (plain Keras layers, no sampling, no `Case` ops). Target: <= 1.3x.

Both parts measure the gdas supernets named by `--gdas-variants` (default
all four): `default`, `sampled` (`update_unsampled_ops=False`), `lowered`
(`lower_weight_case=True, lower_arch_case=True`: Switch/Merge instead of
functional `Case` ops) and `lowered-sampled`.

    PYTHONPATH=. python benchmarks/bench_eoinas.py [--cells 5 --channels 16 --image-size 16 --batch 32]
    PYTHONPATH=. python benchmarks/bench_eoinas.py --cells 8 --image-size 32 --batch 64 \
        --skip-machinery --gdas-variants lowered        # the paper's size, part 1 (~17 min)
    PYTHONPATH=. python benchmarks/bench_eoinas.py --cells 8 --image-size 32 --batch 64 \
        --skip-bilevel --gdas-variants default,lowered  # the paper's size, part 2 (~12 min)

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import gc
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nas.eoinas.search_cell import cell_edges  # noqa: E402
from keras_nas.eoinas import darts  # noqa: E402
from keras_nas.eoinas import darts_ops  # noqa: E402


# The gdas supernets measured (`--gdas-variants`): the default, the sampled
# ops' update only, and both with the edges' `Case` ops lowered in both steps.
GDAS_VARIANTS = {
    "default": ("gdas", {}),
    "sampled": ("gdas, update_unsampled_ops=False", {"update_unsampled_ops": False}),
    "lowered": ("gdas, lowered Case", {"lower_weight_case": True, "lower_arch_case": True}),
    "lowered-sampled": ("gdas, lowered, sampled update", {"lower_weight_case": True, "lower_arch_case": True,
                                                          "update_unsampled_ops": False}),
}
WIDTH = max(len(label) for label, _ in GDAS_VARIANTS.values()) + 1


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
            from keras_nas.layers.factorized_reduce import FactorizedReduce

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
    parser.add_argument("--skip-machinery", action="store_true", help="only the gdas vs darts comparison (part 1)")
    parser.add_argument("--gdas-variants", default=",".join(GDAS_VARIANTS),
                        help="comma-separated gdas supernets to measure, from " + ", ".join(GDAS_VARIANTS) +
                             " (each traced step holds several GB at the paper's size: measure a few at a time)")
    args = parser.parse_args()
    # One traced step per supernet: TensorFlow's retracing warning is expected.
    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(0)
    x = tf.random.normal((args.batch, args.image_size, args.image_size, 3))
    y = tf.random.uniform((args.batch,), 0, 10, dtype=tf.int32)
    data = ((x, y), (x, y))
    names = [name.strip() for name in args.gdas_variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in GDAS_VARIANTS]
    if unknown or not names:
        parser.error(f"--gdas-variants must name some of {list(GDAS_VARIANTS)}. Received: {args.gdas_variants!r}")
    variants = [GDAS_VARIANTS[name] for name in names]

    if not args.skip_bilevel:
        steps = []
        t0 = time.perf_counter()
        for label, mode, kwargs in [(label, "gdas", kwargs) for label, kwargs in variants] + [("darts", "darts", {})]:
            step = tf.function(supernet(mode, args, **kwargs).train_step)
            step(data)
            steps.append(lambda step=step: step(data))
            print(f"{label} supernet traced ({time.perf_counter() - t0:.0f} s so far)", flush=True)
        wall, cpu = time_interleaved(steps, max(1, args.runs // 2))
        for name, t in (("wall", wall), ("CPU", cpu)):
            print(f"[{name} time] bilevel step, darts: {t[-1] * 1000:.1f} ms")
            for (label, _), seconds in zip(variants, t):
                print(f"[{name} time] bilevel step, {label:<{WIDTH}} {seconds * 1000:8.1f} ms: "
                      f"speed-up vs darts {t[-1] / seconds:.2f}x (target >= 4x)", flush=True)
        print()
        # The supernets (held by their traced steps) would stay in memory
        # through part 2: at the paper's size (--cells 8 --image-size 32
        # --batch 64) that is more than 24 GB.
        del steps, step
        gc.collect()
    if args.skip_machinery:
        return

    # Part 2: the supernets of `variants`, each with the same live mask: one
    # op per edge, which the sample then always picks.
    rng = np.random.default_rng(0)
    models = [supernet("gdas", args, **kwargs) for _, kwargs in variants]
    model = models[0]
    num_edges, num_ops = len(cell_edges(4)), len(model.primitives)
    ops_by_kind = {}
    for kind in ("normal", "reduce"):
        chosen = rng.integers(0, num_ops, num_edges)
        for m in models:
            m.lives[kind].assign(np.eye(num_ops, dtype="float32")[chosen])
        ops_by_kind[kind] = [model.primitives[k] for k in chosen]
    weight_steps = [tf.function(lambda m=m: m.weight_step(x, y)) for m in models]
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

    # Forward + backward only (the weight step without its update), with the
    # functional `Case` ops and, if measured, lowered ones: each model's own
    # traced forward+backward, shared with its weight step (a trace of the
    # supernet holds several GB at the paper's size).
    grad_models, grad_labels = [], []
    for (label, kwargs), m in zip(variants, models):
        case = "lowered Case" if kwargs.get("lower_weight_case") else "functional Case"
        if case not in grad_labels:
            grad_models.append(m)
            grad_labels.append(case)
    grad_steps = [tf.function(lambda m=m: m._run_forward_backward(x, y, "weights")[1:3]) for m in grad_models]

    @tf.function
    def fixed_grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, fixed(x, training=True)))
        return loss, tape.gradient(loss, fixed.trainable_variables)

    t0 = time.perf_counter()
    fns = [fixed_step, fixed_grads] + weight_steps + grad_steps
    wall, cpu = time_interleaved(fns, max(1, args.runs // 2))
    print(f"(part 2 incl. tracing: {time.perf_counter() - t0:.0f} s)")
    n = len(weight_steps)
    for name, t in (("wall", wall), ("CPU", cpu)):
        print(f"[{name} time] weight step, fixed network of the same ops: {t[0] * 1000:8.1f} ms")
        for (label, _), seconds in zip(variants, t[2:2 + n]):
            print(f"[{name} time] weight step, {label:<{WIDTH}} {seconds * 1000:8.1f} ms: "
                  f"Gumbel-edge machinery {seconds / t[0]:.2f}x (target <= 1.3x)")
        print(f"[{name} time] forward+backward, fixed network:           {t[1] * 1000:8.1f} ms")
        for label, seconds in zip(grad_labels, t[2 + n:]):
            print(f"[{name} time] forward+backward, {label:<16} {seconds * 1000:8.1f} ms: {seconds / t[1]:.2f}x",
                  flush=True)

if __name__ == "__main__":
    main()
