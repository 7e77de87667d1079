"""EoiNAS recipes: the paper's settings parse into valid CLI options (no training)."""

import pytest

from keras_nas import cli
from keras_nas.eoinas import command as eoinas
from recipes import eoinas_cifar10_eval, eoinas_cifar10_search, eoinas_imagenet


def _args(argv):
    return cli.parse(argv)[1]  # parsed and checked as `keras-nas` checks them


@pytest.mark.parametrize("name", sorted(eoinas_cifar10_search.SETTINGS))
def test_search_recipes_hold_the_paper_settings(name):
    args = _args(eoinas_cifar10_search.command(eoinas_cifar10_search.SETTINGS[name]))
    eoinas.validate_search_options(**{o.name: getattr(args, o.name) for o in eoinas.SEARCH_OPTIONS})
    # Sec. 4.1-4.2: 8 cells, C = 16, 160 epochs, batch 64, 50/50 split, 4 seeds.
    assert (args.cells, args.init_channels, args.epochs, args.batch_size) == (8, 16, 160, 64)
    assert (args.validation_split, args.seeds, args.warmup_epochs, args.prune_interval) == (0.5, 4, 20, 20)
    assert (args.learning_rate, args.min_learning_rate, args.arch_learning_rate) == (0.025, 0.001, 3e-4)
    assert args.importance_lambda == 0.5 and args.tau_max == 5.0
    expected = {"eoinas": ("eoinas", "gdas"), "gop": ("gop", "gdas"), "gdas": ("gdas", "gdas"),
                "darts": ("gdas", "darts")}[name]
    assert (args.variant, args.edge_mode) == expected
    assert args.lower_weight_case is False and args.lower_arch_case is False


def test_eval_recipes_hold_the_paper_settings():
    args = _args(eoinas_cifar10_eval.command("DARTS_V2", eoinas_cifar10_eval.EVAL))
    # Sec. 4.3: 20 cells, 36 channels, 600 epochs, batch 128, drop-path 0.3, cutout, auxiliary tower.
    assert (args.cells, args.init_channels, args.epochs, args.batch_size) == (20, 36, 600, 128)
    assert (args.drop_path, args.augment, args.auxiliary, args.genotype) == (0.3, "cutout", True, "DARTS_V2")
    imagenet = _args(eoinas_imagenet.command("DARTS_V2", eoinas_imagenet.IMAGENET))
    assert (imagenet.cells, imagenet.init_channels, imagenet.image_size) == (14, 48, 224)
    assert imagenet.auxiliary and imagenet.learning_rate == 0.1
