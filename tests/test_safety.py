"""Nothing a user owns is lost, and every bad input is one clear line before anything is written (issue 20).

Each case runs the command line as a user would and checks the exit status,
the one line (option named, what was expected, what was received), and that
no file changed.
"""

import json
import os
import subprocess
import sys

import pytest

from keras_nas import cli, io
from keras_nas.engine import results_folder

SUBPROCESS_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
SUBPROCESS_ENV["PYTHONPATH"] = os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")
TINY_STAGEWISE = ["--epochs", "1", "--iterations", "1", "--m0", "1", "--verbose", "0", "--importance-samples", "64"]


def _snapshot(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = f.read()
    return files


def _refused(argv, capsys):
    """Runs `keras-nas argv`, expects exit status 2; returns the one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def _users_folder(path):
    path.mkdir()
    (path / "thesis.txt").write_text("four years of work")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return _snapshot(path)


def _previous_run(out):
    """A finished `keras-nas train` folder (as far as the safety rules can tell)."""
    args = cli.parse(["train", "--arch", "resnet:1,1,1", "--out", str(out)])[1]
    from keras_nas.engine import runtime as common
    from keras_nas import tools

    common.open_results(args, "keras-nas train", common.run_config(args, "train", tools.TRAIN), tools.TRAIN)
    results_folder.release_all()
    for name, text in (("best_model.keras", "model"), ("results.json", "{}"), ("logs/events", "log")):
        os.makedirs(os.path.dirname(out / name), exist_ok=True)
        (out / name).write_text(text)
    return _snapshot(out)


# -- data that must not be lost ------------------------------------------


def test_overwrite_never_deletes_a_folder_keras_nas_did_not_write(tmp_path, capsys):
    out = tmp_path / "mine"
    before = _users_folder(out)
    err = _refused(["search", "stagewise", "--out", str(out), "--overwrite", *TINY_STAGEWISE], capsys)
    assert "`--out` must be a new or empty folder, or a keras_nas results folder" in err
    assert f"Received: --out {out}" in err
    assert _snapshot(out) == before


def test_an_empty_out_is_an_error_not_the_default_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _refused(["search", "stagewise", "--out", "", "--overwrite"], capsys)
    assert "`--out` must not be empty. Received: --out ''" in err
    assert not (tmp_path / "runs").exists()


def test_a_refused_argument_changes_nothing_in_the_previous_run(tmp_path, capsys):
    out = tmp_path / "run"
    before = _previous_run(out)
    err = _refused(["train", "--arch", "resnet:1,1,1", "--learning-rate", "-1", "--overwrite", "--out", str(out)],
                   capsys)
    assert err == "keras-nas: error: `--learning-rate` must be a float > 0. Received: --learning-rate -1\n"
    assert _snapshot(out) == before


def test_a_refused_argument_writes_nothing_so_the_corrected_command_runs(tmp_path, capsys):
    out = tmp_path / "new"
    _refused(["train", "--arch", "resnet:1,1,1", "--momentum", "5", "--out", str(out)], capsys)
    assert not out.exists()
    command, args = cli.parse(["train", "--arch", "resnet:1,1,1", "--out", str(out)])
    assert args.momentum == 0.9  # and nothing stands in its way: the folder does not exist


def test_eoinas_keeps_image_channels_and_supernet_channels_apart(tmp_path):
    out = str(tmp_path / "eoinas")
    from keras_nas.engine import runtime as common
    from keras_nas.eoinas import command as eoinas

    def config(*extra):
        args = cli.parse(["search", "eoinas", "--out", out, *extra])[1]
        return common.run_config(args, "eoinas", eoinas.OPTIONS + common.common_options.SEARCH_OPTIONS)

    first = config()
    assert first["channels"] is None and first["init_channels"] == 8
    results_folder.open_folder(out, first, command="keras-nas search eoinas")
    results_folder.release_all()
    with pytest.raises(ValueError, match=r"other settings \(channels: None -> 3\)"):
        results_folder.open_folder(out, config("--channels", "3"), command="keras-nas search eoinas")


def test_a_second_search_on_the_same_folder_is_refused_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\n"
         "from keras_nas.engine import results_folder\n"
         f"results_folder.open_folder({str(out)!r}, {{'x': 1}}, command='keras-nas search stagewise')\n"
         "print('held', flush=True)\n"
         "time.sleep(120)\n"], stdout=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(out)
        err = _refused(["search", "stagewise", "--out", str(out), *TINY_STAGEWISE], capsys)
        assert f"`--out` is in use by another keras-nas run (PID {holder.pid} on" in err
        assert _snapshot(out) == before
    finally:
        holder.kill()
        holder.wait()


# -- a run that cannot go on ------------------------------------------------


def test_a_search_that_trains_nothing_exits_1_with_the_reason(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "stagewise", "--out", str(out), *TINY_STAGEWISE, "--learning-rate", "1e30"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("keras-nas: stopped: No network trained (trial 0: `loss` became nan at epoch 1")
    assert "Traceback" not in err
    assert json.loads((out / "results.json").read_text())["trials"][0]["status"] == "FAILED"


# -- damaged input ------------------------------------------------------------


def _image_folder(root, classes=("cat", "dog"), per_class=12):
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    root.mkdir()
    for name in classes:
        (root / name).mkdir()
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_a_damaged_image_is_named_and_can_be_skipped(tmp_path, capsys):
    from keras_nas import data

    root = _image_folder(tmp_path / "images", per_class=20)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    err = _refused(["search", "stagewise", "--dataset", str(root), "--image-size", "8",
                    "--out", str(tmp_path / "run"), *TINY_STAGEWISE], capsys)
    assert "holds 1 file(s) that do not decode as images: dog/broken.png" in err
    assert "`--skip-unreadable-images`" in err and f"Received: --dataset {root}" in err
    assert not (tmp_path / "run").exists()
    loaded = data.load(str(root), image_size=8, skip_unreadable_images=True)
    assert "Leaving out 1 unreadable image file(s)" in capsys.readouterr().out
    assert loaded.num_classes == 2


def test_a_folder_with_one_class_is_refused(tmp_path, capsys):
    root = _image_folder(tmp_path / "images", classes=("cat",))
    err = _refused(["train", "--arch", "resnet:1,1,1", "--dataset", str(root), "--image-size", "8",
                    "--out", str(tmp_path / "run")], capsys)
    assert "at least 2 classes" in err and "has 1 (['cat'])" in err


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "out").write_text("x")
    err = _refused(["search", "stagewise", "--out", str(tmp_path / "out")], capsys)
    assert "`--out` must be a folder; a file of that name exists" in err


def _tiny_model(path):
    import keras

    x = keras.Input((8, 8, 1))
    y = keras.layers.Flatten()(x)
    y = keras.layers.Dense(10, activation="softmax")(y)
    keras.Model(x, y).save(path)
    return path


@pytest.mark.parametrize("damage, message", [
    (lambda path: path.write_text("not a model"), "is not a valid .keras file (not a zip archive)"),
    (lambda path: path.write_bytes(_flip(path.read_bytes())), "is not a valid .keras file"),
])
def test_a_damaged_keras_file_is_named(tmp_path, capsys, damage, message):
    path = _tiny_model(tmp_path / "model.keras")
    damage(path)
    err = _refused(["profile", str(path)], capsys)
    assert message in err and str(path) in err


def _flip(data):
    # A bit in the middle of the archive: inside the compressed weights.
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1:]


def test_damaged_json_files_are_named(tmp_path, capsys):
    broken = '{"normal": [["sep_conv_3x3", 0'
    (tmp_path / "genotype.json").write_text(broken)
    err = _refused(["train", "--genotype", str(tmp_path / "genotype.json"), "--out", str(tmp_path / "t")], capsys)
    assert f"{tmp_path / 'genotype.json'} is not valid JSON" in err

    run = tmp_path / "run"
    _previous_run(run)
    (run / "results.json").write_text(broken)
    assert "results.json is not valid JSON" in _refused(["report", str(run)], capsys)
    (run / "config.json").write_text(broken)
    err = _refused(["train", "--arch", "resnet:1,1,1", "--out", str(run)], capsys)
    assert "config.json is not valid JSON" in err and "--overwrite" in err

    (tmp_path / "m").mkdir()
    model = _tiny_model(tmp_path / "m" / "best_model.keras")
    (tmp_path / "m" / "preprocessing.json").write_text(broken)
    assert "preprocessing.json is not valid JSON" in _refused(["export", str(model)], capsys)


@pytest.mark.slow  # keeps the default suite within 15 minutes; `pytest -m slow` runs it
def test_damaged_search_state_is_named(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["search", "stagewise", "--out", str(out), *TINY_STAGEWISE, "--iterations", "1"]) == 0
    capsys.readouterr()
    (out / "trials" / "oracle.json").write_text('{"ongoing_trials": ')
    err = _refused(["search", "stagewise", "--out", str(out), *TINY_STAGEWISE, "--iterations", "1"], capsys)
    assert "oracle.json is not valid JSON" in err


# -- quick and quiet ----------------------------------------------------------


def test_argument_errors_and_help_load_no_tensorflow():
    script = ("import json, sys\nfrom keras_nas import cli\ncodes = []\n"
              "for argv in (['search', 'epnas', '--episodes', 'nan'], ['search', 'cnas', '--help'],\n"
              "             ['train', '--arch', 'resnet:1', '--learning-rate', 'inf']):\n"
              "    try:\n        cli.main(argv)\n    except SystemExit as e:\n        codes.append(e.code)\n"
              "print(json.dumps([codes, 'tensorflow' in sys.modules, 'keras' in sys.modules]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=SUBPROCESS_ENV,
                            timeout=120)
    assert json.loads(result.stdout.splitlines()[-1]) == [[2, 0, 2], False, False], result.stdout + result.stderr
    assert result.stderr.count("keras-nas: error:") == 2


def test_a_default_run_prints_no_tensorflow_log_lines(tmp_path):
    model = _tiny_model(tmp_path / "model.keras")
    result = subprocess.run([sys.executable, "-m", "keras_nas", "profile", str(model)], capture_output=True,
                            text=True, env=SUBPROCESS_ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["params"] == 64 * 10 + 10
    for noise in ("oneDNN", "cuInit", "cuda", "absl", "cpu_feature_guard", "I0000", "E0000"):
        assert noise not in result.stderr, result.stderr


# -- the README's steps can be repeated ------------------------------------------


def test_export_twice_adds_a_version_and_overwrite_replaces_the_newest(tmp_path, capsys):
    model = _tiny_model(tmp_path / "model.keras")
    base = tmp_path / "serving"
    for _ in range(2):
        assert cli.main(["export", str(model), "--out", str(base)]) == 0
    assert sorted(os.listdir(base)) == ["1", "2"]
    first = _snapshot(base / "1")
    assert cli.main(["export", str(model), "--out", str(base), "--overwrite"]) == 0
    assert sorted(os.listdir(base)) == ["1", "2"] and _snapshot(base / "1") == first
    assert "SavedModel version 2 written" in capsys.readouterr().out.splitlines()[-3]


def test_train_runs_of_different_architectures_get_their_own_folders():
    outs = {cli.parse(["train", *what])[1].out for what in (
        ["--arch", "resnet:1,1,1"], ["--arch", "resnet:2,2,2"], ["--genotype", "DARTS_V2"])}
    assert outs == {os.path.join("runs", "train", name) for name in ("resnet-1-1-1", "resnet-2-2-2",
                                                                     "genotype-DARTS_V2")}


@pytest.mark.slow  # keeps the default suite within 15 minutes; `pytest -m slow` runs it
def test_everything_a_search_writes_is_listed_as_keras_nas_own(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["search", "stagewise", "--out", str(out), *TINY_STAGEWISE]) == 0
    unlisted = [e for e in os.listdir(out) if e not in results_folder.OWNED]
    assert unlisted == []
    assert io.read_json(out / "config.json")["keras_nas"]["command"] == "keras-nas search stagewise"
