import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas.eoinas.drop_path import DropPath
from keras_nas.layers.factorized_reduce import FactorizedReduce
from keras_nas.eoinas.gumbel_edge import GumbelEdge
from keras_nas.eoinas.search_cell import SearchCell
from keras_nas.eoinas.zero import Zero
from keras_nas.eoinas.search_cell import cell_edges
from keras_nas.eoinas import darts


def test_cell_edges_follow_darts_order():
    edges = cell_edges(4)
    assert len(edges) == 14
    assert edges[:5] == [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert edges[-1] == (4, 5)


def test_search_cell_normal_and_reduction_shapes():
    w = tf.fill((14, 8), 1.0 / 8)
    index = tf.zeros((14,), tf.int32)
    normal = SearchCell(4, edge_mode="darts")
    out = normal([np.ones((2, 8, 8, 12), "float32"), np.ones((2, 8, 8, 12), "float32")], w, index)
    assert tuple(out.shape) == (2, 8, 8, 16)
    reduce = SearchCell(8, reduction=True, edge_mode="darts")
    out = reduce([np.ones((2, 8, 8, 16), "float32"), np.ones((2, 8, 8, 16), "float32")], w, index)
    assert tuple(out.shape) == (2, 4, 4, 32)


def test_reduction_cell_strides_only_on_input_edges():
    cell = SearchCell(4, reduction=True)
    strides = [edge.strides for edge in cell.edges]
    assert strides == [2 if source < 2 else 1 for source, _ in cell_edges(4)]


def test_reduction_prev_uses_factorized_reduce():
    cell = SearchCell(4, reduction_prev=True)
    assert isinstance(cell.preprocess0, FactorizedReduce)


def test_derive_genotype_on_hand_made_scores():
    prims = darts.PRIMITIVES
    normal = np.zeros((14, 8))
    normal[:, 0] = 10.0  # "none" is strongest everywhere but never chosen
    # node 2: edges 0 and 1; node 3: edges 2,3,4 -> pick sources 1 and 2.
    normal[0, prims.index("sep_conv_3x3")] = 0.9
    normal[1, prims.index("skip_connect")] = 0.5
    normal[3, prims.index("dil_conv_5x5")] = 0.7
    normal[4, prims.index("max_pool_3x3")] = 0.8
    normal[2, prims.index("avg_pool_3x3")] = 0.1
    reduce = np.zeros((14, 8))
    reduce[:, prims.index("max_pool_3x3")] = 1.0
    # node 4 = edges 5..8 (sources 0..3): all pruned except sep_conv_5x5 from node 3.
    reduce[5:9, :] = -np.inf
    reduce[8, prims.index("sep_conv_5x5")] = 0.3
    g = darts.derive_genotype(normal, reduce)
    assert g.normal[:4] == [("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 1), ("max_pool_3x3", 2)]
    assert g.normal_concat == [2, 3, 4, 5]
    assert g.reduce[4:6] == [("max_pool_3x3", 0), ("sep_conv_5x5", 3)]
    assert all(op != "none" for op, _ in g.normal + g.reduce)


def test_genotype_json_round_trip(tmp_path):
    path = str(tmp_path / "genotype.json")
    darts.save_genotype(darts.GENOTYPES["DARTS_V2"], path)
    with open(path) as f:
        data = json.load(f)
    assert set(data) == {"normal", "normal_concat", "reduce", "reduce_concat"}
    assert data["normal"][0] == ["sep_conv_3x3", 0]
    assert darts.load_genotype(path) == darts.GENOTYPES["DARTS_V2"]


def test_genotype_validation_errors():
    bad = darts.genotype_to_dict(darts.GENOTYPES["DARTS_V1"])
    bad["normal"][0] = ["conv_9x9", 0]
    with pytest.raises(ValueError, match="unknown op 'conv_9x9'"):
        darts.genotype_from_dict(bad)
    bad = darts.genotype_to_dict(darts.GENOTYPES["DARTS_V1"])
    bad["reduce"][1] = ["skip_connect", 3]
    with pytest.raises(ValueError, match="reads node 3, which does not exist"):
        darts.genotype_from_dict(bad)
    with pytest.raises(ValueError, match="`path` must be a genotype JSON file"):
        darts.load_genotype("/nonexistent/genotype.json")


def test_darts_v2_cifar_size_matches_published():
    # DARTS (Liu et al. 2019) Table 1: 3.3 M; its train.py logs 3.349342 MB
    # (auxiliary head excluded).
    model = darts.eval_network("DARTS_V2", cells=20, channels=36, auxiliary=True)
    assert darts.count_params_without_auxiliary(model) == 3349342
    plain = darts.eval_network("DARTS_V2", cells=20, channels=36, auxiliary=False, drop_path=0.0)
    assert sum(int(np.prod(w.shape)) for w in plain.trainable_weights) == 3349342


def test_eval_network_output_is_only_predictions():
    model = darts.eval_network("GDAS_V1", cells=3, channels=4, num_classes=5, input_shape=(8, 8, 1))
    assert len(model.outputs) == 1
    assert model.layers[-1].name == "predictions"
    assert tuple(model.outputs[0].shape) == (None, 5)


def test_eval_network_trains_with_labels_and_reloads(tmp_path):
    model = darts.eval_network("DARTS_V1", cells=3, channels=4, num_classes=3, input_shape=(8, 8, 1),
                               auxiliary=True, drop_path=0.2)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.rand(8, 8, 8, 1).astype("float32")
    y = np.arange(8) % 3
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded).__name__ == "AuxiliaryHeadModel"
    assert loaded.auxiliary_weight == pytest.approx(0.4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_auxiliary_loss_is_added():
    model = darts.eval_network("DARTS_V2", cells=3, channels=4, num_classes=3, input_shape=(8, 8, 1),
                               auxiliary=True, drop_path=0.0, auxiliary_weight=1.0)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    x = np.random.rand(4, 8, 8, 1).astype("float32")
    y = np.array([0, 1, 2, 0])
    main, aux = model._training_view(x, training=True)
    expected = float(keras.losses.sparse_categorical_crossentropy(y, main).numpy().mean()
                     + keras.losses.sparse_categorical_crossentropy(y, aux).numpy().mean())
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-3)


def test_eval_network_errors():
    with pytest.raises(ValueError, match="`genotype` must be one of"):
        darts.eval_network("NOPE")
    with pytest.raises(ValueError, match=r"`drop_path` must be in \[0, 1\). Received: drop_path=1.5"):
        darts.eval_network("DARTS_V2", drop_path=1.5)


def test_plot_genotype_writes_png(tmp_path):
    path = darts.plot_genotype(darts.GENOTYPES["GDAS_V1"], str(tmp_path / "cells.png"))
    with open(path, "rb") as f:
        assert f.read(4) == b"\x89PNG"


@pytest.mark.parametrize("layer", [
    Zero(strides=2, name="z"),
    FactorizedReduce(8, affine=False, name="fr"),
    DropPath(0.3, name="dp"),
    GumbelEdge(4, strides=2, primitives=["none", "skip_connect"], edge_mode="darts", name="e"),
    SearchCell(4, reduction=True, reduction_prev=True, steps=2, multiplier=2, edge_mode="gumbel_soft", name="c"),
])
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def test_drop_path_rate_and_identity_at_inference():
    layer = DropPath(0.5)
    x = np.ones((400, 1, 1, 1), "float32")
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    out = np.asarray(layer(x, training=True)).ravel()
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert 0.35 < (out == 0).mean() < 0.65
