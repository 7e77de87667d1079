"""The `keras-nas` command: search, train, export, profile, report.

    keras-nas search stagewise            # a real stage-wise search on digits
    keras-nas train --arch resnet:2,2,2   # train one architecture
    keras-nas export runs/stagewise/best_model.keras
    keras-nas profile runs/stagewise/best_model.keras --latency
    keras-nas report runs/stagewise
"""

import argparse
import importlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_nas.searches import METHODS, common  # noqa: E402


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


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_common(parser, default_out):
    group = parser.add_argument_group("common options")
    group.add_argument("--dataset", default="digits", help="digits (bundled, default), synthetic, a TFDS name such as cifar10, or an image folder")
    group.add_argument("--data-dir", default=None, help="TFDS data folder (for TFDS datasets)")
    group.add_argument("--image-size", type=_positive_int, default=None, help="resize images to SIZE x SIZE")
    group.add_argument("--channels", type=int, choices=(1, 3), default=None, help="convert images to 1 or 3 channels")
    group.add_argument("--batch-size", type=_positive_int, default=64)
    group.add_argument("--validation-split", type=float, default=0.2, help="share of the training data held out for validation (default 0.2)")
    group.add_argument("--augment", default=None, help="none, standard (crop+flip), cutout, or a list of crop,flip,cutout,color")
    group.add_argument("--out", default=None, help=f"results folder (default {default_out})")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--overwrite", action="store_true", help="delete what --out holds and start afresh (default: resume)")
    group.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None, help="Keras progress output (default: 1 on a terminal, 2 otherwise)")


def _version_text():
    """keras_nas' version with the versions a bug report needs beside it."""
    import keras
    import keras_tuner
    import tensorflow as tf

    import keras_nas

    return (f"keras-nas {keras_nas.__version__} (TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"KerasTuner {keras_tuner.__version__})")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-nas",
        description="Neural architecture search for Keras: stage-wise, EoiNAS, CNAS, EPNAS.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    search = sub.add_parser("search", help="run an architecture search")
    methods = search.add_subparsers(dest="method", required=True, metavar="METHOD")
    for method, module_name in METHODS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        doc = (module.__doc__ or method).strip().splitlines()[0]
        method_parser = methods.add_parser(method, help=doc, description=module.__doc__,
                                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(method_parser)
        _add_common(method_parser, f"runs/{method}")
        common.add_runtime_arguments(method_parser)
        method_parser.set_defaults(handler=_run_search, _search_module=module)

    train = sub.add_parser("train", help="train one architecture from scratch")
    what = train.add_mutually_exclusive_group(required=True)
    what.add_argument("--arch", help="resnet:D1,D2,D3 (CIFAR basic blocks), resnet-bottleneck:D1,..,D4, or nasnet:N1,N2,N3")
    what.add_argument("--genotype", help="genotype.json of a cell search (EoiNAS/DARTS form), or DARTS_V1, DARTS_V2, GDAS_V1")
    what.add_argument("--model", help="a saved .keras model whose architecture is retrained from scratch")
    train.add_argument("--epochs", type=_positive_int, default=10)
    train.add_argument("--optimizer", choices=("sgd", "nesterov", "adam"), default="sgd")
    train.add_argument("--learning-rate", type=float, default=0.05)
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--schedule", choices=("cosine", "step", "constant"), default="cosine")
    train.add_argument("--cells", type=_positive_int, default=8, help="--genotype: number of cells (paper: 20)")
    train.add_argument("--init-channels", type=_positive_int, default=16, help="--genotype: initial channels (paper: 36)")
    train.add_argument("--auxiliary", action="store_true", help="--genotype: auxiliary head")
    train.add_argument("--auxiliary-weight", type=float, default=0.4,
                       help="--genotype: weight of the auxiliary loss (DARTS sec. 4.3: 0.4)")
    train.add_argument("--drop-path", type=float, default=0.0, help="--genotype: drop-path rate (paper: 0.2-0.3)")
    _add_common(train, "runs/train")
    train.set_defaults(handler=_run_train)

    export = sub.add_parser("export", help="export a .keras model as a TF Serving SavedModel")
    export.add_argument("model", help="path of a .keras model")
    export.add_argument("--preprocessing", default=None, help="preprocessing.json (default: the one beside the model, else derived from --dataset)")
    export.add_argument("--fold-batch-norm", action=argparse.BooleanOptionalAction, default=True,
                        help="fold BatchNormalization layers into the convolutions before them (same predictions, "
                             "fewer ops to serve; default on)")
    _add_common(export, "<model folder>/saved_model")
    export.set_defaults(handler=_run_export)

    profile = sub.add_parser("profile", help="cost report of a .keras model")
    profile.add_argument("model", help="path of a .keras model")
    profile.add_argument("--latency", action="store_true", help="also time CPU inference at batch 1")
    profile.add_argument("--evaluate", action="store_true", help="also report accuracy on the --dataset test split")
    _add_common(profile, "print only")
    profile.set_defaults(handler=_run_profile)

    report = sub.add_parser("report", help="summarise a results folder")
    report.add_argument("folder", nargs="?", default=None, help="results folder (default: --out)")
    _add_common(report, "-")
    report.set_defaults(handler=_run_report)
    return parser


def _verbosity(args):
    if args.verbose is not None:
        return args.verbose
    return 1 if sys.stdout.isatty() else 2


def _register_custom_objects():
    # Importing the packages registers every keras_nas layer (and optimizer) for `load_model`.
    for name in ("keras_nas.layers", "keras_nas.spaces", "keras_nas.callbacks", "keras_nas.optimizers"):
        importlib.import_module(name)


def _check_common(args):
    if not 0 < args.validation_split < 1:
        raise ValueError(
            f"`--validation-split` must be in (0, 1). Received: {args.validation_split}"
        )


def _run_search(args):
    _check_common(args)
    args.verbose = _verbosity(args)
    return args._search_module.run(args)


def build_architecture(spec, input_shape, num_classes):
    """Builds a model from an `--arch` spec such as `resnet:3,3,3`."""
    from keras_nas import spaces

    kind, _, depths = spec.partition(":")
    builders = {
        "resnet": lambda d: spaces.stage_resnet(d, block="basic", input_shape=input_shape, num_classes=num_classes),
        "resnet-bottleneck": lambda d: spaces.stage_resnet(d, block="bottleneck", input_shape=input_shape, num_classes=num_classes),
        "nasnet": lambda d: spaces.stage_nasnet(d, input_shape=input_shape, num_classes=num_classes),
    }
    try:
        values = tuple(int(v) for v in depths.split(","))
    except ValueError:
        values = ()
    if kind not in builders or not values or min(values) < 1:
        raise ValueError(
            f"`--arch` must look like KIND:D1,D2,... with KIND one of "
            f"{sorted(builders)} and positive depths. Received: --arch {spec!r}"
        )
    return builders[kind](values)


def _run_train(args):
    import keras

    from keras_nas import io, training
    from keras_nas.searches import common

    _check_common(args)
    out = args.out or os.path.join("runs", "train")
    if args.genotype and not os.path.exists(args.genotype):
        from keras_nas.spaces import darts

        if args.genotype not in darts.GENOTYPES:
            raise ValueError(
                f"`--genotype` must be an existing file or one of {sorted(darts.GENOTYPES)}. "
                f"Received: {args.genotype!r}"
            )
    if args.model and not os.path.exists(args.model):
        raise ValueError(f"`--model` must be an existing .keras file. Received: {args.model!r}")
    config = {**common.common_config(args), **{k: getattr(args, k) for k in (
        "arch", "genotype", "model", "epochs", "optimizer", "learning_rate", "momentum",
        "weight_decay", "schedule", "cells", "init_channels", "auxiliary", "auxiliary_weight",
        "drop_path")}}
    if not 0 <= args.drop_path < 1:
        raise ValueError(f"`--drop-path` must be in [0, 1). Received: --drop-path {args.drop_path}")
    if args.auxiliary_weight < 0:
        raise ValueError(f"`--auxiliary-weight` must be >= 0. Received: --auxiliary-weight {args.auxiliary_weight}")
    dataset = common.load_data(args)
    if args.arch:
        model = build_architecture(args.arch, dataset.input_shape, dataset.num_classes)
    elif args.genotype:
        from keras_nas.spaces import darts

        model = darts.eval_network(
            darts.load_genotype(args.genotype),
            cells=args.cells,
            channels=args.init_channels,
            num_classes=dataset.num_classes,
            input_shape=dataset.input_shape,
            auxiliary=args.auxiliary,
            auxiliary_weight=args.auxiliary_weight,
            drop_path=args.drop_path,
        )
    else:
        _register_custom_objects()
        model = keras.models.clone_model(keras.saving.load_model(args.model, compile=False))
    callbacks = []
    if args.genotype and args.drop_path > 0:
        from keras_nas.callbacks import DropPathSchedule

        # DARTS train.py: the drop-path rate ramps up linearly over training.
        callbacks.append(DropPathSchedule(args.epochs))
    resumed = io.prepare_out_dir(out, config, overwrite=args.overwrite)
    io.write_preprocessing(out, dataset)
    print(f"{'Resuming' if resumed else 'Training'} {model.name} "
          f"({model.count_params():,} parameters) on {dataset.name} -> {out}", flush=True)
    result = training.train_model(
        model,
        dataset,
        epochs=args.epochs,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        out=out,
        verbose=_verbosity(args),
        callbacks=callbacks,
    )
    result["costs"] = training.summarize_costs(model, result["train_seconds"])
    training.plot_history(result["history"], os.path.join(out, "history.png"), title=model.name)
    io.atomic_write_json(os.path.join(out, io.RESULTS_FILE), result)
    print(f"test accuracy {result['test_accuracy']:.4f}, best val accuracy "
          f"{result['val_accuracy']:.4f}; results in {out}", flush=True)
    return result


def _load_model(path):
    import keras

    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise ValueError(f"`model` must be an existing .keras file. Received: {path!r}")
    _register_custom_objects()
    return keras.saving.load_model(path, compile=False)


def _run_export(args):
    from keras_nas import export, io
    from keras_nas.searches import common

    model = _load_model(args.model)
    if args.preprocessing:
        preprocessing = io.read_json(args.preprocessing)
        if preprocessing is None:
            raise ValueError(f"`--preprocessing` file not found: {args.preprocessing!r}")
    else:
        preprocessing = io.find_preprocessing(args.model)
        if preprocessing is None:
            preprocessing = common.load_data(args).preprocessing()
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.model)), "saved_model")
    export.export_saved_model(model, out, preprocessing=preprocessing, fold_batch_norm=args.fold_batch_norm)
    print(f"SavedModel written to {out}\n"
          f"  input  `images`: float32 (batch, height, width, {preprocessing['source_channels']}) in [0, 255]\n"
          f"  output `probabilities`, `class_ids`" + (", `class_names`" if preprocessing.get("class_names") else ""),
          flush=True)
    return {"path": out}


def _run_profile(args):
    from keras_nas import costs
    from keras_nas.searches import common

    model = _load_model(args.model)
    report = costs.profile(model, latency=args.latency).to_dict()
    if args.evaluate:
        dataset = common.load_data(args)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        report["test_loss"], report["test_accuracy"] = [
            float(v) for v in model.evaluate(dataset.test, verbose=0)[:2]
        ]
    print(json.dumps(report, indent=2))
    return report


def _format_table(rows):
    keys = []
    for row in rows:
        for k, v in row.items():
            if k not in keys and (not isinstance(v, (dict, list)) or k == "stage_depths"):
                keys.append(k)
    text = [[str(k) for k in keys]]
    for row in rows:
        cells = []
        for k in keys:
            v = row.get(k, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        text.append(cells)
    widths = [max(len(r[i]) for r in text) for i in range(len(keys))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in text)


def _run_report(args):
    from keras_nas import io

    folder = args.folder or args.out
    if not folder or not os.path.isdir(folder):
        raise ValueError(f"`folder` must be an existing results folder. Received: {folder!r}")
    config = io.read_json(os.path.join(folder, io.CONFIG_FILE), {})
    results = io.read_json(os.path.join(folder, io.RESULTS_FILE))
    print(f"Results folder: {folder}")
    if config:
        print("Settings: " + ", ".join(f"{k}={v}" for k, v in config.items() if v is not None))
    if results is None:
        print("No results.json yet (the run has not finished a step that writes it).")
        return {}
    for key, value in results.items():
        if isinstance(value, (int, float, str, bool)):
            print(f"  {key}: {value}")
    for key, value in results.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            print(f"\n{key}:")
            print(_format_table(value))
        elif isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            print(f"\n{key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
    files = sorted(f for f in os.listdir(folder) if not f.startswith("."))
    print("\nFiles: " + ", ".join(files))
    return results


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.handler(args)
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
        parser.exit(2, f"keras-nas: error: {error}\n")
    except RuntimeError as error:
        # A search that gave up (e.g. too many failed trials in a row): the
        # message says why; finished work stays in the results folder.
        if os.environ.get("KERAS_NAS_DEBUG"):
            raise
        parser.exit(1, f"keras-nas: search stopped: {error}\n(set KERAS_NAS_DEBUG=1 for the traceback)\n")
    except KeyboardInterrupt:
        parser.exit(130, "keras-nas: interrupted; run the same command again to resume.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
