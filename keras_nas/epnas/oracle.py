"""EPNAS (paper 002) as a KerasTuner Oracle: a REINFORCE policy morphing networks in episodes."""

import json

import keras_tuner
import numpy as np

from keras_nas.epnas.constraints import parse_constraints
from keras_nas.epnas.policy import EPNASPolicy, returns_to_go, update_baseline
from keras_nas.engine.search_oracle import SearchOracle, check_positive_int
from keras_nas.epnas.space import SCALES, EPNASSpace
from keras_nas.epnas.parameter_store import ParameterStore

ENDED = ("COMPLETED", "FAILED", "INVALID")


def space_from(space):
    """An `EPNASSpace` from a space, its config dict or a mode string."""
    if isinstance(space, EPNASSpace):
        return space
    if isinstance(space, dict):
        return EPNASSpace.from_config(space)
    if isinstance(space, str):
        return EPNASSpace(space)
    raise TypeError(f"`space` must be an EPNASSpace, its config or a mode. Received: space={space!r}")


def constraints_from(constraints):
    """Parsed constraints from strings or already-parsed dicts."""
    constraints = list(constraints or [])
    if all(isinstance(c, dict) for c in constraints):
        return [dict(c) for c in constraints]
    return parse_constraints(constraints)


def child_values(architecture, constraints, penalty_base, **extra):
    """Hyperparameter values of a child trial: plain str/int/float only (gRPC-safe)."""
    values = {
        "architecture": json.dumps(architecture, sort_keys=True),
        "constraints": json.dumps(constraints, sort_keys=True),
        "penalty_base": float(penalty_base),
    }
    values.update({k: int(v) for k, v in extra.items()})
    return values


class EPNASOracle(SearchOracle):
    """Efficient Progressive NAS (Zhou et al., paper 002) as a KerasTuner Oracle.

    An episode `e` starts `N` branches from networks `X_{0,n}` (random in
    episode 0, the top-k children of episode `e - 1` afterwards). At step
    `t` the policy (`EPNASPolicy`, section 3.2) samples an action
    `a_{t,n} ~ pi(. | X_{t,n})` for every branch; the morphed network
    `X_{t+1,n}` is one KerasTuner trial, so the `N` children of a step train
    in parallel on as many workers. While a step is outstanding the oracle
    answers `IDLE` (the `SearchTuner` backs off); the children of step
    `t + 1` grow out of those of step `t`, after the step's parameters were
    merged into the sharing dictionary (section 3.4). When the `T` steps of
    an episode ended, one Adam step follows the REINFORCE gradient of section
    3.1 with returns-to-go and a moving-average baseline per step. A trial's
    objective is the reward `r = P * prod_i V(U_i)` of Eq. (3), computed by
    the tuner with `keras_nas.epnas.reward`; a failed child earns 0.

    The policy weights and Adam slots (base64), every sampled action, start
    network, reward table and baseline live in `get_state`, so a search
    reloaded from disk (or run as KerasTuner chief) continues exactly.

    Args:
        space: `keras_nas.epnas.space.EPNASSpace`, its config or a mode.
        constraints: list of str (`"params<=2e6"`) or parsed dicts.
            Defaults to none.
        episodes: int. Defaults to `15` (paper).
        branches: int. `N`. Defaults to `8` (paper).
        steps: int. `T`. Defaults to `10` (paper, layer-by-layer; 5 for
            module search).
        top_k: int. Children that start the next episode. Defaults to `8`.
        penalty_base: float. `p_i` of Eq. (2). Defaults to `0.9`.
        baseline_decay: float. Moving-average decay of the baseline.
            Defaults to `0.9`.
        policy_learning_rate: float. Defaults to `6e-4` (section 4.1).
        embedding_units, action_units: int. LSTM sizes. Defaults to `32`, `128`.
        entropy_weight: float. Entropy bonus. Defaults to `0` (paper: none).
        sharing_dir: str or None. `ParameterStore` folder merged after each
            step (the tuner contributes to it). Defaults to None.
        seed: int. Random initial networks and action sampling.
        **kwargs: passed to `SearchOracle`.

    Example:

    ```python
    oracle = EPNASOracle(EPNASSpace("layers"), constraints=["params<=50000"],
                         episodes=2, branches=2, steps=2)
    tuner = EPNASTuner(oracle, space=oracle.space, input_shape=(8, 8, 1), num_classes=10)
    ```
    """

    def __init__(
        self,
        space="layers",
        constraints=None,
        episodes=15,
        branches=8,
        steps=10,
        top_k=8,
        penalty_base=0.9,
        baseline_decay=0.9,
        policy_learning_rate=6e-4,
        embedding_units=32,
        action_units=128,
        entropy_weight=0.0,
        sharing_dir=None,
        seed=0,
        objective=None,
        **kwargs,
    ):
        for name, value in (("episodes", episodes), ("branches", branches), ("steps", steps), ("top_k", top_k)):
            check_positive_int(name, value)
        if not 0.0 <= penalty_base <= 1.0:
            raise ValueError(f"`penalty_base` must be in [0, 1]. Received: penalty_base={penalty_base!r}")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"`baseline_decay` must be in [0, 1). Received: baseline_decay={baseline_decay!r}")
        if "max_trials" in kwargs:
            raise ValueError("`max_trials` is episodes * branches * steps; pass those instead.")
        kwargs.setdefault("max_consecutive_failed_trials", branches * steps * episodes)
        objective = objective or keras_tuner.Objective("reward", "max")
        super().__init__(objective=objective, max_trials=episodes * branches * steps, seed=seed, **kwargs)
        # KerasTuner replaces a seed of 0 by a random one; EPNAS' samples must not move on resume.
        self.seed = int(seed)
        self.space = space_from(space)
        self.constraints = constraints_from(constraints)
        self.episodes = episodes
        self.branches = branches
        self.steps = steps
        self.top_k = top_k
        self.penalty_base = float(penalty_base)
        self.baseline_decay = float(baseline_decay)
        self.sharing_dir = sharing_dir
        self.policy = EPNASPolicy(
            self.space.feature_sizes(), self.space.max_layers, self.space.partitions, len(SCALES),
            self.space.action_heads(), embedding_units=embedding_units, action_units=action_units,
            learning_rate=policy_learning_rate, entropy_weight=entropy_weight, seed=seed,
        )
        self.starts = {}  # episode (str) -> [architecture per branch]
        self.children = {}  # trial_id -> episode, step, branch, parent, architecture, action, ...
        self.history = []  # one entry per finished episode
        self.baseline = None
        self.merged_steps = []

    # -- settings ---------------------------------------------------------

    def _settings(self):
        return {
            "space": self.space.get_config(),
            "constraints": self.constraints,
            "episodes": self.episodes,
            "branches": self.branches,
            "steps": self.steps,
            "top_k": self.top_k,
            "penalty_base": self.penalty_base,
        }

    # -- the search -------------------------------------------------------

    def _child_at(self, global_step, branch):
        for trial_id, c in self.children.items():
            if c["global_step"] == global_step and c["branch"] == branch:
                return trial_id
        return None

    def reward_of(self, trial_id):
        """A child's reward (0 for a failed child)."""
        trial = self.trials.get(trial_id)
        if trial is None or trial.status != "COMPLETED" or not trial.metrics.exists("reward"):
            return 0.0
        return float(trial.metrics.get_last_value("reward"))

    def _initial_starts(self):
        rng = np.random.default_rng([self.seed, 0])
        return [self.space.random_architecture(rng) for _ in range(self.branches)]

    def _propose(self, trial_id, episode, step, branch):
        global_step = episode * self.steps + step
        if step == 0:
            parent = self.starts[str(episode)][branch]
        else:
            parent = self.children[self._child_at(global_step - 1, branch)]["architecture"]
        features, masks = self.space.features(parent), self.space.action_masks(parent)
        action, log_prob = self.policy.sample(features, masks, seed=(self.seed, global_step * self.branches + branch))
        child = self.space.apply_action(parent, action)
        self.children[trial_id] = {
            "episode": episode, "step": step, "branch": branch, "global_step": global_step,
            "parent": parent, "action": action, "log_prob": log_prob, "architecture": child,
        }
        values = child_values(child, self.constraints, self.penalty_base,
                              episode=episode, step=step, branch=branch, global_step=global_step)
        # Where each layer sat in the parent: the keys a child reads from the sharing dictionary (3.4).
        values["parent_positions"] = json.dumps(
            [-1 if p is None else p for p in self.space.parent_positions(parent, action)])
        # The parent itself: which of the child's layers still compute what they computed in it (3.4 sharing,
        # EPNASTuner(shared_lr_scale=...)).
        values["parent_architecture"] = json.dumps(parent, sort_keys=True)
        return {"status": "RUNNING", "values": values}

    def _merge_step(self, global_step):
        if global_step in self.merged_steps:
            return
        if self.sharing_dir:

            ParameterStore(self.sharing_dir).consolidate(global_step)
        self.merged_steps.append(global_step)

    def _finish_episode(self, episode):
        """REINFORCE update (section 3.1) and the top-k starts of the next episode."""
        ids = [[self._child_at(episode * self.steps + t, n) for t in range(self.steps)] for n in range(self.branches)]
        rewards = [[self.reward_of(i) for i in row] for row in ids]
        returns = returns_to_go(rewards)
        baseline = np.asarray(self.baseline if self.baseline is not None else returns.mean(axis=0))
        advantages = returns - baseline[None, :]
        flat = [self.children[i] for row in ids for i in row]
        update = self.policy.reinforce_step(
            [self.space.features(c["parent"]) for c in flat],
            [self.space.action_masks(c["parent"]) for c in flat],
            [c["action"] for c in flat],
            advantages.reshape(-1),
            num_branches=self.branches,
        )
        self.baseline = update_baseline(self.baseline, returns, self.baseline_decay)
        ranked = sorted((i for row in ids for i in row), key=lambda i: (-self.reward_of(i), i))
        top = ranked[: self.top_k]
        self.starts[str(episode + 1)] = [self.children[top[n % len(top)]]["architecture"] for n in range(self.branches)]
        self.history.append({
            "episode": episode,
            "rewards": rewards,
            "baseline_used": baseline.tolist(),
            "mean_reward": float(np.mean(rewards)),
            "best_reward": float(np.max(rewards)),
            "best_trial": ranked[0],
            "top_k": top,
            **update,
        })
        print(
            f"EPNAS episode {episode + 1}/{self.episodes}: mean reward {np.mean(rewards):.4f}, "
            f"best {np.max(rewards):.4f} (trial {ranked[0]}), policy loss {update['loss']:.4f}",
            flush=True,
        )

    def _advance(self):
        """Merges finished steps, updates the policy after finished episodes.

        Returns `(episode, step, branch)` of the next child to propose,
        `"IDLE"` while a step is outstanding, or `"STOPPED"`.
        """
        if "0" not in self.starts:
            self.starts["0"] = self._initial_starts()
        for global_step in range(self.episodes * self.steps):
            episode, step = divmod(global_step, self.steps)
            ids = [self._child_at(global_step, n) for n in range(self.branches)]
            if None in ids:
                return episode, step, ids.index(None)
            if any(self.trials[i].status not in ENDED for i in ids):
                return "IDLE"
            self._merge_step(global_step)
            if step == self.steps - 1 and len(self.history) <= episode:
                self._finish_episode(episode)
        return "STOPPED"

    def populate_space(self, trial_id):
        nxt = self._advance()
        if isinstance(nxt, str):
            return {"status": nxt}
        return self._propose(trial_id, *nxt)

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        if self.max_trials and len(self.trials) >= self.max_trials and len(self.history) < self.episodes:
            # KerasTuner stops without asking `populate_space` once every
            # child exists: the last episode's update happens here.
            if self._advance() == "STOPPED":
                self.save()
        return super().create_trial(tuner_id)

    # -- state ------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        state.update(
            epnas_settings=self._settings(),
            starts=self.starts,
            children=self.children,
            history=self.history,
            baseline=self.baseline,
            merged_steps=list(self.merged_steps),
            policy=self.policy.get_state(),
        )
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = json.loads(json.dumps(state["epnas_settings"]))
        current = json.loads(json.dumps(self._settings()))
        if saved != current:
            changed = sorted(k for k in current if saved.get(k) != current.get(k))
            raise ValueError(
                f"The saved EPNAS search used other settings ({', '.join(changed)}): "
                f"{ {k: saved.get(k) for k in changed} } vs { {k: current[k] for k in changed} }. "
                "Resume with the same settings or start a new project."
            )
        self.starts = {k: [list(a) for a in v] for k, v in state["starts"].items()}
        self.children = {k: dict(v) for k, v in state["children"].items()}
        self.history = [dict(h) for h in state["history"]]
        self.baseline = state["baseline"]
        self.merged_steps = [int(s) for s in state["merged_steps"]]
        self.policy.set_state(state["policy"])
