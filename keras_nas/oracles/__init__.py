from keras_nas.oracles.search_oracle import SearchOracle  # noqa: F401
