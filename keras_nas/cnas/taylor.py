"""Taylor saliency of CNAS input channels (paper 004, Algorithm 1; Molchanov et al. 2017)."""

import numpy as np
import tensorflow as tf

# How a channel's per-minibatch Taylor term enters the saliency:
# "taylor": |x dx| accumulated, the lowest normalised value is zeroed first
# (Molchanov et al. 2017); "reciprocal": 1 / |x dx| accumulated, the largest
# normalised value is zeroed first (paper 004, Algorithm 1, lines 3-4).
SALIENCY_FORMS = ("taylor", "reciprocal")

# Keeps the reciprocal finite for a channel whose term is exactly 0 (no
# gradient reaches it): such a channel gets the largest value (1e12), i.e.
# it is zeroed first, as its zero Taylor term says it should be.
RECIPROCAL_EPSILON = 1e-12


def _check_form(form):
    if form not in SALIENCY_FORMS:
        raise ValueError(f"`form` must be one of {list(SALIENCY_FORMS)}. Received: form={form!r}")


def minibatch_term(mask_gradient, spatial_size, form="taylor"):
    """One minibatch's contribution to a channel's saliency (Algorithm 1, line 3).

    Pure: works on NumPy arrays and tensors alike. `mask_gradient` is the
    gradient of the batch-mean loss with respect to the channel's mask entry,
    i.e. the sum over space of the batch mean of `x * dL/dx`; divided by the
    spatial size it is Molchanov's `mean(x * dx)`. `"taylor"` returns
    `|mean(x dx)|`, `"reciprocal"` returns `1 / (|mean(x dx)| + 1e-12)`.

    Algorithm 1 writes `DimensionReduction(1 / (X' . dX'))`: the reciprocal
    before the reduction. Taken element-wise it is undefined wherever
    `x * dx` is 0 (every ReLU-zeroed position, every masked channel), so we
    reduce first, then take the reciprocal of the channel's term.

    >>> float(minibatch_term(-2.0, 4, "taylor")), round(float(minibatch_term(-2.0, 4, "reciprocal")), 6)
    (0.5, 2.0)
    """
    _check_form(form)
    term = abs(mask_gradient) / spatial_size
    if form == "reciprocal":
        term = 1.0 / (term + RECIPROCAL_EPSILON)
    return term


def _loss(model, images, labels):
    import keras

    probabilities = model(images, training=False)
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))


def saliency_function(model, mask_layers, strategy=None, form="taylor"):
    """A reusable `fn(data, num_batches) -> list of arrays` computing `taylor_saliency`.

    Traced once per input signature: call it at every pruning iteration
    without retracing the network's backward pass.
    """
    _check_form(form)
    variables = [layer.mask.value for layer in mask_layers]  # the tf.Variables a tape can watch
    sizes = [float(layer.spatial_size) for layer in mask_layers]
    shapes = [tuple(v.shape) for v in variables]

    def gradients(images, labels):
        with tf.GradientTape() as tape:
            tape.watch(variables)
            loss = _loss(model, images, labels)
        grads = tape.gradient(loss, variables)
        return [tf.zeros(s) if g is None else tf.convert_to_tensor(g) for g, s in zip(grads, shapes)]

    @tf.function
    def accumulate(iterator, num_batches):
        # An iterator and tf.range run as one while loop (a `for` over the
        # dataset would become a much slower `Dataset.reduce`). The iterator
        # is made outside: one made inside from a distributed dataset hangs.
        totals = tuple(tf.zeros(s) for s in shapes)
        for _ in tf.range(num_batches):
            images, labels = next(iterator)
            if strategy is None:
                grads = gradients(images, labels)
            else:
                per_replica = strategy.run(gradients, args=(images, labels))
                grads = [strategy.reduce(tf.distribute.ReduceOp.MEAN, g, axis=None) for g in per_replica]
            totals = tuple(t + minibatch_term(g, s, form) for t, g, s in zip(totals, grads, sizes))
        return totals

    def run(data, num_batches):
        if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
            raise ValueError(f"`num_batches` must be a positive int. Received: num_batches={num_batches!r}")
        batches = data.repeat()
        if strategy is not None:
            batches = strategy.experimental_distribute_dataset(batches)
        return [np.asarray(t) for t in accumulate(iter(batches), tf.constant(num_batches))]

    run.accumulate = accumulate
    return run


def taylor_saliency(model, mask_layers, data, num_batches, strategy=None, form="taylor"):
    """Accumulated first-order Taylor term per input channel, over `num_batches` minibatches.

    Per minibatch and channel, the term is `|mean over batch and space of
    x * dL/dx|` (Molchanov et al. 2017, Eq. 8), which equals the gradient of
    the (batch-mean) loss with respect to the channel's mask entry divided by
    the channel's spatial size: one backward pass gives every channel at once.
    Weights are not updated and the network runs in inference mode (BN moving
    statistics, no dropout), with the current masks applied (Algorithm 1,
    line 2: the current sparse model W'). The whole loop runs in one
    `tf.function`; under a `tf.distribute` strategy each replica takes part
    of every batch and the gradients are averaged before `|.|`.

    Algorithm 1 accumulates the reciprocal `1 / (X' . dX')` and zeroes the
    largest: `form="reciprocal"` (see `minibatch_term`). The default
    `form="taylor"` keeps `|x dx|` (Molchanov's form) and zeroes the
    smallest. Within a layer both give the same order for m = 1; across
    layers they differ, because each is normalised per layer before all
    channels are ranked together (`channel_importance`). Use
    `saliency_function` to call it repeatedly without retracing.

    Args:
        model: Keras model with `ChannelMask` layers (class probabilities out).
        mask_layers: list of `ChannelMask` layers of `model`.
        data: `tf.data.Dataset` of `(images, labels)` batches.
        num_batches: int. Minibatches m.
        strategy: `tf.distribute.Strategy` or None. The one `model` was built under.
        form: str. `"taylor"` or `"reciprocal"` (`SALIENCY_FORMS`).

    Returns:
        list of NumPy arrays, one per mask layer (not normalised; see
        `channel_importance`).

    Example:

    >>> values = taylor_saliency(model, mask_layers(model, graph), data.train, 10)
    """
    return saliency_function(model, mask_layers, strategy, form)(data, num_batches)


def normalize_layerwise(values, masks):
    """Layer-wise L2 normalisation over the kept channels (Algorithm 1, line 4).

    Args:
        values: dict name -> saliency array.
        masks: dict name -> 0/1 array; removed channels get 0 before the norm.

    Returns:
        dict name -> normalised array (removed channels are 0).
    """
    out = {}
    for name, value in values.items():
        kept = np.asarray(masks[name]).reshape(-1) > 0.5
        v = np.where(kept, np.asarray(value, dtype=np.float64).reshape(-1), 0.0)
        norm = np.sqrt(np.sum(v * v))
        out[name] = v / norm if norm > 0 else v
    return out


def channel_importance(values, masks, form="taylor"):
    """Normalised saliency as importance: lower = zeroed first, for both forms.

    `"taylor"`: the layer-wise L2-normalised `|x dx|` sums. `"reciprocal"`:
    minus the layer-wise L2-normalised sums of reciprocals, so that the
    largest of them (Algorithm 1: the least important) comes first.

    >>> out = channel_importance({"a": np.array([1.0, 2.0])}, {"a": np.array([1, 1])}, "reciprocal")
    >>> [round(float(v), 3) for v in out["a"]]
    [-0.447, -0.894]
    """
    _check_form(form)
    normalised = normalize_layerwise(values, masks)
    if form == "reciprocal":
        return {name: -value for name, value in normalised.items()}
    return normalised
