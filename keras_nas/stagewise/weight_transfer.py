"""Initialise a stage-wise candidate from a trained deeper network (paper 000, "Weight Transfer")."""

import re

_MODULE = re.compile(r"^stage(\d+)_(block|cell)(\d+)_")


def stage_depths_of(model):
    """Modules per stage of a `stage_resnet` / `stage_nasnet` model, from layer names."""
    depths = {}
    for layer in model.layers:
        match = _MODULE.match(layer.name)
        if match:
            s, b = int(match.group(1)), int(match.group(3))
            depths[s] = max(depths.get(s, 0), b + 1)
    return [depths[s] for s in sorted(depths)]


def transfer_weights(donor, candidate):
    """Copies a trained donor's weights into a (shallower) candidate, in place.

    Block `b` of stage `s` of the candidate receives the weights of block `b`
    of stage `s` of the donor (per stage, block by block, matched by the
    stable layer names of `keras_nas.stagewise`); the stem, the reduction cells
    and the classifier are copied as they are. The candidate then only needs
    fine-tuning (the paper fine-tunes for 50 epochs instead of training 200
    from scratch).

    Args:
        donor: `keras.Model`. A trained network of the same family
            (e.g. ResNet-110 = `stage_resnet((18, 18, 18))`).
        candidate: `keras.Model`. The network to initialise; each of its
            stages must be at most as deep as the donor's.

    Returns:
        int. Number of layers whose weights were copied.

    Raises:
        ValueError: a candidate stage is deeper than the donor's, the stage
            counts differ, or a layer's weight shapes differ (another family
            or width).

    Example:

    ```python
    donor = keras.saving.load_model("resnet110.keras")
    candidate = stage_resnet((6, 8, 6))
    transfer_weights(donor, candidate)
    ```
    """
    donor_depths = stage_depths_of(donor)
    candidate_depths = stage_depths_of(candidate)
    if not donor_depths or not candidate_depths:
        raise ValueError(
            "`donor` and `candidate` must be stage-wise networks built by "
            "`keras_nas.stagewise` (layers named `stage{s}_block{b}_...`)."
        )
    if len(donor_depths) != len(candidate_depths):
        raise ValueError(
            f"`donor` has {len(donor_depths)} stages and `candidate` "
            f"{len(candidate_depths)}; weights move only between networks with "
            "the same number of stages."
        )
    deeper = [
        f"stage {s}: {c} > {d}"
        for s, (c, d) in enumerate(zip(candidate_depths, donor_depths))
        if c > d
    ]
    if deeper:
        raise ValueError(
            "A candidate stage cannot be deeper than the donor's stage (paper "
            f"000, Sec. III). Candidate depths {candidate_depths}, donor depths "
            f"{donor_depths} ({'; '.join(deeper)}). Use a deeper donor or fewer "
            "iterations / a smaller growth step."
        )
    donor_layers = {layer.name: layer for layer in donor.layers}
    copied = 0
    for layer in candidate.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        source = donor_layers.get(layer.name)
        if source is None:
            raise ValueError(
                f"The donor has no layer named {layer.name!r}; `donor` and "
                "`candidate` must come from the same builder."
            )
        source_weights = source.get_weights()
        shapes = [w.shape for w in weights]
        source_shapes = [w.shape for w in source_weights]
        if shapes != source_shapes:
            raise ValueError(
                f"Layer {layer.name!r} has weight shapes {shapes} in the "
                f"candidate but {source_shapes} in the donor; `donor` and "
                "`candidate` must have the same widths, block type and input "
                "channels."
            )
        layer.set_weights(source_weights)
        copied += 1
    return copied
