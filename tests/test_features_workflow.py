"""The cache_features rule under real Snakemake: smoke run, no-op rerun, per-backbone rerun set."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from reconlab.features.cache import FeatureCache

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REG = {"id": "reg", "model": "vit_small_patch14_reg4_dinov2.lvd142m", "weights": "random"}
V3 = {"id": "v3", "model": "vit_small_patch16_dinov3.lvd1689m", "weights": "random"}


def snakemake(workdir: Path, backbones: list[dict], *args: str) -> str:
    overlay = workdir / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"features": {"backbones": backbones}}))
    cmd = [
        str(BIN / "snakemake"), "-s", str(workdir / "Snakefile"), "-d", str(workdir),
        "--cores", "2", "--configfile", str(ROOT / "config/offline.yaml"),
        str(ROOT / "config/smoke.yaml"), str(overlay), *args,
    ]  # fmt: skip
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def planned(workdir: Path, backbones: list[dict]) -> set[str]:
    """What a run would do, from Snakemake's ``--summary`` plan: each cache folder it would
    write, and the name of every other rule it would run."""
    lines = snakemake(workdir, backbones, "--summary").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    return {
        r["output_file"] if r["rule"] == "cache_features" else r["rule"]
        for r in csv.DictReader(lines[start:], delimiter="\t")
        if r["plan"] == "update pending"
    }


@pytest.mark.slow
def test_rule_caches_and_reruns_only_the_edited_backbone(tmp_path):
    rules = ROOT / "workflow" / "rules"
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{ROOT / "params.yaml"}"\n'
        + "".join(f'include: "{rules / n}.smk"\n' for n in ("common", "data", "features"))
        + 'rule all:\n    input:\n        TARGETS["features"],\n'
    )
    snakemake(tmp_path, [REG])
    cache = FeatureCache.open(tmp_path / "data/features/reg", expect={"weights_id": "random:0"})
    assert cache.index["num_prefix_tokens"] == 5 and cache.index["image_size"] == [56, 56]
    assert cache.index["grid"] == [4, 4] and cache.untrained
    assert len(cache.split("train").shards) >= 2  # smoke shard_size 4
    summary = json.loads((tmp_path / "results/features/summary.json").read_text())
    assert [b["backbone_id"] for b in summary["backbones"]] == ["reg"]
    metrics = json.loads(next(tmp_path.glob("results/metrics/*/features.json")).read_text())
    assert metrics["reg"]["untrained"] is True and metrics["reg"]["tokens_per_image"] == 16
    # the precision `auto` resolved to for the ViT (linear ops) on this machine, recorded twice
    from reconlab.runtime import compute_record, precision_for

    here = compute_record(precision_for(torch.device("cpu"), "auto", kind="linear"))
    assert cache.index["precision"] == here["precision"] == metrics["compute"]["precision"]
    assert metrics["compute"]["cpu_capability"] == here["cpu_capability"]
    log = (tmp_path / "logs/features/cache_features_reg.log").read_text()
    assert f"compute: device cpu, precision {here['precision']} for linear ops (auto: " in log

    assert planned(tmp_path, [REG]) == set()
    # Adding another backbone schedules only its own cache (and the summary).
    assert planned(tmp_path, [REG, V3]) == {"data/features/v3", "summarize_features"}
    # Editing this backbone's entry reruns it.
    assert "data/features/reg" in planned(tmp_path, [dict(REG, layers=[0])])
