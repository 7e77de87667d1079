"""The settings every search shares: data, results folder, runtime.

Pure Python (no TensorFlow), so the command line checks them at once.
`keras_nas.data.load` checks its own arguments with the same options.
"""

import re

from keras_nas.engine.options import Option, OptionError, OptionTypeError

AUGMENTATIONS = ("crop", "flip", "cutout", "color")
AUGMENT_PRESETS = {
    "none": (),
    "standard": ("crop", "flip"),  # paper 000/002/003: pad-4 random crop + flip
    "cutout": ("crop", "flip", "cutout"),  # DARTS/GDAS/EoiNAS evaluation
}
# Larger images than this would not fit a CPU's memory at any batch size the searches use.
MAX_IMAGE_SIZE = 4096


def augment_names(name, augment):
    """The augmentations `augment` asks for: a preset name, a comma-separated list or a list."""
    if augment is None:
        return ()
    if isinstance(augment, str):
        if augment in AUGMENT_PRESETS:
            return AUGMENT_PRESETS[augment]
        items = tuple(a.strip() for a in augment.split(",") if a.strip())
    elif isinstance(augment, (list, tuple)):
        items = tuple(augment)
    else:
        raise OptionTypeError(f"`{name}` must be None, a preset name or a list of augmentations.",
                              **{name: augment})
    if not items or any(a not in AUGMENTATIONS for a in items):
        raise OptionError(f"`{name}` must be one of {sorted(AUGMENT_PRESETS)} or a comma-separated list of "
                          f"{list(AUGMENTATIONS)}.", **{name: augment})
    return items


def _augment(name, value):
    augment_names(name, value)
    return value


def image_size_pair(name, value):
    """`32` or `(32, 48)` -> `(height, width)`; None stays None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise OptionTypeError(f"`{name}` must be an int or a (height, width) pair of ints in "
                              f"[1, {MAX_IMAGE_SIZE}].", **{name: value})
    if len(value) != 2 or not all(1 <= s <= MAX_IMAGE_SIZE for s in value):
        raise OptionError(f"`{name}` must be an int or a (height, width) pair of ints in [1, {MAX_IMAGE_SIZE}].",
                          **{name: value})
    return (int(value[0]), int(value[1]))


def latency_table_file(space):
    """A validator: the option names an existing file (read and checked as a `space` table where it is used).

    `space` is the `keras-nas latency-table --space` the message names: one
    space, or `"resnet|nasnet"` where the run's options decide which.
    """
    import os

    def validate(name, value):
        if not isinstance(value, str) or not os.path.isfile(value):
            raise OptionError(f"`{name}` must be an existing latency table JSON file (`keras-nas latency-table "
                              f"--space {space}`).", **{name: value})
        return value

    return validate


# Share below a latency target that a search aims for (`--latency-margin`): ours, in no paper. Timing a
# model of tens of microseconds on a shared CPU moves by up to ~20% within one process over minutes, so a
# search that stops at the first model timed just under the target hands over models that miss it
# (benchmarks/RESULTS.md, "Latency targets").
DEFAULT_LATENCY_MARGIN = 0.1


def latency_margin_option(group, target):
    """The `--latency-margin` option of a search whose latency target is `target` (as its help names it)."""
    return Option("latency_margin", None, f"with {target}: search for a latency this share "
                  f"below it (default {DEFAULT_LATENCY_MARGIN}), as headroom for timing noise; the final model is "
                  "still judged against the target itself. 0 aims at the target (why: benchmarks/RESULTS.md, Latency "
                  "targets)", type=float, low=0, high=1,
                  high_open=True, paper="none", group=group, metavar="SHARE")


def latency_margin(margin, target_given, target_option):
    """The margin of a run: the `latency_margin` given, its default with a latency target, or an `OptionError`.

    `target_option` is the option that gives the target, for the message.

    Example:

    >>> latency_margin(None, True, "target_latency_ms")
    0.1
    >>> latency_margin(0.2, False, "target_latency_ms")
    Traceback (most recent call last):
    ...
    keras_nas.engine.options.OptionError: `latency_margin` applies to a latency target only; add ... latency_margin=0.2
    """
    if margin is not None and not target_given:
        raise OptionError(f"`latency_margin` applies to a latency target only; add `{target_option}`.",
                          names=(target_option,), latency_margin=margin)
    return DEFAULT_LATENCY_MARGIN if margin is None else float(margin)


def search_latency(target_ms, margin):
    """The latency (ms) a search aims for: `target_ms` less the share `margin`.

    Example:

    >>> round(search_latency(2.0, 0.1), 6)
    1.8
    """
    return float(target_ms) * (1.0 - float(margin))


def _nonempty(name, value):
    if not isinstance(value, str):
        raise OptionTypeError(f"`{name}` must be a string.", **{name: value})
    if not value.strip():
        raise OptionError(f"`{name}` must not be empty.", **{name: value})
    return value


DATA = "data options"
FOLDER = "results folder options"
RUNTIME = "scale-out and runtime options"

DATASET = Option("dataset", "digits", "digits (bundled), digits-cluttered (bundled, harder), synthetic, a TFDS name such as cifar10, or a folder of "
                 "images with one sub-folder per class", validate=_nonempty, group=DATA)
DATA_DIR = Option("data_dir", None, "TFDS data folder (for TFDS datasets)", validate=_nonempty, group=DATA,
                  resume_free=True)
IMAGE_SIZE = Option("image_size", None, "resize images to SIZE x SIZE (required for an image folder)", type=int,
                    low=1, high=MAX_IMAGE_SIZE, group=DATA, metavar="SIZE")
CHANNELS = Option("channels", None, "convert images to 1 or 3 channels", type=int, choices=(1, 3), group=DATA)
BATCH_SIZE = Option("batch_size", 64, "examples per training step", low=1, group=DATA)
VALIDATION_SPLIT = Option("validation_split", 0.2, "share of the training data held out for validation",
                          low=0, high=1, low_open=True, high_open=True, group=DATA)
AUGMENT = Option("augment", None, "none, standard (crop+flip), cutout, or a comma-separated list of "
                 "crop,flip,cutout,color", validate=_augment, group=DATA,
                 expected=f"one of {sorted(AUGMENT_PRESETS)} or a comma-separated list of {list(AUGMENTATIONS)}")
SKIP_UNREADABLE = Option("skip_unreadable_images", False, "image folder: leave out files that do not decode "
                         "as images (each is named) instead of stopping", group=DATA)
SEED = Option("seed", 0, "seeds the data splits, shuffling, augmentation and initialisation", low=0,
              high=2**31 - 1, group=DATA)

OUT = Option("out", None, "results folder (default runs/<method>)", validate=_nonempty, group=FOLDER,
             resume_free=True)
OVERWRITE = Option("overwrite", False, "start afresh: delete what keras_nas wrote in --out (never other files) "
                   "instead of resuming", group=FOLDER, resume_free=True)
VERBOSE = Option("verbose", None, "Keras progress output: 0 none, 1 progress bar, 2 a line per epoch "
                 "(default: 1 on a terminal, 2 otherwise)", type=int, choices=(0, 1, 2), group=FOLDER,
                 resume_free=True)

CHIEF = Option("chief", None, "address HOST:PORT of the KerasTuner chief (sets KERASTUNER_ORACLE_IP/PORT)",
               validate=lambda name, value: chief_address(name, value), group=RUNTIME, metavar="HOST:PORT",
               resume_free=True)
WORKER_ID = Option("worker_id", None, "'chief' to run the chief, any other name for a worker (sets "
                   "KERASTUNER_TUNER_ID)", validate=_nonempty, group=RUNTIME, resume_free=True)
STRATEGY = Option("strategy", "default", "mirrored: train each model on all local GPUs "
                  "(tf.distribute.MirroredStrategy)", choices=("default", "mirrored"), group=RUNTIME)
MIXED_PRECISION = Option("mixed_precision", False, "float16 compute with float32 variables (GPUs with tensor "
                         "cores)", group=RUNTIME)
JIT_COMPILE = Option("jit_compile", False, "compile train steps with XLA", group=RUNTIME)
MAX_FAILURES = Option("max_failures", 3, "stop after this many failed trials in a row (NaN loss, build error); a "
                      "failed trial's reason is kept in results.json", low=1, group=RUNTIME, resume_free=True)
LEASE_SECONDS = Option("lease_seconds", 300.0, "a running trial whose worker sent no heartbeat for this long goes "
                       "to another worker", low=0, low_open=True, group=RUNTIME, resume_free=True)

DATA_OPTIONS = (DATASET, DATA_DIR, IMAGE_SIZE, CHANNELS, BATCH_SIZE, VALIDATION_SPLIT, AUGMENT, SKIP_UNREADABLE,
                SEED)
FOLDER_OPTIONS = (OUT, OVERWRITE, VERBOSE)
DETERMINISTIC = Option("deterministic", False, "reproducible runs: TensorFlow's deterministic ops "
                       "(tf.config.experimental.enable_op_determinism) and every random generator seeded from "
                       "--seed; slower where an op has no fast deterministic kernel", group=RUNTIME)
RUNTIME_OPTIONS = (CHIEF, WORKER_ID, STRATEGY, MIXED_PRECISION, JIT_COMPILE, DETERMINISTIC, MAX_FAILURES,
                   LEASE_SECONDS)
SEARCH_OPTIONS = DATA_OPTIONS + FOLDER_OPTIONS + RUNTIME_OPTIONS


def chief_address(name, value):
    """'10.0.0.1:8000' -> ('10.0.0.1', '8000')-shaped check; returns the text."""
    if not isinstance(value, str):
        raise OptionTypeError(f"`{name}` must be HOST:PORT.", **{name: value})
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError(f"`{name}` must be HOST:PORT with a port in [1, 65535].", **{name: value})
    return value


def check_runtime(values):
    """Checks the runtime options against each other (`--chief` needs `--worker-id`, ...)."""
    chief, worker_id = values.get("chief"), values.get("worker_id")
    if chief is not None and not worker_id:
        raise OptionError("`worker_id` is required with `chief` ('chief' for the chief process).",
                          chief=chief, worker_id=worker_id)
    if chief is None and worker_id:
        raise OptionError("`worker_id` needs `chief` (HOST:PORT).", worker_id=worker_id)
    if worker_id and worker_id != "chief" and values.get("overwrite"):
        raise OptionError("`overwrite` is the chief's to pass: a worker never deletes the shared results folder.",
                          overwrite=True, worker_id=worker_id)


def refuse_unused(args, reasons):
    """`OptionError` for a setting given a value other than its default where the method does not use it.

    `reasons` maps option names to why they mean nothing for this method, so
    no option is accepted and then silently ignored.
    """
    defaults = {o.name: o.default for o in SEARCH_OPTIONS}
    for name, reason in reasons.items():
        value = getattr(args, name, defaults[name])
        if value != defaults[name]:
            raise OptionError(f"`{name}` does not apply here: {reason}", names=tuple(re.findall(r"`(\w+)`", reason)),
                              **{name: value})
