import json
import math
import os

import pytest

from keras_nas import cli
from tests.helpers import assert_only_owned, check_results_contract


def test_bad_option_fails_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        cli.main(["search", "eoinas", "--out", str(out), "--epochs", "2", "--warmup-epochs", "5"])
    assert info.value.code == 2
    assert "`--warmup-epochs` must be smaller than `--epochs`. Received: --warmup-epochs 5, --epochs 2" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("flag, message", [
    ("--no-update-unsampled-ops", "`update_unsampled_ops=False` needs `edge_mode='gdas'`"),
    ("--lower-weight-case", "`lower_weight_case=True` needs `edge_mode='gdas'`"),
    ("--lower-arch-case", "`lower_arch_case=True` needs `edge_mode='gdas'`"),
])
def test_gdas_only_options_need_gdas_edges(tmp_path, capsys, flag, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        cli.main(["search", "eoinas", "--out", str(out), "--edge-mode", "darts", flag])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
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
    # The derived network trains 3 epochs: after TINY's 1, its test accuracy ranged 0.30-0.62 over seeds
    # with either executor, too wide for a margin that means something.
    command = ["search", "eoinas", "--out", out, "--seeds", "2", *TINY, "--eval-epochs", "3"]
    assert cli.main(command) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert len(results["trials"]) == 2
    assert results["best_seed"] in (0, 1)
    assert os.path.exists(os.path.join(out, "best_model.keras"))
    assert os.path.exists(os.path.join(out, "genotype.png"))
    assert_only_owned(out)
    checked = check_results_contract(out, beats_chance_by=0.25)
    assert checked["best"]["architecture"] == results["genotype"] and checked["receipt"]["seeds"] == [0, 1]
    trial_dir = os.path.join(out, "tuner", "trial_0", "search")
    with open(os.path.join(trial_dir, "pruning.json")) as f:
        decisions = json.load(f)["decisions"]
    # epochs 2 and 3 prune one op on each of 14 edges of both cell types.
    assert len(decisions) == 2 * 2 * 14
    mtime = os.path.getmtime(os.path.join(trial_dir, "search.json"))
    # The same command resumes: finished searches are not redone.
    assert cli.main(command) == 0
    assert os.path.getmtime(os.path.join(trial_dir, "search.json")) == mtime
    assert cli.main(["export", os.path.join(out, "best_model.keras"), "--out", str(tmp_path / "served")]) == 0
    assert cli.main(["train", "--genotype", os.path.join(out, "genotype.json"), "--cells", "3",
                     "--init-channels", "4", "--epochs", "1", "--auxiliary", "--out", str(tmp_path / "train"),
                     "--verbose", "0"]) == 0


def test_history_read_back_after_a_kill_keeps_one_row_per_epoch(tmp_path):
    from keras_nas.eoinas.one_shot import _read_history

    path = tmp_path / "history.csv"
    # Epoch 1 was logged, the process was killed before its checkpoint, and
    # it ran again after the resume; "NA" is how CSVLogger writes a gap.
    path.write_text("epoch,loss,arch_accuracy,val_loss\n0,2.0,0.1,NA\n1,1.5,NA,NA\n1,1.4,0.3,NA\n2,1.2,NA,NA\n")
    history = _read_history(str(path), epochs_done=3)
    assert history["loss"] == [2.0, 1.4, 1.2]
    assert history["arch_accuracy"][:2] == [0.1, 0.3] and math.isnan(history["arch_accuracy"][2])
    # Columns CSVLogger filled with "NA" only (no validation data) are dropped.
    assert "val_loss" not in history
    assert _read_history(str(path), epochs_done=2)["loss"] == [2.0, 1.4]
    assert _read_history(str(tmp_path / "missing.csv"), epochs_done=3) == {}
