"""Function-preserving start of a layer inserted by an EPNAS action (Net2Net "deeper").

Section 3.4 of the EPNAS paper shares the parameters of the layers a child
keeps from its parent but says nothing about how a newly inserted layer
starts. Fresh random weights (`insert_init="fresh"`, the literal reading)
turn the inserted layer into noise in the middle of an otherwise trained
network: the child starts far from its parent's function. Our choice
(`insert_init="identity"`) follows Net2Net's deeper operator (Chen et al.,
2016, section 3.2): the new conv -> batch norm -> activation starts as the
identity, so the child first computes what its parent computed and the
training of the prediction run only has to learn what the new layer adds.

- Conv kernel: the centre tap maps input channel `c` to output channel `c`
  for `c < min(in, out)`, zero elsewhere in those columns
  (`identity_kernel`; separable convs: depthwise centre tap 1, pointwise
  identity). Output channels past the input's keep their fresh kernel.
- Batch norm: its moving statistics are the input's per-channel mean and
  variance and `gamma = sqrt(var + eps)`, `beta = mean`
  (`passthrough_batch_norm`), so it undoes its own normalisation, in
  inference exactly and in training up to the batch's deviation from those
  statistics. Extra output channels get `gamma = beta = 0`: they output 0
  (the next layer's padded weights see zeros) but still receive gradients
  through `gamma`, as a zero-initialised residual branch does.
- Activation: relu/elu/crelu leave a non-negative input (the output of an
  earlier relu, pooling or sum of such) unchanged; selu's scale is divided
  out through `gamma`/`beta`; swish is only approximately the identity.

Limits: a skip connection of the inserted layer (`src2`) is added on top,
so the function changes by the skip; an inserted pooling or `add` has no
weights to choose; module search inserts branches that feed the cell output
in parallel, not in series, so it keeps fresh weights.
"""

import numpy as np

INSERT_INITS = ("identity", "fresh")
_SELU_SCALE = 1.0507009873554805  # keras.activations.selu


def identity_kernel(shape):
    """Conv kernel `(kh, kw, in, out)` copying input channel `c` to output `c` at the centre tap.

    Only the `min(in, out)` diagonal entries of the centre tap are 1. With
    "same" padding and odd kernel widths the conv is then the identity on
    those channels.

    >>> identity_kernel((3, 3, 2, 2))[1, 1]
    array([[1., 0.], [0., 1.]], dtype=float32)
    """
    kh, kw, cin, cout = (int(d) for d in shape)
    kernel = np.zeros((kh, kw, cin, cout), "float32")
    n = np.arange(min(cin, cout))
    kernel[kh // 2, kw // 2, n, n] = 1.0
    return kernel


def passthrough_batch_norm(mean, variance, channels, epsilon, scale=1.0):
    """`[gamma, beta, moving_mean, moving_variance]` of a batch norm that returns its input / `scale`.

    `mean`, `variance`: statistics of the first `len(mean)` channels of the
    input; the other `channels - len(mean)` output 0 (`gamma = beta = 0`,
    moving statistics 0 and 1).
    """
    mean = np.asarray(mean, "float32")
    variance = np.maximum(np.asarray(variance, "float32"), 0.0)
    n = len(mean)
    gamma, beta = np.zeros(channels, "float32"), np.zeros(channels, "float32")
    moving_mean, moving_variance = np.zeros(channels, "float32"), np.ones(channels, "float32")
    gamma[:n] = np.sqrt(variance + epsilon) / scale
    beta[:n] = mean / scale
    moving_mean[:n], moving_variance[:n] = mean, variance
    return [gamma, beta, moving_mean, moving_variance]


def channel_statistics(model, layer_name, inputs):
    """Per-channel mean and variance of the input of `layer_name` on the batch `inputs` (inference mode)."""
    import keras

    layer = model.get_layer(layer_name)
    probe = keras.Model(model.input, layer.input)
    x = keras.ops.convert_to_numpy(probe(inputs, training=False)).astype("float64")
    axes = tuple(range(x.ndim - 1))
    return x.mean(axis=axes), x.var(axis=axes)


def init_identity_layer(model, key, activation, inputs=None):
    """Sets the conv and batch norm of the layer `key` (`L3_conv2d`) to pass their input through.

    `inputs`: a batch of the child's (normalised) training images, for the
    statistics of the layer's input; without it the batch norm assumes
    zero mean and unit variance (the identity in inference mode only).
    Returns True if the layer has a conv to initialise.
    """
    names = {layer.name for layer in model.layers}
    conv_name, bn_name = f"{key}__conv", f"{key}__bn"
    if conv_name not in names or bn_name not in names:
        return False
    conv, bn = model.get_layer(conv_name), model.get_layer(bn_name)
    weights = conv.get_weights()
    if len(weights) == 1:  # Conv2D(use_bias=False)
        kernel = weights[0]
        new = identity_kernel(kernel.shape)
        keep = np.arange(kernel.shape[2], kernel.shape[3])  # output channels past the input's
        new[..., keep] = kernel[..., keep]
        conv.set_weights([new])
        cin, cout = kernel.shape[2], kernel.shape[3]
    else:  # SeparableConv2D(use_bias=False): depthwise (kh, kw, in, 1), pointwise (1, 1, in, out)
        depthwise, pointwise = weights
        new_depthwise = np.zeros_like(depthwise)
        new_depthwise[depthwise.shape[0] // 2, depthwise.shape[1] // 2] = 1.0
        new_pointwise = identity_kernel(pointwise.shape)
        keep = np.arange(pointwise.shape[2], pointwise.shape[3])
        new_pointwise[..., keep] = pointwise[..., keep]
        conv.set_weights([new_depthwise, new_pointwise])
        cin, cout = pointwise.shape[2], pointwise.shape[3]
    n = min(cin, cout)
    if inputs is None:
        mean, variance = np.zeros(n), np.ones(n)
    else:
        mean, variance = channel_statistics(model, conv_name, inputs)
        mean, variance = mean[:n], variance[:n]
    scale = _SELU_SCALE if activation == "selu" else 1.0
    bn.set_weights(passthrough_batch_norm(mean, variance, cout, bn.epsilon, scale))
    return True
