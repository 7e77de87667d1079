"""One CNAS zeroing step (paper 004, sec. 2.2): remove the fraction gamma of least salient channels."""

import numpy as np


def channels_to_remove(remaining, gamma):
    """gamma of the remaining input channels, at least one (0.9|X| after one step, 0.81|X| after two)."""
    if not 0 < gamma < 1:
        raise ValueError(f"`gamma` must be in (0, 1). Received: gamma={gamma}")
    return max(1, int(round(gamma * remaining)))


def zero_least_salient(graph, masks, saliency, gamma, target_params=None, cost=None):
    """Zeroes the least salient kept input channels; returns `(new_masks, info)`.

    Channels are taken in increasing normalised saliency across all layers
    (with `cost`, in increasing saliency per millisecond its removal saves),
    `channels_to_remove(|X'|, gamma)` of them, except that a cell never loses
    its last channel read from `d` (so no cell is cut off). When
    `target_params` is given, only as many of them as are needed to reach it
    are removed (the search stops at rho, not below it). The new masks are
    propagated (`ChannelGraph.effective`).

    Args:
        graph: `ChannelGraph`.
        masks: dict name -> 0/1 array. Current masks.
        saliency: dict name -> array (normalised). Lower = less important.
        gamma: float in (0, 1). Paper: 0.1.
        target_params: int or None. |W*| to reach (rho |W|).
        cost: dict or None. Edge name -> ms one of its input channels
            costs (`keras_nas.cnas.latency_model.channel_savings`, > 0).
            Not in the paper (ours, issue 24): a latency target then
            removes first what is cheap in accuracy per ms it saves.

    Returns:
        new masks and a dict with `removed`, `remaining`, `params`.
    """
    eff = graph.effective(masks)
    remaining = int(sum(m.sum() for m in eff.values()))
    k = channels_to_remove(remaining, gamma)
    names, positions, values = [], [], []
    for name in graph.edges:
        kept = np.flatnonzero(eff[name])
        names += [name] * len(kept)
        positions += kept.tolist()
        values += (np.asarray(saliency[name]).reshape(-1)[kept] / (1.0 if cost is None else cost[name])).tolist()
    order = np.argsort(np.asarray(values, dtype=np.float64), kind="stable")
    protected = graph.protected(eff)
    chosen = []
    for t in order:
        name, i = names[t], positions[t]
        if graph.from_d(name)[i]:
            cell = graph.cell_of(name)
            if protected[cell] <= 1:
                continue
            protected[cell] -= 1
        chosen.append((name, i))
        if len(chosen) == k:
            break

    def apply(n):
        new = {key: value.copy() for key, value in eff.items()}
        for name, i in chosen[:n]:
            new[name][i] = 0.0
        return graph.effective(new)

    n = len(chosen)
    if target_params is not None and n and graph.count_params(apply(n)) <= target_params:
        low, high = 1, n  # smallest prefix that reaches the target
        while low < high:
            mid = (low + high) // 2
            if graph.count_params(apply(mid)) <= target_params:
                high = mid
            else:
                low = mid + 1
        n = low
    new = apply(n)
    return new, {
        "removed": n,
        "remaining": int(sum(m.sum() for m in new.values())),
        "params": graph.count_params(new),
    }


def random_masks(graph, target_params, seed=0):
    """Random pruning at the same |W*| (paper sec. 3.2 baseline): the same keep fraction in every cell.

    Each cell keeps a random `p` share of its input channels (at least one
    from `d`); `p` is the largest value whose network has at most
    `target_params` weights (bisection).
    """
    rng = np.random.default_rng(seed)
    scores = {name: rng.random(len(m)) for name, m in graph.full_masks().items()}
    cells = {}
    for name in graph.edges:
        cells.setdefault(graph.cell_of(name), []).append(name)

    def masks_at(p):
        masks = {}
        for names in cells.values():
            flat = np.concatenate([scores[n] for n in names])
            keep = max(1, int(round(p * len(flat))))
            threshold = np.sort(flat)[::-1][keep - 1]
            for n in names:
                masks[n] = (scores[n] >= threshold).astype(np.float32)
            if not any(masks[n][graph.from_d(n)].any() for n in names):
                first = next(n for n in names if graph.from_d(n).any())
                masks[first][np.flatnonzero(graph.from_d(first))[0]] = 1.0
        return graph.effective(masks)

    low, high = 0.0, 1.0
    for _ in range(30):
        mid = (low + high) / 2
        if graph.count_params(masks_at(mid)) <= target_params:
            low = mid
        else:
            high = mid
    return masks_at(low)
