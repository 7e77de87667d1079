"""TFLite export: the SavedModel's serving contract in a `.tflite` file, float32, float16 or int8 (issue 24)."""

import os

import keras
import numpy as np
import pytest
from keras import layers

from keras_nas import data, export
from tests.test_export_every_method import BUILDERS


@pytest.fixture(scope="module")
def digits():
    d = data.load("digits")
    raw = data._digits_arrays()[0][:6]
    return d, raw


def _tiny(input_shape=(8, 8, 1), activation="softmax"):
    x = keras.Input(input_shape)
    y = layers.Conv2D(4, 3, activation="relu")(x)
    y = layers.BatchNormalization()(y)
    y = layers.GlobalAveragePooling2D()(y)
    return keras.Model(x, layers.Dense(10, activation=activation)(y))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_float_tflite_gives_the_keras_models_probabilities(name, digits, tmp_path):
    d, raw = digits
    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    path = export.export_tflite(model, str(tmp_path / "m.tflite"), preprocessing=d.preprocessing())
    expected = np.asarray(model.predict(data.preprocess(raw, d.preprocessing()), verbose=0))
    out = export.tflite_predict(path, raw)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["class_ids"], expected.argmax(-1))
    assert [s.decode() for s in out["class_names"]] == [str(i) for i in expected.argmax(-1)]


def test_tflite_takes_source_channels_at_the_models_size_and_any_batch(tmp_path):
    d = data.load("digits", image_size=12, channels=3)
    model = _tiny(d.input_shape, activation=None)  # logits: the softmax runs inside
    path = export.export_tflite(model, str(tmp_path / "m.tflite"), preprocessing=d.preprocessing())
    details = export._interpreter(path).get_signature_runner().get_input_details()["images"]
    assert list(details["shape_signature"]) == [-1, 12, 12, 1] and details["dtype"] == np.float32
    raw, _ = next(iter(d.raw("test", batch_size=3)))
    import tensorflow as tf

    expected = tf.nn.softmax(model(data.preprocess(raw, d.preprocessing()))).numpy()
    for batch in (1, 3):
        got = export.tflite_predict(path, raw.numpy()[:batch])["probabilities"]
        np.testing.assert_allclose(got, expected[:batch], atol=1e-5)


def test_float16_halves_the_weights(digits, tmp_path):
    d, raw = digits
    model = BUILDERS["stagewise_resnet"]()
    full = export.export_tflite(model, str(tmp_path / "f.tflite"), preprocessing=d.preprocessing())
    half = export.export_tflite(model, str(tmp_path / "h.tflite"), preprocessing=d.preprocessing(),
                                quantize="float16")
    assert os.path.getsize(half) < 0.6 * os.path.getsize(full)
    np.testing.assert_allclose(export.tflite_predict(half, raw)["probabilities"],
                               export.tflite_predict(full, raw)["probabilities"], atol=1e-2)


def test_int8_runs_with_float_input_and_output_and_int8_ops(digits, tmp_path):
    d, raw = digits
    model = BUILDERS["stagewise_resnet"]()
    path = export.export_tflite(model, str(tmp_path / "q.tflite"), preprocessing=d.preprocessing(),
                                quantize="int8", representative_data=d.raw("train"), calibration_examples=32)
    interpreter = export._interpreter(path)
    runner = interpreter.get_signature_runner()
    assert runner.get_input_details()["images"]["dtype"] == np.float32
    outputs = runner.get_output_details()
    assert outputs["probabilities"]["dtype"] == np.float32 and outputs["class_ids"]["dtype"] == np.int32
    # The convolutions' weights are int8 (full-integer quantization).
    assert any(t["dtype"] == np.int8 for t in interpreter.get_tensor_details())
    out = export.tflite_predict(path, raw)
    assert out["probabilities"].shape == (6, 10)
    np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, atol=0.05)
    assert os.path.getsize(path) < 0.5 * len(export.tflite_bytes(model, preprocessing=d.preprocessing()))


def test_tflite_accuracy_counts_the_right_answers(tmp_path):
    path = export.export_tflite(_tiny(), str(tmp_path / "m.tflite"))
    images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 1)).astype("float32")
    ids = export.tflite_predict(path, images)["class_ids"]
    labels = ids.copy()
    labels[:2] = (labels[:2] + 1) % 10
    assert export.tflite_accuracy(path, [(images[:3], labels[:3]), (images[3:], labels[3:])]) == pytest.approx(0.6)


def test_errors_come_before_anything_is_written(tmp_path):
    model = _tiny()
    with pytest.raises(TypeError, match="`model` must be a Keras model"):
        export.export_tflite("m", str(tmp_path / "a.tflite"))
    with pytest.raises(ValueError, match=r"`path` must be a file name ending in .tflite. Received: path='.*a.bin'"):
        export.export_tflite(model, str(tmp_path / "a.bin"))
    with pytest.raises(ValueError, match=r"`quantize` must be None or one of \['float16', 'int8'\]. "
                                         r"Received: quantize='int4'"):
        export.export_tflite(model, str(tmp_path / "a.tflite"), quantize="int4")
    with pytest.raises(ValueError, match="`quantize='int8'` needs `representative_data`"):
        export.export_tflite(model, str(tmp_path / "a.tflite"), quantize="int8")
    with pytest.raises(ValueError, match="`representative_data` calibrates int8 quantization only"):
        export.export_tflite(model, str(tmp_path / "a.tflite"), representative_data=np.zeros((1, 8, 8, 1)))
    assert os.listdir(tmp_path) == []


def test_an_existing_file_is_kept_unless_overwrite(tmp_path):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"mine")
    with pytest.raises(ValueError, match="`path` exists; pass overwrite=True to replace it"):
        export.export_tflite(_tiny(), str(target))
    assert target.read_bytes() == b"mine"
    export.export_tflite(_tiny(), str(target), overwrite=True)
    assert export.tflite_predict(str(target), np.zeros((1, 8, 8, 1)))["probabilities"].shape == (1, 10)
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]  # no temporary file left behind


def test_raw_batches_are_the_pixels_the_pipelines_normalise():
    d = data.load("digits", channels=3, batch_size=16)
    raw, labels = next(iter(d.raw("test")))
    images, same_labels = next(iter(d.test))
    assert raw.shape == (16, 8, 8, 1) and float(raw.numpy().max()) > 1.0
    np.testing.assert_array_equal(labels.numpy(), same_labels.numpy())
    np.testing.assert_allclose(data.preprocess(raw, d.preprocessing()).numpy(), images.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match=r"`split` must be one of \['test', 'train', 'validation'\]"):
        d.raw("tests")


# -- the command line ------------------------------------------------------


@pytest.fixture
def results(tmp_path):
    """A results folder as every method leaves it (untrained tiny model, digits)."""
    from keras_nas import io

    folder = tmp_path / "run"
    folder.mkdir()
    d = data.load("digits")
    keras.utils.set_random_seed(0)
    _tiny(d.input_shape).save(str(folder / "best_model.keras"))
    io.write_preprocessing(str(folder), d)
    io.atomic_write_json(str(folder / "config.json"), {"method": "train", "dataset": "digits", "seed": 0})
    return folder


def _refused(argv, capsys):
    from keras_nas import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("extra, message", [
    (["--quantize", "int8"], "`--quantize` applies to `--format` tflite only. Received: --quantize int8, "
                             "--format savedmodel"),
    (["--format", "tflite", "--quantize", "int4"], "`--quantize` must be one of ['float16', 'int8']. "
                                                   "Received: --quantize int4"),
    (["--format", "onnx"], "`--format` must be one of ['savedmodel', 'tflite']. Received: --format onnx"),
    (["--format", "tflite", "--out", "m.bin"], "`--out` must be a file name ending in .tflite with `--format` "
                                               "tflite. Received: --out m.bin"),
])
def test_cli_refuses_bad_export_options_in_one_line(extra, message, results, capsys):
    before = sorted(os.listdir(results))
    err = _refused(["export", str(results), *extra], capsys)
    assert err == f"keras-nas: error: {message}\n"
    assert sorted(os.listdir(results)) == before


def test_cli_refuses_a_folder_without_a_best_model(tmp_path, capsys):
    err = _refused(["export", str(tmp_path), "--format", "tflite"], capsys)
    assert "`MODEL_OR_RESULTS` must be a .keras file or a results folder holding best_model.keras" in err


def test_cli_never_overwrites_an_existing_tflite_file(results, capsys):
    from keras_nas import cli

    target = results / "best_model.tflite"
    target.write_bytes(b"mine")
    err = _refused(["export", str(results), "--format", "tflite"], capsys)
    assert err == (f"keras-nas: error: `--out` exists; add `--overwrite` to replace it. Received: --out {target}\n")
    assert target.read_bytes() == b"mine"
    cli.main(["export", str(results), "--format", "tflite", "--overwrite"])
    assert f"TFLite model (float32) written to {target} ({target.stat().st_size:,} bytes" in capsys.readouterr().out


def test_cli_int8_export_of_a_results_folder_prints_size_and_both_accuracies(results, capsys):
    import re

    from keras_nas import cli

    cli.main(["export", str(results), "--format", "tflite", "--quantize", "int8"])
    out = capsys.readouterr().out
    path = results / "best_model.int8.tflite"
    assert f"TFLite model (int8) written to {path} ({path.stat().st_size:,} bytes" in out
    found = re.search(r"test accuracy on digits \(TFLite interpreter\): float32 ([\d.]+) .*, int8 ([\d.]+)", out)
    assert found, out
    # The float TFLite model gives the Keras model's predictions: the same accuracy on the test split.
    d = data.load("digits")
    model = keras.saving.load_model(str(results / "best_model.keras"))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert float(found.group(1)) == pytest.approx(model.evaluate(d.test, verbose=0)[1], abs=1e-4)
    assert float(found.group(2)) == pytest.approx(export.tflite_accuracy(str(path), d.raw("test")), abs=1e-4)


@pytest.mark.slow
def test_int8_keeps_the_test_accuracy_of_a_trained_digits_model_within_one_point(tmp_path):
    from keras_nas import stagewise

    d = data.load("digits")
    model = stagewise.stage_resnet((1, 1, 1), block="basic", input_shape=d.input_shape, num_classes=10)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(d.train, epochs=15, verbose=0)
    keras_accuracy = model.evaluate(d.test, verbose=0)[1]
    assert keras_accuracy > 0.9  # a trained model, or the comparison says little
    full = export.export_tflite(model, str(tmp_path / "f.tflite"), preprocessing=d.preprocessing())
    int8 = export.export_tflite(model, str(tmp_path / "q.tflite"), preprocessing=d.preprocessing(),
                                quantize="int8", representative_data=d.raw("train"))
    float_accuracy = export.tflite_accuracy(full, d.raw("test"))
    assert float_accuracy == pytest.approx(keras_accuracy, abs=1e-4)
    assert abs(export.tflite_accuracy(int8, d.raw("test")) - float_accuracy) <= 0.01
