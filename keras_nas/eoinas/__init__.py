"""EoiNAS (Zhou et al. 2020, paper 003) on GDAS/DARTS cells: Gumbel edges, operation importance, gradual pruning.

Read from the smallest piece to the command: `genotypes`, `zero`,
`darts_ops`, `drop_path`, `gumbel_edge`, `search_cell`, `supernet` (the
bilevel step), `auxiliary_tap` and `auxiliary_head`, `darts` (search and
evaluation networks), the schedules and `operation_pruning` (Eq. 5-7),
`seed_oracle`, `seed_tuner`, `command`."""

from keras_nas._lazy import exports

_NAMES = {
    "search": "command",
    "PRIMITIVES": "genotypes",
    "Genotype": "genotypes",
    "GENOTYPES": "genotypes",
    "Zero": "zero",
    "DropPath": "drop_path",
    "GumbelEdge": "gumbel_edge",
    "SearchCell": "search_cell",
    "BilevelSearchModel": "supernet",
    "AuxiliaryTap": "auxiliary_tap",
    "AuxiliaryHeadModel": "auxiliary_head",
    "search_network": "darts",
    "eval_network": "darts",
    "ArchitectureWarmup": "architecture_warmup",
    "TemperatureSchedule": "temperature_schedule",
    "DropPathSchedule": "drop_path_schedule",
    "OperationPruning": "operation_pruning",
    "SeedOracle": "seed_oracle",
    "EoiNASSeedTuner": "seed_tuner",
}
__getattr__, __dir__ = exports(__name__, _NAMES)
