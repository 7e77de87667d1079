"""Resource constraints of an EPNAS search: `"params<=2e6"`, `"intensity>=80"`, `"latency_ms<=5"`, ...

A constraint names a resource that `keras_nas.costs.profile` measures (or
`latency_ms`: batch-1 latency, predicted from a latency table or measured on
this machine, see `child_latency`) and one bound. Several strings on the same resource combine into an interval
(`intensity>=80` and `intensity<=200`); a bound given twice, an empty
interval or a malformed string raises a `ValueError` before anything trains.
"""

import re
from keras_nas.epnas.reward import soft_penalty

# name in a constraint string -> CostReport attribute
RESOURCES = {
    "params": "params",
    "size": "params",
    "flops": "flops",
    "complexity": "flops",
    "macs": "macs",
    "intensity": "compute_intensity",
    "compute_intensity": "compute_intensity",
    "memory_mb": "memory_mb",
    "latency_ms": "latency_ms",
}
_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9}
_PATTERN = re.compile(
    r"^\s*([A-Za-z_]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgG]?)\s*$"
)
_FORMAT = "RESOURCE<=VALUE or RESOURCE>=VALUE, e.g. 'params<=2e6', 'intensity>=80', 'flops<=2M'"


def parse_constraint(text):
    """One constraint string -> `{"resource", "lower", "upper"}`.

    Args:
        text: str. `RESOURCE<=VALUE` or `RESOURCE>=VALUE` with RESOURCE one of
            `params` (alias `size`), `flops` (alias `complexity`), `macs`,
            `intensity` (alias `compute_intensity`, FLOPs/byte), `memory_mb`,
            `latency_ms` (ms at batch 1);
            VALUE a positive number with an optional k/M/G suffix.

    Returns:
        dict with `resource` (the `CostReport` attribute name), `lower` and
        `upper` (one of them None) and `text`.

    Example:

    >>> parse_constraint("params<=2e6")
    {'resource': 'params', 'lower': None, 'upper': 2000000.0, 'text': 'params<=2e6'}
    """
    if not isinstance(text, str):
        raise TypeError(f"A constraint must be a string ({_FORMAT}). Received: {text!r}")
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"Malformed constraint. Expected {_FORMAT}. Received: {text!r}")
    name, op, number, suffix = match.groups()
    if name.lower() not in RESOURCES:
        raise ValueError(
            f"Unknown resource `{name}` in constraint {text!r}. Valid resources: "
            f"{sorted(RESOURCES)}"
        )
    value = float(number) * _SUFFIX[suffix]
    if value <= 0:
        raise ValueError(f"A constraint bound must be > 0. Received: {text!r}")
    resource = RESOURCES[name.lower()]
    lower, upper = (None, value) if op.startswith("<") else (value, None)
    return {"resource": resource, "lower": lower, "upper": upper, "text": text.strip()}


def parse_constraints(texts):
    """Constraint strings -> one `{"resource", "lower", "upper"}` per resource.

    Raises a `ValueError` for a malformed string, a bound given twice for the
    same resource (`params<=1e6` and `params<=2e6`) and an empty interval
    (`params<=1e5` and `params>=2e5`).

    Example:

    >>> parse_constraints(["intensity>=80", "params<=2e6", "intensity<=200"])
    [{'resource': 'compute_intensity', 'lower': 80.0, 'upper': 200.0, ...}, ...]
    """
    if texts is None:
        return []
    if isinstance(texts, str):
        texts = [texts]
    merged = {}
    for text in texts:
        c = parse_constraint(text)
        entry = merged.setdefault(c["resource"], {"resource": c["resource"], "lower": None, "upper": None, "text": []})
        side = "lower" if c["lower"] is not None else "upper"
        if entry[side] is not None:
            raise ValueError(
                f"Contradictory constraints: the {side} bound of `{c['resource']}` is given twice "
                f"({' and '.join(repr(t) for t in entry['text'])} and {text!r}). Give each bound once."
            )
        entry[side] = c[side]
        entry["text"].append(c["text"])
        if entry["lower"] is not None and entry["upper"] is not None and entry["lower"] > entry["upper"]:
            raise ValueError(
                f"Contradictory constraints: no `{c['resource']}` satisfies "
                f"{' and '.join(repr(t) for t in entry['text'])} (lower bound "
                f"{entry['lower']:g} > upper bound {entry['upper']:g})."
            )
    return [dict(v, text=" and ".join(v["text"])) for v in merged.values()]


def with_latency_margin(constraints, margin):
    """The constraints a search applies: a `latency_ms` upper bound lowered by the share `margin`.

    The lowered bound is the soft constraint of Eq. 2-3 (headroom for timing
    noise; ours, in no paper). The bound as given stays in `target` (its
    text) and `target_upper`, which the saved child's measured latency is
    judged against, beside the `margin`. Raises a `ValueError` when the lowered bound falls below
    a `latency_ms` lower bound.

    Example:

    >>> with_latency_margin(parse_constraints(["latency_ms<=2", "params<=1e5"]), 0.1)
    [{'resource': 'latency_ms', 'lower': None, 'upper': 1.8, 'text': 'latency_ms<=1.8', 'target': 'latency_ms<=2',
      'target_upper': 2.0, 'margin': 0.1}, {'resource': 'params', ...}]
    """
    out = []
    for c in constraints:
        if c["resource"] == "latency_ms" and c["upper"] is not None:
            upper = c["upper"] * (1.0 - margin)
            if c["lower"] is not None and c["lower"] > upper:
                raise ValueError(f"Contradictory constraints: {c['text']!r} less the latency margin {margin} leaves "
                                 f"latency_ms<={upper:.6g}, below the lower bound {c['lower']:g}.")
            text = " and ".join(([f"latency_ms>={c['lower']:g}"] if c["lower"] is not None else [])
                                + [f"latency_ms<={upper:.6g}"])
            c = dict(c, upper=upper, text=text, target=c["text"], target_upper=c["upper"], margin=margin)
        out.append(c)
    return out


def constraint_report(usages, constraints, base=0.9):
    """Per constraint: usage, bounds, satisfied (hard, Eq. 1) and `V(U)` (Eq. 2)."""

    report = []
    for c in constraints:
        usage = float(usages[c["resource"]])
        satisfied = (c["lower"] is None or usage >= c["lower"]) and (c["upper"] is None or usage <= c["upper"])
        report.append({
            "constraint": c["text"],
            "resource": c["resource"],
            "usage": usage,
            "lower": c["lower"],
            "upper": c["upper"],
            "satisfied": bool(satisfied),
            "penalty": soft_penalty(usage, c["lower"], c["upper"], base),
        })
    return report


def constrains_latency(constraints):
    """Whether a `latency_ms` bound is among the parsed `constraints` (then each child's latency is needed)."""
    return any(c["resource"] == "latency_ms" for c in constraints)


def table_space(space):
    """The latency-table space (`keras_nas.latency`) of an `EPNASSpace`: `epnas` (layers) or `epnas-module`."""
    return "epnas-module" if space.mode == "module" else "epnas"


def child_latency(model, table=None):
    """`(latency_ms, source)` of a child for a `latency_ms` constraint: predicted from `table`, or measured.

    With a latency table (`keras_nas.latency`, `keras-nas latency-table`)
    the latency is the table's sum over the child's blocks
    (`keras_nas.costs.predict_latency`: no run, same runtime and threads as
    the table); without one, the child is timed here and now as every
    search times a model on the spot (`keras_nas.latency.measure_model`:
    converted to TFLite, 1 interpreter thread, batch 1, median of 30 calls
    over 5 interpreters), so the bound means what the exported `.tflite`
    does.
    The usage then enters Eq. 2-3 like any other resource.

    Args:
        model: the child's Keras model.
        table: dict, str or None. A latency table or its JSON path.

    Returns:
        (float, str): milliseconds and `"table"` or `"measured"`.

    Example:

    >>> child_latency(model, {"space": "epnas", ..., "overhead_ms": 0.5, "entries": {...}})
    (3.25, 'table')
    """
    # TensorFlow: the command line imports this module before TensorFlow loads.
    from keras_nas import costs, latency

    if table is not None:
        return float(costs.predict_latency(model, table)), "table"
    return float(latency.measure_model(model, runtime="tflite", threads=1)), "measured"
