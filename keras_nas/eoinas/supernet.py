"""The DARTS/GDAS/EoiNAS supernet with its bilevel training step."""

import keras
import numpy as np
import tensorflow as tf

from keras_nas.engine.fast_variables import fast_variable_creation
from keras_nas.eoinas.genotypes import EDGE_MODES, EXECUTORS
from keras_nas.eoinas.gumbel_edge import run_sampled
from keras_nas.eoinas.op_functions import OpFunctions, without_graph_rewrites
from keras_nas.eoinas.search_cell import SearchCell, cell_edges
from keras_nas.eoinas import darts_ops

CELL_TYPES = ("normal", "reduce")
# What `keras.optimizers.Optimizer.apply` does besides `update_step`.
_APPLY_EXTRAS = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                 "gradient_accumulation_steps", "loss_scale_factor")


def _replica_scale():
    """1 / replicas: the optimizer sums per-replica gradients under tf.distribute."""
    return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync


def clip_factor(squared_norm, clip_norm):
    """`clip / max(norm, clip)`: the factor of `tf.clip_by_global_norm` from the summed squares."""
    return clip_norm / tf.maximum(tf.sqrt(squared_norm), clip_norm)


def masked_logits(alpha, live):
    """Log-probabilities of the live ops (Eq. 2); pruned ops get -inf."""
    return tf.nn.log_softmax(tf.where(live > 0.5, alpha, tf.fill(tf.shape(alpha), -np.inf)), axis=-1)


def architecture_weights(alpha, live, temperature, edge_mode, training=True):
    """Per-edge op weights and op index for one forward pass.

    - `darts`: `softmax(alpha)` over live ops (Eq. 2); index = argmax.
    - `gumbel_soft`: `softmax((log p + g) / T)` with `g ~ Gumbel(0, 1)` (Eq. 5).
    - `gdas`: hard one-hot of that sample's argmax with the straight-through
      gradient of the soft sample, `h = one_hot - stop_gradient(p) + p`
      (GDAS, "differentiable architecture sampler").

    Args:
        alpha: float tensor `(edges, ops)`.
        live: float tensor `(edges, ops)`, 1 for live ops, 0 for pruned ones.
        temperature: scalar T > 0.
        edge_mode: str.

    Returns:
        `(weights (edges, ops), index int32 (edges,))`.
    """
    log_p = masked_logits(alpha, live)
    if edge_mode == "darts":
        weights = tf.exp(log_p)
        return weights, tf.argmax(weights, axis=-1, output_type=tf.int32)
    uniform = tf.random.uniform(tf.shape(alpha), minval=1e-10, maxval=1.0)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    probs = tf.nn.softmax((log_p + gumbel) / temperature, axis=-1)
    index = tf.argmax(probs, axis=-1, output_type=tf.int32)
    if edge_mode == "gumbel_soft":
        return probs, index
    hard = tf.one_hot(index, tf.shape(alpha)[-1], dtype=probs.dtype)
    return hard - tf.stop_gradient(probs) + probs, index


def _plain_momentum_sgd(optimizer):
    """Keras SGD with momentum and nothing `apply` adds around `update_step`."""
    return (type(optimizer) is keras.optimizers.SGD and optimizer.momentum > 0
            and not any(getattr(optimizer, a, None) for a in _APPLY_EXTRAS))


class _OpsState:
    """What the "ops" executor keeps between steps: the weight list, zero gradients, the compiled update."""

    def __init__(self):
        self.variables = None  # (weights, weights outside the edges, position of each weight)
        self.zeros = {}  # shape -> zero tensor, the gradient of a weight that did not run


@keras.saving.register_keras_serializable(package="keras_nas")
class BilevelSearchModel(keras.Model):
    """Cell-search supernet trained by alternating weight and architecture steps.

    One network for every differentiable strategy: the edge mode (`"gdas"`,
    `"darts"`, `"gumbel_soft"`) only changes how `architecture_weights`
    turns alpha into per-edge weights. Normal cells share `alpha_normal`,
    reduction cells `alpha_reduce` (DARTS/GDAS); one architecture sample per
    cell type and forward pass, shared by the cells of that type (GDAS).

    `train_step` takes `((x_train, y_train), (x_val, y_val))` and, inside the
    compiled step (Algorithm 1 lines 2-5):

    1. updates the weights on the training batch by SGD with L2 weight decay
       added to the clipped gradient (PyTorch `SGD(weight_decay)` semantics);
    2. computes the validation loss of a fresh sample and, unless
       `arch_enabled` is 0 (warm-up), updates alpha with Adam (coupled L2
       `arch_weight_decay`);
    3. adds one to `op_counts` (C^e) for each op sampled in step 1 and the
       validation batch accuracy to `op_accuracy` (C^a) for each op sampled
       in step 2 (Eq. 6).

    Variables that callbacks drive: `temperature` (Gumbel T), `arch_enabled`
    (0/1), `live_normal` / `live_reduce` (1 live, 0 pruned).

    Args:
        cells: int. Cells in the network; reduction cells at `cells // 3` and
            `2 * cells // 3`. Defaults to `8`.
        channels: int. Initial channels C. Defaults to `16`.
        num_classes: int. Defaults to `10`.
        input_shape: tuple. `(H, W, C)` of the images. Defaults to `(32, 32, 3)`.
        edge_mode: str. `"gdas"`, `"darts"` or `"gumbel_soft"`. Defaults to `"gdas"`.
        primitives: list of str. Candidate ops. Defaults to the 8 DARTS ops.
        steps: int. Intermediate nodes per cell. Defaults to `4`.
        multiplier: int. Nodes concatenated into a cell's output. Defaults to `4`.
        stem_multiplier: int. Stem channels = `stem_multiplier * channels`.
            Defaults to `3`.
        weight_decay: float. L2 on the weights (sec. 4.2). Defaults to `3e-4`.
        arch_weight_decay: float. L2 on alpha (sec. 4.2). Defaults to `1e-3`.
        grad_clip: float. Global-norm clip of the weight gradient (DARTS).
            Defaults to `5.0`.
        temperature: float. Initial Gumbel temperature (sec. 4.2). Defaults to `5.0`.
        lower_arch_case: bool. How `"gdas"` edges run in the architecture
            step (see `keras_nas.eoinas.gumbel_edge.run_sampled`). `False`:
            a functional `Case` op per edge, whose gradient also computes
            the (unused) weight gradients of the sampled op. `True`: the
            architecture step gets its own trace with lowered `Case` ops,
            where Grappler prunes the weight gradients: less compute per
            architecture step (-20% CPU time at the benchmark's small size),
            about 2.5x longer tracing. Defaults to `False`.
        lower_weight_case: bool. The same choice for the weight step (its
            forward and backward pass and, with `update_unsampled_ops=False`,
            the per-edge update). A functional `Case` costs more the larger
            its tensors: at the paper's search size lowered cases give a
            faster step for a much longer trace and several GB of host
            memory per lowered step; at small sizes lowered is slower
            (benchmarks/RESULTS.md). Worth it for long searches (the
            paper's is ~62,000 steps), not for a few minutes on CPU. When
            either lowering is on, the two steps are traced separately
            instead of sharing one trace.
            Defaults to `False`.
        update_unsampled_ops: bool. Whether the weight step also updates the
            ops an edge did not sample (`"gdas"` only). `True`: one SGD
            update over all weights, the unsampled ops with a zero gradient,
            so their momentum and weight decay still move them -- what the
            2019 PyTorch GDAS code does once an op has been sampled
            (`zero_grad()` zeroed gradients then). `False`: the SGD update,
            weight decay and clipping run per edge on the sampled op's
            weights only (a `Case` op per edge) and the other ops stay as
            they are -- what the same code does on PyTorch >= 2.0, where
            `zero_grad()` sets gradients to `None` and SGD skips those
            weights; faster (`benchmarks/bench_eoinas.py`). Single replica
            only. Defaults to `True`.
        executor: str. How a training step runs. `"ops"`: the step's loop
            over cells and edges runs eagerly, as in the PyTorch GDAS code,
            and each op runs as a small compiled function shared by every
            edge with that op and input shape
            (`keras_nas.eoinas.op_functions`): only sampled ops run, nothing
            large is traced, so the first step comes in seconds; one host
            read of the sampled indices per forward pass (PyTorch GDAS reads
            one per edge); the architecture step's backward pass skips the
            weight gradients. `"graph"`: the whole bilevel step is one traced
            graph with a `Case` op per edge (minutes and gigabytes to trace
            at the paper's size; needed for `tf.distribute` with several
            replicas and mixed precision, and where `lower_*_case` apply).
            `"auto"` (default): `"ops"` on one replica with float32
            compute, else `"graph"`. Measured: benchmarks/RESULTS.md.
        latency_costs: dict or None. The derived evaluation network's
            latency per (edge, op) from a `darts` latency table
            (`keras_nas.eoinas.latency_cost.edge_costs`). With it the
            model tracks `expected_latency_ms` (the module doc of
            `latency_cost`) each architecture step. Defaults to None.
        latency_weight: float >= 0. Adds `latency_weight * E[latency] /
            latency_reference_ms` to the architecture loss (ProxylessNAS
            Eq. 3 form, made unit-free), its gradient reaching alpha through
            the op probabilities. Needs `latency_costs`. Defaults to `0.0`.
        latency_reference_ms: float or None. The latency the term is
            measured in; None: the expected latency at uniform alpha (the
            search's start). Defaults to None.
        **kwargs: `name`.

    Example:

    >>> model = BilevelSearchModel(cells=5, channels=8, num_classes=10, input_shape=(8, 8, 1))
    >>> model.compile()
    >>> model.fit(tf.data.Dataset.zip((train, validation.repeat())), epochs=2)
    """

    def __init__(self, cells=8, channels=16, num_classes=10, input_shape=(32, 32, 3), edge_mode="gdas",
                 primitives=None, steps=4, multiplier=4, stem_multiplier=3, weight_decay=3e-4,
                 arch_weight_decay=1e-3, grad_clip=5.0, temperature=5.0, lower_arch_case=False,
                 update_unsampled_ops=True, lower_weight_case=False, executor="auto", latency_costs=None,
                 latency_weight=0.0, latency_reference_ms=None, **kwargs):
        super().__init__(**kwargs)

        if edge_mode not in EDGE_MODES:
            raise ValueError(f"`edge_mode` must be one of {list(EDGE_MODES)}. Received: edge_mode={edge_mode!r}")
        if not isinstance(cells, int) or cells < 3:
            raise ValueError(f"`cells` must be an int >= 3 (two are reduction cells). Received: cells={cells!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"`channels` must be a positive int. Received: channels={channels!r}")
        for name, value in (("update_unsampled_ops", update_unsampled_ops), ("lower_arch_case", lower_arch_case),
                            ("lower_weight_case", lower_weight_case)):
            if not isinstance(value, bool):
                raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
        if not update_unsampled_ops and edge_mode != "gdas":
            raise ValueError("`update_unsampled_ops=False` needs `edge_mode='gdas'` (the other modes run and "
                             f"train every op). Received: edge_mode={edge_mode!r}")
        for name, value in (("lower_arch_case", lower_arch_case), ("lower_weight_case", lower_weight_case)):
            if value and edge_mode != "gdas":
                raise ValueError(f"`{name}=True` needs `edge_mode='gdas'` (the other modes have no sampled op). "
                                 f"Received: edge_mode={edge_mode!r}")
        if executor not in EXECUTORS:
            raise ValueError(f"`executor` must be one of {list(EXECUTORS)}. Received: executor={executor!r}")
        if executor == "ops" and (lower_arch_case or lower_weight_case):
            raise ValueError("`lower_arch_case` / `lower_weight_case` shape the one-graph step: they need "
                             "`executor='graph'` (or 'auto'). Received: executor='ops'")
        primitives = list(darts_ops.PRIMITIVES if primitives is None else primitives)
        unknown = [p for p in primitives if p not in darts_ops.OPS]
        if unknown:
            raise ValueError(f"`primitives` must be names from {list(darts_ops.OPS)}. Received unknown: {unknown}")
        self.cells = cells
        self.channels = channels
        self.num_classes = num_classes
        self.image_shape = tuple(input_shape)
        self.edge_mode = edge_mode
        self.primitives = primitives
        self.steps = steps
        self.multiplier = multiplier
        self.stem_multiplier = stem_multiplier
        self.weight_decay = weight_decay
        self.arch_weight_decay = arch_weight_decay
        self.grad_clip = grad_clip
        self.initial_temperature = temperature
        self.lower_arch_case = lower_arch_case
        self.lower_weight_case = lower_weight_case
        self.update_unsampled_ops = update_unsampled_ops
        self.executor = executor
        # The executor `compile` chose ("ops" or "graph"); None before compile.
        self.active_executor = None
        self.op_functions = OpFunctions()
        # Plain-Python state of the "ops" executor, out of Keras' variable tracking.
        self._ops_state = _OpsState()
        self.num_edges = len(cell_edges(steps))
        self._set_latency(latency_costs, latency_weight, latency_reference_ms)

        stem_channels = stem_multiplier * channels
        self.stem_conv = keras.layers.Conv2D(stem_channels, 3, padding="same", use_bias=False, name="stem_conv")
        self.stem_bn = darts_ops.batch_norm(True, "stem_bn")
        self.cell_layers = []
        c_curr, reduction_prev = channels, False
        for i in range(cells):
            reduction = i in self.reduction_indices(cells)
            if reduction:
                c_curr *= 2
            self.cell_layers.append(SearchCell(
                c_curr, reduction=reduction, reduction_prev=reduction_prev, steps=steps,
                multiplier=multiplier, primitives=primitives, edge_mode=edge_mode, name=f"cell_{i}",
            ))
            reduction_prev = reduction
        self.global_pool = keras.layers.GlobalAveragePooling2D(name="global_pool")
        self.classifier = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")

        shape = (self.num_edges, len(primitives))
        # alpha: zero initialisation, "equal amount of attention" (sec. 4.2).
        self.alpha_normal = self.add_weight(shape=shape, initializer="zeros", name="alpha_normal")
        self.alpha_reduce = self.add_weight(shape=shape, initializer="zeros", name="alpha_reduce")
        self.live_normal = self.add_weight(shape=shape, initializer="ones", trainable=False, name="live_normal")
        self.live_reduce = self.add_weight(shape=shape, initializer="ones", trainable=False, name="live_reduce")
        self.temperature = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(temperature), trainable=False, name="temperature")
        self.arch_enabled = self.add_weight(shape=(), initializer="ones", trainable=False, name="arch_enabled")
        # C^e and C^a of Eq. (6), index 0 normal, 1 reduce.
        # Under tf.distribute every replica samples and counts its own ops:
        # the statistics add up ("sum") across replicas.
        self.op_counts = self.add_weight(shape=(2,) + shape, initializer="zeros", trainable=False,
                                         aggregation="sum", name="op_counts")
        self.op_accuracy = self.add_weight(shape=(2,) + shape, initializer="zeros", trainable=False,
                                           aggregation="sum", name="op_accuracy")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.arch_loss_tracker = keras.metrics.Mean(name="arch_loss")
        self.arch_accuracy_tracker = keras.metrics.Mean(name="arch_accuracy")
        self.latency_tracker = keras.metrics.Mean(name="expected_latency_ms") if latency_costs else None
        self.arch_optimizer = None
        self._traced_forward_backward = {
            part: tf.function(lambda x, y, part=part: self._forward_backward(x, y, part), reduce_retracing=True)
            for part in ("all", "weights", "arch")
        }
        # Every variable now, from the shapes (no symbolic pass through the
        # 896 ops), so nothing is created inside a traced conditional later.
        with fast_variable_creation():
            self.build((None,) + self.image_shape)

    def _set_latency(self, costs, weight, reference):
        from keras_nas.eoinas import latency_cost

        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"`latency_weight` must be a float >= 0. Received: latency_weight={weight!r}")
        if weight and not costs:
            raise ValueError("`latency_weight` > 0 needs `latency_costs` (from a darts latency table).")
        self.latency_costs, self.latency_weight = costs, float(weight)
        self.latency_reference_ms = None if reference is None else float(reference)
        if not costs:
            return
        shape = (self.num_edges, len(self.primitives))
        arrays = [np.asarray(costs[kind], dtype="float32") for kind in CELL_TYPES]
        if any(a.shape != shape for a in arrays) or "constant_ms" not in costs:
            raise ValueError(f"`latency_costs` must hold `constant_ms` and `normal`/`reduce` arrays of shape {shape} "
                             "(`keras_nas.eoinas.latency_cost.edge_costs`).")
        if reference is None:
            uniform = {kind: np.zeros(shape) for kind in CELL_TYPES}
            self.latency_reference_ms = latency_cost.expected_latency_numpy(
                uniform, {kind: np.ones(shape) for kind in CELL_TYPES}, costs, self.primitives, self.steps)
        if not self.latency_reference_ms > 0:
            raise ValueError(f"`latency_reference_ms` must be > 0. Received: {self.latency_reference_ms!r}")
        self._latency_tensors = (
            [tf.constant(a) for a in arrays],
            tf.constant([0.0 if p == "none" else 1.0 for p in self.primitives]),
            tf.constant(latency_cost.keep_weights(self.steps), "float32"),
        )

    def expected_latency(self):
        """Expected latency (ms) of the derived evaluation network under the current alpha (needs `latency_costs`)."""
        from keras_nas.eoinas import latency_cost

        costs, none_mask, keep = self._latency_tensors
        return float(self.latency_costs["constant_ms"]) + latency_cost.expected_latency(
            self.arch_variables, [self.live_normal, self.live_reduce], costs, none_mask, keep)

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.stem_conv.build(shape)
        shape = self.stem_conv.compute_output_shape(shape)
        self.stem_bn.build(shape)
        s0 = s1 = shape
        for cell in self.cell_layers:
            cell.build([s0, s1])
            s0, s1 = s1, cell.compute_output_shape([s0, s1])
        self.global_pool.build(s1)
        self.classifier.build(self.global_pool.compute_output_shape(s1))
        self.built = True

    @staticmethod
    def reduction_indices(cells):
        """Cells at 1/3 and 2/3 of the depth are reduction cells (sec. 4.2)."""
        return (cells // 3, 2 * cells // 3)

    # -- variables -------------------------------------------------------

    @property
    def arch_variables(self):
        return [self.alpha_normal, self.alpha_reduce]

    @property
    def weight_variables(self):
        arch = {id(v) for v in self.arch_variables}
        return [v for v in self.trainable_variables if id(v) not in arch]

    @property
    def alphas(self):
        return {"normal": self.alpha_normal, "reduce": self.alpha_reduce}

    @property
    def lives(self):
        return {"normal": self.live_normal, "reduce": self.live_reduce}

    # -- forward ---------------------------------------------------------

    def forward(self, x, training=None, lower_case=False):
        """Class probabilities and the op index sampled per cell type.

        `lower_case` picks how `"gdas"` edges run their sampled op (see
        `keras_nas.eoinas.gumbel_edge.run_sampled`).
        """
        samples = {
            kind: architecture_weights(self.alphas[kind], self.lives[kind], self.temperature, self.edge_mode)
            for kind in CELL_TYPES
        }
        s = self.stem_bn(self.stem_conv(x), training=training)
        s0 = s1 = s
        for cell in self.cell_layers:
            weights, index = samples["reduce" if cell.reduction else "normal"]
            s0, s1 = s1, cell([s0, s1], weights, index, training=training, lower_case=lower_case)
        probs = self.classifier(self.global_pool(s1))
        return probs, {kind: samples[kind][1] for kind in CELL_TYPES}

    def call(self, inputs, training=None):
        if self._runs_ops():
            samples = self._sample_ops()
            with without_graph_rewrites():
                return self._ops_forward(inputs, samples, training=bool(training), weight_gradients=False)[0]
        return self.forward(inputs, training=training)[0]

    # -- the "ops" executor ----------------------------------------------

    def _runs_ops(self):
        return self.active_executor == "ops" and tf.executing_eagerly()

    def _sample_ops(self):
        """`{kind: (edge weights, index tensor, index on the host)}`: one host read for both cell types."""
        samples = {kind: architecture_weights(self.alphas[kind], self.lives[kind], self.temperature, self.edge_mode)
                   for kind in CELL_TYPES}
        host = tf.stack([samples[kind][1] for kind in CELL_TYPES]).numpy().tolist()
        return {kind: samples[kind] + (host[i],) for i, kind in enumerate(CELL_TYPES)}

    def _ops_forward(self, x, samples, training, weight_gradients=True):
        """The forward pass of `forward`, op by op through `self.op_functions`; returns `(probs, ops run)`."""
        functions = self.op_functions
        s0 = s1 = functions.call((self.stem_conv, self.stem_bn), x, training, weight_gradients)
        ran = []
        for cell in self.cell_layers:
            edge_weights, _, index = samples["reduce" if cell.reduction else "normal"]
            states = [functions.call(cell.preprocess0, s0, training, weight_gradients),
                      functions.call(cell.preprocess1, s1, training, weight_gradients)]
            k = 0
            for i in range(cell.steps):
                total = None
                for j in range(i + 2):
                    edge = cell.edges[k]
                    if self.edge_mode == "gdas":
                        op = edge.candidate_ops[index[k]]
                        ran.append(op)
                        y = functions.call(op, states[j], training, weight_gradients,
                                           straight_through=(edge_weights, k, index[k]))
                    else:
                        ran.extend(edge.candidate_ops)
                        y = functions.call_mixture(edge.candidate_ops, states[j], edge_weights, k, training,
                                                   weight_gradients)
                    total = y if total is None else total + y
                    k += 1
                states.append(total)
            s0, s1 = s1, tf.concat(states[-cell.multiplier:], axis=-1)
        probs = functions.call((self.global_pool, self.classifier), s1, training, weight_gradients)
        return probs, ran

    def _zeros_like(self, variable):
        shape = tuple(variable.shape)
        if shape not in self._ops_state.zeros:
            self._ops_state.zeros[shape] = tf.zeros(shape, variable.dtype)
        return self._ops_state.zeros[shape]

    def _ops_weight_step(self, x, y):
        """`weight_step` with the "ops" executor: gradients of the weights that ran, then the same update."""
        samples = self._sample_ops()
        with tf.GradientTape() as tape:
            probs, ran = self._ops_forward(x, samples, training=True)
            loss = self._loss(y, probs)
        if self._ops_state.variables is None:  # walking ~7,000 layers for their variables costs; kept
            weights = self.weight_variables
            others, _ = self._edge_groups(weights)
            self._ops_state.variables = (weights, [weights[i] for i in others],
                                         {id(v): i for i, v in enumerate(weights)})
        weights, others, position = self._ops_state.variables
        used = others + [v for op in ran for v in self.op_functions.weight_variables(op)]
        grads = tape.gradient(loss, [v.value for v in used])
        grads = [self._zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, used)]
        index = {kind: samples[kind][1] for kind in CELL_TYPES}
        # The clip norm of every gradient is that of the ones that ran (the others are zero).
        factor = clip_factor(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]), self.grad_clip)
        if not self.update_unsampled_ops:
            # Only what ran is clipped, decayed and updated (see `_sampled_update`).
            if _plain_momentum_sgd(self.optimizer):
                self._momentum_sgd_update([(g, position[id(v)]) for g, v in zip(grads, used)], weights, factor)
                return probs, loss, index
            learning_rate = self.optimizer.learning_rate
            for g, v in zip(grads, used):
                self.optimizer.update_step(g * factor + self.weight_decay * v, v, learning_rate)
            self.optimizer.iterations.assign_add(1)
            return probs, loss, index
        # Every weight is updated, the unsampled ops' with a zero gradient, as the one-graph step does.
        full = [None] * len(weights)
        for g, v in zip(grads, used):
            full[position[id(v)]] = g
        if _plain_momentum_sgd(self.optimizer):
            self._momentum_sgd_update(list(zip(full, range(len(weights)))), weights, factor)
        else:
            # Any other optimizer: its own `apply` on every weight (unsampled ones with a zero gradient).
            full = [self._zeros_like(v) if g is None else g for g, v in zip(full, weights)]
            self.optimizer.apply([g * factor + self.weight_decay * v for g, v in zip(full, weights)], weights)
        return probs, loss, index

    def _momentum_sgd_update(self, updates, weights, factor):
        """Keras SGD's momentum update of `weights[i]` for each `(gradient or None, i)` of `updates`, eagerly.

        `ResourceApplyKerasMomentum` is Keras SGD's `update_step` (m = m *
        momentum - lr * g; w += m, or the Nesterov form) in one kernel; with
        L2 added to the clipped gradient (PyTorch `SGD(weight_decay)`), and
        `g = 0` for the ops that did not run, as the one-graph step does. In a
        compiled function the 1,400 updates of the paper's supernet took
        longer to trace than every op of the network.
        """
        optimizer = self.optimizer
        momentums = optimizer.momentums
        learning_rate = tf.cast(optimizer.learning_rate, "float32")
        momentum = tf.constant(optimizer.momentum, "float32")
        decay = tf.constant(self.weight_decay, "float32")
        decayed_rate = learning_rate * decay
        for g, i in updates:
            v = weights[i]  # its momentum is `momentums[i]`: the optimizer was built on `weight_variables`
            if g is None:  # an op that did not run: only weight decay, lr * (0 + wd * w) = (lr * wd) * w
                rate, step = decayed_rate, v.value.value()
            else:
                rate, step = learning_rate, g * factor + v.value.value() * decay
            tf.raw_ops.ResourceApplyKerasMomentum(
                var=v.value.handle, accum=momentums[i].value.handle, lr=rate, grad=step,
                momentum=momentum, use_nesterov=optimizer.nesterov)
        optimizer.iterations.assign_add(1)

    def _ops_arch_step(self, x, y):
        """The forward/backward pass of `arch_step` with the "ops" executor: alpha's gradient only."""
        arch = self.arch_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in arch])
            samples = self._sample_ops()
            probs, _ = self._ops_forward(x, samples, training=True, weight_gradients=False)
            loss = self._loss(y, probs)
        grads = tape.gradient(loss, [v.value for v in arch])
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, arch)]
        return probs, loss, grads, {kind: samples[kind][1] for kind in CELL_TYPES}

    # -- training --------------------------------------------------------

    def compile(self, optimizer=None, arch_optimizer=None, **kwargs):
        """SGD for the weights and Adam for alpha, with the paper's settings (sec. 4.2).

        The learning rate of `optimizer` is what an LR scheduler callback
        changes (cosine 0.025 -> 0.001).
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        compute_float32 = keras.config.dtype_policy().compute_dtype == "float32"
        executor = self.executor
        distributed = tf.distribute.has_strategy()
        if executor == "auto":
            executor = "ops" if not distributed and compute_float32 and not (
                self.lower_arch_case or self.lower_weight_case) else "graph"
        if executor == "ops" and (distributed or not compute_float32):
            raise ValueError("`executor='ops'` runs outside tf.distribute in float32; use 'graph' (or 'auto') for "
                             f"a distribution strategy or mixed precision. Received: {replicas} replica(s) under "
                             f"{type(tf.distribute.get_strategy()).__name__}, compute dtype "
                             f"{keras.config.dtype_policy().compute_dtype}")
        self.active_executor = executor
        if executor == "ops":
            # The step's Python loop runs eagerly; its pieces are compiled (`keras_nas.eoinas.op_functions`).
            kwargs["run_eagerly"] = True
            kwargs.pop("jit_compile", None)
        if optimizer is None:
            optimizer = keras.optimizers.SGD(learning_rate=0.025, momentum=0.9)
        if arch_optimizer is None:
            arch_optimizer = keras.optimizers.Adam(learning_rate=3e-4, beta_1=0.5, beta_2=0.999)
        if not self.update_unsampled_ops and replicas > 1:
            raise ValueError("`update_unsampled_ops=False` runs on one replica only (its per-edge update "
                             f"cannot aggregate across replicas). Received: {replicas} replicas")
        if not self.update_unsampled_ops:
            # The per-edge update calls the optimizer's own `update_step`,
            # bypassing what `apply` adds around it.
            extras = {a: getattr(optimizer, a, None) for a in _APPLY_EXTRAS}
            extras = {a: v for a, v in extras.items() if v}
            if extras:
                raise ValueError("`update_unsampled_ops=False` needs an optimizer without "
                                 f"{list(_APPLY_EXTRAS)} (weight decay and clipping are the model's own "
                                 f"`weight_decay` and `grad_clip`). Received: {extras}")
        super().compile(optimizer=optimizer, **kwargs)
        self.arch_optimizer = arch_optimizer
        self._ops_state = _OpsState()
        # Built eagerly: with `update_unsampled_ops=False` the weight update
        # runs inside the edges' `Case` ops, where the optimizer could not
        # create its slots.
        with fast_variable_creation():
            optimizer.build(self.weight_variables)
            arch_optimizer.build(self.arch_variables)

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.accuracy_tracker, self.arch_loss_tracker, self.arch_accuracy_tracker]
        return trackers + ([self.latency_tracker] if self.latency_tracker is not None else [])

    def _loss(self, y, probs):
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probs))

    def _forward_backward(self, x, y, part):
        """Loss and the gradients of the weights (`part="weights"`), alpha (`"arch"`) or both (`"all"`).

        Each part is traced once (a nested `tf.function`). `"weights"` and
        `"arch"` run the edges' `Case` ops lowered if `lower_weight_case` /
        `lower_arch_case` says so (lowered, Grappler prunes the gradients a
        part does not need); `"all"` (the shared trace) never does (see
        `run_sampled`).
        """
        variables = {"weights": self.weight_variables, "arch": self.arch_variables,
                     "all": self.weight_variables + self.arch_variables}[part]
        with tf.GradientTape() as tape:
            lower = {"weights": self.lower_weight_case, "arch": self.lower_arch_case, "all": False}[part]
            probs, index = self.forward(x, training=True, lower_case=lower)
            loss = self._loss(y, probs)
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
        return probs, loss, grads, index

    def _run_forward_backward(self, x, y, part):
        """`_forward_backward` of `part`, or of both parts in one shared trace (default)."""
        # Eagerly (`run_eagerly=True`, tests) run it as plain Python: only the
        # sampled branch of each edge executes, nothing is traced.
        if tf.executing_eagerly():
            run = lambda p: self._forward_backward(x, y, p)  # noqa: E731
        else:
            run = lambda p: self._traced_forward_backward[p](x, y)  # noqa: E731
        if self.lower_arch_case or self.lower_weight_case:
            return run(part)
        probs, loss, grads, index = run("all")
        n = len(self.weight_variables)
        return probs, loss, (grads[:n] if part == "weights" else grads[n:]), index

    def weight_step(self, x, y):
        """SGD on the weights (Algorithm 1 line 3)."""
        if self._runs_ops():
            with without_graph_rewrites():
                return self._ops_weight_step(x, y)
        probs, loss, grads, index = self._run_forward_backward(x, y, "weights")
        weights = self.weight_variables
        if not self.update_unsampled_ops:
            self._sampled_update(grads, weights, index)
            return probs, loss, index
        grads, _ = tf.clip_by_global_norm(grads, self.grad_clip)
        # PyTorch SGD(weight_decay): L2 added to the (clipped) gradient before momentum.
        scale = _replica_scale()
        grads = [(g + self.weight_decay * v) * scale for g, v in zip(grads, weights)]
        self.optimizer.apply(grads, weights)
        return probs, loss, index

    def _edge_groups(self, weights):
        """Positions in `weights` of each edge op's variables, and of the rest.

        Returns `(others, edges)`: `others` the positions of variables outside
        the edges (stem, pre-processing, classifier); `edges` a list of
        `(cell type, edge number, [positions of op 0's variables, ...])`.
        """
        position = {id(v): i for i, v in enumerate(weights)}
        edges, inside = [], set()
        for cell in self.cell_layers:
            kind = "reduce" if cell.reduction else "normal"
            for k, edge in enumerate(cell.edges):
                groups = [[position[id(v)] for v in op.trainable_variables] for op in edge.candidate_ops]
                edges.append((kind, k, groups))
                inside.update(i for group in groups for i in group)
        return [i for i in range(len(weights)) if i not in inside], edges

    def _sampled_update(self, grads, weights, index):
        """SGD on the sampled op of every edge and on the weights outside the edges.

        The same update as `weight_step`'s (global-norm clip, then L2 added,
        then the optimizer's own `update_step`), but the unsampled ops' (zero)
        gradients are neither clipped, decayed nor applied: one `Case` op per
        edge sums the squares of its sampled op's gradients for the global
        norm, and a second applies the update to that op's weights only.
        """
        others, edges = self._edge_groups(weights)
        optimizer = self.optimizer
        squares = lambda positions: tf.add_n(  # noqa: E731
            [tf.constant(0.0)] + [tf.reduce_sum(tf.square(grads[i])) for i in positions])
        squared = [squares(others)]
        for kind, k, groups in edges:
            squared.append(run_sampled(index[kind][k], [lambda g=g: squares(g) for g in groups],
                                       lower=self.lower_weight_case))
        factor = clip_factor(tf.add_n(squared), self.grad_clip)
        learning_rate = optimizer.learning_rate

        def update(positions):
            for i in positions:
                # PyTorch SGD(weight_decay): L2 added to the clipped gradient.
                optimizer.update_step(grads[i] * factor + self.weight_decay * weights[i], weights[i], learning_rate)
            return tf.constant(0)

        update(others)
        for kind, k, groups in edges:
            run_sampled(index[kind][k], [lambda g=g: update(g) for g in groups], lower=self.lower_weight_case)
        optimizer.iterations.assign_add(1)

    def arch_step(self, x, y):
        """Adam on alpha (Algorithm 1 line 4), skipped while `arch_enabled` is 0."""
        if self._runs_ops():
            with without_graph_rewrites():
                probs, loss, grads, index = self._ops_arch_step(x, y)
        else:
            probs, loss, grads, index = self._run_forward_backward(x, y, "arch")
        arch = self.arch_variables
        # Warm-up (Algorithm 1, first 20 epochs) freezes alpha through a
        # variable, so switching it on does not re-trace the step. Not a
        # `tf.cond` around the update: under `tf.distribute` the optimizer
        # aggregates gradients across replicas, which cannot happen inside a
        # conditional. Instead the gradient is zeroed and Adam's step counter
        # put back: from zero moments a zero gradient moves nothing, so the
        # first enabled step is exactly Adam's first step.
        if self.latency_costs:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch([v.value for v in arch])
                expected = self.expected_latency()
            if self.latency_weight:
                factor = self.latency_weight / self.latency_reference_ms
                extra = tape.gradient(expected, [v.value for v in arch])
                grads = [g + factor * tf.convert_to_tensor(e) for g, e in zip(grads, extra)]
            self.latency_tracker.update_state(expected)
        enabled = tf.cast(self.arch_enabled > 0.5, "float32")
        scale = _replica_scale() * enabled
        grads = [(g + self.arch_weight_decay * v) * tf.cast(scale, g.dtype)
                 for g, v in zip(grads, arch)]
        self.arch_optimizer.apply(grads, arch)
        iterations = self.arch_optimizer.iterations
        iterations.assign_sub(tf.cast(1.0 - enabled, iterations.dtype))
        return probs, loss, index

    def train_step(self, data):
        (x_train, y_train), (x_val, y_val) = data
        probs, loss, train_index = self.weight_step(x_train, y_train)
        val_probs, val_loss, val_index = self.arch_step(x_val, y_val)
        y_val = tf.cast(tf.reshape(y_val, [-1]), tf.int64)
        val_acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(val_probs, axis=-1), y_val), tf.float32))
        num_ops = len(self.primitives)
        counts = tf.stack([tf.one_hot(train_index[k], num_ops) for k in CELL_TYPES])
        accs = tf.stack([tf.one_hot(val_index[k], num_ops) for k in CELL_TYPES]) * val_acc
        self.op_counts.assign_add(counts)
        self.op_accuracy.assign_add(accs)
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(y_train, probs)
        self.arch_loss_tracker.update_state(val_loss)
        self.arch_accuracy_tracker.update_state(val_acc)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data[0], data[1]
        probs = self(x, training=False)
        self.loss_tracker.update_state(self._loss(y, probs))
        self.accuracy_tracker.update_state(y, probs)
        return {m.name: m.result() for m in self.metrics[:2]}

    # -- state -----------------------------------------------------------

    def search_state(self):
        """alpha, live masks and statistics as NumPy arrays (for callbacks and logs)."""
        return {
            "alpha": {k: v.numpy() for k, v in self.alphas.items()},
            "live": {k: v.numpy() for k, v in self.lives.items()},
            "counts": {k: self.op_counts.numpy()[i] for i, k in enumerate(CELL_TYPES)},
            "accuracy": {k: self.op_accuracy.numpy()[i] for i, k in enumerate(CELL_TYPES)},
            "temperature": float(self.temperature.numpy()),
        }

    def get_config(self):
        return {
            "name": self.name,
            "cells": self.cells,
            "channels": self.channels,
            "num_classes": self.num_classes,
            "input_shape": list(self.image_shape),
            "edge_mode": self.edge_mode,
            "primitives": list(self.primitives),
            "steps": self.steps,
            "multiplier": self.multiplier,
            "stem_multiplier": self.stem_multiplier,
            "weight_decay": self.weight_decay,
            "arch_weight_decay": self.arch_weight_decay,
            "grad_clip": self.grad_clip,
            "temperature": self.initial_temperature,
            "lower_arch_case": self.lower_arch_case,
            "update_unsampled_ops": self.update_unsampled_ops,
            "lower_weight_case": self.lower_weight_case,
            "executor": self.executor,
            "latency_costs": self.latency_costs,
            "latency_weight": self.latency_weight,
            "latency_reference_ms": self.latency_reference_ms if self.latency_costs else None,
        }
