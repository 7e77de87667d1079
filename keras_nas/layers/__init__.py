
from keras_nas.layers.auxiliary_tap import AuxiliaryTap  # noqa: F401
from keras_nas.layers.drop_path import DropPath  # noqa: F401
from keras_nas.layers.factorized_reduce import FactorizedReduce  # noqa: F401
from keras_nas.layers.gumbel_edge import GumbelEdge  # noqa: F401
from keras_nas.layers.search_cell import SearchCell  # noqa: F401
from keras_nas.layers.zero import Zero  # noqa: F401
from keras_nas.layers.channel_mask import ChannelMask  # noqa: F401
from keras_nas.layers.channel_select import ChannelSelect  # noqa: F401
from keras_nas.layers.channels_first_factorized_reduce import ChannelsFirstFactorizedReduce  # noqa: F401
from keras_nas.layers.folded_batch_normalization import FoldedBatchNormalization  # noqa: F401
