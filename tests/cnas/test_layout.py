"""Channel layout of the materialised CNAS model: gathers turned into slices, same function."""

import keras
import numpy as np

from keras_nas import cnas
from keras_nas.cnas.channel_select import ChannelSelect
from keras_nas.cnas.channel_select import channel_runs
from keras_nas.cnas.nasnet_space import channel_nasnet
from keras_nas.cnas.densenet_space import densenet_bc

SHAPE = (8, 8, 1)


def _builds():
    yield "nasnet", lambda **kw: channel_nasnet(1, 3, 8, input_shape=SHAPE, num_classes=3, **kw)
    yield "densenet", lambda **kw: densenet_bc(4, 6, input_shape=SHAPE, num_classes=3, **kw)


def pruned_model(build, seed=0, keep=0.5):
    """A network from `build` with random BatchNorm weights and random masks (`keep` of the channels)."""
    model, topology = build(return_topology=True)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for w in layer.weights:
                w.assign(rng.uniform(0.5, 1.5, size=w.shape))
    graph = cnas.ChannelGraph(topology)
    masks = {n: (rng.random(len(m)) < keep).astype("float32") for n, m in graph.full_masks().items()}
    cnas.write_masks(model, graph, masks)
    return model, graph, masks


def _runs(model):
    total = 0
    for layer in model.layers:
        if isinstance(layer, ChannelSelect):
            shapes = layer.input.shape if not isinstance(layer.input, list) else [t.shape for t in layer.input]
            sizes = [s[-1] for s in shapes] if isinstance(layer.input, list) else [shapes[-1]]
            total += len(channel_runs(layer.indices, sizes))
    return total


def test_gray_rank_orders_patterns_as_the_reflected_gray_code():
    codes = [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1], [1, 0, 0]]
    assert [cnas.gray_rank(c) for c in codes] == list(range(8))


def test_layout_keeps_predictions_and_weights_and_reads_fewer_runs():
    for space, build in _builds():
        model, graph, masks = pruned_model(build)
        plain, _ = cnas.materialize(model, graph, lambda sel: build(selection=sel), layout=False)
        sparse, selection = cnas.materialize(model, graph, lambda sel: build(selection=sel))
        assert selection["permutations"], space
        assert sparse.count_params() == plain.count_params() == graph.count_params(masks)
        x = np.random.default_rng(1).normal(size=(3,) + SHAPE).astype("float32")
        expected = model.predict(x, verbose=0)
        np.testing.assert_allclose(plain.predict(x, verbose=0), expected, atol=1e-5)
        np.testing.assert_allclose(sparse.predict(x, verbose=0), expected, atol=1e-5)
        assert _runs(sparse) < _runs(plain), space


def test_first_two_consumers_of_a_permuted_producer_read_one_run_of_it():
    _, build = next(iter(_builds()))
    model, graph, masks = pruned_model(build, seed=3)
    selection = cnas.channel_layout(graph.topology, graph.selection(masks))
    checked = 0
    for name, source in graph.topology["sources"].items():
        order = {c: r for r, c in enumerate(selection["sources"][name])}
        users = [e for e in graph.edges if any(s == name for s, _ in graph.topology["edges"][e]["inputs"])]
        for start, stop, _ in source.get("producers", []):
            if not all(c in order for c in range(start, stop)):
                continue  # producer not built
            for edge in users[:2]:
                inputs = graph.topology["edges"][edge]["inputs"]
                positions = sorted(order[inputs[i][1]] for i in selection["edges"].get(edge, [])
                                   if inputs[i][0] == name and start <= inputs[i][1] < stop)
                if positions:
                    assert positions == list(range(positions[0], positions[0] + len(positions)))
                    checked += 1
    assert checked > 10


def test_materialised_model_with_layout_round_trips_through_keras_saving(tmp_path):
    _, build = list(_builds())[1]
    model, graph, _ = pruned_model(build, seed=2)
    sparse, _ = cnas.materialize(model, graph, lambda sel: build(selection=sel))
    path = str(tmp_path / "sparse.keras")
    sparse.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(4).normal(size=(2,) + SHAPE).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), sparse.predict(x, verbose=0))


def test_sparse_nasnet_node_runs_its_live_ops_in_one_depthwise_conv():
    _, build = next(iter(_builds()))
    model, graph, masks = pruned_model(build, seed=5)
    sparse, selection = cnas.materialize(model, graph, lambda sel: build(selection=sel))
    live_nodes = {graph.topology["edges"][e]["node"] for e in selection["edges"]}
    depthwise = [layer for layer in sparse.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert not any(isinstance(layer, keras.layers.SeparableConv2D) for layer in sparse.layers)
    assert sorted(layer.name for layer in depthwise) == sorted(f"{n}_depthwise" for n in live_nodes)
    pointwise = [layer for layer in sparse.layers if layer.name.endswith("_pointwise")]
    assert len(pointwise) == len(selection["edges"])


def test_the_search_times_the_sparse_model_in_the_channel_order_it_will_have(monkeypatch):
    import argparse

    from keras_nas import latency
    from keras_nas.cnas.command import sparse_latency_function

    timed = []
    monkeypatch.setattr(latency, "measure_model", lambda model, **kwargs: timed.append(model) or 0.5)
    for space, build in _builds():
        model, graph, masks = pruned_model(build)
        sparse, _ = cnas.materialize(model, graph, lambda sel: build(selection=sel))
        args = argparse.Namespace(space="densenet", data_format="channels_last")  # no builder overrides
        assert sparse_latency_function(graph, build, args)(graph.effective(masks)) == 0.5
        # The model timed during the search reads its channels as the final model does: the same runs.
        assert _runs(timed[-1]) == _runs(sparse), space
        assert [type(layer).__name__ for layer in timed[-1].layers] == [type(layer).__name__
                                                                         for layer in sparse.layers], space
