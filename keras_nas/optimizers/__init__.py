
from keras_nas.optimizers.scaled_sgd import ScaledSGD  # noqa: F401
