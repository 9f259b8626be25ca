"""The smoke pipeline through a real SLURM scheduler: one node, started and torn down here.

`slurm_cluster` brings up munged, slurmctld and slurmd from Debian's packages (`slurm-wlm`,
`munge`; 22.05 on Debian 12) with a generated one-node slurm.conf in a temporary folder, no
systemd and no accounting database. The config is linked at /etc/slurm/slurm.conf for the
run (the jobstep plugin drops SLURM_CONF from the environment of its inner `srun`, so a node
must find its config at the default place; the test skips on a machine that has one). Snakemake submits through `snakemake-executor-plugin-slurm`
(`pip install -e ".[slurm]"`) with the profile the README documents. Without accounting,
`sacct` fails and the plugin's default status check would wait forever, so the run uses
`--slurm-status-command squeue`; what the scheduler ran is read from its job-completion log
(`JobCompType=jobcomp/filetxt`), one line per finished job with its state and resources.
"""

from __future__ import annotations

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


# Measurements of the run rather than results of it: wall time and peak memory.
MEASURED = re.compile(r"_seconds$|^peak_mem_mb$")


def _results_only(value: object) -> object:
    if isinstance(value, dict):
        return {k: _results_only(v) for k, v in value.items() if not MEASURED.search(k)}
    if isinstance(value, list):
        return [_results_only(v) for v in value]
    return value


def _results(project: Path) -> dict[str, object]:
    """The smoke configuration's metrics (measurements left out) and feature caches, by path."""
    found: dict[str, object] = {}
    for p in [*(project / SMOKE_METRICS).glob("*.json"), *(project / "data/features").rglob("*")]:
        if p.suffix == ".json":
            data = _results_only(json.loads(p.read_text()))
            if p.name == "index.json":
                data.pop("precision_reason")  # carries the ratio of a timed start-up probe
            found[str(p.relative_to(project))] = data
        elif p.is_file():
            found[str(p.relative_to(project))] = p.read_bytes()
    return found


def test_smoke_run_through_slurm_matches_local_run(slurm_cluster, smoke_project, tmp_path):
    project = copy_project(tmp_path / "project")
    out = snakemake(project, *SLURM_ARGS, *SMOKE)
    log = out.stdout + out.stderr

    # Every job the scheduler finished was submitted by this run, and completed.
    finished = slurm_cluster.finished_jobs()
    submitted = _submitted(project)
    assert submitted and set(submitted) == set(finished), log[-3000:]
    assert {j["JobState"] for j in finished.values()} == {"COMPLETED"}
    # Each non-local job went through sbatch; the tiny ones ran on the submitting host.
    local = set(re.findall(r"^localrule (\w+):", log, re.M)) | set(
        re.findall(r"^localcheckpoint (\w+):", log, re.M)
    )
    remote = re.findall(r"^(?:rule|checkpoint) (\w+):", log, re.M)
    assert sorted(remote) == sorted(submitted.values())
    assert local >= {"summarize_data", "summarize_features", "sparse_round", "report"}
    assert "train_decoder" in remote and "sparse_cell" in remote

    # The resources each rule declares are what the scheduler allocated (two rules).
    by_rule = {rule: finished[job] for job, rule in submitted.items()}
    assert by_rule["train_decoder"]["TimeLimit"] == "240"
    assert by_rule["train_decoder"]["Tres"].startswith("cpu=1,mem=4000M,")  # smoke: decoder.threads 1
    assert by_rule["sparse_cell"]["TimeLimit"] == "120"
    assert by_rule["sparse_cell"]["Tres"].startswith("cpu=1,mem=1500M,")

    # Same results as the local smoke run on this machine (same precision, same seeds).
    local, cluster = _results(smoke_project), _results(project)
    assert len(cluster) > 6 and local.keys() == cluster.keys()
    assert [name for name in sorted(local) if local[name] != cluster[name]] == []

    # A second run submits nothing.
    again = snakemake(project, *SLURM_ARGS, *SMOKE)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert slurm_cluster.finished_jobs().keys() == finished.keys()
    assert run(["squeue", "-h"], project).stdout.strip() == ""
