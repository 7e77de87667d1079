"""EPNAS search spaces (paper 002, Tables 1-3): layer-by-layer and module search.

Architectures are plain data (lists of dicts of strings and ints) so they go
into JSON, KerasTuner hyperparameter values and `results.json` unchanged:

- **layers** (Table 2): a list of layers `{"type", "filter_width",
  "pool_width", "channels", "activation", "src1", "src2"}`. Node 0 is the
  (normalised) input image and layer `i` writes node `i + 1`; `src1` is the
  node it reads (0..i) and `src2` a node added to its output as a skip
  connection (-1: none). `conv2d`/`dep-sep-conv2d` are conv -> batch norm
  -> activation (`crelu` = concat(relu(x), relu(-x)), so the conv makes
  `channels / 2`); pooling halves the resolution (stride 2, "same"); `add`
  sums `src1` and `src2` (identity when `src2 = -1`). The last layer feeds
  global average pooling and the softmax classifier.
- **module** (Table 3): a cell of branches `{"type", "filter_width",
  "pool_width", "channels", "src1", "src2", "propagate"}`. Node 0 is the
  cell input and branch `j` writes node `j + 1`; a branch concatenates its
  two operations (`conv-maxpool`: conv on `src1`, max pooling on `src2`;
  `-none`: one operation). The cell output concatenates the branches with
  `propagate = 1` (the last branch if none), projected by a 1x1 conv. The
  network is a conv stem and `num_stages` stages of `cells_per_stage` cells
  (PNAS-style stacking) with a 2x2 average pooling and doubled channels
  between stages.

Operands of different resolution or width are matched by a strided 1x1
convolution (the paper leaves this open; ENAS-style calibration).

Actions (section 3.2) are dicts of ints, as the policy samples them:
`scale` holds one scale choice per partition of the network (`SCALES`:
keep, fewer/more channels, smaller/larger filter or pooling width, one step
in the table); `insert` holds `kind` (keep / insert / remove), the new
element's fields, its `place` (0..L+4, the paper's L + 5 values; places past
the end append) and its sources. `apply_action` always returns a valid
architecture (insert at the maximum size or remove at the minimum size is a
no-op; sources are clipped to the nodes that exist).

Every Keras layer is named `<key>__<role>` with `key` = (position, op type),
e.g. `L3_conv2d__conv`, `C1_B0_conv-conv__op1_conv`: the key of EPNAS'
parameter-sharing dictionary (section 3.4). `parent_positions` and
`sharing_key_map` tell which key of the parent network each element of a
child descends from (an insert or remove shifts the later positions);
`init_inserted` starts an inserted conv as the identity
(`keras_nas.epnas.morphism`).
"""

import copy
import json

import keras
import numpy as np
from keras import layers
from keras_nas.epnas.morphism import init_identity_layer

MODES = ("layers", "module")
# Table 2
LAYER_TYPES = ("conv2d", "dep-sep-conv2d", "MaxPool2d", "AvgPool2d", "add")
FILTER_WIDTHS = (1, 3, 5, 7)
POOL_WIDTHS = (2, 3)
LAYER_CHANNELS = (16, 32, 64, 96, 128, 256)
ACTIVATIONS = ("relu", "crelu", "elu", "selu", "swish")
# Table 3
BRANCH_TYPES = (
    "conv-conv", "conv-maxpool", "conv-avgpool", "conv-none", "maxpool-none", "avgpool-none",
    "1x7-7x1-none",
)
BRANCH_CHANNELS = (8, 12, 16, 24, 32)
# Scale lookup table (section 3.2): one step in Table 2/3's lists.
SCALES = ("keep", "channels_down", "channels_up", "width_down", "width_up")
KINDS = ("keep", "insert", "remove")
PLACE_SLACK = 5  # the insert place has L + 5 values (section 3.2)


def _choice_error(name, value, choices, where):
    return ValueError(f"{where}: `{name}` must be one of {list(choices)}. Received: {name}={value!r}")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class EPNASSpace:
    """The EPNAS search space: validation, random architectures, actions, builder.

    The space knows nothing about how it is searched: it turns architectures
    (plain data, see the module docstring) into Keras models, applies the
    scale/insert/remove actions of section 3.2 and describes both to a policy
    as integer features and categorical heads.

    Args:
        mode: str. `"layers"` (layer-by-layer search, Table 2) or `"module"`
            (cell search, Table 3). Defaults to `"layers"`.
        max_layers: int. MAX_LAYERS (layers) / MAX_BRANCHES (module).
            Defaults to `12` (layers) or `5` (module).
        min_layers: int. Fewest layers/branches. Defaults to `2` / `1`.
        initial_layers: tuple of 2 ints. Size range of random initial
            architectures. Defaults to `(3, 6)` / `(2, 4)`.
        channels: tuple of int or None. Channel table. Defaults to Table 2's
            `(16, ..., 256)` / Table 3's `(8, ..., 32)`.
        partitions: int. `F`, groups the scale LSTM scales together.
            Defaults to `4` (layers) / `2` (module).
        num_stages: int. Module mode: stages of stacked cells. Defaults to `3`.
        cells_per_stage: int. Module mode: cells per stage. Defaults to `2`.
        filters: int. Module mode: stem/cell output channels of stage 1.
            Defaults to `32`.

    Example:

    ```python
    space = EPNASSpace("layers")
    arch = space.random_architecture(np.random.default_rng(0))
    model = space.build(arch, input_shape=(32, 32, 3), num_classes=10)
    ```
    """

    def __init__(
        self,
        mode="layers",
        max_layers=None,
        min_layers=None,
        initial_layers=None,
        channels=None,
        partitions=None,
        num_stages=3,
        cells_per_stage=2,
        filters=32,
    ):
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {list(MODES)}. Received: mode={mode!r}")
        layer_mode = mode == "layers"
        self.mode = mode
        self.max_layers = int(max_layers if max_layers is not None else (12 if layer_mode else 5))
        self.min_layers = int(min_layers if min_layers is not None else (2 if layer_mode else 1))
        if initial_layers is None:
            lo, hi = (3, 6) if layer_mode else (2, 4)
            initial = (min(max(lo, self.min_layers), self.max_layers), min(max(hi, self.min_layers), self.max_layers))
        else:
            initial = initial_layers
        self.initial_layers = (int(initial[0]), int(initial[1]))
        self.channels = tuple(int(c) for c in (channels or (LAYER_CHANNELS if layer_mode else BRANCH_CHANNELS)))
        self.partitions = int(partitions if partitions is not None else (4 if layer_mode else 2))
        self.num_stages = int(num_stages)
        self.cells_per_stage = int(cells_per_stage)
        self.filters = int(filters)
        for name in ("max_layers", "min_layers", "partitions", "num_stages", "cells_per_stage", "filters"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={getattr(self, name)!r}")
        if self.min_layers > self.max_layers:
            raise ValueError(
                f"`min_layers` must be <= `max_layers`. Received: min_layers={self.min_layers}, "
                f"max_layers={self.max_layers}"
            )
        lo, hi = self.initial_layers
        if not self.min_layers <= lo <= hi <= self.max_layers:
            raise ValueError(
                f"`initial_layers` must be (low, high) with `min_layers` <= low <= high <= `max_layers` "
                f"({self.min_layers}..{self.max_layers}). Received: initial_layers={initial_layers!r}"
            )
        if not self.channels or any(c < 2 or c % 2 for c in self.channels):
            raise ValueError(f"`channels` must be even ints >= 2 (crelu halves them). Received: channels={channels!r}")
        self.types = LAYER_TYPES if layer_mode else BRANCH_TYPES

    def get_config(self):
        return {
            "mode": self.mode,
            "max_layers": self.max_layers,
            "min_layers": self.min_layers,
            "initial_layers": list(self.initial_layers),
            "channels": list(self.channels),
            "partitions": self.partitions,
            "num_stages": self.num_stages,
            "cells_per_stage": self.cells_per_stage,
            "filters": self.filters,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- validation -----------------------------------------------------

    def validate(self, architecture):
        """Raises a `ValueError` naming the element and field at fault; returns it."""
        if not isinstance(architecture, (list, tuple)):
            raise TypeError(f"An architecture must be a list of dicts. Received: {type(architecture).__name__}")
        n = len(architecture)
        unit = "layers" if self.mode == "layers" else "branches"
        if not self.min_layers <= n <= self.max_layers:
            raise ValueError(
                f"An architecture must have {self.min_layers}..{self.max_layers} {unit}. Received: {n} {unit}"
            )
        fields = ["type", "filter_width", "pool_width", "channels", "src1", "src2"]
        fields += ["activation"] if self.mode == "layers" else ["propagate"]
        for i, element in enumerate(architecture):
            where = f"{unit[:-1] if self.mode == 'layers' else 'branch'} {i}"
            if not isinstance(element, dict):
                raise TypeError(f"{where} must be a dict. Received: {element!r}")
            missing = [f for f in fields if f not in element]
            extra = sorted(set(element) - set(fields))
            if missing or extra:
                raise ValueError(f"{where}: expected the fields {fields}; missing {missing}, unknown {extra}.")
            for name, choices in (
                ("type", self.types),
                ("filter_width", FILTER_WIDTHS),
                ("pool_width", POOL_WIDTHS),
                ("channels", self.channels),
            ):
                if element[name] not in choices:
                    raise _choice_error(name, element[name], choices, where)
            if self.mode == "layers" and element["activation"] not in ACTIVATIONS:
                raise _choice_error("activation", element["activation"], ACTIVATIONS, where)
            if self.mode == "module" and element["propagate"] not in (0, 1):
                raise _choice_error("propagate", element["propagate"], (0, 1), where)
            low2 = -1 if self.mode == "layers" else 0
            for name, low in (("src1", 0), ("src2", low2)):
                value = element[name]
                if not _is_int(value) or not low <= value <= i:
                    raise ValueError(
                        f"{where}: `{name}` must be an int in [{low}, {i}] (node 0 is the "
                        f"{'input' if self.mode == 'layers' else 'cell input'}, node k the output of "
                        f"element k-1). Received: {name}={value!r}"
                    )
        return architecture

    # -- random architectures -------------------------------------------

    def _random_element(self, rng, index):
        if self.mode == "layers":
            # A random network that pools or sums the raw input first is degenerate on small images:
            # the first layer is a convolution, later ones favour convolutions (the paper starts
            # from "a large random generated network" that already reaches 91% on CIFAR-10).
            weights = np.array([1, 1, 0, 0, 0] if index == 0 else [3, 3, 1, 1, 2], dtype=float)
            kind = self.types[rng.choice(len(self.types), p=weights / weights.sum())]
        else:
            kind = self.types[rng.integers(len(self.types))]
        element = {
            "type": kind,
            "filter_width": int(FILTER_WIDTHS[rng.integers(len(FILTER_WIDTHS))]),
            "pool_width": int(POOL_WIDTHS[rng.integers(len(POOL_WIDTHS))]),
            "channels": int(self.channels[rng.integers(len(self.channels))]),
            "src1": int(index),
        }
        if self.mode == "layers":
            element["activation"] = ACTIVATIONS[rng.integers(len(ACTIVATIONS))]
            element["src2"] = int(rng.integers(0, index + 1)) if rng.random() < 0.3 else -1
        else:
            element["src1"] = int(rng.integers(0, index + 1))
            element["src2"] = int(rng.integers(0, index + 1))
            element["propagate"] = 1
        return element

    def random_architecture(self, rng):
        """A random valid architecture with `initial_layers` elements (section 4.1)."""
        lo, hi = self.initial_layers
        n = int(rng.integers(lo, hi + 1))
        return [self._random_element(rng, i) for i in range(n)]

    # -- actions --------------------------------------------------------

    def action_heads(self):
        """`(name, number of choices)` of each categorical decision of the insert LSTM."""
        heads = [
            ("kind", len(KINDS)),
            ("type", len(self.types)),
            ("filter_width", len(FILTER_WIDTHS)),
            ("pool_width", len(POOL_WIDTHS)),
            ("channels", len(self.channels)),
        ]
        if self.mode == "layers":
            heads += [("activation", len(ACTIVATIONS)), ("place", self.max_layers + PLACE_SLACK),
                      ("skip", self.max_layers + 1)]
        else:
            heads += [("place", self.max_layers + PLACE_SLACK), ("src1", self.max_layers + 1),
                      ("src2", self.max_layers + 1), ("propagate", 2)]
        return heads

    def action_masks(self, architecture):
        """Per head, 1 for the choices allowed on this architecture (else 0).

        The place prior `D_L` has `L + 5` values; insert is barred at the
        maximum size and remove at the minimum size.
        """
        n = len(architecture)
        masks = {name: [1] * size for name, size in self.action_heads()}
        masks["place"] = [1 if p < n + PLACE_SLACK else 0 for p in range(self.max_layers + PLACE_SLACK)]
        if n >= self.max_layers:
            masks["kind"][KINDS.index("insert")] = 0
        if n <= self.min_layers:
            masks["kind"][KINDS.index("remove")] = 0
        return masks

    def _scale(self, element, scale):
        element = dict(element)
        step = {"channels_down": -1, "channels_up": 1, "width_down": -1, "width_up": 1}.get(scale, 0)
        if scale.startswith("channels"):
            i = self.channels.index(element["channels"])
            element["channels"] = int(self.channels[int(np.clip(i + step, 0, len(self.channels) - 1))])
        elif scale.startswith("width"):
            pooling_only = element["type"] in ("MaxPool2d", "AvgPool2d", "maxpool-none", "avgpool-none")
            name, table = ("pool_width", POOL_WIDTHS) if pooling_only else ("filter_width", FILTER_WIDTHS)
            i = table.index(element[name])
            element[name] = int(table[int(np.clip(i + step, 0, len(table) - 1))])
        return element

    def partition(self, n):
        """Index groups of the `F` parts of an `n`-element network (contiguous)."""
        return [list(p) for p in np.array_split(np.arange(n), self.partitions)]

    def apply_action(self, architecture, action):
        """Scale each partition, then insert/remove/keep (section 3.2). Returns a new, valid architecture."""
        arch = [dict(e) for e in architecture]
        scales = list(action.get("scale", []))
        if scales and len(scales) != self.partitions:
            raise ValueError(f"`scale` must hold {self.partitions} choices (one per part). Received: {scales}")
        for part, choice in zip(self.partition(len(arch)), scales):
            for i in part:
                arch[i] = self._scale(arch[i], SCALES[int(choice)])
        insert = action.get("insert", {})
        kind = KINDS[int(insert.get("kind", 0))]
        n = len(arch)
        if kind == "insert" and n < self.max_layers:
            arch = self._insert(arch, insert)
        elif kind == "remove" and n > self.min_layers:
            arch = self._remove(arch, min(int(insert["place"]), n - 1))
        return self.validate(arch)

    def parent_positions(self, parent, action):
        """Where each element of `apply_action(parent, action)` sits in `parent` (None: inserted).

        Scaling keeps positions; an insert at place `p` shifts the elements
        from `p` on by one and the new element has no parent; a remove at `p`
        shifts the later ones back. Mirrors `apply_action` (the same clipping
        and no-op rules), e.g. an insert at place 1 of a 3-layer network gives
        `[0, None, 1, 2]`.
        """
        n = len(parent)
        insert = action.get("insert", {})
        kind = KINDS[int(insert.get("kind", 0))]
        if kind == "insert" and n < self.max_layers:
            p = min(int(insert["place"]), n)
            return list(range(p)) + [None] + list(range(p, n))
        if kind == "remove" and n > self.min_layers:
            p = min(int(insert["place"]), n - 1)
            return list(range(p)) + list(range(p + 1, n))
        return list(range(n))

    def sharing_key_map(self, architecture, positions):
        """`{key in the child's model: key of the same element in its parent's model, or None}`.

        Keys are the builder's layer-name prefixes (`L3_conv2d`,
        `C1_B0_conv-conv`): (position, op type), the keys of EPNAS' parameter
        dictionary (section 3.4). `positions` is `parent_positions(...)`:
        element `i` of the child reads the dictionary at the key its layer
        had in the parent network, so an insert or remove does not cut the
        layers after it off from their trained parameters; an inserted
        element (None) maps to None (its own start: fresh, or the identity
        through `init_inserted`). Keys of layers
        outside the searched elements (stem, cell outputs, classifier) are
        not in the map (they keep their own key).
        """
        if len(positions) != len(architecture):
            raise ValueError(
                f"`positions` must have one entry per element ({len(architecture)}). Received: {positions!r}"
            )

        def key(prefix, i, e):
            return f"{prefix}{i}_{e['type']}"

        mapping = {}
        if self.mode == "layers":
            for i, (e, p) in enumerate(zip(architecture, positions)):
                mapping[key("L", i, e)] = None if p is None else key("L", p, e)
            return mapping
        for c in range(self.num_stages * self.cells_per_stage):
            for j, (e, p) in enumerate(zip(architecture, positions)):
                mapping[key(f"C{c}_B", j, e)] = None if p is None else key(f"C{c}_B", p, e)
        return mapping

    def init_inserted(self, model, architecture, positions, inputs=None):
        """Starts each inserted conv layer of `model` as the identity (Net2Net "deeper"); returns how many.

        `positions` is `parent_positions(...)` (None marks an inserted
        element). The paper does not say how an inserted layer starts; see
        `keras_nas.epnas.morphism` for our choice and its limits
        (layer-by-layer search only: a module-search branch is not in series).
        `inputs`: a batch of training images for the batch-norm statistics.
        """

        if self.mode != "layers":
            return 0
        count = 0
        for i, (e, p) in enumerate(zip(architecture, positions)):
            if p is None and e["type"] in ("conv2d", "dep-sep-conv2d"):
                count += init_identity_layer(model, f"L{i}_{e['type']}", e["activation"], inputs)
        return count

    def _insert(self, arch, choice):
        p = min(int(choice["place"]), len(arch))
        new = {
            "type": self.types[int(choice["type"])],
            "filter_width": int(FILTER_WIDTHS[int(choice["filter_width"])]),
            "pool_width": int(POOL_WIDTHS[int(choice["pool_width"])]),
            "channels": int(self.channels[int(choice["channels"])]),
        }
        if self.mode == "layers":
            new["activation"] = ACTIVATIONS[int(choice["activation"])]
            new["src1"] = p
            skip = int(choice["skip"])
            new["src2"] = -1 if skip == 0 else min(skip - 1, p)
        else:
            new["src1"] = min(int(choice["src1"]), p)
            new["src2"] = min(int(choice["src2"]), p)
            new["propagate"] = int(choice["propagate"])
        out = []
        for i, e in enumerate(arch):
            if i < p:
                out.append(e)
                continue
            e = dict(e)
            for name in ("src1", "src2"):
                s = e[name]
                if s > p:
                    e[name] = s + 1
                elif s == p and name == "src1" and self.mode == "layers":
                    e[name] = p + 1  # the inserted layer sits on the path (Fig. 3, left)
            out.append(e)
        out.insert(p, new)
        if self.mode == "module":
            # Fig. 3 (right): a branch feeding the new one no longer feeds the cell output.
            for s in (new["src1"], new["src2"]):
                if 0 < s <= p:
                    out[s - 1]["propagate"] = 0
            if not any(e["propagate"] for e in out):
                out[-1]["propagate"] = 1
        return out

    def _remove(self, arch, p):
        removed = arch[p]
        replacement = removed["src1"]
        out = []
        for i, e in enumerate(arch):
            if i == p:
                continue
            e = dict(e)
            if i > p:
                for name in ("src1", "src2"):
                    s = e[name]
                    if s == p + 1:
                        e[name] = replacement
                    elif s > p + 1:
                        e[name] = s - 1
            out.append(e)
        if self.mode == "module" and not any(e["propagate"] for e in out):
            out[-1]["propagate"] = 1
        return out

    # -- policy features ------------------------------------------------

    def feature_sizes(self):
        """Vocabulary size of each integer feature of an element (embedding tables)."""
        common = [len(self.types), len(FILTER_WIDTHS), len(POOL_WIDTHS), len(self.channels)]
        if self.mode == "layers":
            return common + [len(ACTIVATIONS), self.max_layers + 1, self.max_layers + 2]
        return common + [self.max_layers + 1, self.max_layers + 1, 2]

    def features(self, architecture):
        """One row of ints per element: table indices and source offsets."""
        rows = []
        for i, e in enumerate(architecture):
            row = [
                self.types.index(e["type"]),
                FILTER_WIDTHS.index(e["filter_width"]),
                POOL_WIDTHS.index(e["pool_width"]),
                self.channels.index(e["channels"]),
            ]
            if self.mode == "layers":
                row += [ACTIVATIONS.index(e["activation"]), i - e["src1"], 0 if e["src2"] < 0 else i - e["src2"] + 1]
            else:
                row += [i - e["src1"], i - e["src2"], int(e["propagate"])]
            rows.append(row)
        return rows

    # -- builder ----------------------------------------------------------

    def build(self, architecture, input_shape, num_classes):
        """Keras model (softmax `"predictions"`, float32) of a valid architecture."""
        self.validate(architecture)
        if not _is_int(num_classes) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
        inputs = keras.Input(shape=tuple(input_shape), name="image")
        if self.mode == "layers":
            x = _layer_network(inputs, architecture)
        else:
            x = _module_network(inputs, architecture, self.num_stages, self.cells_per_stage, self.filters)
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
        return keras.Model(inputs, outputs, name=f"epnas_{self.mode}")


# -- builder pieces ---------------------------------------------------------


def _bn(name):
    # Momentum 0.9 (TF-slim's CIFAR setting): children train for a few hundred steps only, and
    # Keras' default 0.99 leaves the moving statistics far from the batch ones (chance-level
    # validation accuracy while training accuracy climbs).
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _align(x, level_from, level_to, channels, name):
    """Strided 1x1 conv to `channels` at resolution level `level_to` (identity if equal)."""
    if level_from == level_to and x.shape[-1] == channels:
        return x
    stride = 2 ** max(level_to - level_from, 0)
    return layers.Conv2D(channels, 1, strides=stride, padding="same", use_bias=False, name=name)(x)


def _activation(x, activation, name):
    if activation == "crelu":
        negative = layers.Rescaling(-1.0, name=f"{name}_neg")(x)
        return layers.Concatenate(name=f"{name}_crelu")(
            [layers.ReLU(name=f"{name}_pos_relu")(x), layers.ReLU(name=f"{name}_neg_relu")(negative)]
        )
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def _layer_network(inputs, architecture):
    nodes, levels = [inputs], [0]
    for i, e in enumerate(architecture):
        key = f"L{i}_{e['type']}"
        x, level = nodes[e["src1"]], levels[e["src1"]]
        kind = e["type"]
        if kind in ("conv2d", "dep-sep-conv2d"):
            width = e["channels"] // 2 if e["activation"] == "crelu" else e["channels"]
            conv = layers.Conv2D if kind == "conv2d" else layers.SeparableConv2D
            x = conv(width, e["filter_width"], padding="same", use_bias=False, name=f"{key}__conv")(x)
            x = _bn(name=f"{key}__bn")(x)
            x = _activation(x, e["activation"], f"{key}__act")
        elif kind in ("MaxPool2d", "AvgPool2d"):
            pool = layers.MaxPooling2D if kind == "MaxPool2d" else layers.AveragePooling2D
            x = pool(e["pool_width"], strides=2, padding="same", name=f"{key}__pool")(x)
            level += 1
        if e["src2"] >= 0:
            skip, skip_level = nodes[e["src2"]], levels[e["src2"]]
            target = max(level, skip_level)
            x = _align(x, level, target, x.shape[-1], f"{key}__proj")
            skip = _align(skip, skip_level, target, x.shape[-1], f"{key}__skip")
            x = layers.Add(name=f"{key}__add")([x, skip])
            level = target
        elif kind == "add":
            x = layers.Identity(name=f"{key}__identity")(x)
        nodes.append(x)
        levels.append(level)
    return nodes[-1]


def _op(x, op, e, channels, name):
    if op == "conv":
        x = layers.Conv2D(channels, e["filter_width"], padding="same", use_bias=False, name=f"{name}_conv")(x)
    elif op == "1x7-7x1":
        x = layers.Conv2D(channels, (1, 7), padding="same", use_bias=False, name=f"{name}_conv1x7")(x)
        x = layers.Conv2D(channels, (7, 1), padding="same", use_bias=False, name=f"{name}_conv7x1")(x)
    else:
        pool = layers.MaxPooling2D if op == "maxpool" else layers.AveragePooling2D
        return pool(e["pool_width"], strides=1, padding="same", name=f"{name}_pool")(x)
    x = _bn(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _cell(x, cell, multiplier, out_channels, name):
    nodes = [x]
    for j, e in enumerate(cell):
        key = f"{name}_B{j}_{e['type']}"
        ops = [op for op in e["type"].split("-") if op != "none"]
        if e["type"] == "1x7-7x1-none":
            ops = ["1x7-7x1"]
        outs = [
            _op(nodes[e[src]], op, e, e["channels"] * multiplier, f"{key}__op{k + 1}")
            for k, (op, src) in enumerate(zip(ops, ("src1", "src2")))
        ]
        nodes.append(outs[0] if len(outs) == 1 else layers.Concatenate(name=f"{key}__concat")(outs))
    chosen = [nodes[j + 1] for j, e in enumerate(cell) if e["propagate"]] or [nodes[-1]]
    y = chosen[0] if len(chosen) == 1 else layers.Concatenate(name=f"{name}_out__concat")(chosen)
    y = layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_out__conv")(y)
    y = _bn(name=f"{name}_out__bn")(y)
    return layers.ReLU(name=f"{name}_out__relu")(y)


def _module_network(inputs, cell, num_stages, cells_per_stage, filters):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="stem__conv")(inputs)
    x = _bn(name="stem__bn")(x)
    x = layers.ReLU(name="stem__relu")(x)
    c = 0
    for stage in range(num_stages):
        if stage:
            x = layers.AveragePooling2D(2, padding="same", name=f"reduce{stage}__pool")(x)
        for _ in range(cells_per_stage):
            x = _cell(x, cell, 2**stage, filters * 2**stage, f"C{c}")
            c += 1
    return x


def architecture_to_json(architecture):
    """Canonical JSON text of an architecture (sorted keys)."""
    return json.dumps(architecture, sort_keys=True)


def architecture_from_json(text):
    return copy.deepcopy(json.loads(text))


def describe(architecture):
    """One short line per element, e.g. `L0 conv2d 3x3 32 relu <- 0 (+ -1)`."""
    lines = []
    for i, e in enumerate(architecture):
        extra = e.get("activation", f"prop={e.get('propagate')}")
        lines.append(
            f"{i}: {e['type']} k{e['filter_width']} p{e['pool_width']} c{e['channels']} {extra} "
            f"<- {e['src1']},{e['src2']}"
        )
    return "; ".join(lines)
