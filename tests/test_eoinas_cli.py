import json
import os

import pytest

from keras_nas import cli


def test_bad_option_fails_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        cli.main(["search", "eoinas", "--out", str(out), "--epochs", "2", "--warmup-epochs", "5"])
    assert info.value.code == 2
    assert "`warmup_epochs` must be smaller than `epochs`" in capsys.readouterr().err
    assert not out.exists()


def test_bad_variant_lists_choices(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["search", "eoinas", "--out", str(tmp_path / "r"), "--variant", "snas"])
    err = capsys.readouterr().err
    assert "eoinas" in err and "gop" in err and "gdas" in err


TINY = ["--cells", "3", "--init-channels", "4", "--epochs", "3", "--warmup-epochs", "1", "--prune-interval", "1",
        "--eval-cells", "3", "--eval-channels", "4", "--eval-epochs", "1", "--verbose", "0"]


@pytest.mark.slow
def test_search_end_to_end_resume_train_and_export(tmp_path):
    out = str(tmp_path / "eoinas")
    assert cli.main(["search", "eoinas", "--out", out, "--seeds", "2", *TINY]) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert len(results["trials"]) == 2
    assert results["best_seed"] in (0, 1)
    assert os.path.exists(os.path.join(out, "best_model.keras"))
    assert os.path.exists(os.path.join(out, "genotype.png"))
    trial_dir = os.path.join(out, "tuner", "trial_0", "search")
    with open(os.path.join(trial_dir, "pruning.json")) as f:
        decisions = json.load(f)["decisions"]
    # epochs 2 and 3 prune one op on each of 14 edges of both cell types.
    assert len(decisions) == 2 * 2 * 14
    mtime = os.path.getmtime(os.path.join(trial_dir, "search.json"))
    # The same command resumes: finished searches are not redone.
    assert cli.main(["search", "eoinas", "--out", out, "--seeds", "2", *TINY]) == 0
    assert os.path.getmtime(os.path.join(trial_dir, "search.json")) == mtime
    assert cli.main(["export", os.path.join(out, "best_model.keras"), "--out", str(tmp_path / "served")]) == 0
    assert cli.main(["train", "--genotype", os.path.join(out, "genotype.json"), "--cells", "3",
                     "--init-channels", "4", "--epochs", "1", "--auxiliary", "--out", str(tmp_path / "train"),
                     "--verbose", "0"]) == 0
