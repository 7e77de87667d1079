"""The collapse guard: parameter-free op counts, the one-line warning, P-DARTS' skip-connection limit."""

import json

import numpy as np
import pytest

from keras_nas import cli
from keras_nas.eoinas.genotypes import (GENOTYPES, PRIMITIVES, collapse_warning, derive_genotype,
                                        limit_skip_connections, parameter_free_counts)

SKIP, SEP = PRIMITIVES.index("skip_connect"), PRIMITIVES.index("sep_conv_3x3")


def test_parameter_free_counts_and_warning():
    counts = parameter_free_counts(GENOTYPES["DARTS_V1"])
    assert counts["normal"] == {"skip_connect": 4, "max_pool_3x3": 0, "avg_pool_3x3": 0, "total": 4, "edges": 8}
    assert counts["reduce"]["max_pool_3x3"] == 4 and counts["reduce"]["total"] == 8
    # DARTS V1's normal cell: 4 skip connections (> 2), 4 of 8 parameter-free (not a majority).
    assert collapse_warning(GENOTYPES["DARTS_V1"]).startswith(
        "the derived normal cell has 4 skip connections (more than 2), the collapse")
    assert collapse_warning(GENOTYPES["DARTS_V1"], skip_threshold=4) is None
    assert collapse_warning(GENOTYPES["DARTS_V2"]) is None  # 2 skip connections
    # GDAS V1: 4 skip connections in the normal cell, more than a threshold of 3.
    assert "try --limit-skip-connections 3 (P-DARTS)" in collapse_warning(GENOTYPES["GDAS_V1"], skip_threshold=3)


def _scores():
    # Every edge: skip_connect scored by its row (1.0 + row / 100), sep_conv_3x3 0.5, the rest 0.
    scores = np.zeros((14, len(PRIMITIVES)))
    scores[:, SKIP] = 1.0 + np.arange(14) / 100
    scores[:, SEP] = 0.5
    return scores


def test_limit_skip_connections_removes_the_weakest_first():
    scores = _scores()
    assert [op for op, _ in derive_genotype(scores, scores).normal] == ["skip_connect"] * 8
    genotype, replaced = limit_skip_connections(scores, scores, 2)
    # The two strongest skips (node 3's edges from inputs 3 and 4: rows 12, 13) stay; each node keeps its two
    # strongest inputs, now on sep_conv_3x3 (the next-best op); the reduction cell is untouched.
    assert genotype.normal[6:] == [("skip_connect", 3), ("skip_connect", 4)]
    assert [op for op, _ in genotype.normal[:6]] == ["sep_conv_3x3"] * 6
    assert genotype.reduce == derive_genotype(scores, scores).reduce
    assert replaced[0] == {"node": 0, "input": 0, "score": 1.0}  # the weakest goes first
    # A node whose chosen skip goes takes its next input's skip (still stronger than 0.5): every skip of
    # nodes 0, 1, 2 (2 + 3 + 4 edges) goes before their sep_conv_3x3 are chosen.
    assert len(replaced) == 9
    # Within the limit: nothing changes.
    assert limit_skip_connections(scores, scores, 8) == (derive_genotype(scores, scores), [])
    # Pruned (-inf) ops stay out of reach.
    scores[:, SEP] = -np.inf
    genotype, _ = limit_skip_connections(scores, scores, 0)
    assert "skip_connect" not in [op for op, _ in genotype.normal]
    assert "sep_conv_3x3" not in [op for op, _ in genotype.normal]


def test_search_reports_parameter_free_ops_and_applies_the_limit(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["search", "eoinas", "--out", str(out), "--cells", "3", "--init-channels", "4", "--epochs", "2",
                     "--warmup-epochs", "1", "--eval-cells", "3", "--eval-channels", "4", "--eval-epochs", "1",
                     "--limit-skip-connections", "0", "--verbose", "0"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["parameter_free"]["normal"]["skip_connect"] == 0
    assert sum(op == "skip_connect" for op, _ in results["genotype"]["normal"]) == 0
    collapse = results["collapse"]
    assert collapse["threshold"] == 2 and collapse["skip_limit"]["limit"] == 0
    searched_skips = collapse["searched"]["normal"]["skip_connect"]
    assert len(collapse["skip_limit"]["replaced"]) >= searched_skips
    assert results["config"]["limit_skip_connections"] == 0
    out_text = capsys.readouterr().out
    assert "Skip connections limited to 0 in the normal cell (P-DARTS)" in out_text
    assert (collapse["warning"] is None) == ("Warning: the derived normal cell" not in out_text)
    undertrained = results["search"]["undertrained_warning"]
    assert (undertrained is None) == ("Warning: the supernet was at" not in out_text)


def test_undertrained_warning_below_a_quarter_of_the_way_from_chance():
    from keras_nas.eoinas.command import undertrained_warning

    # 10 classes: chance 0.1, warned below 0.1 + 0.9 / 4 = 0.325.
    message = undertrained_warning(0.324, 10, "after 4 epochs")
    assert message.startswith("the supernet was at 0.324 architecture accuracy (chance 0.100) after 4 epochs,")
    assert undertrained_warning(0.326, 10, "after 4 epochs") is None
    # 2 classes: chance 0.5, warned below 0.625.
    assert "give it more --epochs" in undertrained_warning(0.62, 2, "after 3 epochs")
    assert undertrained_warning(0.63, 2, "after 3 epochs") is None
    assert undertrained_warning(float("nan"), 10, "after 4 epochs") is None  # nothing recorded


def test_the_cells_are_judged_where_they_were_decided():
    from keras_nas.eoinas.command import _decision_accuracy

    history = {"arch_accuracy": [0.1, 0.2, 0.3, 0.9]}
    # EoiNAS / GOP: the accuracy of the epoch that ended with the last pruning decision (1-based epoch 3).
    pruned = {"val_accuracy": 0.9, "history": history, "pruning": [{"epoch": 2}, {"epoch": 3}, {"epoch": 3}]}
    assert _decision_accuracy(pruned, 4) == (0.3, "when it took its last pruning decision (epoch 3)")
    # GDAS (no pruning): the last epoch's.
    assert _decision_accuracy({"val_accuracy": 0.9, "history": history, "pruning": []}, 4) == (0.9, "after 4 epochs")
