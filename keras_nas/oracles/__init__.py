from keras_nas.oracles.search_oracle import SearchOracle  # noqa: F401
from keras_nas.oracles.stage_wise_oracle import StageWiseOracle  # noqa: F401
from keras_nas.oracles.seed_oracle import SeedOracle  # noqa: F401
