"""Datasets for every search: bundled digits (plain and cluttered), synthetic images, TFDS, image folders.

`load(name)` returns a `Dataset`: batched, prefetched `tf.data` pipelines of
`(float32 image normalised per channel, int32 label)` for training, validation
and test, plus what a serving graph needs to reproduce the preprocessing.

Raw pixels are float32 in [0, 255] everywhere before preprocessing; the exported
SavedModel takes that same range (see `preprocess`).
"""

import os
import socket
import urllib.parse

import numpy as np
import tensorflow as tf

from keras_nas.engine import common_options
from keras_nas.engine.common_options import AUGMENT_PRESETS, AUGMENTATIONS  # noqa: F401
from keras_nas.engine.options import Option, OptionError, OptionTypeError

BUILTIN = ("digits", "digits-cluttered", "synthetic")
# Share of the examples held out as test set when a source has no test split.
_TEST_FRACTION = 0.2
_TEST_SPLIT = Option("test_split", _TEST_FRACTION, "held-out test share", low=0, high=1, low_open=True,
                     high_open=True)
_CUTOUT = Option("cutout", 16, "side of the cutout square", low=1)
_NUM_CLASSES = Option("num_classes", 10, "synthetic classes", low=2)
_NUM_EXAMPLES = Option("num_examples", 512, "synthetic examples", low=1)
# Examples read to estimate the per-channel mean/std of a streamed dataset.
_STATS_EXAMPLES = 5000


class Dataset:
    """Train / validation / test pipelines of one image classification dataset.

    Built by `keras_nas.data.load`; not meant to be constructed by hand.

    Attributes:
        name: str. The dataset name given to `load`.
        train: `tf.data.Dataset` of `(images, labels)` batches, shuffled and
            augmented.
        validation: `tf.data.Dataset` carved from the training data with a
            seed; never overlaps `train`.
        test: `tf.data.Dataset` of the test split.
        input_shape: tuple `(height, width, channels)` of the model input.
        num_classes: int.
        class_names: list of str.
        mean, std: lists of per-channel statistics (in [0, 1] units) used to
            normalise the images.
        num_train, num_validation, num_test: example counts (None where a
            streamed source does not say).
    """

    def __init__(
        self,
        name,
        train,
        validation,
        test,
        input_shape,
        num_classes,
        class_names,
        mean,
        std,
        source_channels,
        num_train=None,
        num_validation=None,
        num_test=None,
        batch_size=None,
        raw_streams=None,
    ):
        self.name = name
        self.train = train
        self.validation = validation
        self.test = test
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.class_names = [str(c) for c in class_names]
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.source_channels = int(source_channels)
        self.num_train = num_train
        self.num_validation = num_validation
        self.num_test = num_test
        self.batch_size = batch_size
        self._raw_streams = dict(raw_streams or {})

    def raw(self, split="test", batch_size=None):
        """`(images, labels)` batches of `split` as a serving graph takes them.

        Float32 pixels in [0, 255] with the source channels, resized to the
        model's image size; not normalised, not augmented, not shuffled (what
        an exported model is fed, e.g. to calibrate or score a TFLite model).

        Args:
            split: str. `"train"`, `"validation"` or `"test"`. Defaults to
                `"test"`.
            batch_size: int. Defaults to the dataset's batch size.

        Example:

        >>> images, labels = next(iter(load("digits", channels=3).raw("train", batch_size=4)))
        >>> images.shape  # digits are grayscale: the source has 1 channel
        TensorShape([4, 8, 8, 1])
        """
        if split not in self._raw_streams:
            raise ValueError(f"`split` must be one of {sorted(self._raw_streams)}. Received: split={split!r}")
        size = tuple(self.input_shape[:2])

        def resize(image, label):
            return _resize_and_convert(image[None], size, self.source_channels)[0], label

        stream = self._raw_streams[split].map(resize, num_parallel_calls=tf.data.AUTOTUNE)
        return stream.batch(batch_size or self.batch_size or 64).prefetch(tf.data.AUTOTUNE)

    def preprocessing(self):
        """What a serving graph needs to turn raw pixels into model inputs."""
        return preprocessing_config(
            self.input_shape, self.mean, self.std, self.source_channels, self.class_names
        )

    def __repr__(self):
        return (
            f"Dataset(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, num_train={self.num_train}, "
            f"num_validation={self.num_validation}, num_test={self.num_test})"
        )


def preprocessing_config(input_shape, mean, std, source_channels, class_names=None):
    """The plain-dict description of the preprocessing used by `preprocess`."""
    return {
        "image_size": [int(input_shape[0]), int(input_shape[1])],
        "channels": int(input_shape[2]),
        "source_channels": int(source_channels),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "input_range": [0.0, 255.0],
        "class_names": list(class_names) if class_names is not None else None,
    }


def preprocess(images, config):
    """Turns raw float pixels in [0, 255] into normalised model inputs.

    Resizes (bilinear) to the model's image size when the size differs,
    converts between 1 and 3 channels, scales to [0, 1] and normalises each
    channel. Pure TensorFlow ops: the same function runs in the `tf.data`
    pipeline and inside the exported serving graph.

    Args:
        images: float tensor `(batch, height, width, channels)` in [0, 255].
        config: dict from `Dataset.preprocessing()`.
    """
    images = _resize_and_convert(images, config["image_size"], config["channels"])
    mean = tf.constant(config["mean"], tf.float32)
    std = tf.constant(config["std"], tf.float32)
    return (images / 255.0 - mean) / std


def _resize_and_convert(images, image_size, channels):
    """Bilinear resize to `image_size` (when it differs) and 1 <-> 3 channels."""
    images = tf.cast(images, tf.float32)
    height, width = image_size
    if images.shape[-1] != channels:
        if images.shape[-1] == 1 and channels == 3:
            images = tf.image.grayscale_to_rgb(images)
        elif images.shape[-1] == 3 and channels == 1:
            images = tf.image.rgb_to_grayscale(images)
        else:
            raise ValueError(
                f"Cannot convert images with {images.shape[-1]} channels to "
                f"{channels} channels."
            )
    static = images.shape[1:3]
    if static[0] is not None and static[1] is not None:
        if (static[0], static[1]) == (height, width):
            return images
        return tf.image.resize(images, (height, width), method="bilinear")
    # Sizes only known at run time (the serving signature): decide in-graph.
    shape = tf.shape(images)
    same_size = tf.logical_and(tf.equal(shape[1], height), tf.equal(shape[2], width))
    return tf.cond(
        same_size,
        lambda: tf.reshape(images, [-1, height, width, channels]),
        lambda: tf.image.resize(images, (height, width), method="bilinear"),
    )


# ----------------------------------------------------------------------------
# Sources: each returns raw float32 pixels in [0, 255].


def _digits_arrays():
    from sklearn.datasets import load_digits

    digits = load_digits()
    # sklearn's digits hold 0..16 intensities; map them onto the [0, 255] range
    # every other source uses.
    images = digits.images.astype("float32")[..., None] * (255.0 / 16.0)
    labels = digits.target.astype("int32")
    return images, labels, [str(c) for c in digits.target_names]


# `digits-cluttered` (see `load`): each bundled 8x8 digit upscaled to 14x14, rotated, placed at random on a
# 24x24 canvas with fragments of other digits and Gaussian noise, several renderings per digit. The settings
# are those of the cluttered task of benchmarks/bench_epnas.py (part 2), where small CNNs need many epochs.
CLUTTERED = dict(canvas=24, digit=14, renderings=6, clutter=2, fragment=7, noise=0.2, max_angle=15.0)
_CLUTTERED_CACHE = {}


def _render_cluttered(images, groups, canvas, digit, renderings, clutter, fragment, noise, max_angle):
    """Renders `renderings` cluttered images of every digit, in [0, 1]; rows `i * renderings ...` are digit i.

    Each digit's renderings come from its own random stream (seeded by its index), so they are the same
    whatever split or seed a caller uses. Clutter fragments are cut from other digits of the same `groups`
    value (test digits never appear in training images, not even as clutter).
    """
    from scipy import ndimage  # a dependency of scikit-learn

    zoom = digit / images.shape[1]
    big = np.clip(np.stack([ndimage.zoom(image, zoom, order=1) for image in images]), 0, 1)
    members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    out = np.zeros((len(images) * renderings, canvas, canvas, 1), "float32")
    for i in range(len(images)):
        rng = np.random.default_rng([20261203, i])
        for r in range(renderings):
            image = np.zeros((canvas, canvas), "float32")
            for _ in range(clutter):
                other = big[rng.choice(members[groups[i]])]
                oy, ox = rng.integers(0, digit - fragment + 1, 2)
                py, px = rng.integers(0, canvas - fragment + 1, 2)
                window = image[py:py + fragment, px:px + fragment]
                np.maximum(window, other[oy:oy + fragment, ox:ox + fragment], out=window)
            turned = np.clip(ndimage.rotate(big[i], rng.uniform(-max_angle, max_angle), reshape=False, order=1), 0, 1)
            py, px = rng.integers(0, canvas - digit + 1, 2)
            window = image[py:py + digit, px:px + digit]
            np.maximum(window, turned, out=window)
            out[i * renderings + r, ..., 0] = np.clip(image + rng.normal(0.0, noise, image.shape), 0, 1)
    return out


def _cluttered_arrays(test_digits):
    """`(images in [0, 255], labels, class_names)` of `digits-cluttered`, cached per test split."""
    key = tuple(test_digits)
    if key not in _CLUTTERED_CACHE:
        images, labels, class_names = _digits_arrays()
        groups = np.zeros(len(labels), "int32")
        groups[list(test_digits)] = 1
        rendered = _render_cluttered(images[..., 0] / 255.0, groups, **CLUTTERED) * 255.0
        _CLUTTERED_CACHE.clear()
        _CLUTTERED_CACHE[key] = (rendered, np.repeat(labels, CLUTTERED["renderings"]), class_names)
    return _CLUTTERED_CACHE[key]


def _synthetic_arrays(input_shape, num_classes, num_examples, seed):
    """Random images with a per-class template, so a model can learn them."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, size=(num_classes,) + tuple(input_shape))
    labels = (np.arange(num_examples) % num_classes).astype("int32")
    rng.shuffle(labels)
    noise = rng.normal(0, 40, size=(num_examples,) + tuple(input_shape))
    images = np.clip(templates[labels] + noise, 0, 255).astype("float32")
    return images, labels, [f"class_{i}" for i in range(num_classes)]


def _split_indices(labels, fraction, seed):
    """Seeded stratified split of indices into (kept, held_out)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts.min() >= 2 and fraction * len(labels) >= len(counts) else None
    kept, held = train_test_split(
        indices, test_size=fraction, random_state=seed, stratify=stratify
    )
    return np.sort(kept), np.sort(held)


def _hash_filter(dataset, seed, fraction, keep_low):
    """Splits a stream deterministically by a seeded per-example draw."""

    def pick(index, example):
        draw = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), index]))
        return draw < fraction if keep_low else draw >= fraction

    return dataset.enumerate().filter(pick).map(lambda i, e: e)


def _network_reachable(url, timeout=3.0):
    host = urllib.parse.urlparse(url or "").hostname
    if not host:
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _tfds_streams(name, data_dir, seed, validation_split):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError
        raise OptionError(
            f"`name` must be one of {list(BUILTIN)}, an existing image folder or a TensorFlow Datasets name (e.g. "
            f"'cifar10', 'cifar100', 'imagenet_resized/32x32'); TFDS says: {str(error).splitlines()[0]}.",
            name=name) from None
    if not builder.is_prepared():
        where = data_dir or os.path.expanduser("~/tensorflow_datasets")
        how = (
            f"Prepare it on a machine with network access with "
            f"`python -c \"import tensorflow_datasets as tfds; tfds.load('{name}', "
            f"data_dir='DIR')\"` (or `tfds build {name} --data_dir DIR`), copy DIR "
            "here and pass `--data-dir DIR` (`data_dir=` in Python)."
        )
        if not _network_reachable(builder.info.homepage):
            raise ValueError(
                f"Dataset `{name}` is not prepared in {where} and cannot be "
                f"downloaded from this machine (no connection). {how}"
            )
        builder.download_and_prepare()
    info = builder.info
    image_key = "image" if "image" in info.features else list(info.features)[0]
    label_key = "label"
    features = info.features
    num_classes = features[label_key].num_classes
    class_names = list(features[label_key].names)
    source_shape = features[image_key].shape
    splits = info.splits
    as_pair = lambda e: (tf.cast(e[image_key], tf.float32), tf.cast(e[label_key], tf.int32))
    full_train = builder.as_dataset(split="train", shuffle_files=False).map(as_pair)
    if "test" in splits:
        test = builder.as_dataset(split="test").map(as_pair)
        train_pool = full_train
        num_test = splits["test"].num_examples
    elif "validation" in splits:
        test = builder.as_dataset(split="validation").map(as_pair)
        train_pool = full_train
        num_test = splits["validation"].num_examples
    else:
        test = _hash_filter(full_train, seed + 1, _TEST_FRACTION, keep_low=True)
        train_pool = _hash_filter(full_train, seed + 1, _TEST_FRACTION, keep_low=False)
        num_test = None
    train = _hash_filter(train_pool, seed, validation_split, keep_low=False)
    validation = _hash_filter(train_pool, seed, validation_split, keep_low=True)
    return train, validation, test, source_shape, num_classes, class_names, num_test


IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def _folder_files(root, class_names=None):
    """`(paths, labels, class_names)` of a folder with one sub-folder per class.

    The order is Keras' `image_dataset_from_directory`'s: classes sorted,
    then each class' folders walked in sorted order, files sorted.
    """
    if class_names is None:
        class_names = sorted(d for d in os.listdir(root)
                             if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    paths, labels = [], []
    for index, name in enumerate(class_names):
        for folder, _, files in sorted(os.walk(os.path.join(root, name)), key=lambda w: w[0]):
            for file in sorted(files):
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(folder, file))
                    labels.append(index)
    return paths, np.asarray(labels, dtype="int32"), list(class_names)


def _check_classes(root, labels, class_names):
    if len(class_names) < 2:
        raise OptionError(
            f"`name` must be a folder with one sub-folder of images per class, at least 2 classes; {root} has "
            f"{len(class_names)} ({class_names}).", name=root)
    counts = np.bincount(labels, minlength=len(class_names))
    empty = [c for c, n in zip(class_names, counts) if n == 0]
    if empty:
        raise OptionError(
            f"`name` has class folders without images ({', '.join(empty)}); each class needs at least one "
            f"{'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} file.", name=root)


def _decode(path, image_size):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.image.resize(image, image_size, method="bilinear")


def _unreadable(paths):
    """Indices of the files that do not decode as images: one parallel pass over them all."""
    indices = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), paths))
    # The decoded height (known only once decoded): a value TensorFlow cannot fold away without decoding.
    decoded = indices.map(
        lambda i, p: (i, tf.shape(tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False))[0]),
        num_parallel_calls=tf.data.AUTOTUNE)
    readable = set()
    for batch, _ in decoded.ignore_errors().batch(1024).as_numpy_iterator():
        readable.update(int(i) for i in batch)
    return [i for i in range(len(paths)) if i not in readable]


def _readable(root, paths, labels, skip_unreadable):
    """`paths` and `labels` after every file was decoded once; damaged files are named or left out.

    `tf.keras.utils.image_dataset_from_directory` decodes lazily: one damaged
    file stops training at some step with an op error that does not name it.
    """
    bad = _unreadable(paths)
    if bad:
        names = [os.path.relpath(paths[i], root) for i in bad]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        if not skip_unreadable:
            raise OptionError(
                f"`name` holds {len(bad)} file(s) that do not decode as images: {shown}. Fix or remove them, or "
                "pass `skip_unreadable_images` to leave them out.", names=("skip_unreadable_images",), name=root)
        print(f"Leaving out {len(bad)} unreadable image file(s) of {root}: {shown}", flush=True)
        keep = np.setdiff1d(np.arange(len(paths)), bad)
        paths, labels = [paths[i] for i in keep], labels[keep]
    return np.asarray(paths), labels


def _hash_draws(count, seed):
    """The per-example draws of `_hash_filter` for examples `0 .. count - 1`, as a NumPy array."""
    draws = tf.data.Dataset.range(count).map(
        lambda i: tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), i]))).batch(4096)
    return np.concatenate([d for d in draws.as_numpy_iterator()] or [np.zeros(0, np.float32)])


def _check_split(labels, train, validation, class_names, validation_split):
    """Every class must keep an example in the training and the validation split."""
    for part, indices in (("training", train), ("validation", validation)):
        missing = sorted(set(range(len(class_names))) - set(labels[indices].tolist()))
        if missing:
            names = [class_names[i] for i in missing]
            raise OptionError(
                f"`validation_split` leaves classes {names} without an example in the {part} split; use more "
                f"images per class or another `validation_split`.", validation_split=validation_split)


def _folder_streams(directory, image_size, seed, validation_split, skip_unreadable):
    if image_size is None:
        raise OptionError(
            "`image_size` is required for an image folder (its images may have any size; they are resized to "
            "image_size x image_size): pass e.g. image_size=32 (`--image-size 32` on the command line).",
            image_size=None, names=("name",))
    has_splits = all(os.path.isdir(os.path.join(directory, s)) for s in ("train", "test"))
    root = os.path.join(directory, "train") if has_splits else directory
    paths, labels, class_names = _folder_files(root)
    _check_classes(root, labels, class_names)
    paths, labels = _readable(root, paths, labels, skip_unreadable)
    stream = lambda p, y: tf.data.Dataset.from_tensor_slices((p, y)).map(
        lambda path, label: (_decode(path, image_size), label), num_parallel_calls=tf.data.AUTOTUNE)
    # The splits `_hash_filter` makes of a stream, taken on the indices (same examples).
    if has_splits:
        test_root = os.path.join(directory, "test")
        test_paths, test_labels, _ = _folder_files(test_root, class_names)
        test = stream(*_readable(test_root, test_paths, test_labels, skip_unreadable))
        pool = np.arange(len(paths))
    else:
        in_test = _hash_draws(len(paths), seed + 1) < _TEST_FRACTION
        test = stream(paths[in_test], labels[in_test])
        pool = np.flatnonzero(~in_test)
    in_validation = _hash_draws(len(pool), seed) < validation_split
    train, validation = pool[~in_validation], pool[in_validation]
    _check_split(labels, train, validation, class_names, validation_split)
    return (stream(paths[train], labels[train]), stream(paths[validation], labels[validation]), test,
            tuple(image_size) + (3,), len(class_names), class_names)


# ----------------------------------------------------------------------------
# Augmentation: stateless ops seeded per example, so runs repeat exactly.


def _augment_fn(ops, cutout, seed):
    """Returns `f(image_in_0_1, example_seed) -> image` for raw-space ops."""

    def raw_ops(image, example_seed):
        height, width = image.shape[0], image.shape[1]
        if "crop" in ops:
            padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])  # pad 4, as DARTS/ResNet
            image = tf.image.stateless_random_crop(
                padded, tf.shape(image), seed=example_seed
            )
        if "flip" in ops:
            image = tf.image.stateless_random_flip_left_right(
                image, seed=example_seed + 1
            )
        if "color" in ops:
            image = tf.image.stateless_random_brightness(image, 0.2, seed=example_seed + 2)
            image = tf.image.stateless_random_contrast(
                image, 0.8, 1.2, seed=example_seed + 3
            )
            image = tf.clip_by_value(image, 0.0, 1.0)
        return tf.ensure_shape(image, (height, width, image.shape[2]))

    def cutout_op(image, example_seed):
        # Cutout (DeVries & Taylor 2017): one square, centre anywhere in the
        # image, clipped at the borders, zeroed after normalisation.
        height, width = image.shape[0], image.shape[1]
        centre = tf.random.stateless_uniform(
            [2], seed=example_seed + 4, maxval=tf.int32.max, dtype=tf.int32
        ) % tf.constant([height, width])
        rows = tf.range(height)[:, None]
        cols = tf.range(width)[None, :]
        half = cutout // 2
        inside = (
            (rows >= centre[0] - half)
            & (rows < centre[0] - half + cutout)
            & (cols >= centre[1] - half)
            & (cols < centre[1] - half + cutout)
        )
        return image * tf.cast(~inside, image.dtype)[:, :, None]

    return raw_ops, (cutout_op if "cutout" in ops else None)


def _pipeline(stream, config, *, batch_size, shuffle, augment_ops, cutout, seed, cache):
    """Preprocesses, augments, shuffles, batches and prefetches a stream."""
    mean = tf.constant(config["mean"], tf.float32)
    std = tf.constant(config["std"], tf.float32)
    height, width = config["image_size"]

    def to_unit(image, label):
        # Resize/convert once per example, before augmentation: crop and flip
        # work on the model's input size, as in the papers.
        image = _resize_and_convert(image[None], config["image_size"], config["channels"])
        return image[0] / 255.0, label

    stream = stream.map(to_unit, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        stream = stream.cache()
    if shuffle:
        stream = stream.shuffle(
            buffer_size=10000, seed=seed, reshuffle_each_iteration=True
        )
    if augment_ops:
        raw_ops, cutout_op = _augment_fn(augment_ops, cutout, seed)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        stream = tf.data.Dataset.zip((stream, seeds))

        def augment(pair, example_seed):
            image, label = pair
            example_seed = tf.cast(example_seed, tf.int32)
            image = raw_ops(image, example_seed)
            image = (image - mean) / std
            if cutout_op is not None:
                image = cutout_op(image, example_seed)
            return image, label

        stream = stream.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        stream = stream.map(
            lambda image, label: ((image - mean) / std, label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    stream = stream.map(
        lambda image, label: (tf.ensure_shape(image, (height, width, config["channels"])), label)
    )
    return stream.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _stats(images_unit):
    mean = images_unit.mean(axis=(0, 1, 2))
    std = images_unit.std(axis=(0, 1, 2))
    return mean, np.maximum(std, 1e-3)


def _stream_stats(stream, config):
    total, total_sq, count = 0.0, 0.0, 0
    for images, _ in stream.take(_STATS_EXAMPLES).batch(500):
        x = _resize_and_convert(images, config["image_size"], config["channels"]).numpy() / 255.0
        total = total + x.sum(axis=(0, 1, 2))
        total_sq = total_sq + (x**2).sum(axis=(0, 1, 2))
        count += x.shape[0] * x.shape[1] * x.shape[2]
    if count == 0:
        raise ValueError("The training split is empty after carving validation/test.")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean, np.maximum(std, 1e-3)


def _check_load_arguments(name, image_size, channels, batch_size, validation_split, test_split, cutout, seed,
                          skip_unreadable_images, augment, input_shape, num_classes, num_examples):
    """`load`'s arguments checked alone and together; returns `(image_size, augment_ops)`."""
    if not isinstance(name, str) or not name.strip():
        raise OptionTypeError("`name` must be a non-empty string.", name=name)
    image_size = common_options.image_size_pair("image_size", image_size)
    common_options.CHANNELS.check(channels)
    common_options.BATCH_SIZE.check(batch_size)
    common_options.VALIDATION_SPLIT.check(validation_split)
    _TEST_SPLIT.check(test_split)
    _CUTOUT.check(cutout)
    common_options.SEED.check(seed)
    common_options.SKIP_UNREADABLE.check(skip_unreadable_images)
    augment_ops = common_options.augment_names("augment", augment)
    if name != "synthetic" and any(
        v is not None for v in (input_shape, num_classes, num_examples)
    ):
        raise OptionError("`input_shape`, `num_classes` and `num_examples` apply to name='synthetic' only.",
                          name=name)
    return image_size, augment_ops


def _builtin_streams(name, input_shape, num_classes, num_examples, test_split, validation_split, seed):
    """Streams of the built-in datasets with their counts and the training images (for statistics)."""
    if name == "digits-cluttered":
        # Split the digits, then render: the renderings of one digit all fall in one split.
        _, labels, _ = _digits_arrays()
        pool, test_digits = _split_indices(labels, test_split, seed=0)
        train_rel, val_rel = _split_indices(labels[pool], validation_split, seed)
        images, labels, class_names = _cluttered_arrays(test_digits)
        rows = lambda digits: (digits[:, None] * CLUTTERED["renderings"]  # noqa: E731
                               + np.arange(CLUTTERED["renderings"])).ravel()
        train_idx, val_idx, test_idx = rows(pool[train_rel]), rows(pool[val_rel]), rows(test_digits)
    elif name == "digits":
        images, labels, class_names = _digits_arrays()
    else:
        input_shape = tuple(input_shape) if input_shape is not None else (32, 32, 3)
        if len(input_shape) != 3 or not all(
            isinstance(d, (int, np.integer)) and 1 <= d <= common_options.MAX_IMAGE_SIZE for d in input_shape
        ):
            raise OptionError(f"`input_shape` must be (height, width, channels) of ints in "
                              f"[1, {common_options.MAX_IMAGE_SIZE}].", input_shape=input_shape)
        num_classes = _NUM_CLASSES.check(10 if num_classes is None else num_classes)
        num_examples = _NUM_EXAMPLES.check(512 if num_examples is None else num_examples)
        images, labels, class_names = _synthetic_arrays(input_shape, num_classes, num_examples, seed)
    if name != "digits-cluttered":
        pool_idx, test_idx = _split_indices(labels, test_split, seed=0)
        train_rel, val_rel = _split_indices(labels[pool_idx], validation_split, seed)
        train_idx, val_idx = pool_idx[train_rel], pool_idx[val_rel]
    _check_split(labels, train_idx, val_idx, class_names, validation_split)
    slices = lambda idx: tf.data.Dataset.from_tensor_slices((images[idx], labels[idx]))  # noqa: E731
    counts = (len(train_idx), len(val_idx), len(test_idx))
    return (slices(train_idx), slices(val_idx), slices(test_idx), images.shape[1:], len(class_names), class_names,
            counts, images[train_idx])


def _normalisation(train_s, train_images, source_shape, image_size, channels, class_names):
    """`(config, mean, std)`: the preprocessing config and the per-channel statistics of the training split."""
    source_channels = int(source_shape[-1])
    height, width = image_size or (int(source_shape[0]), int(source_shape[1]))
    out_channels = channels or source_channels
    input_shape_ = (height, width, out_channels)
    config = preprocessing_config(input_shape_, [0.0], [1.0], source_channels, class_names)
    if train_images is not None:
        unit = _resize_and_convert(train_images, (height, width), out_channels).numpy() / 255.0
        mean, std = _stats(unit)
    else:
        mean, std = _stream_stats(train_s, config)
    mean = np.broadcast_to(mean, (out_channels,))
    std = np.broadcast_to(std, (out_channels,))
    return preprocessing_config(input_shape_, mean, std, source_channels, class_names), mean, std


def load(
    name="digits",
    *,
    image_size=None,
    channels=None,
    batch_size=64,
    validation_split=0.2,
    seed=0,
    augment=None,
    cutout=16,
    data_dir=None,
    input_shape=None,
    num_classes=None,
    num_examples=None,
    test_split=_TEST_FRACTION,
    skip_unreadable_images=False,
):
    """Loads an image classification dataset as train/validation/test pipelines.

    Sources, by `name`:
    - `"digits"`: scikit-learn's bundled 8x8 handwritten digits (1,797 images,
      10 classes); no network needed. The default everywhere.
    - `"digits-cluttered"`: a harder task made offline and deterministically
      from the same digits: each digit upscaled to 14x14, rotated by up to
      15 degrees, placed at random on a 24x24 canvas with two fragments of
      other digits and Gaussian noise; 6 renderings per digit (10,782
      images, 24x24x1). The digits are split before rendering, so no
      validation or test image shows a training digit. Architectures
      separate on it where on `"digits"` nearly all reach 96-98%
      (benchmarks/RESULTS.md, "digits-cluttered").
    - `"synthetic"`: random images with one template per class (learnable),
      of shape `input_shape` (default `(32, 32, 3)`), `num_classes` (10) and
      `num_examples` (512).
    - a path to a folder of images with one sub-folder per class (optionally
      `train/` and `test/` sub-folders); `image_size` required.
    - any TensorFlow Datasets name (`"cifar10"`, `"cifar100"`,
      `"imagenet_resized/32x32"`, ...), read from `data_dir`. When the data are
      not prepared there and this machine cannot download them, raises at
      once with instructions.

    The validation set is carved from the training data with `seed` and never
    overlaps it. Sources without a test split get `test_split` of the examples
    held out as test set (seeded as well). Images are normalised per channel
    with statistics of the training split.

    Args:
        name: str. Dataset name or image folder. Defaults to `"digits"`.
        image_size: int or (height, width). Resize images (bilinear). Defaults
            to the source size.
        channels: int, 1 or 3. Convert grayscale/RGB. Defaults to the source.
        batch_size: int. Defaults to `64`.
        validation_split: float in (0, 1). Share of the training data held
            out for validation. Defaults to `0.2`.
        seed: int. Seeds splits, shuffling and augmentation. Defaults to `0`.
        augment: None, `"standard"` (pad-4 random crop + horizontal flip),
            `"cutout"` (standard + cutout), or a list / comma-separated string
            of `"crop"`, `"flip"`, `"cutout"`, `"color"` (brightness and
            contrast). Applied to `train` only. Defaults to None.
        cutout: int. Side of the cutout square. Defaults to `16` (DARTS).
        data_dir: str. TFDS data folder. Defaults to TFDS' own default.
        input_shape: tuple. Synthetic only.
        num_classes: int. Synthetic only.
        num_examples: int. Synthetic only.
        test_split: float. Held-out test share for sources without a test
            split. Defaults to `0.2`.
        skip_unreadable_images: bool. Image folders: leave out (and name)
            the files that do not decode as images instead of raising.
            Every file is decoded once when the folder is loaded. Defaults
            to `False`.

    Returns:
        A `Dataset`.

    Example:

    >>> data = load("digits", image_size=16, batch_size=32)
    >>> data.input_shape, data.num_classes
    ((16, 16, 1), 10)
    >>> images, labels = next(iter(data.train))
    >>> images.shape
    TensorShape([32, 16, 16, 1])
    """
    image_size, augment_ops = _check_load_arguments(
        name, image_size, channels, batch_size, validation_split, test_split, cutout, seed, skip_unreadable_images,
        augment, input_shape, num_classes, num_examples)
    seed = int(seed)
    num_train = num_validation = num_test = None
    train_images = None
    if name in BUILTIN:
        (train_s, val_s, test_s, source_shape, num_classes, class_names, (num_train, num_validation, num_test),
         train_images) = _builtin_streams(name, input_shape, num_classes, num_examples, test_split,
                                          validation_split, seed)
        cache = True
    elif os.path.isdir(name):
        train_s, val_s, test_s, source_shape, num_classes, class_names = _folder_streams(
            name, image_size, seed, validation_split, skip_unreadable_images
        )
        cache = False
    else:
        (
            train_s, val_s, test_s, source_shape, num_classes, class_names, num_test
        ) = _tfds_streams(name, data_dir, seed, validation_split)
        cache = False

    config, mean, std = _normalisation(train_s, train_images, source_shape, image_size, channels, class_names)
    input_shape_, source_channels = tuple(config["image_size"]) + (config["channels"],), config["source_channels"]
    common = dict(batch_size=batch_size, cutout=cutout, seed=seed, cache=cache)
    return Dataset(
        name=name,
        train=_pipeline(train_s, config, shuffle=True, augment_ops=augment_ops, **common),
        validation=_pipeline(val_s, config, shuffle=False, augment_ops=(), **common),
        test=_pipeline(test_s, config, shuffle=False, augment_ops=(), **common),
        input_shape=input_shape_,
        num_classes=num_classes,
        class_names=class_names,
        mean=mean,
        std=std,
        source_channels=source_channels,
        num_train=num_train,
        num_validation=num_validation,
        num_test=num_test,
        batch_size=batch_size,
        raw_streams={"train": train_s, "validation": val_s, "test": test_s},
    )
