"""CLI subcommands for proofs: ``prove``, ``bmc`` and ``replay``, registered by :func:`add_parsers`.

Handlers have the shape ``(args, out, err) -> int``; human text goes to ``err`` (one flushed line per
obligation or depth), ``--json`` writes one document to ``out``. Exit status: 0 proved or no
violation, 1 counterexample (a replay that reproduces its violation included), 2 usage or input
error, 3 inconclusive (solver unknown or timeout).
"""

from __future__ import annotations

import argparse
import json
from typing import TextIO

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3


def _system_for(name: str):
    """``socket``/``queue`` with the variant implied by a switch name (``default`` = Linux 4.5)."""
    from nlmmap.spec.protocol import Variant, queue_system, socket_system

    if name in ("queue_alloc_outside_lock", "queue_alloc_under_lock", "queue"):
        return queue_system(Variant.from_names([] if name in ("queue", "queue_alloc_outside_lock") else [name]))
    return socket_system(Variant.from_names([] if name in ("default", "socket") else [name]))


def _cmd_prove(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.spec.prove import default_systems, run_prove_cli

    systems = default_systems() if not args.variant else [_system_for(v) for v in args.variant]
    return run_prove_cli(systems, json_out=args.json, out=out, err=err, timeout_ms=args.timeout_ms, seed=args.seed,
                         only=args.only or None)


def _cmd_bmc(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.spec.bmc import run_bmc_cli

    if args.depth < 0 or args.max_n < 1:
        err.write("nlmmap bmc: --depth must be >= 0 and --max-n >= 1\n")
        return EXIT_USAGE
    return run_bmc_cli(_system_for(args.variant), depth=args.depth, max_n=args.max_n, out_path=args.out,
                       json_out=args.json, out=out, err=err, timeout_ms=args.timeout_ms, seed=args.seed,
                       properties=args.property)


def _cmd_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.spec.bmc import replay
    from nlmmap.spec.itf import read_itf

    try:
        doc = read_itf(args.trace)
    except (OSError, ValueError) as e:
        err.write(f"nlmmap replay: {e}\n")
        return EXIT_USAGE
    if getattr(args, "on", "spec") == "model":
        from nlmmap.model.replay import replay_on_model
        from nlmmap.spec.errors import NetlinkError

        try:
            mres = replay_on_model(doc)
        except NetlinkError as e:
            err.write(f"nlmmap replay: {e.message}\n")
            return EXIT_USAGE
        for name, action in mres.violations:
            err.write(f"model: {name} violated by {action}\n")
        if mres.unseen_decided:
            err.write(f"model: packets decided by a batch verdict but never read: {mres.unseen_decided}\n")
        for step, name in mres.mismatches:
            err.write(f"step {step}: the model's {name} differs from the recorded state\n")
        verdict = "reproduced" if mres.reproduced else "NOT reproduced"
        err.write(f"nlmmap replay: {args.trace} on the model: expected {mres.expected} -> {verdict} "
                  f"({mres.steps} steps)\n")
        if args.json:
            out.write(json.dumps(mres.as_dict(), sort_keys=True) + "\n")
        return EXIT_FAIL if mres.reproduced or mres.violations else EXIT_OK
    res = replay(doc)
    for step, name in res.violated:
        err.write(f"step {step}: {name} violated\n")
    for step, name in res.mismatches:
        err.write(f"step {step}: replayed {name} differs from the recorded state\n")
    verdict = "reproduced" if res.reproduced else "NOT reproduced"
    err.write(f"nlmmap replay: {args.trace}: expected {res.expected} -> {verdict} ({res.steps} steps)\n")
    if args.json:
        out.write(json.dumps(res.as_dict(), sort_keys=True) + "\n")
    return EXIT_FAIL if res.reproduced else (EXIT_OK if not res.violated else EXIT_FAIL)


def add_parsers(sub: argparse._SubParsersAction, epilog: str, parser_class: type) -> None:
    """Register ``prove``, ``bmc`` and ``replay`` on ``sub``."""
    variants = ("default", "tx_zero_copy", "skip_broken", "poll_head_minus_one", "queue_alloc_outside_lock",
                "queue_alloc_under_lock")
    p = sub.add_parser("prove", help="prove every invariant inductive for every ring size (z3)", epilog=epilog,
                       description="One line per obligation (initiation, consecution per action, step "
                                   "properties, count lemmas). Default: the socket (Linux 4.5) and the queue "
                                   "service with the under-lock fix. Exit 0 all ok, 1 some FAILED (a "
                                   "counterexample to induction is printed), 3 some unknown.")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p.add_argument("--variant", action="append", choices=variants, help="prove this variant instead (repeatable)")
    p.add_argument("--only", action="append", metavar="PROPERTY", help="only this invariant/step property")
    p.add_argument("--timeout-ms", type=int, default=5000, help="per obligation (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="z3 random seed (default 0)")
    p.set_defaults(func=_cmd_prove)

    b = sub.add_parser("bmc", help="shortest counterexample trace by bounded model checking", epilog=epilog,
                       description="Iterative deepening from the initial state; prints the trace as a table "
                                   "and saves it as ITF JSON. Exit 1 violation found, 0 none to the depth, "
                                   "3 solver unknown.")
    b.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    b.add_argument("--variant", choices=variants, default="default")
    b.add_argument("--depth", type=int, default=8, help="maximum number of steps (default 8)")
    b.add_argument("--max-n", type=int, default=3, help="largest ring size searched (default 3)")
    b.add_argument("--property", action="append", metavar="NAME",
                   help="only look for violations of this invariant/step property (repeatable)")
    b.add_argument("--out", metavar="FILE.itf.json", help="save the trace here")
    b.add_argument("--timeout-ms", type=int, default=60000, help="per solver call (default 60000)")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_cmd_bmc)

    r = sub.add_parser("replay", help="re-run an ITF trace on the executable spec", epilog=epilog,
                       description="Builds a concrete state from the first state, applies each action with "
                                   "its parameters, and reports the violated property. Exit 1 when the "
                                   "trace's violation is reproduced (it is a counterexample), 0 when no "
                                   "property breaks, 2 unreadable file.")
    r.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    r.add_argument("trace", metavar="TRACE.itf.json")
    r.add_argument("--on", choices=("spec", "model"), default="spec",
                   help="spec: the executable spec's interpreter (any trace); model: the byte-level reference "
                        "model (queue-service traces)")
    r.set_defaults(func=_cmd_replay)
