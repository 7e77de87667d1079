"""Pieces every search runner shares: data loading and the output folder."""

import os

from keras_nas import data as data_lib


def load_data(args):
    """Loads the dataset the common CLI options describe."""
    return data_lib.load(
        args.dataset,
        image_size=args.image_size,
        channels=args.channels,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        seed=args.seed,
        augment=args.augment,
        data_dir=args.data_dir,
    )


def out_dir(args, method):
    """`--out`, or `runs/<method>` when it was not given."""
    return args.out or os.path.join("runs", method)


def common_config(args):
    """The common options as a plain dict, for `config.json`."""
    keys = (
        "dataset", "data_dir", "image_size", "channels", "batch_size",
        "validation_split", "augment", "seed",
    )
    return {k: getattr(args, k, None) for k in keys}
