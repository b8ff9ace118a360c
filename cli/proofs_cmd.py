"""CLI subcommands for proofs: ``prove``, ``bmc`` and ``replay``, registered by :func:`add_parsers`.

Handlers have the shape ``(args, out, err) -> int``; human text goes to ``err`` (one flushed line per
obligation or depth), ``--json`` writes one document to ``out``. The spec's engines return result
objects; these handlers only print them (as text and as JSON, from the same object). Exit codes:
0 proved or no violation, 1 counterexample (a replay that reproduces its violation included), 2
usage or input error, 3 inconclusive (solver unknown or timeout), 4 internal error (an engine
bug: a counterexample the spec's interpreter refutes).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_INTERNAL = 0, 1, 2, 3, 4


def _write(err: TextIO, text: str) -> None:
    err.write(text + "\n")
    err.flush()


def _ordering_section(args: argparse.Namespace, err: TextIO, *, all_graphs: bool) -> Any:
    """The memory-ordering checks (:mod:`nlmmap.spec.ordering`): one line per check, then the
    summary; under its line, the graph of every counterexample (``all_graphs``) or only of FAILED
    results and the headline counterexamples. Returns the :class:`OrderingReport`."""
    from nlmmap.spec.ordering import HEADLINE_COUNTEREXAMPLES, OrderingResult, prove_ordering
    from nlmmap.spec.verdict import Verdict

    def show(r: OrderingResult) -> None:
        graph = r.graph()
        if graph and (all_graphs or r.verdict is Verdict.FAILED or (r.name, r.target) in HEADLINE_COUNTEREXAMPLES):
            _write(err, r.line() + "\n" + graph)
        else:
            _write(err, r.line())

    rep = prove_ordering(timeout_ms=args.timeout_ms, seed=args.seed, on_result=show)
    _write(err, rep.summary())
    return rep


def _cmd_prove(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.spec.catalog import default_proof_systems, for_variant
    from nlmmap.spec.prove import ObligationResult, prove_systems

    if args.ordering:
        if args.variant or args.only:
            _write(err, "nlmmap prove: --ordering runs only the ordering checks; it takes no --variant or --only")
            return EXIT_USAGE
        orep = _ordering_section(args, err, all_graphs=True)
        if args.json:
            out.write(json.dumps(orep.as_dict(), sort_keys=True) + "\n")
        return orep.exit_code

    systems = default_proof_systems() if not args.variant else [for_variant(v) for v in args.variant]
    known = {p.name for s in systems for p in s.invariants + s.proof_aids + s.step_properties}
    if args.only and set(args.only) - known:
        _write(err, f"nlmmap prove: unknown property {sorted(set(args.only) - known)}; known: {sorted(known)}")
        return EXIT_USAGE
    import z3

    _write(err, f"nlmmap prove: z3 {z3.get_full_version()}, seed {args.seed}, timeout {args.timeout_ms} ms "
                "per obligation")
    for s in systems:
        if s.run_bound is not None:
            from nlmmap.spec.expr import render

            _write(err, f"[{s.name}] proofs cover runs with {render(s.run_bound)} (a prefix-closed bound)")

    def show(r: ObligationResult) -> None:
        _write(err, r.text())

    rep = prove_systems(systems, timeout_ms=args.timeout_ms, seed=args.seed, on_result=show, only=args.only or None)
    _write(err, rep.summary())
    orep = _ordering_section(args, err, all_graphs=False) if not args.variant and not args.only else None
    if args.json:
        doc = rep.as_dict()
        if orep is not None:
            doc["ordering"] = orep.as_dict()
        out.write(json.dumps(doc, sort_keys=True) + "\n")
    return max(rep.verdict, orep.verdict).exit_code if orep is not None else rep.exit_code


def _cmd_bmc(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.spec.bmc import bmc, search_header, trace_to_itf
    from nlmmap.spec.catalog import for_variant
    from nlmmap.spec.verdict import Verdict

    if args.depth < 0 or args.max_n < 1:
        _write(err, "nlmmap bmc: --depth must be >= 0 and --max-n >= 1")
        return EXIT_USAGE
    system = for_variant(args.variant)
    known = {i.name for i in system.invariants} | {sp.name for sp in system.step_properties}
    if args.property and set(args.property) - known:
        _write(err, f"nlmmap bmc: unknown property {sorted(set(args.property) - known)}; known: {sorted(known)}")
        return EXIT_USAGE
    _write(err, search_header(system, depth=args.depth, max_n=args.max_n, seed=args.seed))

    def tick(d: int, ms: float) -> None:
        _write(err, f"  depth {d}: no violation ({ms:.0f} ms)")

    res = bmc(system, depth=args.depth, max_n=args.max_n, timeout_ms=args.timeout_ms, seed=args.seed, on_depth=tick,
              properties=args.property)
    _write(err, res.text())
    saved = None
    if res.verdict is Verdict.FAILED and args.out:
        from nlmmap.spec.itf import write_itf

        write_itf(args.out, trace_to_itf(res))
        saved = args.out
        _write(err, f"trace saved to {args.out}")
    if args.json:
        d = res.as_dict()
        d["trace_file"] = saved
        out.write(json.dumps(d, sort_keys=True) + "\n")
    return res.exit_code


def _cmd_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.spec.errors import NetlinkError
    from nlmmap.spec.itf import read_itf
    from nlmmap.spec.replay import replay

    try:
        doc = read_itf(args.trace)
    except (OSError, ValueError) as e:
        _write(err, f"nlmmap replay: {e}")
        return EXIT_USAGE
    if getattr(args, "on", "spec") == "model":
        from nlmmap.model.replay import replay_on_model

        try:
            mres = replay_on_model(doc)
        except NetlinkError as e:
            _write(err, f"nlmmap replay: {e.message}")
            return EXIT_USAGE
        for name, action in mres.violations:
            err.write(f"model: {name} violated by {action}\n")
        if mres.unseen_decided:
            err.write(f"model: packets decided by a batch verdict but never read: {mres.unseen_decided}\n")
        for note in mres.notes:
            err.write(f"note: {note}\n")
        for step, problem in getattr(mres, "problems", []):
            err.write(f"step {step}: {problem}\n")
        for step, name in mres.mismatches:
            err.write(f"step {step}: the model's {name} differs from the recorded state\n")
        verdict = "reproduced" if mres.reproduced else "NOT reproduced"
        _write(err, f"nlmmap replay: {args.trace} on the model: expected {mres.expected} -> {verdict} "
                    f"({mres.steps} steps)")
        if args.json:
            out.write(json.dumps(mres.as_dict(), sort_keys=True) + "\n")
        return EXIT_FAIL if mres.reproduced or mres.violations else EXIT_OK
    try:
        res = replay(doc)
    except (NetlinkError, KeyError) as e:
        _write(err, f"nlmmap replay: {args.trace}: not a trace of a known system ({e})")
        return EXIT_USAGE
    _write(err, res.text(args.trace))
    if args.json:
        out.write(json.dumps(res.as_dict(), sort_keys=True) + "\n")
    return res.exit_code


def add_parsers(sub: argparse._SubParsersAction, epilog: str, parser_class: type) -> None:
    """Register ``prove``, ``bmc`` and ``replay`` on ``sub``."""
    from nlmmap.spec.catalog import variant_choices

    variants = variant_choices()
    p = sub.add_parser("prove", help="prove every invariant inductive for every ring size (z3)", epilog=epilog,
                       description="One line per obligation (initiation, consecution per action, step "
                                   "properties, count lemmas) with its verdict and time; a consecution whose "
                                   "action writes none of the invariant's variables is proved by the frame "
                                   "condition alone and marked 'untouched' (counted apart in the summary and "
                                   "the JSON). Default: the socket (Linux 4.5) and the queue service with the "
                                   "under-lock fix; then (without --variant/--only) the memory-ordering checks of the "
                                   "status-word handoff. Every counterexample to induction is run in the spec's "
                                   "interpreter before it is printed. Exit 0 all ok, 1 some FAILED (the CTI is "
                                   "printed), 3 some unknown, 4 ERROR (a CTI the interpreter refutes: an "
                                   "engine bug).")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p.add_argument("--variant", action="append", choices=variants, help="prove this variant instead (repeatable)")
    p.add_argument("--only", action="append", metavar="PROPERTY", help="only this invariant/step property")
    p.add_argument("--ordering", action="store_true",
                   help="only the memory-ordering checks (x86-TSO, ARMv8), with every counterexample graph")
    p.add_argument("--timeout-ms", type=int, default=5000, help="per obligation (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="z3 random seed (default 0)")
    p.set_defaults(func=_cmd_prove)

    b = sub.add_parser("bmc", help="shortest counterexample trace by bounded model checking", epilog=epilog,
                       description="Iterative deepening from the initial state in one incremental solver, "
                                   "in a finite scope stated before the search (ring sizes <= --max-n, "
                                   "integer-indexed arrays in a few cells); prints the trace as a table with "
                                   "readable values, replays it in the spec's interpreter, and saves it as ITF "
                                   "JSON. Exit 1 violation found, 0 none to the depth, 3 solver unknown (the "
                                   "depth reached is reported, never as clean), 4 a trace the interpreter "
                                   "does not reproduce (an engine bug).")
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
                                   "its parameters, and reports the violated property; with --on model the "
                                   "byte-level reference model runs the trace (real ring geometries, the user's "
                                   "writes poked into the mapping). Exit 1 when the trace's violation is "
                                   "reproduced (it is a counterexample), 0 when no property breaks, 2 "
                                   "unreadable file or a trace the model cannot run.")
    r.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    r.add_argument("trace", metavar="TRACE.itf.json")
    r.add_argument("--on", choices=("spec", "model"), default="spec",
                   help="spec: the executable spec's interpreter (any trace); model: the byte-level reference "
                        "model (socket and queue-service traces, on real frame bytes)")
    r.set_defaults(func=_cmd_replay)
