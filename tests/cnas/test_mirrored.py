"""The CNAS saliency step and one pruning iteration under MirroredStrategy (2 logical CPUs)."""

import pytest
from tests.engine.test_mirrored_strategy import run_under_strategy


@pytest.mark.slow  # keeps the default suite within 15 minutes; `pytest -m slow` runs it
def test_taylor_saliency_under_mirrored_strategy_equals_single_device():
    out = run_under_strategy(
        """
        from keras_nas import cnas
        from keras_nas.cnas.channel_pruning import ChannelPruning
        from keras_nas.cnas.nasnet_space import channel_nasnet
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model, topology = channel_nasnet(1, 2, 4, input_shape=data.input_shape, return_topology=True)
            model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
        single = channel_nasnet(1, 2, 4, input_shape=data.input_shape)
        single.set_weights(model.get_weights())
        graph = cnas.ChannelGraph(topology)
        batches = data.validation.take(2)
        mirrored = cnas.taylor_saliency(model, cnas.mask_layers(model, graph), batches, 2, strategy=strategy)
        plain = cnas.taylor_saliency(single, cnas.mask_layers(single, graph), batches, 2)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(mirrored, plain))
        scale = max(float(np.max(np.abs(b))) for b in plain)
        print("REL", diff / scale)
        callback = ChannelPruning(topology, 0.9, saliency_batches=2, saliency_data=batches,
                                  strategy=strategy, verbose=0)
        callback.set_model(model)
        callback.on_epoch_begin(0)  # one iteration: saliency under the strategy, then zeroing
        masks = cnas.read_masks(model, graph)
        print("ITER", len(callback.history), callback.history[0]["removed"], graph.input_channels(masks), graph.input_channels(graph.full_masks()))
        """
    )
    rel = float(out.split("REL")[1].split()[0])
    assert rel < 1e-4
    iterations, removed, left, full = (int(v) for v in out.split("ITER")[1].split()[:4])
    assert iterations == 1 and removed == round(0.1 * full) and left == full - removed
