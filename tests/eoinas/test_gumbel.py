import numpy as np
import pytest
import tensorflow as tf

from keras_nas.eoinas.gumbel_edge import GumbelEdge
from keras_nas.eoinas.supernet import architecture_weights


def test_gdas_samples_follow_softmax_alpha():
    alpha = tf.constant([[2.0, 1.0, 0.0, -1.0]])
    live = tf.ones_like(alpha)
    n = 4000
    indices = [int(architecture_weights(alpha, live, 1.0, "gdas")[1][0]) for _ in range(n)]
    freq = np.bincount(indices, minlength=4) / n
    expected = tf.nn.softmax(alpha[0]).numpy()
    np.testing.assert_allclose(freq, expected, atol=0.03)


def test_pruned_ops_are_never_sampled():
    alpha = tf.zeros((3, 4))
    live = tf.constant([[1.0, 0.0, 1.0, 0.0]] * 3)
    for mode in ("gdas", "gumbel_soft", "darts"):
        for _ in range(50):
            weights, index = architecture_weights(alpha, live, 5.0, mode)
            assert set(index.numpy()) <= {0, 2}
            assert float(tf.reduce_max(tf.abs(tf.gather(weights, [1, 3], axis=1)))) == 0.0


def test_gdas_weights_are_one_hot_forward():
    weights, index = architecture_weights(tf.zeros((5, 8)), tf.ones((5, 8)), 1.0, "gdas")
    np.testing.assert_allclose(weights.numpy(), tf.one_hot(index, 8).numpy(), atol=1e-6)


def test_darts_weights_are_softmax():
    alpha = tf.constant([[0.0, np.log(3.0)]])
    weights, _ = architecture_weights(alpha, tf.ones_like(alpha), 1.0, "darts")
    np.testing.assert_allclose(weights.numpy(), [[0.25, 0.75]], atol=1e-6)


def _edge_gradients(edge, alpha, index, compiled):
    x = tf.random.normal((2, 6, 6, 4))

    def step():
        with tf.GradientTape() as tape:
            p = tf.nn.softmax(alpha)
            h = tf.one_hot(index, 8) - tf.stop_gradient(p) + p
            loss = tf.reduce_sum(edge(x, h, index, training=True) ** 2)
        return tape.gradient(loss, [alpha] + edge.trainable_variables)

    return (tf.function(step) if compiled else step)()


@pytest.mark.parametrize("compiled", [False, True])
def test_only_sampled_op_weights_get_gradients_but_every_alpha_does(compiled):
    edge = GumbelEdge(4, edge_mode="gdas")
    edge.build((None, 6, 6, 4))
    alpha = tf.Variable(tf.zeros(8))
    sampled = edge.primitives.index("sep_conv_3x3")
    grads = _edge_gradients(edge, alpha, tf.constant(sampled), compiled)
    assert np.all(np.abs(grads[0].numpy()) > 0)
    for var, grad in zip(edge.trainable_variables, grads[1:]):
        norm = 0.0 if grad is None else float(tf.reduce_sum(tf.abs(grad)))
        if "/sep_conv_3x3/" in var.path and "/bn" not in var.path:
            assert norm > 0, var.path
        elif "/sep_conv_3x3/" not in var.path:
            assert norm == 0.0, var.path


def test_darts_mode_gives_every_op_gradients():
    edge = GumbelEdge(4, edge_mode="darts")
    x = tf.random.normal((2, 6, 6, 4))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(edge(x, tf.fill((8,), 1 / 8), tf.constant(0), training=True) ** 2)
    grads = tape.gradient(loss, edge.trainable_variables)
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_bad_edge_mode():
    with pytest.raises(ValueError, match=r"`edge_mode` must be one of \['gdas', 'darts', 'gumbel_soft'\]"):
        GumbelEdge(4, edge_mode="snas")


@pytest.mark.parametrize("index", [0, 3])
def test_straight_through_gradient_equals_the_gdas_expression(index):
    from keras_nas.eoinas.gumbel_edge import straight_through

    chosen = tf.random.normal((2, 3, 3, 4), seed=1)
    alpha = tf.Variable(tf.random.normal((5,), seed=2))
    upstream = tf.random.normal((2, 3, 3, 4), seed=3)

    def h():
        p = tf.nn.softmax(alpha)
        return tf.one_hot(index, 5) - tf.stop_gradient(p) + p

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(chosen)
        weights = h()
        ours = straight_through(chosen, weights, tf.constant(index))
        gdas = chosen * weights[index] + (tf.reduce_sum(weights) - weights[index])
        loss_ours, loss_gdas = tf.reduce_sum(ours * upstream), tf.reduce_sum(gdas * upstream)
    np.testing.assert_allclose(ours.numpy(), gdas.numpy(), atol=1e-6)
    for a, b in zip(tape.gradient(loss_ours, [chosen, alpha]), tape.gradient(loss_gdas, [chosen, alpha])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # by hand: d/dh[index] = sum(g * chosen), every other entry sum(g)
    d_h = tape.gradient(loss_ours, weights)
    expected = np.full(5, upstream.numpy().sum())
    expected[index] = (upstream.numpy() * chosen.numpy()).sum()
    np.testing.assert_allclose(d_h.numpy(), expected, rtol=1e-5)
