"""The settings of every command, declared once: name, type, default, range, help.

Each method lists its settings as `Option`s. The same list builds the
command line (`add_to_parser`), checks the values a Python caller passes
(`check_values`), and gives `config.json` its keys, so a setting has one
spelling, one default and one range everywhere. The module imports nothing
heavy: the command line parses and checks its arguments before TensorFlow
loads.

Errors are `OptionError` (a `ValueError`) or `OptionTypeError` (a
`TypeError`). They name each setting the way the caller spells it: as the
Python argument (`seed=-1`) by default, as the option (`--seed -1`) when the
command line renders them with `render(cli_spelling)`.
"""

import argparse
import math
import numbers
import re

_builtin_type = type


def python_spelling(name):
    return name


def cli_spelling(name):
    return "--" + name.replace("_", "-")


class _Rendered:
    """Shared by both error types: a text whose `name`s are spelled on demand."""

    def __init__(self, text, received=None, names=()):
        self.text = text
        self.received = dict(received or {})
        self.names = tuple(self.received) + tuple(n for n in names if n not in self.received)
        super().__init__(self.render())

    def render(self, spell=python_spelling):
        text = self.text
        for name in self.names:
            text = text.replace(f"`{name}`", f"`{spell(name)}`")
        if self.received:
            parts = []
            for name, value in self.received.items():
                if spell is python_spelling:
                    parts.append(f"{name}={value!r}")
                else:
                    parts.append(f"{spell(name)} {_cli_value(value)}")
            text += " Received: " + ", ".join(parts)
        return text


def _cli_value(value):
    if value is None:
        return "(not given)"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "(none)"
    if isinstance(value, str):
        return repr(value) if (not value or " " in value) else value
    return str(value)


class OptionError(_Rendered, ValueError):
    """A setting with a value outside what it accepts.

    Args:
        text: str. What was expected, naming settings in backticks
            ("`warmup_epochs` must be smaller than `epochs`.").
        **received: the values received, by setting name; they end the
            message ("Received: warmup_epochs=5, epochs=3").

    Example:

    >>> error = OptionError("`seed` must be an int >= 0.", seed=-1)
    >>> str(error)
    '`seed` must be an int >= 0. Received: seed=-1'
    >>> error.render(cli_spelling)
    '`--seed` must be an int >= 0. Received: --seed -1'
    """

    def __init__(self, text, *, names=(), **received):
        super().__init__(text, received, names)


class OptionTypeError(_Rendered, TypeError):
    """A setting of the wrong type (a string where an int belongs, ...); see `OptionError`."""

    def __init__(self, text, *, names=(), **received):
        super().__init__(text, received, names)


def reword(error, values, prefix=""):
    """An `OptionError` of a library's `ValueError` whose message names settings of `values` in backticks.

    The library's own "Received: ..." tail is replaced by the values of the
    settings the message names, so the command line can spell them as typed.

    >>> str(reword(ValueError("`low` must be <= `high`. Received: low=3"), {"low": 3, "high": 2}))
    '`low` must be <= `high`. Received: low=3, high=2'
    """
    text = prefix + str(error).split(" Received: ")[0].strip()
    named = [n for n in re.findall(r"`([a-z_0-9]+)`", text) if n in values]
    return OptionError(text, **{n: values[n] for n in dict.fromkeys(named)})


def render(error, spell):
    """The message of any exception, with setting names spelled by `spell` where it can."""
    if isinstance(error, _Rendered):
        return error.render(spell)
    return str(error)


class Option:
    """One setting of a command.

    Args:
        name: str. The Python argument name (`learning_rate`); the option is
            `--learning-rate`.
        default: the value when not given.
        help: str. One or two sentences for `--help`.
        type: `int`, `float`, `str` or `bool`. Defaults to the type of
            `default` (`str` when `default` is None).
        low, high: numbers or None. Bounds of a number, inclusive unless
            `low_open` / `high_open`.
        choices: tuple of str or None. The accepted values of a string.
        optional: bool. None is accepted (it means "not given" / "derived").
            Defaults to `default is None`.
        repeat: bool. A list of values (`--constraint A --constraint B`).
        paper: str or None. The paper's value, shown in `--help`.
        parse: callable or None. Turns the command-line text into the value
            (for values such as `100,150`); Python callers pass the value.
        validate: callable or None. `validate(name, value) -> value` checks a
            value the type and bounds cannot describe (a list of epochs).
        group: str or None. The `--help` section.
        resume_free: bool. May change when a results folder is resumed
            (it changes how a run goes, not what it computes: `--verbose`).
        metavar: str or None. The value's name in `--help`.
        expected: str or None. What a value must be, for error messages,
            where the type and bounds do not say it.
    """

    def __init__(self, name, default, help, *, type=None, low=None, high=None, low_open=False, high_open=False,
                 choices=None, optional=None, repeat=False, paper=None, parse=None, validate=None, group=None,
                 resume_free=False, metavar=None, expected=None):
        self.name = name
        self.default = default
        self.help = help
        if type is None:
            type = str if default is None or validate is not None else _builtin_type(default)
        self.type = type
        self.validate = validate
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.choices = tuple(choices) if choices is not None else None
        self.optional = default is None if optional is None else optional
        self.repeat = repeat
        self.paper = paper
        self.parse = parse
        self.group = group
        self.resume_free = resume_free
        self.metavar = metavar
        self.expected_text = expected

    # -- what is expected ---------------------------------------------

    def expected(self):
        """'an int >= 1', 'a float in (0, 1)', "one of ['a', 'b']" ..."""
        if self.expected_text:
            return self.expected_text
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        kind = {int: "an int", float: "a float", bool: "True or False", str: "a string"}[self.type]
        if self.type in (int, float):
            if self.low is not None and self.high is not None:
                left = "(" if self.low_open else "["
                right = ")" if self.high_open else "]"
                kind += f" in {left}{_number(self.low)}, {_number(self.high)}{right}"
            elif self.low is not None:
                kind += f" {'>' if self.low_open else '>='} {_number(self.low)}"
            elif self.high is not None:
                kind += f" {'<' if self.high_open else '<='} {_number(self.high)}"
        return kind

    # -- checking -----------------------------------------------------

    def check(self, value):
        """The value if it is acceptable, else `OptionError` / `OptionTypeError` naming the setting."""
        if self.repeat:
            if value is None:
                return []
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise OptionTypeError(f"`{self.name}` must be a list of {self.expected()}s.", **{self.name: value})
            return [self._check_one(v) for v in value]
        return self._check_one(value)

    def _check_one(self, value):
        name = self.name
        if value is None:
            if self.optional:
                return None
            raise OptionTypeError(f"`{name}` must be {self.expected()}.", **{name: value})
        if self.validate is not None:
            return self.validate(name, value)
        if self.type is bool:
            if not isinstance(value, bool):
                raise OptionTypeError(f"`{name}` must be a bool.", **{name: value})
            return value
        if self.type is str:
            if not isinstance(value, str):
                raise OptionTypeError(f"`{name}` must be {self.expected()}.", **{name: value})
            if self.choices is not None and value not in self.choices:
                raise OptionError(f"`{name}` must be {self.expected()}.", **{name: value})
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise OptionTypeError(f"`{name}` must be {self.expected()}.", **{name: value})
        if self.type is int:
            if not isinstance(value, numbers.Integral):
                raise OptionTypeError(f"`{name}` must be {self.expected()}.", **{name: value})
            value = int(value)
            if self.choices is not None and value not in self.choices:
                raise OptionError(f"`{name}` must be {self.expected()}.", **{name: value})
        else:
            value = float(value)
            if not math.isfinite(value):
                raise OptionError(f"`{name}` must be a finite float{self.expected()[len('a float'):]}.",
                                  **{name: value})
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise OptionError(f"`{name}` must be {self.expected()}.", **{name: value})
        return value

    def from_text(self, text):
        """The value of one command-line text `text` (checked); errors quote the text as typed."""
        if not isinstance(text, str) or self.type is str and self.parse is None:
            return self._check_one(text)
        try:
            return self._from_text(text)
        except (OptionError, OptionTypeError) as error:
            raise OptionError(error.text, names=error.names, **{self.name: text}) from None

    def _from_text(self, text):
        if self.parse is not None:
            try:
                value = self.parse(text)
            except (TypeError, ValueError):
                if self.validate is not None and self.expected_text is None:
                    self.validate(self.name, text)  # says what the text should look like
                raise OptionError(f"`{self.name}` must be {self.expected()}.", **{self.name: text}) from None
            return self._check_one(value)
        try:
            value = self.type(text) if self.type in (int, float) else text
        except ValueError:
            raise OptionError(f"`{self.name}` must be {self.expected()}.", **{self.name: text}) from None
        return self.check(value)

    # -- the command line ---------------------------------------------

    def help_text(self):
        text = self.help
        if self.type is not bool and self.default is not None and not self.repeat:
            text += f" (default {_number(self.default) if self.type in (int, float) else self.default})"
        if self.paper is not None:
            text += f" [paper: {self.paper}]"
        return text.replace("%", "%%")


def _number(value):
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value)) if abs(value) >= 1 or value == 0 else repr(value)
    return repr(value) if isinstance(value, float) else str(value)


def add_to_parser(parser, options, title=None):
    """Adds `options` to an argparse parser, grouped by their `group` (or `title`).

    Values stay text until `values_from_args` checks them, so every error
    has the same form and names the option (argparse itself only checks
    which options exist).
    """
    groups = {}
    for option in options:
        heading = option.group or title
        if heading not in groups:
            groups[heading] = parser.add_argument_group(heading) if heading else parser
        group = groups[heading]
        flag = cli_spelling(option.name)
        metavar = option.metavar
        if metavar is None and option.choices is not None:
            metavar = "{" + ",".join(str(c) for c in option.choices) + "}"
        if option.type is bool:
            group.add_argument(flag, dest=option.name, action=argparse.BooleanOptionalAction,
                               default=option.default, help=option.help_text())
        elif option.repeat:
            group.add_argument(flag, dest=option.name, action="append", default=None, metavar=metavar,
                               help=option.help_text())
        else:
            group.add_argument(flag, dest=option.name, default=option.default, metavar=metavar,
                               help=option.help_text())


def values_from_args(args, options):
    """`{name: checked value}` of `options` from parsed argparse `args`."""
    values = {}
    for option in options:
        text = getattr(args, option.name)
        if option.repeat:
            values[option.name] = [option.from_text(t) for t in (text or [])]
        else:
            values[option.name] = option.from_text(text)
    return values


def check_values(options, values, *, caller="arguments"):
    """Checks a Python caller's `values` against `options`; returns them with defaults filled in.

    Unknown names are refused with the list of known ones.
    """
    known = {o.name: o for o in options}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise OptionTypeError(f"Unknown {caller} {unknown}. Expected some of {sorted(known)}.")
    return {name: option.check(values.get(name, option.default)) for name, option in known.items()}


def defaults(options):
    return {o.name: o.default for o in options}


# -- parsers for options given as text lists ---------------------------


def int_list(text):
    """'100,150' -> [100, 150]."""
    items = [t.strip() for t in str(text).split(",")]
    if not all(re.fullmatch(r"[+-]?\d+", t) for t in items):
        raise ValueError(text)
    return [int(t) for t in items]


def check_int_list(name, values, *, low=1, length=None, increasing=False, metavar=None):
    """Checks a list of ints (all >= `low`, optionally of `length`, strictly increasing)."""
    what = metavar or f"a list of ints >= {low}"
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise OptionTypeError(f"`{name}` must be {what}.", **{name: values})
    values = [int(v) for v in values]
    if min(values) < low or (length is not None and len(values) != length) or (
            increasing and any(b <= a for a, b in zip(values, values[1:]))):
        raise OptionError(f"`{name}` must be {what}.", **{name: values})
    return values
