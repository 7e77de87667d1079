"""Cost of a model: parameters, MACs/FLOPs, memory, compute intensity, latency, CO2.

MACs are counted on the TensorFlow graph the model runs at inference (batch 1,
variables frozen to constants), op by op, so any layer — built-in or custom —
is covered as long as it lowers to standard ops:

| kind          | ops                                    | MACs per op                    |
|---------------|----------------------------------------|--------------------------------|
| `conv`        | Conv2D (any stride/dilation/groups),   | output elements x kernel       |
|               | DepthwiseConv2dNative, Conv2DBackprop- | height x width x input channels|
|               | Input                                  | per group (1 for depthwise)    |
| `dense`       | MatMul, BatchMatMul                    | output elements x inner dim    |
| `pooling`     | AvgPool, MaxPool, Mean/Max/Sum         | output elements x window       |
|               |                                        | (reductions: input elements)   |
| `elementwise` | Add, Mul, BiasAdd, ReLU, BN, ...       | output elements                |

Keras' SeparableConv2D lowers to one depthwise and one 1x1 conv and is counted
as both. `flops = 2 x macs` (one multiply and one add per MAC), the convention
under which the stage-wise paper's ResNet-56 has 125 M "FLOPs" (Table III).
`keras_nas.costs.tf_profiler_flops` asks TensorFlow's own profiler about the
same graph; the tests check that the two agree.

Why by hand: Keras has no FLOP counter, and TensorFlow's profiler counts only
ops that register statistics (no pooling max, no ReLU), reports no per-kind
breakdown and no bytes moved; it serves as the cross-check instead.

Latency: `measure_latency` times a model here and now; `predict_latency`
sums a measured latency table (`keras_nas.latency`, `keras-nas
latency-table`) over the model's blocks without running it.
"""

import statistics
import time

import numpy as np
import tensorflow as tf

from keras_nas.latency import model_keys, predict_latency  # noqa: F401 (the costs API: measured tables)

_BYTES = 4  # float32

_CONV = {"Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput"}
_DENSE = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"}
_POOL = {"AvgPool", "MaxPool", "MaxPoolV2"}
_REDUCE = {"Mean", "Max", "Sum", "Min"}
_ELEMENTWISE = {
    "Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "Maximum",
    "Minimum", "SquaredDifference", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu",
    "Sigmoid", "Tanh", "Softplus", "Softsign", "Softmax", "LogSoftmax",
    "BiasAdd", "Square", "Sqrt", "Rsqrt", "Exp", "Log", "Neg", "Abs", "Erf",
    "Pow", "FusedBatchNorm", "FusedBatchNormV3", "Gelu",
}
KINDS = ("conv", "dense", "pooling", "elementwise")


def _elements(shape):
    dims = [1 if d is None else int(d) for d in shape]
    return int(np.prod(dims)) if dims else 1


def _input_shape(model):
    inputs = getattr(model, "inputs", None)
    if inputs:
        if len(inputs) != 1:
            raise ValueError(
                f"`model` must have one image input. Received a model with "
                f"{len(inputs)} inputs."
            )
        shape = tuple(inputs[0].shape[1:])
    else:
        shape = getattr(model, "input_shape", None)
        shape = tuple(shape[1:]) if shape else None
    if not shape or any(d is None for d in shape):
        raise ValueError(
            "`model` must have a fully defined input shape (besides the batch "
            f"dimension) to be profiled. Received input shape: {shape}"
        )
    return shape


def frozen_graph(model):
    """The model's inference graph at batch 1, with variables as constants."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    shape = _input_shape(model)
    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((1,) + shape, tf.float32))
    return convert_variables_to_constants_v2(concrete).graph


def _op_cost(op):
    """(kind, macs, bytes moved) of one graph op, or None if it is free."""
    kind = None
    out = op.outputs[0].shape if op.outputs else None
    if op.type in _CONV:
        if op.type == "Conv2DBackpropInput":
            kernel = op.inputs[1].shape  # (kh, kw, out_channels, in_channels)
            macs = _elements(op.inputs[2].shape) * kernel[0] * kernel[1] * kernel[2]
        elif op.type == "DepthwiseConv2dNative":
            kernel = op.inputs[1].shape
            macs = _elements(out) * kernel[0] * kernel[1]
        else:
            kernel = op.inputs[1].shape
            macs = _elements(out) * kernel[0] * kernel[1] * kernel[2]
        kind = "conv"
    elif op.type in _DENSE:
        a = op.inputs[0].shape
        if op.type == "MatMul":
            inner = a[0] if op.get_attr("transpose_a") else a[1]
        else:
            inner = a[-2] if op.get_attr("adj_x") else a[-1]
        macs = _elements(out) * int(inner)
        kind = "dense"
    elif op.type in _POOL:
        ksize = op.get_attr("ksize") if op.type != "MaxPoolV2" else [1, 1, 1, 1]
        data_format = op.get_attr("data_format").decode()
        window = ksize[1] * ksize[2] if data_format == "NHWC" else ksize[2] * ksize[3]
        macs = _elements(out) * window
        kind = "pooling"
    elif op.type in _REDUCE:
        macs = _elements(op.inputs[0].shape)
        kind = "pooling"
    elif op.type in _ELEMENTWISE:
        macs = _elements(out)
        kind = "elementwise"
    elif op.type == "AddN":
        macs = _elements(out) * (len(op.inputs) - 1)
        kind = "elementwise"
    else:
        return None
    moved = sum(_elements(t.shape) for t in op.inputs) + _elements(out)
    return kind, int(macs), int(moved) * _BYTES


def graph_costs(graph):
    """Sums `_op_cost` over a graph: ({kind: macs}, bytes moved)."""
    by_kind = dict.fromkeys(KINDS, 0)
    moved = 0
    for op in graph.get_operations():
        cost = _op_cost(op)
        if cost is not None:
            kind, macs, op_bytes = cost
            by_kind[kind] += macs
            moved += op_bytes
    return by_kind, moved


def count_macs(model):
    """Multiply-accumulates of one inference at batch 1.

    Example:

    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    >>> count_macs(model)  # 6 * 6 * 4 outputs x 3 * 3 * 3 kernel + 144 bias adds
    4032
    """
    by_kind, _ = graph_costs(frozen_graph(model))
    return int(sum(by_kind.values()))


def tf_profiler_flops(model, by_op_type=False):
    """Float operations TensorFlow's profiler counts on the same frozen graph.

    Uses the statistics TensorFlow registers per op type (what
    `tf.compat.v1.profiler` sums); ops without registered statistics count 0.

    Args:
        model: a Keras model with a fully defined input shape.
        by_op_type: bool. Return `{op_type: flops}` instead of the total.
    """
    from tensorflow.python.framework import ops as tf_ops

    graph = frozen_graph(model)
    totals = {}
    for op in graph.get_operations():
        try:
            value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # op has no registered shape or stats
            value = None
        if value:
            totals[op.type] = totals.get(op.type, 0) + int(value)
    if by_op_type:
        return totals
    return int(sum(totals.values()))


def macs_by_op_type(model):
    """`{op_type: macs}` of the model's inference graph (see the module doc)."""
    totals = {}
    for op in frozen_graph(model).get_operations():
        cost = _op_cost(op)
        if cost is not None:
            totals[op.type] = totals.get(op.type, 0) + cost[1]
    return totals


def activation_elements(model):
    """Elements of every layer output at batch 1 (the input included).

    Functional models are walked layer by layer (layers nested in a
    functional sub-model included); other models fall back to the outputs of
    the compute ops of their graph.
    """
    import keras

    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        graph = frozen_graph(model)
        total = _elements((1,) + _input_shape(model))
        for op in graph.get_operations():
            if _op_cost(op) is not None:
                total += _elements(op.outputs[0].shape)
        return total
    total = sum(_elements(t.shape) for t in model.inputs)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if hasattr(layer, "_nodes_by_depth") and isinstance(layer, keras.Model):
            total += activation_elements(layer) - sum(_elements(t.shape) for t in layer.inputs)
            continue
        for node in getattr(layer, "_inbound_nodes", []):
            outputs = tf.nest.flatten(node.output_tensors)
            total += sum(_elements(t.shape) for t in outputs)
    return total


def measure_latency(model, runs=30, warmup=5):
    """Median wall time (ms) of one inference at batch 1 on this machine."""
    shape = _input_shape(model)
    fn = tf.function(lambda x: model(x, training=False))
    x = tf.random.stateless_normal((1,) + shape, seed=(0, 0))
    for _ in range(warmup):
        fn(x).numpy()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x).numpy()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


class CostReport:
    """The cost of a model, as returned by `keras_nas.costs.profile`.

    Attributes:
        params: int. All weights (trainable and not).
        trainable_params: int.
        macs: int. Multiply-accumulates of one inference at batch 1.
        flops: int. `2 x macs`.
        macs_by_kind: dict. MACs of `conv`, `dense`, `pooling`, `elementwise`.
        memory_mb: float. Activation memory at batch 1 plus the weights, in
            MiB of float32 — the "Memory" of the stage-wise paper (Table I).
        bytes_moved: int. Bytes every counted op reads and writes (inputs,
            weights, output) at batch 1.
        compute_intensity: float. `flops / bytes_moved`: FLOPs per byte moved
            (EPNAS Table 5; the higher, the better data reuse).
        latency_ms: float or None. Median CPU latency at batch 1.
    """

    def __init__(self, params, trainable_params, macs_by_kind, activations, bytes_moved, latency_ms=None):
        self.params = int(params)
        self.trainable_params = int(trainable_params)
        self.macs_by_kind = {k: int(v) for k, v in macs_by_kind.items()}
        self.macs = int(sum(self.macs_by_kind.values()))
        self.flops = 2 * self.macs
        self.activations = int(activations)
        self.memory_mb = (self.activations + self.params) * _BYTES / 2**20
        self.bytes_moved = int(bytes_moved)
        self.compute_intensity = self.flops / max(self.bytes_moved, 1)
        self.latency_ms = latency_ms

    def to_dict(self):
        return {
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "flops": self.flops,
            "macs_by_kind": dict(self.macs_by_kind),
            "memory_mb": round(self.memory_mb, 4),
            "bytes_moved": self.bytes_moved,
            "compute_intensity": round(self.compute_intensity, 4),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 4),
        }

    def __repr__(self):
        text = (
            f"CostReport(params={self.params:,}, macs={self.macs:,}, "
            f"memory_mb={self.memory_mb:.2f}, "
            f"compute_intensity={self.compute_intensity:.2f}"
        )
        if self.latency_ms is not None:
            text += f", latency_ms={self.latency_ms:.2f}"
        return text + ")"


def profile(model, *, latency=False, latency_runs=30):
    """Counts what a model costs.

    Args:
        model: a built Keras model with one image input of known shape.
        latency: bool. Also time inference on this machine (runs the model).
            Defaults to `False`.
        latency_runs: int. Timed runs for the median. Defaults to `30`.

    Returns:
        A `CostReport`.

    Example:

    >>> from keras_nas.stagewise.resnet import stage_resnet
    >>> report = profile(stage_resnet((9, 9, 9)))  # CIFAR ResNet-56
    >>> round(report.params / 1e6, 2), round(report.macs / 1e6)
    (0.86, 127)
    """
    if not hasattr(model, "weights") or not callable(model):
        raise TypeError(f"`model` must be a Keras model. Received: {type(model).__name__}")
    by_kind, moved = graph_costs(frozen_graph(model))
    params = sum(_elements(w.shape) for w in model.weights)
    trainable = sum(_elements(w.shape) for w in model.trainable_weights)
    latency_ms = measure_latency(model, runs=latency_runs) if latency else None
    return CostReport(params, trainable, by_kind, activation_elements(model), moved, latency_ms)


def training_emissions(seconds, *, power_watts=250.0, carbon_intensity=0.432, pue=1.0):
    """Energy and CO2 of a training run, as the ML Emissions Calculator does.

    `energy_kwh = power_watts x seconds / 3.6e6 x pue` and
    `co2_kg = energy_kwh x carbon_intensity` (Lacoste et al. 2019, used by the
    stage-wise paper for Table III).

    Args:
        seconds: float. Wall time of the run.
        power_watts: float. Average device draw. Defaults to `250.0`, the TDP
            of the GTX 1080 Ti of paper 000's experiments.
        carbon_intensity: float. kg CO2eq per kWh of the grid. Defaults to
            `0.432`, a world-average grid figure.
        pue: float. Data-centre power usage effectiveness. Defaults to `1.0`.

    Returns:
        dict with `seconds`, `energy_kwh`, `co2_kg` and the arguments.
    """
    for name, value in (
        ("seconds", seconds),
        ("power_watts", power_watts),
        ("carbon_intensity", carbon_intensity),
        ("pue", pue),
    ):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(
                f"`{name}` must be a non-negative number. Received: {name}={value!r}"
            )
    energy_kwh = power_watts * seconds / 3.6e6 * pue
    return {
        "seconds": float(seconds),
        "power_watts": float(power_watts),
        "carbon_intensity": float(carbon_intensity),
        "pue": float(pue),
        "energy_kwh": energy_kwh,
        "co2_kg": energy_kwh * carbon_intensity,
    }
