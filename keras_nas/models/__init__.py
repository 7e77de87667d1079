"""Keras models with custom training steps (bilevel cell search, auxiliary-head training)."""

from keras_nas.models.auxiliary_head_model import AuxiliaryHeadModel  # noqa: F401
from keras_nas.models.bilevel_search_model import BilevelSearchModel  # noqa: F401
