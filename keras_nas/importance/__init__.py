"""Feature-importance criteria and the stage importance of stage-wise NAS."""

from keras_nas.importance.il_fs import il_fs  # noqa: F401
from keras_nas.importance.inf_fs import inf_fs  # noqa: F401
from keras_nas.importance.pls_vip import pls_vip  # noqa: F401
from keras_nas.importance.stage_importance import stage_importance  # noqa: F401
