"""Infinite Feature Selection (Roffo, Melzi & Cristani, ICCV 2015)."""

import numpy as np

from keras_nas.stagewise.vip import _check_matrix


def _check_fraction(name, value, low=0.0, high=1.0, open_high=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
    if ok and open_high and value >= high:
        ok = False
    if not ok:
        bracket = ")" if open_high else "]"
        raise ValueError(f"`{name}` must be in [{low}, {high}{bracket}. Received: {name}={value!r}")


def spearman_matrix(X):
    """Spearman rank correlation between the columns of `X` (NaN for constant ones)."""
    from scipy.stats import rankdata

    ranks = rankdata(X, axis=0)
    ranks = ranks - ranks.mean(axis=0)
    norms = np.sqrt((ranks * ranks).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ranks.T @ ranks) / np.outer(norms, norms)


def inf_fs_graph(X, alpha=0.5):
    """Adjacency matrix of the inf-FS feature graph.

    `a_ij = alpha * (1 - |spearman(x_i, x_j)|) + (1 - alpha) * sigma_ij`, with
    `sigma_ij = max(std_i, std_j)` min-max normalised over the matrix
    (Roffo et al.'s toolbox, unsupervised variant; NaN correlations of
    constant features count as 0, so their edge weight is 1).
    """
    X = np.asarray(X, dtype=np.float64)
    corr = np.nan_to_num(spearman_matrix(X), nan=0.0, posinf=0.0, neginf=0.0)
    corr = 1.0 - np.abs(corr)
    std = X.std(axis=0, ddof=1)
    sigma = np.maximum.outer(std, std)
    sigma = sigma - sigma.min()
    top = sigma.max()
    sigma = sigma / top if top > 0 else np.zeros_like(sigma)
    return alpha * corr + (1.0 - alpha) * sigma


def path_energy(A, factor=0.9):
    """Energy of every node summed over paths of all lengths (the inf-FS core).

    `S = sum_{l>=1} (r A)^l = (I - r A)^-1 - I` with `r = factor / rho(A)`
    (convergent since `r rho(A) < 1`); the score of feature `i` is the row
    sum `sum_j S_ij`. Roffo et al. 2015 use `factor = 0.9`.
    """
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    rho = float(np.max(np.abs(np.linalg.eigvals(A)))) if n else 0.0
    if rho <= 0:
        return np.zeros(n)
    r = factor / rho
    identity = np.eye(n)
    S = np.linalg.solve(identity - r * A, identity) - identity
    return S.sum(axis=1)


def inf_fs(X, alpha=0.5, factor=0.9):
    """Inf-FS importance of every feature (unsupervised).

    Features are the nodes of a fully connected graph whose edges mix
    dissimilarity (1 - |Spearman|) and spread (standard deviation); a
    feature's score is the energy of all paths through it, summed to infinite
    length in closed form (`path_energy`).

    Args:
        X: array (samples, features).
        alpha: float in [0, 1]. Weight of the correlation term. Defaults to
            `0.5` (the toolbox default).
        factor: float in (0, 1). `r * rho(A)`. Defaults to `0.9` (Roffo et
            al. 2015, Sec. 3).

    Returns:
        array (features,).

    Example:

    >>> inf_fs(np.random.default_rng(0).normal(size=(20, 3))).shape
    (3,)
    """
    X = _check_matrix(X)
    _check_fraction("alpha", alpha)
    _check_fraction("factor", factor, open_high=True)
    if factor <= 0:
        raise ValueError(f"`factor` must be in (0, 1). Received: factor={factor!r}")
    return path_energy(inf_fs_graph(X, alpha), factor)
