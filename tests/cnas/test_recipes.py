"""CNAS recipes: every setting is valid CLI input; the paper-size spaces have Table 1's channels."""

import json

import pytest

from keras_nas import cli
from keras_nas.cnas.channel_graph import ChannelGraph
from keras_nas.cnas.nasnet_space import channel_nasnet
from keras_nas.cnas.densenet_space import densenet_bc
from recipes import cnas_cifar10, cnas_densenet_bc

ALL = {**{f"cifar10/{k}": v for k, v in cnas_cifar10.SETTINGS.items()},
       **{f"densenet/{k}": v for k, v in cnas_densenet_bc.SETTINGS.items()}}


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_setting_is_valid_cli_input(name):
    settings = ALL[name]
    _, args = cli.parse(cnas_cifar10.command(settings))  # parsed and checked as `keras-nas` checks them
    assert (args.epochs, args.final_epochs, args.gamma, args.t0, args.t_mult) == (150, 630, 0.1, 10, 2)
    assert args.baselines == settings["baselines"]


def test_paper_nasnet_space_has_table1_channels():
    _, topology = channel_nasnet(6, 5, 72, input_shape=(32, 32, 3), masked=False, return_topology=True)
    report = ChannelGraph(topology).cell_report(ChannelGraph(topology).full_masks())
    assert len(report) == 20
    rows = {r["cell"]: (r["X"], r["Y"]) for r in report}
    assert rows[1] == rows[3] == (1440, 360) and rows[7] == (2880, 720) and rows[14] == rows[20] == (5760, 1440)
    assert sum(r["X"] for r in report) == 69_120 and sum(r["Y"] for r in report) == 17_280  # Table 1 totals


def test_densenet_small_setting_targets_densenet_bc_100_size():
    s = cnas_densenet_bc.SMALL
    _, topology = densenet_bc(s["layers_per_block"], s["growth_rate"], input_shape=(32, 32, 3), masked=False,
                              return_topology=True)
    target = s["sparsity"] * ChannelGraph(topology).total_params
    assert 0.78e6 < target < 0.82e6  # DenseNet-BC (L=100, k=12): 0.8 M


@pytest.mark.slow
@pytest.mark.parametrize("module, name, rho", [(cnas_cifar10, "cnas_w", 0.8), (cnas_densenet_bc, "small", 0.9)])
def test_recipe_runs_at_small_size(module, name, rho, tmp_path):
    small = dict(dataset="digits", augment=None, epochs=1, final_epochs=1, cells=1, nodes=2, init_channels=4,
                 layers_per_block=2, growth_rate=4, saliency_batches=2, gamma=0.3, sparsity=rho, t0=None,
                 baselines=False, batch_size=64, verbose=0, out=str(tmp_path / name))
    assert module.run(module.SETTINGS[name], **small) == 0
    results = json.loads((tmp_path / name / "results.json").read_text())
    assert results["sparsity"] <= rho and results["space"] == module.SETTINGS[name]["space"]
