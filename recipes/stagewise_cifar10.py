"""Paper 000's CIFAR-10 search (Jordao et al. 2020, Sec. IV), residual or cell modules.

Run on a GPU machine, unchanged:

    python recipes/stagewise_cifar10.py residual      # Table III "scratch" rows, Tables I-II
    python recipes/stagewise_cifar10.py cell          # Table IV
    python recipes/stagewise_cifar10.py transfer      # Table III "weight transfer" rows

Each setting is a plain dict of `keras-nas search stagewise` options; `command`
turns one into the argument list and `run` runs it. Nothing happens at import.
"""

import sys

from keras_nas.cli import Recipe

RESIDUAL = {
    "dataset": "cifar10",  # the search dataset of Tables I-V (TFDS name)
    "augment": "standard",  # "horizontal random flip and random crop" (pad 4, crop 32)
    "batch_size": 128,  # the reference code's batch size
    "validation_split": 0.1,  # 5,000 held-out images: the paper tunes PLS/inf-FS on a CIFAR-10 validation set
    "module": "residual",  # ResNet basic blocks (Fig. 3 left)
    "block": "basic",  # CIFAR ResNets use basic blocks (He et al. 2016)
    "stages": 3,  # "for low-resolution datasets ... we set S = 3"
    "m0": 6,  # Table I: best accuracy/cost trade-off
    "delta": 2,  # "the growth step was set as 2 ... when using residual ... modules"
    "iterations": 5,  # Tables II-V report up to 5 iterations (11 networks, Table V)
    "criterion": "pls",  # Table II: PLS gives the most accurate candidates
    "n_components": 2,  # the reference code's PLS components
    "pool_size": 8,  # reference code: 8x8 average pooling of each stage's output
    "importance_samples": None,  # the reference code scores every training sample
    "epochs": 200,  # "training from scratch consists in training ... for 200 epochs"
    "milestones": "100,150",  # "decreased by a factor of 10 on the 100 and 150 epochs"
    "learning_rate": 0.01,  # "learning rate starting at 0.01"
    "optimizer": "nesterov",  # SGD; the reference code uses Nesterov momentum
    "momentum": 0.9,  # reference code
    "l2": 1e-4,  # reference code: kernel_regularizer=l2(1e-4)
    "final_epochs": 100,  # "the candidate architecture is further trained for 100 epochs"
    "out": "runs/stagewise_cifar10_residual",
}

CELL = {
    **RESIDUAL,
    "module": "cell",  # NASNet-A cells (Fig. 3 right, Table IV)
    "delta": 1,  # "... and 1 when using ... cell modules"
    "filters": 32,  # NASNet-A (N @ 768): F = 32, so m = 6 gives NASNet241 (3.3 M params)
    "out": "runs/stagewise_cifar10_cell",
}

TRANSFER = {
    **RESIDUAL,
    # A ResNet-110 trained on CIFAR-10 first, e.g.
    #   keras-nas train --arch resnet:18,18,18 --dataset cifar10 --augment standard \
    #     --batch-size 128 --epochs 200 --schedule step --learning-rate 0.01 \
    #     --optimizer nesterov --out runs/resnet110
    "donor": "runs/resnet110/model.keras",  # "we employ ResNet110 due to its high accuracy"
    "epochs": 50,  # "when using the proposed weight transfer ... fine-tuned for 50 epochs"
    "milestones": "25,38",  # the paper gives no fine-tuning schedule: the 200-epoch one scaled (50%, 75%)
    "out": "runs/stagewise_cifar10_transfer",
}

SETTINGS = {"residual": RESIDUAL, "cell": CELL, "transfer": TRANSFER}


RECIPE = Recipe(["search", "stagewise"], SETTINGS, "residual")
command, run = RECIPE.argv, RECIPE.run  # settings -> argument list; settings, **overrides -> exit code


if __name__ == "__main__":
    sys.exit(RECIPE.main("stagewise_cifar10.py", sys.argv[1:]))
