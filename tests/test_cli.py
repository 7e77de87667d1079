import json
import os
import subprocess
import sys

import keras
import pytest
from keras import layers

from keras_nas import cli
from tests.helpers import assert_only_owned


def _tiny_model_file(path, input_shape=(8, 8, 1)):
    x = keras.Input(input_shape)
    y = layers.Conv2D(4, 3, activation="relu")(x)
    y = layers.GlobalAveragePooling2D()(y)
    y = layers.Dense(10, activation="softmax", name="predictions")(y)
    keras.Model(x, y, name="tiny").save(path)
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = _tiny_model_file(root / "tiny.keras")
    out = str(root / "run")
    cli.main(["train", "--model", model, "--epochs", "2", "--out", out, "--verbose", "0"])
    return out


def test_train_writes_a_readable_results_folder(trained):
    files = set(os.listdir(trained))
    assert {"config.json", "results.json", "preprocessing.json", "model.keras",
            "best_model.keras", "history.png", "logs"} <= files
    assert_only_owned(trained)
    results = json.load(open(os.path.join(trained, "results.json")))
    assert len(results["history"]["loss"]) == 2
    # The test numbers are best_model.keras' (the epoch of `val_accuracy`); the last epoch's are kept too.
    best = keras.saving.load_model(os.path.join(trained, "best_model.keras"))
    best.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    from keras_nas import data
    assert results["test_accuracy"] == pytest.approx(best.evaluate(data.load("digits").test, verbose=0)[1])
    assert 0 <= results["last_epoch_test_accuracy"] <= 1
    assert results["costs"]["params"] > 0 and results["costs"]["emissions"]["co2_kg"] >= 0
    config = json.load(open(os.path.join(trained, "config.json")))
    assert config["epochs"] == 2 and config["dataset"] == "digits"


def test_train_again_resumes_and_other_settings_are_refused(trained, capsys):
    model = os.path.join(os.path.dirname(trained), "tiny.keras")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--model", model, "--epochs", "3", "--out", trained, "--verbose", "0"])
    assert exit_info.value.code == 2
    assert "other settings (epochs: 2 -> 3)" in capsys.readouterr().err


def test_profile_and_report(trained, capsys):
    cli.main(["profile", os.path.join(trained, "best_model.keras"), "--evaluate"])
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == 4 * 9 + 4 + 4 * 10 + 10
    results = json.load(open(os.path.join(trained, "results.json")))
    assert report["test_accuracy"] == pytest.approx(results["test_accuracy"])  # the same model on the same split
    cli.main(["report", trained])
    text = capsys.readouterr().out
    assert "test_accuracy" in text and "best_model.keras" in text


def test_export_uses_saved_preprocessing(trained, capsys):
    import tensorflow as tf

    out = os.path.join(trained, "serving")
    cli.main(["export", os.path.join(trained, "best_model.keras"), "--out", out])
    assert f"SavedModel version 1 written to {out}/1" in capsys.readouterr().out
    served = tf.saved_model.load(os.path.join(out, "1")).signatures["serving_default"]
    assert served(images=tf.zeros((1, 8, 8, 1)))["probabilities"].shape == (1, 10)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--arch", "resnet:a,b"], "`--arch` must look like KIND:D1,D2"),
        (["train", "--arch", "vgg:1,2"], "`--arch` must look like KIND:D1,D2"),
        (["train", "--genotype", "missing.json"], "`--genotype` must be a genotype JSON file or one of ['DARTS', 'DARTS_V1'"),
        (["train", "--genotype", "DARTS_V2", "--drop-path", "1.5"],
         "`--drop-path` must be a float in [0, 1). Received: --drop-path 1.5"),
        (["train", "--genotype", "DARTS_V2", "--auxiliary-weight", "-1"],
         "`--auxiliary-weight` must be a float >= 0. Received: --auxiliary-weight -1"),
        (["train", "--arch", "resnet:1,1,1", "--validation-split", "2"],
         "`--validation-split` must be a float in (0, 1). Received: --validation-split 2"),
        (["profile", "missing.keras"], "`MODEL` must be an existing .keras file"),
        (["report", "no/such/folder"], "`FOLDER` must be an existing results folder"),
    ],
)
def test_errors_are_one_clear_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--out", str(tmp_path / "o")] if argv[0] == "train" else argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_train_genotype_with_drop_path_schedule_and_auxiliary_weight(tmp_path):
    out = str(tmp_path / "darts")
    assert cli.main(["train", "--genotype", "DARTS_V2", "--cells", "3", "--init-channels", "4",
                     "--epochs", "2", "--drop-path", "0.2", "--auxiliary", "--auxiliary-weight", "0.3",
                     "--out", out, "--verbose", "0"]) == 0
    model = keras.saving.load_model(os.path.join(out, "model.keras"), compile=False)
    assert model.auxiliary_weight == pytest.approx(0.3)
    # DropPathSchedule: rate * epoch / epochs, so 0.2 * 1 / 2 in the last epoch.
    rates = [float(layer.current_rate.numpy()) for layer in model._flatten_layers()
             if type(layer).__name__ == "DropPath"]
    assert rates and all(r == pytest.approx(0.1) for r in rates)


def test_every_subcommand_has_help_and_common_options():
    parser = cli.build_parser()
    for command in ("train", "export", "profile", "report"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
    args = parser.parse_args(["train", "--arch", "resnet:1,1,1"])
    assert args.dataset == "digits" and args.seed == 0
    assert parser.parse_args(["profile", "m.keras"]).dataset == "digits"
    # export: not given means the dataset recorded in the results folder (else digits).
    assert parser.parse_args(["export", "m.keras"]).dataset is None
    for argv in (["export", "m.keras"], ["profile", "m.keras"]):
        assert parser.parse_args(argv).model == "m.keras"
    assert parser.parse_args(["report", "d"]).folder == "d"


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "keras_nas", "--help"], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0
    for command in ("search", "train", "export", "profile", "report"):
        assert command in result.stdout


def test_version_names_the_library_and_its_framework_versions(capsys):
    import keras
    import keras_nas

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"keras-nas {keras_nas.__version__} (TensorFlow ")
    assert f"Keras {keras.__version__}" in out


@pytest.mark.slow  # keeps the default suite within 15 minutes; `pytest -m slow` runs it
def test_report_into_a_closed_pipe_stops_quietly(trained):
    # `keras-nas report runs/x | head -1`: the reader leaves early.
    process = subprocess.Popen([sys.executable, "-m", "keras_nas", "report", trained],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1
    assert b"Traceback" not in err and b"BrokenPipeError" not in err


def test_settings_argv_turns_recipe_settings_into_options():
    argv = cli.settings_argv(["search", "epnas"], {
        "init_channels": 16, "data_dir": None, "prediction": True, "baselines": False,
        "constraint": ["params<=2e6", "intensity>=80"]})
    assert argv == ["search", "epnas", "--init-channels", "16", "--prediction", "--no-baselines",
                    "--constraint", "params<=2e6", "--constraint", "intensity>=80"]
