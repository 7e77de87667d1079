"""Infinite Latent Feature Selection (Roffo, Melzi, Castellani & Vinciarelli, ICCV 2017)."""

import numpy as np

from keras_nas.stagewise.infinite_fs import _check_fraction, path_energy
from keras_nas.stagewise.vip import _check_labels, _check_matrix

# Toolbox settings: 15 EM iterations, stop when the log-likelihood moves less
# than 1e-6; tokens in the lowest 20% of the histogram make the prior of the
# "relevant" factor.
_EM_ITERATIONS = 15
_EM_TOLERANCE = 1e-6
_PRIOR_SHARE = 0.2


def _round_half_up(value):
    return int(np.floor(value + 0.5))


def class_distance_ratio(X, y):
    """Per sample and feature: squared distance to its own class mean over the
    sum of squared distances to every class mean (small = well separated).

    NaN where a value sits on every class mean (the sum is 0).
    """
    X = np.asarray(X, dtype=np.float64)
    classes = np.unique(y)
    means = np.stack([X[y == c].mean(axis=0) for c in classes])  # (C, p)
    own = means[np.searchsorted(classes, y)]  # (n, p)
    total = np.zeros_like(X)
    for mean in means:  # one class at a time: never an (n, C, p) tensor
        total += (X - mean) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return (X - own) ** 2 / total


def token_histogram(values, tokens):
    """Counts of `values` in `tokens` equal bins spanning [min, max] (per column).

    MATLAB `histc(v, linspace(min, max, T))`: bin k holds
    `edges[k] <= v < edges[k+1]`, the last bin only `v == max`. Columns with
    NaNs get no counts.
    """
    values = np.asarray(values, dtype=np.float64)
    n, p = values.shape
    counts = np.zeros((tokens, p))
    for f in range(p):
        v = values[:, f]
        if np.isnan(v).any():
            continue
        low, high = v.min(), v.max()
        if high == low:
            counts[tokens - 1, f] = n
            continue
        index = np.floor((v - low) / (high - low) * (tokens - 1)).astype(int)
        counts[:, f] = np.bincount(np.clip(index, 0, tokens - 1), minlength=tokens)
    return counts


def plsa_relevance(counts, prior, iterations=_EM_ITERATIONS, tolerance=_EM_TOLERANCE):
    """p(relevant factor | feature) of a two-factor PLSA fitted by EM.

    Each feature is a document whose words are the tokens `counts` (T, p).
    The initial p(token | factor) favours low tokens for factor 1 ("relevant")
    and high ones for factor 2 (linear 5000..1 and 1..5000, normalised);
    p(factor | feature) starts at `[prior, 100 - prior]` normalised. The
    public toolbox never updates p(token | factor) (a variable-name typo);
    this is the full PLSA EM of the paper.
    """
    counts = np.asarray(counts, dtype=np.float64)
    tokens, _ = counts.shape
    p_t_z = np.stack([np.linspace(5000, 1, tokens), np.linspace(1, 5000, tokens)], axis=1)
    p_t_z /= p_t_z.sum(axis=0, keepdims=True)
    prior = np.asarray(prior, dtype=np.float64)
    p_z_f = np.stack([prior, 100.0 - prior])
    p_z_f /= np.maximum(p_z_f.sum(axis=0, keepdims=True), 1e-12)
    last = None
    for _ in range(iterations):
        p_t_f = p_t_z @ p_z_f  # (T, p)
        safe = np.where(p_t_f > 0, p_t_f, 1.0)
        # E-step: p(z | t, f), weighted by the counts n(t, f).
        resp = p_z_f[:, None, :] * p_t_z.T[:, :, None] / safe[None]  # (2, T, p)
        weighted = resp * counts[None]
        # M-step.
        p_z_f = weighted.sum(axis=1)
        norm = p_z_f.sum(axis=0, keepdims=True)
        p_z_f /= np.where(norm > 0, norm, 1e-5)
        p_t_z = weighted.sum(axis=2).T
        p_t_z /= np.maximum(p_t_z.sum(axis=0, keepdims=True), 1e-12)
        p_t_f = p_t_z @ p_z_f
        mask = counts > 0
        ll = float(np.sum(counts[mask] * np.log(np.maximum(p_t_f[mask], 1e-300))))
        if last is not None and abs(ll - last) < tolerance:
            break
        last = ll
    return p_z_f[0]


def il_fs(X, y, tokens=6, factor=0.99):
    """il-FS importance of every feature (supervised).

    1. Quantise each feature into `tokens` tokens by how close every sample
       lies to its own class mean relative to all class means
       (`class_distance_ratio`, `token_histogram`).
    2. Fit a two-factor PLSA (`plsa_relevance`); the prior of the
       "relevant" factor is the share of samples in the lowest 20% tokens.
    3. Graph `G_ij = p(relevant | f_i) p(relevant | f_j)`, scored with the
       inf-FS path energy (`path_energy`, `factor = 0.99` as in the toolbox).

    Args:
        X: array (samples, features).
        y: array (samples,) of int labels (at least 2 classes).
        tokens: int >= 2. Quantisation levels. Defaults to `6` (the
            toolbox demo).
        factor: float in (0, 1). Defaults to `0.99`.

    Returns:
        array (features,).

    Example:

    >>> X = np.random.default_rng(0).normal(size=(40, 3))
    >>> il_fs(X, (X[:, 0] > 0).astype(int)).shape
    (3,)
    """
    X = _check_matrix(X)
    y = _check_labels(y, X.shape[0])
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 2:
        raise ValueError(f"`tokens` must be an int >= 2. Received: tokens={tokens!r}")
    _check_fraction("factor", factor, open_high=True)
    if len(np.unique(y)) < 2:
        raise ValueError("`y` must hold at least 2 classes for il-FS (it is supervised).")
    counts = token_histogram(class_distance_ratio(X, y), tokens)
    low = max(1, _round_half_up(tokens * _PRIOR_SHARE))
    prior = 100.0 * counts[:low].sum(axis=0) / X.shape[0]
    relevance = plsa_relevance(counts, prior)
    return path_energy(np.outer(relevance, relevance), factor)
