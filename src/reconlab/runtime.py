"""Device, precision, threads and seeds: one place decides them for every stage (decision 9).

``device: auto`` picks CUDA when present, else CPU.

``precision: auto`` (the default of every stage that computes) resolves, once per process and
kind of op, to the fast choice on the machine at hand:

* CUDA: bf16 where the GPU supports it (``torch.cuda.is_bf16_supported()``), else fp16 with a
  GradScaler.
* CPU: bf16 only when the CPU has native bf16 (AVX-512 BF16 or AMX on x86, the ``bf16`` feature
  on Arm) *and* a start-up probe of the stage's kind of op (``linear``: transformers and ViT
  features; ``conv``: the conv decoders and tokenizers) runs it at least
  :data:`BF16_MIN_SPEEDUP` times faster than fp32; fp32 otherwise. The probe runs once per
  machine and its result is kept (:func:`recorded_bf16_speedup`), so every run on one machine
  makes the same choice. Without native bf16 PyTorch
  emulates it, many times slower than fp32 (measured 0.01-0.14x on an AVX2-only EPYC; see
  pytorch/pytorch#118499, #86270, #146508), so no probe is run there at all.

An explicit ``bf16`` / ``fp16`` / ``fp32`` is honoured (fp16 on CPU becomes bf16: CPU autocast has
no fast fp16 path); bf16 on a CPU without native bf16 logs one warning with the measured
slowdown. :func:`compute_record` is what every result JSON records about the choice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
OP_KINDS = ("linear", "conv")
BF16_MIN_SPEEDUP = 1.1  # auto picks bf16 on CPU only when the probe measures at least this
_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 (AVX-512, AMX), Arm


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' was asked for but no CUDA GPU is visible; use 'auto'")
    return device


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def dtype_of(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise ValueError(f"precision {name!r} is not one of {sorted(_DTYPES)}") from None


# -- what the machine can do --------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """Facts the precision choice depends on; built by :func:`machine` or injected in tests.

    ``cpu_capability`` is ``torch.backends.cpu.get_cpu_capability()`` (``AVX2``, ``AVX512``,
    ``DEFAULT``, ...): the kernels PyTorch dispatches to, which ``ATEN_CPU_CAPABILITY`` can lower
    below what the hardware has. ``cpu_flags`` are the kernel's ``/proc/cpuinfo`` flags.
    """

    cpu_model: str
    cpu_capability: str
    cpu_flags: frozenset[str]
    cores: int
    gpu_name: str | None = None
    gpu_bf16: bool = False

    @property
    def native_bf16(self) -> bool:
        """Hardware bf16 that PyTorch's kernels may use (flags present and dispatch not capped)."""
        if not self.cpu_flags & _NATIVE_BF16_FLAGS:
            return False
        x86 = self.cpu_capability.upper().startswith(("AVX", "DEFAULT", "NO AVX"))
        return not x86 or self.cpu_capability.upper().startswith("AVX512")

    @property
    def cpu_class(self) -> str:
        """A short name for reports: ``AVX512+BF16``, ``AVX2``, ..."""
        return self.cpu_capability + ("+BF16" if self.native_bf16 else "")


def _cpu_info() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    return model, frozenset(flags)


@functools.cache
def machine() -> Machine:
    """This process's :class:`Machine` (read once)."""
    model, flags = _cpu_info()
    gpu, gpu_bf16 = None, False
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        gpu_bf16 = torch.cuda.is_bf16_supported()
    return Machine(
        cpu_model=model,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_flags=flags,
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        gpu_name=gpu,
        gpu_bf16=gpu_bf16,
    )


# -- the start-up probe -------------------------------------------------------------------------


def _probe_step(kind: str) -> Callable[[bool], None]:
    """One forward+backward of a small net of ``kind``; the argument switches bf16 autocast."""
    from torch import nn

    g = torch.Generator().manual_seed(0)
    if kind == "linear":
        net = nn.Sequential(nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 256))
        x = torch.randn(256, 256, generator=g)
    elif kind == "conv":
        net = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.GELU(), nn.Conv2d(32, 32, 3, padding=1)
        )
        x = torch.randn(4, 32, 32, 32, generator=g)
    else:
        raise ValueError(f"op kind {kind!r} is not one of {list(OP_KINDS)}")

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(x).float().square().mean()
        loss.backward()

    return step


@functools.cache
def bf16_speedup(kind: str = "linear") -> float:
    """Measured fp32 time / bf16-autocast time of one small training step of ``kind`` on CPU.

    > 1 means bf16 is faster. Timed in this thread's CPU time (``time.thread_time``) on one
    intra-op thread, so other processes sharing the cores do not enter the ratio (measured here:
    wall-clock timing under a load of 12 on 2 cores flipped the decision); the two precisions
    alternate and the best of each counts. Takes tens of ms with native bf16; where bf16 is
    emulated it stops after one slow repetition (well under a second). Once per process and kind.
    """
    step = _probe_step(kind)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step(False), step(True)  # first calls allocate and pick kernels
        best = {False: float("inf"), True: float("inf")}
        for _ in range(5):
            for bf16 in (False, True):
                t = time.thread_time()
                step(bf16)
                best[bf16] = min(best[bf16], time.thread_time() - t)
            if best[True] > 2 * best[False]:
                break  # emulated bf16: no need to measure how slow exactly
    finally:
        torch.set_num_threads(threads)
    return best[False] / best[True]


def probe_record_path(kind: str, info: Machine | None = None) -> Path:
    """Where this machine's probe result for ``kind`` is kept.

    ``$RECONLAB_CACHE_DIR`` or ``$XDG_CACHE_HOME/reconlab`` (default ``~/.cache/reconlab``); the
    file name hashes what the result depends on (CPU model, flags, dispatch capability, cores,
    torch version), so another machine or another torch probes anew.
    """
    info = info or machine()
    root = os.environ.get("RECONLAB_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "reconlab"
    )
    facts = [info.cpu_model, info.cpu_capability, *sorted(info.cpu_flags), info.cores]
    key = hashlib.sha256(json.dumps([*facts, torch.__version__, kind]).encode()).hexdigest()
    return Path(root) / f"bf16-probe-{kind}-{key[:16]}.json"


@functools.cache
def recorded_bf16_speedup(kind: str = "linear") -> float:
    """:func:`bf16_speedup`, measured once per machine and then read back.

    A timing probe can land on either side of :data:`BF16_MIN_SPEEDUP` when a machine is
    heavily shared, and then two runs of one commit would compute in different precisions. So
    the first measurement on a machine is kept (:func:`probe_record_path`) and every later
    process reads it: one machine, one decision. The file is created exclusively (a hard link
    of a complete temporary file), so when two jobs probe at the same moment the first one's
    result is the one both use. ``reconlab info --reprobe`` deletes it to measure again.
    """
    path = probe_record_path(kind)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return float(json.loads(path.read_text())["speedup"])
    ratio = bf16_speedup(kind)
    record = {"kind": kind, "speedup": ratio, "torch": torch.__version__,
              "cpu_model": machine().cpu_model, "cpu_capability": machine().cpu_capability}  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".probe-")
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        try:
            os.link(tmp, path)  # exclusive: fails when another process got there first
        finally:
            os.unlink(tmp)
    except FileExistsError:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return float(json.loads(path.read_text())["speedup"])
    except OSError as e:  # a read-only home: decide from this process's own measurement
        log.warning("could not keep the bf16 probe result in %s (%s)", path, e.strerror)
    return ratio


# -- resolving a precision ----------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """How a stage runs its forward passes: autocast dtype (None = fp32) and grad scaling.

    ``name`` is the resolved precision (``fp32`` / ``bf16`` / ``fp16``), ``requested`` what the
    params asked for (``auto`` or an explicit name), ``reason`` why ``auto`` chose it.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    name: str = "fp32"
    requested: str = "fp32"
    reason: str = "asked for"

    @property
    def dtype(self) -> torch.dtype:
        return self.amp_dtype or torch.float32

    @property
    def needs_scaler(self) -> bool:
        return self.device.type == "cuda" and self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_scaler)


def choose_precision(
    device: torch.device,
    requested: str = "auto",
    kind: str = "linear",
    info: Machine | None = None,
    speedup: Callable[[str], float] | None = None,
) -> tuple[str, str]:
    """(resolved precision name, reason) for ``requested`` on ``device``; pure given its inputs.

    ``info`` and ``speedup`` default to this machine and :func:`bf16_speedup`; tests inject
    others to cover CPU classes the test machine lacks.

    Raises:
        ValueError: ``requested`` or ``kind`` is not a known name.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r} is not one of {list(PRECISIONS)}")
    if kind not in OP_KINDS:
        raise ValueError(f"op kind {kind!r} is not one of {list(OP_KINDS)}")
    info = info or machine()
    speedup = speedup or recorded_bf16_speedup
    if device.type == "cuda":
        if requested != "auto":
            return requested, "asked for"
        if info.gpu_bf16:
            return "bf16", f"{info.gpu_name} supports bf16"
        return "fp16", f"{info.gpu_name} has no bf16; fp16 with a GradScaler"
    if device.type != "cpu":
        return (
            ("fp32", "auto: fp32 off CPU/CUDA") if requested == "auto" else (requested, "asked for")
        )
    if requested == "fp16":
        requested = "bf16"  # CPU autocast has no fast fp16 path
    if requested == "fp32":
        return "fp32", "asked for"
    if requested == "bf16":
        if not info.native_bf16:
            ratio = speedup(kind)
            log.warning(
                "precision bf16 on a CPU without native bf16 (%s): measured %.2fx the speed of "
                "fp32 for %s ops; use precision: auto or fp32",
                info.cpu_capability, ratio, kind,
            )  # fmt: skip
        return "bf16", "asked for"
    if not info.native_bf16:
        return "fp32", f"CPU {info.cpu_capability} has no native bf16"
    ratio = speedup(kind)
    if ratio >= BF16_MIN_SPEEDUP:
        return "bf16", f"native bf16, probe {ratio:.2f}x fp32 ({kind})"
    return "fp32", f"native bf16 but probe {ratio:.2f}x fp32 ({kind})"


def precision_for(device: torch.device, name: str = "auto", kind: str = "linear") -> Precision:
    """The :class:`Precision` a stage runs with: ``name`` resolved for ``device`` and op ``kind``."""
    resolved, reason = _choose_cached(device.type, name, kind)
    amp = None if resolved == "fp32" else dtype_of(resolved)
    return Precision(device, amp, resolved, name, reason)


@functools.cache
def _choose_cached(device_type: str, name: str, kind: str) -> tuple[str, str]:
    resolved, reason = choose_precision(torch.device(device_type), name, kind)
    info = machine()
    where = info.gpu_name if device_type == "cuda" else f"CPU {info.cpu_class}, {info.cpu_model}"
    # one line per process and kind, so every job log says what ran and why
    log.info(
        "compute: device %s, precision %s for %s ops (%s: %s), %s, torch %s",
        device_type, resolved, kind, name, reason, where, torch.__version__,
    )  # fmt: skip
    return resolved, reason


def compute_record(precision: Precision) -> dict:
    """What a result JSON records about where and how it was computed.

    Keys: ``device`` (cpu / cuda), ``precision`` (resolved), ``precision_requested``,
    ``precision_reason``, ``cpu_capability`` (or the GPU's name on CUDA) and ``torch``.
    """
    info = machine()
    on_gpu = precision.device.type == "cuda"
    return {
        "device": precision.device.type,
        "precision": precision.name,
        "precision_requested": precision.requested,
        "precision_reason": precision.reason,
        "cpu_capability": info.gpu_name if on_gpu else info.cpu_class,
        "torch": torch.__version__,
    }


def machine_report() -> dict:
    """``reconlab info``: this machine and what ``auto`` resolves to per op kind and device."""
    info = machine()
    device = resolve_device("auto")
    auto = {kind: precision_for(device, "auto", kind) for kind in OP_KINDS}
    return {
        "cpu_model": info.cpu_model,
        # the value every metrics file and job log records under this name (CPU class) ...
        "cpu_capability": info.cpu_class,
        # ... from PyTorch's dispatch level and the native-bf16 check
        "torch_cpu_capability": info.cpu_capability,
        "native_bf16": info.native_bf16,
        "cores": info.cores,
        "gpu": info.gpu_name,
        "device_auto": device.type,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision_auto": {kind: p.name for kind, p in auto.items()},
        "precision_auto_reason": {kind: p.reason for kind, p in auto.items()},
    }


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch Generator for explicit draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(num_threads: int | None = None) -> int:
    """Use every core this process may run on (or ``num_threads``) for intra-op parallelism."""
    n = num_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n
