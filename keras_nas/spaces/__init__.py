
from keras_nas.spaces.stage_nasnet import stage_nasnet  # noqa: F401
from keras_nas.spaces.stage_resnet import stage_resnet  # noqa: F401
from keras_nas.spaces import darts  # noqa: F401
from keras_nas.spaces.darts import GENOTYPES, eval_network, search_network  # noqa: F401
from keras_nas.spaces.channels import channel_nasnet  # noqa: F401
from keras_nas.spaces.densenet_bc import densenet_bc  # noqa: F401
from keras_nas.spaces.epnas import EPNASSpace  # noqa: F401
