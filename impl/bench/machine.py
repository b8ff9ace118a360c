"""The machine a report was measured on: CPU model, cores, kernel, Python, atomics backend, load.

Every report carries it (the figures mean nothing without it), with the load average at the start
and at the end of the run: the figures of a shared machine move with the other processes on it.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

__all__ = ["machine_info", "load_average"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") or line.startswith("Model"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """CPU, cores (online and allowed to this process), kernel, Python, atomics backends."""
    from nlmmap.impl.atomics import backend_names

    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    names = backend_names()
    return {
        "cpu": _cpu_model(), "machine": platform.machine(), "cores": os.cpu_count(), "cores_allowed": allowed,
        "kernel": platform.release(), "os": platform.system(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "atomics": names[0] if names else None, "atomics_available": names,
    }
