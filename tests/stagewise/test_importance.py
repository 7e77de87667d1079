"""Importance criteria (PLS-VIP, inf-FS, il-FS) against hand-computed values, and stage importance."""

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

from keras_nas import data
from keras_nas.stagewise.infinite_latent_fs import il_fs
from keras_nas.stagewise.infinite_fs import inf_fs
from keras_nas.stagewise.vip import pls_vip
from keras_nas.stagewise.importance import stage_importance
from keras_nas.stagewise.infinite_latent_fs import class_distance_ratio, plsa_relevance, token_histogram
from keras_nas.stagewise.infinite_fs import inf_fs_graph, path_energy, spearman_matrix
from keras_nas.stagewise.vip import vip_scores
from keras_nas.stagewise.importance import collect_stage_features, stage_taps
from keras_nas.stagewise.nasnet import stage_nasnet
from keras_nas.stagewise.resnet import stage_resnet


def test_vip_scores_hand_computed():
    # SS = (t't)(q'q) = [1, 4]; W = I, so VIP_j = sqrt(2 SS_j / 5).
    t = np.array([[1.0, 0.0], [0.0, 2.0]])
    w = np.eye(2)
    q = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(vip_scores(t, w, q), [np.sqrt(2 / 5), np.sqrt(8 / 5)])


def test_pls_vip_finds_the_label_feature_and_squares_average_to_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = (X[:, 1] > 0).astype(int) + 2 * (X[:, 1] > 1).astype(int)
    scores = pls_vip(X, y, n_components=2)
    assert int(np.argmax(scores)) == 1
    np.testing.assert_allclose(np.mean(scores**2), 1.0)


def test_spearman_matrix_hand_computed():
    X = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    # ranks (1,2,3) and (2,1,3): centred dot 1, norms sqrt(2) -> 0.5
    np.testing.assert_allclose(spearman_matrix(X)[0, 1], 0.5)
    rng = np.random.default_rng(1).normal(size=(20, 3))
    np.testing.assert_allclose(spearman_matrix(rng), spearmanr(rng).statistic)


def test_inf_fs_graph_hand_computed():
    X = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [3.0, 3.0, 0.0]])
    # 1 - |spearman| (constant column -> 1), sigma = max(std) normalised.
    expected = 0.5 * np.array([[0, 0.5, 1], [0.5, 0, 1], [1, 1, 1]]) + 0.5 * np.array(
        [[1, 1, 1], [1, 1, 1], [1, 1, 0]]
    )
    np.testing.assert_allclose(inf_fs_graph(X, alpha=0.5), expected)


def test_path_energy_hand_computed_2x2():
    # (I - 0.5 A)^-1 - I = [[1/3, 2/3], [2/3, 1/3]]: every row sums to 1.
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(path_energy(A, factor=0.5), [1.0, 1.0])


def test_path_energy_equals_the_power_series():
    A = np.array([[0.2, 0.5, 0.1], [0.5, 0.3, 0.4], [0.1, 0.4, 0.6]])
    r = 0.9 / np.max(np.abs(np.linalg.eigvals(A)))
    series = sum(np.linalg.matrix_power(r * A, l) for l in range(1, 400))
    np.testing.assert_allclose(path_energy(A, factor=0.9), series.sum(axis=1), rtol=1e-6)


def test_inf_fs_scores_one_per_feature():
    X = np.random.default_rng(0).normal(size=(30, 4))
    assert inf_fs(X).shape == (4,)


def test_token_histogram_is_matlab_histc():
    values = np.array([[0.0, 3.0], [0.1, 3.0], [0.5, 3.0], [0.99, 3.0], [1.0, 3.0]])
    counts = token_histogram(values, 3)  # edges 0, 0.5, 1; last bin only == max
    np.testing.assert_array_equal(counts[:, 0], [2, 2, 1])
    np.testing.assert_array_equal(counts[:, 1], [0, 0, 5])


def test_class_distance_ratio_hand_computed():
    X = np.array([[0.0], [2.0], [10.0]])
    ratio = class_distance_ratio(X, np.array([0, 0, 1]))  # class means 1 and 10
    np.testing.assert_allclose(ratio[:, 0], [1 / 101, 1 / 65, 0.0])


def test_plsa_relevance_separates_low_and_high_token_features():
    counts = np.array([[10.0, 0.0], [0.0, 0.0], [0.0, 10.0]])
    relevance = plsa_relevance(counts, prior=np.array([100.0, 0.0]))
    assert relevance[0] > 0.9 and relevance[1] < 0.1


def test_rank_one_graph_energy_closed_form():
    # G = v v': S = f / (1 - f) v v' / |v|^2, row sums f/(1-f) v_i sum(v) / |v|^2.
    v = np.array([0.2, 0.5, 0.9])
    expected = 0.99 / 0.01 * v * v.sum() / (v @ v)
    np.testing.assert_allclose(path_energy(np.outer(v, v), factor=0.99), expected, rtol=1e-6)


def test_il_fs_prefers_the_discriminative_feature():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    X = np.stack([y * 3.0 + rng.normal(scale=0.3, size=90), rng.normal(size=90)], axis=1)
    scores = il_fs(X, y)
    assert scores[0] > scores[1]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: pls_vip(np.ones((5,)), np.zeros(5)), "`X` must be a 2-D"),
        (lambda: pls_vip(np.ones((4, 2)), np.zeros(3)), "`y` must be a 1-D array of 4"),
        (lambda: pls_vip(np.ones((4, 2)), np.zeros(4), n_components=0), "`n_components` must be a positive int"),
        (lambda: inf_fs(np.ones((4, 2)), alpha=1.5), r"`alpha` must be in \[0.0, 1.0\]"),
        (lambda: il_fs(np.ones((4, 2)), np.zeros(4)), "at least 2 classes"),
        (lambda: il_fs(np.ones((4, 2)), np.array([0, 1, 0, 1]), tokens=1), "`tokens` must be an int >= 2"),
    ],
)
def test_criteria_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _tiny():
    ds = data.load("synthetic", input_shape=(8, 8, 1), num_classes=3, num_examples=48, batch_size=4)
    model = stage_resnet((1, 2, 1), input_shape=(8, 8, 1), num_classes=3)
    return ds, model


def test_stage_taps_are_the_last_residual_sums():
    _, model = _tiny()
    assert stage_taps(model) == ["stage0_block0_add", "stage1_block1_add", "stage2_block0_add"]
    cells = stage_nasnet((1, 2, 1), filters=4, input_shape=(8, 8, 1), num_classes=3)
    assert stage_taps(cells) == ["stage0_cell0_out", "stage1_cell1_out", "stage2_cell0_out"]


def test_features_are_pooled_and_read_batch_by_batch_up_to_the_budget():
    ds, model = _tiny()
    features, labels = collect_stage_features(model, ds.train, samples=10, pool_size=4)
    # stage maps 8x8x16, 4x4x32, 2x2x64 -> pooled 2x2x16, 1x1x32, 1x1x64 (window clipped)
    assert [f.shape for f in features] == [(10, 64), (10, 32), (10, 64)]
    assert labels.shape == (10,)


@pytest.mark.parametrize("criterion", ["pls", "inffs", "ilfs"])
def test_stage_importance_one_score_per_stage(criterion):
    ds, model = _tiny()
    scores = stage_importance(model, ds.train, criterion=criterion, samples=24)
    assert len(scores) == 3 and all(np.isfinite(scores))


def test_stage_importance_bad_input():
    ds, model = _tiny()
    with pytest.raises(ValueError, match=r"`criterion` must be one of \['pls', 'inffs', 'ilfs'\]. Received: criterion='vip'"):
        stage_importance(model, ds.train, criterion="vip")
    with pytest.raises(ValueError, match="`samples` must be an int >= 2 or None"):
        stage_importance(model, ds.train, samples=1)
    plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="must be built by `keras_nas.stagewise.resnet`"):
        stage_importance(plain, ds.train)
