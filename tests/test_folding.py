"""Folding inference BatchNormalization into convolutions (keras_nas.folding)."""

import keras
import numpy as np
import pytest

from keras_nas import folding
from keras_nas.layers.folded_batch_normalization import FoldedBatchNormalization


def _randomise_batch_norms(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(size=shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=shape))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, size=shape))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(size=shape))


def _model():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn_conv")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.BatchNormalization(scale=False, name="bn_dw")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.SeparableConv2D(5, 3, padding="same", use_bias=False, name="sep")(x)
    x = keras.layers.BatchNormalization(center=False, name="bn_sep")(x)
    shared = keras.layers.Conv2D(5, 1, name="shared")(x)  # read by a BN and by the Add: not folded
    y = keras.layers.BatchNormalization(name="bn_shared")(shared)
    x = keras.layers.Add()([y, shared])
    x = keras.layers.Conv2D(5, 1, activation="relu", name="activated")(x)  # activation before the BN: not folded
    x = keras.layers.BatchNormalization(name="bn_activated")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    _randomise_batch_norms(model)
    return model


def test_batch_norm_affine_and_kernel_folding_by_hand():
    scale, shift = folding.batch_norm_affine(np.array([2.0, 1.0]), np.array([1.0, 0.0]), np.array([3.0, -1.0]),
                                             np.array([3.0, 0.0]), 1.0)
    np.testing.assert_allclose(scale, [1.0, 1.0])  # 2 / sqrt(3 + 1), 1 / sqrt(0 + 1)
    np.testing.assert_allclose(shift, [-2.0, 1.0])  # 1 - 3 * 1, 0 + 1 * 1
    scale, shift = folding.batch_norm_affine(None, None, np.array([1.0]), np.array([3.0]), 1.0)
    np.testing.assert_allclose([scale[0], shift[0]], [0.5, -0.5])
    # depthwise kernel (kh, kw, in=2, multiplier=2): output channel c * 2 + m gets scale[c * 2 + m]
    kernel, bias = folding.fold_into_kernel(np.ones((1, 1, 2, 2)), np.array([1.0, 1.0, 1.0, 1.0]),
                                            np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4), "depthwise", 2)
    np.testing.assert_allclose(kernel[0, 0], [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(bias, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="`kind` must be 'conv', 'depthwise' or 'separable'. Received: kind='dense'"):
        folding.fold_into_kernel(np.ones((1, 1)), None, np.ones(1), np.zeros(1), "dense")


def test_folded_model_predicts_the_same_with_fewer_ops():
    model = _model()
    assert folding.foldable_pairs(model) == {"bn_conv": "conv", "bn_dw": "dw", "bn_sep": "sep"}
    folded = folding.fold_batch_norms(model)
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    kinds = {layer.name: type(layer).__name__ for layer in folded.layers}
    assert [n for n, k in kinds.items() if k == "FoldedBatchNormalization"] == ["bn_conv", "bn_dw", "bn_sep"]
    assert kinds["bn_shared"] == kinds["bn_activated"] == "BatchNormalization"
    assert folded.get_layer("dw").use_bias and folded.get_layer("sep").use_bias
    # per BN channel 4 weights go (3 without gamma or beta); dw and sep gain a bias (conv had one)
    removed = 4 * 4 + 3 * 8 + 3 * 5 - (8 + 5)
    assert folded.count_params() == model.count_params() - removed
    assert model.get_layer("bn_conv").__class__ is keras.layers.BatchNormalization  # the model itself is unchanged


def test_folded_model_saves_and_loads(tmp_path):
    folded = folding.fold_batch_norms(_model())
    path = str(tmp_path / "folded.keras")
    folded.save(path)
    again = keras.models.load_model(path)
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), folded.predict(x, verbose=0), atol=1e-6)


def test_folded_batch_normalization_config_round_trip_and_passthrough():
    layer = FoldedBatchNormalization(name="bn")
    again = FoldedBatchNormalization.from_config(layer.get_config())
    assert again.get_config() == layer.get_config() and again.name == "bn"
    x = np.arange(12, dtype="float32").reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(np.asarray(again(x, training=True)), x)
    assert not again.weights


def test_sparse_cnas_network_channels_first_folds():
    from keras_nas import cnas
    from keras_nas.cnas.nasnet_space import channel_nasnet

    masked, topology = channel_nasnet(1, 2, 4, input_shape=(8, 8, 1), num_classes=3, return_topology=True)
    graph = cnas.ChannelGraph(topology)
    masks = {n: (np.arange(len(m)) % 3 != 0).astype("float32") for n, m in graph.full_masks().items()}
    cnas.write_masks(masked, graph, masks)
    _randomise_batch_norms(masked)
    sparse, _ = cnas.materialize(masked, graph, lambda sel: channel_nasnet(
        1, 2, 4, input_shape=(8, 8, 1), num_classes=3, selection=sel, data_format="channels_first"))
    folded = folding.fold_batch_norms(sparse)
    assert sum(isinstance(layer, FoldedBatchNormalization) for layer in folded.layers) >= 6
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), masked.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_subclassed_models_are_refused():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="`model` must be a functional or Sequential Keras model"):
        folding.fold_batch_norms(Net())


def _graph_ops(path):
    import tensorflow as tf

    graph = tf.saved_model.load(path).signatures["serving_default"].graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)


def test_export_folds_by_default_and_serves_the_same_predictions(tmp_path):
    import tensorflow as tf

    from keras_nas import export

    model = _model()
    folded_path = export.export_saved_model(model, str(tmp_path / "folded"))
    plain_path = export.export_saved_model(model, str(tmp_path / "plain"), fold_batch_norm=False)
    x = np.random.default_rng(4).uniform(0, 255, size=(3, 6, 6, 3)).astype("float32")
    expected = model.predict(x, verbose=0)  # no preprocessing given: pixels go in unchanged
    for path in (folded_path, plain_path):
        served = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(x))
        np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert _graph_ops(folded_path) < _graph_ops(plain_path)
    with pytest.raises(TypeError, match="`fold_batch_norm` must be a bool. Received: fold_batch_norm='yes'"):
        export.export_saved_model(model, str(tmp_path / "x"), fold_batch_norm="yes")
