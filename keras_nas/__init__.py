"""keras_nas: neural architecture search for Keras 3.

Four searches from the literature on one set of pieces:
stage-wise depth growth (Jordao et al. 2020), EPNAS (Zhou et al. 2019),
EoiNAS (Zhou et al. 2020, on GDAS/DARTS cells) and CNAS (Heinrich et al. 2018).
"""

__version__ = "0.1.0"

from keras_nas import costs, data, export, io  # noqa: E402,F401
