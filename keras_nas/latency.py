"""Measured latency tables: what each block of a search space costs on this machine, and their sum for a model.

A table is JSON, measured once per machine, runtime and input size:

```
{"space": "resnet", "device": {"platform", "cpu", "cpu_count"}, "runtime": "tflite", "threads": 1,
 "versions": {"tensorflow", "keras", "keras_nas"}, "created": ISO 8601 UTC time,
 "config": {"image_size": 32, "channels": 3, "num_classes": 10, ...}, "runs": 30, "warmup": 5,
 "instances": 5, "overhead_ms": 0.012, "entries": {key: median_ms}}
```

(A resnet table also has `memory`, its memory term: `fit_memory_term`.)

A key names a block kind and the shapes and settings that fix its cost,
e.g. `resnet/basic|in=32x32x16|filters=16|stride=1|shortcut=padding` or
`epnas/conv|type=conv2d|k=3|in=8x8x16|out=32`. Each entry is measured as a
tiny Keras model holding only that block, at batch 1: the `tf` runtime calls a
compiled `tf.function` (`threads` intra-op threads), the `tflite` runtime
converts it to TFLite builtin ops and calls `tf.lite.Interpreter.invoke` with
`num_threads=threads`; `warmup` calls, then the median of `runs` timed calls
(for tflite spread over `instances` interpreters, each warmed up).

Fixed overhead: every measured model pays a per-call cost that does not
depend on its blocks (the function or interpreter call, fetching the
output). It is measured once on an identity model at the network's input
shape and stored as `overhead_ms`; each entry stores its block's median
*minus* that overhead (at least 0), and `predict_latency` adds the overhead
once: `predicted = overhead_ms + sum(entries[key] for each block)`.

Spaces supported now: `resnet` (stage-wise ResNets,
`keras_nas.stagewise.resnet`, of basic blocks or, with the setting
`block="bottleneck"`, of bottleneck blocks behind the 7x7/pool stem: stem,
one entry per block stage/stride/filters/input shape, classifier head),
`epnas` (EPNAS layer-by-layer search, `keras_nas.epnas.space`, Table 2: one entry per conv
(+ batch norm), activation, pooling, 1x1 alignment conv and add at every
shape the space can produce, and the head), `darts` (the CIFAR evaluation
network EoiNAS, GDAS and DARTS derive, `keras_nas.eoinas.darts.eval_network`:
every candidate op at every cell shape and stride, the cells'
pre-processing, node sums and concatenations, stem and head; the auxiliary
head is left out, it does not run when the model serves) and `nasnet`
(stage-wise NASNet-A cells, `keras_nas.stagewise.nasnet`, stage-wise
`--module cell`: stem, one entry per normal or reduction cell at every
shape of its two inputs and its filters a network of 1 or more cells per
stage gives it, e.g. `nasnet/normal|ip=4x4x96|p=4x4x64|filters=16`, and the
head; a cell reading two tensors is measured as a model of two inputs).
`cnas` (CNAS sparse networks, `keras_nas.cnas.channel_nasnet` or, with the
setting `cnas_space="densenet-bc"`, `keras_nas.cnas.densenet_bc`, with a
selection) is fitted rather than enumerated: an edge may keep any subset of
its input channels, so its entries are latencies per unit of a few counts
of a network's layers (`keras_nas.cnas.latency_model`), fitted to measured
random sparse networks, and `predicted = overhead_ms + sum(entries[key] *
count[key])`. So is `epnas-module` (EPNAS module search, Table 3,
`keras_nas.epnas.latency_model`): a branch may read any earlier branch, of
many widths. Another space plugs in by adding a `_Space` to `SPACES`
(`entries` enumerates its keys with a builder each, `layer_key` names the
key a built model's layer stands for; or `fit` and `model_counts`).
"""

import datetime
import gc
import math
import os
import platform
import re
import statistics
import time

import numpy as np

ALL_SPACES = ("resnet", "nasnet", "darts", "epnas", "epnas-module", "cnas")
RUNTIMES = ("tf", "tflite")
TABLE_FIELDS = ("space", "device", "runtime", "threads", "versions", "created", "config", "overhead_ms", "entries")


def key(kind, **fields):
    """`'kind|a=1|b=2'`: a table key from a block kind and its fields (in the order given).

    Example:

    >>> key("resnet/head", **{"in": "8x8x64", "classes": 10})
    'resnet/head|in=8x8x64|classes=10'
    """
    return "|".join([kind] + [f"{name}={value}" for name, value in fields.items()])


def shape_text(shape):
    """`(8, 8, 16)` (or a Keras shape with a batch None) -> `'8x8x16'`."""
    dims = [int(d) for d in tuple(shape) if d is not None]
    return "x".join(str(d) for d in dims)


def _halve(size):
    return math.ceil(size / 2)  # stride 2, padding "same"


# -- measuring ------------------------------------------------------------


def _set_tf_threads(threads):
    import tensorflow as tf

    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    if current == (threads, threads):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        raise RuntimeError(f"TensorFlow's thread pools are already set up with {current[0]} threads, "
                           f"not {threads}; measure the tf runtime in a fresh process.") from None


def tflite_model_bytes(model):
    """The model as a TFLite flatbuffer (builtin ops, float32), no preprocessing or serving outputs around it.

    Converted as `keras_nas.export` converts (through a SavedModel of the
    model's call; BatchNormalization folded by the converter), so a block's
    entry and a whole network see the same conversion. A model with several
    inputs (a cell entry reading two tensors) gets one batch-1 input each.
    """
    import shutil
    import tempfile

    import tensorflow as tf

    from keras_nas import export

    # One batch-1 spec per input: a network has one, a two-input cell entry (nasnet space) two.
    specs = [tf.TensorSpec((1,) + tuple(t.shape[1:]), tf.float32, name="images" if i == 0 else f"images_{i}")
             for i, t in enumerate(model.inputs)]
    folder = tempfile.mkdtemp(prefix="keras_nas-latency-")
    try:
        export._write_archive(model, lambda *x: model(_one_or_list(x), training=False), specs, folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        with export._quiet_native_stderr():
            return converter.convert()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _one_or_list(tensors):
    return tensors[0] if len(tensors) == 1 else list(tensors)


def _random_inputs(shapes):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(tuple(int(d) for d in shape)).astype("float32") for shape in shapes]


def _timed_ms(call, runs, warmup):
    """`runs` times (ms) of `call()` after `warmup` calls, with Python's garbage collector kept out.

    As `timeit` does: a collection left over from building and converting
    the model (a search makes many objects) would otherwise land in the
    timed calls, adding up to 25-85% to some medians of a 40 us model.
    """
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(warmup):
            call()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000.0)
    finally:
        if enabled:
            gc.enable()
    return times


def _median_ms(call, runs, warmup):
    return float(statistics.median(_timed_ms(call, runs, warmup)))


def measure_model(model, *, runtime="tflite", threads=1, runs=30, warmup=5, instances=5):
    """Median latency (ms) of one batch-1 call of `model` with `runtime`: what one table entry measures.

    With the `tflite` runtime the timed calls are spread over `instances`
    interpreters (each warmed up with `warmup` calls) and the median is
    taken over all of them: one interpreter of a small model runs ~20%
    slower than the others now and then, for its whole life (where its
    buffers land), which a single interpreter would report as the model's
    latency (figures: benchmarks/RESULTS.md, "Latency tables").

    Args:
        model: a Keras model whose inputs have known shapes (a network has
            one; a cell entry can have two). Each input gets its own
            seeded random tensor, which the timed calls do not include.
        runtime: str. `"tf"` (a compiled `tf.function`) or `"tflite"`
            (TFLite interpreter). Defaults to `"tflite"`.
        threads: int. Intra-op threads (tf) or interpreter `num_threads`.
            Defaults to `1`.
        runs: int. Timed calls in all. Defaults to `30`.
        warmup: int. Untimed calls first (per interpreter). Defaults to `5`.
        instances: int. TFLite interpreters the timed calls are spread
            over (at most `runs`; the `tf` runtime uses one function).
            Defaults to `5`.

    Example:

    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    >>> measure_model(model, runtime="tflite", runs=5) > 0
    True
    """
    import tensorflow as tf

    _check_measuring(runtime, threads, runs, warmup, instances)
    if runtime == "tf":
        _set_tf_threads(threads)
        fn = tf.function(lambda *t: model(_one_or_list(t), training=False))
        x = [tf.constant(a) for a in _random_inputs((1,) + tuple(t.shape[1:]) for t in model.inputs)]
        return _median_ms(lambda: fn(*x).numpy(), runs, warmup)
    return _measure_tflite(tflite_model_bytes(model), threads, runs, warmup, instances)


def _measure_tflite(content, threads, runs, warmup, instances=1):
    import warnings

    import tensorflow as tf

    from keras_nas import export

    instances = min(instances, runs)
    times = []
    for i in range(instances):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            with export._quiet_native_stderr():
                interpreter = tf.lite.Interpreter(model_content=content, num_threads=threads)
                interpreter.allocate_tensors()
                # Random data of each input's own shape: the interpreter's input order need not be the model's.
                details = interpreter.get_input_details()
                for detail, x in zip(details, _random_inputs(d["shape"] for d in details)):
                    interpreter.set_tensor(detail["index"], x)
                interpreter.invoke()  # the XNNPACK line comes at the first call
        times += _timed_ms(interpreter.invoke, runs // instances + (i < runs % instances), warmup)
        del interpreter
    return float(statistics.median(times))


def _check_measuring(runtime, threads, runs, warmup, instances=1):
    if runtime not in RUNTIMES:
        raise ValueError(f"`runtime` must be one of {list(RUNTIMES)}. Received: runtime={runtime!r}")
    for name, value, low in (("threads", threads, 1), ("runs", runs, 1), ("warmup", warmup, 0),
                             ("instances", instances, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")


# -- spaces -----------------------------------------------------------------


def _layer_input_shape(layer):
    inputs = layer.input
    if isinstance(inputs, (list, tuple)):
        inputs = inputs[0]
    return tuple(inputs.shape[1:])


class _Space:
    """What a table needs of a search space: its keys (with a builder each) and a model's layers -> keys."""

    name = None

    def entries(self, image_size, channels, num_classes, **settings):
        """`{key: build()}` for every block the space can produce at this input size."""
        raise NotImplementedError

    def layer_key(self, layer):
        """The key `layer` stands for, None if it belongs to another layer's block; ValueError if foreign."""
        raise NotImplementedError

    def resolved(self, settings):
        """The settings as the table's config records them (a space resolves its automatic ones here)."""
        return settings


class _ResNetSpace(_Space):
    """Stage-wise ResNets (`keras_nas.stagewise.resnet.stage_resnet`) of one block family.

    `block="basic"` (the CIFAR family): 3x3 stem, basic blocks with padding
    shortcuts, widths 16/32/64 doubling after. `block="bottleneck"` (the
    ImageNet family, `--block bottleneck`): one stem entry for the 7x7
    stride-2 conv + BN + ReLU + 3x3 stride-2 max pooling, bottleneck blocks
    (1x1, 3x3, 1x1 x4) of widths 64/128/256/512 doubling after, with
    projection shortcuts (`stage_resnet`'s default for them) where the shape
    changes, which includes stage 0's first block (64 -> 256 channels at
    stride 1); a block that keeps its shape has an identity shortcut, keyed
    `shortcut=identity`.

    Each block is timed alone, its weights in cache. Inside a network whose
    weights outgrow the cache a block reads them from slower memory: at small
    inputs the last bottleneck stages run at 1x1-2x2 with 1024-2048
    channels, bound by reading their megabytes of weights, and the sum of
    the entries alone comes out low (though in order). So the table also
    holds a memory term (`fit_memory_term`), fitted to `calibration`
    networks measured end to end (depth 1 in every stage, depth 6 in every
    stage, then random depths 1..6 seeded by `seed`); `calibration=0`
    leaves it out. A network deeper than 6 blocks a stage is priced by the
    term fitted up to depth 6 (figures: benchmarks/RESULTS.md, "Latency
    tables").
    """

    name = "resnet"
    SETTINGS = {"stages": 3, "block": "basic", "calibration": 6, "seed": 0}
    # Depths of the calibration networks: 1..6 blocks per stage, the range benchmarks/bench_latency.py tests.
    CALIBRATION_DEPTHS = (1, 6)

    def entries(self, image_size, channels, num_classes, stages=3, block="basic", calibration=6, seed=0):
        from keras_nas.stagewise import resnet

        for name, value in (("calibration", calibration), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={value!r}")
        if calibration == 1:
            raise ValueError("`calibration` must be 0 (no memory term) or >= 2 networks (one cannot tell a slope "
                             "from noise). Received: calibration=1")
        if block not in resnet.BLOCKS:
            raise ValueError(f"`block` must be one of {list(resnet.BLOCKS)}. Received: block={block!r}")
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise ValueError(f"`stages` must be an int >= 1. Received: stages={stages!r}")
        bottleneck = block == "bottleneck"
        widths = resnet.default_widths(stages, block)
        expansion = resnet._EXPANSION if bottleneck else 1
        stem_in = (image_size, image_size, channels)
        table = {self._stem_key(stem_in, widths[0], bottleneck): (self._bottleneck_stem if bottleneck else self._stem,
                                                                  stem_in, widths[0])}
        # The 7x7 stride-2 conv, then the stride-2 max pooling.
        size = _halve(_halve(image_size)) if bottleneck else image_size
        previous = widths[0]  # channels into the first block: the stem's
        for s, filters in enumerate(widths):
            stride = 2 if s else 1
            first = (size, size, previous)
            if s:
                size = _halve(size)
            for shape, block_stride in ((first, stride), ((size, size, filters * expansion), 1)):
                shortcut = "padding"
                if bottleneck:
                    changes = block_stride > 1 or shape[-1] != filters * expansion
                    shortcut = "projection" if changes else "identity"
                build = self._bottleneck_block if bottleneck else self._block
                table[self._block_key(shape, filters, block_stride, shortcut, block)] = (build, shape, filters,
                                                                                         block_stride)
            previous = filters * expansion
        head_in = (size, size, previous)
        table[key("resnet/head", **{"in": shape_text(head_in)}, classes=num_classes)] = (self._head, head_in,
                                                                                         num_classes)
        return {k: _bind(*v) for k, v in table.items()}

    @staticmethod
    def _stem_key(shape, filters, bottleneck=False):
        if bottleneck:
            return key("resnet/stem", **{"in": shape_text(shape)}, filters=filters, kernel=7, stride=2, pool=3)
        return key("resnet/stem", **{"in": shape_text(shape)}, filters=filters)

    @staticmethod
    def _block_key(shape, filters, stride, shortcut, block="basic"):
        return key(f"resnet/{block}", **{"in": shape_text(shape)}, filters=filters, stride=stride,
                   shortcut=shortcut)

    @staticmethod
    def _stem(shape, filters):
        import keras

        from keras_nas.stagewise import resnet

        inputs = keras.Input(shape)
        x = resnet._conv(filters, 3, 1, "stem_conv", None)(inputs)
        x = resnet._bn("stem_bn")(x)
        return keras.Model(inputs, keras.layers.ReLU(name="stem_relu")(x))

    @staticmethod
    def _bottleneck_stem(shape, filters):
        import keras

        from keras_nas.stagewise import resnet

        # The layers stage_resnet(block="bottleneck") builds before its first block.
        inputs = keras.Input(shape)
        x = resnet._conv(filters, 7, 2, "stem_conv", None)(inputs)
        x = resnet._bn("stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        return keras.Model(inputs, keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x))

    @staticmethod
    def _block(shape, filters, stride):
        import keras

        from keras_nas.stagewise import resnet

        inputs = keras.Input(shape)
        return keras.Model(inputs, resnet.apply_basic_block(inputs, filters, stride, "padding", None, "block"))

    @staticmethod
    def _bottleneck_block(shape, filters, stride):
        import keras

        from keras_nas.stagewise import resnet

        inputs = keras.Input(shape)
        return keras.Model(inputs, resnet.apply_bottleneck_block(inputs, filters, stride, "projection", None,
                                                                 "block"))

    @staticmethod
    def _head(shape, num_classes):
        import keras

        inputs = keras.Input(shape)
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    def layer_key(self, layer):
        name = layer.name
        if name == "stem_conv":
            bottleneck = tuple(layer.kernel_size) != (3, 3)
            if bottleneck and (tuple(layer.kernel_size) != (7, 7) or layer.strides[0] != 2 or
                               "stem_pool" not in self._layers):
                raise ValueError(f"layer {name!r} is not a stage-wise ResNet stem (3x3, or 7x7 stride 2 with "
                                 "stem_pool).")
            return self._stem_key(_layer_input_shape(layer), layer.filters, bottleneck)
        match = re.fullmatch(r"(stage\d+_block\d+)_(\w+)", name)
        if match:
            role = match.group(2)
            if role == "conv1":
                block = "basic" if tuple(layer.kernel_size) == (3, 3) else "bottleneck"
                projection = self._has(layer, f"{match.group(1)}_shortcut_conv")
                if block == "basic":
                    shortcut = "projection" if projection else "padding"
                elif projection:
                    shortcut = "projection"
                elif not self._padded(match.group(1)):
                    shortcut = "identity"
                else:
                    raise ValueError(f"the resnet latency tables cover bottleneck blocks with projection shortcuts "
                                     f"(stage_resnet's default for them); block {match.group(1)!r} has a padding "
                                     "shortcut.")
                return self._block_key(_layer_input_shape(layer), layer.filters, layer.strides[0], shortcut, block)
            return None
        if name == "head_pool":
            return None
        if name == "predictions":
            return key("resnet/head", **{"in": shape_text(self._head_input)}, classes=layer.units)
        if name.startswith("stem_"):
            return None
        raise ValueError(f"layer {name!r} is not part of a stage-wise ResNet (stem_*, stage<s>_block<b>_*, "
                         "head_pool, predictions).")

    def model_keys(self, model):
        self._layers = {layer.name for layer in model.layers}
        self._head_input = _layer_input_shape(model.get_layer("head_pool")) if "head_pool" in self._layers else ()
        return _walk(self, model)

    def calibration_networks(self, image_size, channels, num_classes, stages=3, block="basic", calibration=6,
                             seed=0):
        """`calibration` networks of the space, of seeded random depths, to fit the memory term to."""
        from keras_nas.stagewise import resnet

        # A stream of its own (seed + 1000): benchmarks/bench_latency.py tests the table on networks drawn from
        # `default_rng(seed)`, so the table is not tested on the networks it was fitted to.
        rng = np.random.default_rng(seed + 1000)
        low, high = self.CALIBRATION_DEPTHS
        for i in range(calibration):
            # The smallest and the largest network first: the term's start (the cache size) and slope need both
            # ends of the space's range of weights.
            depths = (low,) * stages if i == 0 else (high,) * stages if i == 1 else tuple(
                int(d) for d in rng.integers(low, high + 1, size=stages))
            yield resnet.stage_resnet(depths, block=block, input_shape=(image_size, image_size, channels),
                                      num_classes=num_classes)

    def _has(self, layer, name):
        return name in self._layers

    def _padded(self, block):
        return any(f"{block}_shortcut_{part}" in self._layers for part in ("subsample", "pad", "expand"))


class _EPNASSpace(_Space):
    """EPNAS layer-by-layer search (Table 2): ops keyed by kind and shape (see the module doc)."""

    name = "epnas"
    SETTINGS = {"channel_table": None}

    def entries(self, image_size, channels, num_classes, channel_table=None):
        from keras_nas.epnas import space as epnas

        sizes = [image_size]
        while sizes[-1] > 1:
            sizes.append(_halve(sizes[-1]))
        table_channels = tuple(channel_table or epnas.LAYER_CHANNELS)  # the search's --channel-table
        node_channels = sorted({channels, *table_channels})
        conv_widths = sorted({*table_channels, *(c // 2 for c in table_channels)})
        table = {}
        for size in sizes:
            for c in node_channels:
                shape = (size, size, c)
                for kind in ("conv2d", "dep-sep-conv2d"):
                    for k in epnas.FILTER_WIDTHS:
                        for out in conv_widths:
                            table[self._conv_key(kind, k, shape, out)] = (self._conv, shape, kind, k, out)
                for kind in ("MaxPool2d", "AvgPool2d"):
                    for p in epnas.POOL_WIDTHS:
                        table[self._pool_key(kind, p, shape)] = (self._pool, shape, kind, p)
                table[key("epnas/add", **{"in": shape_text(shape)})] = (self._add, shape)
                # Keyed by output shape, not stride: past 1x1 the space's levels keep counting, the shape not.
                for level, target in enumerate(sizes[sizes.index(size):]):
                    for out in node_channels:
                        table[self._align_key(shape, (target, target, out))] = (self._align, shape, out, 2**level)
            for c in conv_widths:
                shape = (size, size, c)
                for activation in epnas.ACTIVATIONS:
                    table[self._act_key(activation, shape)] = (self._act, shape, activation)
            for c in node_channels:
                table[self._head_key((size, size, c), num_classes)] = (self._head, (size, size, c), num_classes)
        return {k: _bind(*v) for k, v in table.items()}

    # Keys
    @staticmethod
    def _conv_key(kind, k, shape, out):
        return key("epnas/conv", type=kind, k=k, **{"in": shape_text(shape)}, out=out)

    @staticmethod
    def _pool_key(kind, p, shape):
        return key("epnas/pool", type=kind, p=p, **{"in": shape_text(shape)})

    @staticmethod
    def _align_key(shape, out_shape):
        return key("epnas/align", **{"in": shape_text(shape)}, out=shape_text(out_shape))

    @staticmethod
    def _act_key(activation, shape):
        return key("epnas/act", act=activation, **{"in": shape_text(shape)})

    @staticmethod
    def _head_key(shape, num_classes):
        return key("epnas/head", **{"in": shape_text(shape)}, classes=num_classes)

    # Builders: the same layers as keras_nas.epnas.space builds.
    @staticmethod
    def _conv(shape, kind, k, out):
        import keras

        from keras_nas.epnas import space as epnas

        conv = keras.layers.Conv2D if kind == "conv2d" else keras.layers.SeparableConv2D
        inputs = keras.Input(shape)
        x = conv(out, k, padding="same", use_bias=False)(inputs)
        return keras.Model(inputs, epnas._bn(name="bn")(x))

    @staticmethod
    def _pool(shape, kind, p):
        import keras

        pool = keras.layers.MaxPooling2D if kind == "MaxPool2d" else keras.layers.AveragePooling2D
        inputs = keras.Input(shape)
        return keras.Model(inputs, pool(p, strides=2, padding="same")(inputs))

    @staticmethod
    def _add(shape):
        import keras

        inputs = keras.Input(shape)
        # The second operand is another node of the network: a constant-free stand-in of the same shape.
        return keras.Model(inputs, keras.layers.Add()([inputs, keras.layers.Identity()(inputs)]))

    @staticmethod
    def _align(shape, out, stride):
        import keras

        inputs = keras.Input(shape)
        return keras.Model(inputs, keras.layers.Conv2D(out, 1, strides=stride, padding="same", use_bias=False)(inputs))

    @staticmethod
    def _act(shape, activation):
        import keras

        from keras_nas.epnas import space as epnas

        inputs = keras.Input(shape)
        return keras.Model(inputs, epnas._activation(inputs, activation, "act"))

    @staticmethod
    def _head(shape, num_classes):
        return _ResNetSpace._head(shape, num_classes)

    def layer_key(self, layer):
        name = layer.name
        if name in ("pool",):
            return None
        if name == "predictions":
            return self._head_key(self._head_input, layer.units)
        match = re.fullmatch(r"L\d+_([\w-]+?)__(\w+)", name)
        if not match:
            if name.startswith(("stem__", "reduce")) or re.match(r"C\d+_", name):
                raise ValueError(f"this model is an EPNAS module (cell) search network (layer {name!r}): its table is "
                                 "one of the epnas-module space (`keras-nas latency-table --space epnas-module`).")
            raise ValueError(f"layer {name!r} is not part of an EPNAS layer-by-layer network (L<i>_<type>__*, "
                             "pool, predictions).")
        kind, role = match.groups()
        shape = _layer_input_shape(layer)
        if role == "conv":
            return self._conv_key(kind, layer.kernel_size[0], shape, layer.filters)
        if role == "pool":
            return self._pool_key(kind, layer.pool_size[0], shape)
        if role in ("proj", "skip"):
            return self._align_key(shape, tuple(layer.output.shape[1:]))
        if role == "add":
            return key("epnas/add", **{"in": shape_text(shape)})
        if role == "act_crelu":
            return self._act_key("crelu", shape)
        act = re.fullmatch(r"act_(relu|elu|selu|swish)", role)
        if act:
            return self._act_key(act.group(1), shape)
        if role in ("bn", "identity", "act_neg", "act_pos_relu", "act_neg_relu"):
            return None
        raise ValueError(f"layer {name!r} is not part of an EPNAS layer-by-layer network (unknown role {role!r}).")

    def model_keys(self, model):
        names = {layer.name for layer in model.layers}
        self._head_input = _layer_input_shape(model.get_layer("pool")) if "pool" in names else ()
        return _walk(self, model)


def darts_cells(image_size, channels, cells, init_channels, steps=4, multiplier=4, stem_multiplier=3):
    """The shapes of DARTS' CIFAR evaluation network (`keras_nas.eoinas.darts.eval_network`), cell by cell.

    Pure arithmetic, nothing is built. Returns `(stem, cells, head)`:
    `stem` = `(input shape, stem filters)`; each cell a dict with
    `reduction`, `C`, `pre0` (`("relu_conv_bn" | "factorized_reduce",
    input shape)`), `pre1` (input shape), `size_in` (the pre-processed
    states' height/width) and `size` (the cell's output height/width);
    `head` = the shape global pooling reads.

    Example:

    >>> stem, cells, head = darts_cells(8, 1, cells=5, init_channels=16)
    >>> [c["reduction"] for c in cells], head
    ([False, True, False, True, False], (2, 2, 256))
    """
    size = image_size
    stem = ((size, size, channels), stem_multiplier * init_channels)
    s0 = s1 = (size, size, stem_multiplier * init_channels)
    reductions = (cells // 3, 2 * cells // 3)  # BilevelSearchModel.reduction_indices
    c_curr, reduction_prev, out = init_channels, False, []
    for i in range(cells):
        reduction = i in reductions
        if reduction:
            c_curr *= 2
        size_in = s1[0]
        size_out = _halve(size_in) if reduction else size_in
        out.append({"reduction": reduction, "C": c_curr, "size_in": size_in, "size": size_out,
                    "pre0": ("factorized_reduce" if reduction_prev else "relu_conv_bn", s0), "pre1": s1})
        s0, s1 = s1, (size_out, size_out, multiplier * c_curr)
        reduction_prev = reduction
    return stem, out, s1


def darts_op_key(op, shape, stride):
    """The key of one DARTS candidate op on an edge: `darts/op|op=sep_conv_3x3|in=8x8x16|stride=1`."""
    return key("darts/op", op=op, **{"in": shape_text(shape)}, stride=stride)


def darts_edges(cell, steps=4):
    """`[(edge, source, input shape, stride), ...]` of one cell of `darts_cells`, in the supernet's edge order."""
    edges, k = [], 0
    for i in range(steps):
        for j in range(i + 2):
            stride = 2 if cell["reduction"] and j < 2 else 1
            size = cell["size_in"] if stride == 2 else cell["size"]
            edges.append((k, j, (size, size, cell["C"]), stride))
            k += 1
    return edges


class _DARTSSpace(_Space):
    """DARTS' CIFAR evaluation network (`eval_network`, the network EoiNAS/GDAS/DARTS derive and train).

    One entry per candidate op at every cell shape and stride, per
    pre-processing layer, per node sum and cell concatenation, the stem and
    the head. `cells` and `init_channels` are the evaluation network's
    (`keras-nas search eoinas --eval-cells --eval-channels`).
    """

    name = "darts"
    SETTINGS = {"cells": 5, "init_channels": 16}
    STEPS, MULTIPLIER = 4, 4

    def entries(self, image_size, channels, num_classes, cells=5, init_channels=16):
        from keras_nas.eoinas.genotypes import PRIMITIVES

        stem, cell_list, head = darts_cells(image_size, channels, cells, init_channels, self.STEPS, self.MULTIPLIER)
        table = {self._stem_key(*stem): (self._stem, *stem)}
        for cell in cell_list:
            c = cell["C"]
            kind, shape = cell["pre0"]
            table[self._pre_key(kind, shape, c)] = (self._pre, kind, shape, c)
            table[self._pre_key("relu_conv_bn", cell["pre1"], c)] = (self._pre, "relu_conv_bn", cell["pre1"], c)
            for _, _, shape, stride in darts_edges(cell, self.STEPS):
                for op in PRIMITIVES:
                    if op != "none":  # never in a derived cell
                        table[darts_op_key(op, shape, stride)] = (self._op, op, shape, stride)
            out = (cell["size"], cell["size"], c)
            table[key("darts/add", **{"in": shape_text(out)})] = (self._add, out)
            table[self._concat_key(out, self.MULTIPLIER)] = (self._concat, out, self.MULTIPLIER)
        table[key("darts/head", **{"in": shape_text(head)}, classes=num_classes)] = (_ResNetSpace._head, head,
                                                                                     num_classes)
        return {k: _bind(*v) for k, v in table.items()}

    @staticmethod
    def _stem_key(shape, filters):
        return key("darts/stem", **{"in": shape_text(shape)}, filters=filters)

    @staticmethod
    def _pre_key(kind, shape, out):
        return key("darts/pre", type=kind, **{"in": shape_text(shape)}, out=out)

    @staticmethod
    def _concat_key(shape, n):
        return key("darts/concat", **{"in": shape_text(shape)}, n=n)

    @staticmethod
    def _stem(shape, filters):
        import keras

        from keras_nas.eoinas import darts_ops

        inputs = keras.Input(shape)
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(inputs)
        return keras.Model(inputs, darts_ops.batch_norm(True, "bn")(x))

    @staticmethod
    def _pre(kind, shape, out):
        import keras

        from keras_nas.eoinas import darts_ops
        from keras_nas.layers.factorized_reduce import FactorizedReduce

        inputs = keras.Input(shape)
        layer = FactorizedReduce(out) if kind == "factorized_reduce" else darts_ops.relu_conv_bn(out, 1, 1)
        return keras.Model(inputs, layer(inputs))

    @staticmethod
    def _op(op, shape, stride):
        import keras

        from keras_nas.eoinas import darts_ops

        inputs = keras.Input(shape)
        return keras.Model(inputs, darts_ops.make_op(op, shape[-1], stride, affine=True)(inputs))

    @staticmethod
    def _add(shape):
        return _EPNASSpace._add(shape)

    @staticmethod
    def _concat(shape, n):
        import keras

        inputs = keras.Input(shape)
        # Stand-ins for the cell's other node outputs, of the same shape.
        parts = [inputs] + [keras.layers.Identity()(inputs) for _ in range(n - 1)]
        return keras.Model(inputs, keras.layers.Concatenate()(parts))

    def layer_key(self, layer):
        name = layer.name
        if name.startswith("stem0_") or name.startswith("stem1_"):
            raise ValueError("the darts latency tables cover the CIFAR evaluation network only; this model has "
                             "the ImageNet stems (stem0_*, stem1_*).")
        if name == "stem_conv":
            return self._stem_key(_layer_input_shape(layer), layer.filters)
        if name in ("stem_bn", "global_pool") or name.startswith("auxiliary"):
            return None  # the auxiliary head does not run when the model serves
        if name in ("predictions", "main_predictions"):
            if not isinstance(getattr(layer, "units", None), int):
                return None  # AuxiliaryTap: passes main_predictions through
            return key("darts/head", **{"in": shape_text(self._head_input)}, classes=layer.units)
        match = re.fullmatch(r"cell_\d+_(preprocess[01]|node\d+|output|node\d+_\d+_(\w+?))(_drop_path)?", name)
        if not match:
            raise ValueError(f"layer {name!r} is not part of a DARTS evaluation network (stem_*, cell_<i>_*, "
                             "global_pool, predictions).")
        part, op, drop_path = match.groups()
        if drop_path:
            return None
        shape = _layer_input_shape(layer)
        if part.startswith("preprocess"):
            from keras_nas.layers.factorized_reduce import FactorizedReduce

            kind = "factorized_reduce" if isinstance(layer, FactorizedReduce) else "relu_conv_bn"
            return self._pre_key(kind, shape, int(layer.output.shape[-1]))
        if part == "output":
            return self._concat_key(shape, len(layer.input))
        if op is None:
            return key("darts/add", **{"in": shape_text(shape)})
        stride = 2 if int(layer.output.shape[1]) < shape[0] else 1
        return darts_op_key(op, shape, stride)

    def model_keys(self, model):
        names = {layer.name for layer in model.layers}
        self._head_input = _layer_input_shape(model.get_layer("global_pool")) if "global_pool" in names else ()
        return _walk(self, model)


def nasnet_cells(image_size, channels, stages=3, filters=8, stem_multiplier=3):
    """Every cell a stage-wise NASNet (`keras_nas.stagewise.stage_nasnet`) of 1 or more cells per stage can hold.

    Pure arithmetic, nothing is built. A cell's cost is fixed by its kind,
    the shapes of its two inputs `ip` (the previous cell's output) and `p`
    (the one before; None for the first cell, which then reads `ip` twice)
    and its filters: `_adjust` brings `p` to `ip`'s size with a factorized
    reduction when their heights differ, else with a 1x1 conv when its
    channels differ from the filters. With `F = filters`, stage `s` has
    `f = F * 2**s` filters and normal cells output `6f` channels, reduction
    cells `4f`, the stem `stem_multiplier * F`. Per stage there are three
    normal cases (cell 0 after the stem or a reduction, cell 1 whose `p` is
    cell 0's input, cell 2 on) and, before stage `s > 0`, two reduction
    cases (the stage before had one cell, so `p` is that cell's input; or
    more than one).

    Returns `(stem, cells, head)`: `stem` = `(input shape, stem filters)`;
    `cells` a list of `(kind, ip shape, p shape or None, filters)` with
    `kind` `"normal"` or `"reduce"`, repeats possible; `head` the shape the
    head's ReLU reads (the last stage's normal output).

    Example:

    >>> stem, cells, head = nasnet_cells(8, 1, stages=2, filters=8)
    >>> stem, cells[0], head
    (((8, 8, 1), 24), ('normal', (8, 8, 24), None, 8), (4, 4, 96))
    """
    size = image_size
    cells = []
    first_ip, first_p = (size, size, stem_multiplier * filters), None  # stage 0's first cell reads the stem
    for s in range(stages):
        f = filters * 2**s
        if s:
            last = (size, size, 6 * filters * 2 ** (s - 1))  # the previous stage's normal output
            # p: the input of the previous stage's last cell: its first cell's (one cell) or a normal output.
            cells += [("reduce", last, first_ip, f), ("reduce", last, last, f)]
            size = _halve(size)
            first_ip, first_p = (size, size, 4 * f), last
        out = (size, size, 6 * f)
        cells += [("normal", first_ip, first_p, f), ("normal", out, first_ip, f), ("normal", out, out, f)]
    return ((image_size, image_size, channels), stem_multiplier * filters), cells, out


class _NASNetSpace(_Space):
    """Stage-wise NASNet-A networks (`stage_nasnet`, stage-wise `--module cell`): one entry per cell.

    A cell is measured whole, at every `(ip, p, filters)` `nasnet_cells`
    lists, rather than op by op: within a cell the TFLite converter fuses
    the ReLUs into the preceding convs and merges identical ops on one
    tensor (a normal cell pools `p` twice alike and ReLUs it three times),
    which per-op entries would count again. The sum of a network's cell
    entries has the network's TFLite ops but for one ReLU per cell: the
    network computes the ReLU of a cell output once for both cells that
    read it (as `ip`, then as `p`), each entry computes it for itself; at
    the sizes stage-wise runs that is a few microseconds. `stages` and
    `filters` are the search's (`keras-nas search stagewise --stages
    --filters`); the stem multiplier is stage_nasnet's 3.
    """

    name = "nasnet"
    SETTINGS = {"stages": 3, "filters": 8}
    STEM_MULTIPLIER = 3
    # The layers of one NASNet-A cell after its `stage<s>_cell<b>_` / `reduce<s>_` prefix (keras_nas.stagewise.nasnet).
    CELL_ROLE = re.compile(r"(adjust|h)_(relu|conv|bn)|adjust_(pool[12]|conv[12]|shift_pad|shift_crop|concat)"
                           r"|(left|right)\d(_(relu|sep|bn)[12])?|add\d|out")

    def entries(self, image_size, channels, num_classes, stages=3, filters=8):
        stem, cells, head = nasnet_cells(image_size, channels, stages, filters, self.STEM_MULTIPLIER)
        table = {self._stem_key(*stem): (self._stem, *stem)}
        for kind, ip, p, f in cells:
            table[self._cell_key(kind, ip, p, f)] = (self._cell, kind, ip, p, f)
        table[self._head_key(head, num_classes)] = (self._head, head, num_classes)
        return {k: _bind(*v) for k, v in table.items()}

    # Keys
    @staticmethod
    def _stem_key(shape, filters):
        return key("nasnet/stem", **{"in": shape_text(shape)}, filters=filters)

    @staticmethod
    def _cell_key(kind, ip, p, filters):
        return key(f"nasnet/{kind}", ip=shape_text(ip), p="none" if p is None else shape_text(p), filters=filters)

    @staticmethod
    def _head_key(shape, num_classes):
        return key("nasnet/head", **{"in": shape_text(shape)}, classes=num_classes)

    # Builders: the layers stage_nasnet builds (no L2: a penalty does not run when the model serves).
    @staticmethod
    def _stem(shape, filters):
        import keras

        from keras_nas.stagewise import nasnet

        inputs = keras.Input(shape)
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
        return keras.Model(inputs, nasnet._bn("stem_bn")(x))

    @staticmethod
    def _cell(kind, ip, p, filters):
        import keras

        from keras_nas.stagewise import nasnet

        # A cell with two inputs is measured as a model with two inputs (measure_model feeds each its own
        # random tensor) rather than deriving p from ip inside the model: no extra op to subtract, and p's
        # size and channels are free. p None is the first cell, which reads ip twice, as stage_nasnet's does.
        ip_input = keras.Input(ip, name="ip")
        p_input = None if p is None else keras.Input(p, name="p")
        apply = nasnet.apply_reduction_cell if kind == "reduce" else nasnet.apply_normal_cell
        out = apply(ip_input, p_input, filters, None, "cell")
        return keras.Model([ip_input] if p is None else [ip_input, p_input], out)

    @staticmethod
    def _head(shape, num_classes):
        import keras

        inputs = keras.Input(shape)
        x = keras.layers.ReLU(name="head_relu")(inputs)
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x))

    def layer_key(self, layer):
        name = layer.name
        if name == "stem_conv":
            return self._stem_key(_layer_input_shape(layer), layer.filters)
        if name in ("stem_bn", "head_relu", "head_pool"):
            return None
        if name == "predictions":
            return self._head_key(self._head_input, layer.units)
        match = re.fullmatch(r"(stage\d+_cell\d+|reduce\d+)_(\w+)", name)
        if not match or not self.CELL_ROLE.fullmatch(match.group(2)):
            raise ValueError(f"layer {name!r} is not part of a stage-wise NASNet (stem_*, stage<s>_cell<b>_*, "
                             "reduce<s>_*, head_*, predictions).")
        cell, role = match.groups()
        if role != "h_relu":
            return None  # one key per cell, on the ReLU that reads its input ip
        return self._cell_key("reduce" if cell.startswith("reduce") else "normal", tuple(layer.input.shape[1:]),
                              self._p_shape(cell, layer.input), self._layers[f"{cell}_h_conv"].filters)

    def _p_shape(self, cell, ip):
        # p is what the cell's _adjust reads (its ReLU), or with nothing to adjust its first right branch;
        # the very tensor ip is when stage_nasnet passed p None (the first cell).
        reader = self._layers.get(f"{cell}_adjust_relu") or self._layers[f"{cell}_right1_relu1"]
        p = reader.input
        return None if p is ip else tuple(p.shape[1:])

    def model_keys(self, model):
        self._layers = {layer.name: layer for layer in model.layers}
        head = self._layers.get("head_relu")
        self._head_input = _layer_input_shape(head) if head is not None else ()
        return _walk(self, model)


class _CNASSpace(_Space):
    """CNAS sparse networks (`keras-nas search cnas`) of the NASNet-shaped or the DenseNet-BC space.

    Not one entry per block: an edge may keep any subset of its input
    channels. The entries are the latencies per unit of a few counts of
    the network's layers (`keras_nas.cnas.latency_model.FEATURES`: calls
    and multiply-accumulates of the convolutions, slices, concatenations,
    elements moved), fitted by non-negative least squares to `samples`
    sparse networks of random masks (seeded by `seed`) measured end to end;
    `overhead_ms` is the fitted intercept (stem, head, the call itself).
    `cnas_space` is the search's `--space`: `"nasnet"` with its `cells`,
    `nodes`, `ops_per_node`, `init_channels`, or `"densenet-bc"` with its
    `layers_per_block`, `growth_rate` (the other space's settings are
    ignored); `sparse_data_format` is the sparse model's layout
    (`--sparse-data-format`; None is the search's `auto`: channels_first
    for nasnet, channels_last, the only one it has, for densenet-bc). The
    table also records `fit`: the samples and the median error on them.
    """

    name = "cnas"
    SETTINGS = {"cnas_space": "nasnet", "cells": 1, "nodes": 3, "ops_per_node": 2, "init_channels": 8,
                "layers_per_block": 3, "growth_rate": 6, "sparse_data_format": None, "samples": 40, "seed": 0}

    def entries(self, image_size, channels, num_classes, **settings):
        from keras_nas.cnas import latency_model

        self._network(image_size, channels, num_classes, **settings)  # checks the settings
        return {latency_model.feature_key(f): None for f in latency_model.FEATURES}

    def resolved(self, settings):
        """`settings` with the layout resolved (what the table's config records)."""
        return {**settings, "sparse_data_format": self.data_format(settings.get("cnas_space", "nasnet"),
                                                                   settings.get("sparse_data_format"))}

    @staticmethod
    def data_format(cnas_space="nasnet", sparse_data_format=None):
        """The sparse models' layout: `sparse_data_format`, None resolved per space as the search's `auto`."""
        if sparse_data_format is None:
            return "channels_first" if cnas_space == "nasnet" else "channels_last"
        return sparse_data_format

    @classmethod
    def _network(cls, image_size, channels, num_classes, cnas_space="nasnet", cells=1, nodes=3, ops_per_node=2,
                 init_channels=8, layers_per_block=3, growth_rate=6, sparse_data_format=None, samples=40, seed=0):
        """`(builder, keyword arguments, sparse-only keyword arguments)` of the space's networks, checked."""
        from keras_nas.cnas.densenet_space import densenet_bc
        from keras_nas.cnas.nasnet_space import channel_nasnet

        if cnas_space not in ("nasnet", "densenet-bc"):
            raise ValueError(f"`cnas_space` must be one of ['nasnet', 'densenet-bc']. Received: "
                             f"cnas_space={cnas_space!r}")
        for name, value, low in (("samples", samples, 2), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
        layout = cls.data_format(cnas_space, sparse_data_format)
        if layout not in ("channels_first", "channels_last"):
            raise ValueError(f"`sparse_data_format` must be 'channels_first' or 'channels_last'. Received: "
                             f"sparse_data_format={sparse_data_format!r}")
        size = {"num_classes": num_classes, "input_shape": (image_size, image_size, channels)}
        if cnas_space == "densenet-bc":
            if layout != "channels_last":
                raise ValueError("`sparse_data_format` must be 'channels_last' for the densenet-bc space (the only "
                                 f"layout it has). Received: sparse_data_format={sparse_data_format!r}")
            for name, value in (("layers_per_block", layers_per_block), ("growth_rate", growth_rate)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
            return densenet_bc, {"layers_per_block": layers_per_block, "growth_rate": growth_rate, **size}, {}
        for name, value, low in (("cells", cells, 1), ("nodes", nodes, 1), ("ops_per_node", ops_per_node, 1),
                                 ("init_channels", init_channels, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
        if image_size < 4:
            raise ValueError(f"`image_size` must be >= 4 for the 3 stages of the cnas nasnet space. Received: "
                             f"image_size={image_size}")
        if init_channels % ops_per_node or init_channels % 2:
            raise ValueError(f"`init_channels` must be even and divisible by `ops_per_node`. Received: "
                             f"init_channels={init_channels}, ops_per_node={ops_per_node}")
        return channel_nasnet, {"cells_per_stage": cells, "nodes": nodes, "channels": init_channels,
                                "ops_per_node": ops_per_node, **size}, {"data_format": layout}

    def fit(self, image_size, channels, num_classes, measure, progress=None, **settings):
        """`(overhead_ms, entries, extra)`: the counts' latencies fitted to measured random sparse networks."""
        import keras

        from keras_nas.cnas import latency_model
        from keras_nas.cnas.channel_graph import ChannelGraph
        from keras_nas.cnas.layout import channel_layout

        settings = {**self.SETTINGS, **settings}
        build, kwargs, sparse = self._network(image_size, channels, num_classes, **settings)
        _, topology = build(**kwargs, return_topology=True)
        graph = ChannelGraph(topology)
        rng = np.random.default_rng(settings["seed"])

        def sample(i):
            masks = latency_model.sample_masks(graph, rng)
            selection = channel_layout(topology, graph.selection(masks))
            keras.utils.set_random_seed(0)
            return build(**kwargs, **sparse, selection=selection)

        return _fit_networks(sample, self.model_counts, measure, settings["samples"], progress, "sparse network")

    @staticmethod
    def model_space(model):
        """`"nasnet"` or `"densenet-bc"`: the CNAS space `model` is a network of; ValueError if neither."""
        # Every cell keeps its two pre-processing layers (the search keeps a channel of `d` per cell); every
        # DenseNet-BC network has its final BatchNorm.
        names = [layer.name for layer in model.layers]
        if "final_bn" in names:
            return "densenet-bc"
        if any(re.fullmatch(r"cell\d+_pre[ab](_conv)?", name) for name in names):
            return "nasnet"
        raise ValueError(f"model {model.name!r} is not a CNAS network (channel_nasnet or densenet_bc).")

    def check_model(self, model, table):
        """Raises a ValueError unless `model` is a network of the CNAS space `table` was measured for."""
        wanted = table.get("config", {}).get("cnas_space", "nasnet")
        found = self.model_space(model)
        if found != wanted:
            raise ValueError(f"`table` was measured for CNAS {wanted} networks; the model is a {found} network "
                             f"(`keras-nas latency-table --space cnas --cnas-space {found}`).")

    def model_counts(self, model):
        from keras_nas.cnas import latency_model

        self.model_space(model)
        return {latency_model.feature_key(f): v for f, v in latency_model.layer_features(model).items()}

    def model_keys(self, model):
        return list(self.model_counts(model))


class _EPNASModuleSpace(_Space):
    """EPNAS module (cell) networks (Table 3, `EPNASSpace("module").build`): fitted, as the cnas space is.

    A branch may read the cell input or any earlier branch, of many widths,
    so the entries are latencies per unit of a few counts of the network's
    layers (`keras_nas.epnas.latency_model.feature_names`: calls and work of
    convolutions per output width, poolings, concatenations), fitted by
    non-negative least squares of the relative errors to `samples` networks
    of random cells of 1 to `max_branches` branches (seeded by `seed`)
    measured end to end. `stages`,
    `cells_per_stage`, `filters` and `channel_table` are the search's
    (`keras-nas search epnas --mode module`; the channel table defaults to
    Table 3's 8..32).
    """

    name = "epnas-module"
    SETTINGS = {"stages": 2, "cells_per_stage": 1, "filters": 16, "channel_table": None, "max_branches": 5,
                "samples": 60, "seed": 0}

    def entries(self, image_size, channels, num_classes, **settings):
        from keras_nas.epnas import latency_model

        widths = self._widths(self._space(**{**self.SETTINGS, **settings}))  # checks the settings
        return {latency_model.feature_key(f): None for f in latency_model.feature_names(widths)}

    @staticmethod
    def _widths(space):
        from keras_nas.epnas import latency_model

        return latency_model.conv_widths(space.channels, space.num_stages, space.filters)

    @staticmethod
    def _space(stages, cells_per_stage, filters, channel_table, max_branches, samples, seed):
        from keras_nas.epnas.space import EPNASSpace

        for name, value, low in (("samples", samples, 2), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
        return EPNASSpace("module", max_layers=max_branches, min_layers=1, initial_layers=(1, max_branches),
                          channels=channel_table, num_stages=stages, cells_per_stage=cells_per_stage,
                          filters=filters)

    def fit(self, image_size, channels, num_classes, measure, progress=None, **settings):
        """`(overhead_ms, entries, extra)`: the counts' latencies fitted to measured random module networks."""
        import keras

        from keras_nas.epnas import latency_model

        settings = {**self.SETTINGS, **settings}
        space = self._space(**settings)
        rng = np.random.default_rng(settings["seed"])

        def sample(i):
            cell = latency_model.sample_cell(space, rng)
            keras.utils.set_random_seed(0)
            return space.build(cell, (image_size, image_size, channels), num_classes)

        widths = self._widths(space)
        return _fit_networks(sample, lambda model: latency_model.layer_features(model, widths), measure,
                             settings["samples"], progress, "module network", relative=True)

    def model_counts(self, model):
        from keras_nas.epnas import latency_model

        return latency_model.layer_features(model)

    def model_keys(self, model):
        return list(self.model_counts(model))


def fit_counts(counts, latencies_ms, relative=False):
    """Non-negative least squares of latencies on counts: `(overhead_ms, {key: ms per unit})`.

    The table of a fitted space (`cnas`, `epnas-module`) holds one latency
    per unit of each count of a network's layers; this finds them from
    measured networks with scikit-learn's `LinearRegression(positive=True)`,
    the intercept (`overhead_ms`) as a column of ones so that it too is >= 0.

    Args:
        counts: list of dicts `{key: count}`, all with the same keys.
        latencies_ms: list of float. The measured latencies of the same networks.
        relative: bool. Weight each network by 1 / latency^2: least
            squares of the relative errors. Defaults to `False`.

    Example:

    >>> overhead, entries = fit_counts([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 2.0}, {"a": 1.0, "b": 1.0}],
    ...                                [1.5, 2.5, 2.5])
    >>> round(overhead, 6), {k: round(v, 6) for k, v in entries.items()}
    (0.5, {'a': 1.0, 'b': 1.0})
    """
    from sklearn.linear_model import LinearRegression

    keys = list(counts[0])
    x = np.array([[1.0] + [float(c[k]) for k in keys] for c in counts], dtype=np.float64)
    y = np.asarray(latencies_ms, dtype=np.float64)
    weight = 1.0 / y**2 if relative else None
    overhead, *weights = LinearRegression(positive=True, fit_intercept=False).fit(x, y, sample_weight=weight).coef_
    return float(overhead), {k: float(w) for k, w in zip(keys, weights)}


def weight_mb(model):
    """Megabytes of `model`'s weights as float32 (what a converted model reads each call; BatchNorm counted too)."""
    return model.count_params() * 4 / 2**20


def fit_memory_term(predicted_ms, measured_ms, weights_mb):
    """`(ms_per_mb, cache_mb)` of the memory term `ms_per_mb * max(0, weight_mb - cache_mb)` (pure).

    An entry is timed alone, its weights in cache. A network reads all its
    weights once per call, in the same order each time; once they outgrow
    the cache, about `cache_mb` of them stay there (a last-level cache
    resists being flushed by such a cyclic sweep) and the rest come from
    slower memory on every call. The term adds what that costs, in
    proportion to the megabytes beyond the cache, fitted to networks
    measured end to end: least squares of the relative errors `(measured -
    predicted - term) / measured`, the slope >= 0 in closed form for each
    cache size, the cache size searched on a grid of 0 to the largest
    network's weights (and at each network's own). A linear ramp rather
    than a step at the cache size: on a shared machine the share of the
    cache a process gets moves, and a network near it is sometimes in,
    sometimes out (benchmarks/RESULTS.md, "Latency tables"). Two numbers, so
    NumPy rather than scikit-learn's non-negative least squares; where no
    slope > 0 helps, `(0.0, 0.0)`: no term.

    Args:
        predicted_ms: list of float. The networks' sums of entries (with the overhead).
        measured_ms: list of float. Their measured latencies.
        weights_mb: list of float. Their weights in MB (`weight_mb`).

    Example:

    >>> fit_memory_term([1.0, 2.0, 3.0], [1.0, 2.5, 4.0], [1.0, 6.0, 11.0])  # a slope of 0.1 per MB beyond 1 MB
    (0.1, 1.0)
    """
    predicted, measured, weights = (np.asarray(a, dtype=np.float64) for a in (predicted_ms, measured_ms, weights_mb))
    residual = (measured - predicted) / measured
    best = (float(residual @ residual), 0.0, 0.0)
    for cache in sorted({*np.linspace(0.0, float(weights.max()), 201).tolist(), *weights.tolist()}):
        x = np.maximum(weights - cache, 0.0) / measured
        if not x.any():
            continue
        slope = max(0.0, float(x @ residual / (x @ x)))
        error = residual - slope * x
        if slope > 0 and float(error @ error) < best[0] - 1e-12:
            best = (float(error @ error), slope, cache)
    return round(best[1], 9), round(best[2], 6)


def memory_ms(model, table):
    """The memory term of `table` for `model` in ms (`fit_memory_term`; 0 for a table without one)."""
    memory = table.get("memory")
    if not memory:
        return 0.0
    return float(memory["ms_per_mb"]) * max(0.0, weight_mb(model) - float(memory["cache_mb"]))


def _fit_memory(space, size, settings, overhead, entries, measure, progress=None):
    """The `memory` field of an entry table: its term fitted to the space's calibration networks."""
    import keras

    predicted, measured, weights = [], [], []
    count = settings["calibration"]
    # One network at a time, cleared after it (as `_fit_networks` does): six ResNet-50-sized models at once
    # would hold gigabytes for nothing.
    for i, model in enumerate(space.calibration_networks(**size, **settings)):
        predicted.append(overhead + sum(entries[k] for k in space.model_keys(model)))
        measured.append(measure(model))
        weights.append(weight_mb(model))
        del model
        keras.backend.clear_session()
        if progress is not None:
            progress(i + 1, count, f"calibration network {i + 1}")
    slope, cache = fit_memory_term(predicted, measured, weights)
    with_term = [p + slope * max(0.0, w - cache) for p, w in zip(predicted, weights)]
    error = lambda values: round(float(statistics.median(abs(v / m - 1) for v, m in zip(values, measured))), 4)  # noqa: E731
    return {"ms_per_mb": slope, "cache_mb": cache, "networks": len(measured),
            "weight_mb": [round(min(weights), 3), round(max(weights), 3)],
            "median_error": {"entries": error(predicted), "with_memory": error(with_term)}}


def _fitted_ms(counts, table):
    return float(table["overhead_ms"]) + sum(table["entries"][k] * float(v) for k, v in counts.items())


def _fit_networks(sample, count, measure, samples, progress, what, relative=False):
    """`(overhead_ms, entries, extra)` of a fitted space: `samples` networks `sample(i)`, counted and measured."""
    import keras

    counts, measured = [], []
    for i in range(samples):
        model = sample(i)
        counts.append(count(model))
        measured.append(measure(model))
        keras.backend.clear_session()
        if progress is not None:
            progress(i + 1, samples, f"{what} {i + 1}")
    overhead, entries = fit_counts(counts, measured, relative=relative)
    table = {"overhead_ms": overhead, "entries": entries}
    errors = [abs(_fitted_ms(c, table) / m - 1) for c, m in zip(counts, measured)]
    extra = {"fit": {"samples": len(measured), "median_error": round(float(statistics.median(errors)), 4),
                     "measured_ms": [round(min(measured), 6), round(max(measured), 6)],
                     "weighting": "relative" if relative else "none"}}
    return overhead, entries, extra


def _bind(build, *arguments):
    return lambda: build(*arguments)


def _walk(space, model):
    import keras

    keys = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        k = space.layer_key(layer)
        if k is not None:
            keys.append(k)
    return keys


SPACES = {"resnet": _ResNetSpace, "epnas": _EPNASSpace, "epnas-module": _EPNASModuleSpace, "darts": _DARTSSpace,
          "nasnet": _NASNetSpace, "cnas": _CNASSpace}


def _space(name):
    if name not in SPACES:
        supported = list(SPACES)
        if name in ALL_SPACES:
            raise ValueError(f"`space` must be one of {supported} (the spaces with latency tables so far; "
                             f"{name} is not done yet). Received: space={name!r}")
        raise ValueError(f"`space` must be one of {supported}. Received: space={name!r}")
    return SPACES[name]()


# -- tables -----------------------------------------------------------------


def device_info():
    """`{"platform", "cpu", "cpu_count"}` of this machine (the CPU model from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count()}


def _versions():
    import keras
    import tensorflow as tf

    import keras_nas

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "keras_nas": keras_nas.__version__}


def table_keys(space, *, image_size, channels, num_classes, **settings):
    """The keys a table of `space` holds at this input size (nothing is built or measured).

    Example:

    >>> len(table_keys("resnet", image_size=8, channels=1, num_classes=10))  # stem, 5 blocks, head
    7
    """
    return list(_space(space).entries(image_size, channels, num_classes, **settings))


def measure_table(space, *, image_size, channels, num_classes, runtime="tflite", threads=1, runs=30, warmup=5,
                  instances=5, keys=None, progress=None, **settings):
    """Measures every block `space` can produce at this input size; returns the table (a JSON-safe dict).

    Args:
        space: str. `"resnet"`, `"nasnet"`, `"epnas"`, `"darts"` or
            `"epnas-module"` or `"cnas"` (see the module doc).
        image_size: int. Height and width of the network input.
        channels: int. Channels of the network input.
        num_classes: int. Classifier outputs.
        runtime: str. `"tf"` or `"tflite"`. Defaults to `"tflite"`.
        threads: int. Defaults to `1`.
        runs: int. Timed calls per entry. Defaults to `30`.
        warmup: int. Untimed calls first. Defaults to `5`.
        instances: int. TFLite interpreters each entry's timed calls are
            spread over (`measure_model`). Defaults to `5`.
        keys: list of str or None. Measure only these keys (each must be
            one of the space's keys; the table then has no memory term);
            None measures all. Defaults to None.
        progress: callable or None. `progress(done, total, key)` after each
            entry.
        **settings: the space's own settings: `stages` and `block` for
            resnet (stage-wise `--stages`, `--block`; defaults 3 and
            `"basic"`) with its `calibration` (networks the memory term
            is fitted to, 0 for none; default 6) and `seed` (default 0);
            `stages` and `filters` for nasnet (stage-wise `--stages`,
            `--filters`; defaults 3 and 8); `channel_table` for epnas (the
            search's channel table; default Table 2's 16..256); `cells` and
            `init_channels` for darts (defaults 5 and 16); for cnas
            `cnas_space` (the search's `--space`: `"nasnet"`, default, or
            `"densenet-bc"`), `cells`, `nodes`, `ops_per_node`,
            `init_channels` (nasnet; the search's defaults 1, 3, 2, 8),
            `layers_per_block`, `growth_rate` (densenet-bc; defaults 3 and
            6), `sparse_data_format` (the sparse models' layout; default
            None, the search's `auto`), `samples` (random sparse networks the
            costs are fitted to; default 40) and `seed` (default 0); for
            epnas-module `stages`, `cells_per_stage`, `filters`,
            `channel_table` (the search's; defaults 2, 1, 16 and Table 3's
            8..32), `max_branches` (of the random cells; default 5),
            `samples` (default 60) and `seed` (default 0).

    Returns:
        dict with the fields of the module doc.

    Example:

    >>> table = measure_table("resnet", image_size=8, channels=1, num_classes=10, runs=5)
    >>> save_table(table, "resnet_8.json")
    """

    _check_measuring(runtime, threads, runs, warmup, instances)
    _check_size(image_size, channels, num_classes)
    space_object = _space(space)
    unknown = set(settings) - set(space_object.SETTINGS)
    if unknown:
        raise ValueError(f"`{sorted(unknown)[0]}` does not apply to the {space} space (settings: "
                         f"{sorted(space_object.SETTINGS) or 'none'}).")
    builders = space_object.entries(image_size, channels, num_classes, **settings)
    extra = {}

    def measure(model):
        return measure_model(model, runtime=runtime, threads=threads, runs=runs, warmup=warmup, instances=instances)

    if hasattr(space_object, "fit"):
        if keys is not None:
            raise ValueError(f"`keys` does not apply to the {space} space (its entries are fitted together).")
        overhead, entries, extra = space_object.fit(image_size, channels, num_classes, measure, progress, **settings)
    else:
        overhead, entries = _measure_entries(builders, keys, space, image_size, channels, runtime, threads, runs,
                                             warmup, instances, progress)
        if {**space_object.SETTINGS, **settings}.get("calibration"):
            if keys is None:
                size = {"image_size": image_size, "channels": channels, "num_classes": num_classes}
                extra["memory"] = _fit_memory(space_object, size, {**space_object.SETTINGS, **settings}, overhead,
                                              entries, measure, progress)
            else:  # a subset of the keys cannot price the calibration networks: no memory term
                settings = {**settings, "calibration": 0}
    return {
        "space": space,
        "device": device_info(),
        "runtime": runtime,
        "threads": threads,
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {"image_size": image_size, "channels": channels, "num_classes": num_classes,
                   **space_object.resolved({**space_object.SETTINGS, **settings})},
        "runs": runs,
        "warmup": warmup,
        "instances": instances if runtime == "tflite" else 1,
        "overhead_ms": round(overhead, 6),
        "entries": entries,
        **extra,
    }


def _measure_entries(builders, keys, space, image_size, channels, runtime, threads, runs, warmup, instances, progress):
    import keras

    if keys is not None:
        missing = [k for k in keys if k not in builders]
        if missing:
            raise ValueError(f"`keys` must be keys of the {space} space at this input size. Received: {missing[0]!r}")
        builders = {k: builders[k] for k in dict.fromkeys(keys)}
    identity = keras.Sequential([keras.Input((image_size, image_size, channels)), keras.layers.Identity()])
    overhead = measure_model(identity, runtime=runtime, threads=threads, runs=runs, warmup=warmup, instances=instances)
    entries = {}
    for i, (k, build) in enumerate(builders.items()):
        keras.utils.set_random_seed(0)
        ms = measure_model(build(), runtime=runtime, threads=threads, runs=runs, warmup=warmup, instances=instances)
        entries[k] = round(max(ms - overhead, 0.0), 6)
        keras.backend.clear_session()
        if progress is not None:
            progress(i + 1, len(builders), k)
    return overhead, entries


def _check_size(image_size, channels, num_classes):
    for name, value, low in (("image_size", image_size, 1), ("channels", channels, 1), ("num_classes", num_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")


def check_table(table):
    """Raises a `ValueError` unless `table` has the fields of a latency table; returns it."""
    if not isinstance(table, dict):
        raise TypeError(f"`table` must be a dict or the path of a table JSON file. Received: {type(table).__name__}")
    missing = [f for f in TABLE_FIELDS if f not in table]
    if missing:
        raise ValueError(f"`table` is not a latency table: it lacks {missing} (write one with `keras-nas "
                         "latency-table`).")
    entries = table["entries"]
    if not isinstance(entries, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in entries.values()):
        raise ValueError("`table` entries must map keys to latencies in ms >= 0.")
    return table


def save_table(table, path, *, overwrite=False):
    """Writes `table` as JSON at `path` (atomically); an existing file needs `overwrite=True`."""
    from keras_nas import io

    check_table(table)
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"`path` exists; pass overwrite=True to replace it. Received: path={path!r}")
    io.atomic_write_json(path, table)
    return path


def load_table(path):
    """The table `save_table` wrote at `path`, checked."""
    from keras_nas import io

    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ValueError(f"`table` must be a table dict or an existing JSON file. Received: table={path!r}")
    return check_table(io.read_json(path))


def read_table(table, space=None):
    """A checked table from a dict or a JSON path; with `space`, it must be a table of that space.

    Example:

    >>> read_table("epnas_8.json", space="epnas")["overhead_ms"]
    """
    table = check_table(table if isinstance(table, dict) else load_table(table))
    if space is not None and table["space"] != space:
        raise ValueError(f"`table` must be a latency table of the {space} space; it is one of the "
                         f"{table['space']} space (`keras-nas latency-table --space {space}`).")
    return table


def read_option_table(name, path, space, input_shape=None, num_classes=None, **settings):
    """The `space` latency table at `path`, checked against the run's input and network; `OptionError` if not.

    Without `input_shape` only read and checked as a `space` table (before
    the data is loaded). `settings` are the space's own settings the run
    needs (resnet `stages`, darts `cells`/`init_channels`); the error says
    which `keras-nas latency-table` command measures the right table.
    """
    from keras_nas.engine.options import OptionError

    try:
        table = read_table(path, space=space)
    except (TypeError, ValueError) as error:
        raise OptionError(f"`{name}`: {str(error).split(' Received: ')[0]}", **{name: path}) from None
    if input_shape is None:
        return table
    height, width, channels = (int(d) for d in input_shape)
    wanted = {"image_size": height, "channels": channels, "num_classes": int(num_classes), **settings}
    # A table written before a space gained a setting was measured at that setting's default.
    config = table.get("config", {})
    if space in SPACES:
        config = SPACES[space]().resolved({**SPACES[space].SETTINGS, **config})
    if height != width or any(config.get(k) != v for k, v in wanted.items()):
        found = ", ".join(f"{k}={config.get(k)}" for k in wanted)
        needed = " ".join(f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                          for k, v in wanted.items() if v is not None)
        raise OptionError(f"`{name}` was measured for {found}; this run needs `keras-nas latency-table --space "
                          f"{space} {needed}`.", **{name: path})
    return table


def model_keys(model, space):
    """The table keys of a built model of `space`, one per block, in layer order (repeats kept).

    Example:

    >>> model_keys(stage_resnet((1, 1, 1), input_shape=(8, 8, 1)), "resnet")[0]
    'resnet/stem|in=8x8x1|filters=16'
    """
    return _space(space).model_keys(model)


def predict_latency(model, table):
    """Predicted batch-1 latency (ms) of a model: its blocks' entries summed, plus the table's overhead once.

    `predicted = table["overhead_ms"] + sum(table["entries"][k] for k in
    model_keys(model, table["space"]))` (see the module doc for why the
    overhead is stored apart), plus the table's memory term where it has
    one (resnet tables: `memory_ms`).

    Args:
        model: a built Keras model of the table's space (`resnet`: from
            `stage_resnet`, basic or bottleneck blocks as the table's
            `block` setting; `nasnet`: from
            `stage_nasnet`; `epnas`: from `EPNASSpace("layers").build`;
            `epnas-module`: from `EPNASSpace("module").build`; `cnas`: a
            sparse `channel_nasnet` or `densenet_bc`, as the table's
            `cnas_space`;
            `darts`: from `eval_network`).
        table: dict or str. A table from `measure_table`, or its JSON path.

    Returns:
        float. Milliseconds, for the table's runtime and threads on the
        machine that measured it.

    Raises:
        ValueError: a block of the model has no entry (the message names
            the key; re-run `keras-nas latency-table` at that input size).

    Example:

    >>> predict_latency(stage_resnet((2, 2, 2), input_shape=(32, 32, 3)), "resnet_32.json")
    """
    table = read_table(table)
    entries = table["entries"]
    total = float(table["overhead_ms"])
    space = _space(table["space"])
    if hasattr(space, "model_counts"):  # a fitted space (cnas): entries are ms per unit of a count
        if hasattr(space, "check_model"):
            space.check_model(model, table)
        counts = space.model_counts(model)
        missing = [k for k in counts if k not in entries]
        if missing:
            raise ValueError(f"`table` has no entry {missing[0]!r}; measure it again with `keras-nas latency-table "
                             f"--space {table['space']}`.")
        return _fitted_ms(counts, table)
    for k in model_keys(model, table["space"]):
        if k not in entries:
            config = table.get("config", {})
            raise ValueError(f"`table` has no entry {k!r} (it was measured at image_size={config.get('image_size')}, "
                             f"channels={config.get('channels')}, num_classes={config.get('num_classes')}); re-run "
                             "`keras-nas latency-table` for this model's input size.")
        total += entries[k]
    return total + memory_ms(model, table)
