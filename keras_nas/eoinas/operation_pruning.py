"""EoiNAS gradual operation pruning by the operation importance indicator (sec. 3.2-3.3)."""

import os

import keras
import numpy as np
from keras_nas import io
from keras_nas.eoinas.search_cell import cell_edges

CRITERIA = ("importance", "alpha")


def architecture_beta(alpha, live):
    """beta of Eq. (2): softmax of alpha over the live ops of each edge (0 for pruned)."""
    alpha = np.asarray(alpha, dtype="float64")
    masked = np.where(np.asarray(live) > 0.5, alpha, -np.inf)
    masked = masked - masked.max(axis=-1, keepdims=True)
    e = np.exp(masked)
    return e / e.sum(axis=-1, keepdims=True)


def operation_importance(alpha, live, accuracy, counts, lam=0.5):
    """I = beta + lambda * C^a / C^e (Eq. 6-7; lambda = 0.5 in the paper).

    `accuracy` (C^a) is the validation accuracy summed over the iterations an
    op was sampled, `counts` (C^e) the training iterations it was sampled. An
    op never sampled has C = 0. Pruned ops get -inf.
    """
    counts = np.asarray(counts, dtype="float64")
    ratio = np.divide(np.asarray(accuracy, dtype="float64"), counts, out=np.zeros_like(counts), where=counts > 0)
    scores = architecture_beta(alpha, live) + lam * ratio
    return np.where(np.asarray(live) > 0.5, scores, -np.inf)


def alpha_scores(alpha, live):
    """The +GOP ablation (Table 3): rank by beta alone; pruned ops -inf."""
    return np.where(np.asarray(live) > 0.5, architecture_beta(alpha, live), -np.inf)


def prune_step(scores, live):
    """Removes the lowest-scored live op of every edge that still has two or more.

    Returns:
        `(new_live, [(edge, op_index), ...])`.
    """
    live = np.array(live, dtype="float32")
    scores = np.asarray(scores, dtype="float64")
    pruned = []
    for edge in range(live.shape[0]):
        alive = np.flatnonzero(live[edge] > 0.5)
        if len(alive) <= 1:
            continue
        worst = alive[int(np.argmin(scores[edge, alive]))]
        live[edge, worst] = 0.0
        pruned.append((edge, int(worst)))
    return live, pruned


def is_pruning_epoch(epoch, warmup_epochs, interval):
    """Algorithm 1 line 6 for 1-based `epoch`: after warm-up, every `interval` epochs.

    With the paper's 20/20 this is `epoch > 20 and epoch % 20 == 0`
    (epochs 40, 60, ..., 160: seven prunings take 8 ops down to 1).
    """
    return epoch > warmup_epochs and (epoch - warmup_epochs) % interval == 0


@keras.saving.register_keras_serializable(package="keras_nas")
class OperationPruning(keras.callbacks.Callback):
    """Prunes the least important op of every edge at the pruning epochs.

    After each pruning epoch the callback computes the scores of every live op
    of each edge of the normal and the reduction cell, switches the lowest
    one off in the model's live mask (sampling and mixing skip it from the
    next step on, without re-tracing), and appends the decision with the
    scores of all live ops to `log_path` (JSON, written atomically).

    Args:
        warmup_epochs: int. Epochs before pruning may start. Defaults to `20`.
        interval: int. Epochs between prunings ("a step" of k epochs).
            Defaults to `20`.
        criterion: str. `"importance"` (EoiNAS, Eq. 7) or `"alpha"`
            (Baseline+GOP of Table 3). Defaults to `"importance"`.
        importance_lambda: float. lambda of Eq. (7). Defaults to `0.5`.
        log_path: str or None. JSON file for the decisions. Defaults to `None`.

    Example:

    >>> model.fit(data, epochs=160, callbacks=[OperationPruning(20, 20, log_path="pruning.json")])
    """

    def __init__(self, warmup_epochs=20, interval=20, criterion="importance", importance_lambda=0.5,
                 log_path=None):
        super().__init__()
        if criterion not in CRITERIA:
            raise ValueError(f"`criterion` must be one of {list(CRITERIA)}. Received: criterion={criterion!r}")
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"`interval` must be a positive int. Received: interval={interval!r}")
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"`warmup_epochs` must be an int >= 0. Received: warmup_epochs={warmup_epochs!r}")
        self.warmup_epochs = warmup_epochs
        self.interval = interval
        self.criterion = criterion
        self.importance_lambda = importance_lambda
        self.log_path = log_path
        self.decisions = []

    def on_train_begin(self, logs=None):

        # A resumed search continues the log it already wrote.
        if self.log_path and os.path.exists(self.log_path):
            self.decisions = list(io.read_json(self.log_path, default={}).get("decisions", []))

    def scores(self, kind):
        """Current scores `(edges, ops)` of cell type `kind` ("normal"/"reduce")."""
        model = self.model
        index = 0 if kind == "normal" else 1
        alpha = model.alphas[kind].numpy()
        live = model.lives[kind].numpy()
        if self.criterion == "alpha":
            return alpha_scores(alpha, live)
        return operation_importance(alpha, live, model.op_accuracy.numpy()[index], model.op_counts.numpy()[index],
                                    self.importance_lambda)

    def on_epoch_end(self, epoch, logs=None):
        if not is_pruning_epoch(epoch + 1, self.warmup_epochs, self.interval):
            return

        model = self.model
        edges = cell_edges(model.steps)
        # A search resumed from the checkpoint of an earlier epoch redoes this
        # epoch: forget what a killed run logged for it.
        self.decisions = [d for d in self.decisions if d["epoch"] < epoch + 1]
        for kind in ("normal", "reduce"):
            scores = self.scores(kind)
            live_before = model.lives[kind].numpy()
            new_live, pruned = prune_step(scores, live_before)
            model.lives[kind].assign(new_live)
            for edge, op in pruned:
                alive = np.flatnonzero(live_before[edge] > 0.5)
                self.decisions.append({
                    "epoch": epoch + 1,
                    "cell": kind,
                    "edge": edge,
                    "edge_nodes": list(edges[edge]),
                    "pruned": model.primitives[op],
                    "criterion": self.criterion,
                    "scores": {model.primitives[k]: float(scores[edge, k]) for k in alive},
                })
        if self.log_path:
            io.atomic_write_json(self.log_path, {"decisions": self.decisions})

    def get_config(self):
        return {
            "warmup_epochs": self.warmup_epochs,
            "interval": self.interval,
            "criterion": self.criterion,
            "importance_lambda": self.importance_lambda,
            "log_path": self.log_path,
        }
