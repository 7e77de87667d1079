import math

import pytest

from keras_nas import epnas
from keras_nas.epnas.constraints import constraint_report, parse_constraint, parse_constraints
from keras_nas.epnas.reward import constrained_reward, soft_penalty


def test_soft_penalty_hand_values():
    assert epnas.soft_penalty is soft_penalty  # the package's public name
    assert soft_penalty(1.5e6, upper=2e6) == 1.0
    assert soft_penalty(2e6, lower=2e6, upper=2e6) == 1.0
    # 50% over the upper bound: 0.9 ** 0.5
    assert soft_penalty(3e6, upper=2e6) == pytest.approx(0.9**0.5)
    assert soft_penalty(3e6, upper=2e6) == pytest.approx(0.9486832980505138)
    # intensity 40 under a lower bound of 80: C_l / U - 1 = 1 -> 0.9
    assert soft_penalty(40, lower=80) == pytest.approx(0.9)
    # both bounds: the larger violation counts
    assert soft_penalty(400, lower=80, upper=100) == pytest.approx(0.9**3)
    assert soft_penalty(10, lower=80, upper=100, base=0.5) == pytest.approx(0.5**7)
    assert soft_penalty(0, lower=1) == 0.0
    assert soft_penalty(5, upper=1, base=1.0) == 1.0


def test_soft_penalty_arguments():
    with pytest.raises(ValueError, match=r"`base` must be a number in \[0, 1\]. Received: base=1.5"):
        soft_penalty(1, upper=2, base=1.5)
    with pytest.raises(ValueError, match="`usage` must be a number >= 0"):
        soft_penalty(-1, upper=2)


def test_reward_is_performance_times_penalties():
    constraints = parse_constraints(["params<=1e5", "intensity>=80"])
    reward, penalties = constrained_reward(0.9, {"params": 2e5, "compute_intensity": 40}, constraints)
    assert penalties == {"params": pytest.approx(0.9), "compute_intensity": pytest.approx(0.9)}
    assert reward == pytest.approx(0.9 * 0.9 * 0.9)
    with pytest.raises(ValueError, match="No usage reported for the constrained resource `params`"):
        constrained_reward(0.9, {"flops": 1}, constraints)


def test_parse_constraints():
    assert parse_constraint("params<=2e6") == {"resource": "params", "lower": None, "upper": 2e6,
                                               "text": "params<=2e6"}
    assert parse_constraint(" flops <= 2M ")["upper"] == 2e6
    assert parse_constraint("size<=4k")["resource"] == "params"
    merged = parse_constraints(["intensity>=80", "params<=2e6", "intensity<=200"])
    assert merged[0] == {"resource": "compute_intensity", "lower": 80.0, "upper": 200.0,
                         "text": "intensity>=80 and intensity<=200"}
    assert merged[1]["resource"] == "params"
    assert parse_constraints(None) == [] and len(parse_constraints("flops<=1e8")) == 1


@pytest.mark.parametrize(
    "texts, message",
    [
        (["params=<2e6"], "Malformed constraint. Expected RESOURCE<=VALUE"),
        (["params<=two"], "Malformed constraint"),
        (["latency<=3"], r"Unknown resource `latency` .*Valid resources"),
        (["params<=0"], "A constraint bound must be > 0"),
        (["params<=1e6", "params<=2e6"], "Contradictory constraints: the upper bound of `params` is given twice"),
        (["params<=1e5", "params>=2e5"], r"no `params` satisfies 'params<=1e5' and 'params>=2e5' \(lower bound 200000 > upper bound 100000\)"),
    ],
)
def test_constraint_errors(texts, message):
    with pytest.raises(ValueError, match=message):
        parse_constraints(texts)


def test_constraint_type_error():
    with pytest.raises(TypeError, match="A constraint must be a string"):
        parse_constraint(3)


def test_constraint_report():
    report = constraint_report({"params": 3e6, "compute_intensity": 90.0},
                               parse_constraints(["params<=2e6", "intensity>=80"]))
    assert [r["satisfied"] for r in report] == [False, True]
    assert report[0]["penalty"] == pytest.approx(0.9**0.5) and report[1]["penalty"] == 1.0
    assert not math.isnan(report[0]["usage"])
