from keras_nas.tuners.search_tuner import SearchTuner  # noqa: F401
