from keras_nas.oracles.search_oracle import SearchOracle  # noqa: F401
from keras_nas.oracles.stage_wise_oracle import StageWiseOracle  # noqa: F401
from keras_nas.oracles.seed_oracle import SeedOracle  # noqa: F401
from keras_nas.oracles.soft_penalty import soft_penalty  # noqa: F401
from keras_nas.oracles.epnas_policy import EPNASPolicy  # noqa: F401
from keras_nas.oracles.epnas_oracle import EPNASOracle  # noqa: F401
from keras_nas.oracles.random_architecture_oracle import RandomArchitectureOracle  # noqa: F401
