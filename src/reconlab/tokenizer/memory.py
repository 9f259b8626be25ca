"""Peak memory of a block of code: CUDA max allocated, or CPU RSS growth over a baseline.

On CPU a sampling thread reads the process RSS (psutil) every millisecond or so. Before the
baseline is taken, freed heap memory is returned to the OS (glibc ``malloc_trim``), otherwise
memory freed by an earlier measurement would be reused without showing as growth.
"""

from __future__ import annotations

import ctypes
import gc
import threading
import time

import psutil
import torch


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the baseline is just less tight
        pass


class PeakMemory:
    """Context manager; ``.peak_mb`` is the peak growth in MiB after the block exits."""

    def __init__(self, device: torch.device, interval_s: float = 0.001) -> None:
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.peak_mb = float("nan")
        self.method = (
            "cuda max_memory_allocated" if self.device.type == "cuda" else "cpu rss growth"
        )

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        _trim()
        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._max = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._proc.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._max = max(self._max, self._proc.memory_info().rss)
            self._stop.set()
            self._thread.join()
            peak = self._max
        self.peak_mb = max(peak - self._base, 0) / 2**20
