"""A small PyTorch GDAS supernet: the PyTorch side of benchmarks/bench_supernet.py.

It mirrors `keras_nas.eoinas.darts.search_network(edge_mode="gdas")` module for
module (stem conv 3x3 + affine BN; reduction cells at `cells // 3` and
`2 * cells // 3`; 4 intermediate nodes, 14 edges and the 8 DARTS ops per cell;
affine-free BatchNorm in the cells; global average pool + linear classifier),
so both networks have the same number of weight parameters. As in the keras_nas
supernet, one Gumbel sample per cell type and forward pass is shared by the
cells of that type, only the sampled op of each edge runs, and the edge output
`op(x) * h[index] + sum of the other entries of h` lets the gradient reach
every alpha of the edge. One bilevel step, with `keras_nas.eoinas.one_shot`'s
settings: a weight step on a training batch (SGD lr 0.025, momentum 0.9, weight
decay 3e-4, gradients clipped to norm 5; `zero_grad()` sets gradients to None, so
SGD skips the ops that did not run, as `update_unsampled_ops=False`), then an
architecture step on a validation batch (Adam lr 3e-4, betas (0.5, 0.999),
weight decay 1e-3; alpha's gradient only), Gumbel temperature 5. Random data.

    python benchmarks/torch_gdas.py --cells 8 --channels 16 --image-size 32 --batch 32 --steps 10

Prints one JSON line. Needs torch (CPU wheel: --index-url https://download.pytorch.org/whl/cpu).
"""

import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
STEPS = 4  # intermediate nodes per cell
NUM_EDGES = sum(i + 2 for i in range(STEPS))  # 14
TEMPERATURE = 5.0


def batch_norm(channels, affine):
    """BatchNorm with PyTorch's defaults (momentum 0.1, eps 1e-5), as darts_ops.batch_norm."""
    return nn.BatchNorm2d(channels, affine=affine)


def relu_conv_bn(c_in, c_out):
    """ReLU, 1x1 conv (no bias), affine-free BN: a cell's input preprocessing."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), batch_norm(c_out, False))


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs on grids offset by one pixel, concat, BN (keras_nas' padding)."""

    def __init__(self, c_in, c_out, affine=False):
        super().__init__()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = batch_norm(c_out, affine)

    def forward(self, x):
        x = F.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Zero(nn.Module):
    """The `none` op: zeros of the edge's output size."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return torch.zeros_like(x[:, :, ::self.stride, ::self.stride])


def conv_unit(channels, kernel_size, stride, dilation):
    """ReLU, depthwise conv, pointwise 1x1 conv, affine-free BN (the unit of SepConv and DilConv)."""
    return [nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size, stride=stride, padding=dilation * (kernel_size - 1) // 2,
                      dilation=dilation, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            batch_norm(channels, False)]


def make_op(name, channels, stride):
    """One of the 8 DARTS ops in the search setting (affine=False)."""
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride=stride, padding=1), batch_norm(channels, False))
    if name == "avg_pool_3x3":
        return nn.Sequential(nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
                             batch_norm(channels, False))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    kind, size = name.split("_conv_")
    kernel_size = int(size[0])
    if kind == "sep":
        return nn.Sequential(*conv_unit(channels, kernel_size, stride, 1), *conv_unit(channels, kernel_size, 1, 1))
    return nn.Sequential(*conv_unit(channels, kernel_size, stride, 2))


class SearchCell(nn.Module):
    """2 input nodes, 4 intermediate nodes, an edge from every earlier node; output = concat of the 4."""

    def __init__(self, c_prev_prev, c_prev, channels, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(c_prev_prev, channels)
        else:
            self.preprocess0 = relu_conv_bn(c_prev_prev, channels)
        self.preprocess1 = relu_conv_bn(c_prev, channels)
        # Edges in DARTS order: (0, 2), (1, 2), (0, 3), (1, 3), (2, 3), ...
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(p, channels, 2 if reduction and source < 2 else 1) for p in PRIMITIVES)
            for i in range(STEPS) for source in range(i + 2))

    def forward(self, s0, s1, sample):
        """`sample` = (chosen weight per edge, sum of the other weights per edge, op index per edge on the host)."""
        chosen, rest, index = sample
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        k = 0
        for i in range(STEPS):
            total = 0
            for j in range(i + 2):
                # Only the sampled op runs; `rest[k]` is ~0 in value but carries alpha's gradient (GDAS).
                total = total + self.edges[k][index[k]](states[j]) * chosen[k] + rest[k]
                k += 1
            states.append(total)
        return torch.cat(states[-STEPS:], dim=1)


def gdas_sample(alpha, temperature):
    """One GDAS sample for a cell type: the straight-through weights of each edge's op and the indices.

    `h = one_hot(argmax) - p.detach() + p` with `p = softmax((log_softmax(alpha) + g) / T)`.
    Returns `(h[k, index[k]], sum of h[k] over the other ops, index as a Python list)`.
    """
    gumbel = -torch.empty_like(alpha).exponential_().log()
    probs = F.softmax((F.log_softmax(alpha, dim=-1) + gumbel) / temperature, dim=-1)
    index = probs.argmax(dim=-1)
    hard = F.one_hot(index, alpha.shape[-1]).to(probs.dtype)
    h = hard - probs.detach() + probs
    chosen = (h * hard).sum(dim=-1)
    rest = (h * (1 - hard)).sum(dim=-1)
    # The one host read of the sampled ops for this cell type and forward pass (one `.tolist()`
    # of the (14,) indices, not one read per edge); the edges then index their op list in Python.
    return chosen, rest, index.tolist()


class GDASNetwork(nn.Module):
    """Stem, `cells` search cells, global average pool and linear classifier; alpha_normal, alpha_reduce."""

    def __init__(self, cells, channels, num_classes=10, stem_multiplier=3):
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), batch_norm(c_stem, True))
        c_prev_prev, c_prev, c_curr, reduction_prev = c_stem, c_stem, channels, False
        self.cells = nn.ModuleList()
        for i in range(cells):
            reduction = i in (cells // 3, 2 * cells // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(c_prev_prev, c_prev, c_curr, reduction, reduction_prev))
            c_prev_prev, c_prev, reduction_prev = c_prev, STEPS * c_curr, reduction
        self.classifier = nn.Linear(c_prev, num_classes)
        self.alpha_normal = nn.Parameter(torch.zeros(NUM_EDGES, len(PRIMITIVES)))
        self.alpha_reduce = nn.Parameter(torch.zeros(NUM_EDGES, len(PRIMITIVES)))

    def arch_parameters(self):
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self):
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x, temperature=TEMPERATURE):
        samples = {False: gdas_sample(self.alpha_normal, temperature),
                   True: gdas_sample(self.alpha_reduce, temperature)}
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, samples[cell.reduction])
        return self.classifier(s1.mean(dim=(2, 3)))


def build(cells, channels, num_classes=10):
    """The network and its two optimizers, with keras_nas' search settings."""
    network = GDASNetwork(cells, channels, num_classes)
    weights = network.weight_parameters()
    weight_optimizer = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    arch_optimizer = torch.optim.Adam(network.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    return network, weights, weight_optimizer, arch_optimizer


def bilevel_step(network, weights, weight_optimizer, arch_optimizer, train, validation):
    """Weight step on `train`, then architecture step on `validation` (each an `(x, y)` pair)."""
    network.train()
    weight_optimizer.zero_grad()  # set_to_none: SGD skips the ops that did not run in this step
    loss = F.cross_entropy(network(train[0]), train[1])
    loss.backward()
    nn.utils.clip_grad_norm_(weights, 5.0)
    weight_optimizer.step()

    arch_optimizer.zero_grad()
    arch = network.arch_parameters()
    loss = F.cross_entropy(network(validation[0]), validation[1])
    # alpha's gradient only, as keras_nas' architecture step (no weight gradients computed).
    loss.backward(inputs=arch)
    arch_optimizer.step()


def measure(cells, channels, image_size, batch, steps, threads=2):
    """Build + first bilevel step, median of `steps` further steps, peak RSS, weight parameters."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape = (batch, 3, image_size, image_size)
    train = (torch.rand(shape), torch.randint(0, 10, (batch,)))
    validation = (torch.rand(shape), torch.randint(0, 10, (batch,)))

    start = time.perf_counter()
    network, weights, weight_optimizer, arch_optimizer = build(cells, channels)
    built = time.perf_counter()
    bilevel_step(network, weights, weight_optimizer, arch_optimizer, train, validation)
    first = time.perf_counter()
    times = []
    for _ in range(steps):
        tick = time.perf_counter()
        bilevel_step(network, weights, weight_optimizer, arch_optimizer, train, validation)
        times.append(time.perf_counter() - tick)
    return {
        "framework": "pytorch", "edge_mode": "gdas", "cells": cells, "channels": channels,
        "image_size": image_size, "batch": batch, "params": sum(p.numel() for p in weights),
        "build_seconds": built - start, "first_step_seconds": first - built,
        "median_step_seconds": statistics.median(times),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "torch_version": torch.__version__, "threads": threads,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="steps timed after the first")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.cells, args.channels, args.image_size, args.batch, args.steps, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
