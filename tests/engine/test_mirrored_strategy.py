import pytest
"""One training step under MirroredStrategy over two logical CPU devices.

Logical devices must be configured before TensorFlow starts, hence a fresh
process per check.
"""

import os
import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    import keras, numpy as np
    import keras_nas
    data = keras_nas.data.load("digits", batch_size=32)
    """
)


def run_under_strategy(body, timeout=300):
    """Runs `body` after PRELUDE in a new process; returns its stdout."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                            capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def test_plain_training_loop_under_mirrored_strategy():
    out = run_under_strategy(
        """
        from keras_nas import training
        with strategy.scope():
            x = keras.Input(data.input_shape)
            y = keras.layers.Conv2D(8, 3, activation="relu")(x)
            y = keras.layers.GlobalAveragePooling2D()(y)
            y = keras.layers.Dense(10, activation="softmax", name="predictions")(y)
            model = keras.Model(x, y)
            before = [w.numpy().copy() for w in model.trainable_weights]
            model.compile(optimizer=training.make_optimizer("sgd", 0.1),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(data.train.take(1), epochs=1, verbose=0)
        changed = any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights))
        print("CHANGED", changed)
        """
    )
    assert "CHANGED True" in out


@pytest.mark.slow  # keeps the default suite within 15 minutes; `pytest -m slow` runs it
def test_eoinas_bilevel_step_under_mirrored_strategy():
    # Both updates of Algorithm 1 (weights by SGD, alpha by Adam) aggregate
    # across replicas; each replica's sampled ops add to C^e.
    out = run_under_strategy(
        """
        from keras_nas.eoinas.supernet import BilevelSearchModel
        with strategy.scope():
            model = BilevelSearchModel(cells=3, channels=4, num_classes=10, input_shape=data.input_shape,
                                       primitives=["skip_connect", "sep_conv_3x3"], steps=2, multiplier=2)
            model.compile()
        alpha = model.alpha_normal.numpy().copy()
        stem = model.stem_conv.kernel.numpy().copy()
        pairs = tf.data.Dataset.zip((data.train, data.validation.repeat())).take(1)
        model.fit(pairs, epochs=1, verbose=0)
        print("ALPHA", not np.allclose(alpha, model.alpha_normal.numpy()))
        print("WEIGHTS", not np.allclose(stem, model.stem_conv.kernel.numpy()))
        print("COUNTS", int(model.op_counts.numpy().sum()))
        """
    )
    assert "ALPHA True" in out and "WEIGHTS True" in out
    # 5 edges x 2 cell types x 2 replicas, one sampled op each.
    assert "COUNTS 20" in out
