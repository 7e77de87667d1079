import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import layers

from keras_nas import data, export


def _model(input_shape):
    x = keras.Input(input_shape)
    y = layers.Conv2D(4, 3, activation="relu")(x)
    y = layers.GlobalAveragePooling2D()(y)
    y = layers.Dense(10, activation="softmax", name="predictions")(y)
    return keras.Model(x, y)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    d = data.load("digits", image_size=12, channels=3)
    model = _model(d.input_shape)
    path = str(tmp_path_factory.mktemp("export") / "saved")
    export.export_saved_model(model, path, preprocessing=d.preprocessing())
    raw = data._digits_arrays()[0][:6]
    expected = model.predict(data.preprocess(raw, d.preprocessing()), verbose=0)
    return path, raw, expected


def test_serves_in_tensorflow_only_process(exported, tmp_path, tensorflow_only):
    path, raw, expected = exported
    np.save(tmp_path / "raw.npy", raw)
    script = (
        "import sys, json, numpy as np, tensorflow as tf\n"
        f"f = tf.saved_model.load({path!r}).signatures['serving_default']\n"
        f"out = f(images=tf.constant(np.load({str(tmp_path / 'raw.npy')!r})))\n"
        "result = {k: v.numpy().tolist() if v.dtype != tf.string else "
        "[s.decode() for s in v.numpy()] for k, v in out.items()}\n"
    )
    out = tensorflow_only(script + "print(json.dumps(result))\n", tmp_path)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    assert out["class_ids"] == expected.argmax(-1).tolist()
    assert out["class_names"] == [str(i) for i in expected.argmax(-1)]


def test_saved_model_cli_run(exported, tmp_path):
    path, raw, expected = exported
    np.save(tmp_path / "raw.npy", raw)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        cli = "saved_model_cli"
    result = subprocess.run(
        [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def",
         "serving_default", "--inputs", f"images={tmp_path / 'raw.npy'}",
         "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = np.load(tmp_path / "out" / "probabilities.npy")
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_graph_has_no_python_ops(exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(exported[0])
    graph = loaded.signatures["serving_default"].graph
    ops = {op.type for op in graph.get_operations()}
    for fn in graph.as_graph_def().library.function:
        ops |= {node.op for node in fn.node_def}
    assert not {"PyFunc", "EagerPyFunc", "PyFuncStateless"} & ops


def test_any_image_size_is_resized(exported):
    import tensorflow as tf

    f = tf.saved_model.load(exported[0]).signatures["serving_default"]
    out = f(images=tf.zeros((2, 30, 20, 1)))
    assert out["probabilities"].shape == (2, 10)


def test_errors(tmp_path):
    model = _model((8, 8, 1))
    with pytest.raises(TypeError, match="`model` must be a Keras model"):
        export.export_saved_model("model", str(tmp_path / "a"))
    d = data.load("digits", image_size=12)
    with pytest.raises(ValueError, match="produces images of shape"):
        export.export_saved_model(model, str(tmp_path / "b"), preprocessing=d.preprocessing())
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(ValueError, match="`path` must be a new or empty folder"):
        export.export_saved_model(model, str(tmp_path / "c"))
    with pytest.raises(ValueError, match="`class_names` must have 10 entries"):
        export.export_saved_model(model, str(tmp_path / "d"), class_names=["a"])


def _ending(kind):
    x = keras.Input((8, 8, 1))
    y = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(x))
    if kind == "softmax_layer":
        return keras.Model(x, layers.Softmax()(layers.Dense(10)(y)))
    return keras.Model(x, layers.Dense(10, activation={"logits": None, "softmax": "softmax", "relu": "relu"}[kind])(y))


@pytest.mark.parametrize("kind, expected", [("logits", "logits"), ("softmax", "probabilities"),
                                            ("softmax_layer", "probabilities")])
def test_served_probabilities_are_probabilities_whatever_the_model_ends_in(kind, expected, tmp_path):
    import tensorflow as tf

    model = _ending(kind)
    assert export.output_kind(model) == expected
    export.export_saved_model(model, str(tmp_path / "m"))
    served = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    images = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 1)).astype("float32")
    probabilities = served(images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    outputs = model.predict(images, verbose=0)
    reference = outputs if expected == "probabilities" else tf.nn.softmax(outputs).numpy()
    np.testing.assert_allclose(probabilities, reference, atol=1e-5)


def test_a_model_that_is_not_a_classifier_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`model` must end in a softmax or in logits .* applies 'relu'"):
        export.export_saved_model(_ending("relu"), str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()
