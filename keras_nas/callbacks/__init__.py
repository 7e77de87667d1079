
from keras_nas.callbacks.architecture_warmup import ArchitectureWarmup  # noqa: F401
from keras_nas.callbacks.operation_pruning import OperationPruning  # noqa: F401
from keras_nas.callbacks.search_checkpoint import SearchCheckpoint  # noqa: F401
from keras_nas.callbacks.temperature_schedule import TemperatureSchedule  # noqa: F401
from keras_nas.callbacks.drop_path_schedule import DropPathSchedule  # noqa: F401
from keras_nas.callbacks.channel_pruning import ChannelPruning  # noqa: F401
from keras_nas.callbacks.fit_checkpoint import FitCheckpoint  # noqa: F401
