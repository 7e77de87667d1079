"""The `keras-nas` command: search, train, export, profile, report.

    keras-nas search stagewise            # a real stage-wise search on digits
    keras-nas train --arch resnet:2,2,2   # train one architecture
    keras-nas export runs/stagewise/best_model.keras
    keras-nas profile runs/stagewise/best_model.keras --latency
    keras-nas report runs/stagewise
    keras-nas latency-table --space resnet --runtime tflite --out table.json

Every option is parsed and checked before TensorFlow loads, so `--help` and
a bad argument answer at once, in one line, with exit status 2; nothing is
written before every argument has been checked.
"""

import argparse
import importlib
import os
import sys

from keras_nas.engine import common_options, options, results_folder

# method name -> module with OPTIONS, check(args) and run(args); the module
# itself loads no TensorFlow (its `run` does).
METHODS = {
    "stagewise": "keras_nas.stagewise.command",
    "eoinas": "keras_nas.eoinas.command",
    "cnas": "keras_nas.cnas.command",
    "epnas": "keras_nas.epnas.command",
}
TOOLS = "keras_nas.tools"
# Python argument names (of `keras_nas.data.load`, ...) as the command line spells them.
_SPELLING = {"name": "--dataset"}


def settings_argv(command, settings):
    """`keras-nas` arguments from a flat settings dict (how `recipes/` describe a run).

    Keys become options (`init_channels` -> `--init-channels`); `None` values
    are left out, booleans become `--flag` / `--no-flag`, lists repeat the
    option.

    >>> settings_argv(["search", "epnas"], {"episodes": 15, "prediction": True, "constraint": ["params<=2e6"]})
    ['search', 'epnas', '--episodes', '15', '--prediction', '--constraint', 'params<=2e6']
    """
    argv = list(command)
    for key, value in settings.items():
        flag = key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv += [f"--{flag}", str(item)]
        else:
            argv += [f"--{flag}", str(value)]
    return argv


class Recipe:
    """A paper's settings for one `keras-nas` command, as `recipes/` write them.

    Args:
        command: list of str. The command (`["search", "cnas"]`, `["train"]`).
        settings: dict of str to dict. Named settings (flat option dicts).
        default: str. The setting a bare `python recipes/<file>.py` runs.
        extra: callable or None. `extra(settings, *positional)` turns the
            script's positional arguments into more options (a genotype file,
            a search folder).

    Example:

    >>> recipe = Recipe(["search", "cnas"], {"small": {"sparsity": 0.5}}, "small")
    >>> recipe.argv(recipe.settings["small"], epochs=2)
    ['search', 'cnas', '--sparsity', '0.5', '--epochs', '2']
    """

    def __init__(self, command, settings, default, extra=None):
        self.command = list(command)
        self.settings = settings
        self.default = default
        self.extra = extra

    def argv(self, settings, **overrides):
        """The `keras-nas` arguments of `settings` with `overrides` applied."""
        return settings_argv(self.command, {**settings, **overrides})

    def run(self, settings, **overrides):
        """Runs the command; returns its exit code."""
        return main(self.argv(settings, **overrides))

    def main(self, script, argv):
        """`python recipes/<script> [NAME]`: runs the named setting (exit code of the command), or prints the usage."""
        name = argv[0] if argv else self.default
        if name not in self.settings:
            sys.exit(f"usage: python recipes/{script} [{'|'.join(self.settings)}]")
        return self.run(self.settings[name])


class _Version(argparse.Action):
    """`--version`: keras_nas' version with the versions a bug report needs (TensorFlow loads only here)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import keras
        import keras_tuner
        import tensorflow as tf

        import keras_nas

        print(f"keras-nas {keras_nas.__version__} (TensorFlow {tf.__version__}, Keras {keras.__version__}, "
              f"KerasTuner {keras_tuner.__version__})")
        parser.exit(0)


class Command:
    """What `main` needs of a command: its options, checks, runner and default results folder."""

    def __init__(self, name, option_list, check, run, default_out=None, positional=()):
        self.name = name
        self.options = tuple(option_list)
        self.check = check
        self.run = run
        self.default_out = default_out
        self.positional = dict(positional)

    def spell(self, name):
        return self.positional.get(name) or _SPELLING.get(name) or options.cli_spelling(name)


def _add_command(parser, command, option_lists):
    positional = command.positional
    for title, option_list in option_lists:
        named = [o for o in option_list if o.name not in positional]
        for option in option_list:
            if option.name in positional:
                parser.add_argument(option.name, nargs=None if option.default is None and not option.optional
                                    else "?", default=option.default, metavar=positional[option.name],
                                    help=option.help_text())
        options.add_to_parser(parser, named, title)
    parser.set_defaults(_command=command)


def build_parser():
    tools = importlib.import_module(TOOLS)
    parser = argparse.ArgumentParser(
        prog="keras-nas",
        description="Neural architecture search for Keras: stage-wise, EoiNAS, CNAS, EPNAS.",
    )
    parser.add_argument("--version", action=_Version, help="show the versions of keras_nas, TensorFlow, Keras "
                        "and KerasTuner and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    search = sub.add_parser("search", help="run an architecture search")
    methods = search.add_subparsers(dest="method", required=True, metavar="METHOD")
    for method, module_name in METHODS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or method).strip().splitlines()[0]
        method_parser = methods.add_parser(method, help=doc, description=module.__doc__,
                                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command = Command(f"search {method}", module.OPTIONS + common_options.SEARCH_OPTIONS, module.check,
                          module.run, default_out=os.path.join("runs", method))
        _add_command(method_parser, command, [(None, module.OPTIONS), (None, common_options.SEARCH_OPTIONS)])

    for name, help_text in tools.COMMANDS.items():
        tool_parser = sub.add_parser(name, help=help_text, description=help_text)
        function = name.replace("-", "_")  # latency-table -> check_latency_table
        command = Command(name, tools.OPTIONS[name], getattr(tools, f"check_{function}"),
                          getattr(tools, f"run_{function}"), positional=tools.POSITIONAL.get(name, ()))
        _add_command(tool_parser, command, [(f"{name} options", tools.OPTIONS[name])])
    return parser


def _verbosity(value):
    if value is not None:
        return value
    return 1 if sys.stdout.isatty() else 2


def _quiet_frameworks():
    """TensorFlow's start-up lines and KerasTuner's trial tracebacks off the terminal (not with KERAS_NAS_DEBUG=1)."""
    if os.environ.get("KERAS_NAS_DEBUG"):
        return
    # TensorFlow's C++ libraries write their start-up lines (oneDNN, CUDA,
    # cpu_feature_guard) to file descriptor 2 while they load, before their
    # logging is initialised: TF_CPP_MIN_LOG_LEVEL does not hold them back.
    # A Python exception raised by the import still reaches the terminal.
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import keras_tuner.src.config as keras_tuner_config  # KerasTuner has no public switch for it

    # A failed trial's traceback stays in its record (results.json); the
    # terminal gets the one-line reason.
    keras_tuner_config.DEBUG = False


def _check(command, parsed):
    """The checked arguments of `command` (nothing heavy is loaded, nothing written)."""
    values = options.values_from_args(parsed, command.options)
    if "out" in values and values["out"] is None and command.default_out:
        values["out"] = command.default_out
    if "verbose" in values:
        values["verbose"] = _verbosity(values["verbose"])
    args = argparse.Namespace(**values)
    command.check(args)
    if command.name.startswith("search"):
        common_options.check_runtime(values)
    if command.name.startswith(("search", "train")):
        results_folder.check_out(args.out)
    return args


def parse(argv):
    """`(command, args)` of a `keras-nas` argument list, checked as `main` checks it (recipes' tests use it)."""
    parsed = build_parser().parse_args(argv)
    return parsed._command, _check(parsed._command, parsed)


def main(argv=None):
    # Before TensorFlow loads: its C++ start-up lines (oneDNN, CUDA) stay off the terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    parsed = parser.parse_args(argv)
    command = parsed._command
    try:
        args = _check(command, parsed)
        _quiet_frameworks()
        command.run(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit
    except BrokenPipeError:
        # The reader went away (`keras-nas report runs/x | head`): stop quietly
        # as Unix tools do. Pointing stdout at /dev/null keeps Python's final
        # flush from raising again (the recipe of the `signal` module docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (ValueError, TypeError) as error:
        if os.environ.get("KERAS_NAS_DEBUG"):
            raise
        parser.exit(2, f"keras-nas: error: {options.render(error, command.spell)}\n")
    except (RuntimeError, OSError) as error:
        # A search that gave up (too many failed trials, nothing trained) or a
        # file system that refused a write: the message says why; finished
        # work stays in the results folder.
        if os.environ.get("KERAS_NAS_DEBUG"):
            raise
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        parser.exit(1, f"keras-nas: stopped: {text}\n(set KERAS_NAS_DEBUG=1 for the traceback)\n")
    except KeyboardInterrupt:
        parser.exit(130, "keras-nas: interrupted; run the same command again to resume.\n")
    finally:
        results_folder.release_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
