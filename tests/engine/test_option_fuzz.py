"""Every numeric option of every command, fed NaN, inf, 0, -1 and a huge value.

The outcome must be a clean one-line refusal naming the option (before
anything is loaded or written), or an acceptance the option documents: its
range (`--help` says it) holds the value.
"""

import pytest

from keras_nas import cli
from keras_nas.engine import options

VALUES = ("nan", "inf", "0", "-1", "1000000000000")


def _commands(tmp_path):
    model = tmp_path / "m.keras"
    model.write_text("only its name and existence are checked here")
    out = str(tmp_path / "never-written")
    commands = {f"search {m}": ["search", m, "--out", out] for m in cli.METHODS}
    commands["train"] = ["train", "--arch", "resnet:1,1,1", "--out", out]
    commands["export"] = ["export", str(model), "--out", out]
    commands["profile"] = ["profile", str(model)]
    commands["report"] = ["report", str(tmp_path)]
    return commands


def _numeric(command_argv):
    parser = cli.build_parser()
    command = parser.parse_args(command_argv)._command
    return command, [o for o in command.options if o.type in (int, float) and o.validate is None
                     and o.name not in command.positional]


def _documented(option, text):
    try:
        option.check(option.type(float(text)) if option.type is int and float(text).is_integer() else
                     option.type(text))
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def test_every_numeric_option_refuses_or_documents_each_odd_value(tmp_path, capsys):
    cases = 0
    for name, argv in _commands(tmp_path).items():
        command, numeric = _numeric(argv)
        assert numeric or name == "report", name
        for option in numeric:
            flag = options.cli_spelling(option.name)
            for value in VALUES:
                cases += 1
                try:
                    cli.parse(argv + [flag, value])
                except (ValueError, TypeError) as error:
                    message = options.render(error, command.spell)
                    assert f"`{flag}`" in message, (name, flag, value, message)
                    assert "\n" not in message
                    continue
                assert _documented(option, value), f"{name} {flag} {value} was accepted outside its range"
    assert not (tmp_path / "never-written").exists()
    assert cases > 500


@pytest.mark.parametrize("argv, line", [
    (["search", "epnas", "--episodes", "2.5"], "`--episodes` must be an int >= 1. Received: --episodes 2.5"),
    (["search", "stagewise", "--seed", "-1"], "`--seed` must be an int in [0, 2147483647]. Received: --seed -1"),
    (["search", "eoinas", "--tau-min", "6"], "`--tau-min` must be <= `--tau-max`. Received: --tau-min 6.0, "
                                             "--tau-max 5.0"),
    (["search", "cnas", "--momentum", "1"], "`--momentum` must be a float in [0, 1). Received: --momentum 1"),
    (["search", "epnas", "--lease-seconds", "0"], "`--lease-seconds` must be a float > 0. Received: "
                                                  "--lease-seconds 0"),
    (["train", "--arch", "resnet:1,1,1", "--weight-decay", "nan"],
     "`--weight-decay` must be a finite float >= 0. Received: --weight-decay nan"),
    (["search", "stagewise", "--image-size", "0"], "`--image-size` must be an int in [1, 4096]. Received: "
                                                   "--image-size 0"),
])
def test_one_line_names_option_expected_and_received(argv, line, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"keras-nas: error: {line}\n"
