"""Export a trained model as a TensorFlow SavedModel that TF Serving can serve, or as TFLite for devices.

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

`export_tflite` converts the same serving function to a `.tflite` file
(builtin ops only; optionally float16 weights or full-integer int8) with the
same input and outputs at the model's fixed image size; `tflite_predict` and
`tflite_accuracy` run it through `tf.lite.Interpreter`.
"""

import contextlib
import os
import sys

import numpy as np
import tensorflow as tf

from keras_nas import data as data_lib
from keras_nas import folding
from keras_nas import io


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


def _serving(model, preprocessing, class_names, fold_batch_norm):
    """`(model, config, serve)`: the checked model (BatchNorm folded), its preprocessing and serving function.

    `serve(images)` maps raw pixels to the outputs of the serving contract;
    the SavedModel and the TFLite export trace the same function.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a Keras model. Received: {type(model).__name__}")
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
    logits = output_kind(model) == "logits"
    names = class_names if class_names is not None else config.get("class_names")
    num_classes = int(model.outputs[0].shape[-1])
    if names is not None and len(names) != num_classes:
        raise ValueError(
            f"`class_names` must have {num_classes} entries (one per model "
            f"output). Received {len(names)}: {names!r}"
        )
    if fold_batch_norm and folding.is_graph_model(model) and folding.foldable_pairs(model):
        model = folding.fold_batch_norms(model)
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

    return model, config, serve


def _write_archive(model, serve, spec, path):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    # `spec`: one TensorSpec, or a list of them for a model of several inputs (keras_nas.latency's cell entries).
    archive.add_endpoint("serving_default", serve, input_signature=list(spec) if isinstance(spec, list) else [spec])
    archive.write_out(path, verbose=False)


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
    model, config, serve = _serving(model, preprocessing, class_names, fold_batch_norm)
    spec = tf.TensorSpec(
        [None, None, None, config["source_channels"]], tf.float32, name="images"
    )
    _write_archive(model, serve, spec, path)
    return path


# -- TFLite ---------------------------------------------------------------

QUANTIZATIONS = ("float16", "int8")
CALIBRATION_EXAMPLES = 256


@contextlib.contextmanager
def _quiet_native_stderr():
    """TFLite's C++ status lines ("fully_quantize: 0, ...", "Created TensorFlow Lite XNNPACK delegate") off fd 2.

    They bypass Python and TF_CPP_MIN_LOG_LEVEL; errors still arrive as Python
    exceptions. KERAS_NAS_DEBUG=1 keeps them.
    """
    if os.environ.get("KERAS_NAS_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _calibration_images(representative_data, limit):
    """Up to `limit` single images (`(1, H, W, C)` float32) from arrays, batches or `(images, labels)` pairs."""
    if isinstance(representative_data, np.ndarray) or tf.is_tensor(representative_data):
        representative_data = [representative_data]
    count = 0
    for batch in representative_data:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]  # (images, labels)
        batch = np.asarray(batch, dtype=np.float32)
        for image in batch:
            if count == limit:
                return
            count += 1
            yield image[None]


def _check_tflite_arguments(model, path, quantize, representative_data, calibration_examples, overwrite,
                            allow_select_tf_ops):
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a Keras model. Received: {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).endswith(".tflite"):
        raise ValueError(f"`path` must be a file name ending in .tflite. Received: path={path!r}")
    path = os.fspath(path)
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be None or one of {list(QUANTIZATIONS)}. Received: quantize={quantize!r}")
    if quantize == "int8" and representative_data is None:
        raise ValueError("`quantize='int8'` needs `representative_data` (training images in [0, 255]) to "
                         "calibrate the activation ranges. Received: representative_data=None")
    if quantize != "int8" and representative_data is not None:
        raise ValueError("`representative_data` calibrates int8 quantization only. Received: "
                         f"quantize={quantize!r}")
    if isinstance(calibration_examples, bool) or not isinstance(calibration_examples, int) \
            or calibration_examples < 1:
        raise ValueError(f"`calibration_examples` must be an int >= 1. Received: "
                         f"calibration_examples={calibration_examples!r}")
    for name, value in (("overwrite", overwrite), ("allow_select_tf_ops", allow_select_tf_ops)):
        if not isinstance(value, bool):
            raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    if os.path.isdir(path):
        raise ValueError(f"`path` must be a file name; a folder of that name exists. Received: path={path!r}")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"`path` exists; pass overwrite=True to replace it. Received: path={path!r}")
    return path


def tflite_bytes(model, *, preprocessing=None, class_names=None, quantize=None, representative_data=None,
                 calibration_examples=CALIBRATION_EXAMPLES, fold_batch_norm=True, allow_select_tf_ops=False):
    """The flatbuffer `export_tflite` writes, as bytes (nothing is written); same arguments."""
    import shutil
    import tempfile

    model, config, serve = _serving(model, preprocessing, class_names, fold_batch_norm)
    # Fixed image size (no in-graph tf.cond to resize), dynamic batch.
    spec = tf.TensorSpec([None, *config["image_size"], config["source_channels"]], tf.float32, name="images")
    # Through a SavedModel of the same serving function: `from_concrete_functions` on a Keras model's traced
    # function lost its variables here (NaN outputs, TF 2.21), `from_saved_model` does not.
    folder = tempfile.mkdtemp(prefix="keras_nas-tflite-")
    try:
        _write_archive(model, serve, spec, folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantize == "int8" else tf.lite.OpsSet.TFLITE_BUILTINS
        converter.target_spec.supported_ops = [builtins] + ([tf.lite.OpsSet.SELECT_TF_OPS]
                                                            if allow_select_tf_ops else [])
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            # Full-integer post-training quantization; the input and output stay float32 (quantize and
            # dequantize ops at the ends), so the model keeps the serving contract: pixels in, probabilities out.
            converter.representative_dataset = lambda: (
                [image] for image in _calibration_images(representative_data, calibration_examples))
        try:
            with _quiet_native_stderr():
                return converter.convert()
        except Exception as error:  # the converter raises ConverterError, ValueError, RuntimeError
            if allow_select_tf_ops:
                raise
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"`model` does not convert to TFLite builtin ops ({reason}); retry with "
                             "allow_select_tf_ops=True (needs the TF Select ops on the device).") from error
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def export_tflite(model, path, *, preprocessing=None, class_names=None, quantize=None, representative_data=None,
                  calibration_examples=CALIBRATION_EXAMPLES, fold_batch_norm=True, overwrite=False,
                  allow_select_tf_ops=False):
    """Writes `model` as a TFLite flatbuffer with the SavedModel's serving contract.

    The same serving function as `export_saved_model` (preprocessing,
    softmax of logits, class ids and names) is converted, with TFLite's
    builtin ops only, through `tf.lite.TFLiteConverter.from_saved_model`:

    - input `images`: float32 `(batch, height, width, source_channels)` in
      [0, 255], at the model's **fixed** image size (`preprocessing`'s
      `image_size`; resize on the client); channel conversion and
      normalisation run inside the model.
    - the batch dimension is dynamic (`shape_signature` -1): a
      `tf.lite.Interpreter(...).get_signature_runner()` call takes any batch;
      with the tensor API, `resize_tensor_input` then `allocate_tensors`.
    - outputs `probabilities` (float32), `class_ids` (int32) and, when known,
      `class_names` (string), through the `serving_default` signature.

    `quantize="float16"` stores the weights as float16 (about half the
    size; computed in float32 on CPU). `quantize="int8"` is full-integer
    post-training quantization: weights and activations int8, every op an
    int8 builtin, activation ranges calibrated on `representative_data`;
    the input and output tensors stay float32 so clients send the same
    pixels and read the same probabilities.

    Args:
        model: a Keras classifier, as for `export_saved_model`.
        path: str. The `.tflite` file to write (atomically; its folder is
            created).
        preprocessing: dict from `Dataset.preprocessing()` (or
            `preprocessing.json`). None feeds the pixels unchanged.
        class_names: list of str. Overrides `preprocessing["class_names"]`.
        quantize: None (float32), `"float16"` or `"int8"`. Defaults to None.
        representative_data: int8 only, and required there: raw training
            images as the model serves them (float32 in [0, 255], source
            channels, model image size): an array, or an iterable of arrays
            or of `(images, labels)` batches, e.g. `Dataset.raw("train")`.
        calibration_examples: int. Images of `representative_data` used to
            calibrate. Defaults to `256`.
        fold_batch_norm: bool. As for `export_saved_model`. Defaults to
            `True`.
        overwrite: bool. Replace an existing file at `path`. Defaults to
            `False` (an existing file is an error).
        allow_select_tf_ops: bool. Fall back to TF Select ops for what
            builtins cannot express (the device then needs the Flex
            delegate). No keras_nas model needs it. Defaults to `False`.

    Returns:
        str. The path written.

    Example:

    >>> data = keras_nas.data.load("digits")
    >>> export_tflite(model, "/tmp/digits.int8.tflite", preprocessing=data.preprocessing(), quantize="int8",
    ...               representative_data=data.raw("train"))
    >>> runner = tf.lite.Interpreter("/tmp/digits.int8.tflite").get_signature_runner()
    >>> runner(images=np.zeros((2, 8, 8, 1), "float32"))["class_ids"]
    """
    path = _check_tflite_arguments(model, path, quantize, representative_data, calibration_examples, overwrite,
                                   allow_select_tf_ops)
    content = tflite_bytes(model, preprocessing=preprocessing, class_names=class_names, quantize=quantize,
                           representative_data=representative_data, calibration_examples=calibration_examples,
                           fold_batch_norm=fold_batch_norm, allow_select_tf_ops=allow_select_tf_ops)
    io.atomic_write_bytes(path, content)
    return path


def _interpreter(model):
    import warnings

    with warnings.catch_warnings():
        # TF 2.21 announces tf.lite.Interpreter's move to the ai_edge_litert package; it still ships in TF.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        with _quiet_native_stderr():
            if isinstance(model, (bytes, bytearray)):
                return tf.lite.Interpreter(model_content=bytes(model))
            return tf.lite.Interpreter(model_path=os.fspath(model))


def tflite_predict(model, images, batch_size=256):
    """The outputs of a TFLite model (a `.tflite` path or its bytes) for raw `images`, through the interpreter.

    Args:
        model: str or bytes. What `export_tflite` wrote (or `tflite_bytes`).
        images: float array `(n, height, width, source_channels)` in [0, 255].
        batch_size: int. Images per interpreter call. Defaults to `256`.

    Returns:
        dict of NumPy arrays by output name (`probabilities`, `class_ids`, ...).

    Example:

    >>> tflite_predict("/tmp/digits.tflite", np.zeros((3, 8, 8, 1)))["probabilities"].shape
    (3, 10)
    """
    runner = _interpreter(model).get_signature_runner("serving_default")
    images = np.asarray(images, dtype=np.float32)
    with _quiet_native_stderr():  # the XNNPACK line comes at the first call
        parts = [runner(images=images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def tflite_accuracy(model, batches):
    """Accuracy of a TFLite model (path or bytes) on `(raw images, labels)` batches, e.g. `Dataset.raw("test")`.

    Example:

    >>> tflite_accuracy("/tmp/digits.tflite", keras_nas.data.load("digits").raw("test"))
    """
    correct = total = 0
    for images, labels in batches:
        predicted = tflite_predict(model, np.asarray(images))["class_ids"]
        correct += int(np.sum(predicted == np.asarray(labels).reshape(-1)))
        total += len(predicted)
    if total == 0:
        raise ValueError("`batches` must hold at least one example; it is empty.")
    return correct / total
