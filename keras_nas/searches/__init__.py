"""Command-line runners, one module per search method.

Each module exposes `add_arguments(parser)` and `run(args) -> dict`; the CLI adds
the common options (`--dataset`, `--out`, `--seed`, ...) before calling them.
"""

# method name -> module implementing it
METHODS = {
    "stagewise": "keras_nas.searches.stagewise",
    "eoinas": "keras_nas.searches.eoinas",
    "cnas": "keras_nas.searches.cnas",
    "epnas": "keras_nas.searches.epnas",
}
