"""Throughput of the conformance suite: stateful steps per second against the bundled kernel sides.

:func:`bench` runs the ``ci`` profile (derandomized from the seed, no shrinking, no TOCTOU race
check) for ``max_steps`` steps against each target and returns one plain row per target. It is the
function ``nlmmap bench`` calls for its conformance rows and ``benchmarks/conformance_bench.py``
prints. A measurement, never a test: nothing here compares a time with a bar.

Targets (:data:`BENCH_TARGETS`): ``in-process`` (``nlmmap.impl.adapter:ImplBackend`` in this
process, its kernel side in another, shared memory), ``shared`` (``python -m nlmmap.impl.adapter``
over JSON lines, the suite mapping the rings), ``proxied`` (the same program, memory through
``peek``/``poke``), ``model`` (the reference model in this process: the suite's own cost).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["bench", "BENCH_TARGETS"]

#: target name -> the memory mode the suite uses with it
BENCH_TARGETS: dict[str, str] = {"in-process": "auto", "shared": "shared", "proxied": "proxied", "model": "auto"}


def _build(name: str) -> Any:
    from .runner import make_target
    from .targets import ExecTarget, python_command

    if name == "in-process":
        return make_target(impl="nlmmap.impl.adapter:ImplBackend")
    if name == "model":
        return make_target(impl="nlmmap.model.adapter:ModelBackend")
    return ExecTarget(python_command("nlmmap.impl.adapter"))


def bench(targets: Iterable[str] = ("in-process", "shared", "proxied"), *, max_steps: int = 2000,
          seed: int | None = None, progress: TextIO | None = None) -> list[dict[str, Any]]:
    """Run the suite for ``max_steps`` steps against each of ``targets`` (names of
    :data:`BENCH_TARGETS`) and return one row per target: ``target``, ``verdict``, ``steps``,
    ``requests``, ``seconds`` (the state machine's wall time), ``steps_per_s``, ``requests_per_s``,
    ``memory`` (the mode used), ``edges`` (status-machine edges hit/reachable), ``sut_s`` and
    ``model_s`` (time spent in the SUT and in the oracle), ``seed``, ``failure`` (the first
    failing check, or None). Unknown target names raise ``ValueError``."""
    from .runner import DEFAULT_SEED, run_conformance

    names = list(targets)
    unknown = [n for n in names if n not in BENCH_TARGETS]
    if unknown:
        raise ValueError(f"unknown bench target(s) {unknown}; known: {', '.join(BENCH_TARGETS)}")
    seed = DEFAULT_SEED if seed is None else seed
    rows = []
    with tempfile.TemporaryDirectory(prefix="nlmmap-bench-") as tmp:
        for name in names:
            memory = BENCH_TARGETS[name]
            rep = run_conformance(_build(name), profile="ci", max_steps=max_steps, seed=seed, memory=memory,
                                  toctou=False, stop_on_failure_shrink=False, coverage_floor=0,
                                  transcript_dir=os.path.join(tmp, name))
            t = rep.timings.get("state_machine") or 1e-9
            e = rep.coverage.get("edges", {})
            row = {"target": name, "verdict": rep.verdict, "steps": rep.steps, "requests": rep.requests,
                   "seconds": round(t, 3), "steps_per_s": round(rep.steps / t, 1),
                   "requests_per_s": round(rep.requests / t, 1), "memory": rep.memory_mode.split(" ")[0],
                   "edges": f"{e.get('hit')}/{e.get('reachable')}", "sut_s": rep.timings.get("sut"),
                   "model_s": rep.timings.get("model"), "seed": seed, "failure": (rep.failure or {}).get("check")}
            rows.append(row)
            if progress is not None:
                progress.write(f"{name:<11} {rep.verdict:<5} {rep.steps:>6} steps in {t:7.1f} s = "
                               f"{row['steps_per_s']:7.1f} steps/s ({row['requests_per_s']:.0f} requests/s, memory "
                               f"{row['memory']}, edges {row['edges']}, SUT {row['sut_s']} s, model {row['model_s']} s)"
                               + (f"  first failure: {row['failure']}" if row["failure"] else "") + "\n")
                progress.flush()
    return rows
