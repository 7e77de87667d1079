"""The soft resource penalty of EPNAS (paper 002, Eq. 2) and the reward of Eq. 3."""

import math


def soft_penalty(usage, lower=None, upper=None, base=0.9):
    """Soft violation `V(U)` of one resource constraint (EPNAS Eq. 2).

    `V(U) = p ** max(max(0, U / C_u - 1), max(0, C_l / U - 1))`: 1 inside
    `[C_l, C_u]`, decaying geometrically with the relative violation outside,
    so a network that violates a constraint a little still earns a reward
    (the hard indicator of Eq. 1 gives none).

    Args:
        usage: float. Resource usage `U_i` (parameters, FLOPs, FLOPs/byte).
        lower: float or None. `C_l` (None: no lower bound).
        upper: float or None. `C_u` (None: no upper bound).
        base: float in [0, 1]. Base penalty `p_i`. Defaults to `0.9`, the
            paper's value for every constraint (footnote 1).

    Returns:
        float in [0, 1].

    Example:

    >>> soft_penalty(3e6, upper=2e6)  # 50% over: 0.9 ** 0.5
    0.9486832980505138
    """
    if not isinstance(base, (int, float)) or not 0.0 <= base <= 1.0:
        raise ValueError(f"`base` must be a number in [0, 1]. Received: base={base!r}")
    usage = float(usage)
    if math.isnan(usage) or usage < 0:
        raise ValueError(f"`usage` must be a number >= 0. Received: usage={usage!r}")
    over = 0.0 if upper is None else max(0.0, usage / float(upper) - 1.0)
    if lower is None:
        under = 0.0
    elif usage == 0:
        under = math.inf
    else:
        under = max(0.0, float(lower) / usage - 1.0)
    exponent = max(over, under)
    if exponent == 0.0:
        return 1.0
    return float(base) ** exponent if base > 0 else 0.0


def constrained_reward(performance, usages, constraints, base=0.9):
    """`r = P * prod_i V(U_i)` (EPNAS Eq. 3).

    Args:
        performance: float. `P`, e.g. the validation accuracy.
        usages: dict. Resource name -> usage (e.g. `{"params": 4.2e4}`).
        constraints: list of dicts `{"resource", "lower", "upper"}` as
            returned by `keras_nas.epnas.constraints.parse_constraints`.
        base: float. Base penalty `p` of every constraint. Defaults to `0.9`.

    Returns:
        (reward, penalties) with `penalties` a dict resource -> `V(U_i)`.
    """
    reward = float(performance)
    penalties = {}
    for c in constraints:
        if c["resource"] not in usages:
            raise ValueError(
                f"No usage reported for the constrained resource `{c['resource']}`. "
                f"Received usages for: {sorted(usages)}"
            )
        value = soft_penalty(usages[c["resource"]], c.get("lower"), c.get("upper"), base)
        penalties[c["resource"]] = value
        reward *= value
    return reward, penalties
