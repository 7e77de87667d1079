"""CNAS topology arithmetic, Taylor saliency, zeroing steps and materialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nas import cnas
from keras_nas.cnas.channel_mask import ChannelMask
from keras_nas.cnas.nasnet_space import channel_nasnet
from keras_nas.cnas.densenet_space import densenet_bc

SHAPE = (8, 8, 1)


def _nasnet(**kwargs):
    return lambda **kw: channel_nasnet(1, 2, 4, input_shape=SHAPE, num_classes=3, **{**kwargs, **kw})


def _densenet(**kwargs):
    return lambda **kw: densenet_bc(2, 4, input_shape=SHAPE, num_classes=3, **{**kwargs, **kw})


def _randomise_batchnorm(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            for w in layer.weights:
                w.assign(rng.uniform(0.5, 1.5, size=w.shape))


def test_full_masks_count_every_weight_but_the_masks():
    for build in (_nasnet(), _densenet()):
        model, topology = build(return_topology=True)
        graph = cnas.ChannelGraph(topology)
        masks = sum(int(np.prod(w.shape)) for w in model.weights if w.path.endswith("/mask"))
        assert graph.total_params == model.count_params() - masks
        assert graph.total_params == build(masked=False).count_params()


def test_removing_one_channel_removes_the_weights_it_feeds():
    _, topology = _nasnet()(return_topology=True)
    graph = cnas.ChannelGraph(topology)
    masks = graph.full_masks()
    masks["cell1_node1_op1"][0] = 0
    # depthwise 3x3 + one pointwise row to C/2 = 2 outputs
    assert graph.total_params - graph.count_params(masks) == 9 + 2


def test_a_node_without_inputs_disappears_and_its_outputs_with_it():
    model, topology = _nasnet()(return_topology=True)
    graph = cnas.ChannelGraph(topology)
    masks = graph.full_masks()
    for op in ("cell1_node0_op0", "cell1_node0_op1"):
        masks[op][:] = 0
    eff = graph.effective(masks)
    # node 1 reads z0 = the last 4 of its 12 input channels (op1's share): all removed
    assert eff["cell1_node1_op1"][2:].sum() == 0 and eff["cell1_node1_op0"].sum() == 6
    row = graph.cell_report(masks)[0]
    assert row["nodes_removed"] == 1 and row["edges_removed"] == 2
    cnas.write_masks(model, graph, masks)
    sparse, selection = cnas.materialize(model, graph, lambda sel: _nasnet()(selection=sel))
    assert "cell1_node0_op0" not in selection["edges"]
    assert sparse.count_params() == graph.count_params(masks)
    assert all(not layer.name.startswith("cell1_node0_op") for layer in sparse.layers)


@pytest.mark.parametrize("space", ["nasnet", "densenet"])
def test_materialised_model_matches_masked_model(space):
    build = _nasnet() if space == "nasnet" else _densenet()
    model, topology = build(return_topology=True)
    _randomise_batchnorm(model)
    graph = cnas.ChannelGraph(topology)
    rng = np.random.default_rng(1)
    masks = {n: (rng.random(len(m)) < 0.35).astype("float32") for n, m in graph.full_masks().items()}
    masks[graph.edges[0]][:] = 0  # one dead edge
    cnas.write_masks(model, graph, masks)
    sparse, _ = cnas.materialize(model, graph, lambda sel: build(selection=sel))
    assert sparse.count_params() == graph.count_params(masks) < graph.total_params
    assert not any(isinstance(layer, ChannelMask) for layer in sparse.layers)
    x = rng.normal(size=(4,) + SHAPE).astype("float32")
    np.testing.assert_allclose(sparse.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_saliency_matches_gradient_with_respect_to_the_activations():
    inputs = keras.Input((4, 4, 2))
    masked = ChannelMask(name="m")(inputs)
    y = keras.layers.Conv2D(3, 1, name="conv")(masked)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(3, activation="softmax")(y)
    model = keras.Model(inputs, y)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4, 4, 2)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2])
    data = tf.data.Dataset.from_tensor_slices((x, labels)).batch(3)
    values = cnas.taylor_saliency(model, [model.get_layer("m")], data, 2)[0]
    # By hand: |mean over batch and space of x * d(loss of the example)/dx|, summed over the 2 minibatches.
    expected = np.zeros(2)
    for start in (0, 3):
        xb = tf.constant(x[start:start + 3])
        with tf.GradientTape() as tape:
            tape.watch(xb)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels[start:start + 3], model(xb)))
        per_example_grad = tape.gradient(loss, xb).numpy() * 3
        expected += np.abs(np.mean(x[start:start + 3] * per_example_grad, axis=(0, 1, 2)))
    np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-7)


def test_reciprocal_form_accumulates_the_reciprocal_of_each_minibatch_term():
    """Algorithm 1, line 3: S <- S + 1 / |x dx| per minibatch (reduced per channel first)."""
    inputs = keras.Input((4, 4, 2))
    masked = ChannelMask(name="m")(inputs)
    y = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 1)(masked))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(y))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4, 4, 2)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.array([0, 1, 2, 0, 1, 2]))).batch(3)
    per_batch = [cnas.taylor_saliency(model, [model.get_layer("m")], data.skip(i).take(1), 1)[0] for i in (0, 1)]
    values = cnas.taylor_saliency(model, [model.get_layer("m")], data, 2, form="reciprocal")[0]
    np.testing.assert_allclose(values, 1 / per_batch[0] + 1 / per_batch[1], rtol=1e-4)


def test_minibatch_term_and_importance_by_hand():
    assert cnas.minibatch_term(-2.0, 4) == 0.5
    assert cnas.minibatch_term(-2.0, 4, "reciprocal") == pytest.approx(2.0)
    assert cnas.minibatch_term(0.0, 4, "reciprocal") == pytest.approx(1e12)  # no gradient: zeroed first
    with pytest.raises(ValueError, match="`form` must be one of \\['taylor', 'reciprocal'\\]. Received: form='abs'"):
        cnas.minibatch_term(1.0, 1, "abs")
    # Two layers; layer a: terms 1, 2; layer b: terms 3, 4, 100 (the last one removed already).
    values = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0, 100.0])}
    masks = {"a": np.array([1, 1]), "b": np.array([1, 1, 0])}
    taylor = cnas.channel_importance(values, masks)
    np.testing.assert_allclose(taylor["a"], [1 / 5 ** 0.5, 2 / 5 ** 0.5])
    np.testing.assert_allclose(taylor["b"], [0.6, 0.8, 0.0])
    reciprocal = {k: 1 / v for k, v in values.items()}
    importance = cnas.channel_importance(reciprocal, masks, "reciprocal")
    # 1/(1, 2) -> (1, 0.5) / sqrt(1.25); 1/(3, 4) -> (1/3, 1/4) / (5/12)
    np.testing.assert_allclose(importance["a"], [-1 / 1.25 ** 0.5, -0.5 / 1.25 ** 0.5])
    np.testing.assert_allclose(importance["b"], [-0.8, -0.6, 0.0])
    # Across layers the forms rank differently: a = (1, 1, 10), b = (1, 2).
    values = {"a": np.array([1.0, 1.0, 10.0]), "b": np.array([1.0, 2.0])}
    masks = {"a": np.ones(3), "b": np.ones(2)}
    taylor = cnas.channel_importance(values, masks)  # a: 1/sqrt(102) = 0.099 < b: 1/sqrt(5) = 0.447
    importance = cnas.channel_importance({k: 1 / v for k, v in values.items()}, masks, "reciprocal")
    # a: -1/sqrt(2.01) = -0.705 > b: -1/sqrt(1.25) = -0.894
    assert np.argmin(np.r_[taylor["a"], taylor["b"]]) == 0
    assert np.argmin(np.r_[importance["a"], importance["b"]]) == 3
    np.testing.assert_allclose(importance["b"], [-1 / 1.25 ** 0.5, -0.5 / 1.25 ** 0.5])


def test_saliency_function_is_traced_once():
    model, topology = _nasnet()(return_topology=True)
    graph = cnas.ChannelGraph(topology)
    x = np.random.default_rng(0).normal(size=(8,) + SHAPE).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4)
    fn = cnas.saliency_function(model, cnas.mask_layers(model, graph))
    first = fn(data, 3)
    cnas.write_masks(model, graph, {n: np.r_[0.0, np.ones(len(m) - 1)] for n, m in graph.full_masks().items()})
    fn(data, 3)
    assert fn.accumulate.experimental_get_tracing_count() == 1
    assert len(first) == len(graph.edges) and all(v.shape == m.shape for v, m in zip(first, graph.full_masks().values()))


def test_normalize_layerwise_uses_kept_channels_only():
    out = cnas.normalize_layerwise({"a": np.array([3.0, 4.0, 100.0])}, {"a": np.array([1, 1, 0])})
    np.testing.assert_allclose(out["a"], [0.6, 0.8, 0.0])


def test_zeroing_step_removes_gamma_of_the_least_salient():
    _, topology = _nasnet()(return_topology=True)
    graph = cnas.ChannelGraph(topology)
    masks = graph.full_masks()
    remaining = graph.input_channels(masks)
    rng = np.random.default_rng(0)
    saliency = {n: rng.random(len(m)) for n, m in masks.items()}
    new, info = cnas.zero_least_salient(graph, masks, saliency, 0.1)
    assert info["removed"] == round(0.1 * remaining)
    removed = np.concatenate([saliency[n][(masks[n] > 0) & (new[n] == 0)] for n in graph.edges])
    kept = np.concatenate([saliency[n][new[n] > 0] for n in graph.edges])
    assert info["remaining"] == remaining - info["removed"]  # nothing cut off in a first step of 10%
    assert removed.max() <= kept.min()


def test_zeroing_stops_at_the_target_and_keeps_every_cell_connected():
    _, topology = _nasnet()(return_topology=True)
    graph = cnas.ChannelGraph(topology)
    masks = graph.full_masks()
    target = int(0.6 * graph.total_params)
    rng = np.random.default_rng(0)
    for _ in range(100):
        saliency = {n: rng.random(len(m)) for n, m in masks.items()}
        before = graph.count_params(masks)
        masks, info = cnas.zero_least_salient(graph, masks, saliency, 0.5, target)
        if info["params"] <= target:
            break
    assert info["params"] <= target < before
    assert all(v >= 1 for v in graph.protected(masks).values())


def test_gamma_and_sparsity_outside_the_open_interval_are_rejected():
    _, topology = _nasnet()(return_topology=True)
    for gamma in (0, 1, 1.5):
        with pytest.raises(ValueError, match="`gamma` must be in \\(0, 1\\)"):
            cnas.channels_to_remove(10, gamma)
    from keras_nas.cnas.channel_pruning import ChannelPruning

    for rho in (0, 1, -0.2):
        with pytest.raises(ValueError, match="`target_sparsity` must be in \\(0, 1\\)"):
            ChannelPruning(topology, rho)
    with pytest.raises(ValueError, match="`gamma` must be in \\(0, 1\\)"):
        ChannelPruning(topology, 0.5, gamma=1.0)


def test_random_pruning_reaches_the_same_parameter_count():
    _, topology = _nasnet()(return_topology=True)
    graph = cnas.ChannelGraph(topology)
    target = int(0.5 * graph.total_params)
    masks = cnas.random_masks(graph, target, seed=0)
    assert 0.9 * target <= graph.count_params(masks) <= target
    cells = [r["X_star"] / r["X"] for r in graph.cell_report(masks)]
    assert max(cells) - min(cells) < 0.35  # similar share in every cell (paper sec. 3.2)
