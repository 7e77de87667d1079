"""Which channels, edges and weights survive a CNAS channel mask (paper 004, sec. 2.1, 2.3)."""

import numpy as np


class ChannelGraph:
    """The channel topology of a CNAS space as arrays: counting, propagation, selection, Table 1.

    Built from the topology a space builder returns
    (`channel_nasnet(..., return_topology=True)`, `densenet_bc(...)`).
    Rules (paper sec. 2.1): a zeroed input channel removes the weights it
    feeds (`per_input` of its edge); an edge whose inputs are all removed
    disappears with its fixed weights, and so do its output channels, which
    removes the input channels of later edges that copy them and the rows of
    the layers that read them (`consumers`). Masks are dicts
    `edge name -> 0/1 array` over the edge's input channels.

    Args:
        topology: dict. The topology of a full (not sparse) network.

    Example:

    >>> from keras_nas.cnas.nasnet_space import channel_nasnet
    >>> model, topology = channel_nasnet(1, 3, 8, input_shape=(8, 8, 1), return_topology=True)
    >>> graph = ChannelGraph(topology)
    >>> graph.count_params(graph.full_masks()) == graph.total_params
    True
    """

    def __init__(self, topology):
        if not isinstance(topology, dict) or topology.get("fixed_params") is None:
            raise ValueError("`topology` must be the topology dict of a full (one-shot) network.")
        self.topology = topology
        self.edges = list(topology["edges"])
        self._index = {name: i for i, name in enumerate(self.edges)}
        self._origin, self._from_d, self._per_input, self._fixed, self._cell = {}, {}, {}, {}, {}
        sources = topology["sources"]
        for name, edge in topology["edges"].items():
            origins = [sources[s]["origins"][c] for s, c in edge["inputs"]]
            self._origin[name] = np.array([-1 if o is None else self._index[o] for o in origins], dtype=np.int64)
            self._from_d[name] = np.array([sources[s]["kind"] in ("d", "stem") for s, _ in edge["inputs"]])
            self._per_input[name] = edge["per_input"]
            self._fixed[name] = edge["fixed"]
            self._cell[name] = edge["cell"]
        self._source_origin = {
            name: np.array([-1 if o is None else self._index[o] for o in s["origins"]], dtype=np.int64)
            for name, s in sources.items()
        }
        self.fixed_params = int(topology["fixed_params"])
        self.total_params = self.count_params(self.full_masks())

    def full_masks(self):
        """Every channel kept."""
        return {name: np.ones(len(self._origin[name]), dtype=np.float32) for name in self.edges}

    def input_channels(self, masks):
        """|X'|: input channels kept (after propagation)."""
        return int(sum(m.sum() for m in self.effective(masks).values()))

    def _check(self, masks):
        missing = [n for n in self.edges if n not in masks]
        if missing:
            raise ValueError(f"`masks` must hold every edge. Missing: {missing[:5]}")

    def effective(self, masks):
        """Masks after propagation: a channel copied from a dead edge's output is removed too."""
        self._check(masks)
        alive = np.zeros(len(self.edges), dtype=bool)
        out = {}
        for i, name in enumerate(self.edges):  # build order: inputs come from earlier edges
            origin = self._origin[name]
            from_alive = np.where(origin < 0, True, alive[np.maximum(origin, 0)])
            m = (np.asarray(masks[name]).reshape(-1) > 0.5) & from_alive
            out[name] = m.astype(np.float32)
            alive[i] = bool(m.any())
        return out

    def alive_edges(self, masks):
        eff = self.effective(masks)
        return {name: bool(eff[name].any()) for name in self.edges}

    def _alive_array(self, eff):
        return np.array([bool(eff[n].any()) for n in self.edges], dtype=bool)

    def _source_alive(self, name, alive):
        origin = self._source_origin[name]
        return np.where(origin < 0, True, alive[np.maximum(origin, 0)])

    def consumer_masks(self, masks):
        """Derived masks of consumers that hold one (`consumer_mask`): their source's alive channels."""
        alive = self._alive_array(self.effective(masks))
        return {c["mask"]: self._source_alive(c["source"], alive).astype(np.float32)
                for c in self.topology["consumers"] if c.get("mask")}

    def count_params(self, masks):
        """|W'|: weights of the network the masks leave (= the materialised model's `count_params()`)."""
        eff = self.effective(masks)
        alive = self._alive_array(eff)
        total = self.fixed_params
        for i, name in enumerate(self.edges):
            if alive[i]:
                total += self._fixed[name] + self._per_input[name] * int(eff[name].sum())
        for c in self.topology["consumers"]:
            total += c["per_channel"] * int(self._source_alive(c["source"], alive).sum())
        return int(total)

    def sparsity(self, masks):
        """|W'| / |W| (paper sec. 2.2: the search stops when it reaches rho)."""
        return self.count_params(masks) / self.total_params

    def selection(self, masks):
        """Kept input channels per live edge and alive channels per source (the sparse builder's input)."""
        eff = self.effective(masks)
        alive = self._alive_array(eff)
        return {
            "edges": {n: np.flatnonzero(eff[n]).tolist() for n in self.edges if eff[n].any()},
            "sources": {s: np.flatnonzero(self._source_alive(s, alive)).tolist() for s in self.topology["sources"]},
        }

    def minimal_masks(self):
        """The sparsest masks the search allows: one input channel from `d` kept per cell."""
        masks = {n: np.zeros(len(self._origin[n]), dtype=np.float32) for n in self.edges}
        seen = set()
        for name in self.edges:
            cell = self._cell[name]
            if cell not in seen and self._from_d[name].any():
                masks[name][np.flatnonzero(self._from_d[name])[0]] = 1.0
                seen.add(cell)
        return masks

    def protected(self, masks):
        """Per cell, the number of kept input channels read from `d` (never driven below 1)."""
        eff = self.effective(masks)
        counts = {}
        for name in self.edges:
            counts[self._cell[name]] = counts.get(self._cell[name], 0) + int(eff[name][self._from_d[name]].sum())
        return counts

    def from_d(self, name):
        return self._from_d[name]

    def cell_of(self, name):
        return self._cell[name]

    def cell_report(self, masks):
        """Table 1 per cell: |X|, |Y|, params, |X*|, params*, |d->x|, |z->x| (plus nodes gone).

        `params` are the cell's searchable edges plus the layers of the cell
        that read the previous cells (pre-processing), as in Table 1.
        """
        eff = self.effective(masks)
        alive = self._alive_array(eff)
        rows = {}
        order = []
        for i, name in enumerate(self.edges):
            cell = self._cell[name]
            if cell not in rows:
                rows[cell] = {"cell": cell, "X": 0, "Y": 0, "params": 0, "X_star": 0, "params_star": 0,
                              "d_to_x": 0, "z_to_x": 0, "edges": 0, "edges_star": 0, "nodes": set(),
                              "nodes_star": set()}
                order.append(cell)
            r = rows[cell]
            kept = eff[name] > 0.5
            r["X"] += len(kept)
            r["Y"] += self.topology["edges"][name]["outputs"]
            r["params"] += self._fixed[name] + self._per_input[name] * len(kept)
            r["X_star"] += int(kept.sum())
            r["d_to_x"] += int((kept & self._from_d[name]).sum())
            r["z_to_x"] += int((kept & ~self._from_d[name]).sum())
            r["edges"] += 1
            node = self.topology["edges"][name].get("node", name)
            r["nodes"].add(node)
            if alive[i]:
                r["nodes_star"].add(node)
                r["edges_star"] += 1
                r["params_star"] += self._fixed[name] + self._per_input[name] * int(kept.sum())
        for c in self.topology["consumers"]:
            if c["cell"] in rows:
                channels = len(self._source_origin[c["source"]])
                rows[c["cell"]]["params"] += c["per_channel"] * channels
                rows[c["cell"]]["params_star"] += c["per_channel"] * int(self._source_alive(c["source"], alive).sum())
        report = [rows[c] for c in order]
        for r in report:
            r["edges_removed"] = r["edges"] - r["edges_star"]
            r["nodes_removed"] = len(r["nodes"]) - len(r["nodes_star"])
            r["nodes"], r["nodes_star"] = len(r["nodes"]), len(r["nodes_star"])
        return report
