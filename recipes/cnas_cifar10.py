"""Paper 004's CIFAR-10 CNAS (sec. 3, Tables 1-2, Fig. 2(b)) on the NASNet-shaped space.

Run on a GPU machine, unchanged:

    python recipes/cnas_cifar10.py cnas_r          # CNAS-R, Table 2 (3.49% error)
    python recipes/cnas_cifar10.py cnas_w          # CNAS-W, Table 2 (3.40%)
    python recipes/cnas_cifar10.py cnas_r_cutout   # CNAS-R + cutout (2.94%)
    python recipes/cnas_cifar10.py figure2b        # + no-pruning and random-pruning baselines
    python recipes/cnas_cifar10.py cnas_r_alg1     # CNAS-R ranking channels as Algorithm 1 writes it

Each setting is a plain dict of `keras-nas search cnas` options; `command`
turns one into the argument list and `run` runs it. Nothing happens at import.

With C = 72 the one-shot network has exactly Table 1's |X| (69,120 input
channels; 1,440 / 2,880 / 5,760 per cell of each stage) and |Y| (17,280).
Its |W| is 15.0 M rather than 9.9 M: our cells output the concatenation of
their five nodes (the paper does not describe its narrower cell output;
Table 1's counts imply 5C/4 channels, see `keras_nas.cnas.nasnet_space`), so
the pre-processing 1x1 convolutions are wider. rho = 0.46 is the paper's
value; rho = 0.30 gives the paper's final size (4.6 M).
"""

import sys

from keras_nas.cli import Recipe

CNAS_R = {
    "dataset": "cifar10",  # sec. 3
    "augment": "standard",  # pad-4 crop + flip, the CIFAR-10 convention (not stated)
    "batch_size": 128,  # not stated
    "validation_split": 0.1,  # 5,000 held-out images to follow the search
    "space": "nasnet",  # Figure 1
    "cells": 6,  # "We usually set N = 6": 20 cells with the two reduction cells
    "nodes": 5,  # "the number of nodes per cell is five" (Table 1)
    "ops_per_node": 2,  # "Each node has two operations (of the same type)"
    "init_channels": 72,  # Table 1: |X| = 1,440 = 20 C and |Y| = 360 = 5 C in cell 1
    "dropout": 0.1,  # spatial dropout is used (sec. 2.2); its rate is not given
    "epochs": 150,  # "For training the one-shot model ... we use 150 epochs"
    "learning_rate": 0.05,  # l_max
    "min_learning_rate": 1e-4,  # l_min
    "t0": 10,  # SGDR T_0
    "t_mult": 2,  # SGDR T_mul
    "momentum": 0.9,  # Nesterov momentum 0.9
    "weight_decay": 2e-4,  # l2 weight decay 2e-4
    "gamma": 0.1,  # "We typically use gamma = 0.1"
    "sparsity": 0.46,  # Table 1: "final sparse model (rho = 0.46)"
    "saliency_batches": 50,  # m is not given; 50 x 128 = 6,400 images per saliency
    "saliency_form": "taylor",  # Molchanov's |x dx|, the lowest zeroed (see CNAS_R_ALG1)
    "finetune_epochs": 1,  # "fine-tuning of a single epoch ... between iterations"
    "search_learning_rate": 0.01,  # not given
    "mode": "retrain",  # CNAS-R: re-initialise W* and retrain
    # Layout of the sparse model: at this width channels last serves faster at batch 1 (CPU, 1 thread, BatchNorm
    # folded: 0.49 vs 0.55 of the one-shot's latency, MACs 0.42) and the same at batch 8 (0.36 vs 0.35);
    # `auto` (channels first for nasnet) is what wins for narrow networks at larger batches (benchmarks/bench_cnas.py).
    "sparse_data_format": "channels_last",
    "final_epochs": 630,  # "the same setting ... except the number of epochs, which is set to 630"
    "baselines": False,  # Fig. 2(b) comparison is its own setting below
    "out": "runs/cnas_cifar10_r",
}

CNAS_W = {
    **CNAS_R,
    "mode": "finetune",  # CNAS-W: fine-tune the searched weights of W*
    "out": "runs/cnas_cifar10_w",
}

CNAS_R_CUTOUT = {
    **CNAS_R,
    "augment": "cutout",  # Table 2 "+ cutout" rows
    "out": "runs/cnas_cifar10_r_cutout",
}

FIGURE2B = {
    **CNAS_R,
    "baselines": True,  # no-pruning (smaller dense one-shot) and random pruning at the same |W*|
    "out": "runs/cnas_cifar10_figure2b",
}

CNAS_R_ALG1 = {
    **CNAS_R,
    "saliency_form": "reciprocal",  # Algorithm 1: S accumulates 1 / (x dx), the largest normalised zeroed
    "out": "runs/cnas_cifar10_r_alg1",
}

SETTINGS = {"cnas_r": CNAS_R, "cnas_w": CNAS_W, "cnas_r_cutout": CNAS_R_CUTOUT, "figure2b": FIGURE2B,
            "cnas_r_alg1": CNAS_R_ALG1}


RECIPE = Recipe(["search", "cnas"], SETTINGS, "cnas_r")
command, run = RECIPE.argv, RECIPE.run  # settings -> argument list; settings, **overrides -> exit code


if __name__ == "__main__":
    sys.exit(RECIPE.main("cnas_cifar10.py", sys.argv[1:]))
