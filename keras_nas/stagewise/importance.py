"""Importance score of every stage of a trained network (paper 000, "Importance Score")."""

import re

import keras
import numpy as np
import tensorflow as tf

from keras_nas.stagewise.infinite_latent_fs import il_fs
from keras_nas.stagewise.infinite_fs import inf_fs
from keras_nas.stagewise.vip import pls_vip

CRITERIA = ("pls", "inffs", "ilfs")
_BLOCK_NAME = re.compile(r"^stage(\d+)_(?:block|cell)(\d+)_(add|out)$")


def stage_taps(model):
    """Names of the layers whose output represents each stage.

    The last module of stage `s` is `stage{s}_block{b}` / `stage{s}_cell{b}`
    with the largest `b`. For residual blocks the tap is the residual sum
    (`*_add`), the layer the paper's reference code reads; for cells it is
    the cell output (`*_out`).
    """
    last = {}
    for layer in model.layers:
        match = _BLOCK_NAME.match(layer.name)
        if not match:
            continue
        s, b, kind = int(match.group(1)), int(match.group(2)), match.group(3)
        current = last.get(s)
        if current is None or b > current[0] or (b == current[0] and kind == "add"):
            last[s] = (b, kind, layer.name)
    if not last or sorted(last) != list(range(len(last))):
        raise ValueError(
            "`model` must be built by `keras_nas.stagewise.resnet` or "
            "`stage_nasnet` (layers named `stage{s}_block{b}_add` / "
            f"`stage{{s}}_cell{{b}}_out`). Received model {model.name!r} with "
            f"stages {sorted(last)}."
        )
    return [last[s][2] for s in sorted(last)]


def pooled_features_model(model, pool_size=8):
    """A model from the images to each stage's average-pooled, flattened features.

    `pool_size` is the side of the pooling window (stride equal to it), as in
    the reference code (8 on 32x32 CIFAR: 4x4, 2x2 and 1x1 grids); a window
    larger than a feature map is clipped to it. `None` pools globally.
    """
    outputs = []
    for name in stage_taps(model):
        tensor = model.get_layer(name).output
        height, width = tensor.shape[1], tensor.shape[2]
        if pool_size is None:
            window = (height, width)
        else:
            window = (min(pool_size, height), min(pool_size, width))
        pooled = keras.layers.AveragePooling2D(window, strides=window, name=f"{name}_importance_pool")(tensor)
        outputs.append(keras.layers.Flatten(name=f"{name}_importance_flat")(pooled))
    return keras.Model(model.inputs, outputs, name=f"{model.name}_stage_features")


def collect_stage_features(model, data, samples=None, pool_size=8):
    """Pooled stage features and labels of up to `samples` examples of `data`.

    Batch by batch: only the pooled features (samples x features per stage)
    are kept, never a batch's full activation maps beyond the current one.
    """
    extractor = pooled_features_model(model, pool_size)

    @tf.function(reduce_retracing=True)
    def extract(images):
        return extractor(images, training=False)

    features = None
    labels = []
    seen = 0
    for images, batch_labels in data:
        if samples is not None and seen >= samples:
            break
        take = images.shape[0] if samples is None else min(images.shape[0], samples - seen)
        outputs = extract(images[:take])
        outputs = [np.asarray(o, dtype=np.float64) for o in outputs]
        if features is None:
            features = [[] for _ in outputs]
        for store, out in zip(features, outputs):
            store.append(out)
        labels.append(np.asarray(batch_labels[:take]).reshape(-1))
        seen += take
    if features is None:
        raise ValueError("`data` yielded no batches; stage importance needs samples.")
    return [np.concatenate(f) for f in features], np.concatenate(labels).astype(np.int64)


def score_features(X, y, criterion="pls", n_components=2, alpha=0.5, tokens=6):
    """Per-feature importance of one stage's features under a criterion."""
    if criterion == "pls":
        return pls_vip(X, y, n_components=n_components)
    if criterion == "inffs":
        return inf_fs(X, alpha=alpha)
    if criterion == "ilfs":
        return il_fs(X, y, tokens=tokens)
    raise ValueError(f"`criterion` must be one of {list(CRITERIA)}. Received: criterion={criterion!r}")


def stage_importance(
    model,
    data,
    *,
    criterion="pls",
    samples=None,
    pool_size=8,
    n_components=2,
    alpha=0.5,
    tokens=6,
):
    """Importance score alpha_i of every stage of `model` (paper 000, Sec. III).

    The training samples are passed through the network; the output of the
    last module of each stage is average-pooled and flattened; every feature
    is scored by `criterion`; the stage's score is the mean over its features
    (Jordao et al.'s procedure).

    Args:
        model: a trained model from `stage_resnet` or `stage_nasnet`.
        data: iterable of `(images, labels)` batches (a `tf.data.Dataset`).
        criterion: str. `"pls"` (PLS + VIP), `"inffs"` (inf-FS) or `"ilfs"`
            (il-FS). Defaults to `"pls"` (the paper's best, Table II).
        samples: int or None. Examples read from `data`. Defaults to all of
            one pass.
        pool_size: int or None. Pooling window (see `pooled_features_model`).
            Defaults to `8` (reference code).
        n_components: int. PLS components. Defaults to `2`.
        alpha: float. inf-FS mixing weight. Defaults to `0.5`.
        tokens: int. il-FS tokens. Defaults to `6`.

    Returns:
        list of float, one per stage.

    Example:

    ```python
    scores = stage_importance(model, dataset.train, criterion="pls", samples=2000)
    ```
    """
    if criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {list(CRITERIA)}. Received: criterion={criterion!r}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 2):
        raise ValueError(f"`samples` must be an int >= 2 or None. Received: samples={samples!r}")
    if pool_size is not None and (isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1):
        raise ValueError(f"`pool_size` must be a positive int or None. Received: pool_size={pool_size!r}")
    features, labels = collect_stage_features(model, data, samples=samples, pool_size=pool_size)
    return [
        float(np.mean(score_features(X, labels, criterion, n_components, alpha, tokens)))
        for X in features
    ]
