"""Stage-wise recipes: every setting parses, builds at full size and runs a few steps on CPU."""

import json

import numpy as np
import pytest

from keras_nas import cli
from keras_nas.stagewise.nasnet import stage_nasnet
from keras_nas.stagewise.resnet import stage_resnet
from recipes import stagewise_cifar10, stagewise_transfer

# milestones: the paper's 100,150 lie beyond these 2 epochs, which is refused.
SMALL = dict(dataset="digits", epochs=1, final_epochs=1, milestones="1", iterations=1, m0=1, importance_samples=64,
             verbose=0)


@pytest.mark.parametrize("name", sorted(stagewise_cifar10.SETTINGS))
def test_every_setting_is_valid_cli_input(name):
    settings = stagewise_cifar10.SETTINGS[name]
    argv = stagewise_cifar10.command(settings)
    if "donor" in settings:
        i = argv.index("--donor")  # the donor file only exists on the GPU machine
        del argv[i:i + 2]
    _, args = cli.parse(argv)
    assert args.milestones == [int(m) for m in settings["milestones"].split(",")]
    assert (args.m0, args.iterations, args.epochs) == (6, 5, settings["epochs"])


def test_initial_networks_at_paper_size():
    # A of Algorithm 1 with m0 = 6: ResNet-38 (residual) and NASNet241 (cells, 3.3 M trainable).
    resnet = stage_resnet((6, 6, 6))
    assert resnet.count_params() == 564_090
    nasnet = stage_nasnet((6, 6, 6), filters=stagewise_cifar10.CELL["filters"])
    assert round(sum(int(np.prod(w.shape)) for w in nasnet.trainable_weights) / 1e6, 1) == 3.3


@pytest.mark.slow  # the same search as tests/stagewise/test_search.py, through the recipe
def test_residual_recipe_runs_at_small_size(tmp_path):
    out = tmp_path / "residual"
    assert stagewise_cifar10.run(stagewise_cifar10.RESIDUAL, out=str(out), **SMALL) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["models_trained"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["augment"] == "standard" and config["final_epochs"] == 1 and config["l2"] == 1e-4


@pytest.mark.slow
def test_cell_recipe_runs_at_small_size(tmp_path):
    out = tmp_path / "cell"
    assert stagewise_cifar10.run(stagewise_cifar10.CELL, out=str(out), filters=4, **SMALL) == 0
    assert json.loads((out / "results.json").read_text())["models_trained"] == 3


@pytest.mark.slow
def test_weight_transfer_recipe_runs_at_small_size(tmp_path):
    donor = str(tmp_path / "donor.keras")
    stage_resnet((3, 3, 3), input_shape=(8, 8, 1), num_classes=10).save(donor)
    out = tmp_path / "transfer"
    assert stagewise_cifar10.run(stagewise_cifar10.TRANSFER, out=str(out), donor=donor, **SMALL) == 0


def test_transfer_recipe_trains_the_found_architecture(tmp_path):
    search = tmp_path / "search"
    search.mkdir()
    (search / "results.json").write_text(json.dumps({"best": {"stage_depths": [1, 2, 1]}}))
    (search / "config.json").write_text(json.dumps({"module": "residual", "block": "basic"}))
    argv = stagewise_transfer.command(str(search), "imagenet32")
    assert argv[:3] == ["train", "--arch", "resnet:1,2,1"]
    assert "imagenet_resized/32x32" in argv
    out = tmp_path / "train"
    code = stagewise_transfer.run(str(search), "imagenet32", dataset="digits", image_size=8,
                                  epochs=1, out=str(out), verbose=0)
    assert code == 0
    trained = json.loads((out / "results.json").read_text())
    assert trained["costs"]["params"] == stage_resnet((1, 2, 1), input_shape=(8, 8, 1), num_classes=10).count_params()
    with pytest.raises(ValueError, match="`target` must be one of"):
        stagewise_transfer.command(str(search), "cifar100")
