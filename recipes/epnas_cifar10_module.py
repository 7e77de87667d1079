"""Paper 002's CIFAR-10 module (cell) search (Zhou et al., EPNAS, Sec. 3.3, 4.1, Tables 3-5).

Run on a GPU machine, unchanged:

    python recipes/epnas_cifar10_module.py prediction      # Table 4 "Module Search w prediction"
    python recipes/epnas_cifar10_module.py scratch         # Table 4 "Module Search"
    python recipes/epnas_cifar10_module.py table5          # Table 5: sz <= 3M
    python recipes/epnas_cifar10_module.py random          # the random-search baseline of Fig. 4

The searched cell is stacked PNAS-style (stages of cells, pooling and doubled
channels between stages). Nothing happens at import.
"""

import sys

from keras_nas.cli import Recipe

SCRATCH = {
    "dataset": "cifar10",  # 45K train / 5K validation images of 32x32 (Sec. 4.1)
    "validation_split": 0.1,  # 5,000 of the 50,000 training images rank the children
    "augment": "crop,flip,color",  # "random flipping, cropping, brightness, and contrast adjustments" (PNAS)
    "batch_size": 128,  # "batch size (BZ) of 128"
    "episodes": 15,  # "We run 15 episodes"
    "branches": 8,  # "In total, 8 branches are constructed"
    "top_k": 8,  # "select top 8 models from each episode to initialize the next"
    "epochs": 20,  # "Each generated neural networks are trained for 20 epochs"
    "learning_rate": 0.05,  # SGDR l_max = 0.05
    "min_learning_rate": 0.001,  # SGDR l_min = 0.001
    "t0": 10,  # SGDR T_0 = 10
    "t_mult": 2,  # SGDR T_mult = 2
    "momentum": 0.9,  # Nesterov momentum
    "policy_learning_rate": 6e-4,  # "Adam optimizer with a learning rate of 0.0006"
    "penalty_base": 0.9,  # p_i = 0.9 for every constraint (footnote 1)
    "prediction": False,
    "mode": "module",  # module search (Sec. 3.3, Table 3)
    "channel_table": "8,12,16,24,32",  # Table 3 channel sizes
    "max_layers": 5,  # MAX_BRANCHES of Table 3 (not given; PNAS cells have 5 blocks)
    "steps": 5,  # "episode step of ... 5 for ... module search"
    "stages": 3,  # PNAS CIFAR stacking: 3 stages with 2 reductions
    "cells_per_stage": 2,  # cells per stage (not given; 2 keeps the stacked network near 4 M params)
    "filters": 32,  # stage-1 cell width (not given)
    "constraint": ["params<=4e6"],  # Table 4: the module searches report 4.0-4.3 M params
    "out": "runs/epnas_cifar10_module",
}

PREDICTION = {
    **SCRATCH,
    "prediction": True,  # "20 min per model with 10 epochs" (Sec. 4.1)
    "prediction_epochs": 10,
    "batch_scale": 8,  # BZ 1024
    "lr_scale": 10.0,  # LR 0.5
    "prediction_decay": "exponential",  # "a large learning rate with an aggressive decay" (shape not given)
    "sharing_keys": "parent",  # "share parameters across steps": a child reads its parent's layer numbers
    # One scaled rate for the whole child, as in the paper. 0.2 (layers read from the dictionary at 0.1, new
    # ones and layers behind a changed input at 0.5) speeds up kept/rescaled children in benchmarks/bench_epnas.py
    # (median 0.28 of the from-scratch time against 0.33) but leaves most children
    # with an inserted conv ~0.01 short of their from-scratch accuracy.
    "shared_lr_scale": 1.0,
    # The paper copies the shared values and names no length for its "aggressive decay": the literal reading
    # (1, 0, the whole run). On a CPU benchmark (benchmarks/bench_epnas.py, README) shrink 0.7 / noise 0.01
    # (Ash & Adams' shrink and perturb) with the decay over 3 epochs brings every kind of child, deeper ones
    # too, to its from-scratch accuracy sooner; see the README before changing them here.
    "shared_shrink": 1.0,
    "shared_noise": 0.0,
    "prediction_decay_epochs": None,  # None: over all prediction_epochs
    "out": "runs/epnas_cifar10_module_pp",
}

TABLE5 = {**PREDICTION, "constraint": ["params<=3e6"], "out": "runs/epnas_cifar10_module_table5"}  # "sz <= 3M"

RANDOM = {**SCRATCH, "baseline": "random", "out": "runs/epnas_cifar10_module_random"}

SETTINGS = {"scratch": SCRATCH, "prediction": PREDICTION, "table5": TABLE5, "random": RANDOM}


RECIPE = Recipe(["search", "epnas"], SETTINGS, "prediction")
command, run = RECIPE.argv, RECIPE.run  # settings -> argument list; settings, **overrides -> exit code


if __name__ == "__main__":
    sys.exit(RECIPE.main("epnas_cifar10_module.py", sys.argv[1:]))
