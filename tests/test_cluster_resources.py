"""What each rule asks a scheduler for, read from Snakemake's own dry-run plan.

Feature caching and every training rule ask for a GPU only when their stage's `device` is
`cuda` (config/gpu.yaml), never under the CPU configurations; threads come from params.
test_cluster.py checks that SLURM allocates what is declared here.
"""

from __future__ import annotations

import re

import pytest
from conftest import SMOKE, snakemake

GPU_RULES = {"cache_features", "train_decoder", "train_tokenizer", "sparse_cell"}


def planned_resources(project, *args: str) -> dict[str, dict[str, str]]:
    """Rule -> {"threads": n, resource: value, ...} of its first job in a dry run."""
    out = snakemake(project, "-n", *args).stdout
    plan: dict[str, dict[str, str]] = {}
    rule = None
    for line in out.splitlines():
        if m := re.match(r"(?:local)?(?:rule|checkpoint) (\w+):$", line):
            rule = m.group(1) if m.group(1) not in plan else None
            if rule:
                plan[rule] = {"threads": "1"}  # Snakemake prints threads only when above 1
        elif rule and (m := re.match(r"\s+threads: (\d+)$", line)):
            plan[rule]["threads"] = m.group(1)
        elif rule and (m := re.match(r"\s+resources: (.*)$", line)):
            plan[rule].update(kv.split("=", 1) for kv in m.group(1).split(", "))
    return plan


@pytest.mark.slow  # two dry runs of the whole DAG
def test_resources_follow_params(project):
    # CPU configuration, threads set in params; the same with config/gpu.yaml on top.
    (project / "config/threads.yaml").write_text(
        "features: {threads: 1}\nsparse: {train: {threads: 2}}\ndecoder: {threads: 3}\n"
        "tokenizer: {eval: {threads: null}}\n"
    )
    cpu = planned_resources(project, *SMOKE, "config/threads.yaml", "--cores", "4")
    gpu = planned_resources(project, *SMOKE, "config/gpu.yaml")
    for rule in GPU_RULES:
        assert cpu[rule]["gpu"] == "0", rule
        assert gpu[rule]["gpu"] == "1", rule
    assert "gpu" not in gpu["summarize_features"]
    assert (cpu["cache_features"]["threads"], cpu["sparse_cell"]["threads"]) == ("1", "2")
    assert cpu["train_decoder"]["threads"] == cpu["evaluate_decoder"]["threads"] == "3"
    assert cpu["evaluate_tokenizer"]["threads"] == "4"  # null: every core of --cores 4
    # Two rules in full: what test_cluster.py finds in the scheduler's allocation.
    assert {k: cpu["train_decoder"][k] for k in ("runtime", "mem_mb")} == {
        "runtime": "240",
        "mem_mb": "4000",
    }
    assert {k: gpu["sparse_cell"][k] for k in ("threads", "runtime", "mem_mb")} == {
        "threads": "1",
        "runtime": "120",
        "mem_mb": "1500",
    }
