"""Export a trained model as a TensorFlow SavedModel that TF Serving can serve.

The `serving_default` signature takes raw images and returns probabilities,
class ids (and class names when known); the preprocessing the model was trained
with (resize, channel conversion, per-channel normalisation) runs inside the
graph, so a client sends pixels and nothing else:

- input `images`: float32, shape `(batch, height, width, channels)`, values in
  [0, 255]; any height/width (resized bilinearly to the model's size);
  `channels` as in the source data (e.g. 1 for digits, 3 for CIFAR).
- outputs `probabilities` (float32, `(batch, num_classes)`), `class_ids`
  (int32, `(batch,)`) and, when class names are known, `class_names`
  (string, `(batch,)`).

The SavedModel holds only TensorFlow ops (no Python functions), so it loads in
a process without keras_nas and through `saved_model_cli run`.
"""

import os

import numpy as np
import tensorflow as tf

from keras_nas import data as data_lib
from keras_nas import folding


def _identity_preprocessing(model):
    shape = tuple(model.inputs[0].shape[1:])
    channels = int(shape[-1])
    return data_lib.preprocessing_config(
        shape, [0.0] * channels, [1.0 / 255.0] * channels, channels
    )


def output_kind(model):
    """'probabilities' if `model` ends in a softmax, 'logits' if in a linear layer (read from its last layer).

    Raises `ValueError` for other endings (a sigmoid, a ReLU, ...): the served
    `probabilities` would mean nothing.
    """
    import keras

    layer = model.outputs[0]._keras_history[0] if hasattr(model.outputs[0], "_keras_history") else model.layers[-1]
    # Look through layers that pass their (first) input on: Identity, Dropout, a linear Activation, and
    # layers that say so (`passes_first_input`, e.g. the EoiNAS auxiliary tap).
    for _ in range(len(model.layers)):
        passes = (getattr(layer, "passes_first_input", False) or isinstance(layer, (keras.layers.Identity,
                  keras.layers.Dropout)) or (isinstance(layer, keras.layers.Activation)
                                             and getattr(layer.activation, "__name__", "") == "linear"))
        if not passes or not getattr(layer, "_inbound_nodes", None):
            break
        layer = keras.tree.flatten(layer._inbound_nodes[0].input_tensors)[0]._keras_history[0]
    if isinstance(layer, keras.layers.Softmax):
        return "probabilities"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None) or (activation if isinstance(activation, str) else None)
    if name == "softmax":
        return "probabilities"
    if activation is None or name == "linear":
        return "logits"
    raise ValueError(f"`model` must end in a softmax or in logits (a linear layer); its last layer "
                     f"{layer.name!r} applies {name or activation!r}.")


def export_saved_model(model, path, *, preprocessing=None, class_names=None, fold_batch_norm=True):
    """Writes `model` as a SavedModel with the preprocessing inside the graph.

    Args:
        model: a Keras classifier of normalised images that ends in a
            softmax or in logits; for logits, the serving graph applies the
            softmax (`output_kind` tells which).
        path: str. Folder to write (created; must not exist or be empty).
        preprocessing: dict from `Dataset.preprocessing()` (or the results
            folder's `preprocessing.json`). None exports a graph that feeds
            the pixels to the model unchanged (float32, no scaling).
        class_names: list of str. Overrides `preprocessing["class_names"]`.
        fold_batch_norm: bool. Fold every BatchNormalization that follows a
            convolution into it (`keras_nas.folding.fold_batch_norms`):
            same predictions within float rounding, fewer graph ops to
            serve. Subclassed models are exported as they are. Defaults to
            `True`.

    Returns:
        str. The path written.

    Example:

    >>> data = keras_nas.data.load("digits")
    >>> export_saved_model(model, "/tmp/digits_model", preprocessing=data.preprocessing())
    >>> served = tf.saved_model.load("/tmp/digits_model").signatures["serving_default"]
    >>> served(images=tf.zeros((1, 8, 8, 1)))["class_ids"]
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a Keras model. Received: {type(model).__name__}")
    path = os.fspath(path)
    if os.path.exists(path) and os.listdir(path):
        raise ValueError(
            f"`path` must be a new or empty folder. Received: path={path!r}, "
            "which is not empty."
        )
    config = dict(preprocessing) if preprocessing else _identity_preprocessing(model)
    missing = {"image_size", "channels", "source_channels", "mean", "std"} - set(config)
    if missing:
        raise ValueError(
            f"`preprocessing` is missing keys {sorted(missing)}. Received keys: "
            f"{sorted(config)}"
        )
    expected = tuple(config["image_size"]) + (config["channels"],)
    actual = tuple(model.inputs[0].shape[1:])
    if expected != actual:
        raise ValueError(
            f"`preprocessing` produces images of shape {expected} but the model "
            f"takes {actual}."
        )
    if not isinstance(fold_batch_norm, bool):
        raise TypeError(f"`fold_batch_norm` must be a bool. Received: fold_batch_norm={fold_batch_norm!r}")
    if fold_batch_norm:

        if folding.is_graph_model(model) and folding.foldable_pairs(model):
            model = folding.fold_batch_norms(model)
    logits = output_kind(model) == "logits"
    names = class_names if class_names is not None else config.get("class_names")
    num_classes = int(model.outputs[0].shape[-1])
    if names is not None and len(names) != num_classes:
        raise ValueError(
            f"`class_names` must have {num_classes} entries (one per model "
            f"output). Received {len(names)}: {names!r}"
        )

    spec = tf.TensorSpec(
        [None, None, None, config["source_channels"]], tf.float32, name="images"
    )
    names_table = tf.constant(np.array(names, dtype=object)) if names else None

    def serve(images):
        probabilities = model(data_lib.preprocess(images, config), training=False)
        probabilities = tf.cast(probabilities, tf.float32)
        if logits:
            probabilities = tf.nn.softmax(probabilities, axis=-1)
        outputs = {
            "probabilities": probabilities,
            "class_ids": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
        }
        if names_table is not None:
            outputs["class_names"] = tf.gather(names_table, outputs["class_ids"])
        return outputs

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.write_out(path, verbose=False)
    return path
