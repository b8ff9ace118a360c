"""How every figure of ``nlmmap bench`` is taken: samples, interleaved rounds, medians and spread,
CPU placement of the two processes, progress.

A *variant* is a function that runs one measurement from scratch (a fresh socket of a running
kernel-side process, its producer started, the consumer reading in this process) and returns a
:class:`Sample`. :func:`interleave` runs every variant of a comparison once per round, the order
rotating each round, so that a burst of load from elsewhere hits all of them alike; a row is the
median over the rounds with its spread (min, max, quartiles, every sample kept). Ratios are
computed from rows of the same run (:mod:`nlmmap.impl.bench.report`), never from constants.

Placement (:class:`Placement`): the ring needs the producer (the kernel-side process) and the
consumer (this process) to run *at the same time*. Left to the scheduler on a 2-core machine,
the wake-up of one by the other tends to pull both onto one core (wake-affine placement), where
they take turns and each spin or sleep hands the core over: the cause of the bimodal figures
(docs/performance.md). ``auto`` pins the consumer to one CPU and the kernel side to another when
at least two are allowed.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Sample", "Placement", "Progress", "interleave", "warm_up", "summarize", "pooled", "speed_probe",
           "PER_MILLION", "WARMUP_CALLS"]

PER_MILLION = 1_000_000
#: Untimed calls of every variant before a comparison's rounds (:func:`warm_up`).
WARMUP_CALLS = 10


@dataclass
class Sample:
    """One measurement: ``value`` in the row's unit (messages/s, packets/s, bytes/s, seconds), the
    messages it moved, and the correctness counters of that run."""

    value: float
    messages: int = 0
    seq_errors: int = 0  # messages out of sequence, lost, duplicated or corrupted (consumer's check)
    poll_timeouts: int = 0  # bounded sleeps that expired, both sides (stalls or lost wake-ups)
    lost_wakeups: int = 0  # of them, proven lost wake-ups
    extra: dict[str, float] = field(default_factory=dict)  # sleeps, producer waits, reorders, ...


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """A row's figures from its samples: median, spread, and the counters summed (and per million
    messages)."""
    vals = sorted(s.value for s in samples)
    med = statistics.median(vals)
    q = statistics.quantiles(vals, n=4, method="inclusive") if len(vals) > 1 else [vals[0]] * 3
    msgs = sum(s.messages for s in samples)
    out: dict[str, Any] = {
        "median": med, "min": vals[0], "max": vals[-1], "q1": q[0], "q3": q[2],
        "spread": (vals[-1] - vals[0]) / med if med else 0.0, "samples": [s.value for s in samples],
        "rounds": len(samples), "messages": msgs,
    }
    extra: dict[str, float] = {}
    for s in samples:
        for k, v in s.extra.items():
            extra[k] = extra.get(k, 0) + v
    for name in ("seq_errors", "poll_timeouts", "lost_wakeups"):
        total = sum(getattr(s, name) for s in samples)
        out[name] = total
        out[f"{name}_per_million"] = total * PER_MILLION / msgs if msgs else 0.0
    out["extra"] = extra
    return out


def pooled(samples: list[Sample]) -> Sample:
    """One rate from slices of one run: every slice's messages over every slice's time (each
    slice's time is its messages over its rate), the counters summed."""
    if not samples or any(s.value <= 0 or s.messages <= 0 for s in samples):
        raise ValueError("pooled: every slice needs messages and a positive rate")
    msgs = sum(s.messages for s in samples)
    out = Sample(msgs / sum(s.messages / s.value for s in samples), msgs, sum(s.seq_errors for s in samples),
                 sum(s.poll_timeouts for s in samples), sum(s.lost_wakeups for s in samples))
    for s in samples:
        for k, v in s.extra.items():
            out.extra[k] = out.extra.get(k, 0) + v
    out.extra["slices"] = len(samples)
    return out


def interleave(variants: dict[str, Callable[[], Sample]], rounds: int,
               progress: Progress | None = None, label: str = "") -> dict[str, list[Sample]]:
    """Run every variant ``rounds`` times, interleaved, the order rotating each round."""
    names = list(variants)
    got: dict[str, list[Sample]] = {k: [] for k in names}
    total = rounds * len(names)
    done = 0
    for r in range(rounds):
        k0 = r % len(names)
        for k in names[k0:] + names[:k0]:
            if progress is not None:
                progress.step(f"{label} {k}", done, total)
            got[k].append(variants[k]())
            done += 1
    if progress is not None:
        progress.step(label, total, total)
    return got


def warm_up(variants: dict[str, Callable[[], Sample]], calls: int = WARMUP_CALLS,
            progress: Progress | None = None, label: str = "") -> list[Sample]:
    """Call every variant ``calls`` times before it is timed (small runs; their figures are not
    a row's, their correctness counters are kept by the caller). CPython specialises a
    function's bytecode only once it has been called a few times: the consumer's first calls of
    a reader ran ~20% slower per message (the batched copy at 64 B: 3.5 against 4.3 M msg/s,
    docs/performance-notes.md)."""
    out = []
    for i in range(calls):
        for k, fn in variants.items():
            if progress is not None:
                progress.step(f"{label} warm-up {k}", i, calls)
            out.append(fn())
    return out


_PROBE_BUF = bytes(1 << 16)
_PROBE_Q = struct.Struct("=Q").unpack_from


def speed_probe(reps: int = 20) -> Sample:
    """How fast this CPU runs Python right now: ns per iteration of a fixed loop (one
    ``unpack_from`` and an addition, the readers' per-message work), over ``reps`` passes of 7,500
    iterations (~30 ms). Timed beside each run-by-run round, it shows whether the machine's speed
    moved between runs (lower is faster)."""
    buf, up, total = _PROBE_BUF, _PROBE_Q, 0
    t = time.perf_counter()
    for _ in range(reps):
        for i in range(0, 60000, 8):
            total += up(buf, i)[0]
    return Sample((time.perf_counter() - t) * 1e9 / (reps * 7500))


class Placement:
    """Which CPUs the consumer (this process) and the kernel-side process run on.

    ``mode``: ``auto`` (different CPUs when two or more are allowed and the machine is quiet:
    1-minute load average below half the allowed CPUs; on a busy machine pinning would tie one
    of the two to a CPU another program holds, so the scheduler decides), ``on`` (different CPUs
    whatever the load), ``off`` (the scheduler decides), or ``"A,B"`` (consumer on CPU A, kernel
    side on CPU B; the kernel side's answers to the consumer's calls on CPU A, as a kernel runs a
    system call on the caller's CPU). ``reason`` says why."""

    def __init__(self, mode: str = "auto", *, load: float | None = None):
        self.mode = mode
        self.allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.consumer: int | None = None
        self.kernel: int | None = None
        self.reason = "--pin off"
        if mode in ("auto", "on"):
            if len(self.allowed) < 2:
                self.reason = "fewer than 2 CPUs allowed"
            elif mode == "auto" and load is not None and load >= len(self.allowed) / 2:
                self.reason = f"load average {load} >= {len(self.allowed) / 2:g}: left to the scheduler"
            else:
                self.consumer, self.kernel = self.allowed[0], self.allowed[1]
                self.reason = f"--pin {mode}" + (f" (load average {load})" if load is not None else "")
        elif mode != "off":
            try:
                a, b = (int(x) for x in mode.split(","))
            except ValueError:
                raise ValueError(f"--pin {mode!r}: expected auto, on, off or CONSUMER_CPU,KERNEL_CPU") from None
            if a not in self.allowed or b not in self.allowed:
                raise ValueError(f"--pin {mode!r}: CPUs allowed here are {self.allowed}")
            self.consumer, self.kernel = a, b
            self.reason = f"--pin {mode}"

    @property
    def pinned(self) -> bool:
        return self.consumer is not None

    def kernel_args(self, *, calls_on_caller: bool = True) -> list[str]:
        """Options of ``python -m nlmmap.impl.kernel`` for this placement: its services (the packet
        path) on the kernel's CPU, the threads that answer the consumer's calls on the consumer's
        CPU (``KernelConfig.call_cpus``: a kernel runs a system call on the caller's CPU), or with
        ``calls_on_caller=False`` on the kernel's CPU too (calls the caller does not wait for:
        there they would only take the caller's CPU from it)."""
        if self.kernel is None:
            return []
        if not calls_on_caller:
            return ["--cpus", str(self.kernel)]
        return ["--cpus", str(self.kernel), "--call-cpus", str(self.consumer)]

    @contextlib.contextmanager
    def consumer_pinned(self) -> Iterator[None]:
        """This process on the consumer's CPU for the duration (restored afterwards)."""
        if self.consumer is None:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.consumer})
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "allowed_cpus": self.allowed, "consumer_cpu": self.consumer,
                "kernel_cpu": self.kernel, "call_cpu": self.consumer, "reason": self.reason}


class Progress:
    """Progress of a long run: a rewritten status line on a TTY, one line per section elsewhere."""

    def __init__(self, err: TextIO | None = None, *, enabled: bool = True):
        self.err = err if err is not None else sys.stderr
        self.tty = enabled and hasattr(self.err, "isatty") and self.err.isatty()
        self.enabled = enabled
        self.t0 = time.monotonic()
        self._width = 0

    def step(self, what: str, done: int, total: int) -> None:
        if not self.tty:
            return
        text = f"  [{time.monotonic() - self.t0:6.1f} s] {what} {done}/{total}"
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self.err.write("\r" + text + " " * pad)
        self.err.flush()

    def section(self, text: str) -> None:
        """A phase starts (always one flushed line, so that CI logs read well)."""
        if not self.enabled:
            return
        if self.tty and self._width:
            self.err.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.err.write(f"[{time.monotonic() - self.t0:6.1f} s] {text}\n")
        self.err.flush()
