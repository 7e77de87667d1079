import numpy as np
import pytest
import tensorflow as tf

from keras_nas import data


def _all(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_digits_loads_offline_with_disjoint_splits():
    d = data.load("digits", batch_size=128)
    assert d.input_shape == (8, 8, 1)
    assert d.num_classes == 10 and d.class_names == [str(i) for i in range(10)]
    assert d.num_train + d.num_validation + d.num_test == 1797
    x_train, y_train = _all(d.train)
    x_val, _ = _all(d.validation)
    x_test, _ = _all(d.test)
    assert len(x_train) == d.num_train and len(x_val) == d.num_validation
    assert y_train.dtype == np.int32 and x_train.dtype == np.float32
    # Normalised with training statistics.
    assert abs(x_train.mean()) < 0.05 and abs(x_train.std() - 1) < 0.05
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}
    # Digits holds a few exact duplicates; disjoint indices leave almost none.
    assert len(rows(x_train) & rows(x_val)) <= 3
    assert len(rows(x_train) & rows(x_test)) <= 3


def test_validation_split_is_seeded():
    a = _all(data.load("digits", seed=1).validation)[1]
    b = _all(data.load("digits", seed=1).validation)[1]
    c = _all(data.load("digits", seed=2).validation)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cluttered_digits_split_by_digit_and_same_for_every_seed():
    d = data.load("digits-cluttered", batch_size=512)
    renderings = data.CLUTTERED["renderings"]
    assert d.input_shape == (24, 24, 1) and d.num_classes == 10
    assert d.num_train + d.num_validation + d.num_test == 1797 * renderings
    assert d.num_test == 360 * renderings
    # Split by digit: each split holds whole blocks of one digit's renderings; no block is in two splits.
    _, labels, _ = data._digits_arrays()
    images, _, _ = data._cluttered_arrays(data._split_indices(labels, 0.2, seed=0)[1])
    assert images.shape == (1797 * renderings, 24, 24, 1)
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 200
    digit_of = {images[i].tobytes(): i // renderings for i in range(len(images))}
    streams = data._builtin_streams("digits-cluttered", None, None, None, 0.2, 0.2, 0)[:3]
    rows = [[digit_of[x.numpy().tobytes()] for x, _ in stream] for stream in streams]
    blocks = [set(r) for r in rows]
    assert all(len(r) == len(b) * renderings for r, b in zip(rows, blocks))
    assert sum(len(b) for b in blocks) == 1797 and len(set.union(*blocks)) == 1797
    # The test images do not depend on the seed (the validation split does).
    raw = lambda ds: _all(ds.test)[0] * ds.std[0] + ds.mean[0]  # noqa: E731
    other = data.load("digits-cluttered", batch_size=512, seed=1)
    np.testing.assert_allclose(raw(d), raw(other), atol=1e-4)
    np.testing.assert_array_equal(_all(d.test)[1], _all(other.test)[1])
    assert not np.array_equal(_all(d.validation)[1], _all(other.validation)[1])


def test_digits_resized_to_three_channels():
    d = data.load("digits", image_size=32, channels=3, batch_size=16)
    x, y = next(iter(d.train))
    assert x.shape == (16, 32, 32, 3)
    assert d.input_shape == (32, 32, 3)
    np.testing.assert_allclose(x[..., 0], x[..., 1])


def test_synthetic_shape_and_counts():
    d = data.load("synthetic", input_shape=(8, 8, 3), num_classes=4, num_examples=100, batch_size=10)
    assert d.input_shape == (8, 8, 3) and d.num_classes == 4
    assert d.num_train + d.num_validation + d.num_test == 100


def test_augmentation_is_deterministic_given_seed_and_changes_images():
    kw = dict(image_size=16, augment="cutout", cutout=4, batch_size=64, seed=3)
    x1 = next(iter(data.load("digits", **kw).train))[0].numpy()
    x2 = next(iter(data.load("digits", **kw).train))[0].numpy()
    np.testing.assert_array_equal(x1, x2)
    plain = data.load("digits", image_size=16, batch_size=64, seed=3)
    x3 = next(iter(plain.train))[0].numpy()
    assert not np.allclose(x1, x3)


def test_cutout_zeroes_a_square():
    raw, cutout = data._augment_fn(("cutout",), 4, 0)
    image = tf.ones((8, 8, 1))
    out = cutout(image, tf.constant([1, 2], tf.int32)).numpy()
    zeros = int((out == 0).sum())
    assert 4 <= zeros <= 16


def test_preprocess_matches_pipeline():
    d = data.load("digits", image_size=16, channels=3, batch_size=8)
    raw = data._digits_arrays()[0]
    _, test_idx = data._split_indices(data._digits_arrays()[1], 0.2, seed=0)
    expected = next(iter(d.test))[0].numpy()
    got = data.preprocess(raw[test_idx[:8]], d.preprocessing()).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(30):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    d = data.load(str(tmp_path), image_size=8, batch_size=4)
    assert d.class_names == ["cat", "dog"] and d.input_shape == (8, 8, 3)
    n = sum(int(x.shape[0]) for x, _ in d.train) + sum(
        int(x.shape[0]) for x, _ in d.validation) + sum(int(x.shape[0]) for x, _ in d.test)
    assert n == 60
    with pytest.raises(ValueError, match=r"`image_size` is required.*`--image-size 32`"):
        data.load(str(tmp_path))


def test_missing_tfds_data_fails_fast(tmp_path):
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match="not prepared.*--data-dir"):
        data.load("cifar10", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 30


def test_tfds_source_with_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    # mock_data fakes the download; pretend the network is there.
    monkeypatch.setattr(data, "_network_reachable", lambda url: True)
    with tfds.testing.mock_data(num_examples=40):
        d = data.load("mnist", batch_size=8, validation_split=0.25)
    assert d.input_shape == (28, 28, 1) and d.num_classes == 10
    x, y = next(iter(d.train))
    assert x.shape[1:] == (28, 28, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "nonexistent_dataset_xyz"}, "`name` must be one of"),
        ({"validation_split": 1.5}, r"`validation_split` must be a float in \(0, 1\)"),
        ({"validation_split": 0}, r"`validation_split` must be a float in \(0, 1\)"),
        ({"batch_size": 0}, "`batch_size` must be an int >= 1"),
        ({"image_size": (8,)}, "`image_size` must be"),
        ({"channels": 2}, r"`channels` must be one of \[1, 3\]"),
        ({"augment": "mixup"}, "`augment` must be one of"),
        ({"num_classes": 3}, "apply to name='synthetic' only"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"name": "digits", **kwargs}
    with pytest.raises(ValueError, match=match):
        data.load(**kwargs)
