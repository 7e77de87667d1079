"""CNAS progressive zeroing (paper 004, sec. 2.2) as a Keras callback: one iteration per epoch."""

import time

import keras
import numpy as np
from keras_nas.cnas.channel_graph import ChannelGraph
from keras_nas.cnas.progressive import zero_least_salient
from keras_nas.cnas.sparse import mask_layers, read_masks, write_masks
from keras_nas.cnas.taylor import SALIENCY_FORMS, channel_importance, saliency_function


@keras.saving.register_keras_serializable(package="keras_nas")
class ChannelPruning(keras.callbacks.Callback):
    """Zeroes the least salient input channels before every epoch until |W'|/|W| <= rho (and a latency target is met).

    Each epoch of `fit` is one iteration of the search: at its start, the
    Taylor saliency of every kept input channel is accumulated over
    `saliency_batches` minibatches of `saliency_data` with the weights frozen
    (Algorithm 1), normalised per layer, and the fraction `gamma` of the
    remaining channels with the lowest saliency is zeroed (the last step
    only as many as reach rho); the epoch itself is the single fine-tuning
    epoch between iterations. Training stops after the epoch in which the
    sparsity |W'| / |W| reached `target_sparsity`, or when nothing more can
    be removed (`reached` stays False).

    With `target_latency_ms` and `latency_fn` the search also goes on until
    `latency_fn(masks)` (the materialised sparse model's measured latency)
    is at most the target; without `target_sparsity` the latency alone
    decides, and each iteration zeroes the full fraction gamma. Each record
    then holds `latency_ms`.

    The state lives in the model (mask variables), so a run restored from a
    checkpoint continues where it stopped; `history` lists one record per
    iteration (`iteration`, `removed`, `remaining`, `params`, `sparsity`,
    `saliency_seconds`) and can be restored with `set_history`.

    Args:
        topology: dict. The one-shot network's topology (space builder with
            `return_topology=True`).
        target_sparsity: float in (0, 1) or None. rho = |W*| / |W|. Paper:
            0.46. None (only with `target_latency_ms`): no weight target.
        gamma: float in (0, 1). Share of the remaining input channels zeroed
            per iteration. Paper: 0.1. Defaults to `0.1`.
        saliency_batches: int. Minibatches m per saliency. Defaults to `10`.
        finetune_epochs: int. Fine-tuning epochs between iterations. Paper:
            1. Defaults to `1`.
        saliency_data: `tf.data.Dataset` of `(images, labels)`. Not part of
            the config: pass it again after `from_config` (`set_data`).
        strategy: `tf.distribute.Strategy` or None. Not part of the config.
        verbose: int. Print one line per iteration. Defaults to `1`.
        saliency_form: str. `"taylor"`: zero the channels with the lowest
            normalised `|x dx|` (Molchanov et al. 2017); `"reciprocal"`:
            accumulate `1 / |x dx|` and zero the largest normalised values,
            as Algorithm 1 writes it (`keras_nas.cnas.minibatch_term`).
            Defaults to `"taylor"`.
        target_latency_ms: float > 0 or None. Go on until the sparse
            model's latency is at most this. Needs `latency_fn`. Defaults to
            None.
        latency_fn: callable or None. `masks -> ms`: the latency of the
            sparse model of those masks (the command materialises it and
            times it with TFLite). Not part of the config: pass it again
            after `from_config` (`set_latency_fn`).
        cost_fn: callable or None. `masks -> {edge: ms}`: what one more
            input channel of each edge costs
            (`keras_nas.cnas.latency_model.channel_savings` from a `cnas`
            latency table). Given, channels go in increasing saliency per
            ms saved instead of increasing saliency (ours, not the
            paper's: a latency target is then reached losing less
            saliency). Not part of the config (`set_cost_fn`). Defaults
            to None.

    Example:

    >>> import keras_nas
    >>> from keras_nas.cnas.nasnet_space import channel_nasnet
    >>> data = keras_nas.data.load("digits")
    >>> model, topology = channel_nasnet(1, 3, 8, input_shape=(8, 8, 1), return_topology=True)
    >>> model.compile("sgd", "sparse_categorical_crossentropy")
    >>> pruning = ChannelPruning(topology, 0.5, saliency_data=data.train)
    >>> model.fit(data.train, epochs=100, callbacks=[pruning])  # stops at rho
    """

    def __init__(self, topology, target_sparsity, gamma=0.1, saliency_batches=10, finetune_epochs=1,
                 saliency_data=None, strategy=None, verbose=1, saliency_form="taylor", target_latency_ms=None,
                 latency_fn=None, cost_fn=None):
        super().__init__()

        if target_sparsity is None and target_latency_ms is None:
            raise ValueError("`target_sparsity` or `target_latency_ms` must be given.")
        if target_sparsity is not None and (isinstance(target_sparsity, bool) or not isinstance(
                target_sparsity, (int, float)) or not 0 < target_sparsity < 1):
            raise ValueError(f"`target_sparsity` must be in (0, 1). Received: target_sparsity={target_sparsity!r}")
        if target_latency_ms is not None and (isinstance(target_latency_ms, bool) or not isinstance(
                target_latency_ms, (int, float)) or not target_latency_ms > 0):
            raise ValueError(f"`target_latency_ms` must be a float > 0. Received: target_latency_ms={target_latency_ms!r}")
        if not isinstance(gamma, (int, float)) or not 0 < gamma < 1:
            raise ValueError(f"`gamma` must be in (0, 1). Received: gamma={gamma!r}")
        if isinstance(saliency_batches, bool) or not isinstance(saliency_batches, int) or saliency_batches < 1:
            raise ValueError(f"`saliency_batches` must be a positive int. Received: saliency_batches={saliency_batches!r}")
        if isinstance(finetune_epochs, bool) or not isinstance(finetune_epochs, int) or finetune_epochs < 1:
            raise ValueError(f"`finetune_epochs` must be a positive int. Received: finetune_epochs={finetune_epochs!r}")
        if saliency_form not in SALIENCY_FORMS:
            raise ValueError(f"`saliency_form` must be one of {list(SALIENCY_FORMS)}. "
                             f"Received: saliency_form={saliency_form!r}")
        self.saliency_form = saliency_form
        self.finetune_epochs = finetune_epochs
        self.topology = topology
        self.graph = ChannelGraph(topology)
        self.target_sparsity = None if target_sparsity is None else float(target_sparsity)
        self.target_latency_ms = None if target_latency_ms is None else float(target_latency_ms)
        self.latency_fn = latency_fn
        self.cost_fn = cost_fn
        self.gamma = float(gamma)
        self.saliency_batches = saliency_batches
        self.saliency_data = saliency_data
        self.strategy = strategy
        self.verbose = verbose
        self.history = []
        self.reached = False
        self.stalled = False
        self._saliency = None

    def set_data(self, saliency_data, strategy=None):
        self.saliency_data = saliency_data
        self.strategy = strategy
        self._saliency = None

    def set_history(self, history):
        self.history = [dict(h) for h in history]

    def set_latency_fn(self, latency_fn):
        self.latency_fn = latency_fn

    def set_cost_fn(self, cost_fn):
        self.cost_fn = cost_fn

    @property
    def target_params(self):
        """|W*| to reach, None without a weight target."""
        if self.target_sparsity is None:
            return None
        return int(np.floor(self.target_sparsity * self.graph.total_params))

    def _latency(self, masks):
        if self.latency_fn is None:
            raise ValueError("`latency_fn` must be set for a `target_latency_ms` (pass it or call `set_latency_fn`).")
        return float(self.latency_fn(masks))

    def meets_targets(self, masks, latency_ms=None):
        """Whether `masks` meet the weight target and the latency target (`latency_ms` measured if not given)."""
        if self.target_params is not None and self.graph.count_params(masks) > self.target_params:
            return False
        if self.target_latency_ms is None:
            return True
        if latency_ms is None:
            latency_ms = (self.history[-1].get("latency_ms") if self.history else None)
            if latency_ms is None:
                latency_ms = self._latency(masks)
        return latency_ms <= self.target_latency_ms

    def _current(self):

        return read_masks(self.model, self.graph)

    def on_epoch_begin(self, epoch, logs=None):

        if epoch % self.finetune_epochs:
            return
        masks = self._current()
        if self.meets_targets(masks):
            self.reached = True
            return
        if self.saliency_data is None:
            raise ValueError("`saliency_data` must be set before training (pass it or call `set_data`).")
        start = time.perf_counter()
        if self._saliency is None:
            self._saliency = saliency_function(self.model, mask_layers(self.model, self.graph), self.strategy,
                                               self.saliency_form)
        values = self._saliency(self.saliency_data, self.saliency_batches)
        eff = self.graph.effective(masks)
        saliency = channel_importance(dict(zip(self.graph.edges, values)), eff, self.saliency_form)
        seconds = time.perf_counter() - start
        # Stop at rho exactly while the weights are above it; past it (a latency target still open) full steps.
        params_target = self.target_params
        if params_target is not None and self.graph.count_params(eff) <= params_target:
            params_target = None
        cost = None if self.cost_fn is None else self.cost_fn(eff)
        new, info = zero_least_salient(self.graph, eff, saliency, self.gamma, params_target, cost=cost)
        write_masks(self.model, self.graph, new)
        self.stalled = info["removed"] == 0
        record = {"iteration": len(self.history) + 1, "epoch": int(epoch), **info,
                  "sparsity": info["params"] / self.graph.total_params, "saliency_seconds": seconds}
        if self.target_latency_ms is not None:
            record["latency_ms"] = self._latency(new)
        self.history.append(record)
        self.reached = self.meets_targets(new, record.get("latency_ms"))
        if self.verbose:
            targets = ([f"target {self.target_sparsity}"] if self.target_sparsity is not None else [])
            latency = (f"; latency {record['latency_ms']:.4f} ms, target {self.target_latency_ms:.6g} ms"
                       if "latency_ms" in record else "")
            print(f"CNAS iteration {record['iteration']}: zeroed {info['removed']} input channels, "
                  f"{info['remaining']} left, |W'| = {info['params']:,} ({record['sparsity']:.3f} of |W|"
                  f"{', ' + targets[0] if targets else ''}){latency}, saliency {seconds:.1f}s", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        if (self.reached or self.stalled) and (epoch + 1) % self.finetune_epochs == 0:
            self.model.stop_training = True
        if self.history and logs:
            self.history[-1].update({k: float(v) for k, v in logs.items()})

    def get_config(self):
        return {"topology": self.topology, "target_sparsity": self.target_sparsity, "gamma": self.gamma,
                "saliency_batches": self.saliency_batches, "finetune_epochs": self.finetune_epochs, "verbose": self.verbose,
                "saliency_form": self.saliency_form, "target_latency_ms": self.target_latency_ms}
