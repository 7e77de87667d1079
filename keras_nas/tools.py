"""`keras-nas train | export | profile | report | latency-table`: one architecture, a served model, costs, a summary,
a measured latency table.

Each command has its options (checked before anything loads or is written),
a `check_<command>(args)` for the checks between options and a
`run_<command>(args)`.
"""

# The command line imports this module to list and check its options before TensorFlow loads, so
# the functions that train import the TensorFlow-backed modules (and keras_nas' own) where they run.

import json
import os
import re

from keras_nas import io
from keras_nas.engine import common_options
from keras_nas.engine import options as options_lib
from keras_nas.engine.options import Option, OptionError
from keras_nas.eoinas.genotypes import check_genotype_name

COMMANDS = {
    "train": "train one architecture from scratch",
    "export": "export a .keras model (or a results folder's best model) as a SavedModel for TF Serving (a new "
              "version folder each time) or a .tflite file (float32, float16 or int8)",
    "profile": "cost report of a .keras model",
    "report": "summarise a results folder",
    "latency-table": "measure each block a search space can produce on this machine (batch 1, median after "
                     "warm-up) into a latency table for keras_nas.costs.predict_latency",
}
ARCH_KINDS = ("resnet", "resnet-bottleneck", "nasnet")
OPTIMIZERS = ("sgd", "nesterov", "adam")
SCHEDULES = ("cosine", "step", "constant")


def parse_arch(name, spec):
    """`'resnet:3,3,3'` -> `('resnet', (3, 3, 3))`; `OptionError` naming `name` otherwise."""
    kind, _, depths = str(spec).partition(":")
    values = tuple(int(v) for v in depths.split(",")) if re.fullmatch(r"\d+(,\d+)*", depths) else ()
    if kind not in ARCH_KINDS or not values or min(values) < 1:
        raise OptionError(f"`{name}` must look like KIND:D1,D2,... with KIND one of {sorted(ARCH_KINDS)} and "
                          "positive depths (resnet:3,3,3).", **{name: spec})
    return kind, values


def _arch(name, value):
    parse_arch(name, value)
    return value


_MODEL = Option("model", None, "a saved .keras model", validate=io.check_keras_path, optional=False,
                metavar="MODEL.keras")
TRAIN = (
    Option("arch", None, "resnet:D1,D2,D3 (CIFAR basic blocks), resnet-bottleneck:D1,..,D4, or nasnet:N1,N2,N3",
           validate=_arch, metavar="KIND:DEPTHS"),
    Option("genotype", None, "genotype.json of a cell search (EoiNAS/DARTS form), or DARTS_V1, DARTS_V2, GDAS_V1",
           validate=check_genotype_name, metavar="FILE|NAME"),
    Option("model", None, "a saved .keras model whose architecture is retrained from scratch",
           validate=io.check_keras_path, metavar="MODEL.keras"),
    Option("epochs", 10, "training epochs", low=1),
    Option("optimizer", "sgd", "optimizer", choices=OPTIMIZERS),
    Option("learning_rate", 0.05, "initial learning rate", low=0, low_open=True),
    Option("momentum", 0.9, "SGD momentum", low=0, high=1, high_open=True),
    Option("weight_decay", 5e-4, "decoupled weight decay", low=0),
    Option("schedule", "cosine", "learning-rate schedule", choices=SCHEDULES),
    Option("cells", 8, "--genotype: number of cells", low=3, paper=20),
    Option("init_channels", 16, "--genotype: initial channels", low=1, paper=36),
    Option("auxiliary", False, "--genotype: auxiliary head"),
    Option("auxiliary_weight", 0.4, "--genotype: weight of the auxiliary loss", low=0, paper="0.4, DARTS sec. 4.3"),
    Option("drop_path", 0.0, "--genotype: drop-path rate, ramped up linearly over training", low=0, high=1,
           high_open=True, paper="0.2-0.3"),
) + common_options.DATA_OPTIONS + common_options.FOLDER_OPTIONS
_DATA_SOURCE = (common_options.DATASET, common_options.DATA_DIR, common_options.IMAGE_SIZE,
                common_options.CHANNELS)
EXPORT_FORMATS = ("savedmodel", "tflite")
QUANTIZATIONS = ("float16", "int8")  # keras_nas.export.QUANTIZATIONS (that module loads TensorFlow)
BEST_MODEL = "best_model.keras"


def _model_or_results(name, value):
    """A `.keras` file, or a results folder holding best_model.keras (returned as given)."""
    if isinstance(value, str) and os.path.isdir(value):
        if not os.path.isfile(os.path.join(value, BEST_MODEL)):
            raise OptionError(f"`{name}` must be a .keras file or a results folder holding {BEST_MODEL}; that "
                              f"folder has no {BEST_MODEL}.", **{name: value})
        return value
    return io.check_keras_path(name, value)


EXPORT = (
    Option("model", None, "a saved .keras model, or a results folder (its best_model.keras)",
           validate=_model_or_results, optional=False, metavar="MODEL_OR_RESULTS"),
    Option("format", "savedmodel", "savedmodel (TF Serving) or tflite (devices; the model's fixed image size)",
           choices=EXPORT_FORMATS),
    Option("quantize", None, "--format tflite: float16 weights, or int8 (full-integer, calibrated on the training "
           "split; prints test accuracy float vs quantized)", choices=QUANTIZATIONS),
    Option("preprocessing", None, "preprocessing.json (default: the one beside the model, else derived from "
           "--dataset)", validate=lambda name, value: _existing_file(name, value), metavar="FILE"),
    Option("fold_batch_norm", True, "fold BatchNormalization layers into the convolutions before them (same "
           "predictions, fewer ops to serve)"),
    Option("out", None, "savedmodel: model base folder; each export adds a version folder 1, 2, ... in it (TF "
           "Serving's layout; default <model folder>/saved_model). tflite: the .tflite file (default <model "
           "folder>/<model name>[.float16|.int8].tflite)", validate=common_options.OUT.validate, metavar="PATH"),
    Option("overwrite", False, "savedmodel: replace the newest version instead of adding one; tflite: replace "
           "the file"),
    # Not "digits" by default: the dataset recorded in the results folder comes first.
    Option("dataset", None, "dataset for int8 calibration and accuracy, or to derive the preprocessing (default: "
           "the one in the results folder's config.json, else digits)", validate=common_options.DATASET.validate,
           group=common_options.DATA),
) + _DATA_SOURCE[1:]
PROFILE = (
    _MODEL,
    Option("latency", False, "also time CPU inference at batch 1"),
    Option("evaluate", False, "also report accuracy on the --dataset test split"),
) + _DATA_SOURCE + (common_options.BATCH_SIZE, common_options.SEED, common_options.SKIP_UNREADABLE)
REPORT = (
    Option("folder", None, "results folder", validate=lambda name, value: _existing_folder(name, value),
           optional=False),
)
LATENCY_SPACES = ("resnet", "nasnet", "darts", "epnas", "epnas-module", "cnas")  # keras_nas.latency.ALL_SPACES


def _latency_space(name, value):
    if value not in LATENCY_SPACES:
        raise OptionError(f"`{name}` must be one of {list(LATENCY_SPACES)}.", **{name: value})
    return value


def _json_out(name, value):
    common_options.OUT.validate(name, value)
    if not value.endswith(".json") or os.path.isdir(value):
        raise OptionError(f"`{name}` must be a file name ending in .json.", **{name: value})
    return value


LATENCY_TABLE = (
    Option("space", None, "search space whose blocks are measured: resnet (stage-wise, basic or bottleneck blocks), "
           "nasnet (stage-wise --module cell, NASNet-A cells), darts (the evaluation network EoiNAS/GDAS/DARTS "
           "derive), epnas (layer-by-layer), epnas-module (EPNAS --mode module: per-unit costs fitted to measured "
           "random cell networks) or cnas (CNAS sparse networks: per-unit costs fitted to measured random ones)",
           validate=_latency_space, optional=False,
           expected=f"one of {list(LATENCY_SPACES)}", metavar="{" + ",".join(LATENCY_SPACES) + "}"),
    Option("runtime", "tflite", "tf (a compiled tf.function) or tflite (TFLite interpreter)", choices=("tf", "tflite")),
    Option("threads", 1, "intra-op threads (tf) or interpreter threads (tflite)", low=1),
    Option("image_size", 8, "height and width of the network input (digits: 8)", low=1,
           high=common_options.MAX_IMAGE_SIZE, metavar="SIZE"),
    Option("channels", 1, "channels of the network input", low=1, metavar="C"),
    Option("num_classes", 10, "classifier outputs", low=2, metavar="K"),
    Option("stages", None, "resnet, nasnet: number of stages (stage-wise --stages; default 3; resnet widths 16, 32, "
           "64 with basic blocks, 64, 128, 256, 512 with bottleneck blocks, doubling after); epnas-module: stages of "
           "cells (epnas --stages; default 2)", type=int, low=1),
    Option("block", "basic", "resnet: residual block type (stage-wise --block): basic (3x3 stem) or bottleneck (7x7 "
           "stride-2 stem and max pooling, 1x1-3x3-1x1 blocks, projection shortcuts)",
           choices=("basic", "bottleneck")),
    Option("filters", None, "nasnet: filters F of the first stage's cells, doubling each stage (stage-wise --filters; "
           "default 8); epnas-module: stage-1 channels (epnas --filters; default 16)", type=int, low=1),
    Option("cells_per_stage", None, "epnas-module: cells per stage (epnas --cells-per-stage; default 1)", type=int,
           low=1),
    Option("cells", None, "darts: cells of the evaluation network (eoinas --eval-cells; default 5); cnas: normal "
           "cells per stage (cnas --cells; default 1)", type=int, low=1),
    Option("init_channels", None, "darts: initial channels C of the evaluation network (eoinas --eval-channels; "
           "default 16); cnas: node output channels C of stage 1 (cnas --init-channels; default 8)", type=int,
           low=1),
    Option("nodes", 3, "cnas: nodes per cell (cnas --nodes)", low=1),
    Option("ops_per_node", 2, "cnas: ops per node (cnas --ops-per-node)", low=1),
    Option("cnas_space", "nasnet", "cnas: the search's --space, nasnet (NASNet-shaped cells) or densenet-bc",
           choices=("nasnet", "densenet-bc")),
    Option("layers_per_block", None, "cnas densenet-bc: bottleneck layers per block (cnas --layers-per-block; "
           "default 3)", type=int, low=1),
    Option("growth_rate", None, "cnas densenet-bc: growth rate k (cnas --growth-rate; default 6)", type=int, low=1),
    Option("sparse_data_format", "auto", "cnas: layout of the sparse models (cnas --sparse-data-format; auto: "
           "channels_first for nasnet, channels_last for densenet-bc)",
           choices=("auto", "channels_first", "channels_last")),
    Option("calibration", None, "resnet: networks measured end to end (depths 1 and 6 in every stage, then random) to "
           "fit the table's memory term, what a block costs more inside a network whose weights outgrow the cache "
           "than timed alone (default 6; 0: none)", type=int, low=0, metavar="N"),
    Option("samples", None, "cnas, epnas-module: random networks measured end to end to fit the table (each "
           "converted to TFLite: seconds each; default 40 for cnas, 60 for epnas-module)", type=int, low=2),
    Option("channel_table", None, "epnas, epnas-module: the search's --channel-table, comma-separated (default "
           "Table 2's 16,32,64,96,128,256; Table 3's 8,12,16,24,32 for epnas-module)", parse=options_lib.int_list,
           validate=lambda name, value: options_lib.check_int_list(name, value, low=2, metavar="comma-separated "
                                                                    "even channel counts such as 16,32,64"),
           metavar="C1,C2,..."),
    Option("runs", 30, "timed calls per entry (the median is stored)", low=1),
    Option("warmup", 5, "untimed calls before the timed ones", low=0),
    Option("out", None, "the table JSON file to write", validate=_json_out, optional=False,
           expected="a file name ending in .json", metavar="TABLE.json"),
    Option("overwrite", False, "replace an existing --out file"),
)
OPTIONS = {"train": TRAIN, "export": EXPORT, "profile": PROFILE, "report": REPORT, "latency-table": LATENCY_TABLE}
POSITIONAL = {"export": {"model": "MODEL_OR_RESULTS"}, "profile": {"model": "MODEL"}, "report": {"folder": "FOLDER"}}


def _existing_file(name, value):
    if not isinstance(value, str) or not os.path.isfile(value):
        raise OptionError(f"`{name}` must be an existing file.", **{name: value})
    return value


def _existing_folder(name, value):
    if not isinstance(value, str) or not os.path.isdir(value):
        raise OptionError(f"`{name}` must be an existing results folder.", **{name: value})
    return value


# -- train ----------------------------------------------------------------


def train_slug(args):
    """The folder name under runs/train of what `train` trains (`resnet-3-3-3`, `genotype-DARTS_V2`, ...)."""
    if args.arch:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", args.arch).strip("-")
    source = args.genotype or args.model
    stem = os.path.splitext(os.path.basename(source))[0] if os.path.isfile(source) else source
    if args.genotype and stem == "genotype":  # runs/<search>/genotype.json: name it after the search folder
        stem = os.path.basename(os.path.dirname(os.path.abspath(source)))
    return f"{'genotype' if args.genotype else 'model'}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', stem)}"


def check_train(args):
    given = [name for name in ("arch", "genotype", "model") if getattr(args, name)]
    if len(given) != 1:
        raise OptionError("Exactly one of `arch`, `genotype` or `model` says what to train.",
                          **{name: getattr(args, name) for name in ("arch", "genotype", "model")})
    if not args.genotype:
        for name in ("auxiliary", "drop_path"):
            if getattr(args, name) != next(o.default for o in TRAIN if o.name == name):
                raise OptionError(f"`{name}` applies to `genotype` networks only.", **{name: getattr(args, name)})
    if args.out is None:
        args.out = os.path.join("runs", "train", train_slug(args))


def build_architecture(spec, input_shape, num_classes):
    """Builds a model from an `--arch` spec such as `resnet:3,3,3`."""
    from keras_nas import stagewise

    kind, depths = parse_arch("arch", spec)
    if kind == "nasnet":
        return stagewise.stage_nasnet(depths, input_shape=input_shape, num_classes=num_classes)
    block = "bottleneck" if kind == "resnet-bottleneck" else "basic"
    return stagewise.stage_resnet(depths, block=block, input_shape=input_shape, num_classes=num_classes)


def run_train(args):
    import keras

    from keras_nas import training
    from keras_nas.engine import runtime as common

    dataset = common.load_data(args)
    if args.arch:
        model = build_architecture(args.arch, dataset.input_shape, dataset.num_classes)
    elif args.genotype:
        from keras_nas.eoinas import darts

        model = darts.eval_network(
            darts.load_genotype(args.genotype), cells=args.cells, channels=args.init_channels,
            num_classes=dataset.num_classes, input_shape=dataset.input_shape, auxiliary=args.auxiliary,
            auxiliary_weight=args.auxiliary_weight, drop_path=args.drop_path,
        )
    else:
        model = keras.models.clone_model(io.load_model(args.model, "model"))
    callbacks = []
    if args.genotype and args.drop_path > 0:
        from keras_nas.eoinas.drop_path_schedule import DropPathSchedule

        # DARTS train.py: the drop-path rate ramps up linearly over training.
        callbacks.append(DropPathSchedule(args.epochs))
    config = common.run_config(args, "train", TRAIN)
    resumed = common.open_results(args, "keras-nas train", config, TRAIN)
    out = args.out
    io.write_preprocessing(out, dataset)
    print(f"{'Resuming' if resumed else 'Training'} {model.name} "
          f"({model.count_params():,} parameters) on {dataset.name} -> {out}", flush=True)
    result = training.train_model(
        model, dataset, epochs=args.epochs, optimizer=args.optimizer, learning_rate=args.learning_rate,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule, out=out,
        verbose=args.verbose, callbacks=callbacks,
    )
    result["costs"] = training.summarize_costs(model, result["train_seconds"])
    training.plot_history(result["history"], os.path.join(out, "history.png"), title=model.name)
    io.atomic_write_json(os.path.join(out, io.RESULTS_FILE), result)
    print(f"test accuracy {result['test_accuracy']:.4f}, best val accuracy "
          f"{result['val_accuracy']:.4f}; results in {out}", flush=True)
    return result


# -- export ---------------------------------------------------------------


def check_export(args):
    if args.quantize is not None and args.format != "tflite":
        raise OptionError("`quantize` applies to `format` tflite only.", quantize=args.quantize, format=args.format)
    if os.path.isdir(args.model):
        args.model = os.path.join(args.model, BEST_MODEL)
    if args.format == "tflite":
        _check_tflite_out(args)
        return
    if args.out is None:
        args.out = os.path.join(os.path.dirname(os.path.abspath(args.model)), "saved_model")
    if os.path.exists(os.path.join(args.out, "saved_model.pb")):
        raise OptionError("`out` holds a SavedModel itself; give the model base folder that holds (or will hold) "
                          "its version folders 1, 2, ... (TF Serving's layout).", out=args.out)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise OptionError("`out` must be a folder; a file of that name exists.", out=args.out)


def _check_tflite_out(args):
    if args.out is None:
        stem = os.path.splitext(os.path.basename(args.model))[0]
        suffix = f".{args.quantize}" if args.quantize else ""
        args.out = os.path.join(os.path.dirname(os.path.abspath(args.model)), f"{stem}{suffix}.tflite")
    if not args.out.endswith(".tflite"):
        raise OptionError("`out` must be a file name ending in .tflite with `format` tflite.", out=args.out,
                          names=("format",))
    if os.path.isdir(args.out):
        raise OptionError("`out` must be a file name; a folder of that name exists.", out=args.out)
    if os.path.exists(args.out) and not args.overwrite:
        raise OptionError("`out` exists; add `overwrite` to replace it.", out=args.out, names=("overwrite",))


def _run_config(model_path):
    """config.json beside a saved model or one folder up ({} if none): the run that made it."""
    folder = os.path.dirname(os.path.abspath(model_path))
    for candidate in (folder, os.path.dirname(folder)):
        found = io.read_json(os.path.join(candidate, io.CONFIG_FILE))
        if isinstance(found, dict) and "dataset" in found:
            return found
    return {}


def export_dataset(args, preprocessing=None):
    """The dataset of an export: `--dataset ...` as given, else the one the results folder's run used, else digits.

    With `preprocessing`, its image shape must be the dataset's (calibration
    and test images are fed to the exported model as they are).
    """
    from keras_nas.engine import runtime as common

    names = ("dataset", "data_dir", "image_size", "channels", "seed", "validation_split", "skip_unreadable_images")
    recorded = {} if args.dataset is not None else _run_config(args.model)
    overrides = {name: recorded[name] for name in names if recorded.get(name) is not None}
    for name in ("data_dir", "image_size", "channels"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    overrides.setdefault("dataset", args.dataset or "digits")
    dataset = common.load_data(args, **overrides)
    if preprocessing is not None:
        want = (tuple(preprocessing["image_size"]), preprocessing["channels"], preprocessing["source_channels"])
        got = (tuple(dataset.input_shape[:2]), dataset.input_shape[2], dataset.source_channels)
        if want != got:
            raise OptionError(f"`dataset` gives images of size {got[0]} with {got[2]} source channels ({got[1]} "
                              f"model channels) but the model's preprocessing.json has {want[0]} with {want[2]} "
                              f"({want[1]}); give the run's `dataset`, `image_size` and `channels`.",
                              dataset=overrides["dataset"], names=("image_size", "channels"))
    return dataset


def versions(base):
    """The version numbers of the SavedModels under a model base folder (sorted)."""
    if not os.path.isdir(base):
        return []
    return sorted(int(v) for v in os.listdir(base)
                  if v.isdigit() and os.path.isfile(os.path.join(base, v, "saved_model.pb")))


def run_export(args):
    import shutil

    from keras_nas import export

    model = io.load_model(args.model, "model")
    if args.preprocessing:
        preprocessing = io.read_json(args.preprocessing)
    else:
        preprocessing = io.find_preprocessing(args.model)
        if preprocessing is None:
            preprocessing = export_dataset(args).preprocessing()
    if args.format == "tflite":
        return _run_export_tflite(args, model, preprocessing)
    existing = versions(args.out)
    replace = args.overwrite and bool(existing)
    if replace:
        version = existing[-1]  # only a version folder holding a SavedModel (what export writes) is replaced
    else:
        version = existing[-1] + 1 if existing else 1
        while os.path.exists(os.path.join(args.out, str(version))):
            version += 1  # a folder of that number that is not a SavedModel is left alone
    path = os.path.join(args.out, str(version))
    # Written beside its final place and renamed when complete: TF Serving
    # polls the base folder and must never load a half-written version.
    partial = os.path.join(args.out, f".tmp-{version}-{os.getpid()}")
    os.makedirs(partial)
    try:
        export.export_saved_model(model, partial, preprocessing=preprocessing, fold_batch_norm=args.fold_batch_norm)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if replace:
        shutil.rmtree(path)
    os.rename(partial, path)
    kind = export.output_kind(model)
    print(f"SavedModel version {version} written to {path} (TF Serving: --model_base_path={args.out})\n"
          + ("  the model ends in logits: the serving graph applies the softmax\n" if kind == "logits" else "")
          + f"  input  `images`: float32 (batch, height, width, {preprocessing['source_channels']}) in [0, 255]\n"
          f"  output `probabilities`, `class_ids`" + (", `class_names`" if preprocessing.get("class_names") else ""),
          flush=True)
    return {"path": path, "version": version}


def _run_export_tflite(args, model, preprocessing):
    from keras_nas import export

    dataset = export_dataset(args, preprocessing) if args.quantize else None
    representative = dataset.raw("train") if args.quantize == "int8" else None
    export.export_tflite(model, args.out, preprocessing=preprocessing, quantize=args.quantize,
                         representative_data=representative, fold_batch_norm=args.fold_batch_norm,
                         overwrite=args.overwrite)
    size = os.path.getsize(args.out)
    kind = args.quantize or "float32"
    report = {"path": args.out, "bytes": size, "quantize": args.quantize}
    print(f"TFLite model ({kind}) written to {args.out} ({size:,} bytes, {size / 2**20:.2f} MiB)\n"
          f"  input  `images`: float32 (batch, {preprocessing['image_size'][0]}, {preprocessing['image_size'][1]}, "
          f"{preprocessing['source_channels']}) in [0, 255]\n"
          f"  output `probabilities`, `class_ids`" + (", `class_names`" if preprocessing.get("class_names") else ""),
          flush=True)
    if args.quantize:
        reference = export.tflite_bytes(model, preprocessing=preprocessing, fold_batch_norm=args.fold_batch_norm)
        test = dataset.raw("test")
        report["float32_test_accuracy"] = export.tflite_accuracy(reference, test)
        report["test_accuracy"] = export.tflite_accuracy(args.out, test)
        print(f"  test accuracy on {dataset.name} (TFLite interpreter): float32 {report['float32_test_accuracy']:.4f} "
              f"({len(reference):,} bytes), {kind} {report['test_accuracy']:.4f}", flush=True)
    return report


# -- profile --------------------------------------------------------------


def check_profile(args):
    pass


def run_profile(args):
    from keras_nas import costs
    from keras_nas.engine import runtime as common

    model = io.load_model(args.model, "model")
    report = costs.profile(model, latency=args.latency).to_dict()
    if args.evaluate:
        dataset = common.load_data(args)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        report["test_loss"], report["test_accuracy"] = [
            float(v) for v in model.evaluate(dataset.test, verbose=0)[:2]
        ]
    print(json.dumps(report, indent=2))
    return report


# -- report ---------------------------------------------------------------


def check_report(args):
    pass


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


def run_report(args):
    folder = args.folder
    config = io.read_json(os.path.join(folder, io.CONFIG_FILE), {})
    results = io.read_json(os.path.join(folder, io.RESULTS_FILE))
    print(f"Results folder: {folder}")
    if config:
        print("Settings: " + ", ".join(f"{k}={v}" for k, v in config.items() if v is not None and k != "keras_nas"))
    if results is None:
        print("No results.json yet (the run has not finished a step that writes it).")
        return {}
    from keras_nas.engine.results import REPORT_COLUMNS

    best = results.get("best")
    print(f"Method: {results.get('method')}" + (f" (keras_nas {results['version']})" if "version" in results else ""))
    if best:
        architecture = best.get("architecture")
        if not isinstance(architecture, str):
            architecture = json.dumps(architecture)
        print(f"Best model: {best.get('path')}\n  architecture: {architecture}")
        print(_format_table([{k: best.get(k) for k in REPORT_COLUMNS}]))
    elif "best" in results:
        print("Best model: none" + (" meets every constraint (see best_by_reward)" if results.get("best_by_reward")
                                    else ""))
    skipped = {"best", "config", "receipt", "method", "version"}
    for key, value in results.items():
        if key not in skipped and isinstance(value, (int, float, str, bool)):
            print(f"  {key}: {value}")
    for key, value in results.items():
        if key in skipped:
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            print(f"\n{key}:")
            print(_format_table(value))
        elif isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            print(f"\n{key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
    files = sorted(f for f in os.listdir(folder) if not f.startswith("."))
    print("\nFiles: " + ", ".join(files))
    return results


# -- latency-table ----------------------------------------------------------


def check_latency_table(args):
    if os.path.exists(args.out) and not args.overwrite:
        raise OptionError("`out` exists; pass `overwrite` to replace it.", names=("overwrite",), out=args.out)
    if args.space not in ("resnet", "nasnet", "epnas-module") and args.stages is not None:
        raise OptionError(f"`stages` does not apply to the {args.space} space (resnet, nasnet and epnas-module only).",
                          stages=args.stages)
    if args.space != "resnet" and args.block != "basic":
        raise OptionError(f"`block` does not apply to the {args.space} space (resnet only).", block=args.block)
    if args.space != "resnet" and args.calibration is not None:
        raise OptionError(f"`calibration` does not apply to the {args.space} space (resnet only).",
                          calibration=args.calibration)
    if args.calibration == 1:
        raise OptionError("`calibration` must be 0 (no memory term) or >= 2 networks.", calibration=1)
    if args.space not in ("nasnet", "epnas-module") and args.filters is not None:
        raise OptionError(f"`filters` does not apply to the {args.space} space (nasnet and epnas-module only).",
                          filters=args.filters)
    if args.space != "epnas-module" and args.cells_per_stage is not None:
        raise OptionError(f"`cells_per_stage` does not apply to the {args.space} space (epnas-module only).",
                          cells_per_stage=args.cells_per_stage)
    for name in ("cells", "init_channels"):
        if args.space not in ("darts", "cnas") and getattr(args, name) is not None:
            raise OptionError(f"`{name}` does not apply to the {args.space} space (darts and cnas only).",
                              **{name: getattr(args, name)})
    if args.space == "darts" and args.cells is not None and args.cells < 3:
        raise OptionError("`cells` must be >= 3 for the darts space (its reductions sit at 1/3 and 2/3).",
                          cells=args.cells)
    for name, default in (("nodes", 3), ("ops_per_node", 2), ("sparse_data_format", "auto"),
                          ("cnas_space", "nasnet")):
        if args.space != "cnas" and getattr(args, name) != default:
            raise OptionError(f"`{name}` does not apply to the {args.space} space (cnas only).",
                              **{name: getattr(args, name)})
    for name in ("layers_per_block", "growth_rate"):
        if (args.space != "cnas" or args.cnas_space != "densenet-bc") and getattr(args, name) is not None:
            raise OptionError(f"`{name}` applies to the cnas space with `cnas_space` densenet-bc only.",
                              names=("cnas_space",), **{name: getattr(args, name)})
    if args.space == "cnas" and args.cnas_space == "densenet-bc":
        for name, default in (("cells", None), ("init_channels", None), ("nodes", 3), ("ops_per_node", 2)):
            if getattr(args, name) != default:
                raise OptionError(f"`{name}` applies to the cnas space with `cnas_space` nasnet only.",
                                  names=("cnas_space",), **{name: getattr(args, name)})
        if args.sparse_data_format == "channels_first":
            raise OptionError("`sparse_data_format` channels_first applies to `cnas_space` nasnet only (densenet-bc "
                              "has channels_last alone).", names=("cnas_space",),
                              sparse_data_format=args.sparse_data_format)
    if args.space not in ("cnas", "epnas-module") and args.samples is not None:
        raise OptionError(f"`samples` does not apply to the {args.space} space (cnas and epnas-module only).",
                          samples=args.samples)
    if args.space == "cnas" and args.cnas_space == "nasnet":
        channels = 8 if args.init_channels is None else args.init_channels
        if channels % 2 or channels % args.ops_per_node:
            raise OptionError("`init_channels` must be even and divisible by `ops_per_node`.",
                              init_channels=channels, ops_per_node=args.ops_per_node)
        if args.image_size < 4:
            raise OptionError("`image_size` must be >= 4 for the cnas nasnet space (3 stages).",
                              image_size=args.image_size)
    if args.channel_table is not None:
        if args.space not in ("epnas", "epnas-module"):
            raise OptionError(f"`channel_table` does not apply to the {args.space} space (epnas and epnas-module "
                              "only).",
                              channel_table=args.channel_table)
        if any(c % 2 for c in args.channel_table):
            raise OptionError("`channel_table` must be even channel counts (crelu halves them).",
                              channel_table=args.channel_table)


def cnas_table_settings(args):
    """The `measure_table` settings of a cnas table from `keras-nas latency-table` options."""
    layout = None if args.sparse_data_format == "auto" else args.sparse_data_format
    settings = {"cnas_space": args.cnas_space, "sparse_data_format": layout,
                "samples": 40 if args.samples is None else args.samples}
    if args.cnas_space == "densenet-bc":
        return {**settings, "layers_per_block": 3 if args.layers_per_block is None else args.layers_per_block,
                "growth_rate": 6 if args.growth_rate is None else args.growth_rate}
    return {**settings, "cells": 1 if args.cells is None else args.cells, "nodes": args.nodes,
            "ops_per_node": args.ops_per_node, "init_channels": 8 if args.init_channels is None else args.init_channels}


def run_latency_table(args):
    import time

    from keras_nas import latency

    stages = 3 if args.stages is None else args.stages
    calibration = 6 if args.calibration is None else args.calibration
    settings = {"resnet": {"stages": stages, "block": args.block, "calibration": calibration},
                "nasnet": {"stages": stages, "filters": 8 if args.filters is None else args.filters},
                "epnas-module": {"stages": 2 if args.stages is None else args.stages,
                                 "cells_per_stage": 1 if args.cells_per_stage is None else args.cells_per_stage,
                                 "filters": 16 if args.filters is None else args.filters,
                                 "channel_table": args.channel_table,
                                 "samples": 60 if args.samples is None else args.samples},
                "darts": {"cells": 5 if args.cells is None else args.cells,
                          "init_channels": 16 if args.init_channels is None else args.init_channels},
                "cnas": cnas_table_settings(args),
                "epnas": {"channel_table": args.channel_table}}[args.space]
    size = {"image_size": args.image_size, "channels": args.channels, "num_classes": args.num_classes}
    total = len(latency.table_keys(args.space, **size, **settings))
    fitted = args.space in ("cnas", "epnas-module")
    kind = "sparse networks" if args.space == "cnas" else "cell networks"
    what = f"{settings['samples']} random {args.space} {kind}" if fitted else f"{total:,} {args.space} entries"
    calibration = (f", then {settings['calibration']} networks end to end to fit the memory term"
                   if args.space == "resnet" and settings["calibration"] else "")
    print(f"Measuring {what} at {args.image_size}x{args.image_size}x{args.channels} "
          f"({args.runtime}, {args.threads} thread{'s' if args.threads > 1 else ''}, median of {args.runs} runs "
          f"after {args.warmup} warm-up){' to fit ' + str(total) + ' costs per unit' if fitted else ''}"
          f"{calibration}", flush=True)
    start = time.perf_counter()
    step = max(1, (settings["samples"] if fitted else total) // 20)

    def progress(done, count, key):
        calibrating = key.startswith("calibration network")
        if done % step == 0 or done == count or calibrating:
            unit = "calibration networks" if calibrating else "networks" if fitted else "entries"
            print(f"  {done:,}/{count:,} {unit}, {time.perf_counter() - start:.0f} s", flush=True)

    table = latency.measure_table(args.space, **size, runtime=args.runtime, threads=args.threads, runs=args.runs,
                                  warmup=args.warmup, progress=progress, **settings)
    latency.save_table(table, args.out, overwrite=args.overwrite)
    fit = (f", median error {table['fit']['median_error']:.1%} on the {table['fit']['samples']} networks it was fitted "
           "to" if "fit" in table else "")
    if table.get("memory"):
        memory = table["memory"]
        fit = (f", memory term {memory['ms_per_mb']:.3g} ms per MB of weights beyond {memory['cache_mb']:.1f} MB: "
               f"median error on its {memory['networks']} calibration networks {memory['median_error']['entries']:.1%}"
               f" -> {memory['median_error']['with_memory']:.1%}")
    print(f"Latency table of {len(table['entries']):,} entries (overhead {table['overhead_ms']:.4f} ms{fit}) written "
          f"to {args.out} in {time.perf_counter() - start:.0f} s", flush=True)
    return table
