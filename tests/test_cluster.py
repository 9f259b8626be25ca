"""A slice of the smoke pipeline through a real SLURM scheduler: one node, started and stopped here.

`slurm_cluster` brings up munged, slurmctld and slurmd from Debian's packages (`slurm-wlm`,
`munge`; 22.05 on Debian 12) with a generated one-node slurm.conf in a temporary folder, no
systemd and no accounting database. The config is linked at /etc/slurm/slurm.conf for the
run (the jobstep plugin drops SLURM_CONF from the environment of its inner `srun`, so a node
must find its config at the default place; the test skips on a machine that has one).
Snakemake submits through `snakemake-executor-plugin-slurm` (`pip install -e ".[slurm]"`) with
the profile the README documents. Without accounting,
`sacct` fails and the plugin's default status check would wait forever, so the run uses
`--slurm-status-command squeue`; what the scheduler ran is read from its job-completion log
(`JobCompType=jobcomp/filetxt`), one line per finished job with its state and resources.

The run is a slice of the smoke DAG (`CLUSTER_TARGETS`), not its ~44 jobs: the data summary,
one backbone's feature cache and decoder, and one sparse cell. Four jobs go through sbatch,
among them the two whose allocation is checked (train_decoder, sparse_cell), and two local
rules run on the submitting host, in under a minute instead of about five.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SMOKE, SMOKE_METRICS, copy_project, run, snakemake
from test_remotes import free_port, stop

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")
# What the README tells a user on a cluster without accounting to add to the profile.
SLURM_ARGS = [
    "--profile",
    "config/profiles/slurm",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--slurm-no-account",
    "--slurm-keep-successful-logs",
]
# Test only, not in the README: poll squeue after 1 s instead of 5 (the later flag wins). The
# plugin's wait grows by 10 s after each check that finds no finished job and drops back to
# this value when one finishes; with 5-20 s jobs that wait is most of a run (measured: 1 s
# instead of 5 takes 15-20 s off this test).
FAST_POLLING = [
    *("--slurm-init-seconds-before-status-checks", "1"),
    *("--seconds-between-status-checks", "1"),
]
# The slice of the smoke DAG that runs here (targets precede --configfile): prepare_images ->
# cache_features -> train_decoder for one backbone and one sparse_cell through sbatch, the
# local make_fields and summarize_data. (The sparse study's round-1 record instead of one cell
# adds the local sparse_round checkpoint but two more cells: about 12 s more, measured.)
CLUSTER_TARGETS = [
    str(SMOKE_METRICS / "data.json"),
    "results/decoder/dinov2_s14/train.json",
    "results/sparse/cells/baseline/seed0/metrics.json",
]


@dataclass
class SlurmCluster:
    conf: Path
    jobcomp: Path
    folder: Path

    def finished_jobs(self) -> dict[int, dict[str, str]]:
        """Job id -> the scheduler's completion record (JobState, Tres, TimeLimit, ...)."""
        if not self.jobcomp.exists():
            return {}
        jobs = {}
        for line in self.jobcomp.read_text().splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            jobs[int(fields["JobId"])] = fields
        return jobs


def _slurm_conf(d: Path, host: str, ctld_port: int, d_port: int, mem_mb: int) -> str:
    return f"""\
ClusterName=reconlab
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("/proc/meminfo has no MemAvailable line")


def _wait_idle(env: dict[str, str], procs: list[subprocess.Popen], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args[0]} exited {p.returncode}: {p.stdout.read()}")
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
        if out.stdout.strip() == "idle":
            return
        time.sleep(0.5)
    raise AssertionError(f"the SLURM node did not become idle within {timeout} s")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster on this machine; SLURM_CONF points the clients at it."""
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)}): apt-get install slurm-wlm munge")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip('snakemake-executor-plugin-slurm is not installed (pip install -e ".[slurm]")')
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs slurmd as root")
    if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.exists():
        SYSTEM_CONF.unlink()  # left dangling by an interrupted run of this test
    if SYSTEM_CONF.exists():
        pytest.skip(f"{SYSTEM_CONF} exists: this machine has a SLURM setup of its own")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "munge"):
        (d / sub).mkdir()
    key = d / "munge" / "munge.key"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(_slurm_conf(d, host, free_port(), free_port(), _available_mb() - 2000))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(conf)
    commands = [
        ["munged", "-F", "--force", f"--socket={d}/munge/munge.socket", f"--key-file={key}"]
        + [f"--{k}-file={d}/munge/munged.{k}" for k in ("log", "pid", "seed")],
        ["slurmctld", "-D", "-f", str(conf)],
        ["slurmd", "-D", "-f", str(conf)],
    ]
    procs: list[subprocess.Popen] = []
    try:
        for cmd in commands:
            procs.append(
                subprocess.Popen(
                    cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            )
            time.sleep(0.5)  # munged's socket before slurmctld, slurmctld before slurmd
        _wait_idle(env, procs)
        os.environ["SLURM_CONF"] = str(conf)  # read by sbatch/squeue in the Snakemake runs
        yield SlurmCluster(conf=conf, jobcomp=d / "jobcomp.log", folder=d)
    finally:
        os.environ.pop("SLURM_CONF", None)
        SYSTEM_CONF.unlink()
        for p in reversed(procs):
            stop(p)


def _submitted(project: Path) -> dict[int, str]:
    """Job id -> rule, from the plugin's per-job logs (.snakemake/slurm_logs/rule_R/.../ID.log)."""
    logs = project / ".snakemake" / "slurm_logs"
    return {
        int(log.stem): log.relative_to(logs).parts[0].removeprefix("rule_")
        for log in logs.rglob("*.log")
    }


# Measurements of the run rather than results of it: wall and step times, throughput, start
# and finish stamps, peak memory, and precision_reason (it carries the ratio of a timed probe).
MEASURED = re.compile(r"seconds|_per_s$|^(started|finished|peak_mem_mb|precision_reason)$")


def _results_only(value: object) -> object:
    if isinstance(value, dict):
        return {k: _results_only(v) for k, v in value.items() if not MEASURED.search(k)}
    if isinstance(value, list):
        return [_results_only(v) for v in value]
    return value


def _result(path: Path) -> object:
    """What a file holds, measurements left out."""
    if path.suffix == ".json":
        return _results_only(json.loads(path.read_text()))
    if path.suffix == ".csv":
        return _results_only(list(csv.DictReader(path.read_text().splitlines())))
    data = path.read_bytes()
    if path.suffix == ".safetensors":
        # Names, shapes and bytes of the tensors; a decoder checkpoint's metadata is its
        # train.json (compared on its own), timings included.
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        header.pop("__metadata__", None)
        return header, data[8 + size :]
    return data


def _outputs(project: Path) -> list[str]:
    """Every file a run wrote under data/ and results/ (Snakemake's directory stamps aside)."""
    return sorted(
        str(p.relative_to(project))
        for folder in ("data", "results")
        for p in (project / folder).rglob("*")
        if p.is_file() and p.name != ".snakemake_timestamp"
    )


def test_smoke_run_through_slurm_matches_local_run(slurm_cluster, smoke_project, tmp_path):
    project = copy_project(tmp_path / "project")
    args = [*SLURM_ARGS, *FAST_POLLING, *CLUSTER_TARGETS, *SMOKE]
    out = snakemake(project, *args)
    log = out.stdout + out.stderr

    # Every job the scheduler finished was submitted by this run, and completed.
    finished = slurm_cluster.finished_jobs()
    submitted = _submitted(project)
    assert submitted and set(submitted) == set(finished), log[-3000:]
    assert {j["JobState"] for j in finished.values()} == {"COMPLETED"}
    # Each non-local job went through sbatch; the tiny ones ran on the submitting host.
    local = set(re.findall(r"^local(?:rule|checkpoint) (\w+):", log, re.M))
    remote = re.findall(r"^(?:rule|checkpoint) (\w+):", log, re.M)
    assert sorted(remote) == sorted(submitted.values())
    assert sorted(remote) == ["cache_features", "prepare_images", "sparse_cell", "train_decoder"]
    assert local == {"make_fields", "summarize_data"}

    # The resources each rule declares are what the scheduler allocated (two rules).
    by_rule = {rule: finished[job] for job, rule in submitted.items()}
    assert by_rule["train_decoder"]["TimeLimit"] == "240"
    # cpu=1: the smoke overlay's decoder.threads.
    assert by_rule["train_decoder"]["Tres"].startswith("cpu=1,mem=4000M,")
    assert by_rule["sparse_cell"]["TimeLimit"] == "120"
    assert by_rule["sparse_cell"]["Tres"].startswith("cpu=1,mem=1500M,")

    # Same results as the local smoke run on this machine (same precision, same seeds), for
    # every file this slice wrote: crops, fields, feature shards, decoder, sparse cell.
    produced = _outputs(project)
    assert {*CLUSTER_TARGETS, "data/features/dinov2_s14/index.json"} <= set(produced)
    differ = [name for name in produced if _result(smoke_project / name) != _result(project / name)]
    assert differ == []

    # A second run submits nothing.
    again = snakemake(project, *args)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert slurm_cluster.finished_jobs().keys() == finished.keys()
    assert run(["squeue", "-h"], project).stdout.strip() == ""
