"""What the EoiNAS/GDAS supernet costs to start and to hold, beside its step time (CPU by default).

Each configuration runs in its own process (so peak memory is its own) and
prints: the seconds to build and compile the supernet, the seconds to its
first bilevel step (`fit` of one step: the weight step and the architecture
step, traced together as `keras-nas search eoinas` runs them), the median of
the next steps, and the process's peak resident memory. The default is the
default `keras-nas search eoinas` on the bundled digits (5 cells, C 8, 8x8,
batch 32); `--cells 8 --channels 16 --image-size 32` is the paper's search
size on synthetic data.

    PYTHONPATH=. python benchmarks/bench_supernet.py
    PYTHONPATH=. python benchmarks/bench_supernet.py --cells 8 --channels 16 --image-size 32 --batch 32
    PYTHONPATH=. python benchmarks/bench_supernet.py --edge-modes gdas,darts

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def measure(edge_mode, cells, channels, image_size, batch, steps):
    """One configuration in this process: build, first step, median step, peak RSS."""
    import resource
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_nas import data
    from keras_nas.eoinas import darts

    start = time.perf_counter()
    if image_size == 8:
        dataset = data.load("digits", validation_split=0.5, batch_size=batch)
    else:
        dataset = data.load("synthetic", input_shape=(image_size, image_size, 3), num_classes=10, batch_size=batch,
                            validation_split=0.5)
    loaded = time.perf_counter()
    model = darts.search_network(cells=cells, channels=channels, num_classes=dataset.num_classes,
                                 input_shape=dataset.input_shape, edge_mode=edge_mode)
    # As `keras_nas.eoinas.one_shot.one_shot_search` compiles it.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.025, momentum=0.9),
                  arch_optimizer=keras.optimizers.Adam(learning_rate=3e-4, beta_1=0.5, beta_2=0.999),
                  jit_compile=False)
    built = time.perf_counter()
    pairs = tf.data.Dataset.zip((dataset.train, dataset.validation)).repeat()
    model.fit(pairs, steps_per_epoch=1, epochs=1, verbose=0)
    first = time.perf_counter()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.fit(pairs, steps_per_epoch=1, epochs=1, verbose=0)
        times.append(time.perf_counter() - t)
    return {
        "edge_mode": edge_mode, "cells": cells, "channels": channels, "image_size": image_size, "batch": batch,
        "params": int(model.count_params()), "data_seconds": loaded - start, "build_seconds": built - loaded,
        "first_step_seconds": first - built, "median_step_seconds": float(np.median(times)),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge-modes", default="gdas", help="comma-separated: gdas, darts, gumbel_soft")
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=8, help="8: the bundled digits; otherwise synthetic")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="steps timed after the first")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.cells, args.channels, args.image_size, args.batch, args.steps)))
        return 0
    rows = []
    for mode in args.edge_modes.split(","):
        command = [sys.executable, __file__, "--one", mode, "--cells", str(args.cells), "--channels",
                   str(args.channels), "--image-size", str(args.image_size), "--batch", str(args.batch),
                   "--steps", str(args.steps)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "."})
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'edge mode':10} {'params':>9} {'build s':>8} {'first step s':>13} {'step ms':>8} {'peak RSS GB':>12}")
    for r in rows:
        print(f"{r['edge_mode']:10} {r['params']:>9,} {r['build_seconds']:>8.1f} {r['first_step_seconds']:>13.1f} "
              f"{r['median_step_seconds'] * 1e3:>8.0f} {r['peak_rss_gb']:>12.2f}")
    if len(rows) > 1:
        base = rows[0]
        for r in rows[1:]:
            print(f"{r['edge_mode']} / {base['edge_mode']}: step x{r['median_step_seconds'] / base['median_step_seconds']:.2f}, "
                  f"first step x{r['first_step_seconds'] / base['first_step_seconds']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
