import keras
import pytest
from keras import layers

from keras_nas import costs


def _small_net():
    x = keras.Input((16, 16, 3))
    y = layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.DepthwiseConv2D(3, padding="same")(y)
    y = layers.SeparableConv2D(8, 3, dilation_rate=2, padding="same")(y)
    y = layers.MaxPooling2D()(y)
    y = layers.AveragePooling2D(2)(y)
    y = layers.GlobalAveragePooling2D()(y)
    y = layers.Dense(10, activation="softmax")(y)
    return keras.Model(x, y)


def test_conv_macs_by_hand():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3)])
    # 6*6*4 outputs x 3*3*3 kernel, plus one bias add per output.
    assert costs.count_macs(model) == 6 * 6 * 4 * 27 + 6 * 6 * 4


def test_each_layer_type_by_hand():
    by_type = costs.macs_by_op_type(_small_net())
    assert by_type["Conv2D"] == 16 * 16 * 8 * 27 + 16 * 16 * 8 * 8  # 3x3 conv + separable's 1x1
    # plain depthwise 3x3 + separable's dilated depthwise 3x3 (same MACs as undilated)
    assert by_type["DepthwiseConv2dNative"] == 2 * 16 * 16 * 8 * 9
    assert by_type["MaxPool"] == 8 * 8 * 8 * 4
    assert by_type["AvgPool"] == 4 * 4 * 8 * 4
    assert by_type["Mean"] == 4 * 4 * 8
    assert by_type["MatMul"] == 8 * 10
    assert by_type["Relu"] == 16 * 16 * 8


def test_agrees_with_tensorflow_profiler():
    model = _small_net()
    ours = costs.macs_by_op_type(model)
    theirs = costs.tf_profiler_flops(model, by_op_type=True)
    # TensorFlow counts a MAC as two FLOPs for convolutions and matmuls ...
    for op in ("Conv2D", "DepthwiseConv2dNative", "MatMul"):
        assert theirs[op] == 2 * ours[op], op
    # ... and one FLOP per output (per window element for pooling) elsewhere.
    for op in ("MaxPool", "AvgPool", "Mean", "BiasAdd", "AddV2", "Mul"):
        assert theirs[op] == ours[op], op
    report = costs.profile(model)
    assert report.flops == 2 * report.macs


def test_profile_report_fields():
    model = _small_net()
    report = costs.profile(model, latency=True, latency_runs=3)
    d = report.to_dict()
    assert d["params"] == model.count_params()
    assert d["trainable_params"] == sum(int(w.numpy().size) for w in model.trainable_weights)
    assert d["latency_ms"] > 0
    assert d["compute_intensity"] == pytest.approx(report.flops / report.bytes_moved, rel=1e-3)
    activations = 16 * 16 * 3 + 16 * 16 * 8 * 5 + 8 * 8 * 8 + 4 * 4 * 8 + 8 + 10
    assert report.activations == activations
    assert report.memory_mb == pytest.approx((activations + d["params"]) * 4 / 2**20)


def test_subclassed_model_falls_back_to_graph():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(4, 3, use_bias=False)

        def call(self, x):
            return self.conv(x)

    model = Net()
    model.build((None, 8, 8, 3))
    model(keras.ops.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="fully defined input shape"):
        costs.profile(model)


def test_training_emissions():
    e = costs.training_emissions(3600, power_watts=250, carbon_intensity=0.5)
    assert e["energy_kwh"] == pytest.approx(0.25)
    assert e["co2_kg"] == pytest.approx(0.125)
    with pytest.raises(ValueError, match="`power_watts` must be a non-negative number"):
        costs.training_emissions(10, power_watts=-1)


def test_profile_rejects_non_models():
    with pytest.raises(TypeError, match="`model` must be a Keras model"):
        costs.profile("resnet")


def test_cifar_resnet56_matches_paper_and_tensorflow():
    from keras_nas.stagewise.resnet import stage_resnet

    model = stage_resnet((9, 9, 9))
    report = costs.profile(model)
    # Paper 000 Table III: ResNet-56 has 0.86 M parameters, 125 M "FLOPs"
    # (multiply-accumulates of its convolutions) and 10.42 MB memory.
    assert round(report.params / 1e6, 2) == 0.86
    assert round(report.macs_by_kind["conv"] / 1e6) == 125
    assert 125e6 <= report.macs <= 128e6
    assert abs(report.memory_mb - 10.42) / 10.42 < 0.02
    tf_flops = costs.tf_profiler_flops(model)
    assert abs(report.flops - tf_flops) / tf_flops < 0.02
