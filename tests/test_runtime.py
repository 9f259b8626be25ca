"""precision: auto — the resolver on every machine class, with the capability injected.

The CI machine has one CPU class; these tests cover the others (AVX2 without native bf16,
AVX-512 BF16, AMX, Arm, CUDA with and without bf16) by handing :func:`choose_precision` a
:class:`Machine` and a probe result instead of reading them from this machine.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reconlab.runtime import (
    BF16_MIN_SPEEDUP,
    Machine,
    bf16_speedup,
    choose_precision,
    compute_record,
    machine,
    precision_for,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
AVX2 = Machine("AMD EPYC 7B12", "AVX2", frozenset({"avx2", "fma"}), cores=2)
AVX512_BF16 = Machine("AMD EPYC 9B14", "AVX512", frozenset({"avx2", "avx512f", "avx512_bf16"}), 2)
AMX = Machine("Xeon 8480", "AVX512", frozenset({"avx512f", "amx_bf16", "amx_tile"}), 2)
AVX512_NO_BF16 = Machine("Xeon 6248", "AVX512", frozenset({"avx2", "avx512f"}), 2)
# the hardware has bf16 but ATEN_CPU_CAPABILITY=avx2 caps PyTorch's kernels below it
CAPPED = Machine("AMD EPYC 9B14", "AVX2", frozenset({"avx2", "avx512f", "avx512_bf16"}), 2)
ARM_BF16 = Machine("Neoverse-V1", "SVE256", frozenset({"asimd", "sve", "bf16"}), 2)
H100 = Machine("x", "AVX2", frozenset(), 2, gpu_name="NVIDIA H100", gpu_bf16=True)
T4 = Machine("x", "AVX2", frozenset(), 2, gpu_name="Tesla T4", gpu_bf16=False)


def never_probed(kind: str) -> float:
    raise AssertionError(f"the {kind} probe must not run here")


def fast(kind: str) -> float:
    return 1.6


def slow(kind: str) -> float:
    return 0.05


@pytest.mark.parametrize(
    ("info", "kind", "probe", "expected", "reason"),
    [
        (AVX2, "linear", never_probed, "fp32", "CPU AVX2 has no native bf16"),
        (AVX512_NO_BF16, "conv", never_probed, "fp32", "CPU AVX512 has no native bf16"),
        (CAPPED, "linear", never_probed, "fp32", "CPU AVX2 has no native bf16"),
        (AVX512_BF16, "linear", fast, "bf16", "native bf16, probe 1.60x fp32 (linear)"),
        (AMX, "conv", fast, "bf16", "native bf16, probe 1.60x fp32 (conv)"),
        (ARM_BF16, "linear", fast, "bf16", "native bf16, probe 1.60x fp32 (linear)"),
        (AVX512_BF16, "conv", slow, "fp32", "native bf16 but probe 0.05x fp32 (conv)"),
    ],
    ids=["avx2", "avx512-no-bf16", "capped", "avx512-bf16", "amx", "arm-bf16", "probe-says-no"],
)
def test_auto_on_cpu_follows_native_bf16_and_the_probe(info, kind, probe, expected, reason):
    assert choose_precision(CPU, "auto", kind, info, probe) == (expected, reason)


def test_auto_needs_a_real_margin_to_pick_bf16():
    just_under = BF16_MIN_SPEEDUP - 0.01
    assert choose_precision(CPU, "auto", "linear", AMX, lambda k: just_under)[0] == "fp32"
    assert choose_precision(CPU, "auto", "linear", AMX, lambda k: BF16_MIN_SPEEDUP)[0] == "bf16"


@pytest.mark.parametrize(
    ("info", "expected", "reason"),
    [
        (H100, "bf16", "NVIDIA H100 supports bf16"),
        (T4, "fp16", "Tesla T4 has no bf16; fp16 with a GradScaler"),
    ],
)
def test_auto_on_cuda_is_bf16_where_supported_else_fp16(info, expected, reason):
    assert choose_precision(CUDA, "auto", "conv", info, never_probed) == (expected, reason)


def test_fp16_on_cuda_needs_a_grad_scaler_and_bf16_does_not():
    from reconlab.runtime import Precision

    assert Precision(CUDA, torch.float16, "fp16").needs_scaler
    assert not Precision(CUDA, torch.bfloat16, "bf16").needs_scaler
    assert not Precision(CPU, torch.bfloat16, "bf16").needs_scaler


@pytest.mark.parametrize("info", [AVX2, AMX, H100], ids=["avx2", "amx", "gpu-machine"])
def test_explicit_choices_are_honoured(info):
    assert choose_precision(CPU, "fp32", "linear", info, never_probed) == ("fp32", "asked for")
    assert choose_precision(CUDA, "fp16", "linear", info, never_probed) == ("fp16", "asked for")
    assert choose_precision(CUDA, "fp32", "linear", info, never_probed) == ("fp32", "asked for")


def test_fp16_on_cpu_becomes_bf16():
    assert choose_precision(CPU, "fp16", "conv", AMX, never_probed) == ("bf16", "asked for")


def test_bf16_without_native_support_warns_once_with_the_measured_slowdown(caplog):
    with caplog.at_level(logging.WARNING, logger="reconlab"):
        got = choose_precision(CPU, "bf16", "conv", AVX2, slow)
    assert got == ("bf16", "asked for")
    assert [r.getMessage() for r in caplog.records] == [
        "precision bf16 on a CPU without native bf16 (AVX2): measured 0.05x the speed of fp32 "
        "for conv ops; use precision: auto or fp32"
    ]


def test_bf16_with_native_support_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="reconlab"):
        choose_precision(CPU, "bf16", "linear", AMX, never_probed)
    assert caplog.records == []


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"precision 'bf32' is not one of \['auto', 'bf16'"):
        choose_precision(CPU, "bf32", "linear", AVX2, never_probed)
    with pytest.raises(ValueError, match=r"op kind 'rnn' is not one of \['linear', 'conv'\]"):
        choose_precision(CPU, "auto", "rnn", AMX, fast)


def test_native_bf16_reads_flags_and_the_dispatch_capability():
    assert [m.native_bf16 for m in (AVX2, AVX512_NO_BF16, CAPPED, AVX512_BF16, AMX, ARM_BF16)] == [
        False, False, False, True, True, True,
    ]  # fmt: skip
    assert AVX512_BF16.cpu_class == "AVX512+BF16" and AVX2.cpu_class == "AVX2"


def test_this_machine_resolves_to_fp32_or_bf16_and_records_it():
    """On whatever machine runs the suite: a concrete choice, recorded with the machine facts."""
    p = precision_for(CPU, "auto", "linear")
    assert p.name in ("fp32", "bf16") and p.requested == "auto"
    assert p.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[p.name]
    expected = "bf16" if machine().native_bf16 and bf16_speedup("linear") >= 1.1 else "fp32"
    assert p.name == expected
    record = compute_record(p)
    assert record == {
        "device": "cpu",
        "precision": p.name,
        "precision_requested": "auto",
        "precision_reason": p.reason,
        "cpu_capability": machine().cpu_class,
        "torch": torch.__version__,
    }


def test_the_probe_restores_the_thread_count_and_returns_a_ratio():
    before = torch.get_num_threads()
    bf16_speedup.cache_clear()
    ratio = bf16_speedup("conv")
    assert ratio > 0 and torch.get_num_threads() == before


def test_capped_dispatch_resolves_auto_to_fp32_in_a_fresh_process():
    """ATEN_CPU_CAPABILITY=avx2 stands in for an AVX2-only CPU: auto must not pick bf16."""
    code = (
        "import torch; from reconlab.runtime import precision_for;"
        "p = precision_for(torch.device('cpu'), 'auto', 'linear'); print(p.name, '|', p.reason)"
    )
    env = {"ATEN_CPU_CAPABILITY": "avx2", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "fp32 | CPU AVX2 has no native bf16"


def test_a_metrics_file_says_when_its_units_ran_differently():
    from reconlab.provenance import summarize_compute

    a = {"device": "cpu", "precision": "bf16", "cpu_capability": "AVX512+BF16", "torch": "2.9"}
    assert summarize_compute([a, dict(a)]) == a
    mixed = summarize_compute([a, dict(a, precision="fp32"), {"psnr": 1.0}])
    assert mixed == {
        "device": "mixed: cpu, unknown",
        "precision": "mixed: bf16, fp32, unknown",
        "cpu_capability": "mixed: AVX512+BF16, unknown",
        "torch": "mixed: 2.9, unknown",
    }


def test_commands_that_only_read_results_do_not_import_torch():
    """Per-job start-up: a summary job pays no torch import (~2 s of CPU per process)."""
    light = [
        "reconlab.decoder.summary",
        "reconlab.diagnostics.summary",
        "reconlab.tokenizer.summary",
        "reconlab.sparse.aggregate",
        "reconlab.sparse.grid",
        "reconlab.data.summary",
    ]
    code = f"import sys; import {', '.join(light)}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _speedup_in_fresh_process(cache_dir) -> float:
    env = dict(os.environ, RECONLAB_CACHE_DIR=str(cache_dir))
    code = "from reconlab.runtime import recorded_bf16_speedup as r; print(r('conv'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


@pytest.mark.slow  # four fresh processes, each measuring or reading the bf16 probe
def test_one_machine_keeps_one_probe_result_so_runs_choose_alike(tmp_path):
    first = _speedup_in_fresh_process(tmp_path)
    (kept,) = tmp_path.glob("bf16-probe-conv-*.json")
    assert _speedup_in_fresh_process(tmp_path) == first  # read back, not measured again
    # what a process finds is what it uses, e.g. a result another job kept a moment earlier
    kept.write_text('{"kind": "conv", "speedup": 0.5}')
    assert _speedup_in_fresh_process(tmp_path) == 0.5
    # `reconlab info --reprobe` forgets it
    env = dict(os.environ, RECONLAB_CACHE_DIR=str(tmp_path))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    subprocess.run(["reconlab", "info", "--reprobe", "--json"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    # (measured again where `auto` needs it, i.e. on CPUs with native bf16; absent elsewhere)
    again = [json.loads(f.read_text())["speedup"] for f in tmp_path.glob("bf16-probe-conv-*")]
    assert again == ([] if not machine().native_bf16 else again) and 0.5 not in again


def test_info_names_the_cpu_class_as_every_metrics_file_does():
    from reconlab.runtime import machine_report

    report = machine_report()
    record = compute_record(precision_for(torch.device("cpu"), "auto", kind="linear"))
    assert report["cpu_capability"] == record["cpu_capability"] == machine().cpu_class
    assert report["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert report["cpu_capability"].startswith(report["torch_cpu_capability"])
