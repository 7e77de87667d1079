"""Keeps a fixed subset of channels: the input of a physically sparse CNAS edge."""

import keras
from keras import ops

# A segment of more contiguous runs than this is gathered (`tf.gather`) rather
# than sliced and concatenated. Measured on 2 CPU cores (TF 2.21): a channel
# gather on the last axis costs about as much as 4-8 slices, whatever the
# number of channels it keeps, and 10x a single slice at batch 32.
MAX_SLICES = 4


def channel_runs(indices, sizes):
    """Splits `indices` into the contiguous runs they read from each input.

    Pure: `indices` index the concatenation (last axis) of inputs of `sizes`
    channels. Returns `[(input, start, stop), ...]` in order: maximal runs of
    consecutive indices that stay within one input.

    >>> channel_runs([0, 1, 2, 5, 6, 3], [4, 3])
    [(0, 0, 3), (1, 1, 3), (0, 3, 4)]
    """
    offsets, total = [], 0
    for size in sizes:
        offsets.append(total)
        total += size
    runs = []
    for index in indices:
        source = max(i for i, off in enumerate(offsets) if off <= index and sizes[i] > 0)
        local = index - offsets[source]
        if runs and runs[-1][0] == source and runs[-1][2] == local:
            runs[-1] = (source, runs[-1][1], local + 1)
        else:
            runs.append((source, local, local + 1))
    return runs


def channel_segments(runs):
    """Groups consecutive runs of one input: `[(input, [runs...]), ...]` (pure)."""
    segments = []
    for run in runs:
        if segments and segments[-1][0] == run[0]:
            segments[-1][1].append(run)
        else:
            segments.append((run[0], [run]))
    return segments


@keras.saving.register_keras_serializable(package="keras_nas")
class ChannelSelect(keras.layers.Layer):
    """Gathers the given channels (last axis, or `axis`) of its input(s), in order.

    The materialised CNAS model (paper 004, sec. 2.1: "partial matrix
    operations") feeds each edge only its surviving input channels; this
    layer picks them from the node's sources, so the edge's kernels hold
    only the weights of those channels. Called on a list of tensors, it
    selects from their concatenation without building it. Contiguous runs
    of indices are sliced (a range costs one slice, all channels of one
    input cost nothing); a part with more than `MAX_SLICES` runs is gathered
    with one `tf.gather`. Plain TensorFlow ops: serves under TensorFlow alone.

    With `axis=1` (channels-first tensors) a run is a contiguous block of
    each example, so slices and the concatenation are block copies: on a
    CPU several times cheaper than picking a few channels out of every
    pixel of a channels-last tensor (`keras_nas.cnas.channel_nasnet`'s
    `data_format`).

    Args:
        indices: list of int. Channels to keep (non-empty, each >= 0), as
            positions in the concatenation of the inputs.
        axis: int. The channel axis: `-1` (channels last) or `1`
            (channels first). Defaults to `-1`.
        **kwargs: base `Layer` arguments.

    Example:

    >>> ChannelSelect([2, 0])(np.arange(3.0).reshape(1, 1, 1, 3)).numpy().ravel().tolist()
    [2.0, 0.0]
    >>> a, b = np.zeros((1, 1, 1, 2)), np.ones((1, 1, 1, 3))
    >>> ChannelSelect([1, 3, 4])([a, b]).numpy().ravel().tolist()
    [0.0, 1.0, 1.0]
    """

    def __init__(self, indices, axis=-1, **kwargs):
        super().__init__(**kwargs)
        indices = [int(i) for i in indices] if isinstance(indices, (list, tuple)) else indices
        if not isinstance(indices, list) or not indices or min(indices) < 0:
            raise ValueError(f"`indices` must be a non-empty list of ints >= 0. Received: indices={indices!r}")
        if axis not in (-1, 1):
            raise ValueError(f"`axis` must be -1 (channels last) or 1 (channels first). Received: axis={axis!r}")
        self.indices = indices
        self.axis = axis
        self._segments = None

    @staticmethod
    def _shapes(input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
            return [tuple(s) for s in input_shape]
        return [tuple(input_shape)]

    def build(self, input_shape):
        sizes = [s[self.axis] for s in self._shapes(input_shape)]
        if any(size is None for size in sizes):
            raise ValueError(f"The channel axis of every input must be known. Received: input_shape={input_shape}")
        if max(self.indices) >= sum(sizes):
            raise ValueError(
                f"`indices` must be < the {sum(sizes)} input channels. Received: max index {max(self.indices)}"
            )
        self._segments = channel_segments(channel_runs(self.indices, sizes))

    def call(self, inputs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        parts = []
        for source, runs in self._segments:
            x = inputs[source]
            if len(runs) > MAX_SLICES and self.axis == -1:
                local = [i for _, start, stop in runs for i in range(start, stop)]
                parts.append(ops.take(x, local, axis=-1))
                continue
            for _, start, stop in runs:
                if (start, stop) == (0, x.shape[self.axis]):
                    parts.append(x)
                elif self.axis == -1:
                    parts.append(x[..., start:stop])
                else:
                    parts.append(x[:, start:stop])
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(self._shapes(input_shape)[0])
        shape[self.axis] = len(self.indices)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "indices": list(self.indices), "axis": self.axis}
