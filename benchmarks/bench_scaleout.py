"""Trials per hour of one search run by 1, 2 and 4 KerasTuner worker processes.

Each setting starts a chief (`--worker-id chief`, which only runs the oracle)
and N workers on loopback, all running the same `keras-nas search ...`
command, and times the search from start to the chief's exit. Settings run
one after the other in this process, so the table compares like with like.

    python benchmarks/bench_scaleout.py                      # EPNAS, 1/2/4 workers
    python benchmarks/bench_scaleout.py --workers 1 2 -- eoinas --seeds 4 --epochs 2

On a 2-core machine expect sub-linear scaling: the workers share the cores.

Measured on the 2-core CPU machine (2026-11-25; EPNAS, 1 episode x 4
branches x 2 steps, 10 epochs per child on digits):

    workers trials  seconds trials/hour speed-up
          1      8       66       433.5    1.00x
          2      8       50       571.1    1.32x
          4      8       74       389.9    0.90x

Two workers overlap one child's input pipeline, Python and start-up with the
other's training; four oversubscribe the two cores. With 8 GPU workers (one
per GPU, the chief on the CPU) the children of an EPNAS step are independent,
so throughput grows nearly linearly within a step (8 branches -> 8 workers);
the episode boundary, where REINFORCE waits for the slowest child, is the sync
point. With children of unequal size (the paper's 20-epoch CIFAR-10 children
take minutes each) we estimate 6-7x the trials per hour of one GPU: at
10 minutes per child, about 36-42 children per hour instead of 6.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

DEFAULT_SEARCH = ["epnas", "--episodes", "1", "--branches", "4", "--steps", "2", "--epochs", "2",
                  "--constraint", "params<=50000"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_distributed(search, workers, out, timeout=3600):
    """Runs `keras-nas search <search...>` as a chief + `workers` workers; returns (seconds, results)."""
    port = _free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    base = [sys.executable, "-m", "keras_nas.cli", "search", *search, "--out", out, "--verbose", "0",
            "--chief", f"127.0.0.1:{port}"]
    start = time.perf_counter()
    names = ["chief"] + [f"w{i}" for i in range(workers)]
    processes = {}
    for name in names:
        log = open(os.path.join(out + f"-{name}.log"), "w")
        processes[name] = subprocess.Popen(base + ["--worker-id", name], env=env, stdout=log,
                                           stderr=subprocess.STDOUT)
        if name == "chief":
            time.sleep(2)  # let the chief's gRPC server come up first
    processes["chief"].wait(timeout=timeout)
    seconds = time.perf_counter() - start
    for name, process in processes.items():
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.returncode != 0:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {out}-{name}.log")
    with open(os.path.join(out, "results.json")) as f:
        return seconds, json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("search", nargs="*", help="method and options after `--` (default: a small EPNAS search)")
    args = parser.parse_args()
    search = args.search or DEFAULT_SEARCH
    root = tempfile.mkdtemp(prefix="bench_scaleout_")
    rows = []
    for n in args.workers:
        out = os.path.join(root, f"workers{n}")
        seconds, results = run_distributed(search, n, out)
        trials = [t for t in results.get("trials", []) if t["status"] == "COMPLETED"]
        rows.append((n, len(trials), seconds, 3600 * len(trials) / seconds))
        print(f"{n} worker(s): {len(trials)} trials in {seconds:.0f} s", flush=True)
    base = rows[0][3]
    print(f"\nsearch: keras-nas search {' '.join(search)}  ({os.cpu_count()} CPU cores)")
    print(f"{'workers':>7} {'trials':>6} {'seconds':>8} {'trials/hour':>11} {'speed-up':>8}")
    for n, count, seconds, per_hour in rows:
        print(f"{n:>7} {count:>6} {seconds:>8.0f} {per_hour:>11.1f} {per_hour / base:>7.2f}x")


if __name__ == "__main__":
    main()
