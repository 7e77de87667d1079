"""EPNASTuner: SGDR, one tiny search end to end in-process, resume without retraining."""

import json
import os

import pytest

from keras_nas import data
from keras_nas.epnas.oracle import EPNASOracle
from keras_nas.epnas.space import EPNASSpace
from keras_nas.epnas.tuner import EPNASTuner
from keras_nas.training import sgdr_learning_rate
from keras_nas.epnas.tuner import SUMMARY


def test_sgdr_schedule():
    # T_0 = 10, T_mult = 2: restarts at epochs 10 and 30 (section 4.1).
    assert sgdr_learning_rate(0) == pytest.approx(0.05)
    assert sgdr_learning_rate(5) == pytest.approx(0.001 + 0.5 * 0.049)
    assert sgdr_learning_rate(10) == pytest.approx(0.05)
    assert sgdr_learning_rate(20) == pytest.approx(0.001 + 0.5 * 0.049)
    assert sgdr_learning_rate(30) == pytest.approx(0.05)
    assert sgdr_learning_rate(9) < sgdr_learning_rate(8)


def _search(tmp_path, prediction=False, shared_lr_scale=0.2, **tuner_kwargs):
    dataset = data.load("synthetic", input_shape=(8, 8, 1), num_classes=3, num_examples=96, batch_size=16)
    space = EPNASSpace("layers", max_layers=4, initial_layers=(2, 3), channels=(16, 32))
    sharing = str(tmp_path / "shared") if prediction else None
    oracle = EPNASOracle(space, constraints=["params<=2000"], episodes=1, branches=2, steps=2, top_k=1,
                         action_units=16, sharing_dir=sharing, seed=0)
    tuner = EPNASTuner(oracle, space, dataset.input_shape, dataset.num_classes, epochs=1, prediction=prediction,
                       prediction_epochs=1, batch_scale=2, lr_scale=2, sharing_dir=sharing,
                       shared_lr_scale=shared_lr_scale, directory=str(tmp_path), project_name="trials",
                       **tuner_kwargs)
    tuner.search(dataset.train, validation_data=dataset.validation, verbose=0)
    return oracle, tuner


def test_search_rewards_children_and_resumes_without_retraining(tmp_path):
    # The shared start is shrunk and perturbed (shared_shrink/shared_noise) in this search.
    shrink = {"shared_shrink": 0.5, "shared_noise": 0.01}
    oracle, tuner = _search(tmp_path, prediction=True, **shrink)
    assert sorted(t.status for t in oracle.trials.values()) == ["COMPLETED"] * 4
    assert len(oracle.history) == 1
    trial = oracle.trials["0"]
    summary = json.load(open(os.path.join(tuner.get_trial_dir("0"), SUMMARY)))
    metrics = summary["metrics"]
    assert metrics["reward"] == pytest.approx(metrics["val_accuracy"] * summary["penalties"]["params"])
    assert trial.score == pytest.approx(metrics["reward"])
    assert {"params", "flops", "compute_intensity", "macs", "memory_mb"} <= set(metrics)
    # Step-1 children start from the dictionary of step 0.
    fractions = {t: oracle.trials[t].metrics.get_last_value("shared_fraction") for t in oracle.trials}
    assert max(fractions[t] for t in ("2", "3")) > 0, (fractions, {k: c["architecture"] for k, c in oracle.children.items()})
    assert os.path.exists(tmp_path / "shared" / "store.json")
    # Layers read from the dictionary train at shared_lr_scale (0.2) x the rate, the others at the full rate;
    # a step-0 child found the dictionary empty and trains with plain SGD.
    import keras

    first = keras.saving.load_model(os.path.join(tuner.get_trial_dir("0"), "model.keras"))
    assert type(first.optimizer) is keras.optimizers.SGD
    shared_trial = max(("2", "3"), key=lambda t: fractions[t])
    child = keras.saving.load_model(os.path.join(tuner.get_trial_dir(shared_trial), "model.keras"))
    multipliers = child.optimizer.learning_rate_multipliers
    assert set(multipliers.values()) == {0.2}
    trained = {v.path for v in child.trainable_weights}
    assert set(multipliers) <= trained
    shared_size = sum(v.numpy().size for v in child.trainable_weights if v.path in multipliers)
    all_size = sum(v.numpy().size for v in child.trainable_weights)
    assert 0 < shared_size < all_size
    assert not any(path.startswith("predictions/") for path in multipliers)  # classifier: full rate
    mtimes = {t: os.path.getmtime(os.path.join(tuner.get_trial_dir(t), SUMMARY)) for t in oracle.trials}
    # Running the same search again trains nothing.
    again, again_tuner = _search(tmp_path, prediction=True, **shrink)
    assert {t: os.path.getmtime(os.path.join(again_tuner.get_trial_dir(t), SUMMARY)) for t in again.trials} == mtimes
    assert again.history == json.loads(json.dumps(oracle.history))
    # A trial whose summary exists (killed before the oracle heard of it) returns it without data.
    saved = again_tuner.run_trial(again.trials["1"], None)
    assert saved["reward"] == pytest.approx(again.trials["1"].metrics.get_last_value("reward"))


def test_tuner_arguments():
    with pytest.raises(ValueError, match="`epochs` must be a positive int. Received: epochs=0"):
        EPNASTuner(None, EPNASSpace(), (8, 8, 1), 10, epochs=0)
    with pytest.raises(ValueError, match="`shared_lr_scale` must be a positive number. Received: shared_lr_scale=0"):
        EPNASTuner(None, EPNASSpace(), (8, 8, 1), 10, shared_lr_scale=0)
    for value in (0, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match=r"`shared_shrink` must be a number in \(0, 1\]. Received: shared_shrink="):
            EPNASTuner(None, EPNASSpace(), (8, 8, 1), 10, shared_shrink=value)
    with pytest.raises(ValueError, match="`shared_noise` must be a number >= 0. Received: shared_noise=-0.1"):
        EPNASTuner(None, EPNASSpace(), (8, 8, 1), 10, shared_noise=-0.1)
    with pytest.raises(ValueError, match="`prediction_decay_epochs` must be a positive int. Received: "
                                         "prediction_decay_epochs=0"):
        EPNASTuner(None, EPNASSpace(), (8, 8, 1), 10, prediction_decay_epochs=0)


def test_prediction_decay_epochs_end_the_decay_early(tmp_path):
    from keras_nas.epnas.random_oracle import RandomArchitectureOracle

    space = EPNASSpace("layers", max_layers=4, channels=(16, 32))
    oracle = RandomArchitectureOracle(space, max_trials=1)
    tuner = EPNASTuner(oracle, space, (8, 8, 1), 3, prediction=True, prediction_epochs=10, lr_scale=10,
                       prediction_decay_epochs=5, directory=str(tmp_path), project_name="t")
    epochs, schedule = tuner._schedule()
    # 0.5 -> 0.001 geometrically over epochs 0..4, then l_min until the 10th epoch.
    assert epochs == 10
    assert schedule(0) == pytest.approx(0.5)
    assert schedule(2) == pytest.approx(0.5 * (0.001 / 0.5) ** 0.5)
    assert schedule(4) == pytest.approx(0.001)
    assert schedule(9) == pytest.approx(0.001)
    # A one-epoch or cosine decay ends at l_min too, it does not restart.
    tuner.prediction_decay_epochs = 1
    assert [tuner._schedule()[1](e) for e in (0, 1, 9)] == pytest.approx([0.5, 0.001, 0.001])
    tuner.prediction_decay, tuner.prediction_decay_epochs = "cosine", 3
    assert tuner._schedule()[1](0) == pytest.approx(0.5) and tuner._schedule()[1](3) == pytest.approx(0.001)
    assert tuner._schedule()[1](7) == pytest.approx(0.001)
    tuner.prediction_decay, tuner.prediction_decay_epochs = "exponential", None
    assert tuner._schedule()[1](4) == pytest.approx(0.5 * (0.001 / 0.5) ** (4 / 9))


def test_shrink_perturb_moves_only_the_shared_trainable_weights():
    import numpy as np

    from keras_nas.epnas.prediction import shrink_perturb, shrink_perturb_layers

    assert shrink_perturb(np.array([2.0, -4.0]), np.array([1.0, 10.0]), 0.5, 0.01) == pytest.approx([1.01, -1.9])
    space = EPNASSpace("layers", max_layers=4, channels=(16, 32))
    arch = [{"type": "conv2d", "filter_width": 3, "pool_width": 2, "channels": 16, "activation": "relu", "src1": i,
             "src2": -1} for i in range(2)]
    model = space.build(arch, (8, 8, 1), 3)
    fresh = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    shared = {name: [w + 1.0 for w in weights] for name, weights in fresh.items()}  # "read from the dictionary"
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(shared[layer.name])
    changed = shrink_perturb_layers(model, fresh, ["L0_conv2d", "predictions"], 0.5, 0.1)
    layers = {layer.name: layer for layer in model.layers}
    assert changed == 3  # L0's conv and batch norm, the classifier
    kernel, = layers["L0_conv2d__conv"].get_weights()[:1]
    np.testing.assert_allclose(kernel, 0.5 * shared["L0_conv2d__conv"][0] + 0.1 * fresh["L0_conv2d__conv"][0],
                               rtol=1e-6)
    gamma, beta, mean, var = layers["L0_conv2d__bn"].get_weights()
    np.testing.assert_allclose(gamma, 0.5 * 2.0 + 0.1 * 1.0, rtol=1e-6)  # fresh gamma 1, shared 2
    np.testing.assert_allclose(mean, shared["L0_conv2d__bn"][2])  # statistics stay as read
    np.testing.assert_allclose(var, shared["L0_conv2d__bn"][3])
    for name in ("L1_conv2d__conv", "L1_conv2d__bn"):  # not read from the dictionary: untouched
        for got, want in zip(layers[name].get_weights(), shared[name]):
            np.testing.assert_allclose(got, want)


def test_shared_multipliers_name_the_variables_of_the_shared_layers():
    from keras_nas.epnas.prediction import shared_multipliers

    space = EPNASSpace("layers", max_layers=4, channels=(16, 32))

    def element(kind, i):
        return {"type": kind, "filter_width": 3, "pool_width": 2, "channels": 16, "activation": "relu", "src1": i,
                "src2": -1}

    parent_arch = [element(t, i) for i, t in enumerate(("conv2d", "MaxPool2d", "conv2d"))]
    parent = space.build(parent_arch, (8, 8, 1), 3)

    def paths(model, *keys):
        return {v.path for layer in model.layers if layer.name.split("__")[0] in keys for v in layer.trainable_weights}

    # The classifier keeps the full rate even when it was read from the dictionary.
    multipliers = shared_multipliers(parent, ["L0_conv2d", "L2_conv2d", "predictions"], 0.2)
    assert set(multipliers) == paths(parent, "L0_conv2d", "L2_conv2d") and set(multipliers.values()) == {0.2}
    assert shared_multipliers(parent, [], 0.2) == {}
    # The pooling removed: the last conv (parent position 2) now sees 8x8 inputs instead of 4x4 and relearns
    # at the full rate; the first conv's input is unchanged.
    child_arch = space.apply_action(parent_arch, {"scale": [0] * space.partitions,
                                                  "insert": {"kind": 2, "place": 1}})
    assert [e["type"] for e in child_arch] == ["conv2d", "conv2d"]
    child = space.build(child_arch, (8, 8, 1), 3)
    key_map = space.sharing_key_map(child_arch, [0, 2])
    assert key_map == {"L0_conv2d": "L0_conv2d", "L1_conv2d": "L2_conv2d"}
    multipliers = shared_multipliers(child, ["L0_conv2d", "L1_conv2d"], 0.2, parent, key_map)
    assert set(multipliers) == paths(child, "L0_conv2d")
    # A conv inserted with fresh weights: the layers behind it read another input and keep the full rate,
    # the ones before it the reduced rate.
    action = {"scale": [0] * space.partitions, "insert": {"kind": 1, "type": 0, "filter_width": 1, "pool_width": 0,
                                                          "channels": 0, "activation": 0, "place": 1, "skip": 0}}
    inserted_arch = space.apply_action(parent_arch, action)
    positions = space.parent_positions(parent_arch, action)
    assert [e["type"] for e in inserted_arch] == ["conv2d", "conv2d", "MaxPool2d", "conv2d"]
    assert positions == [0, None, 1, 2]
    inserted = space.build(inserted_arch, (8, 8, 1), 3)
    key_map = space.sharing_key_map(inserted_arch, positions)
    multipliers = shared_multipliers(inserted, ["L0_conv2d", "L3_conv2d"], 0.2, parent, key_map)
    assert set(multipliers) == paths(inserted, "L0_conv2d")
    # Scaled layers (channels padded) and the layers behind them start from what the parent computed.
    scaled_arch = [dict(e) for e in parent_arch]
    scaled_arch[0]["channels"] = 32
    scaled = space.build(scaled_arch, (8, 8, 1), 3)
    multipliers = shared_multipliers(scaled, ["L0_conv2d", "L2_conv2d"], 0.2, parent, {})
    assert set(multipliers) == paths(scaled, "L0_conv2d", "L2_conv2d")
    # A skip connection added to the last conv: its conv and batch norm still read the pooling as before,
    # the new strided projection of the skip (not in the parent) trains at the full rate.
    skipped_arch = [dict(e) for e in parent_arch]
    skipped_arch[2]["src2"] = 1
    skipped = space.build(skipped_arch, (8, 8, 1), 3)
    multipliers = shared_multipliers(skipped, ["L0_conv2d", "L2_conv2d"], 0.2, parent, {})
    assert "L2_conv2d__skip/kernel" in {v.path for v in skipped.trainable_weights}
    assert set(multipliers) == paths(skipped, "L0_conv2d") | {
        v.path for name in ("L2_conv2d__conv", "L2_conv2d__bn") for v in skipped.get_layer(name).trainable_weights}


def test_sharing_keys_follow_the_parent_positions(tmp_path):
    space = EPNASSpace("layers", max_layers=4, initial_layers=(2, 3), channels=(16, 32))
    oracle = EPNASOracle(space, episodes=1, branches=1, steps=1, action_units=16, seed=0)
    kwargs = dict(directory=str(tmp_path), project_name="trials")
    with pytest.raises(ValueError, match="`sharing_keys` must be one of"):
        EPNASTuner(oracle, space, (8, 8, 1), 3, sharing_keys="layer", **kwargs)
    with pytest.raises(ValueError, match="`prediction_decay` must be one of"):
        EPNASTuner(oracle, space, (8, 8, 1), 3, prediction_decay="step", **kwargs)
    arch = [{"type": t, "filter_width": 3, "pool_width": 2, "channels": 16, "activation": "relu", "src1": i,
             "src2": -1} for i, t in enumerate(("conv2d", "conv2d", "MaxPool2d"))]
    values = {"parent_positions": json.dumps([0, -1, 1])}
    tuner = EPNASTuner(oracle, space, (8, 8, 1), 3, **kwargs)
    assert tuner.sharing_key_map(values, arch) == {"L0_conv2d": "L0_conv2d", "L1_conv2d": None,
                                                   "L2_MaxPool2d": "L1_MaxPool2d"}
    assert tuner.sharing_key_map({}, arch) is None  # no parent known (random baseline): own positions
    literal = EPNASTuner(oracle, space, (8, 8, 1), 3, sharing_keys="position", overwrite=True, **kwargs)
    assert literal.sharing_key_map(values, arch) is None


def test_prediction_learning_rate_decays_aggressively():
    from keras_nas.epnas.prediction import prediction_learning_rate

    # Paper (section 4.1): LR 0.5 with prediction, 10 epochs; l_min 0.001.
    exponential = [prediction_learning_rate(e, 0.5, 0.001, 10) for e in range(12)]
    assert exponential[0] == pytest.approx(0.5) and exponential[9] == pytest.approx(0.001)
    assert exponential[1] == pytest.approx(0.5 * 0.002 ** (1 / 9))  # ~0.25: halved after one epoch
    assert exponential[10] == exponential[11] == pytest.approx(0.001)  # stays at l_min past the end
    assert all(a > b for a, b in zip(exponential[:9], exponential[1:10]))
    cosine = [prediction_learning_rate(e, 0.5, 0.001, 10, "cosine") for e in range(10)]
    assert cosine == pytest.approx([sgdr_learning_rate(e, 0.5, 0.001, 10, 1) for e in range(10)])
    assert all(x < c for x, c in zip(exponential[1:9], cosine[1:9]))  # front-loaded
    # A one-epoch decay: the scaled-up rate for epoch 0 (a one-epoch run), l_min after it.
    assert prediction_learning_rate(0, 0.5, 0.001, 1) == 0.5
    assert prediction_learning_rate(3, 0.5, 0.001, 1) == 0.001
    assert prediction_learning_rate(12, 0.5, 0.001, 10, "cosine") == 0.001  # no restart past the end
    with pytest.raises(ValueError, match="`decay` must be one of"):
        prediction_learning_rate(0, 0.5, 0.001, 10, "step")
