"""What the EoiNAS/GDAS supernet costs to start and to hold, beside its step time, and beside PyTorch GDAS.

Each configuration runs in its own process (so peak memory is its own) and
prints: the seconds to build and compile the supernet, the seconds to its
first bilevel step (the weight step and the architecture step, as
`keras-nas search eoinas` runs them through `fit`), the median of the next
steps, and the process's peak resident memory. Rows:

- `ops` / `graph`: keras_nas' two executors of the same supernet
  (`BilevelSearchModel(executor=...)`: compiled op functions under an eager
  loop, the default; or one traced graph of the whole step).
- `--edge-modes gdas,darts`: the GDAS step (only the sampled op runs) beside
  the DARTS mixture (every op runs).
- `--sampled-update`: also the `ops` GDAS row with `update_unsampled_ops=False`
  (only the ops that ran are updated: what PyTorch >= 2 does, like for like
  with the PyTorch row; the default also moves the other ops by momentum and
  weight decay, as the 2019 GDAS code did).
- `--torch`: `benchmarks/torch_gdas.py`, our PyTorch GDAS network of the same
  cells, ops, parameters and optimizer settings (needs the optional `bench`
  extra: `pip install ".[bench]" --extra-index-url https://download.pytorch.org/whl/cpu`).

The default is the default `keras-nas search eoinas` on the bundled digits
(5 cells, C 8, 8x8, batch 32); `--cells 8 --channels 16 --image-size 32` is
the paper's search size on synthetic data.

    PYTHONPATH=. python benchmarks/bench_supernet.py
    PYTHONPATH=. python benchmarks/bench_supernet.py --cells 8 --channels 16 --image-size 32 --batch 32 --torch
    PYTHONPATH=. python benchmarks/bench_supernet.py --cells 8 --channels 16 --image-size 32 --edge-modes gdas,darts

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))


def measure(edge_mode, executor, cells, channels, image_size, batch, steps, update_unsampled_ops=True):
    """One configuration in this process: build, first step, median step, peak RSS."""
    import resource
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_nas import data
    from keras_nas.eoinas import darts

    if image_size == 8:
        dataset = data.load("digits", validation_split=0.5, batch_size=batch)
    else:
        dataset = data.load("synthetic", input_shape=(image_size, image_size, 3), num_classes=10, batch_size=batch,
                            validation_split=0.5)
    pairs = tf.data.Dataset.zip((dataset.train, dataset.validation)).repeat()
    start = time.perf_counter()
    model = darts.search_network(cells=cells, channels=channels, num_classes=dataset.num_classes,
                                 input_shape=dataset.input_shape, edge_mode=edge_mode, executor=executor,
                                 update_unsampled_ops=update_unsampled_ops)
    # As `keras_nas.eoinas.one_shot.one_shot_search` compiles it.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.025, momentum=0.9),
                  arch_optimizer=keras.optimizers.Adam(learning_rate=3e-4, beta_1=0.5, beta_2=0.999),
                  jit_compile=False)
    built = time.perf_counter()

    class Times(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    times = Times()
    model.fit(pairs, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[times])
    return {
        "framework": "keras_nas", "edge_mode": edge_mode, "cells": cells,
        "executor": model.active_executor + ("" if update_unsampled_ops else " sampled-update"),
        "channels": channels, "image_size": image_size, "batch": batch,
        "params": int(sum(np.prod(v.shape) for v in model.weight_variables)),
        "build_seconds": built - start, "first_step_seconds": times.ends[0] - built,
        "median_step_seconds": float(np.median(np.diff(times.ends))),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def _run(command):
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.path.dirname(HERE)})
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge-modes", default="gdas", help="comma-separated: gdas, darts, gumbel_soft")
    parser.add_argument("--executors", default="ops", help="comma-separated: ops, graph")
    parser.add_argument("--torch", action="store_true", help="also run benchmarks/torch_gdas.py (GDAS)")
    parser.add_argument("--sampled-update", action="store_true", help="also gdas/ops with update_unsampled_ops=False")
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=8, help="8: the bundled digits; otherwise synthetic")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="steps timed after the first")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: "MODE,EXECUTOR[,sampled]" here, JSON out
    args = parser.parse_args(argv)
    size = ["--cells", str(args.cells), "--channels", str(args.channels), "--image-size", str(args.image_size),
            "--batch", str(args.batch), "--steps", str(args.steps)]
    if args.one:
        mode, executor, *sampled = args.one.split(",")
        print(json.dumps(measure(mode, executor, args.cells, args.channels, args.image_size, args.batch, args.steps,
                                 update_unsampled_ops=not sampled)))
        return 0
    rows = []
    if args.torch:
        rows.append(_run([sys.executable, os.path.join(HERE, "torch_gdas.py")] + size))
        rows[-1]["executor"] = "pytorch"
    for mode in args.edge_modes.split(","):
        for executor in args.executors.split(","):
            rows.append(_run([sys.executable, os.path.abspath(__file__), "--one", f"{mode},{executor}"] + size))
    if args.sampled_update:
        rows.append(_run([sys.executable, os.path.abspath(__file__), "--one", "gdas,ops,sampled"] + size))
    print(f"{args.cells} cells, C {args.channels}, {args.image_size}x{args.image_size}, batch {args.batch}, "
          f"median of {args.steps} steps")
    print(f"{'network':36} {'params':>10} {'build s':>8} {'1st step s':>11} {'build+1st s':>12} {'step ms':>8} "
          f"{'peak RSS GB':>12}")
    for r in rows:
        name = f"{r['framework']} {r['edge_mode']} {r['executor']}" if r["framework"] != "pytorch" else \
            f"pytorch {r['edge_mode']}"
        start = r["build_seconds"] + r["first_step_seconds"]
        print(f"{name:36} {r['params']:>10,} {r['build_seconds']:>8.1f} {r['first_step_seconds']:>11.1f} "
              f"{start:>12.1f} {r['median_step_seconds'] * 1e3:>8.0f} {r['peak_rss_gb']:>12.2f}")
    torch_row = next((r for r in rows if r["framework"] == "pytorch"), None)
    gdas = next((r for r in rows if r["framework"] != "pytorch" and r["edge_mode"] == "gdas"), None)
    start = lambda r: r["build_seconds"] + r["first_step_seconds"]  # noqa: E731
    for r in rows if torch_row else []:
        if r["framework"] != "pytorch" and r["edge_mode"] == "gdas":
            print(f"keras_nas gdas {r['executor']} / pytorch: build+first step x{start(r) / start(torch_row):.2f}, "
                  f"step x{r['median_step_seconds'] / torch_row['median_step_seconds']:.2f}, "
                  f"peak RSS x{r['peak_rss_gb'] / torch_row['peak_rss_gb']:.2f}")
    for r in rows:
        if gdas and r["framework"] != "pytorch" and r["edge_mode"] != "gdas" and r["executor"] == gdas["executor"]:
            print(f"{r['edge_mode']} / gdas step ({gdas['executor']}): "
                  f"x{r['median_step_seconds'] / gdas['median_step_seconds']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
