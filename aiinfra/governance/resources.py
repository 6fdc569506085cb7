"""What a stage used: wall time, CPU seconds (children included), peak memory, I/O, GPU; and its price.

Measured with the kernel's own counters (``getrusage``, ``/proc/self/io``), so recording costs a
few microseconds per reading: the budget check may read it every batch. Standard library only
(torch is consulted only when the stage has already imported it and initialised CUDA).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any


def _io() -> tuple[int, int]:
    """Bytes this process passed through read()/write() (files, pipes, sockets): rchar/wchar."""
    try:
        with open("/proc/self/io", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
        return int(fields.get(b"rchar", 0)), int(fields.get(b"wchar", 0))
    except (OSError, ValueError):  # not Linux, or /proc hidden: I/O is reported as 0
        return 0, 0


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # terminated, waited-for children
    return own.ru_utime + children.ru_utime, own.ru_stime + children.ru_stime


def _peak_rss() -> int:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    return max(own, children) * scale


def _gpu() -> tuple[str | None, int, int]:
    """(device name, devices in use, peak bytes allocated) when this process uses CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None, 0, 0
    try:
        if not torch.cuda.is_initialized():
            return None, 0, 0
        count = torch.cuda.device_count()
        peak = max(torch.cuda.max_memory_allocated(i) for i in range(count))
        return torch.cuda.get_device_name(0), count, int(peak)
    except Exception:  # noqa: BLE001 - a driver error must not fail the stage's accounting
        return None, 0, 0


@dataclass
class Usage:
    """Resources of one stage (or of a serving process so far)."""

    wall_s: float
    cpu_user_s: float
    cpu_system_s: float
    peak_rss_bytes: int
    read_bytes: int
    write_bytes: int
    gpu_s: float = 0.0  # GPU-seconds held: wall time x devices, while CUDA was initialised
    gpu_peak_bytes: int = 0
    gpu_device: str | None = None

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_system_s

    @property
    def cpu_hours(self) -> float:
        return self.cpu_s / 3600.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cpu_s": round(self.cpu_s, 6)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Usage:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


class ResourceMeter:
    """Started when a stage starts; ``usage()`` is what it used since (callable any number of times)."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self._cpu0 = _cpu()
        self._io0 = _io()

    def usage(self) -> Usage:
        wall = time.perf_counter() - self._t0
        user, system = _cpu()
        read, written = _io()
        device, count, gpu_peak = _gpu()
        return Usage(
            wall_s=round(wall, 6),
            cpu_user_s=round(user - self._cpu0[0], 6),
            cpu_system_s=round(system - self._cpu0[1], 6),
            peak_rss_bytes=_peak_rss(),
            read_bytes=max(0, read - self._io0[0]),
            write_bytes=max(0, written - self._io0[1]),
            gpu_s=round(wall * count, 6),
            gpu_peak_bytes=gpu_peak,
            gpu_device=device,
        )


def price(usage: Usage, rates: Any) -> dict[str, Any]:
    """Money for ``usage`` at the rate card ``rates`` (:class:`aiinfra.governance.schema.RateCard`):
    CPU-hours x cpu_hour + peak GiB x wall hours x memory_gb_hour + GPU-hours x gpu_hour[device]."""
    hours = usage.wall_s / 3600.0
    cpu = usage.cpu_hours * rates.cpu_hour
    memory = usage.peak_rss_bytes / 2**30 * hours * rates.memory_gb_hour
    gpu_rate = rates.gpu_hour.get(usage.gpu_device or "", rates.gpu_hour.get("default", 0.0))
    gpu = usage.gpu_s / 3600.0 * gpu_rate
    return {
        "currency": rates.currency,
        "cpu": cpu,
        "memory": memory,
        "gpu": gpu,
        "total": cpu + memory + gpu,
    }


def process_usage() -> Usage:
    """This whole process's resources since it started (a serving process's running total)."""
    user, system = _cpu()
    read, written = _io()
    device, count, gpu_peak = _gpu()
    try:
        with open("/proc/self/stat", "rb") as f:
            start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        wall = max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        wall = 0.0
    return Usage(
        wall_s=round(wall, 3),
        cpu_user_s=round(user, 6),
        cpu_system_s=round(system, 6),
        peak_rss_bytes=_peak_rss(),
        read_bytes=read,
        write_bytes=written,
        gpu_s=round(wall * count, 3),
        gpu_peak_bytes=gpu_peak,
        gpu_device=device,
    )
