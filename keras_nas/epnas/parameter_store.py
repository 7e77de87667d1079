"""EPNAS' dictionary of parameters shared across child networks (paper 002, section 3.4)."""

import glob
import json
import math
import os
import shutil

import numpy as np

from keras_nas import io

_SEP = "__"


def splice(source, target_shape, init=None, spatial_dims=0):
    """Fits `source` into `target_shape`: crops where it is larger, pads where smaller.

    The leading `spatial_dims` axes (the kernel window of a conv) are aligned
    on their centres, so a 3x3 kernel lands in the middle of a 5x5 one; the
    other axes (channels, units) are aligned at index 0. Padded entries keep
    `init` (the target's fresh initial values) or zeros.

    Example:

    >>> splice(np.ones((3, 3, 2, 4)), (5, 5, 2, 8), spatial_dims=2)[:, :, 0, 0]
    array([[0., 0., 0., 0., 0.], [0., 1., 1., 1., 0.], ...])
    """
    source = np.asarray(source)
    target_shape = tuple(int(d) for d in target_shape)
    if source.ndim != len(target_shape):
        raise ValueError(
            f"`source` and `target_shape` must have the same rank. Received shapes {source.shape} and {target_shape}"
        )
    out = np.zeros(target_shape, source.dtype) if init is None else np.array(init, dtype=source.dtype, copy=True)
    if out.shape != target_shape:
        raise ValueError(f"`init` must have shape {target_shape}. Received: {out.shape}")
    src_index, dst_index = [], []
    for axis, (s, t) in enumerate(zip(source.shape, target_shape)):
        n = min(s, t)
        if axis < spatial_dims:
            s0, t0 = (s - n) // 2, (t - n) // 2
        else:
            s0 = t0 = 0
        src_index.append(slice(s0, s0 + n))
        dst_index.append(slice(t0, t0 + n))
    out[tuple(dst_index)] = source[tuple(src_index)]
    return out


def shape_distance(shapes_a, shapes_b):
    """Sum over weights and axes of `|log(a / b)|`; inf when the structure differs."""
    if len(shapes_a) != len(shapes_b):
        return math.inf
    total = 0.0
    for a, b in zip(shapes_a, shapes_b):
        if len(a) != len(b):
            return math.inf
        total += sum(abs(math.log(max(x, 1) / max(y, 1))) for x, y in zip(a, b))
    return total


def layer_key(name):
    """The dictionary key of a layer named `<key>__<role>` (a name without `"__"` is its own key)."""
    return name.split(_SEP, 1)[0]


def model_entries(model):
    """`{key: [(layer_name, [arrays]), ...]}` of a model whose layers are named `<key>__<role>`.

    A weighted layer without `"__"` (the `"predictions"` classifier) is its own key.
    """
    entries = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        key = layer_key(layer.name)
        entries.setdefault(key, []).append((layer.name, [np.asarray(w) for w in layer.get_weights()]))
    for key in entries:
        entries[key].sort(key=lambda e: e[0])
    return entries


def _role(name):
    return name.split(_SEP, 1)[1] if _SEP in name else name


def _shapes(entry):
    return [list(a.shape) for _, arrays in entry for a in arrays]


class ParameterStore:
    """Parameters shared by all children of an EPNAS search, keyed by (layer position, op type).

    Section 3.4: "a global dictionary shared by all models ... keys are the
    combination of the layer number [and] operation type ... At the end of
    each step, if there is a clash between keys, the variables for the model
    with the highest accuracy is stored. For operations where the layer and
    operation types match, but the dimensions do not, the parameters with
    the closest dimensions are chosen and the variables are spliced or
    padded accordingly."

    A child stores its parameters under its own layer numbers; it reads
    them at the layer numbers its layers had in its parent network (the
    parameters it inherits, "partially share parameters across steps"):
    pass `key_map=EPNASSpace.sharing_key_map(child, positions)` to
    `load_into`. Without the map a child reads its own layer numbers, which
    after an insert or remove at place `p` misses (or mismatches) every
    layer behind `p`.

    The key of a Keras layer is its name up to `"__"` (the EPNAS builders
    name layers `<key>__<role>`). Each key holds up to `max_variants`
    variants of different shapes; two children of a step with the same key
    and shapes clash and the more accurate one is kept. Children add their
    weights with `contribute` (one file each, so workers never write the same
    file); `consolidate(step)` merges a finished step into the dictionary,
    and `load_into` initialises a new child from the closest variant of each
    of its keys. Everything lives in `directory` (a shared folder when the
    search runs on several machines).

    Args:
        directory: str. Folder of the dictionary.
        max_variants: int. Shapes kept per key. Defaults to `4`.

    Example:

    ```python
    store = ParameterStore("runs/epnas/shared")
    store.load_into(child)       # before training
    store.contribute(child, trial_id="3", step=0, accuracy=0.91)
    store.consolidate(0)         # once every child of step 0 ended
    ```
    """

    def __init__(self, directory, max_variants=4):
        if not isinstance(max_variants, int) or max_variants < 1:
            raise ValueError(f"`max_variants` must be a positive int. Received: max_variants={max_variants!r}")
        self.directory = os.fspath(directory)
        self.max_variants = max_variants

    # -- files ------------------------------------------------------------

    def _pending(self, step):
        return os.path.join(self.directory, "pending", f"step_{int(step)}")

    def _index_path(self):
        return os.path.join(self.directory, "store.json")

    def index(self):
        """`{key: {signature: {"accuracy", "trial_id", "step", "file"}}}`."""
        return io.read_json(self._index_path(), {})

    @staticmethod
    def _write_arrays(path, entry):
        arrays = {f"{name}|{i}": a for name, weights in entry for i, a in enumerate(weights)}
        tmp = f"{path}.part.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @staticmethod
    def _read_arrays(path):
        with np.load(path) as data:
            grouped = {}
            for name in data.files:
                layer, i = name.rsplit("|", 1)
                grouped.setdefault(layer, {})[int(i)] = data[name]
        return sorted((layer, [w[i] for i in sorted(w)]) for layer, w in grouped.items())

    # -- children ---------------------------------------------------------

    def contribute(self, model, trial_id, step, accuracy):
        """Offers a trained child's parameters for the dictionary of step `step`."""
        folder = os.path.join(self._pending(step), str(trial_id))
        os.makedirs(folder, exist_ok=True)
        meta = {}
        for key, entry in model_entries(model).items():
            filename = f"{key}.npz"
            self._write_arrays(os.path.join(folder, filename), entry)
            meta[key] = {"shapes": _shapes(entry), "file": filename}
        io.atomic_write_json(os.path.join(folder, "meta.json"),
                             {"trial_id": str(trial_id), "accuracy": float(accuracy), "keys": meta})

    def consolidate(self, step):
        """Merges the children of a finished step: per key and shape, the most accurate wins."""
        pending = self._pending(step)
        metas = [io.read_json(p) for p in sorted(glob.glob(os.path.join(pending, "*", "meta.json")))]
        index = self.index()
        winners = {}
        for meta in metas:
            for key, info in meta["keys"].items():
                signature = json.dumps(info["shapes"])
                best = winners.get((key, signature))
                if best is None or meta["accuracy"] > best[0]["accuracy"]:
                    winners[(key, signature)] = (meta, info)
        os.makedirs(os.path.join(self.directory, "values"), exist_ok=True)
        for (key, signature), (meta, info) in sorted(winners.items()):
            variants = index.setdefault(key, {})
            filename = f"{key}.step{int(step)}.trial{meta['trial_id']}.npz"
            old = variants.pop(signature, None)
            if old is not None:
                _remove(os.path.join(self.directory, "values", old["file"]))
            shutil.copyfile(os.path.join(pending, meta["trial_id"], info["file"]),
                            os.path.join(self.directory, "values", filename))
            variants[signature] = {"accuracy": meta["accuracy"], "trial_id": meta["trial_id"],
                                   "step": int(step), "file": filename, "shapes": info["shapes"]}
            while len(variants) > self.max_variants:
                # The oldest, then least accurate, variant leaves first.
                drop = min(variants, key=lambda s: (variants[s]["step"], variants[s]["accuracy"]))
                _remove(os.path.join(self.directory, "values", variants.pop(drop)["file"]))
        io.atomic_write_json(self._index_path(), index)
        shutil.rmtree(pending, ignore_errors=True)
        return {"keys": len(winners), "children": len(metas)}

    def load_into(self, model, key_map=None, return_keys=False):
        """Initialises `model` from the dictionary; returns the share of its weights that came from it.

        `key_map` (`{model key: dictionary key or None}`, e.g.
        `EPNASSpace.sharing_key_map`) reads a key of the model from another
        key of the dictionary (the position its layer had in the parent
        network), or not at all (None: an inserted layer keeps its own start,
        fresh or `EPNASSpace.init_inserted`). Keys not in the map read their own key.
        With `return_keys=True` returns `(share, keys)`: also the model keys
        (layer-name prefixes) that were read from the dictionary.
        """
        index = self.index()
        entries = model_entries(model)
        layers = {layer.name: layer for layer in model.layers}
        key_map = key_map or {}
        shared = total = 0
        loaded = []
        for key, entry in entries.items():
            size = sum(a.size for _, arrays in entry for a in arrays)
            total += size
            source_key = key_map.get(key, key)
            variants = index.get(source_key) if source_key is not None else None
            if not variants:
                continue
            target = _shapes(entry)
            best = min(variants.values(), key=lambda v: shape_distance(v["shapes"], target))
            if math.isinf(shape_distance(best["shapes"], target)):
                continue
            path = os.path.join(self.directory, "values", best["file"])
            if not os.path.exists(path):
                continue
            stored = {_role(name): arrays for name, arrays in self._read_arrays(path)}
            for name, arrays in entry:
                source = stored.get(_role(name))
                if source is None or len(source) != len(arrays):
                    continue
                layer = layers[name]
                new = []
                for current, src in zip(arrays, source):
                    spatial = 2 if current.ndim == 4 else 0
                    new.append(splice(src, current.shape, init=current, spatial_dims=spatial)
                               if src.ndim == current.ndim else current)
                layer.set_weights(new)
            shared += size
            loaded.append(key)
        share = shared / total if total else 0.0
        return (share, loaded) if return_keys else share


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
