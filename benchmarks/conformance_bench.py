"""Conformance suite throughput: stateful steps per second against the bundled implementation
in-process, over its adapter in shared memory mode and in proxied mode (and the reference model
in-process, the suite's own cost). A measurement, not a test: nothing here asserts a time.

    python benchmarks/conformance_bench.py [--max-steps 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from nlmmap.conformance.runner import make_target, run_conformance
from nlmmap.conformance.targets import ExecTarget, python_command


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-steps", type=int, default=20000)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", action="append", help="in-process, shared, proxied, model")
    args = ap.parse_args(argv)
    targets = {
        "model": lambda: make_target(impl="nlmmap.model.adapter:ModelBackend"),
        "in-process": lambda: make_target(impl="nlmmap.impl.adapter:ImplBackend"),
        "shared": lambda: ExecTarget(python_command("nlmmap.impl.adapter")),
        "proxied": lambda: ExecTarget(python_command("nlmmap.impl.adapter")),
    }
    rows = []
    for name, build in targets.items():
        if args.only and name not in args.only:
            continue
        rep = run_conformance(build(), profile="ci", max_steps=args.max_steps, seed=args.seed,
                              memory="proxied" if name == "proxied" else "auto", toctou=False,
                              stop_on_failure_shrink=False, transcript_dir="/tmp/nlmmap-conform-bench")
        t = rep.timings.get("state_machine") or 1e-9
        e = rep.coverage.get("edges", {})
        row = {"target": name, "verdict": rep.verdict, "steps": rep.steps, "requests": rep.requests,
               "seconds": t, "steps_per_s": round(rep.steps / t, 1), "memory": rep.memory_mode.split(" ")[0],
               "edges": f"{e.get('hit')}/{e.get('reachable')}", "sut_s": rep.timings.get("sut"),
               "model_s": rep.timings.get("model"),
               "failure": (rep.failure or {}).get("check")}
        rows.append(row)
        sys.stderr.write(f"{name:<11} {rep.verdict:<5} {rep.steps:>6} steps in {t:7.1f} s = {row['steps_per_s']:7.1f} "
                         f"steps/s (memory {row['memory']}, edges {row['edges']}, SUT {row['sut_s']} s, model "
                         f"{row['model_s']} s){'  first failure: ' + row['failure'] if row['failure'] else ''}\n")
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
