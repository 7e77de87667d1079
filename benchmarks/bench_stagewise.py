"""Stage-wise NAS figures, measured side by side in one run.

1. Cost of the stage importance vs the training of one candidate, for the
   recipe's setting (ResNet with m0 = 6 on 32x32x3 images, 200 epochs, every
   training sample scored) and for the CLI default (digits). Both are timed
   per example on the same machine right after each other (one warm-up pass
   each, so graph tracing is excluded) and scaled linearly to the dataset
   size (a forward/backward pass and PLS are linear in the number of
   examples).
2. Networks trained by Algorithm 1 for n iterations: the StageWiseOracle
   driven with stand-in metrics for n = 1..5 (paper Table V: 11 for n = 5),
   and real tiny searches on digits for n = 1 and 2.

    python benchmarks/bench_stagewise.py [--quick]
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _seconds_per_example(model, dataset, examples, importance_samples):
    from keras_nas.stagewise.importance import stage_importance

    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(dataset.train, epochs=1, verbose=0)  # warm-up (tracing)
    start = time.perf_counter()
    model.fit(dataset.train, epochs=1, verbose=0)
    train = (time.perf_counter() - start) / examples
    stage_importance(model, dataset.train, samples=importance_samples)  # warm-up
    start = time.perf_counter()
    stage_importance(model, dataset.train, samples=importance_samples)
    importance = (time.perf_counter() - start) / importance_samples
    return train, importance


def importance_cost(quick):
    from keras_nas import data
    from keras_nas.stagewise.resnet import stage_resnet

    rows = []
    # Recipe: CIFAR-10 ResNet A (m0 = 6), 45,000 training images, 200 epochs, all scored.
    examples = 128 if quick else 384
    synthetic = data.load("synthetic", input_shape=(32, 32, 3), num_classes=10, num_examples=examples, batch_size=64)
    n_train = synthetic.num_train
    train, importance = _seconds_per_example(stage_resnet((6, 6, 6)), synthetic, n_train, n_train)
    rows.append(("recipe: ResNet (6,6,6) 32x32x3, 45,000 ex., 200 epochs, all scored", 45_000, 200, train, importance))
    # CLI default: digits 8x8x1, m0 = 2, 12 epochs, every training example scored.
    digits = data.load("digits")
    train, importance = _seconds_per_example(
        stage_resnet((2, 2, 2), input_shape=digits.input_shape), digits, digits.num_train, digits.num_train
    )
    rows.append(("CLI default: ResNet (2,2,2) digits 8x8x1, 12 epochs", digits.num_train, 12, train, importance))
    print("\n1. Stage importance vs training one candidate")
    print(f"{'setting':70s} {'train s/ex/epoch':>17s} {'importance s/ex':>16s} {'ratio':>8s}")
    for name, n, epochs, train, importance in rows:
        ratio = (importance * n) / (train * n * epochs)
        print(f"{name:70s} {train:17.2e} {importance:16.2e} {100 * ratio:7.2f}%")
    return rows


def models_trained(quick):
    from keras_nas.stagewise.oracle import StageWiseOracle

    print("\n2. Networks trained for n iterations (2n + 1)")
    print(f"{'n':>3s} {'oracle':>7s} {'real search':>12s} {'2n+1':>5s}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(1, 6):
            oracle = StageWiseOracle(num_stages=3, initial_depth=6, delta=2, iterations=n)
            oracle._set_project_dir(tmp, f"oracle_{n}")
            oracle.verbose = 0
            count = 0
            while True:
                trial = oracle.create_trial("w")
                if trial.status == "STOPPED":
                    break
                metrics = {"val_accuracy": 0.5}
                # Stand-in importance: stages alternate growing, so decisions vary.
                metrics.update({f"importance_{i}": float((i + count) % 2) for i in range(3)})
                oracle.update_trial(trial.trial_id, metrics)
                trial.status = "COMPLETED"
                oracle.end_trial(trial)
                count += 1
            real = "-"
            if n <= (1 if quick else 2):
                from keras_nas import cli

                out = os.path.join(tmp, f"search_{n}")
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                    cli.main(["search", "stagewise", "--iterations", str(n), "--epochs", "1", "--m0", "1",
                              "--importance-samples", "64", "--verbose", "0", "--out", out])
                with open(os.path.join(out, "results.json")) as f:
                    real = str(json.load(f)["models_trained"])
            print(f"{n:3d} {count:7d} {real:>12s} {2 * n + 1:5d}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples, one real search")
    args = parser.parse_args()
    importance_cost(args.quick)
    models_trained(args.quick)


if __name__ == "__main__":
    main()
