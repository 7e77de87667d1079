"""DARTS genotypes as data: the published cells, the JSON form, derivation from op scores.

Pure Python and NumPy (no TensorFlow), so the command line checks a
`--genotype` before anything heavy loads.
"""

import collections
import os

import numpy as np

from keras_nas import io
from keras_nas.engine.options import OptionError

# Order of DARTS `genotypes.PRIMITIVES`; index 0 must stay `none` (excluded
# when a genotype is derived).
PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
# How an edge mixes its ops (`keras_nas.eoinas.gumbel_edge.GumbelEdge`) and how the supernet's step runs
# (`keras_nas.eoinas.supernet.BilevelSearchModel`); here, with the op names, so the options need no TensorFlow.
EDGE_MODES = ("gdas", "darts", "gumbel_soft")
EXECUTORS = ("auto", "ops", "graph")

Genotype = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

# Published cells, kept as data (DARTS genotypes.py; GDAS: AutoDL-Projects
# `GDAS_V1`, "Searching for a robust neural architecture in four GPU hours").
GENOTYPES = {
    "DARTS_V1": Genotype(
        normal=[("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
                ("sep_conv_3x3", 0), ("skip_connect", 1), ("skip_connect", 0), ("skip_connect", 1)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
        reduce_concat=[2, 3, 4, 5],
    ),
    "DARTS_V2": Genotype(
        normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
        reduce_concat=[2, 3, 4, 5],
    ),
    "GDAS_V1": Genotype(
        normal=[("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("sep_conv_5x5", 2),
                ("sep_conv_3x3", 3), ("skip_connect", 0), ("sep_conv_5x5", 4), ("sep_conv_3x3", 3)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 2), ("sep_conv_5x5", 1),
                ("dil_conv_5x5", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_5x5", 1)],
        reduce_concat=[2, 3, 4, 5],
    ),
}
GENOTYPES["DARTS"] = GENOTYPES["DARTS_V2"]
GENOTYPES["GDAS"] = GENOTYPES["GDAS_V1"]


# -- genotypes as data ---------------------------------------------------


def genotype_to_dict(genotype):
    """The DARTS JSON form: lists of `[op, input]` and the concat lists."""
    return {
        "normal": [[op, int(i)] for op, i in genotype.normal],
        "normal_concat": [int(i) for i in genotype.normal_concat],
        "reduce": [[op, int(i)] for op, i in genotype.reduce],
        "reduce_concat": [int(i) for i in genotype.reduce_concat],
    }


def genotype_from_dict(config):
    """Validates and converts the JSON form back into a `Genotype`."""
    if not isinstance(config, dict):
        raise TypeError(f"`genotype` must be a dict. Received: {type(config).__name__}")
    missing = [k for k in Genotype._fields if k not in config]
    if missing:
        raise ValueError(f"`genotype` must have keys {list(Genotype._fields)}. Missing: {missing}")
    fields = {}
    for kind in ("normal", "reduce"):
        pairs = [tuple(p) for p in config[kind]]
        concat = [int(i) for i in config[f"{kind}_concat"]]
        if not pairs or len(pairs) % 2:
            raise ValueError(f"`{kind}` must list two (op, input) pairs per node. Received {len(pairs)} pairs.")
        for node, (op, source) in enumerate(pairs):
            if op not in PRIMITIVES:
                raise ValueError(f"`{kind}` uses unknown op {op!r}; valid ops: {list(PRIMITIVES)}")
            if not 0 <= int(source) < node // 2 + 2:
                raise ValueError(
                    f"`{kind}` pair {node} reads node {source}, which does not exist yet "
                    f"(valid: 0..{node // 2 + 1})."
                )
        steps = len(pairs) // 2
        if not concat or any(not 0 <= i < steps + 2 for i in concat):
            raise ValueError(f"`{kind}_concat` must list nodes in [0, {steps + 1}]. Received: {concat}")
        fields[kind] = [(str(op), int(i)) for op, i in pairs]
        fields[f"{kind}_concat"] = concat
    return Genotype(**fields)


def save_genotype(genotype, path):
    """Writes `genotype` (a `Genotype` or its dict form) to `path` as JSON, atomically."""
    if isinstance(genotype, dict):
        genotype = genotype_from_dict(genotype)
    io.atomic_write_json(path, genotype_to_dict(genotype))
    return path


def load_genotype(path):
    """Reads a `genotype.json`; also accepts a name from `GENOTYPES` (e.g. `"DARTS_V2"`)."""
    if isinstance(path, str) and path in GENOTYPES and not os.path.exists(path):
        return GENOTYPES[path]
    check_genotype_name("path", path)
    try:
        return genotype_from_dict(io.read_json(path))
    except (TypeError, ValueError) as error:
        if isinstance(error, io.BrokenFileError):
            raise
        raise io.BrokenFileError(f"{path} is not a genotype (DARTS JSON form): {error}") from None


def check_genotype_name(name, value):
    """`value` if it is an existing file or a published genotype's name; `OptionError` naming `name` otherwise."""
    if isinstance(value, str) and (value in GENOTYPES or os.path.isfile(value)):
        return value
    raise OptionError(f"`{name}` must be a genotype JSON file or one of {sorted(GENOTYPES)}.", **{name: value})


def derive_genotype(normal_scores, reduce_scores, primitives=PRIMITIVES, steps=4, multiplier=4):
    """Discrete cells from per-edge op scores (alpha, beta or the indicator I).

    For every intermediate node keep the two predecessors whose best
    non-`none` op scores highest, and on each the argmax non-`none` op (DARTS
    `_parse`; EoiNAS sec. 3.3 with the strength `max_{o != zero} I^o_{i,j}`).
    Pruned ops should carry `-inf`. An edge whose live ops are all `none`
    falls back to its best-scored op among the others (never chosen before a
    live one).

    Args:
        normal_scores, reduce_scores: arrays `(edges, ops)`.
        primitives: op names of the columns.

    Returns:
        `Genotype`.
    """
    primitives = list(primitives)
    keep = [k for k, p in enumerate(primitives) if p != "none"]

    def parse(scores):
        scores = np.asarray(scores, dtype="float64")
        expected = (sum(i + 2 for i in range(steps)), len(primitives))
        if scores.shape != expected:
            raise ValueError(f"scores must have shape {expected}. Received: {scores.shape}")
        gene, start = [], 0
        for i in range(steps):
            rows = scores[start:start + i + 2]
            strength = rows[:, keep].max(axis=1)
            # Stable order: ties keep the lower input index (DARTS sorts likewise).
            edges = sorted(range(i + 2), key=lambda j: -strength[j] if np.isfinite(strength[j]) else np.inf)[:2]
            for j in sorted(edges):
                row = rows[j, keep]
                if not np.isfinite(row).any():
                    row = np.zeros_like(row)
                gene.append((primitives[keep[int(np.argmax(row))]], j))
            start += i + 2
        return gene

    concat = list(range(2 + steps - multiplier, steps + 2))
    return Genotype(parse(normal_scores), concat, parse(reduce_scores), concat)


# Ops without weights: a cell made of them learns nothing (the DARTS "collapse").
PARAMETER_FREE = ("skip_connect", "max_pool_3x3", "avg_pool_3x3")
# P-DARTS (Chen et al. 2019, sec. 3.3) and DARTS+ (Liang et al. 2019) treat more than 2 skip connections in the
# normal cell as collapse; P-DARTS keeps at most M = 2 at derivation.
COLLAPSE_SKIP_THRESHOLD = 2


def parameter_free_counts(genotype):
    """Per cell type, `{op: count}` of the parameter-free ops, their `total` and the cell's `edges`.

    >>> parameter_free_counts(GENOTYPES["DARTS_V2"])["normal"]
    {'skip_connect': 2, 'max_pool_3x3': 0, 'avg_pool_3x3': 0, 'total': 2, 'edges': 8}
    """
    counts = {}
    for kind in ("normal", "reduce"):
        ops = [op for op, _ in getattr(genotype, kind)]
        counts[kind] = {op: ops.count(op) for op in PARAMETER_FREE}
        counts[kind].update(total=sum(counts[kind].values()), edges=len(ops))
    return counts


def collapse_warning(genotype, skip_threshold=COLLAPSE_SKIP_THRESHOLD):
    """One line saying how the normal cell collapsed, or None.

    Collapsed: more than `skip_threshold` skip connections (P-DARTS /
    DARTS+), or parameter-free ops on more than half of its edges.
    """
    normal = parameter_free_counts(genotype)["normal"]
    found = []
    if normal["skip_connect"] > skip_threshold:
        found.append(f"{normal['skip_connect']} skip connections (more than {skip_threshold})")
    if normal["total"] * 2 > normal["edges"]:
        found.append(f"{normal['total']} of its {normal['edges']} ops parameter-free")
    if not found:
        return None
    return (f"the derived normal cell has {' and '.join(found)}, the collapse DARTS-style searches are known for; "
            f"try --limit-skip-connections {skip_threshold} (P-DARTS), more --warmup-epochs or a lower "
            "--arch-learning-rate")


def limit_skip_connections(normal_scores, reduce_scores, limit, primitives=PRIMITIVES, steps=4, multiplier=4):
    """P-DARTS' derivation rule (sec. 3.3): at most `limit` skip connections in the normal cell.

    While the cells derived from the scores (`derive_genotype`) have more
    than `limit` skip connections in the normal cell, the derived skip
    connection of the lowest score loses its skip op (score `-inf`) and the
    cells are derived again, so that edge takes its next-best op, or the
    node another input. The reduction cell is left as it is.

    Returns:
        `(genotype, replaced)`: `replaced` lists `{"node", "input", "score"}`
        of each skip connection removed.

    Example:

    >>> scores = np.zeros((14, 8)); scores[:, PRIMITIVES.index("skip_connect")] = 1.0
    >>> genotype, replaced = limit_skip_connections(scores, scores, 2)
    >>> parameter_free_counts(genotype)["normal"]["skip_connect"]
    2
    """
    primitives = list(primitives)
    skip = primitives.index("skip_connect")
    normal = np.array(normal_scores, dtype="float64")
    rows = np.cumsum([0] + [i + 2 for i in range(steps)])  # first row of each node's edges
    replaced = []
    while True:
        genotype = derive_genotype(normal, reduce_scores, primitives, steps, multiplier)
        skips = [(normal[rows[g // 2] + j, skip], g // 2, j) for g, (op, j) in enumerate(genotype.normal)
                 if op == "skip_connect"]
        if len(skips) <= limit:
            return genotype, replaced
        score, node, source = min(skips)
        normal[rows[node] + source, skip] = -np.inf
        replaced.append({"node": int(node), "input": int(source), "score": float(score)})


def _edge_rows(steps):
    return np.cumsum([0] + [i + 2 for i in range(steps)])  # first row of each node's edges


def genotype_latency(genotype, costs, primitives=PRIMITIVES, steps=4):
    """Predicted latency (ms) of the evaluation network of `genotype`: `constant + sum of its ops' edge costs`.

    `costs` is `keras_nas.eoinas.latency_cost.edge_costs(table)`; the sum
    equals `keras_nas.costs.predict_latency` of the built network.
    """
    primitives = list(primitives)
    rows = _edge_rows(steps)
    total = float(costs["constant_ms"])
    for kind in ("normal", "reduce"):
        cost = np.asarray(costs[kind])
        for g, (op, source) in enumerate(getattr(genotype, kind)):
            total += float(cost[rows[g // 2] + source, primitives.index(op)])
    return total


def fit_latency_target(normal_scores, reduce_scores, costs, target_ms, primitives=PRIMITIVES, steps=4,
                       multiplier=4):
    """Cells derived from the scores whose predicted latency is at most `target_ms`, giving up the least score.

    The cells are derived as usual (`derive_genotype`); the edges they keep
    stay. While they predict above the target, every kept edge whose op has
    a cheaper alternative is a candidate, and the alternative losing the
    least score per millisecond saved replaces its op. Ops pruned during the
    search (score `-inf`) are taken only when no scored alternative is left,
    the largest saving first. Stops when the target is met or every kept
    edge holds its cheapest op. A greedy, latency-constrained derivation
    in the spirit of ProxylessNAS; the EoiNAS/GDAS papers derive without one.

    Args:
        normal_scores, reduce_scores: arrays `(edges, ops)` (alpha or I).
        costs: `keras_nas.eoinas.latency_cost.edge_costs(table)`.
        target_ms: float > 0.

    Returns:
        `(genotype, swaps, met)`: `swaps` lists `{"cell", "node", "input",
        "op", "next", "saved_ms", "pruned"}` in order; `met` whether the
        predicted latency is at most the target.

    Example:

    >>> costs = {"constant_ms": 0.0, "normal": np.tile(np.arange(8.0), (14, 1)), "reduce": np.zeros((14, 8))}
    >>> genotype, swaps, met = fit_latency_target(costs["normal"], np.zeros((14, 8)), costs, 30.0)
    >>> met, genotype_latency(genotype, costs) <= 30.0
    (True, True)
    """
    primitives = list(primitives)
    keep = np.array([p != "none" for p in primitives])
    original = {"normal": np.array(normal_scores, dtype="float64"), "reduce": np.array(reduce_scores, dtype="float64")}
    cost = {kind: np.asarray(costs[kind], dtype="float64") for kind in ("normal", "reduce")}
    rows = _edge_rows(steps)
    forced = {"normal": {}, "reduce": {}}  # edge -> the op that replaced the derived one

    def effective(kind):
        scores = original[kind].copy()
        for e, o in forced[kind].items():
            finite = scores[e][keep & np.isfinite(scores[e])]
            # The edge keeps its strength, so every node keeps the inputs it derived.
            strength = finite.max() if finite.size else -1e300
            scores[e] = -np.inf
            scores[e, o] = strength
        return scores

    swaps = []
    while True:
        scores = {kind: effective(kind) for kind in ("normal", "reduce")}
        genotype = derive_genotype(scores["normal"], scores["reduce"], primitives, steps, multiplier)
        if genotype_latency(genotype, costs, primitives, steps) <= target_ms:
            return genotype, swaps, True
        best = None
        for kind in ("normal", "reduce"):
            for g, (op, source) in enumerate(getattr(genotype, kind)):
                e, o = rows[g // 2] + source, primitives.index(op)
                for n in np.flatnonzero(keep):
                    saved = cost[kind][e, o] - cost[kind][e, n]
                    if n == o or saved <= 0:
                        continue
                    alternative = original[kind][e, n]
                    if np.isfinite(alternative):
                        rank = (0, (scores[kind][e, o] - alternative) / saved)
                    else:
                        rank = (1, -saved)
                    if best is None or rank < best[0]:
                        best = (rank, kind, g // 2, source, e, o, int(n), saved)
        if best is None:
            return genotype, swaps, False
        rank, kind, node, source, e, o, n, saved = best
        forced[kind][e] = n
        swaps.append({"cell": kind, "node": int(node), "input": int(source), "op": primitives[o],
                      "next": primitives[n], "saved_ms": float(saved), "pruned": rank[0] == 1})
