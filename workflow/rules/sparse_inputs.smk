# Input functions of the sparse rules (workflow/rules/sparse.smk): the greedy rounds' cells are
# read from the previous round's record (a checkpoint), so they are only known at run time.
from reconlab.io import read_json
from reconlab.sparse.grid import (
    CELL_DIR,
    FINAL_DIR,
    ROUND_RECORD,
    ablation_cells,
    cell_config_json,
    first_round,
)

SPARSE_SEEDS = config["sparse"]["grid"]["seeds"]
SPARSE_ROUNDS = config["sparse"]["grid"]["rounds"]


def round_cell_paths(k):
    """metrics.json of every cell and seed of round k: round 1 from params, round k > 1 from
    round k-1's record (the checkpoint's output)."""
    if k == 1:
        cells = first_round(config["sparse"])
    else:
        cells = read_json(checkpoints.sparse_round.get(k=k - 1).output.record)["next"]
    return expand(rules.sparse_cell.output.metrics, cell=cells, seed=SPARSE_SEEDS)


def round_cells(wildcards):
    """The cells of round {k}."""
    return round_cell_paths(int(wildcards.k))


def previous_round(wildcards):
    """Round k-1's record (none for round 1)."""
    k = int(wildcards.k)
    return expand(rules.sparse_round.output.record, k=k - 1) if k > 1 else []


def grid_cells(wildcards):
    """metrics.json of every cell of every round."""
    return [p for k in range(1, SPARSE_ROUNDS + 1) for p in round_cell_paths(k)]
