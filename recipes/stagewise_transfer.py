"""Paper 000 Table VI: a stage-wise architecture found on CIFAR-10 trained from scratch elsewhere.

The found depths are read from a finished search's `results.json`
(`best.stage_depths`), then the network is trained from scratch on the target
dataset with the search's training setting (Zoph et al.'s transfer protocol,
which the paper follows):

    python recipes/stagewise_transfer.py runs/stagewise_cifar10_residual imagenet32
    python recipes/stagewise_transfer.py runs/stagewise_cifar10_residual tiny_imagenet

Nothing happens at import.
"""

import json
import os
import sys

TARGETS = {
    "imagenet32": {
        "dataset": "imagenet_resized/32x32",  # "ImageNet 32x32" (Chrabaszcz et al. 2017), TFDS name
        "image_size": 32,  # kept at 32x32: the S = 3 CIFAR network transfers as it is
    },
    "tiny_imagenet": {
        # Tiny ImageNet is not in TFDS: an image folder with one sub-folder per class
        # (train/<wnid>/images/*.JPEG re-arranged as <folder>/train/<wnid>/*.JPEG).
        "dataset": "data/tiny-imagenet-200",
        "image_size": 64,  # the dataset's native size
    },
}

TRAINING = {
    "augment": "standard",  # same flip + crop as the search
    "batch_size": 128,  # reference code
    "epochs": 200,  # "training it from scratch" with the search's 200 epochs
    "schedule": "step",  # x0.1 at 50% and 75% of the epochs: 100 and 150 of 200
    "learning_rate": 0.01,  # Sec. IV
    "optimizer": "nesterov",  # reference code
    "momentum": 0.9,  # reference code
    # `keras-nas train` has decoupled decay only: 2e-4 is the reference L2 penalty
    # 1e-4 * |w|^2 as a gradient term (2e-4 w) before momentum.
    "weight_decay": 2e-4,
}


def found_architecture(search_folder):
    """`--arch` spec of the best candidate of a finished stage-wise search."""
    path = os.path.join(search_folder, "results.json")
    config_path = os.path.join(search_folder, "config.json")
    if not os.path.exists(path):
        raise ValueError(f"`search_folder` must hold a finished search's results.json. Received: {search_folder!r}")
    with open(path) as f:
        results = json.load(f)
    module = "resnet"
    if os.path.exists(config_path):
        with open(config_path) as f:
            config = json.load(f)
        if config.get("module", config.get("module_type")) == "cell":  # module_type: keras_nas 0.1
            module = "nasnet"
        elif config.get("block") == "bottleneck":
            module = "resnet-bottleneck"
    depths = results["best"]["stage_depths"]
    return f"{module}:{','.join(str(d) for d in depths)}"


def command(search_folder, target, **overrides):
    """`keras-nas train` arguments for one Table VI cell."""
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {sorted(TARGETS)}. Received: target={target!r}")
    settings = {
        "arch": found_architecture(search_folder),
        **TARGETS[target],
        **TRAINING,
        "out": os.path.join("runs", f"transfer_{target}"),
        **overrides,
    }
    from keras_nas.cli import settings_argv

    argv = settings_argv(["train"], settings)
    return argv


def run(search_folder, target, **overrides):
    from keras_nas import cli

    return cli.main(command(search_folder, target, **overrides))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: python recipes/stagewise_transfer.py SEARCH_FOLDER [{'|'.join(TARGETS)}]")
    sys.exit(run(sys.argv[1], sys.argv[2]))
