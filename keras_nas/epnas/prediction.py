"""EPNAS performance prediction (sec. 3.4): the aggressive learning-rate decay and parameter sharing maths.

A child trained for prediction starts from the weights its parent left in
the dictionary (`keras_nas.epnas.parameter_store`); these pure functions
say which of its layers inherited their input (`inherited_layers`), the
learning-rate multiplier of each variable (`shared_multipliers`, used by
`keras_nas.epnas.ScaledSGD`), the "shrink and perturb" start of the shared
weights (`shrink_perturb`) and the prediction run's schedule
(`prediction_learning_rate`). `keras_nas.epnas.tuner` applies them.
"""

import numpy as np

from keras_nas.epnas.parameter_store import layer_key
from keras_nas.training import sgdr_learning_rate
from keras_nas import training

PREDICTION_DECAYS = ("exponential", "cosine")
CLASSIFIER = "predictions"  # the builder's classifier layer (its own dictionary key)


def prediction_learning_rate(epoch, learning_rate, min_learning_rate, epochs, decay="exponential"):
    """Learning rate of a performance-prediction run at `epoch` (section 3.4).

    "By scaling up the batch size, we can use a large learning rate with an
    aggressive decay": from `learning_rate` (the scaled-up rate, paper 0.5)
    down to `min_learning_rate` at the last of `epochs` epochs (paper: 10).
    `"exponential"` decays geometrically (by `(min / max) ** (1 / (epochs -
    1))` per epoch: 0.5 -> 0.001 over 10 epochs halves it about every
    epoch), front-loading the decay; `"cosine"` is one cosine cycle, the
    shape of the standard SGDR schedule's first 10 epochs (section 4.1).
    From epoch `epochs` on (a decay shorter than the run) it stays at
    `min_learning_rate`.

    >>> round(prediction_learning_rate(1, 0.5, 0.001, 10), 3)
    0.251
    """
    if decay not in PREDICTION_DECAYS:
        raise ValueError(f"`decay` must be one of {list(PREDICTION_DECAYS)}. Received: decay={decay!r}")
    if epoch >= epochs:  # after the decay (`EPNASTuner(prediction_decay_epochs=...)`): stay at the minimum
        return min_learning_rate
    if decay == "cosine":
        return sgdr_learning_rate(epoch, learning_rate, min_learning_rate, epochs, 1)
    if epochs <= 1:
        return learning_rate
    fraction = min(max(epoch, 0), epochs - 1) / (epochs - 1)
    return learning_rate * (min_learning_rate / learning_rate) ** fraction


def _graph(model):
    """`{layer name: (names of the layers it reads, input height and width)}` of a functional model."""
    graph = {}
    for layer in model.layers:
        # Keras has no public accessor for the layers a layer reads; `_inbound_nodes` (each node's
        # `parent_nodes`) is what Functional and keras.utils.plot_model walk.
        nodes = layer._inbound_nodes[:1]
        parents = tuple(parent.operation.name for node in nodes for parent in node.parent_nodes)
        inputs = [] if not parents else (layer.input if isinstance(layer.input, (list, tuple)) else [layer.input])
        graph[layer.name] = parents, tuple(tuple(x.shape[1:3]) for x in inputs)
    return graph


def inherited_layers(model, parent_model, keys, key_map=None):
    """Names of the child's layers that compute what they computed in the parent.

    A layer qualifies when its weights (if any) were read from the
    dictionary (`keys`), it reads the same layers as its counterpart in
    `parent_model` (names mapped through `key_map`, child key -> parent key)
    at the same heights and widths, and each of those layers qualifies
    too. So a layer behind a conv inserted with fresh weights, behind a
    removed layer or behind a pooling whose resolution changed does not: its
    input is another function than the one its weights were trained on. A
    layer scaled by the action (channels padded, a kernel spliced) still
    qualifies: it starts from what the parent computed.

    Example:

    >>> sorted(inherited_layers(parent, parent, ["L0_conv2d", "L1_conv2d"]))[:3]
    ['L0_conv2d__act_relu', 'L0_conv2d__bn', 'L0_conv2d__conv']
    """
    key_map, keys = key_map or {}, set(keys)

    def in_parent(name):  # None for a layer of a key without a parent counterpart (inserted)
        key = layer_key(name)
        parent_key = key_map.get(key, key)
        return name if key == name else None if parent_key is None else parent_key + name[len(key):]

    child, parent = _graph(model), _graph(parent_model)
    same = set()
    for layer in model.layers:  # functional models list their layers in topological order
        reads, shapes = child[layer.name]
        counterpart = parent.get(in_parent(layer.name))
        if (counterpart is not None and counterpart == (tuple(in_parent(n) for n in reads), shapes)
                and all(n in same or n not in child for n in reads)
                and (not layer.weights or layer_key(layer.name) in keys)):
            same.add(layer.name)
    return same


def shared_multipliers(model, keys, scale, parent_model=None, key_map=None):
    """`{variable path: scale}` for the trainable variables of the layers read from the dictionary.

    `keys` are the model's dictionary keys that `ParameterStore.load_into`
    filled (`return_keys=True`). Left at the full rate: the classifier (it
    reads whatever features the action changed) and, given the
    `parent_model` and `key_map` (child key -> parent key), every layer
    whose input is not what it was in the parent (`inherited_layers`: a
    conv inserted with fresh weights, a layer removed or a resolution
    changed before it). Their weights meet another input and must relearn
    (measured in benchmarks/bench_epnas.py: behind a removed pooling the
    reduced rate keeps a child ~0.03 short of its from-scratch accuracy).

    Example:

    >>> shared_multipliers(model, ["L0_conv2d", "L1_conv2d"], 0.2)
    {'L0_conv2d__conv/kernel': 0.2, 'L0_conv2d__bn/gamma': 0.2, ...}
    """
    keys = {k for k in keys if k != CLASSIFIER}
    names = None if parent_model is None else inherited_layers(model, parent_model, keys, key_map)
    return {v.path: float(scale) for layer in model.layers if layer_key(layer.name) in keys
            and (names is None or layer.name in names) for v in layer.trainable_weights}


def shrink_perturb(shared, fresh, shrink, noise):
    """`shrink * shared + noise * fresh`: a warm start moved back towards a fresh one.

    Ash & Adams, "On Warm-Starting Neural Network Training" (NeurIPS 2020):
    a network trained further from weights that fit other data (here: the
    parent network) generalises worse than one trained from scratch;
    shrinking the inherited weights and adding a little of a fresh
    initialisation closes most of that gap. `fresh` is the layer's own random
    initialisation, so the noise has the initialiser's scale.

    >>> shrink_perturb(np.array([2.0]), np.array([1.0]), 0.5, 0.01)
    array([1.01])
    """
    return shrink * np.asarray(shared) + noise * np.asarray(fresh)


def shrink_perturb_layers(model, fresh, keys, shrink, noise):
    """Applies `shrink_perturb` to the trainable weights of the layers read from the dictionary.

    `fresh` is `{layer name: get_weights()}` of `model` before
    `ParameterStore.load_into`; `keys` the keys it filled. Batch-norm
    statistics (not trainable) are left as read. Returns how many layers
    changed.

    Example:

    >>> fresh = {layer.name: layer.get_weights() for layer in model.layers}
    >>> _, keys = store.load_into(model, return_keys=True)
    >>> shrink_perturb_layers(model, fresh, keys, 0.5, 0.01)
    """
    keys, count = set(keys), 0
    for layer in model.layers:
        if not layer.trainable_weights or layer_key(layer.name) not in keys:
            continue
        trainable = {id(v) for v in layer.trainable_weights}
        layer.set_weights([shrink_perturb(w, f, shrink, noise) if id(v) in trainable else w
                           for v, w, f in zip(layer.weights, layer.get_weights(), fresh[layer.name])])
        count += 1
    return count


def rebatch(train_data, batch_scale):
    """`train_data` in batches `batch_scale` times larger (sec. 3.4: "scaling up the batch size")."""
    if batch_scale == 1:
        return train_data
    batch = None
    for x, _ in train_data.take(1):
        batch = int(x.shape[0])
    return train_data.unbatch().batch(batch * batch_scale).prefetch(2)


def compile_child(model, learning_rate, *, momentum=0.9, weight_decay=1e-4, clipnorm=5.0, multipliers=None,
                  jit_compile=False):
    """Compiles a child as every EPNAS child trains (sec. 4.1): Nesterov SGD, cross-entropy, accuracy.

    `multipliers` are per-variable learning-rate multipliers (`shared_multipliers`).
    """

    model.compile(
        optimizer=training.make_optimizer("nesterov", learning_rate, momentum, weight_decay, clipnorm=clipnorm,
                                          learning_rate_multipliers=multipliers),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def child_callbacks(schedule, patience=None, restore_best=False):
    """The schedule and (with `patience`, as prediction runs use it) early stopping on validation accuracy."""
    import keras

    callbacks = [keras.callbacks.LearningRateScheduler(schedule)]
    if patience or restore_best:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                                       restore_best_weights=restore_best))
    return callbacks
