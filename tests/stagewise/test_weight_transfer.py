"""Weight transfer from a deeper donor into a stage-wise candidate."""

import numpy as np
import pytest

from keras_nas.stagewise.nasnet import stage_nasnet
from keras_nas.stagewise.resnet import stage_resnet
from keras_nas.stagewise.weight_transfer import stage_depths_of, transfer_weights


def _resnet(depths, **kwargs):
    return stage_resnet(depths, input_shape=(8, 8, 1), num_classes=3, **kwargs)


def test_stage_depths_are_read_from_layer_names():
    assert stage_depths_of(_resnet((1, 3, 2))) == [1, 3, 2]
    assert stage_depths_of(stage_nasnet((2, 1, 1), filters=4, input_shape=(8, 8, 1), num_classes=3)) == [2, 1, 1]


def test_blocks_copied_per_stage_block_by_block():
    donor, candidate = _resnet((2, 3, 2)), _resnet((1, 2, 2))
    copied = transfer_weights(donor, candidate)
    assert copied == sum(1 for layer in candidate.layers if layer.get_weights())
    for name in ("stem_conv", "stage1_block1_conv2", "stage2_block1_bn2", "predictions"):
        for mine, theirs in zip(candidate.get_layer(name).get_weights(), donor.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    same_depth = _resnet((2, 3, 2))
    transfer_weights(donor, same_depth)
    np.testing.assert_allclose(same_depth(x), donor(x), rtol=1e-6)


def test_candidate_stage_deeper_than_donor_is_refused():
    with pytest.raises(ValueError, match=r"cannot be deeper than the donor's stage.*stage 1: 4 > 3"):
        transfer_weights(_resnet((2, 3, 2)), _resnet((2, 4, 2)))


def test_other_family_or_stage_count_is_refused():
    with pytest.raises(ValueError, match="has 3 stages and `candidate` 2"):
        transfer_weights(_resnet((2, 2, 2)), _resnet((1, 1)))
    with pytest.raises(ValueError, match="has weight shapes"):
        transfer_weights(_resnet((2, 2, 2)), _resnet((1, 1, 1), widths=[8, 16, 32]))
