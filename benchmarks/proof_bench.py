"""Proof-kit figures: ``nlmmap prove`` time, BMC time per depth, and an explicit-state bounded
check as the ring size grows (for contrast: the z3 proofs cover every ring size at once).

The BMC rows are the runs of the expected-results manifest (``spec/expected.json``, section
``bmc``): the fixed variants' clean runs are timed to each depth up to ``--max-depth``, the
historical flaws' runs are timed to their trace, and each is checked against its expected verdict.

Run: ``python benchmarks/proof_bench.py [--max-depth 12] [--depth-budget-s 60]``. Prints tables;
no assertions (figures go in the README, measured side by side)."""

from __future__ import annotations

import argparse
import time
from collections import deque

import z3

from nlmmap.spec.bmc import bmc
from nlmmap.spec.catalog import for_variant
from nlmmap.spec.expected import bmc_runs
from nlmmap.spec.protocol import Variant, queue_system
from nlmmap.spec.prove import Verdict, prove_default
from nlmmap.spec.system import DefaultArray, MapState, apply_action, enabled, violated_invariants


def bench_prove() -> None:
    """Whole default prove, and the slowest obligation."""
    t0 = time.perf_counter()
    rep = prove_default()
    total = time.perf_counter() - t0
    worst = max(rep.results, key=lambda r: r.ms)
    bad = sum(r.verdict is not Verdict.OK for r in rep.results)
    print(f"prove: {len(rep.results)} obligations, {bad} not ok, total {total:.2f} s, "
          f"slowest {worst.ms:.1f} ms ({worst.line()})")


def bench_bmc(max_depth: int, budget_s: float) -> None:
    """Time to search to each depth (no violation expected), per clean run of the manifest; stops
    a row once one depth exceeds ``budget_s``. Also the time to find each historical flaw."""
    runs = bmc_runs()
    print("\nbmc, fixed variants (cumulative time to finish depth d, ring sizes <= 3; "
          "manifest: clean to the depth marked *):")
    labels = [r.label.replace(" --property ", " ") for r in runs]
    width = max(28, *(len(x) for x in labels))
    print(f"{'variant':<{width}} " + " ".join(f"{d:>7}" for d in range(1, max_depth + 1)))
    for run, label in zip(runs, labels, strict=True):
        if run.verdict is not Verdict.OK:
            continue
        cells = []
        for d in range(1, max_depth + 1):
            t0 = time.perf_counter()
            res = bmc(for_variant(run.variant), depth=d, max_n=run.max_n, timeout_ms=int(budget_s * 1000),
                      properties=list(run.properties) or None)
            dt = time.perf_counter() - t0
            mark = "*" if d == run.depth else " "
            cells.append(f"{dt:5.1f}s{mark}" if res.verdict is Verdict.OK else f"{res.verdict.search_text[:7]:>7}")
            if dt > budget_s or res.verdict is not Verdict.OK:
                break
        print(f"{label:<{width}} " + " ".join(cells))
    print("\nbmc, historical flaws (manifest: violation within the depth given):")
    for run, label in zip(runs, labels, strict=True):
        if run.verdict is not Verdict.FAILED:
            continue
        t0 = time.perf_counter()
        res = bmc(for_variant(run.variant), depth=run.depth, max_n=run.max_n, properties=list(run.properties) or None)
        ok = res.verdict is Verdict.FAILED and res.violated in run.violates
        print(f"  {label:<{width}} {res.violated or res.verdict.search_text:<20} {res.steps} steps "
              f"in {time.perf_counter() - t0:.2f} s{'' if ok else '  (NOT as expected)'}")


def _key(st: MapState, n: int) -> tuple:
    out = []
    for k in sorted(st):
        v = st[k]
        if isinstance(v, DefaultArray):
            out.append(tuple(sorted((i, x) for i, x in v.items() if x != v.default)))
        else:
            out.append(v)
    return tuple(out)


def explicit_queue(n: int, depth: int, cpus: int = 2) -> tuple[int, float, list[str]]:
    """Breadth-first search of the fixed queue service with ``n`` frames to ``depth`` steps,
    checking every invariant in every state: (states, seconds, violations)."""
    sysm = queue_system(Variant(queue_alloc_outside_lock=False))
    init = MapState({"rx_frame_nr": n, "rx_status": DefaultArray(0), "rx_head": 0, "frame_id": DefaultArray(0),
                     "cpu_busy": DefaultArray(False), "cpu_frame": DefaultArray(0), "id_seq": 0, "user_cursor": 0,
                     "queued": DefaultArray(False), "seen": DefaultArray(False), "verdicted": DefaultArray(False)})
    t0 = time.perf_counter()
    seen = {_key(init, n)}
    frontier = deque([(init, 0)])
    bad: list[str] = []
    while frontier:
        st, d = frontier.popleft()
        if d == depth:
            continue
        for a in sysm.actions:
            choices = [{}] if not a.params else \
                [{"c": c} for c in range(cpus)] if a.params[0].name == "c" else \
                [{"m": m} for m in range(1, st["id_seq"] + 1)]
            for p in choices:
                if not enabled(a, st, p):
                    continue
                nxt = MapState({k: (v.copy() if isinstance(v, DefaultArray) else v) for k, v in st.items()})
                apply_action(a, nxt, p)
                k = _key(nxt, n)
                if k in seen:
                    continue
                seen.add(k)
                bad += violated_invariants(sysm, nxt, user="well-behaved")
                frontier.append((nxt, d + 1))
    return len(seen), time.perf_counter() - t0, bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-depth", type=int, default=12)
    ap.add_argument("--depth-budget-s", type=float, default=60.0)
    ap.add_argument("--explicit-depth", type=int, default=10)
    args = ap.parse_args()
    print(f"z3 {z3.get_full_version()}")
    bench_prove()
    bench_bmc(args.max_depth, args.depth_budget_s)
    print(f"\nexplicit-state check of the fixed queue service to depth {args.explicit_depth} (2 CPUs):")
    print(f"{'N':>3} {'states':>9} {'seconds':>8} violations")
    for n in range(1, 6):
        count, secs, bad = explicit_queue(n, args.explicit_depth)
        print(f"{n:>3} {count:>9} {secs:>8.2f} {len(bad)}")
    print("(z3: every N at once, see 'prove' above)")


if __name__ == "__main__":
    main()
