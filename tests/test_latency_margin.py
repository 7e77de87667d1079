"""`--latency-margin`: every search aims a share below its latency target and judges the result by the target."""

import pytest

from keras_nas.engine import common_options
from keras_nas.engine.options import OptionError
from keras_nas.epnas.constraints import parse_constraints, with_latency_margin
from tests.helpers import refused


@pytest.mark.parametrize("method, target", [("stagewise", "--max-latency-ms"), ("epnas", "--constraint"),
                                            ("eoinas", "--target-latency-ms"), ("cnas", "--target-latency-ms")])
def test_a_margin_without_a_latency_target_is_refused_before_anything_is_written(method, target, tmp_path, capsys):
    out = tmp_path / "run"
    err = refused(["search", method, "--latency-margin", "0.2", "--out", str(out)], capsys)
    assert f"`--latency-margin` applies to a latency target only; add `{target}`. Received: --latency-margin 0.2" in err
    assert not out.exists()


@pytest.mark.parametrize("value", ["1", "-0.1", "x"])
def test_a_margin_outside_zero_to_one_isrefused(value, tmp_path, capsys):
    err = refused(["search", "cnas", "--target-latency-ms", "1", "--latency-margin", value, "--out",
                    str(tmp_path / "run")], capsys)
    assert "`--latency-margin` must be a float in [0, 1)" in err
    assert not (tmp_path / "run").exists()


def test_an_epnas_margin_that_empties_the_latency_interval_isrefused(tmp_path, capsys):
    err = refused(["search", "epnas", "--constraint", "latency_ms<=1", "--constraint", "latency_ms>=0.95", "--out",
                    str(tmp_path / "run")], capsys)
    assert "less the latency margin 0.1 leaves latency_ms<=0.9, below the lower bound 0.95" in err
    assert not (tmp_path / "run").exists()


def test_margin_defaults_and_search_latency():
    assert common_options.latency_margin(None, True, "max_latency_ms") == common_options.DEFAULT_LATENCY_MARGIN == 0.1
    assert common_options.latency_margin(0.0, True, "max_latency_ms") == 0.0
    assert common_options.latency_margin(None, False, "max_latency_ms") == 0.1  # unused without a target
    with pytest.raises(OptionError, match="add `max_latency_ms`"):
        common_options.latency_margin(0.3, False, "max_latency_ms")
    assert common_options.search_latency(0.05, 0.2) == pytest.approx(0.04)
    assert common_options.search_latency(0.05, 0.0) == 0.05


def test_with_latency_margin_lowers_only_a_latency_upper_bound():
    constraints = parse_constraints(["latency_ms<=4", "latency_ms>=1", "params<=1e5", "intensity>=80"])
    latency, params, intensity = with_latency_margin(constraints, 0.25)
    assert (latency["lower"], latency["upper"], latency["target_upper"]) == (1.0, 3.0, 4.0)
    assert latency["text"] == "latency_ms>=1 and latency_ms<=3" and latency["margin"] == 0.25
    assert latency["target"] == "latency_ms<=4 and latency_ms>=1"
    assert params == constraints[1] and intensity == constraints[2]
    # a lower bound alone is no target: left as it is
    assert with_latency_margin(parse_constraints(["latency_ms>=2"]), 0.5) == parse_constraints(["latency_ms>=2"])
    with pytest.raises(ValueError, match="below the lower bound 3.5"):
        with_latency_margin(parse_constraints(["latency_ms<=4", "latency_ms>=3.5"]), 0.25)
