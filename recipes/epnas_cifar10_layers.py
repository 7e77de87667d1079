"""Paper 002's CIFAR-10 layer-by-layer search (Zhou et al., EPNAS, Sec. 4.1, Tables 2, 4, 5).

Run on a GPU machine, unchanged:

    python recipes/epnas_cifar10_layers.py prediction      # Table 4 "Layer-by-Layer Search w prediction"
    python recipes/epnas_cifar10_layers.py scratch         # Table 4 "Layer-by-Layer Search" (20 epochs/child)
    python recipes/epnas_cifar10_layers.py table5          # Table 5: sz <= 2M, c.i. >= 80
    python recipes/epnas_cifar10_layers.py random          # the random-search baseline of Fig. 4

Each setting is a plain dict of `keras-nas search epnas` options; `command`
turns one into the argument list and `run` runs it. Nothing happens at import.
"""

import sys

from keras_nas.cli import Recipe

SCRATCH = {
    "dataset": "cifar10",  # 45K train / 5K validation images of 32x32 (Sec. 4.1)
    "validation_split": 0.1,  # 5,000 of the 50,000 training images rank the children
    "augment": "crop,flip,color",  # "random flipping, cropping, brightness, and contrast adjustments" (PNAS)
    "batch_size": 128,  # "batch size (BZ) of 128"
    "mode": "layers",  # layer-by-layer search (Sec. 3.3, Table 2)
    "channel_table": "16,32,64,96,128,256",  # Table 2 channel sizes
    "max_layers": 12,  # MAX_LAYERS of Table 2 (not given; 12 keeps children at the 3-8 M params of Table 4)
    "episodes": 15,  # "We run 15 episodes"
    "branches": 8,  # "In total, 8 branches are constructed"
    "steps": 10,  # "episode step of 10 ... for layer-by-layer search"
    "top_k": 8,  # "select top 8 models from each episode to initialize the next"
    "epochs": 20,  # "Each generated neural networks are trained for 20 epochs"
    "learning_rate": 0.05,  # SGDR l_max = 0.05
    "min_learning_rate": 0.001,  # SGDR l_min = 0.001
    "t0": 10,  # SGDR T_0 = 10
    "t_mult": 2,  # SGDR T_mult = 2
    "momentum": 0.9,  # Nesterov momentum
    "policy_learning_rate": 6e-4,  # "Adam optimizer with a learning rate of 0.0006"
    "penalty_base": 0.9,  # p_i = 0.9 for every constraint (footnote 1)
    "constraint": ["params<=4e6"],  # Table 4 compares models under a size constraint (~3-4 M params)
    "prediction": False,
    "out": "runs/epnas_cifar10_layers",
}

PREDICTION = {
    **SCRATCH,
    "prediction": True,  # performance prediction + dictionary parameter sharing (Sec. 3.4)
    "prediction_epochs": 10,  # "do early stop at 10 epochs for each model with parameter sharing"
    "batch_scale": 8,  # "we increase ... BZ to 1024" (128 x 8)
    "lr_scale": 10.0,  # "we increase LR to 0.5" (0.05 x 10)
    "prediction_decay": "exponential",  # "a large learning rate with an aggressive decay" (shape not given)
    "sharing_keys": "parent",  # "share parameters across steps": a child reads its parent's layer numbers
    "insert_init": "fresh",  # the paper is silent on how an inserted layer starts: random (identity: Net2Net)
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
    "out": "runs/epnas_cifar10_layers_pp",
}

TABLE5 = {
    **PREDICTION,
    "constraint": ["params<=2e6", "intensity>=80"],  # Table 5 row "sz <= 2M, c.i. >= 80"
    "out": "runs/epnas_cifar10_layers_table5",
}

RANDOM = {**SCRATCH, "baseline": "random", "out": "runs/epnas_cifar10_layers_random"}  # Fig. 4 random search

SETTINGS = {"scratch": SCRATCH, "prediction": PREDICTION, "table5": TABLE5, "random": RANDOM}


RECIPE = Recipe(["search", "epnas"], SETTINGS, "prediction")
command, run = RECIPE.argv, RECIPE.run  # settings -> argument list; settings, **overrides -> exit code


if __name__ == "__main__":
    sys.exit(RECIPE.main("epnas_cifar10_layers.py", sys.argv[1:]))
