"""`keras-nas search epnas`: option errors before anything is written; slow end-to-end search, resume, export."""

import json
import os

import pytest

from keras_nas import cli
from tests.helpers import assert_only_owned, check_results_contract


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--constraint", "params=<5"], "`--constraint`: Malformed constraint. Expected RESOURCE<=VALUE"),
        (["--constraint", "params<=1e5", "--constraint", "params>=2e5"], "`--constraint`: Contradictory constraints"),
        (["--constraint", "latency<=3"], "Unknown resource `latency`"),
        (["--episodes", "0"], "`--episodes` must be an int >= 1. Received: --episodes 0"),
        (["--top-k", "9", "--branches", "2", "--steps", "2"], "`--top-k` cannot exceed the children of an episode"),
        (["--penalty-base", "2"], "`--penalty-base` must be a float in [0, 1]. Received: --penalty-base 2"),
        (["--channel-table", "16,x"], "`--channel-table` must be comma-separated channel counts"),
        (["--max-layers", "3", "--initial-layers", "2,5"], "EPNAS space options do not fit together: `--initial-layers`"),
        (["--shared-lr-scale", "0"], "`--shared-lr-scale` must be a float > 0. Received: --shared-lr-scale 0"),
        (["--shared-shrink", "1.5"], "`--shared-shrink` must be a float in (0, 1]. Received: --shared-shrink 1.5"),
        (["--shared-noise", "-0.1"], "`--shared-noise` must be a float >= 0. Received: --shared-noise -0.1"),
        (["--prediction-decay-epochs", "0"], "`--prediction-decay-epochs` must be an int >= 1. Received: --prediction-decay-epochs 0"),
    ],
)
def test_bad_options_fail_before_anything_is_written(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        cli.main(["search", "epnas", "--out", str(out), *extra])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_help_lists_the_paper_values(capsys):
    with pytest.raises(SystemExit):
        cli.main(["search", "epnas", "--help"])
    text = capsys.readouterr().out
    for option in ("--mode", "--constraint", "--episodes", "--branches", "--steps", "--top-k", "--baseline",
                   "--prediction", "--no-prediction", "--epochs", "--shared-lr-scale", "--shared-shrink",
                   "--shared-noise", "--prediction-decay-epochs"):
        assert option in text


TINY = ["--episodes", "2", "--branches", "2", "--steps", "1", "--top-k", "1", "--epochs", "2",
        "--channel-table", "16,32", "--max-layers", "4", "--verbose", "0"]


@pytest.mark.slow
def test_search_end_to_end_resume_and_export(tmp_path):
    out = str(tmp_path / "epnas")
    argv = ["search", "epnas", "--constraint", "params<=5000", "--out", out, *TINY]
    assert cli.main(argv) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["children_trained"] == 4 and len(results["trials"]) == 4
    check_results_contract(out, beats_chance_by=0.15)
    # `best` is the child of highest reward among those meeting every constraint; none met -> None.
    meeting = [c for c in results["children"] if c["status"] == "COMPLETED"
               and all(p >= 1.0 for p in (c["penalties"] or {}).values())]
    assert results["feasible_children"] == len(meeting)
    if meeting:
        assert results["best"]["params"] <= 5000 and results["best"]["constraints_satisfied"]
        assert results["best"]["reward"] == max(c["reward"] for c in meeting)
    else:
        assert results["best"] is None
        assert results["best_by_reward"]["reward"] == max(c["reward"] for c in results["children"])
    assert results["constraint_report"][0]["constraint"] == "params<=5000"
    assert len(results["episodes"]) == 2 and len(results["reward_curve"]) == 4
    assert os.path.exists(os.path.join(out, "reward.png"))
    assert_only_owned(out)
    summary = os.path.join(out, "trials", "trial_0", "summary.json")
    mtime = os.path.getmtime(summary)
    # The same command resumes: finished children are not retrained.
    assert cli.main(argv) == 0
    assert os.path.getmtime(summary) == mtime
    with pytest.raises(SystemExit):  # other settings in the same folder are refused
        cli.main(["search", "epnas", "--constraint", "params<=9000", "--out", out, *TINY])
    assert cli.main(["export", os.path.join(out, "best_model.keras"), "--out", str(tmp_path / "served")]) == 0


@pytest.mark.slow
def test_random_baseline_and_module_prediction(tmp_path):
    out = str(tmp_path / "random")
    assert cli.main(["search", "epnas", "--baseline", "random", "--out", out, *TINY]) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["method"] == "random" and results["children_trained"] == 4 and results["episodes"] == []
    out = str(tmp_path / "module")
    assert cli.main(["search", "epnas", "--mode", "module", "--prediction", "--prediction-epochs", "2",
                     "--batch-scale", "2", "--lr-scale", "2", "--filters", "8", "--out", out,
                     *[a for a in TINY if a not in ("16,32", "--channel-table")]]) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["children_trained"] == 4
    assert max(c["shared_fraction"] for c in results["children"][2:]) > 0  # episode 2 reuses parameters
