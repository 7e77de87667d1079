"""CNAS channel pruning (paper 004): topology arithmetic, Taylor saliency, zeroing, materialising."""

from keras_nas.pruning.channel_graph import ChannelGraph  # noqa: F401
from keras_nas.pruning.materialize import copy_weights, mask_layers, materialize, read_masks, write_masks  # noqa: F401
from keras_nas.pruning.progressive import channels_to_remove, random_masks, zero_least_salient  # noqa: F401
from keras_nas.pruning.taylor import (  # noqa: F401
    SALIENCY_FORMS,
    channel_importance,
    minibatch_term,
    normalize_layerwise,
    saliency_function,
    taylor_saliency,
)
from keras_nas.pruning.layout import channel_layout, gray_rank  # noqa: F401
