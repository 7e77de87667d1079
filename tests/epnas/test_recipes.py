"""EPNAS recipes: the paper's CIFAR-10 settings parse, build at full size, and run at small size."""

import json
import os

import pytest

from keras_nas import cli
from keras_nas.epnas import command as epnas
from tests.helpers import check_results_contract
from recipes import epnas_cifar10_layers, epnas_cifar10_module


def _args(argv):
    return cli.parse(argv)[1]  # parsed and checked as `keras-nas` checks them


@pytest.mark.parametrize("recipe", [epnas_cifar10_layers, epnas_cifar10_module])
def test_recipes_hold_the_paper_settings(recipe):
    for settings in recipe.SETTINGS.values():
        args = _args(recipe.command(settings))
        epnas.make_space(args)  # the space options fit together
        assert (args.episodes, args.branches, args.top_k, args.batch_size) == (15, 8, 8, 128)
        assert args.policy_learning_rate == 6e-4 and args.penalty_base == 0.9
    pp = _args(recipe.command(recipe.PREDICTION))
    assert pp.prediction and pp.prediction_epochs == 10 and pp.batch_scale * 128 == 1024
    assert pp.learning_rate * pp.lr_scale == pytest.approx(0.5)
    assert (pp.prediction_decay, pp.sharing_keys, pp.insert_init) == ("exponential", "parent", "fresh")
    assert (pp.t0, pp.t_mult, pp.min_learning_rate) == (10, 2.0, 0.001)
    assert (pp.shared_lr_scale, pp.shared_shrink, pp.shared_noise, pp.prediction_decay_epochs) == (1.0, 1.0, 0.0, None)
    assert _args(recipe.command(recipe.SCRATCH)).epochs == 20 and not _args(recipe.command(recipe.SCRATCH)).prediction
    assert _args(recipe.command(recipe.RANDOM)).baseline == "random"


def test_steps_and_constraints_per_pattern():
    layers = _args(epnas_cifar10_layers.command(epnas_cifar10_layers.TABLE5))
    assert layers.steps == 10 and layers.constraint == ["params<=2e6", "intensity>=80"]
    module = _args(epnas_cifar10_module.command(epnas_cifar10_module.PREDICTION))
    assert module.steps == 5 and module.mode == "module"


def test_cifar_size_children_build():
    import numpy as np

    for recipe in (epnas_cifar10_layers, epnas_cifar10_module):
        space = epnas.make_space(_args(recipe.command(recipe.PREDICTION)))
        model = space.build(space.random_architecture(np.random.default_rng(0)), (32, 32, 3), 10)
        assert model.output_shape == (None, 10)


def test_layers_recipe_runs_at_small_size(tmp_path):
    out = str(tmp_path / "run")
    code = epnas_cifar10_layers.run(
        epnas_cifar10_layers.PREDICTION, dataset="synthetic", image_size=8, augment=None, batch_size=32,
        validation_split=0.25, episodes=1, branches=2, steps=1, top_k=1, prediction_epochs=1, batch_scale=2,
        channel_table="16,32", max_layers=4, out=out, verbose=0)
    assert code == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["children_trained"] == 2
    check_results_contract(out, beats_chance_by=0.25)
