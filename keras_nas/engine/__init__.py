"""What every method uses: settings and their checks, results folders, runtime, KerasTuner bases."""

from keras_nas._lazy import exports

_NAMES = {
    "Option": "options",
    "OptionError": "options",
    "OptionTypeError": "options",
    "SearchOracle": "search_oracle",
    "SearchTuner": "search_tuner",
    "EpochCheckpoint": "checkpoint",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
