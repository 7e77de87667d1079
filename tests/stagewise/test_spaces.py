"""Stage-wise builders: sizes against paper 000's ResNets/NASNets, names, errors."""

import keras
import numpy as np
import pytest

from keras_nas import costs
from keras_nas.stagewise.nasnet import stage_nasnet
from keras_nas.stagewise.resnet import stage_resnet
from keras_nas.stagewise.resnet import stage_resnet_depth


@pytest.mark.parametrize(
    "depth, params, conv_mmacs",
    # Table III: ResNet-44 0.66 M / 97 M, ResNet-56 0.86 M / 125 M, ResNet-110 1.7 M / 253 M.
    [(7, 661_754, 97), (9, 857_082, 125), (18, 1_736_058, 253)],
)
def test_cifar_resnets_match_table_iii(depth, params, conv_mmacs):
    model = stage_resnet((depth, depth, depth))
    assert model.count_params() == params
    by_kind = costs.profile(model).macs_by_kind
    assert round((by_kind["conv"] + by_kind["dense"]) / 1e6) == conv_mmacs
    assert stage_resnet_depth((depth,) * 3) == 6 * depth + 2


def test_projection_shortcut_adds_two_1x1_convs_with_bn():
    padded = stage_resnet((1, 1, 1)).count_params()
    projected = stage_resnet((1, 1, 1), shortcut="projection").count_params()
    assert projected - padded == (16 * 32 + 4 * 32) + (32 * 64 + 4 * 64)


def test_bottleneck_3463_is_resnet50_without_conv_biases():
    model = stage_resnet((3, 4, 6, 3), block="bottleneck", input_shape=(224, 224, 3), num_classes=1000)
    reference = keras.applications.ResNet50(weights=None)
    biases = sum(l.bias.shape[0] for l in reference.layers if isinstance(l, keras.layers.Conv2D))
    assert model.count_params() == reference.count_params() - biases


@pytest.mark.parametrize("cells, millions", [(4, 2.3), (6, 3.3)])
def test_nasnet_trainable_params_match_table_iv(cells, millions):
    model = stage_nasnet((cells,) * 3)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert round(trainable / 1e6, 1) == millions


def test_stage_depths_vary_per_stage_and_names_are_stable():
    model = stage_resnet((1, 3, 2), input_shape=(8, 8, 1), num_classes=4)
    names = {layer.name for layer in model.layers}
    assert {"stage0_block0_add", "stage1_block2_add", "stage2_block1_out"} <= names
    assert "stage1_block3_add" not in names
    assert model.get_layer("stage1_block2_out").output.shape[1:] == (4, 4, 32)
    assert model.get_layer("stage2_block1_out").output.shape[1:] == (2, 2, 64)
    assert model.output_shape == (None, 4)
    assert model.layers[-1].name == "predictions"


def test_nasnet_cells_per_stage_and_shapes():
    model = stage_nasnet((1, 2, 1), filters=4, input_shape=(8, 8, 1), num_classes=3)
    assert model.get_layer("stage1_cell1_out").output.shape[1:] == (4, 4, 6 * 8)
    assert model.get_layer("reduce1_out").output.shape[1:] == (2, 2, 4 * 16)
    out = model(np.ones((2, 8, 8, 1), "float32"))
    np.testing.assert_allclose(np.sum(out, axis=-1), 1.0, rtol=1e-5)


def test_padding_shortcut_model_saves_and_reloads(tmp_path):
    model = stage_resnet((1, 2, 1), input_shape=(8, 8, 1), num_classes=3, l2_regularization=1e-4)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(again(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(stage_depths=(2, 0, 2)), "`stage_depths` must be a non-empty list of positive ints"),
        (dict(stage_depths="222"), "`stage_depths` must be a list/tuple"),
        (dict(stage_depths=(2, 2, 2), block="wide"), r"`block` must be one of \['basic', 'bottleneck'\]"),
        (dict(stage_depths=(2, 2, 2), widths=(16, 32)), "`widths` must be a list of positive ints with one entry per stage"),
        (dict(stage_depths=(2, 2, 2), shortcut="conv"), "`shortcut` must be one of"),
        (dict(stage_depths=(2, 2, 2), num_classes=1), "`num_classes` must be an int >= 2"),
        (dict(stage_depths=(2, 2, 2), l2_regularization=-1.0), "`l2_regularization` must be a float >= 0"),
    ],
)
def test_resnet_bad_arguments(kwargs, message):
    depths = kwargs.pop("stage_depths")
    with pytest.raises((ValueError, TypeError), match=message):
        stage_resnet(depths, **kwargs)


def test_nasnet_bad_filters():
    with pytest.raises(ValueError, match="`filters` must be a positive int. Received: filters=0"):
        stage_nasnet((1, 1, 1), filters=0)
