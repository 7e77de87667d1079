import numpy as np
import pytest
import tensorflow as tf

from keras_nas.engine.checkpoint import EpochCheckpoint
from keras_nas.eoinas.supernet import BilevelSearchModel


def _tiny(**kwargs):
    # Four of the eight ops keep the eager build fast; the logic is per column.
    config = dict(cells=3, channels=2, num_classes=3, input_shape=(4, 4, 1), steps=2, multiplier=2,
                  primitives=["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"])
    config.update(kwargs)
    model = BilevelSearchModel(**config)
    model.compile(run_eagerly=True)
    return model


def _batch(n=4):
    x = tf.random.normal((n, 4, 4, 1))
    y = tf.constant(np.arange(n) % 3, tf.int32)
    return (x, y), (x, y)


def test_search_network_reductions_at_one_and_two_thirds():
    model = _tiny(cells=4)
    assert [c.reduction for c in model.cell_layers] == [False, True, True, False]
    assert BilevelSearchModel.reduction_indices(8) == (2, 5)
    assert model.alpha_normal.shape == (5, 4)


def test_bilevel_step_counts_statistics_and_freezes_alpha_in_warmup():
    model = _tiny()
    model.arch_enabled.assign(0.0)
    alpha_before = model.alpha_normal.numpy().copy()
    weight_before = model.cell_layers[0].preprocess1.weights[1].numpy().copy()
    logs = model.train_step(_batch())
    np.testing.assert_array_equal(model.alpha_normal.numpy(), alpha_before)
    # Adam's step counter is put back, so the first enabled step is step 1.
    assert int(model.arch_optimizer.iterations.numpy()) == 0
    assert not np.allclose(model.cell_layers[0].preprocess1.weights[1].numpy(), weight_before)
    counts = model.op_counts.numpy()
    # C^e: one sampled op per edge and cell type per step.
    np.testing.assert_array_equal(counts.sum(axis=-1), np.ones((2, 5)))
    # C^a: the validation accuracy lands on exactly one op per edge.
    acc = model.op_accuracy.numpy()
    np.testing.assert_allclose(acc.sum(axis=-1), np.full((2, 5), float(logs["arch_accuracy"])), atol=1e-6)
    model.arch_enabled.assign(1.0)
    model.train_step(_batch())
    assert not np.allclose(model.alpha_normal.numpy(), alpha_before)
    np.testing.assert_array_equal(model.op_counts.numpy().sum(axis=-1), np.full((2, 5), 2.0))


def test_pruned_ops_never_counted():
    model = _tiny()
    live = np.zeros((5, 4), "float32")
    live[:, 3] = 1.0
    model.live_normal.assign(live)
    for _ in range(3):
        model.train_step(_batch())
    counts = model.op_counts.numpy()[0]
    assert counts[:, 3].sum() == 15 and counts.sum() == 15


@pytest.mark.parametrize("mode", ["darts", "gumbel_soft"])
def test_mixture_modes_train(mode):
    model = _tiny(edge_mode=mode)
    logs = model.train_step(_batch())
    assert np.isfinite(float(logs["loss"]))


def test_get_config_round_trip():
    model = _tiny(edge_mode="gumbel_soft", weight_decay=1e-4, temperature=3.0)
    config = model.get_config()
    clone = BilevelSearchModel.from_config(config)
    assert clone.get_config() == config
    assert float(clone.temperature.numpy()) == 3.0


def test_checkpoint_restores_search_state(tmp_path):
    model = _tiny()
    model.train_step(_batch())
    model.live_reduce.assign(np.eye(4, dtype="float32")[[1, 2, 3, 0, 1]])
    model.temperature.assign(0.7)
    checkpoint = EpochCheckpoint(str(tmp_path), optimizers=("optimizer", "arch_optimizer"))
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(4)
    fresh = _tiny()
    assert EpochCheckpoint(str(tmp_path), optimizers=("optimizer", "arch_optimizer")).restore(fresh) == (5, {})
    for name in ("alpha_normal", "live_reduce", "op_counts", "op_accuracy", "temperature"):
        np.testing.assert_array_equal(getattr(fresh, name).numpy(), getattr(model, name).numpy())
    np.testing.assert_array_equal(fresh.optimizer.variables[-1].numpy(), model.optimizer.variables[-1].numpy())



def test_a_search_checkpointed_before_the_single_checkpoint_callback_resumes(tmp_path):
    # What SearchCheckpoint (keras_nas <= 0.2's EoiNAS checkpoint) left: search_state.json naming the pair.
    import json

    model = _tiny()
    model.train_step(_batch())
    model.temperature.assign(0.3)
    model.save_weights(str(tmp_path / "search-0003.weights.h5"))
    arrays = {f"opt{i}_{j}": v.numpy() for i, opt in enumerate((model.optimizer, model.arch_optimizer))
              for j, v in enumerate(opt.variables)}
    np.savez(str(tmp_path / "optimizers-0003.npz"), **arrays)
    (tmp_path / "search_state.json").write_text(json.dumps(
        {"epochs_done": 3, "weights": "search-0003.weights.h5", "optimizers": "optimizers-0003.npz", "logs": {}}))
    fresh = _tiny()
    checkpoint = EpochCheckpoint(str(tmp_path), optimizers=("optimizer", "arch_optimizer"))
    assert checkpoint.restore(fresh) == (3, {})
    assert float(fresh.temperature.numpy()) == pytest.approx(0.3)
    for opt, restored in ((model.optimizer, fresh.optimizer), (model.arch_optimizer, fresh.arch_optimizer)):
        for v, w in zip(opt.variables, restored.variables):
            np.testing.assert_array_equal(v.numpy(), w.numpy())
    # The next epoch writes the single format and removes the old pair.
    checkpoint.set_model(fresh)
    checkpoint.on_epoch_end(3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch0004.optimizer.npz", "epoch0004.weights.h5", "search_state.json", "state.json"]


def test_errors():
    with pytest.raises(ValueError, match="`edge_mode` must be one of"):
        BilevelSearchModel(edge_mode="enas")
    with pytest.raises(ValueError, match="`cells` must be an int >= 3"):
        BilevelSearchModel(cells=2)


@pytest.mark.parametrize("lower_arch_case", [False, pytest.param(True, marks=pytest.mark.slow)])  # lowered: opt-in, ~25 s
def test_compiled_bilevel_step_updates_weights_and_alpha_either_case_form(lower_arch_case):
    model = _tiny(lower_arch_case=lower_arch_case)
    assert model.get_config()["lower_arch_case"] is lower_arch_case
    before_alpha = model.alpha_normal.numpy().copy()
    before_w = [v.numpy().copy() for v in model.weight_variables]
    logs = tf.function(model.train_step)(_batch())
    assert np.isfinite(float(logs["loss"]))
    assert not np.allclose(model.alpha_normal.numpy(), before_alpha)
    changed = sum(not np.array_equal(v.numpy(), b) for v, b in zip(model.weight_variables, before_w))
    assert changed > 0


def _one_live_op_per_edge(model):
    # Edge k keeps op k % 4 only: the sample is deterministic, and some edges
    # sample the weighted sep_conv while others leave it unsampled.
    live = np.eye(4, dtype="float32")[np.arange(5) % 4]
    model.live_normal.assign(live)
    model.live_reduce.assign(live)
    return live.argmax(axis=1)


def test_sampled_update_equals_full_update_on_sampled_ops_and_leaves_others():
    full = _tiny(grad_clip=0.01)  # a small clip norm: clipping is active
    sampled = _tiny(grad_clip=0.01, update_unsampled_ops=False)
    assert sampled.get_config()["update_unsampled_ops"] is False
    for a, b in zip(full.weight_variables, sampled.weight_variables):
        b.assign(a.numpy())
    chosen = _one_live_op_per_edge(full)
    _one_live_op_per_edge(sampled)
    x, y = _batch()[0]
    before = [v.numpy().copy() for v in sampled.weight_variables]
    for _ in range(2):  # the second step also checks the momentum buffers
        for model in (full, sampled):
            tf.function(model.weight_step)(x, y)  # compiled: the functional `Case` path
    others, edges = sampled._edge_groups(sampled.weight_variables)
    taken = set(others)
    for _, k, groups in edges:
        taken.update(groups[chosen[k]])
    moved_unsampled = 0
    for i, (a, b) in enumerate(zip(full.weight_variables, sampled.weight_variables)):
        if i in taken:
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(b.numpy(), before[i])
            moved_unsampled += not np.array_equal(a.numpy(), before[i])
    # With update_unsampled_ops=True weight decay moves the unsampled ops' weights.
    assert moved_unsampled > 0
    assert int(sampled.optimizer.iterations.numpy()) == 2


@pytest.mark.slow  # ~1 min: traces the opt-in lowered cases of both steps
def test_lowered_case_steps_equal_functional_ones():
    # Lowered `Case` ops (Switch/Merge) in both steps' forward and backward
    # passes and in the per-edge update must train exactly like the default
    # functional ones. (With the default all-weights update only the update
    # differs, and that is the same code either way.)
    functional = _tiny(update_unsampled_ops=False)
    lowered = _tiny(update_unsampled_ops=False, lower_arch_case=True, lower_weight_case=True)
    config = lowered.get_config()
    assert config["lower_weight_case"] is True and config["lower_arch_case"] is True
    for a, b in zip(functional.weights, lowered.weights):
        b.assign(a.numpy())
    _one_live_op_per_edge(functional)
    _one_live_op_per_edge(lowered)
    before = [v.numpy().copy() for v in lowered.weight_variables]
    for _ in range(2):
        batch = _batch()
        for model in (functional, lowered):
            tf.function(model.train_step)(batch)
    for a, b in zip(functional.weight_variables + functional.arch_variables,
                    lowered.weight_variables + lowered.arch_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    assert sum(not np.array_equal(v.numpy(), b) for v, b in zip(lowered.weight_variables, before)) > 0
    np.testing.assert_array_equal(lowered.op_counts.numpy(), functional.op_counts.numpy())
    # Both steps ran their own traces, lowered; the shared one was not used.
    traced = lowered._traced_forward_backward
    assert traced["all"].experimental_get_tracing_count() == 0
    assert traced["weights"].experimental_get_tracing_count() == 1
    assert traced["arch"].experimental_get_tracing_count() == 1


def test_clip_factor_matches_clip_by_global_norm():
    from keras_nas.eoinas.supernet import clip_factor

    grads = [tf.constant([3.0, 0.0]), tf.constant([[4.0]])]  # norm 5
    clipped, norm = tf.clip_by_global_norm(grads, 2.0)
    assert float(norm) == 5.0
    factor = clip_factor(tf.constant(25.0), 2.0)
    np.testing.assert_allclose(float(factor), 0.4)
    np.testing.assert_allclose(clipped[0].numpy(), grads[0].numpy() * 0.4)
    assert float(clip_factor(tf.constant(1.0), 2.0)) == 1.0


def test_update_unsampled_ops_errors():
    with pytest.raises(ValueError, match="`update_unsampled_ops=False` needs `edge_mode='gdas'`"):
        BilevelSearchModel(edge_mode="darts", update_unsampled_ops=False)
    with pytest.raises(TypeError, match="`update_unsampled_ops` must be a bool"):
        BilevelSearchModel(update_unsampled_ops="no")
    with pytest.raises(TypeError, match="`lower_weight_case` must be a bool. Received: lower_weight_case=1"):
        BilevelSearchModel(lower_weight_case=1)
    with pytest.raises(TypeError, match="`lower_arch_case` must be a bool"):
        BilevelSearchModel(lower_arch_case="yes")
    with pytest.raises(ValueError, match="`lower_arch_case=True` needs `edge_mode='gdas'`"):
        BilevelSearchModel(edge_mode="darts", lower_arch_case=True)
    import keras

    model = BilevelSearchModel(cells=3, channels=2, num_classes=3, input_shape=(4, 4, 1), steps=1, multiplier=1,
                               primitives=["skip_connect", "sep_conv_3x3"], update_unsampled_ops=False)
    with pytest.raises(ValueError, match=r"needs an optimizer without .*Received: \{'clipnorm': 1.0\}"):
        model.compile(optimizer=keras.optimizers.SGD(0.1, clipnorm=1.0))


def _noise_free_sample(alpha, live, temperature, edge_mode, training=True):
    # `architecture_weights` without the Gumbel noise: both executors sample the same ops.
    from keras_nas.eoinas.supernet import masked_logits

    probs = tf.nn.softmax(masked_logits(alpha, live) / temperature, axis=-1)
    index = tf.argmax(probs, axis=-1, output_type=tf.int32)
    hard = tf.one_hot(index, tf.shape(alpha)[-1], dtype=probs.dtype)
    return hard - tf.stop_gradient(probs) + probs, index


@pytest.mark.parametrize("update_unsampled_ops", [True, False])
def test_ops_executor_trains_exactly_like_the_one_graph_step(monkeypatch, update_unsampled_ops):
    from keras_nas.eoinas import supernet

    monkeypatch.setattr(supernet, "architecture_weights", _noise_free_sample)
    graph = _tiny(executor="graph", update_unsampled_ops=update_unsampled_ops, grad_clip=0.05)
    ops = _tiny(executor="ops", update_unsampled_ops=update_unsampled_ops, grad_clip=0.05)
    assert (graph.active_executor, ops.active_executor) == ("graph", "ops")
    rng = np.random.default_rng(0)
    for a, b in zip(graph.weights, ops.weights):
        value = a.numpy()
        if a.path.endswith(("alpha_normal", "alpha_reduce")):
            value = rng.normal(size=value.shape).astype("float32")
            a.assign(value)
        b.assign(value)
    step = tf.function(graph.train_step)
    for _ in range(2):
        batch = _batch()
        logs_graph, logs_ops = step(batch), ops.train_step(batch)
        np.testing.assert_allclose(float(logs_ops["loss"]), float(logs_graph["loss"]), rtol=1e-5)
    for a, b in zip(graph.trainable_variables, ops.trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)
    np.testing.assert_array_equal(ops.op_counts.numpy(), graph.op_counts.numpy())
    np.testing.assert_allclose(ops.op_accuracy.numpy(), graph.op_accuracy.numpy())
    assert not np.allclose(ops.alpha_normal.numpy(), rng.normal(size=(5, 4)))
    # Every op ran through a function shared by its kind and shape: far fewer traces than op calls.
    assert 0 < ops.op_functions.functions_used < 40


def test_executor_errors():
    with pytest.raises(ValueError, match="`executor` must be one of"):
        BilevelSearchModel(executor="eager")
    with pytest.raises(ValueError, match="need `executor='graph'`"):
        BilevelSearchModel(executor="ops", lower_arch_case=True)


def test_auto_executor_is_ops_alone_and_the_graph_under_a_distribution_strategy():
    config = dict(cells=3, channels=2, num_classes=3, input_shape=(4, 4, 1), steps=1, multiplier=1,
                  primitives=["skip_connect", "sep_conv_3x3"])
    alone = BilevelSearchModel(**config)
    alone.compile()
    assert alone.active_executor == "ops" and alone.run_eagerly
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        mirrored = BilevelSearchModel(**config)
        mirrored.compile()
        assert mirrored.active_executor == "graph" and not mirrored.run_eagerly
        forced = BilevelSearchModel(executor="ops", **config)
        with pytest.raises(ValueError, match="`executor='ops'` runs outside tf.distribute in float32"):
            forced.compile()
