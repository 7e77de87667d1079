"""CNAS (Heinrich et al. 2018, paper 004): channel-level search by Taylor saliency and progressive zeroing.

Read from the smallest piece to the command: `channel_mask`,
`channel_select`, `channels_first_factorized_reduce`, `nasnet_space` and
`densenet_space` (the one-shot networks), `channel_graph`, `taylor`
(Algorithm 1), `latency_model` (what a channel costs, from a cnas latency
table), `progressive`, `layout`, `sparse` (materialise), `channel_pruning`
(the callback), `command`."""

from keras_nas._lazy import exports

_NAMES = {
    "search": "command",
    "ChannelMask": "channel_mask",
    "ChannelSelect": "channel_select",
    "ChannelsFirstFactorizedReduce": "channels_first_factorized_reduce",
    "channel_nasnet": "nasnet_space",
    "densenet_bc": "densenet_space",
    "ChannelGraph": "channel_graph",
    "SALIENCY_FORMS": "taylor",
    "taylor_saliency": "taylor",
    "minibatch_term": "taylor",
    "normalize_layerwise": "taylor",
    "saliency_function": "taylor",
    "channel_importance": "taylor",
    "layer_features": "latency_model",
    "channel_savings": "latency_model",
    "channels_to_remove": "progressive",
    "zero_least_salient": "progressive",
    "random_masks": "progressive",
    "channel_layout": "layout",
    "gray_rank": "layout",
    "mask_layers": "sparse",
    "read_masks": "sparse",
    "write_masks": "sparse",
    "copy_weights": "sparse",
    "materialize": "sparse",
    "ChannelPruning": "channel_pruning",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
