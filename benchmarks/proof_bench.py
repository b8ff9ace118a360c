"""Proof-kit figures: ``nlmmap prove`` (total, slowest obligation, untouched ones counted apart),
BMC time per depth, the historical flaws, and an explicit-state check as the ring size grows (for
contrast: the z3 proofs cover every ring size at once).

The BMC rows are the runs of the expected-results manifest (``spec/expected.json``, section
``bmc``): each clean run is one incremental search to ``--max-depth`` (or its manifest depth, if
deeper), timed at every depth it finishes (cumulative wall and CPU seconds of that one search);
the historical flaws are timed to their trace. Each is checked against its expected verdict, and
every row states the scope searched.

Run: ``python benchmarks/proof_bench.py [--max-depth 12] [--depth-budget-s 60] [--json]``. Prints
tables; no assertions (figures go in the README, measured side by side). ``--json`` prints one JSON
document instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import deque
from typing import Any

import z3

from nlmmap.proof_figures import time_clean, time_flaws, time_prove
from nlmmap.spec.protocol import Variant, queue_system
from nlmmap.spec.system import DefaultArray, MapState, apply_action, enabled, violated_invariants


def _key(st: MapState) -> tuple:
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
    from nlmmap.spec.explore import initial_states

    sysm = queue_system(Variant(queue_alloc_outside_lock=False))
    init = initial_states(sysm, {"rx_frame_nr": (n,)})[0]  # the spec's own init, not a copy of it
    t0 = time.perf_counter()
    seen = {_key(init)}
    frontier = deque([(init, 0)])
    bad: list[str] = []
    while frontier:
        st, d = frontier.popleft()
        if d == depth:
            continue
        for a in sysm.actions:
            choices = [{}] if not a.params else \
                [{"c": c} for c in range(cpus)] if a.params[0].name == "c" else \
                [{"m": m} for m in range(st["q_head"], st["id_seq"] + 1)]
            for p in choices:
                if not enabled(a, st, p):
                    continue
                nxt = MapState({k: (v.copy() if isinstance(v, DefaultArray) else v) for k, v in st.items()})
                apply_action(a, nxt, p)
                k = _key(nxt)
                if k in seen:
                    continue
                seen.add(k)
                bad += violated_invariants(sysm, nxt, user="well-behaved")
                frontier.append((nxt, d + 1))
    return len(seen), time.perf_counter() - t0, bad


def _print(doc: dict[str, Any], max_depth: int) -> None:
    print(f"z3 {doc['z3']}, {doc['machine']}, load {doc['load']}")
    p = doc["prove"]
    c = p["counts"]
    print(f"prove: {p['obligations']} obligations: {c['ok']} proved, of which {p['untouched']} untouched by the "
          f"action; {c['FAILED']} FAILED, {c['unknown']} unknown, {c['ERROR']} ERROR; total {p['total_s']:.2f} s "
          f"(cpu {p['cpu_s']:.2f} s), slowest {p['slowest_ms']:.1f} ms, {p['over_1s']} over 1 s")
    print(f"  slowest: {p['slowest']}")
    print("\nbmc, fixed variants: one incremental search each, cumulative wall seconds to finish depth d "
          "(manifest: clean to the depth marked *):")
    width = max([28] + [len(r["run"]) for r in doc["clean"]])
    top = max([max_depth] + [r["manifest_depth"] for r in doc["clean"]])
    print(f"{'run':<{width}} " + " ".join(f"{d:>7}" for d in range(1, top + 1)))
    for r in doc["clean"]:
        cells = []
        by = {x["depth"]: x for x in r["per_depth"]}
        for d in range(1, top + 1):
            if d in by:
                cells.append(f"{by[d]['wall_s']:6.1f}{'*' if d == r['manifest_depth'] else ' '}")
            elif d == r["reached"] + 1 and r["verdict"] != "none":
                cells.append(f"{r['verdict'][:7]:>7}")
        print(f"{r['run']:<{width}} " + " ".join(cells))
    for r in doc["clean"]:
        print(f"  {r['run']}: {r['scope']}{' (cone-of-influence slice first)' if r['sliced'] else ''}")
    plain = next((r for r in doc["clean"] if r["run"] == "default"), None)
    if plain is not None:
        print("\nplain bmc of the whole socket system, per depth (wall / cpu seconds, cumulative):")
        print("  " + "  ".join(f"d{x['depth']} {x['wall_s']:.1f}/{x['cpu_s']:.1f}" for x in plain["per_depth"]))
    print("\nbmc, historical flaws (manifest: violation within the depth given):")
    for r in doc["flaws"]:
        print(f"  {r['run']:<{width}} {r['property'] or r['verdict']:<20} {r['steps']} steps in {r['wall_s']:.2f} s "
              f"(cpu {r['cpu_s']:.2f} s){'' if r['as_expected'] else '  (NOT as expected)'}")
    print(f"\nexplicit-state check of the fixed queue service to depth {doc['explicit_depth']} (2 CPUs):")
    print(f"{'N':>3} {'states':>9} {'seconds':>8} violations")
    for r in doc["explicit"]:
        print(f"{r['n']:>3} {r['states']:>9} {r['seconds']:>8.2f} {r['violations']}")
    print("(z3: every N at once, see 'prove' above)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-depth", type=int, default=12, help="search the clean runs at least this deep (default 12)")
    ap.add_argument("--depth-budget-s", type=float, default=60.0, help="per solver call (default 60)")
    ap.add_argument("--explicit-depth", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout instead of tables")
    args = ap.parse_args(argv)
    doc: dict[str, Any] = {"tool": "proof_bench", "z3": z3.get_full_version(),
                           "machine": f"{platform.machine()}, {os.cpu_count()} cpus, python {sys.version.split()[0]}",
                           "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                           "command": "python benchmarks/proof_bench.py " + " ".join(argv or sys.argv[1:])}
    doc["prove"] = time_prove()
    doc["clean"] = time_clean(lambda run: max(args.max_depth, run.depth), budget_s=args.depth_budget_s)
    doc["flaws"] = time_flaws()
    doc["explicit_depth"] = args.explicit_depth
    doc["explicit"] = []
    for n in range(1, 6):
        count, secs, bad = explicit_queue(n, args.explicit_depth)
        doc["explicit"].append({"n": n, "states": count, "seconds": round(secs, 2), "violations": len(bad)})
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        _print(doc, args.max_depth)


if __name__ == "__main__":
    main()
