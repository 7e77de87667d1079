"""CNAS under a latency target (issue 24): channels ranked by saliency, or by saliency per ms saved (a cnas table).

For each seed the script runs the library's own CNAS search (`keras_nas.cnas.search`) twice with the same
`target_latency_ms` and budget: once ranking channels by normalised Taylor saliency (the paper's order), once
with `latency_table` (a `cnas` table, `keras_nas.latency.measure_table`, measured once at the start or read from
`--table`), which ranks them by saliency per ms their removal saves
(`keras_nas.cnas.latency_model.channel_savings`). Both final models are timed the same way afterwards
(`keras_nas.latency.measure_model`: TFLite, 1 thread, batch 1) and their test accuracy read from results.json.
Prints one row per run and the mean and standard deviation per arm; writes `ranking.json` into `--out`. A
finished run's results.json is read back, so a killed benchmark resumes.

    PYTHONPATH=. python benchmarks/bench_cnas_latency_ranking.py [--dataset digits] [--target-ms 0.025]
        [--seeds 3] [--table cnas_table.json] [--out runs/bench_cnas_latency_ranking]

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Short CPU budgets (the same options scale to the paper's settings).
SETTINGS = dict(epochs=4, final_epochs=6, gamma=0.2, baselines=False)


def run(dataset, directory, seed, **options):
    import keras

    from keras_nas import cnas

    path = os.path.join(directory, "results.json")
    if not os.path.exists(path):
        start = time.perf_counter()
        cnas.search(dataset, directory=directory, verbose=0, seed=seed, **SETTINGS, **options)
        print(f"  {directory}: {time.perf_counter() - start:.0f} s", flush=True)
        keras.backend.clear_session()
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--target-ms", type=float, default=0.025)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--table", default=None, help="a cnas latency table for the dataset's input size")
    parser.add_argument("--out", default="runs/bench_cnas_latency_ranking")
    args = parser.parse_args(argv)

    from keras_nas import data, io, latency

    os.makedirs(args.out, exist_ok=True)
    table_path = args.table or os.path.join(args.out, "cnas_table.json")
    if not os.path.exists(table_path):
        spec = data.load(args.dataset)
        height, _, channels = spec.input_shape
        start = time.perf_counter()
        table = latency.measure_table("cnas", image_size=int(height), channels=int(channels),
                                      num_classes=spec.num_classes)
        latency.save_table(table, table_path)
        print(f"cnas table: {time.perf_counter() - start:.0f} s, median error {table['fit']['median_error']:.1%} "
              "on its own networks", flush=True)
    rows = []
    for seed in range(args.seeds):
        for arm, options in (("saliency", {}), ("saliency_per_ms", {"latency_table": table_path})):
            directory = os.path.join(args.out, arm, f"seed_{seed}")
            results = run(args.dataset, directory, seed, target_latency_ms=args.target_ms, **options)
            model = io.load_model(os.path.join(directory, "best_model.keras"))
            row = {"arm": arm, "seed": seed, "test_accuracy": results["best"]["test_accuracy"],
                   "params": int(model.count_params()), "searched_ms": results["latency"]["measured_ms"],
                   "measured_ms": latency.measure_model(model, runtime="tflite", threads=1),
                   "predicted_ms": results["latency"].get("predicted_ms")}
            rows.append(row)
            print(f"seed {seed} {arm:16s} test acc {row['test_accuracy']:.4f}, {row['params']:,} weights, "
                  f"{row['measured_ms']:.4f} ms (target {args.target_ms})", flush=True)
            io.atomic_write_json(os.path.join(args.out, "ranking.json"), {"target_ms": args.target_ms, "rows": rows})
    for arm in ("saliency", "saliency_per_ms"):
        values = [r for r in rows if r["arm"] == arm]
        acc = [r["test_accuracy"] for r in values]
        ms = [r["measured_ms"] for r in values]
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(f"{arm:16s} test accuracy {statistics.mean(acc):.4f} +- {spread:.4f}, latency "
              f"{statistics.mean(ms):.4f} ms, weights {statistics.mean(r['params'] for r in values):,.0f} "
              f"({len(values)} seeds)")


if __name__ == "__main__":
    sys.exit(main())
