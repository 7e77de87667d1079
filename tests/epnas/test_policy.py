import json

import numpy as np
import pytest
import tensorflow as tf

from keras_nas.epnas.policy import EPNASPolicy, reinforce_loss, returns_to_go, update_baseline
from keras_nas.epnas.space import SCALES, EPNASSpace


@pytest.fixture(scope="module")
def space():
    return EPNASSpace("layers", max_layers=6, initial_layers=(2, 4))


@pytest.fixture(scope="module")
def policy(space):
    return EPNASPolicy(space.feature_sizes(), space.max_layers, space.partitions, len(SCALES), space.action_heads(),
                       action_units=16, seed=0)


def _arch(space, seed):
    return space.random_architecture(np.random.default_rng(seed))


def test_paper_sizes_and_uniform_init(space):
    p = EPNASPolicy(space.feature_sizes(), space.max_layers, space.partitions, len(SCALES), space.action_heads())
    assert p.model.get_layer("network_lstm").cell.units == 32
    assert p.model.get_layer("scale_lstm").cell.units == 128
    assert p.model.get_layer("insert_lstm").cell.units == 128
    assert p.optimizer.learning_rate.numpy() == pytest.approx(6e-4)
    weights = np.concatenate([w.ravel() for w in p.model.get_weights()])
    assert weights.min() >= -0.1 and weights.max() <= 0.1 and weights.std() > 0.05


def test_sampling_is_seeded_and_respects_masks(space, policy):
    arch = _arch(space, 0)
    feats, masks = space.features(arch), space.action_masks(arch)
    a1, lp1 = policy.sample(feats, masks, seed=(0, 5))
    a2, lp2 = policy.sample(feats, masks, seed=(0, 5))
    assert a1 == a2 and lp1 == lp2 and lp1 < 0
    assert len(a1["scale"]) == space.partitions
    _, heads = policy.distributions([feats], [masks])
    place = heads[[n for n, _ in policy.heads].index("place")].probs_parameter().numpy()[0]
    assert place[len(arch) + 5:].sum() == pytest.approx(0.0, abs=1e-6)
    assert place[: len(arch) + 5].sum() == pytest.approx(1.0, abs=1e-5)
    for s in range(20):
        action, _ = policy.sample(feats, masks, seed=(1, s))
        assert action["insert"]["place"] < len(arch) + 5
        space.apply_action(arch, action)


def test_log_prob_sums_the_decisions_that_shaped_the_network(space, policy):
    arch = _arch(space, 1)
    feats, masks = space.features(arch), space.action_masks(arch)
    scale, heads = policy.distributions([feats], [masks])
    names = [n for n, _ in policy.heads]
    base = {n: 0 for n in names}
    keep = {"scale": [1, 0, 2, 0], "insert": dict(base, kind=0)}
    remove = {"scale": [1, 0, 2, 0], "insert": dict(base, kind=2, place=1)}
    insert = {"scale": [1, 0, 2, 0], "insert": dict(base, kind=1, place=1, type=2)}
    s = float(tf.reduce_sum(scale.log_prob([[1, 0, 2, 0]])))
    per_head = {n: float(d.log_prob([insert["insert"][n]])[0]) for n, d in zip(names, heads)}
    got = policy.log_prob([feats] * 3, [masks] * 3, [keep, remove, insert]).numpy()
    np.testing.assert_allclose(got[0], s + float(heads[0].log_prob([0])[0]), rtol=1e-5)
    np.testing.assert_allclose(got[1], s + float(heads[0].log_prob([2])[0]) + per_head["place"], rtol=1e-5)
    np.testing.assert_allclose(got[2], s + sum(per_head.values()), rtol=1e-5)


def test_returns_and_baseline_by_hand():
    rewards = [[0.5, 0.2, 0.1], [0.3, 0.0, 0.4]]
    np.testing.assert_allclose(returns_to_go(rewards), [[0.8, 0.3, 0.1], [0.7, 0.4, 0.4]])
    assert update_baseline(None, returns_to_go(rewards)) == pytest.approx([0.75, 0.35, 0.25])
    assert update_baseline([1.0, 0.0, 0.0], returns_to_go(rewards), decay=0.5) == pytest.approx([0.875, 0.175, 0.125])


def test_reinforce_gradient_on_a_hand_made_episode(space):
    """g = 1/N sum_n sum_t grad log pi(a_tn | X_tn) (R_tn - b_t) (section 3.1), checked term by term."""
    policy = EPNASPolicy(space.feature_sizes(), space.max_layers, space.partitions, len(SCALES),
                         space.action_heads(), action_units=16, seed=3)
    archs = [_arch(space, s) for s in range(4)]  # N = 2 branches x T = 2 steps
    feats = [space.features(a) for a in archs]
    masks = [space.action_masks(a) for a in archs]
    actions = [policy.sample(f, m, seed=(2, i))[0] for i, (f, m) in enumerate(zip(feats, masks))]
    rewards = np.array([[0.6, 0.9], [0.2, 0.1]])
    returns = returns_to_go(rewards)  # [[1.5, 0.9], [0.3, 0.1]]
    baseline = np.array([0.5, 0.4])
    advantages = (returns - baseline).reshape(-1)  # [1.0, 0.5, -0.2, -0.3]
    np.testing.assert_allclose(advantages, [1.0, 0.5, -0.2, -0.3])
    variables = policy.model.trainable_variables
    with tf.GradientTape() as tape:
        loss = reinforce_loss(policy.log_prob(feats, masks, actions), tf.constant(advantages, tf.float32), 2)
    grads = tape.gradient(loss, variables)
    expected = [np.zeros(v.shape, np.float32) for v in variables]
    for i in range(4):
        with tf.GradientTape() as tape:
            lp = policy.log_prob([feats[i]], [masks[i]], [actions[i]])[0]
        for k, g in enumerate(tape.gradient(lp, variables)):
            if g is not None:
                expected[k] -= advantages[i] / 2 * tf.convert_to_tensor(g).numpy()
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(tf.convert_to_tensor(g).numpy() if g is not None else 0 * e, e, atol=1e-6)
    # One step raises the log-probability of the best (positive-advantage) action.
    before = float(policy.log_prob([feats[0]], [masks[0]], [actions[0]])[0])
    for _ in range(5):
        policy.reinforce_step(feats, masks, actions, advantages, num_branches=2)
    assert float(policy.log_prob([feats[0]], [masks[0]], [actions[0]])[0]) > before


def test_state_round_trip_is_json_safe(space, policy):
    arch = _arch(space, 2)
    feats, masks = space.features(arch), space.action_masks(arch)
    action, _ = policy.sample(feats, masks, seed=(0, 1))
    policy.reinforce_step([feats], [masks], [action], [1.0], 1)
    state = json.loads(json.dumps(policy.get_state()))
    other = EPNASPolicy(space.feature_sizes(), space.max_layers, space.partitions, len(SCALES), space.action_heads(),
                        action_units=16, seed=9)
    other.set_state(state)
    assert float(other.log_prob([feats], [masks], [action])[0]) == pytest.approx(
        float(policy.log_prob([feats], [masks], [action])[0]), abs=1e-6)
    assert int(other.optimizer.iterations.numpy()) == int(policy.optimizer.iterations.numpy())
    wrong = EPNASPolicy(space.feature_sizes(), space.max_layers, space.partitions, len(SCALES), space.action_heads(),
                        action_units=8)
    with pytest.raises(ValueError, match="The saved policy has the settings"):
        wrong.set_state(state)
