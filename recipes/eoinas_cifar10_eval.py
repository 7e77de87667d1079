"""Paper 003 sec. 4.3: train the searched cells as a 20-cell network on CIFAR-10 / CIFAR-100.

    python recipes/eoinas_cifar10_eval.py runs/eoinas_cifar10_search/genotype.json [cifar10|cifar100]
    python recipes/eoinas_cifar10_eval.py DARTS_V2        # a published genotype (3.35 M parameters)

Nothing happens at import.
"""

import sys

EVAL = {
    "dataset": "cifar10",  # evaluated on CIFAR-10 and CIFAR-100 (sec. 4.3)
    "augment": "cutout",  # "Cutout regularization of length 16"
    "batch_size": 128,  # "trained it by 600 epochs with batch size 128"
    "validation_split": 0.02,  # a small held-out slice only to monitor; the paper uses the full train set
    "cells": 20,  # "a network with 20 cells"
    "init_channels": 36,  # "and 36 input channels"
    "epochs": 600,  # "trained it by 600 epochs"
    "drop_path": 0.3,  # "drop-path of probability 0.3"
    "optimizer": "sgd",  # "A standard SGD optimizer"
    "momentum": 0.9,  # "a momentum of 0.9"
    "weight_decay": 3e-4,  # "weight decay of 0.0003"
    "learning_rate": 0.025,  # "initial learning rate is 0.025"
    "schedule": "cosine",  # "decayed to 0 following the cosine rule"
}


def command(genotype, settings, auxiliary=True):
    """`keras-nas train` arguments; the auxiliary tower has weight 0.4 (sec. 4.3)."""
    from keras_nas.cli import settings_argv

    argv = settings_argv(["train", "--genotype", genotype], settings)
    return argv + (["--auxiliary"] if auxiliary else [])


def run(genotype, dataset="cifar10", **overrides):
    from keras_nas import cli

    out = f"runs/eoinas_eval_{dataset}"
    return cli.main(command(genotype, {**EVAL, "dataset": dataset, "out": out, **overrides}))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python recipes/eoinas_cifar10_eval.py GENOTYPE_JSON_OR_NAME [cifar10|cifar100]")
    sys.exit(run(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "cifar10"))
