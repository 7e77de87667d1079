"""Variable Importance in Projection of a PLS regression (paper 000, "Importance Score")."""

import numpy as np


def _check_matrix(X, name="X"):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(
            f"`{name}` must be a 2-D (samples x features) array with at least 2 "
            f"samples. Received shape: {X.shape}"
        )
    if not np.all(np.isfinite(X)):
        raise ValueError(f"`{name}` must hold finite values only (no NaN/inf).")
    return X


def _check_labels(y, n):
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"`y` must be a 1-D array of {n} integer class labels. Received shape: {y.shape}"
        )
    return y.astype(np.int64)


def vip_scores(x_scores, x_weights, y_loadings):
    """VIP of every feature from a fitted PLS model (Mehmood et al. 2012).

    `VIP_j = sqrt(p * sum_a SS_a (w_ja / ||w_a||)^2 / sum_a SS_a)` with
    `SS_a = (t_a' t_a) (q_a' q_a)`, the response variance that component `a`
    explains. The squared VIPs average to 1, so the mean VIP of a stage is at
    most 1 and drops when a few features carry all the covariance.

    Args:
        x_scores: array (samples, components). `T`.
        x_weights: array (features, components). `W`.
        y_loadings: array (targets, components). `Q`.

    Returns:
        array (features,).
    """
    t = np.asarray(x_scores, dtype=np.float64)
    w = np.asarray(x_weights, dtype=np.float64)
    q = np.asarray(y_loadings, dtype=np.float64)
    p = w.shape[0]
    ss = np.sum(t * t, axis=0) * np.sum(q * q, axis=0)  # (components,)
    norms = np.linalg.norm(w, axis=0)
    norms[norms == 0] = 1.0
    weights = (w / norms) ** 2
    total = ss.sum()
    if total <= 0:
        return np.zeros(p)
    return np.sqrt(p * (weights @ ss) / total)


def pls_vip(X, y, n_components=2, num_classes=None):
    """VIP scores of a PLS regression of one-hot labels on the features.

    Partial Least Squares (Geladi & Kowalski 1986) as in the paper's reference
    code: scikit-learn's `PLSRegression` (features and targets standardised)
    on one-hot labels, then `vip_scores`. `n_components` is clipped to the
    number of features and samples - 1.

    Args:
        X: array (samples, features).
        y: array (samples,) of int labels.
        n_components: int. PLS components (the reference code's default).
            Defaults to `2`.
        num_classes: int or None. Width of the one-hot targets. Defaults to
            `max(y) + 1`.

    Returns:
        array (features,) of VIP scores.

    Example:

    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> int(np.argmax(pls_vip(X, y)))
    0
    """
    from sklearn.cross_decomposition import PLSRegression

    X = _check_matrix(X)
    y = _check_labels(y, X.shape[0])
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"`n_components` must be a positive int. Received: n_components={n_components!r}")
    num_classes = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"`y` must hold labels in [0, {num_classes}). Received range [{y.min()}, {y.max()}]")
    targets = np.eye(num_classes)[y]
    # Constant target columns (absent classes) carry no covariance.
    targets = targets[:, targets.std(axis=0) > 0]
    if targets.shape[1] == 0:
        return np.zeros(X.shape[1])
    components = max(1, min(n_components, X.shape[1], X.shape[0] - 1))
    model = PLSRegression(n_components=components, scale=True)
    model.fit(X, targets)
    return vip_scores(model.x_scores_, model.x_weights_, model.y_loadings_)
