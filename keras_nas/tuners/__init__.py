from keras_nas.tuners.search_tuner import SearchTuner  # noqa: F401
from keras_nas.tuners.stage_wise_tuner import StageWiseTuner  # noqa: F401
from keras_nas.tuners.eoinas_seed_tuner import EoiNASSeedTuner  # noqa: F401
from keras_nas.tuners.epnas_tuner import EPNASTuner  # noqa: F401
