"""Fold inference BatchNormalization layers into the convolutions before them (for serving).

At inference a BatchNormalization layer is a fixed per-channel affine map,
`y = scale * x + shift` with `scale = gamma / sqrt(moving_variance + epsilon)`
and `shift = beta - moving_mean * scale`. When it directly follows a
convolution whose output nothing else reads, the map folds into that
convolution: its output-channel kernel slices are multiplied by `scale` and
`shift` becomes (part of) its bias. The folded model computes the same
function (within float rounding) with one layer less per pair; in a
TensorFlow graph each Keras BatchNormalization costs about ten small ops
(`tf.nn.batch_normalization` recomputes `scale` and `shift` on every call),
which is most of the op count of a network of many small convolutions.

Keras and TensorFlow have no such pass for Keras 3 models (TensorFlow's
Grappler fuses `FusedBatchNorm` ops, which Keras 3 does not emit; the TFLite
converter folds during conversion, not for SavedModels), hence this module.
"""

import numpy as np
from keras_nas.layers.folded_batch_normalization import FoldedBatchNormalization


def _conv_classes():
    import keras

    return (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def batch_norm_affine(gamma, beta, moving_mean, moving_variance, epsilon):
    """Inference BatchNormalization as `(scale, shift)`: `y = scale * x + shift` (pure).

    `gamma` or `beta` may be None (`scale=False` / `center=False`).

    >>> scale, shift = batch_norm_affine(np.array([2.0]), np.array([1.0]), np.array([3.0]), np.array([3.0]), 1.0)
    >>> float(scale[0]), float(shift[0])
    (1.0, -2.0)
    """
    scale = 1.0 / np.sqrt(np.asarray(moving_variance, dtype=np.float64) + epsilon)
    if gamma is not None:
        scale = scale * np.asarray(gamma, dtype=np.float64)
    shift = -np.asarray(moving_mean, dtype=np.float64) * scale
    if beta is not None:
        shift = shift + np.asarray(beta, dtype=np.float64)
    return scale, shift


def fold_into_kernel(kernel, bias, scale, shift, kind, depth_multiplier=1):
    """Folded `(kernel, bias)` of a convolution followed by `y = scale * x + shift` (pure).

    Args:
        kernel: array. The convolution's kernel: `(kh, kw, in, out)` for
            `"conv"` and for the pointwise kernel of `"separable"`,
            `(kh, kw, in, depth_multiplier)` for `"depthwise"`.
        bias: array or None.
        scale, shift: arrays of the output channels.
        kind: str. `"conv"`, `"depthwise"` or `"separable"`.
        depth_multiplier: int. For `"depthwise"`.

    Returns:
        `(kernel, bias)` as float32 arrays.

    >>> k, b = fold_into_kernel(np.ones((1, 1, 2, 1)), None, np.array([3.0]), np.array([0.5]), "conv")
    >>> k.ravel().tolist(), b.tolist()
    ([3.0, 3.0], [0.5])
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kind == "depthwise":  # output channel c * depth_multiplier + m
        folded = kernel * scale.reshape(kernel.shape[2], depth_multiplier)
    elif kind in ("conv", "separable"):
        folded = kernel * scale
    else:
        raise ValueError(f"`kind` must be 'conv', 'depthwise' or 'separable'. Received: kind={kind!r}")
    bias = shift if bias is None else np.asarray(bias, dtype=np.float64) * scale + shift
    return folded.astype(np.float32), bias.astype(np.float32)


def foldable_pairs(model):
    """`{batch_norm_name: conv_name}` of the BatchNormalization layers `fold_batch_norms` folds.

    A pair folds when the BatchNormalization layer is called once, on the
    output of a Conv2D / DepthwiseConv2D / SeparableConv2D layer (no
    activation, called once, read by nothing else), over the convolution's
    channel axis. Only the model's own graph is searched: pairs inside a
    composite layer or a nested model (e.g. the DARTS ops) stay as they are.
    """
    import keras

    # Keras has no public graph-walking API for functional models; `_inbound_nodes`
    # and `_keras_history` are the graph internals that `clone_model` walks too.
    convs = _conv_classes()
    readers = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                source = tensor._keras_history.operation
                readers.setdefault(source.name, []).append(layer.name)
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        inputs = layer._inbound_nodes[0].input_tensors
        if len(inputs) != 1:
            continue
        conv = inputs[0]._keras_history.operation
        if not isinstance(conv, convs) or len(conv._inbound_nodes) != 1 or readers.get(conv.name) != [layer.name]:
            continue
        if any(t._keras_history.operation is conv for t in model.outputs):
            continue
        if conv.activation is not keras.activations.linear:
            continue
        channel_axis = 1 if conv.data_format == "channels_first" else len(conv.output.shape) - 1
        if layer.axis % len(conv.output.shape) != channel_axis:
            continue
        pairs[layer.name] = conv.name
    return pairs


def fold_batch_norms(model):
    """A copy of a functional Keras model with its inference BatchNormalizations folded into convolutions.

    Every pair of `foldable_pairs(model)` becomes one convolution with a bias
    (its kernel scaled per output channel); the BatchNormalization layer
    becomes a `FoldedBatchNormalization` (identity) layer of the same name,
    so the graph's structure and layer names stay. All other layers keep their
    configs and weights. The copy is for inference: training it would train
    no BatchNormalization. The model itself is not changed.

    Args:
        model: a functional or Sequential Keras model.

    Returns:
        A new Keras model with the same inputs, outputs and predictions
        (within float32 rounding).

    Example:

    >>> folded = fold_batch_norms(model)
    >>> np.allclose(folded.predict(x), model.predict(x), atol=1e-5)
    True
    """
    import keras

    if not isinstance(model, keras.Model) or not is_graph_model(model):
        raise TypeError(
            "`model` must be a functional or Sequential Keras model (a graph of layers). "
            f"Received: {type(model).__name__}"
        )
    pairs = foldable_pairs(model)
    convs = set(pairs.values())

    def clone(layer):
        config = layer.get_config()
        if layer.name in pairs:
            return FoldedBatchNormalization(name=layer.name)
        if layer.name in convs:
            config = {**config, "use_bias": True}
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    bn_of = {conv: bn for bn, conv in pairs.items()}
    for layer in model.layers:
        if layer.name in pairs or not layer.weights:
            continue
        target = folded.get_layer(layer.name)
        if layer.name not in convs:
            target.set_weights(layer.get_weights())
            continue
        bn = model.get_layer(bn_of[layer.name])
        scale, shift = batch_norm_affine(
            None if bn.gamma is None else np.asarray(bn.gamma), None if bn.beta is None else np.asarray(bn.beta),
            np.asarray(bn.moving_mean), np.asarray(bn.moving_variance), bn.epsilon)
        bias = np.asarray(layer.bias) if layer.use_bias else None
        if isinstance(layer, keras.layers.SeparableConv2D):
            pointwise, bias = fold_into_kernel(layer.pointwise_kernel, bias, scale, shift, "separable")
            target.set_weights([np.asarray(layer.depthwise_kernel), pointwise, bias])
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel, bias = fold_into_kernel(layer.kernel, bias, scale, shift, "depthwise", layer.depth_multiplier)
            target.set_weights([kernel, bias])
        else:
            kernel, bias = fold_into_kernel(layer.kernel, bias, scale, shift, "conv")
            target.set_weights([kernel, bias])
    return folded


def is_graph_model(model):
    """Functional (incl. Sequential, which keeps a functional graph) rather than subclassed."""
    import keras

    return isinstance(model, keras.Sequential) or any(c.__name__ == "Functional" for c in type(model).__mro__)
