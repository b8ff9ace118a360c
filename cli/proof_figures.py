"""The proof kit's figures, measured once for both ``nlmmap bench`` (its ``proofs`` rows) and
``benchmarks/proof_bench.py`` (the longer tables): ``prove`` time and its slowest obligation, BMC
time per depth for the manifest's clean runs (``spec/expected.json``, section ``bmc``), and the time
to each historical flaw, each checked against its expected verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["time_prove", "time_clean", "time_flaws"]


def _step(progress: Any, what: str, done: int, total: int) -> None:
    if progress is not None:
        progress.step(what, done, total)


def time_prove(progress: Any = None) -> dict[str, Any]:
    """The default ``prove``: obligations, verdict counts, untouched ones, wall and CPU seconds,
    the slowest obligation (its line and ms), and how many obligations were not ok."""
    from nlmmap.spec.prove import Verdict, prove_default

    _step(progress, "prove", 0, 1)
    t0, c0 = time.perf_counter(), time.process_time()
    rep = prove_default()
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    worst = rep.slowest
    return {"obligations": len(rep.results), "counts": rep.counts, "untouched": rep.untouched,
            "not_ok": sum(r.verdict is not Verdict.OK for r in rep.results), "total_s": total, "cpu_s": cpu,
            "slowest_ms": worst.ms if worst else 0.0, "slowest": worst.line() if worst else "",
            "over_1s": sum(r.ms > 1000 for r in rep.results)}


def time_clean(depth: Callable[[Any], int], *, budget_s: float = 60.0, progress: Any = None) -> list[dict[str, Any]]:
    """Each clean run of the manifest as one incremental search to ``depth(run)`` (solver calls
    bounded by ``budget_s``), timed as it finishes each depth: cumulative wall and CPU seconds.
    ``ok``: the search ended clean, as the manifest expects."""
    from nlmmap.spec.bmc import bmc
    from nlmmap.spec.catalog import for_variant
    from nlmmap.spec.expected import bmc_runs
    from nlmmap.spec.prove import Verdict

    runs = [r for r in bmc_runs() if r.verdict is Verdict.OK]
    rows = []
    for i, run in enumerate(runs):
        _step(progress, f"bmc {run.label}", i, len(runs))
        marks: list[tuple[int, float, float]] = []
        t0, c0 = time.perf_counter(), time.process_time()

        def tick(d: int, _ms: float, marks: list = marks, t0: float = t0, c0: float = c0) -> None:
            marks.append((d, time.perf_counter() - t0, time.process_time() - c0))

        res = bmc(for_variant(run.variant), depth=depth(run), max_n=run.max_n, timeout_ms=int(budget_s * 1000),
                  properties=list(run.properties) or None, on_depth=tick)
        rows.append({"run": run.label.replace(" --property ", " "), "label": run.label, "manifest_depth": run.depth,
                     "max_n": run.max_n, "verdict": res.verdict.search_text, "ok": res.verdict is Verdict.OK,
                     "wall_s": time.perf_counter() - t0,
                     "reached": max((d for d, _, _ in marks), default=-1), "scope": res.scope(),
                     "sliced": bool(res.sliced),
                     "per_depth": [{"depth": d, "wall_s": w, "cpu_s": c} for d, w, c in marks]})
    return rows


def time_flaws(progress: Any = None) -> list[dict[str, Any]]:
    """Each historical flaw of the manifest searched to its depth: the property violated, the
    trace's steps, wall and CPU seconds, and whether that is the violation the manifest expects."""
    from nlmmap.spec.bmc import bmc
    from nlmmap.spec.catalog import for_variant
    from nlmmap.spec.expected import bmc_runs
    from nlmmap.spec.prove import Verdict

    runs = [r for r in bmc_runs() if r.verdict is Verdict.FAILED]
    rows = []
    for i, run in enumerate(runs):
        _step(progress, f"bmc flaw {run.label}", i, len(runs))
        t0, c0 = time.perf_counter(), time.process_time()
        res = bmc(for_variant(run.variant), depth=run.depth, max_n=run.max_n, properties=list(run.properties) or None)
        rows.append({"run": run.label.replace(" --property ", " "), "label": run.label, "property": res.violated,
                     "verdict": res.verdict.search_text, "steps": res.steps,
                     "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                     "as_expected": res.verdict is Verdict.FAILED and res.violated in run.violates})
    return rows
