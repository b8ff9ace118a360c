"""Conformance suite throughput: stateful steps per second against the bundled implementation
in-process, over its adapter in shared memory mode and in proxied mode (and the reference model
in-process, the suite's own cost), through :func:`nlmmap.conformance.bench` (the function
``nlmmap bench`` calls). A measurement, not a test: nothing here asserts a time.

    python benchmarks/conformance_bench.py [--max-steps 20000] [--only shared] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from nlmmap.conformance.bench import BENCH_TARGETS, bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-steps", type=int, default=20000)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", action="append", choices=list(BENCH_TARGETS), help="a target (repeatable)")
    args = ap.parse_args(argv)
    rows = bench(args.only or ["in-process", "shared", "proxied", "model"], max_steps=args.max_steps, seed=args.seed,
                 progress=sys.stderr)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
