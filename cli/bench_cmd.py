"""``nlmmap bench``: every figure of the product in one command, one report a user can keep.

The implementation's rows come from :mod:`nlmmap.impl.bench` (producer and consumer in separate
processes, variants interleaved, medians with their spread, ratios computed in the same run); this
module adds the other rooms' rows, each imported lazily: the proof kit (``nlmmap prove`` time and
its slowest obligation, BMC time per depth for the manifest's clean runs and, without
``--quick``, the time to each historical flaw), the diagrams (the reachable state graph of 3 RX
and 2 TX frames) and the conformance suite's steps/s (a row marked not available when the suite
has no bench function). Exit codes: 0 measured, 1 a correctness failure (a sequence error, a lost
wake-up, a proof obligation not ok or a BMC run not as the manifest expects), 2 usage error, 4
internal error. Bars missed are reported, not an exit status: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any, TextIO

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
ROOM_SECTIONS = ("proofs", "diagrams", "conformance")


def _row(rid: str, section: str, label: str, unit: str, values: list[float], **more: Any) -> dict[str, Any]:
    """A row of another room (no messages: no correctness counters)."""
    import statistics

    vals = sorted(values)
    row = {"id": rid, "section": section, "label": label, "unit": unit, "median": statistics.median(vals),
           "min": vals[0], "max": vals[-1], "samples": list(values), "rounds": len(values)}
    row.update(more)
    return row


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def proof_rows(*, quick: bool, bmc_depth: int, progress: Any) -> tuple[list[dict], bool]:
    """``prove`` time and slowest obligation; BMC time per depth; without ``quick`` the time to each
    historical flaw (measured by :mod:`nlmmap.proof_figures`). Returns (rows, every verdict as
    expected)."""
    import z3

    from .proof_figures import time_clean, time_flaws, time_prove

    rows: list[dict] = []
    p = time_prove(progress)
    ok = p["not_ok"] == 0
    rows.append(_row("proofs.prove", "proofs", f"nlmmap prove: {p['obligations']} obligations, {p['not_ok']} not ok",
                     "s", [p["total_s"]], obligations=p["obligations"], not_ok=p["not_ok"], z3=z3.get_full_version()))
    rows.append(_row("proofs.slowest_obligation", "proofs", f"slowest obligation: {p['slowest']}", "s",
                     [p["slowest_ms"] / 1000]))
    # never past the manifest's depth: how deep each run is known clean
    for r in time_clean(lambda run: min(bmc_depth, run.depth), progress=progress):
        cum = [x["wall_s"] for x in r["per_depth"]]  # depth 0 first
        per = [b - a for a, b in zip([0.0, *cum], cum, strict=False)]
        ok &= r["ok"]
        rows.append(_row(f"proofs.bmc.{_slug(r['label'])}", "proofs", f"nlmmap bmc --variant {r['label']}, clean to "
                         f"depth {r['reached']} (ring sizes <= {r['max_n']})", "s", [r["wall_s"]],
                         per_depth_s=per, cumulative_s=cum, verdict=r["verdict"]))
    if not quick:
        for r in time_flaws(progress):
            ok &= r["as_expected"]
            rows.append(_row(f"proofs.flaw.{_slug(r['label'])}", "proofs", f"nlmmap bmc --variant {r['label']}: "
                             f"{r['property'] or r['verdict']} in {r['steps']} steps", "s", [r["wall_s"]],
                             steps=r["steps"], violated=r["property"], as_expected=r["as_expected"]))
    return rows, ok


def diagram_rows(*, rounds: int, progress: Any) -> list[dict]:
    """Time to explore the reachable state graph of one socket with 3 RX and 2 TX frames."""
    from nlmmap.spec.graphs import state_graph
    from nlmmap.spec.protocol import socket_system

    times = []
    g: Any = None
    for r in range(rounds):
        progress.step("state graph 3 RX + 2 TX", r, rounds)
        t0 = time.perf_counter()
        g = state_graph(socket_system(), sizes={"rx_frame_nr": [3], "tx_frame_nr": [2]})
        times.append(time.perf_counter() - t0)
    return [_row("diagrams.state_graph_3rx_2tx", "diagrams", f"reachable state graph, 3 RX + 2 TX frames: "
                 f"{g.number_of_nodes()} states, {g.number_of_edges()} transitions", "s", times,
                 states=g.number_of_nodes(), transitions=g.number_of_edges(), bar_s=10.0,
                 meets=sorted(times)[len(times) // 2] < 10.0)]


def conformance_rows(*, quick: bool, progress: Any, scale: float = 1.0) -> list[dict]:
    """The conformance suite's steps/s against the in-process, shared and proxied targets
    (``nlmmap.conformance.bench.bench``: the ci profile's draws, no shrinking), one row each;
    ``scale`` (below 1) shortens the runs as it does the message counts, to no fewer than 100 steps."""
    import importlib

    cbench = importlib.import_module("nlmmap.conformance.bench")  # the module (the package exports the function)
    progress.step("conformance", 0, 1)
    rows = []
    for r in cbench.bench(max_steps=max(100, int((500 if quick else 2000) * min(1.0, scale)))):
        rows.append(_row(f"conformance.{_slug(r['target'])}.steps_per_s", "conformance",
                         f"conformance suite against nlmmap.impl ({r['target']}, memory {r['memory']}): "
                         f"{r['steps']} steps, edges {r['edges']}, {r['verdict']}", "steps/s", [r["steps_per_s"]],
                         verdict=r["verdict"], requests_per_s=r["requests_per_s"], failure=r["failure"]))
    return rows


def _cmd_bench(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.impl.bench import (
        IMPL_SECTIONS,
        BenchConfig,
        Placement,
        Progress,
        build_report,
        load_average,
        machine_info,
        plot,
        run_impl,
        to_markdown,
    )

    every = IMPL_SECTIONS + ROOM_SECTIONS
    chosen = tuple(s for s in (args.only.split(",") if args.only else every) if s)
    skip = set(args.skip.split(",")) if args.skip else set()
    unknown = (set(chosen) | skip) - set(every)
    if unknown:
        err.write(f"nlmmap bench: unknown section(s) {sorted(unknown)}; sections: {', '.join(every)}\n")
        return EXIT_USAGE
    sections = tuple(s for s in every if s in chosen and s not in skip)
    if args.plot and "rx" not in sections:
        err.write("nlmmap bench: --plot needs the rx section\n")
        return EXIT_USAGE
    if args.rounds is not None and args.rounds < 1 or args.scale <= 0 or args.stability < 1:
        err.write("nlmmap bench: --rounds, --stability and --scale must be positive\n")
        return EXIT_USAGE
    load_start = load_average()
    try:
        place = Placement(args.pin, load=load_start[0] if load_start else None)
    except ValueError as e:
        err.write(f"nlmmap bench: {e}\n")
        return EXIT_USAGE
    rounds = args.rounds or (3 if args.quick else 5)
    stability = args.stability if args.stability_given else (3 if args.quick else 10)
    cfg = BenchConfig(quick=args.quick, rounds=rounds, scale=args.scale, stability=stability, pin=args.pin,
                      sections=tuple(s for s in sections if s in IMPL_SECTIONS), queues=args.queues)
    command = _command_line(args)
    prog = Progress(err)
    machine = machine_info()
    prog.section(f"{command}: {machine['cpu']}, {machine['cores']} cores, load {load_start}, {rounds} rounds")
    rows, specs = run_impl(cfg, place, prog)
    ok = True
    if "proofs" in sections:
        prog.section("proofs")
        prows, pok = proof_rows(quick=args.quick, bmc_depth=args.bmc_depth or (4 if args.quick else 12),
                                progress=prog)
        rows += prows
        ok &= pok
    if "diagrams" in sections:
        prog.section("diagrams")
        rows += diagram_rows(rounds=1 if args.quick else 3, progress=prog)
    if "conformance" in sections:
        prog.section("conformance")
        rows += conformance_rows(quick=args.quick, progress=prog, scale=args.scale)
    config = {"quick": args.quick, "rounds": rounds, "scale": args.scale, "stability_runs": stability,
              "sections": list(sections), "queues": args.queues}
    doc = build_report(command=command, machine=machine, load_start=load_start, load_end=load_average(),
                       config=config, placement=place.describe(), rows=rows, ratio_specs=specs)
    c = doc["correctness"]
    ok &= c["seq_errors"] == 0 and c["lost_wakeups"] == 0
    doc["ok"] = bool(ok)
    if args.plot:
        plot(doc, args.plot)
    md = to_markdown(doc, plot_path=args.plot_link or args.plot)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(md)
    prog.section(f"done: bars met {len(doc['bars']['met'])}, missed {len(doc['bars']['missed'])}"
                 + (f" ({', '.join(doc['bars']['missed'])})" if doc["bars"]["missed"] else "")
                 + f"; {c['seq_errors']} sequence errors, {c['poll_timeouts']} poll timeouts, "
                   f"{c['lost_wakeups']} lost wake-ups; load {doc['load']['end']}")
    if args.json:
        out.write(json.dumps(doc, sort_keys=True) + "\n")
    elif not args.markdown:
        err.write(md)
    return EXIT_OK if ok else EXIT_FAIL


class _StoreStability(argparse.Action):
    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        namespace.stability = values
        namespace.stability_given = True


def add_parsers(sub: argparse._SubParsersAction, epilog: str, parser_class: type) -> None:
    """Register ``nlmmap bench``."""
    p = sub.add_parser("bench", help="measure every figure of the product (ring vs copy, the seed's queue table, "
                       "dumps, TX, memcpy bound, proof kit, diagrams) in one report", epilog=epilog,
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="one JSON document on stdout")
    p.add_argument("--quick", action="store_true", help="a fifth of the messages, 3 rounds, 3 stability runs")
    p.add_argument("--rounds", type=int, help="interleaved rounds per comparison (default 5, 3 with --quick)")
    p.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    p.add_argument("--plot", metavar="FILE", help="write a PNG of throughput against message size (matplotlib)")
    p.add_argument("--plot-link", metavar="PATH", help="the plot's path as the Markdown links it (default: --plot)")
    p.add_argument("--only", metavar="SECTIONS", help="comma-separated sections: rx, stability, memcpy, queue, dump, "
                   "tx, proofs, diagrams, conformance")
    p.add_argument("--skip", metavar="SECTIONS", help="comma-separated sections to leave out")
    p.add_argument("--stability", type=int, default=10, action=_StoreStability,
                   help="independent runs of the 64 B comparison (default 10, 3 with --quick)")
    p.add_argument("--pin", default="auto", help="CPU placement: auto (consumer and kernel side on different "
                   "CPUs on a quiet machine), on, off, or CONSUMER_CPU,KERNEL_CPU")
    p.add_argument("--queues", type=int, default=2, help="queues served in parallel in the queue section")
    p.add_argument("--bmc-depth", type=int, help="deepest BMC depth timed (default 12, 4 with --quick; never past "
                   "the depth the manifest knows clean)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="factor on every message count, and below 1 on the conformance rows' steps (tests: tiny)")
    p.set_defaults(func=_cmd_bench, stability_given=False)


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run's measurements (its options that are not defaults)."""
    parts = ["nlmmap bench"]
    if args.quick:
        parts.append("--quick")
    for opt, val, default in (("--rounds", args.rounds, None), ("--only", args.only, None),
                              ("--skip", args.skip, None), ("--pin", args.pin, "auto"),
                              ("--queues", args.queues, 2), ("--bmc-depth", args.bmc_depth, None),
                              ("--scale", args.scale, 1.0)):
        if val != default:
            parts.append(f"{opt} {val}")
    if args.stability_given:
        parts.append(f"--stability {args.stability}")
    for opt, val in (("--json", getattr(args, "json", False)), ("--markdown", args.markdown), ("--plot", args.plot)):
        if val is True:
            parts.append(opt)
        elif val:
            parts.append(f"{opt} {val}")
    return " ".join(parts)
