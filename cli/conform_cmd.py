"""CLI subcommands ``conform`` and ``verify``, registered by :func:`add_parsers`.

``nlmmap conform`` runs the conformance suite against ``--exec "COMMAND ..."`` (any program speaking
``nlmmap-adapter/1``) or ``--impl module:factory`` (a Python backend in this process); ``--replay
FILE`` runs a failing run's transcript again; ``--mutants`` prints the kill table. ``nlmmap verify``
runs the proofs, the suite on the bundled implementation (in-process and over its adapter) and the
kill table, and prints one summary. Exit status: 0 pass, 1 non-conformance (or a mutant survived),
2 usage or input error, 3 inconclusive (the SUT hung, died or wrote garbage), 4 internal error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from typing import Any, TextIO

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_INTERNAL = 0, 1, 2, 3, 4


def _target(args: argparse.Namespace, err: TextIO) -> Any:
    from nlmmap.conformance.runner import make_target
    from nlmmap.conformance.targets import SUTFailure

    if bool(args.exec) == bool(args.impl):
        err.write("nlmmap conform: give exactly one of --exec COMMAND or --impl module:factory\n")
        return None
    try:
        return make_target(exec_cmd=args.exec, impl=args.impl, timeout=args.timeout)
    except ValueError as e:
        err.write(f"nlmmap conform: {e}\n")
        return None
    except SUTFailure as e:
        err.write(f"nlmmap conform: {e}\n")
        return e


def _finish(rep: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    err.write(rep.human())
    if getattr(args, "junit", None):
        with open(args.junit, "w") as f:
            f.write(rep.junit())
    if args.json:
        out.write(rep.to_json() + "\n")
    return rep.exit_code


def _cmd_conform(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.mutants:
        return _mutants(args, out, err)
    if args.max_steps is not None and args.max_steps < 0:
        err.write("nlmmap conform: --max-steps must be >= 0\n")
        return EXIT_USAGE
    if args.record and (args.replay or args.memory == "shared"):
        err.write("nlmmap conform: --record records a run of the suite in proxied memory (not with --replay "
                  "or --memory shared)\n")
        return EXIT_USAGE
    target = _target(args, err)
    if target is None:
        return EXIT_USAGE
    from nlmmap.conformance.targets import SUTFailure

    if isinstance(target, SUTFailure):
        return EXIT_INCONCLUSIVE
    if args.replay:
        from nlmmap.conformance.replay import replay_transcript
        from nlmmap.conformance.transcript import TranscriptError

        try:
            rep = replay_transcript(args.replay, target)
        except TranscriptError as e:
            target.close()
            err.write(f"nlmmap conform --replay: {e}\n")
            return EXIT_USAGE
        finally:
            pass
        target.close()
        return _finish(rep, args, out, err)
    from nlmmap.conformance.runner import run_conformance
    from nlmmap.conformance.transcript import TranscriptError

    try:
        rep = run_conformance(target, profile=args.profile, max_steps=args.max_steps, seed=args.seed,
                              memory=args.memory, transcript_dir=args.transcript_dir, database=args.database,
                              toctou=not args.no_toctou, coverage_floor=args.coverage_floor, progress=err,
                              shrink_seconds=args.shrink_seconds, record=args.record)
    except TranscriptError as e:  # --record: a file it cannot write
        if hasattr(target, "close"):
            target.close()
        err.write(f"nlmmap conform --record: {e}\n")
        return EXIT_USAGE
    return _finish(rep, args, out, err)


def _mutants(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.conformance.mutants import kill_table, render_table

    err.write("nlmmap conform --mutants: the suite against every mutant (no shrinking) and the correct kernel "
              "sides\n")
    try:
        table = kill_table(max_steps=args.max_steps or 20000, seed=args.seed, only=args.mutant or None, progress=err,
                           timeout=args.timeout, jobs=args.jobs or 1, transcript_dir=args.transcript_dir)
    except ValueError as e:
        err.write(f"nlmmap conform --mutants: {e}\n")
        return EXIT_USAGE
    err.write(render_table(table) + "\n")
    if args.json:
        out.write(json.dumps(table, sort_keys=True) + "\n")
    return EXIT_OK if table["verdict"] == "pass" else EXIT_FAIL


def _cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """prove + the suite on the bundled implementation (in-process, over its adapter) + the kill table."""
    from nlmmap.conformance.mutants import kill_summary, kill_table
    from nlmmap.conformance.runner import run_conformance
    from nlmmap.conformance.targets import python_command

    t0 = time.perf_counter()
    parts: list[dict[str, Any]] = []

    def part(name: str, verdict: str, detail: str, seconds: float, data: Any = None) -> None:
        parts.append({"name": name, "verdict": verdict, "detail": detail, "seconds": round(seconds, 1),
                      "data": data})
        err.write(f"nlmmap verify: {name:<32} {verdict.upper():<5} {detail} ({seconds:.1f} s)\n")
        err.flush()

    t = time.perf_counter()
    from nlmmap.spec.prove import default_systems, run_prove_cli

    buf_out, buf_err = io.StringIO(), io.StringIO()
    rc = run_prove_cli(default_systems(), json_out=True, out=buf_out, err=buf_err, timeout_ms=5000, seed=0, only=None)
    try:
        doc = json.loads(buf_out.getvalue().strip().splitlines()[-1])
    except (ValueError, IndexError):
        doc = None
    lines = [ln for ln in buf_err.getvalue().splitlines() if ln.strip()]
    part("prove", {0: "pass", 1: "fail", 3: "inconclusive"}.get(rc, "error"),
         lines[-1] if lines else f"exit {rc}", time.perf_counter() - t, doc)

    t = time.perf_counter()
    jobs = args.jobs if args.jobs else min(2, os.cpu_count() or 1)
    table = kill_table(max_steps=args.mutant_steps, seed=args.seed, progress=err, jobs=jobs,
                       reference_steps=args.reference_steps, transcript_dir=args.transcript_dir)
    part("mutants", table["verdict"], kill_summary(table), time.perf_counter() - t, table)
    steps = args.max_steps
    # the in-process run goes last: a backend left busy by a failure shares this process's GIL
    for name, sut in (("suite: nlmmap.impl over its adapter", python_command("nlmmap.impl.adapter")),
                      ("suite: nlmmap.impl in-process", "nlmmap.impl.adapter:ImplBackend")):
        t = time.perf_counter()
        if isinstance(sut, str):
            from nlmmap.conformance.runner import make_target

            target = make_target(impl=sut)
        else:
            from nlmmap.conformance.targets import ExecTarget

            target = ExecTarget(sut)
        # the coverage floor belongs to the full ci budget; a shorter verify run reports the figure
        rep = run_conformance(target, profile="ci", max_steps=steps, seed=args.seed, transcript_dir=args.transcript_dir,
                              coverage_floor=None if steps >= 20000 else 0, shrink_seconds=30)
        e = rep.coverage.get("edges", {})
        cov = f"edges {e.get('hit')}/{e.get('reachable')}" if e.get("reachable") else f"edges {e.get('hit')} observed"
        part(name, rep.verdict, f"{rep.steps} steps, {cov}, memory {rep.memory_mode.split(' ')[0]}"
             + (f"; {rep.failure.get('check', '')}" if rep.failure else ""), time.perf_counter() - t, rep.to_dict())
        if rep.failure:
            err.write(rep.human())
    order = {"pass": 0, "fail": 1, "inconclusive": 3, "error": 4}
    worst = max((order.get(p["verdict"], 4) for p in parts), default=0)
    verdict = {0: "pass", 1: "fail", 3: "inconclusive", 4: "error"}[worst]
    total = time.perf_counter() - t0
    err.write(f"nlmmap verify: {verdict.upper()} in {total:.0f} s\n")
    if args.json:
        out.write(json.dumps({"verdict": verdict, "seconds": round(total, 1), "parts": parts}, sort_keys=True,
                             default=str) + "\n")
    return worst


def add_parsers(sub: argparse._SubParsersAction, epilog: str, parser_class: type) -> None:
    """Register ``conform`` and ``verify`` on ``sub``."""
    c = sub.add_parser("conform", help="run the conformance suite against an implementation of the kernel side",
                       epilog=epilog, description=__doc__.split("\n\n")[0].replace("\n", " "))
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    c.add_argument("--exec", metavar="COMMAND", help="a program speaking nlmmap-adapter/1 on stdin/stdout")
    c.add_argument("--impl", metavar="MODULE:FACTORY", help="a Python backend (nlmmap.spec.adapter.Backend)")
    c.add_argument("--profile", choices=("ci", "soak", "quick"), default="ci",
                   help="ci: derandomized from the seed, >= 20000 steps (default); soak: 10^6 steps with an example "
                        "database; quick: 2000 steps")
    c.add_argument("--max-steps", type=int, metavar="N", help="stateful steps (default: the profile's)")
    c.add_argument("--seed", type=int, metavar="N", help="seed of the first batch (printed; default 20160218)")
    c.add_argument("--memory", choices=("auto", "shared", "proxied"), default="auto",
                   help="read and write the SUT's memory through the file its mmap names (shared) or with "
                        "peek/poke (proxied); auto: shared when the SUT gives a path")
    c.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds per request (default 10)")
    c.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    c.add_argument("--transcript-dir", metavar="DIR", help="where a failing run writes its transcript "
                                                           "(default ./nlmmap-conform-failures)")
    c.add_argument("--database", metavar="DIR", help="Hypothesis example database (soak; share it between workers)")
    c.add_argument("--coverage-floor", type=float, metavar="PCT",
                   help="percent of reachable status-machine edges the run must cover (default: the profile's, "
                        "100 for ci and soak)")
    c.add_argument("--no-toctou", action="store_true", help="skip the toctou_race check")
    c.add_argument("--replay", metavar="FILE", help="run a transcript again and compare every answer")
    c.add_argument("--record", metavar="FILE", help="write every request with the SUT's own answer to FILE (gzip "
                   "if it ends in .gz; memory proxied): a recording to --replay against another kernel side")
    c.add_argument("--mutants", action="store_true", help="print the kill table of the mutant zoo")
    c.add_argument("--mutant", action="append", metavar="NAME", help="with --mutants: only this one (repeatable)")
    c.add_argument("--jobs", type=int, metavar="N", help="with --mutants: run N mutants at once (default 1)")
    c.add_argument("--shrink-seconds", type=float, metavar="S",
                   help="bound Hypothesis' shrinking of a failure (default: Hypothesis' own, 300 s)")
    c.set_defaults(func=_cmd_conform)

    v = sub.add_parser("verify", help="prove, run the suite on the bundled implementation, and the mutant table",
                       epilog=epilog, description="One summary of: nlmmap prove; the conformance suite against "
                       "nlmmap.impl in-process and over python -m nlmmap.impl.adapter; the mutant kill table.")
    v.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    v.add_argument("--max-steps", type=int, default=5000, metavar="N",
                   help="steps of each suite run (default 5000; 20000 and more also holds the coverage floor)")
    v.add_argument("--mutant-steps", type=int, default=6000, metavar="N",
                   help="at most this many steps per mutant (default 6000)")
    v.add_argument("--reference-steps", type=int, default=1000, metavar="N",
                   help="steps of the kill table's runs against the correct kernel sides (default 1000; the "
                        "suite runs above are the long ones)")
    v.add_argument("--jobs", type=int, metavar="N", help="mutants run at once (default: min(2, cores))")
    v.add_argument("--seed", type=int, metavar="N")
    v.add_argument("--transcript-dir", metavar="DIR")
    v.set_defaults(func=_cmd_verify)


if __name__ == "__main__":  # pragma: no cover
    from nlmmap.cli import main

    sys.exit(main(["conform", *sys.argv[1:]]))
