"""Paper 004 sec. 3.4: CNAS on the DenseNet-BC search space (Table 2, Figure 4), CIFAR-10.

Run on a GPU machine, unchanged:

    python recipes/cnas_densenet_bc.py small   # CNAS-R (DenseNet-BC) 0.8 M, 4.28% (DenseNet-BC: 4.51%)
    python recipes/cnas_densenet_bc.py large   # CNAS-R (DenseNet-BC) 4.6 M, 3.97%

The same masks, Taylor saliency and zeroing code as the NASNet-shaped
space; only the builder differs. Training settings are the NASNet ones of
`recipes/cnas_cifar10.py` (the paper gives no others).
"""

import sys

from keras_nas.cli import Recipe

try:
    from recipes.cnas_cifar10 import CNAS_R
except ImportError:  # run as `python recipes/cnas_densenet_bc.py`
    from cnas_cifar10 import CNAS_R

SMALL = {
    **CNAS_R,
    "space": "densenet-bc",
    "layers_per_block": 19,  # "each dense block consists of the 19 bottleneck layers"
    "growth_rate": 12,  # DenseNet-BC k = 12 (Huang et al. 2017), the 0.8 M row of Table 2
    "dropout": 0.0,  # DenseNet-BC on augmented CIFAR uses no dropout
    "sparsity": 0.76,  # one-shot |W| = 1.05 M -> 0.8 M, DenseNet-BC-100's size (Table 2)
    "out": "runs/cnas_densenet_bc_small",
}

LARGE = {
    **SMALL,
    "growth_rate": 32,  # one-shot |W| = 7.18 M
    "sparsity": 0.64,  # -> 4.6 M, the size of Table 2's second CNAS-R (DenseNet-BC) row
    "out": "runs/cnas_densenet_bc_large",
}

SETTINGS = {"small": SMALL, "large": LARGE}


RECIPE = Recipe(["search", "cnas"], SETTINGS, "small")
command, run = RECIPE.argv, RECIPE.run  # settings -> argument list; settings, **overrides -> exit code


if __name__ == "__main__":
    sys.exit(RECIPE.main("cnas_densenet_bc.py", sys.argv[1:]))
