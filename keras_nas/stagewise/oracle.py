"""KerasTuner Oracle running Algorithm 1 of stage-wise NAS (paper 000)."""

import keras_tuner

from keras_nas.engine.search_oracle import SearchOracle, check_positive_int

ROLES = ("initial", "temporary", "candidate")


def grow_stages(depths, importance_a, importance_t, delta):
    """One decision of Algorithm 1 (lines 4-9).

    Stage `i` grows by `delta` modules iff `alpha_T,i > alpha_A,i`: the
    deeper temporary network T made that stage's features more important
    than in the current architecture A.

    Returns:
        (new_depths, grown) with `grown[i]` a bool per stage.
    """
    if not len(depths) == len(importance_a) == len(importance_t):
        raise ValueError(
            "`depths`, `importance_a` and `importance_t` must have one entry per "
            f"stage. Received lengths {len(depths)}, {len(importance_a)}, {len(importance_t)}."
        )
    grown = [float(t) > float(a) for a, t in zip(importance_a, importance_t)]
    return [int(d) + (delta if g else 0) for d, g in zip(depths, grown)], grown


BUDGETS = ("params", "macs", "latency_ms")


def over_budget(cost, budgets):
    """`(resource, value, limit)` of the first budget `cost` exceeds, or None. `budgets`: {resource: limit}."""
    for resource in BUDGETS:
        limit = budgets.get(resource)
        if limit is not None and cost[resource] > limit:
            return resource, cost[resource], limit
    return None


def grow_within_budget(depths, importance_a, importance_t, delta, cost_fn, budgets):
    """A decision of Algorithm 1 that keeps the candidate within resource budgets.

    The stages Algorithm 1 grows (`grow_stages`) are taken one at a time,
    largest importance gain `alpha_T,i - alpha_A,i` first; a stage's growth
    is kept only while the candidate stays within every budget (`cost_fn`
    maps depths to `{"params", "macs", "latency_ms"}`), so a stage stops
    growing when it would take the network over a budget. The paper has no
    budgets; this is what "stop growing" means here.

    Returns:
        (new_depths, grown, blocked, cost): `blocked` lists
        `{"stage", "resource", "value", "limit"}` of each growth refused,
        `cost` is `cost_fn(new_depths)`.

    Example:

    >>> params = lambda d: {"params": 100 * sum(d), "macs": 0, "latency_ms": 0}
    >>> grow_within_budget([2, 2], [0.5, 0.5], [0.9, 0.6], 1, params, {"params": 500})[:3]
    ([3, 2], [True, False], [{'stage': 1, 'resource': 'params', 'value': 600, 'limit': 500}])
    """
    _, wanted = grow_stages(depths, importance_a, importance_t, delta)
    order = sorted((i for i, g in enumerate(wanted) if g),
                   key=lambda i: float(importance_a[i]) - float(importance_t[i]))
    new_depths, grown, blocked = [int(d) for d in depths], [False] * len(depths), []
    for i in order:
        trial = list(new_depths)
        trial[i] += delta
        exceeded = over_budget(cost_fn(trial), budgets)
        if exceeded is None:
            new_depths, grown[i] = trial, True
        else:
            resource, value, limit = exceeded
            blocked.append({"stage": i, "resource": resource, "value": value, "limit": limit})
    return new_depths, grown, blocked, cost_fn(new_depths)


class StageWiseOracle(SearchOracle):
    """Stage-wise depth search (Jordao et al. 2020, Algorithm 1) as a KerasTuner Oracle.

    Proposes the `2 n + 1` networks of Algorithm 1 in order: the initial
    network A (`initial_depth` modules in each of `num_stages` stages), then
    for each iteration `k = 1..n` the temporary network T_k (every stage of
    the current A deeper by `delta`) and, once both A and T_k have reported
    their stage importance, the candidate Â_k whose stage `i` grew iff
    `importance_i(T_k) > importance_i(A)`; Â_k becomes A of the next
    iteration.

    Trials carry the hyperparameters `depth_0 .. depth_{S-1}` plus `role`
    (`"initial"`, `"temporary"`, `"candidate"`) and `iteration`. Each trial
    must report `importance_0 .. importance_{S-1}` next to the objective
    (`keras_nas.stagewise.StageWiseTuner` does). T_{k+1} depends only on
    Â_k's depths, so Â_k and T_{k+1} may train at the same time on two
    workers; while a decision waits for A or T the oracle answers `IDLE`.
    A trial that failed for good (no retries left) ends the search.

    The plan (trial -> role, iteration, depths) and every decision (both
    importance vectors, which stages grew) are part of `get_state`, so a
    search reloaded from disk continues exactly where it stopped.

    Args:
        num_stages: int. `S`. Defaults to `3` (CIFAR; 4 for ImageNet).
        initial_depth: int. `m_0`. Defaults to `6` (paper, Table I).
        delta: int. Growth step `delta`. Defaults to `2` (residual modules;
            the paper uses 1 for cells).
        iterations: int. `n`. Defaults to `5` (paper).
        budgets: dict or None. Upper limits of the candidates,
            `{"params": int, "macs": int, "latency_ms": float}` (any subset):
            a stage stops growing when the candidate would exceed one
            (`grow_within_budget`); the decisions say which. Needs `cost_fn`.
        cost_fn: callable. `cost_fn(stage_depths) -> {"params", "macs",
            "latency_ms"}` of the network of those depths (untrained), run
            by the oracle (the chief in a distributed search).
        objective: KerasTuner objective. Defaults to `"val_accuracy"` (max).
        **kwargs: passed to `SearchOracle` (`lease_seconds`, `seed`, ...).

    Example:

    ```python
    from keras_nas.stagewise.resnet import stage_resnet
    from keras_nas.stagewise.tuner import StageWiseTuner

    oracle = StageWiseOracle(num_stages=3, initial_depth=2, delta=1, iterations=2)
    tuner = StageWiseTuner(oracle, build_model=lambda d: stage_resnet(d), directory="runs/sw")
    ```
    """

    def __init__(
        self,
        num_stages=3,
        initial_depth=6,
        delta=2,
        iterations=5,
        budgets=None,
        cost_fn=None,
        objective=None,
        **kwargs,
    ):
        budgets = {k: v for k, v in (budgets or {}).items() if v is not None}
        unknown = sorted(set(budgets) - set(BUDGETS))
        if unknown:
            raise ValueError(f"`budgets` may limit {list(BUDGETS)}. Received: budgets={budgets!r}")
        if budgets and not callable(cost_fn):
            raise ValueError(f"`budgets` need a `cost_fn(stage_depths)`. Received: cost_fn={cost_fn!r}")
        for name, value in (
            ("num_stages", num_stages),
            ("initial_depth", initial_depth),
            ("delta", delta),
            ("iterations", iterations),
        ):
            check_positive_int(name, value)
        if "max_trials" in kwargs:
            raise ValueError(
                "`max_trials` is fixed by Algorithm 1 (2 * iterations + 1); pass "
                "`iterations` instead."
            )
        objective = objective or keras_tuner.Objective("val_accuracy", "max")
        super().__init__(objective=objective, max_trials=2 * iterations + 1, **kwargs)
        self.num_stages = num_stages
        self.initial_depth = initial_depth
        self.delta = delta
        self.iterations = iterations
        self.budgets = budgets
        self.cost_fn = cost_fn
        # trial_id -> {"role", "iteration", "stage_depths"}
        self.plan = {}
        # one entry per finished decision (iteration k = index + 1)
        self.decisions = []
        self.stopped_reason = None

    # -- Algorithm 1 ----------------------------------------------------

    def _trial_of(self, role, iteration):
        for trial_id, info in self.plan.items():
            if info["role"] == role and info["iteration"] == iteration:
                return trial_id
        return None

    def architecture(self, iteration):
        """Depths of A after `iteration` decisions (A_0 = the initial network)."""
        if iteration == 0:
            return [self.initial_depth] * self.num_stages
        return list(self.decisions[iteration - 1]["stage_depths"])

    def _importance(self, trial_id):
        trial = self.trials[trial_id]
        values = []
        for i in range(self.num_stages):
            name = f"importance_{i}"
            if not trial.metrics.exists(name):
                raise ValueError(
                    f"Trial {trial_id} reported no `{name}`; every stage-wise trial "
                    f"must report `importance_0 .. importance_{self.num_stages - 1}`."
                )
            values.append(float(trial.metrics.get_last_value(name)))
        return values

    def _propose(self, trial_id, role, iteration, depths):
        self.plan[trial_id] = {"role": role, "iteration": iteration, "stage_depths": list(depths)}
        values = {f"depth_{i}": int(d) for i, d in enumerate(depths)}
        values.update(role=role, iteration=iteration)
        return {"status": "RUNNING", "values": values}

    def _decide(self, k, a_trial, t_trial):
        depths = self.architecture(k - 1)
        importance_a = self._importance(a_trial)
        importance_t = self._importance(t_trial)
        extra = {}
        if self.budgets:
            new_depths, grown, blocked, cost = grow_within_budget(depths, importance_a, importance_t, self.delta,
                                                                  self.cost_fn, self.budgets)
            extra = {"blocked": blocked, "cost": cost}
        else:
            new_depths, grown = grow_stages(depths, importance_a, importance_t, self.delta)
        self.decisions.append(
            {
                **extra,
                "iteration": k,
                "a_trial": a_trial,
                "t_trial": t_trial,
                "previous_depths": depths,
                "temporary_depths": [d + self.delta for d in depths],
                "importance_a": importance_a,
                "importance_t": importance_t,
                "grown": grown,
                "stage_depths": new_depths,
            }
        )

    def populate_space(self, trial_id):
        if self._trial_of("initial", 0) is None:
            return self._propose(trial_id, "initial", 0, self.architecture(0))
        for k in range(1, self.iterations + 1):
            if self._trial_of("temporary", k) is None:
                return self._propose(
                    trial_id, "temporary", k, [d + self.delta for d in self.architecture(k - 1)]
                )
            if self._trial_of("candidate", k) is not None:
                continue
            a_trial = self._trial_of("initial", 0) if k == 1 else self._trial_of("candidate", k - 1)
            t_trial = self._trial_of("temporary", k)
            statuses = {self.trials[t].status for t in (a_trial, t_trial)}
            if "FAILED" in statuses:
                self.stopped_reason = (
                    f"iteration {k} cannot decide: trial {a_trial} (A) or {t_trial} (T) failed"
                )
                return {"status": "STOPPED"}
            if statuses != {"COMPLETED"}:
                return {"status": "IDLE"}
            if len(self.decisions) < k:
                self._decide(k, a_trial, t_trial)
            return self._propose(trial_id, "candidate", k, self.architecture(k))
        return {"status": "STOPPED"}

    # -- state ----------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        state.update(
            num_stages=self.num_stages,
            initial_depth=self.initial_depth,
            delta=self.delta,
            iterations=self.iterations,
            budgets=self.budgets,
            plan=self.plan,
            decisions=self.decisions,
            stopped_reason=self.stopped_reason,
        )
        return state

    def set_state(self, state):
        super().set_state(state)
        settings = {k: state[k] for k in ("num_stages", "initial_depth", "delta", "iterations")}
        settings["budgets"] = state.get("budgets", {})
        current = {k: getattr(self, k) for k in settings}
        if settings != current:
            raise ValueError(
                f"The saved search used {settings}, this oracle {current}; resume "
                "with the same settings or start a new project."
            )
        self.plan = {k: dict(v) for k, v in state["plan"].items()}
        self.decisions = [dict(d) for d in state["decisions"]]
        self.stopped_reason = state.get("stopped_reason")
