"""The final model of every search saves, reloads, exports and serves without keras_nas.

One small model per family — stage-wise ResNet and NASNet, an EoiNAS/DARTS
network (auxiliary head, drop path), a CNAS sparse network and an EPNAS
child — goes through `.keras` and `keras_nas.export`, and a TensorFlow-only
process gives the same probabilities.
"""

import keras
import numpy as np
import pytest

from keras_nas import cnas, data, export, stagewise
from keras_nas.eoinas import darts
from keras_nas.epnas.space import EPNASSpace

SHAPE = (8, 8, 1)


def _cnas_sparse():
    build = lambda **kw: cnas.channel_nasnet(1, 2, 4, input_shape=SHAPE, num_classes=10, **kw)  # noqa: E731
    model, topology = build(return_topology=True)
    graph = cnas.ChannelGraph(topology)
    rng = np.random.default_rng(0)
    masks = {n: (rng.random(len(m)) < 0.5).astype("float32") for n, m in graph.full_masks().items()}
    cnas.write_masks(model, graph, masks)
    return cnas.materialize(model, graph, lambda sel: build(selection=sel))[0]


def _epnas_child():
    space = EPNASSpace("layers")
    return space.build(space.random_architecture(np.random.default_rng(0)), input_shape=SHAPE, num_classes=10)


BUILDERS = {
    "stagewise_resnet": lambda: stagewise.stage_resnet((1, 1, 1), block="basic", input_shape=SHAPE, num_classes=10),
    "stagewise_nasnet": lambda: stagewise.stage_nasnet((1, 1, 1), filters=8, input_shape=SHAPE, num_classes=10),
    "eoinas_darts": lambda: darts.eval_network(darts.GENOTYPES["DARTS_V2"], cells=3, channels=4, num_classes=10,
                                               input_shape=SHAPE, auxiliary=True, drop_path=0.2),
    "cnas_sparse": _cnas_sparse,
    "epnas_child": _epnas_child,
}


def test_final_models_of_every_search_serve_in_tensorflow_only(tmp_path, tensorflow_only):
    digits = data.load("digits")
    raw = data._digits_arrays()[0][:5]
    inputs = data.preprocess(raw, digits.preprocessing())
    expected = {}
    for name, build in BUILDERS.items():
        keras.utils.set_random_seed(0)
        path = str(tmp_path / f"{name}.keras")
        build().save(path)
        model = keras.saving.load_model(path, compile=False)
        expected[name] = np.asarray(model.predict(inputs, verbose=0))
        export.export_saved_model(model, str(tmp_path / name), preprocessing=digits.preprocessing())
    np.save(tmp_path / "raw.npy", raw)
    script = (
        "import sys, json, numpy as np, tensorflow as tf\n"
        "raw = tf.constant(np.load('raw.npy'))\n"
        "out = {}\n"
        f"for name in {list(BUILDERS)!r}:\n"
        "    f = tf.saved_model.load(name).signatures['serving_default']\n"
        "    out[name] = f(images=raw)['probabilities'].numpy().tolist()\n"
        "print(json.dumps(out))\n"
    )
    served = tensorflow_only(script, tmp_path, timeout=600)
    for name in BUILDERS:
        np.testing.assert_allclose(served[name], expected[name], atol=1e-5, err_msg=name)


def test_training_only_parts_do_not_reach_the_served_graph(tmp_path):
    # The auxiliary head and drop path are for training: the served model
    # gives the main classifier's probabilities, the same on every call.
    import tensorflow as tf

    model = BUILDERS["eoinas_darts"]()
    export.export_saved_model(model, str(tmp_path / "darts"))
    f = tf.saved_model.load(str(tmp_path / "darts")).signatures["serving_default"]
    assert set(f.structured_outputs) == {"probabilities", "class_ids"}
    images = tf.random.uniform((3,) + SHAPE, maxval=255.0, seed=0)
    first, second = f(images=images)["probabilities"], f(images=images)["probabilities"]
    assert first.shape == (3, 10)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    np.testing.assert_allclose(first.numpy().sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("first_import", ["import keras", "import tensorflow"])
def test_every_final_model_loads_after_a_plain_import_keras_nas(tmp_path, first_import):
    """A fresh process that imports only keras_nas (no layer module) loads every method's model with Keras.

    Also when TensorFlow is imported before Keras (TensorFlow probes for Keras
    without loading it; `keras-nas export` once failed on CNAS models so).
    """
    import json
    import subprocess
    import sys

    models = {**BUILDERS, "cnas_oneshot": lambda: cnas.channel_nasnet(1, 2, 4, input_shape=SHAPE, num_classes=10)}
    inputs = np.random.default_rng(0).normal(size=(2, *SHAPE)).astype("float32")
    np.save(tmp_path / "inputs.npy", inputs)
    expected = {}
    for name, build in models.items():
        keras.utils.set_random_seed(0)
        model = build()
        model.save(str(tmp_path / f"{name}.keras"))
        expected[name] = np.asarray(model(inputs, training=False))
    script = (
        "import json, numpy as np\n"
        "import keras_nas\n"
        f"{first_import}\n"
        "import keras\n"
        "x = np.load('inputs.npy')\n"
        f"print(json.dumps({{n: np.asarray(keras.saving.load_model(n + '.keras')(x, training=False)).tolist() "
        f"for n in {list(models)!r}}}))\n"
    )
    env = {**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    for name in models:
        np.testing.assert_allclose(loaded[name], expected[name], atol=1e-5, err_msg=name)
