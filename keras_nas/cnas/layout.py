"""Channel order of the physically sparse CNAS model: the gathers folded into the producers' kernels.

In the sparse model an edge reads its surviving input channels from the
sources of its node (`ChannelSelect`). Kept channels scattered over a source
cost a gather (on a CPU about as much as the edge's own 1x1 convolution at
batch 32); kept channels that sit next to each other cost a slice, or
nothing when an edge keeps a whole source. A source made by one layer (a
convolution and its BatchNorm) may hold its channels in any order: permuting
the layer's output columns (and the rows of every layer reading them) gives
the same function. `channel_layout` picks, per such source, the order that
makes its consumers' kept channels contiguous: channels sorted by the
reflected Gray code rank of "which consumers keep me" (first consumer = most
significant bit), so the first two consumers read one run each, the third at
most two, the fourth at most four. The permutations are stored in the
selection and folded into the weights by `copy_weights`; the sparse
network's predictions are unchanged.
"""


def gray_rank(bits):
    """Rank of a bit pattern in the reflected binary Gray code (pure).

    `bits[0]` is the most significant bit. Sorting patterns by this rank
    makes every bit's ones as contiguous as the code allows.

    >>> [gray_rank(b) for b in ([0, 0], [0, 1], [1, 1], [1, 0])]
    [0, 1, 2, 3]
    """
    rank, parity = 0, 0
    for bit in bits:
        parity ^= int(bool(bit))
        rank = rank * 2 + parity
    return rank


def channel_layout(topology, selection):
    """The selection with permuted source orders and edge inputs in the order the sparse model reads them.

    Args:
        topology: dict. The full network's topology (`ChannelGraph.topology`);
            sources may list `producers`: `[[start, stop, [layer names]], ...]`,
            channel ranges whose order the named layers' output columns set.
        selection: dict. `ChannelGraph.selection(masks)`.

    Returns:
        A new selection: `sources[name]` lists a source's alive channels in
        the sparse model's order, `edges[name]` an edge's kept inputs in
        the order its `ChannelSelect` reads them (by source, then by
        position in the source), and `permutations[layer]` the order of the
        output columns of each permuted producer layer (local indices).
    """
    sources = topology["sources"]
    edges = topology["edges"]
    kept_by = {}  # source -> {channel: [edge index, ...]}
    consumers = {}  # source -> [edge name, ...] in build order
    for name, edge in edges.items():
        kept = set(selection["edges"].get(name, []))
        for i, (src, channel) in enumerate(edge["inputs"]):
            consumers.setdefault(src, [])
            if not consumers[src] or consumers[src][-1] != name:
                consumers[src].append(name)
            if i in kept:
                kept_by.setdefault(src, {}).setdefault(channel, set()).add(name)
    orders, permutations = {}, {}
    for name, source in sources.items():
        alive = list(selection["sources"][name])
        if source.get("parts"):
            offset, order = 0, []
            for part in source["parts"]:
                order += [offset + c for c in orders[part]]
                offset += len(sources[part]["origins"])
            orders[name] = order
            continue
        order = list(alive)
        users = consumers.get(name, [])
        for start, stop, layer_names in source.get("producers", []):
            group = [c for c in alive if start <= c < stop]
            if len(group) != stop - start or not users:
                continue  # a producer is all there or not built
            ranked = sorted(group, key=lambda c: gray_rank(
                [e in kept_by.get(name, {}).get(c, ()) for e in users]))
            position = order.index(group[0])
            order[position:position + len(group)] = ranked
            if ranked != group:
                for layer_name in layer_names:
                    permutations[layer_name] = [c - start for c in ranked]
        orders[name] = order
    rank = {name: {c: r for r, c in enumerate(order)} for name, order in orders.items()}
    new_edges = {}
    for name, kept in selection["edges"].items():
        inputs = edges[name]["inputs"]
        first = {}
        for i, (src, _) in enumerate(inputs):
            first.setdefault(src, i)
        new_edges[name] = sorted(kept, key=lambda i: (first[inputs[i][0]], rank[inputs[i][0]][inputs[i][1]]))
    return {**selection, "edges": new_edges, "sources": orders, "permutations": permutations}
