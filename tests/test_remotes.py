"""The DVC round trip through real remotes: SSH (openssh-server) and the S3 API (moto_server).

Each test takes the session's smoke run, records it (`reconlab record --config-name smoke`),
pushes it to a server started on 127.0.0.1 by the test, clones the git repo, runs
`reconlab sync --config-name smoke` in the clone and checks that Snakemake has nothing to do. Servers come from Debian (`openssh-server`) and
from the optional extras (`pip install -e ".[ssh,s3]"`); a test skips, naming what is missing,
when they are not installed. `.ci/run` installs both.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import BIN, SMOKE, planned_jobs, run

pytestmark = pytest.mark.slow

SSHD = Path("/usr/sbin/sshd")


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], repo)


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["git", *args], repo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    """Return once 127.0.0.1:port accepts connections; fail with the server's output if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}: {proc.stdout.read()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def init_repo(repo: Path) -> Path:
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.email", "t@example.org"], repo)
    run(["git", "config", "user.name", "test"], repo)
    return repo


def record_push_clone_sync(repo: Path, clone: Path, local: Sequence[str] = ()) -> int:
    """record -> commit -> dvc push -> git clone -> reconlab sync; returns the files pushed.

    ``local`` is a per-user remote option (`remote name option value`) that git does not carry:
    set with `dvc remote modify --local` in the repo and again in the clone. Asserts the clone
    ends up with the same artifacts (`dvc status` clean against the committed dvc.lock, files
    byte-equal) and that Snakemake plans nothing there.
    """
    if local:
        dvc(repo, "remote", "modify", "--local", *local)
    run([str(BIN / "reconlab"), "record", "--config-name", "smoke"], repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "smoke run")
    out = dvc(repo, "push")
    pushed = re.search(r"(\d+) files? pushed", out.stdout + out.stderr)
    assert pushed, out.stdout + out.stderr
    run(["git", "clone", "-q", str(repo), str(clone)], clone.parent)
    assert not (clone / "data/prepared").exists() and not (clone / "results").exists()
    if local:
        dvc(clone, "remote", "modify", "--local", *local)
    run([str(BIN / "reconlab"), "sync", "--config-name", "smoke"], clone)
    assert json.loads(dvc(clone, "status", "--json").stdout) == {}
    for name in ("data/prepared/manifest.csv", "results/sparse/summary.json"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes(), name
    assert planned_jobs(clone, *SMOKE) == set()  # nothing to be done
    return int(pushed.group(1))


@pytest.fixture
def smoke_repo(smoke_copy: Path, tmp_path: Path, monkeypatch) -> Path:
    """The smoke run as a git repo, with a private HOME (ssh keys and known_hosts live there)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    return init_repo(smoke_copy)


@pytest.fixture
def sshd(tmp_path: Path):
    """An OpenSSH server on 127.0.0.1 accepting one generated key; yields (port, keyfile)."""
    if not SSHD.exists():
        pytest.skip("openssh-server is not installed (apt-get install openssh-server)")
    if importlib.util.find_spec("dvc_ssh") is None:
        pytest.skip('dvc-ssh is not installed (pip install -e ".[ssh]")')
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host_key", "client_key"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], d)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"PidFile {d / 'sshd.pid'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
    )
    # sshd refuses to start without its privilege-separation directory (made by systemd usually).
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, proc, "sshd")
        yield port, d / "client_key"
    finally:
        stop(proc)


@pytest.fixture
def moto_s3(monkeypatch):
    """moto's S3 API server on 127.0.0.1 with dummy credentials; yields its endpoint URL."""
    moto_server = BIN / "moto_server"
    if importlib.util.find_spec("dvc_s3") is None or not moto_server.exists():
        pytest.skip('dvc-s3 or moto is not installed (pip install -e ".[s3]")')
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    proc = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_round_trip_through_ssh_remote(smoke_repo, sshd, tmp_path):
    port, keyfile = sshd
    known_hosts = Path(os.environ["HOME"]) / ".ssh/known_hosts"
    scan = run(["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"], tmp_path)
    assert f"[127.0.0.1]:{port} ssh-ed25519 " in scan.stdout
    known_hosts.write_text(scan.stdout)
    store = tmp_path / "ssh-store"
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{port}{store}"
    dvc(smoke_repo, "remote", "add", "-d", "cluster", url)
    clone = tmp_path / "clone-parent" / "clone"
    clone.parent.mkdir()
    # The key path is per user: --local keeps it out of the committed .dvc/config.
    pushed = record_push_clone_sync(smoke_repo, clone, ["cluster", "keyfile", str(keyfile)])
    stored = [p for p in (store / "files/md5").rglob("*") if p.is_file()]
    assert pushed == len(stored) > 0


def test_round_trip_through_s3_remote(smoke_repo, moto_s3, tmp_path):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3)
    s3.create_bucket(Bucket="reconlab")
    dvc(smoke_repo, "remote", "add", "-d", "shared", "s3://reconlab/dvcstore")
    dvc(smoke_repo, "remote", "modify", "shared", "endpointurl", moto_s3)
    clone = tmp_path / "clone-parent" / "clone"
    clone.parent.mkdir()
    pushed = record_push_clone_sync(smoke_repo, clone)
    listed = s3.list_objects_v2(Bucket="reconlab", Prefix="dvcstore/files/md5/")
    assert pushed == listed["KeyCount"] > 0
