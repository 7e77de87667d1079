"""Paper 003 sec. 4.4: the CIFAR-10 cells transferred to ImageNet (mobile setting).

    python recipes/eoinas_imagenet.py runs/eoinas_cifar10_search/genotype.json

14 cells, 48 channels, 224x224 (GDAS configuration); `eval_network` picks the
ImageNet stems for inputs of 128 pixels or more. Differences from the paper,
because `keras-nas train` does not offer them: the learning rate follows a
cosine rather than a per-epoch linear decay, and no label smoothing.
Nothing happens at import.
"""

import sys

IMAGENET = {
    "dataset": "imagenet2012",  # ILSVRC2012 through TFDS (manual download)
    "image_size": 224,  # "the mobile setting where the input image size is 224x224"
    "augment": "standard",
    "batch_size": 128,  # "250 epochs with batch size 128"
    "validation_split": 0.01,  # monitor slice; test = the official validation set
    "cells": 14,  # "a network of 14 cells"
    "init_channels": 48,  # "and 48 input channels"
    "epochs": 250,
    "optimizer": "sgd",
    "learning_rate": 0.1,  # "initial learning rate of 0.1"
    "momentum": 0.9,
    "weight_decay": 3e-5,  # "weight decay of 3x10^-5"
    "schedule": "cosine",  # paper: linear decay per epoch (not offered by the CLI)
    "drop_path": 0.0,  # DARTS/GDAS ImageNet training uses no drop-path
    "out": "runs/eoinas_imagenet",
}


def command(genotype, settings):
    from keras_nas.cli import settings_argv

    argv = settings_argv(["train", "--genotype", genotype], settings)
    return argv + ["--auxiliary"]  # "auxiliary loss tower"


def run(genotype, **overrides):
    from keras_nas import cli

    return cli.main(command(genotype, {**IMAGENET, **overrides}))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python recipes/eoinas_imagenet.py GENOTYPE_JSON_OR_NAME")
    sys.exit(run(sys.argv[1]))
