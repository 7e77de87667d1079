"""Where the EoiNAS supernet's start-up and step go, op by op.

Four measurements, each of the library's own code:

- `ops`: every DARTS op at the paper's shapes (batch 32): forward + backward
  through its op function (`keras_nas.eoinas.op_functions`, what the default
  "ops" executor runs) against the same Keras layer's forward + backward in
  one traced graph. The gap is the cost of calling two functions instead of
  running inside one graph.
- `max-pool`: a lone `MaxPoolGrad` in a function against the pooling and its
  gradient in one function (why `op_functions._max_pool` runs the pooling
  again in its gradient: oneDNN's kernel is used only then).
- `first-call`: the first forward + backward of every op function (trace,
  gradient, instantiation) with Grappler's rewrites (TensorFlow's default)
  and without them (`op_functions.without_graph_rewrites`, what the
  supernet's step uses), each in a fresh process, with the steady time of
  both.
- `variables`: creating the variables of N small Keras layers, plainly and
  within `keras_nas.engine.fast_variable_creation`.

    PYTHONPATH=. python benchmarks/bench_op_functions.py [--parts ops,max-pool,first-call,variables]
        [--shapes paper|digits]

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# (height = width, channels, strides): a normal cell at full size, a reduction cell's input, a normal cell after
# both reductions. "paper": the paper's 8-cell supernet (C 16, 32x32); "digits": the default
# `keras-nas search eoinas` (C 8, 8x8).
SHAPE_SETS = {"paper": ((32, 16, 1), (32, 32, 2), (8, 64, 1)), "digits": ((8, 8, 1), (8, 16, 2), (2, 32, 1))}
SHAPES = SHAPE_SETS["paper"]
BATCH = 32


def _median_ms(fn, runs=20):
    import numpy as np
    import tensorflow as tf

    for _ in range(2):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for t in tf.nest.flatten(fn()):
            if t is not None:  # (the "none" op has no gradient)
                t.numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def _op_function_pass(functions, op, x):
    import tensorflow as tf

    weights = [v.value for v in functions.weight_variables(op)]

    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = functions.call(op, x, True)
        return tape.gradient(y, [x] + weights)

    return run


def _ops():
    import tensorflow as tf

    from keras_nas.eoinas import darts_ops
    from keras_nas.eoinas.op_functions import OpFunctions, without_graph_rewrites

    print(f"{'shape':>14} {'op':14} {'op function ms':>15} {'one graph ms':>13}")
    for size, channels, strides in SHAPES:
        x = tf.random.normal((BATCH, size, size, channels), seed=0)
        for name in darts_ops.OPS:
            if name == "none":
                continue
            op = darts_ops.make_op(name, channels, strides, affine=False)
            op(x, training=True)
            with without_graph_rewrites():
                ms = _median_ms(_op_function_pass(OpFunctions(), op, x))

            @tf.function
            def graph(x, op=op):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = op(x, training=True)
                return tape.gradient(y, [x] + [v.value for v in op.trainable_weights])

            print(f"{size}x{size}x{channels} s{strides} {name:14} {ms:15.2f} {_median_ms(lambda: graph(x)):13.2f}")


def _max_pool():
    import tensorflow as tf
    from tensorflow.python.ops import gen_nn_ops

    from keras_nas.eoinas.op_functions import _max_pool as pool

    x = tf.random.normal((BATCH, 32, 32, 16), seed=0)
    y = tf.nn.max_pool2d(x, 3, 1, "SAME")
    upstream = tf.random.normal(y.shape, seed=1)
    lone = tf.function(lambda x, y, dy: gen_nn_ops.max_pool_grad(x, y, dy, [1, 3, 3, 1], [1, 1, 1, 1], "SAME"))

    @tf.function
    def beside(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = pool(x, 3, 1, "SAME")
        return tape.gradient(out, x, output_gradients=dy)

    print(f"32x32x16, batch {BATCH}: lone MaxPoolGrad {_median_ms(lambda: lone(x, y, upstream)):.2f} ms; "
          f"op_functions._max_pool's gradient (pooling again beside it) {_median_ms(lambda: beside(x, upstream)):.2f} ms")


def _first_call(rewrites):
    """In this process: first and steady forward + backward of every op function, with or without rewrites."""
    import contextlib

    import tensorflow as tf

    from keras_nas.eoinas import darts_ops
    from keras_nas.eoinas.op_functions import OpFunctions, without_graph_rewrites

    first = steady = 0.0
    for size, channels, strides in SHAPES:
        x = tf.random.normal((BATCH, size, size, channels), seed=0)
        for name in darts_ops.OPS:
            op = darts_ops.make_op(name, channels, strides, affine=False)
            op.build(x.shape)
            with contextlib.nullcontext() if rewrites else without_graph_rewrites():
                run = _op_function_pass(OpFunctions(), op, x)
                start = time.perf_counter()
                for t in run():
                    if t is not None:
                        t.numpy()
                first += time.perf_counter() - start
                steady += _median_ms(run, runs=10) / 1e3
    print(json.dumps({"rewrites": rewrites, "first_seconds": first, "steady_seconds": steady}))


def _variables(layers=1000):
    import keras

    from keras_nas.engine.fast_variables import fast_variable_creation

    def build():
        start = time.perf_counter()
        for _ in range(layers):
            keras.layers.BatchNormalization().build((None, 16))  # 4 variables each
        return time.perf_counter() - start

    plain = build()
    with fast_variable_creation():
        fast = build()
    print(f"{4 * layers} variables: plainly {plain:.2f} s, within fast_variable_creation {fast:.2f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="ops,max-pool,first-call,variables")
    parser.add_argument("--shapes", choices=sorted(SHAPE_SETS), default="paper",
                        help="the op shapes of `ops` and `first-call`")
    parser.add_argument("--first-call", choices=["on", "off"], help=argparse.SUPPRESS)  # internal: one process
    args = parser.parse_args(argv)
    global SHAPES
    SHAPES = SHAPE_SETS[args.shapes]
    if args.first_call:
        return _first_call(args.first_call == "on")
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - {"ops", "max-pool", "first-call", "variables"})
    if unknown:
        parser.error(f"unknown --parts {unknown}")
    if "ops" in parts:
        _ops()
    if "max-pool" in parts:
        _max_pool()
    if "first-call" in parts:
        rows = []
        for rewrites in ("on", "off"):
            done = subprocess.run([sys.executable, __file__, "--first-call", rewrites, "--shapes", args.shapes],
                                  capture_output=True, text=True)
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        for row in rows:
            print(f"every op function at {len(SHAPES)} shapes, Grappler rewrites {'on ' if row['rewrites'] else 'off'}: "
                  f"first forward + backward {row['first_seconds']:.2f} s in all, "
                  f"steady {row['steady_seconds'] * 1e3:.0f} ms in all")
    if "variables" in parts:
        _variables()


if __name__ == "__main__":
    main()
