import json
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_nas.eoinas.architecture_warmup import ArchitectureWarmup
from keras_nas.eoinas.operation_pruning import OperationPruning
from keras_nas.engine.checkpoint import EpochCheckpoint
from keras_nas.eoinas.temperature_schedule import TemperatureSchedule
from keras_nas.eoinas.operation_pruning import (
    architecture_beta, is_pruning_epoch, operation_importance, prune_step)
from keras_nas.eoinas.temperature_schedule import temperature_at


def test_importance_formula_eq7():
    alpha = np.array([[0.0, 0.0, 0.0, 0.0]])
    live = np.ones((1, 4))
    acc = np.array([[1.8, 0.9, 0.0, 0.5]])
    counts = np.array([[2.0, 3.0, 0.0, 1.0]])
    importance = operation_importance(alpha, live, acc, counts, lam=0.5)
    # beta = 1/4 each; C = C^a / C^e, 0 when never sampled.
    np.testing.assert_allclose(importance, [[0.25 + 0.45, 0.25 + 0.15, 0.25, 0.25 + 0.25]])


def test_importance_of_pruned_op_is_minus_inf_and_beta_renormalised():
    live = np.array([[1.0, 0.0, 1.0]])
    np.testing.assert_allclose(architecture_beta(np.zeros((1, 3)), live), [[0.5, 0.0, 0.5]])
    assert operation_importance(np.zeros((1, 3)), live, np.ones((1, 3)), np.ones((1, 3)))[0, 1] == -np.inf


def test_prune_step_removes_lowest_live_op_per_edge():
    scores = np.array([[0.3, 0.1, 0.5], [-np.inf, 0.2, -np.inf], [0.9, 0.8, -np.inf]])
    live = np.array([[1, 1, 1], [0, 1, 0], [1, 1, 0]], "float32")
    new_live, pruned = prune_step(scores, live)
    assert pruned == [(0, 1), (2, 1)]
    np.testing.assert_array_equal(new_live, [[1, 0, 1], [0, 1, 0], [1, 0, 0]])


def test_pruning_epochs_of_algorithm_1():
    epochs = [e for e in range(1, 161) if is_pruning_epoch(e, 20, 20)]
    assert epochs == [40, 60, 80, 100, 120, 140, 160]


class _FakeSearchModel:
    primitives = ["none", "skip_connect", "sep_conv_3x3"]
    steps = 1

    def __init__(self):
        self.alphas = {"normal": tf.Variable(tf.zeros((2, 3))), "reduce": tf.Variable(tf.zeros((2, 3)))}
        self.lives = {"normal": tf.Variable(tf.ones((2, 3))), "reduce": tf.Variable(tf.ones((2, 3)))}
        self.op_counts = tf.Variable(tf.ones((2, 2, 3)))
        # normal edge 0: skip best, none worst; edge 1: none best, skip worst.
        self.op_accuracy = tf.Variable(tf.constant([[[0.1, 0.9, 0.5], [0.8, 0.2, 0.4]],
                                                    [[0.5, 0.5, 0.1], [0.3, 0.6, 0.9]]]))


def test_pruning_callback_decides_on_fed_statistics(tmp_path):
    log = str(tmp_path / "pruning.json")
    callback = OperationPruning(warmup_epochs=1, interval=2, log_path=log)
    model = _FakeSearchModel()
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(1)  # epoch 2: not a pruning epoch
    assert float(tf.reduce_sum(model.lives["normal"])) == 6
    callback.on_epoch_end(2)  # epoch 3 = warm-up 1 + interval 2
    np.testing.assert_array_equal(model.lives["normal"].numpy(), [[0, 1, 1], [1, 0, 1]])
    np.testing.assert_array_equal(model.lives["reduce"].numpy(), [[1, 1, 0], [0, 1, 1]])
    with open(log) as f:
        decisions = json.load(f)["decisions"]
    assert len(decisions) == 4
    first = decisions[0]
    assert first["epoch"] == 3 and first["cell"] == "normal" and first["pruned"] == "none"
    assert first["edge_nodes"] == [0, 2]
    assert first["scores"]["skip_connect"] == pytest.approx(1 / 3 + 0.5 * 0.9)


def test_alpha_criterion_ignores_accuracy():
    callback = OperationPruning(warmup_epochs=0, interval=1, criterion="alpha")
    model = _FakeSearchModel()
    model.alphas["normal"].assign([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0]])
    callback.set_model(model)
    callback.on_epoch_end(0)
    np.testing.assert_array_equal(model.lives["normal"].numpy(), [[1, 0, 1], [0, 1, 1]])


def test_pruning_errors():
    with pytest.raises(ValueError, match=r"`criterion` must be one of \['importance', 'alpha'\]"):
        OperationPruning(criterion="loss")


def test_temperature_schedule_exponential_from_5():
    assert temperature_at(0, 160) == pytest.approx(5.0)
    assert temperature_at(159, 160) == pytest.approx(0.1)
    assert temperature_at(80, 161) == pytest.approx(math.sqrt(5.0 * 0.1))
    assert temperature_at(1, 3, 5.0, 1.0, "linear") == pytest.approx(3.0)


@pytest.mark.parametrize("callback", [
    TemperatureSchedule(160, tau_max=5.0, tau_min=0.2, schedule="linear"),
    OperationPruning(20, 20, criterion="alpha", importance_lambda=0.3, log_path="x.json"),
    ArchitectureWarmup(20),
    EpochCheckpoint("runs/x", optimizers=("optimizer", "arch_optimizer")),
])
def test_callback_get_config_round_trip(callback):
    config = callback.get_config()
    assert type(callback)(**config).get_config() == config


def test_warmup_flag():
    class M:
        arch_enabled = tf.Variable(1.0)

    callback = ArchitectureWarmup(2)
    callback.set_model(M())
    callback.on_epoch_begin(1)
    assert float(M.arch_enabled.numpy()) == 0.0
    callback.on_epoch_begin(2)
    assert float(M.arch_enabled.numpy()) == 1.0


def test_drop_path_schedule_ramps_linearly():
    import numpy as np

    from keras_nas.eoinas.drop_path_schedule import DropPathSchedule
    from keras_nas.eoinas import darts

    model = darts.eval_network("DARTS_V2", cells=3, channels=4, num_classes=3, input_shape=(8, 8, 1),
                               auxiliary=False, drop_path=0.3)
    callback = DropPathSchedule(10)
    callback.set_model(model)
    callback.on_epoch_begin(5)
    rates = {float(layer.current_rate.numpy()) for layer in model.layers if type(layer).__name__ == "DropPath"}
    assert len(rates) == 1 and np.isclose(rates.pop(), 0.15)
    assert DropPathSchedule(**callback.get_config()).epochs == 10
