"""Proof-kit figures: ``nlmmap bench --only proofs`` (``nlmmap prove`` time and its slowest
obligation, BMC time per depth for the manifest's clean runs, time to each historical flaw), then,
for contrast, an explicit-state bounded check of the fixed queue service as the ring size grows
(the z3 proofs cover every ring size at once).

Run: ``python benchmarks/proof_bench.py [--max-depth 10] [--explicit-depth 10]``. Prints tables;
no assertions."""

from __future__ import annotations

import argparse
import time
from collections import deque

import z3

from nlmmap.cli import main as nlmmap_main
from nlmmap.spec.protocol import Variant, queue_system
from nlmmap.spec.system import DefaultArray, MapState, apply_action, enabled, violated_invariants


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
    ap.add_argument("--max-depth", type=int, default=10)
    ap.add_argument("--explicit-depth", type=int, default=10)
    args = ap.parse_args()
    print(f"z3 {z3.get_full_version()}")
    nlmmap_main(["bench", "--only", "proofs", "--bmc-depth", str(args.max_depth)])
    print(f"\nexplicit-state check of the fixed queue service to depth {args.explicit_depth} (2 CPUs):")
    print(f"{'N':>3} {'states':>9} {'seconds':>8} violations")
    for n in range(1, 6):
        count, secs, bad = explicit_queue(n, args.explicit_depth)
        print(f"{n:>3} {count:>9} {secs:>8.2f} {len(bad)}")
    print("(z3: every N at once, see 'prove' above)")


if __name__ == "__main__":
    main()
