"""Latency targets end to end (issue 24, item 4): each search on digits, without and then with a target below
what it found, the found model's TFLite latency measured on this machine.

For every method the script runs the library's own search (`keras_nas.<method>.search`) twice into
`--out/<method>/{free,target}`: first without a latency target, then with a target of `--ratio` (default 0.8)
times the free run's measured latency, through the method's own option (each search aims `--latency-margin`
below it, the library's default unless given):

- stagewise: `max_latency_ms` (a stage stops growing when the candidate would exceed it);
- epnas: `constraint latency_ms<=T` (a soft constraint of Eq. 2-3; best = highest reward among feasible children);
- eoinas: `latency_weight` + `target_latency_ms` (expected latency in the architecture loss, derivation under
  the target, from a darts table measured on the spot);
- cnas: `target_latency_ms` alone (channels zeroed until the materialised sparse model meets it).

Both runs' `best_model.keras` are then timed the same way (`keras_nas.latency.measure_model`: TFLite, 1 thread,
batch 1, median of 30 calls over 5 interpreters) and evaluated on the test split. Prints one table row per method
(free latency / accuracy, target, constrained latency / accuracy, met) and writes `latency_targets.json` into
`--out`. A finished run's results.json is read back, so a killed benchmark resumes.

    PYTHONPATH=. python benchmarks/bench_latency_targets.py [--methods stagewise,epnas,eoinas,cnas]
        [--out runs/bench_latency_targets] [--ratio 0.8] [--latency-margin SHARE]

Figures, with their dates, commands and machine: benchmarks/RESULTS.md.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

METHODS = ("stagewise", "epnas", "eoinas", "cnas")
# Small CPU budgets on the bundled digits (8x8); the same options scale to the paper's settings.
SETTINGS = {
    "stagewise": dict(epochs=4, iterations=3, m0=1),  # m0 1: room below the free run for the initial network
    "epnas": dict(episodes=2, branches=2, steps=2, epochs=2),
    "eoinas": dict(epochs=4, eval_epochs=4),
    "cnas": dict(epochs=2, final_epochs=3, gamma=0.2, baselines=False),
}


def target_options(method, target):
    if method == "stagewise":
        return {"max_latency_ms": target}
    if method == "epnas":
        return {"constraint": [f"latency_ms<={target:.6f}"]}
    if method == "eoinas":
        return {"latency_weight": 1.0, "target_latency_ms": target}
    return {"target_latency_ms": target}


def run_search(method, directory, **options):
    import keras

    import keras_nas

    path = os.path.join(directory, "results.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    start = time.perf_counter()
    results = getattr(keras_nas, method).search("digits", directory=directory, verbose=0, **options).results
    print(f"  {method} {os.path.basename(directory)}: {time.perf_counter() - start:.0f} s", flush=True)
    keras.backend.clear_session()
    return results


def measure(directory, results):
    """TFLite latency of the run's best_model.keras, and the test accuracy its results.json gives it."""
    from keras_nas import io, latency

    model = io.load_model(os.path.join(directory, "best_model.keras"))
    best = results.get("best") or results.get("best_by_reward") or {}
    return {"latency_ms": latency.measure_model(model, runtime="tflite", threads=1),
            "test_accuracy": best.get("test_accuracy"), "params": int(model.count_params())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default="runs/bench_latency_targets")
    parser.add_argument("--ratio", type=float, default=0.8)
    parser.add_argument("--latency-margin", type=float, default=None,
                        help="the searches' latency_margin (default: the library's)")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {list(METHODS)}")

    rows = {}
    for method in methods:
        free_dir = os.path.join(args.out, method, "free")
        free = measure(free_dir, run_search(method, free_dir, **SETTINGS[method]))
        target = round(args.ratio * free["latency_ms"], 6)
        target_dir = os.path.join(args.out, method, "target")
        margin = {} if args.latency_margin is None else {"latency_margin": args.latency_margin}
        results = run_search(method, target_dir, **SETTINGS[method], **target_options(method, target), **margin)
        found = measure(target_dir, results)
        rows[method] = {"free": free, "target_ms": target, "constrained": found,
                        "met": found["latency_ms"] <= target, "search_report": results.get("latency")
                        or results.get("budgets") or results.get("latency_target")}
        print(f"{method:10s} free {free['latency_ms']:.4f} ms acc {free['test_accuracy']:.3f} | target "
              f"{target:.4f} ms | constrained {found['latency_ms']:.4f} ms acc {found['test_accuracy']:.3f} | "
              f"{'met' if rows[method]['met'] else 'NOT met'}", flush=True)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "latency_targets.json"), "w") as f:
            json.dump(rows, f, indent=1)
    print("\nmethod     | free: latency, test acc | target    | with target: latency, test acc | met")
    for method, r in rows.items():
        print(f"{method:10s} | {r['free']['latency_ms']:.4f} ms, {r['free']['test_accuracy']:.3f}      | "
              f"{r['target_ms']:.4f} ms | {r['constrained']['latency_ms']:.4f} ms, "
              f"{r['constrained']['test_accuracy']:.3f}             | {'yes' if r['met'] else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
