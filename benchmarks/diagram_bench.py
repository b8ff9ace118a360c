"""Diagram figures: time to explore the reachable state graph of a socket as the rings grow (the
bar: 3 RX frames and 2 TX frames with counts printed in under 10 s), the per-frame status
machines per variant, and a whole ``nlmmap docs --check``.

Run: ``python benchmarks/diagram_bench.py [--rounds 3] [--json]``. Prints one row per case (best
of the rounds, and the median); no assertions (figures go in the README, measured side by side).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from nlmmap.spec.docs import DocsContext, check_docs
from nlmmap.spec.graphs import frame_status_machine, state_graph
from nlmmap.spec.protocol import Variant, queue_system, socket_system


def _timed(fn, rounds: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--skip-docs", action="store_true", help="leave out the nlmmap docs --check row")
    args = ap.parse_args(argv)
    rows = []

    def row(name: str, fn, counts) -> None:
        times, res = _timed(fn, args.rounds)
        c = counts(res)
        rows.append({"case": name, "best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3),
                     **c})
        print(f"{name:<44} best {min(times):7.2f} s  median {statistics.median(times):7.2f} s  "
              + "  ".join(f"{k} {v}" for k, v in c.items()), file=sys.stderr, flush=True)

    def graph_counts(G):
        return {"states": G.number_of_nodes(), "transitions": G.number_of_edges(), "cut": G.graph["cut"]}

    for rx, tx in ((1, 1), (2, 2), (3, 2)):
        row(f"socket state graph, {rx} RX + {tx} TX frames",
            lambda rx=rx, tx=tx: state_graph(socket_system(), sizes={"rx_frame_nr": [rx], "tx_frame_nr": [tx]}),
            graph_counts)
    row("queue state graph, 3 frames (mainline)",
        lambda: state_graph(queue_system(), sizes={"rx_frame_nr": [3]}, with_invariants=True), graph_counts)
    for names in ([], ["tx_zero_copy"], ["skip_broken"]):
        row(f"frame status machine, {', '.join(names) or 'Linux 4.5'}, loops",
            lambda names=names: frame_status_machine(socket_system(Variant.from_names(names)), loops=True),
            lambda M: {"edges": M.number_of_edges(), **{f"states_{k}": v for k, v in M.graph["states"].items()}})
    if not args.skip_docs:
        root = Path(__file__).resolve().parent.parent
        row("nlmmap docs --check (whole docs/generated)", lambda: check_docs(DocsContext(root)),
            lambda stale: {"stale_files": len(stale)})
    if args.json:
        print(json.dumps({"tool": "diagram_bench", "rounds": args.rounds, "rows": rows}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
