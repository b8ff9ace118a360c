"""CLI subcommands for diagrams: ``diagram`` (one graph of the spec in one format) and ``docs``
(regenerate or check ``docs/generated``), registered by :func:`add_parsers`.

Handlers have the shape ``(args, out, err) -> int``; human text goes to ``err``, ``--json``
writes one document to ``out``. Exit status: 0 done (or docs up to date), 1 docs stale, 2 usage
or input error (unknown variant, unreadable trace, Graphviz missing for an image), 4 internal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

WHAT = ("frame", "state-graph", "queue", "trace")
FORMATS = ("dot", "svg", "png", "mermaid", "json", "md")
IMAGE_FORMATS = ("svg", "png")


class _Usage(Exception):
    pass


def _variant_names(values: list[str] | None) -> list[str]:
    names = [v for v in (values or []) if v != "default"]
    from nlmmap.spec.errors import NetlinkError
    from nlmmap.spec.protocol import Variant

    try:
        Variant.from_names(names)
    except NetlinkError as e:
        raise _Usage(e.message) from e
    return names


def _frames(text: str | None, n: int, default: int = 2) -> list[int]:
    if text is None:
        return [default] * n
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError as e:
        raise _Usage(f"--frames takes integers separated by commas (e.g. 3,2), got {text!r}") from e
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n or any(v < 1 for v in vals):
        raise _Usage(f"--frames needs {n} integer(s) >= 1 here, got {text!r}")
    return vals


def _build(args: argparse.Namespace) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """The graph asked for, its renderings by format (lazily: callables), and its counts."""
    from nlmmap.spec import diagram as dg
    from nlmmap.spec import doc_tables as tb
    from nlmmap.spec import graphs as gr
    from nlmmap.spec.protocol import Variant, queue_system, socket_system

    names = _variant_names(args.variant)
    fmts: dict[str, Any] = {}
    if args.what == "frame":
        (frames,) = _frames(args.frames, 1)
        system = socket_system(Variant.from_names(names))
        M = gr.frame_status_machine(system, frames=frames, loops=args.loops or args.compare)
        rings = [args.ring] if args.ring else sorted({d["ring"] for _, _, d in M.edges(data=True)})
        counts = {"nodes": M.number_of_nodes(), "edges": M.number_of_edges(), "frames": frames,
                  "explored_states": M.graph["states"],
                  "well_behaved_edges": sum(1 for _, _, d in M.edges(data=True) if d["user"] == "well-behaved")}
        if args.compare:
            if not names:
                raise _Usage("--compare draws a variant beside Linux 4.5: give it with --variant")
            base = gr.frame_status_machine(socket_system(), frames=frames, loops=True)
            D = gr.machine_diff(base, M)
            diff_rings = [args.ring] if args.ring else sorted(
                {d["ring"] for _, _, d in D.edges(data=True) if d["presence"] != "both"}) or rings
            label = ",".join(names)
            fmts["dot"] = lambda: "".join(dg.frame_machines_side_by_side(base, M, D, r, base_name="Linux 4.5",
                                                                         other_name=label) for r in diff_rings[:1])
            fmts["json"] = lambda: dg.graph_json(D)
            counts["differing_edges"] = sum(1 for _, _, d in D.edges(data=True) if d["presence"] != "both")
            if len(diff_rings) > 1:
                counts["note"] = f"drawn: ring {diff_rings[0]} (use --ring for another)"
        else:
            fmts["dot"] = lambda: dg.frame_machine_dot(M, rings)
            fmts["json"] = lambda: dg.graph_json(M)
            fmts["mermaid"] = lambda: "\n".join(dg.frame_machine_mermaid(M, r, adversary=args.adversary)
                                                for r in rings)
            fmts["md"] = lambda: tb.frame_edges_table(M)
        return M, fmts, counts
    if args.what in ("state-graph", "queue"):
        if args.what == "queue":
            (qf,) = _frames(args.frames, 1)
            system = queue_system(Variant.from_names(names))
            sizes: dict[str, list[int]] = {"rx_frame_nr": [qf]}
            G = gr.state_graph(system, sizes=sizes, with_invariants=True, counter_bound=args.counter_bound)
        else:
            rx, tx = _frames(args.frames, 2)
            system = socket_system(Variant.from_names(names))
            sizes = {"rx_frame_nr": [rx], "tx_frame_nr": [tx]}
            G = gr.state_graph(system, sizes=sizes, adversary=args.adversary, counter_bound=args.counter_bound)
        counts = {"nodes": G.number_of_nodes(), "edges": G.number_of_edges(), "cut": G.graph["cut"],
                  "sizes": {k: v[0] for k, v in sizes.items()}, "counter_bound": G.graph["counter_bound"],
                  "initial": sum(1 for _, d in G.nodes(data=True) if d["initial"])}
        if args.what == "queue":
            counts["violating_states"] = sum(1 for _, d in G.nodes(data=True) if d["violated"])
        rings = None if args.quotient in (None, "all") else [args.quotient]
        quotient: list[Any] = []

        def q() -> Any:  # drawn, or asked for: the quotient by frame statuses (computed once)
            if not quotient:
                quotient.append(gr.quotient_by_status(G, system, rings=rings))
                counts["quotient_nodes"] = quotient[0].number_of_nodes()
                counts["quotient_edges"] = quotient[0].number_of_edges()
            return quotient[0]

        if args.quotient:
            q()
        title = (f"{system.name} ({', '.join(names) or 'default'}), "
                 f"{', '.join(f'{k} = {v[0]}' for k, v in sizes.items())}: {G.number_of_nodes()} states, "
                 f"{G.number_of_edges()} transitions, by frame statuses")
        fmts["dot"] = lambda: dg.quotient_dot(q(), title=title, show_loops=args.what == "queue")
        fmts["json"] = lambda: dg.graph_json(q() if args.quotient else G)
        return G, fmts, counts
    # trace
    if not args.file:
        raise _Usage("--what trace needs the trace file: nlmmap diagram --what trace FILE.itf.json")
    from nlmmap.spec.itf import read_itf

    try:
        doc = read_itf(args.file)
    except (OSError, ValueError) as e:
        raise _Usage(str(e)) from e
    try:
        T = gr.trace_graph(doc)
    except (ValueError, KeyError) as e:
        raise _Usage(f"{args.file}: not a trace of an nlmmap system: {e}") from e
    counts = {"states": T.number_of_nodes(), "steps": T.number_of_edges(), "property": T.graph["property"],
              "violation_at": T.graph["violation_at"]}
    system = gr.status_names(socket_system())
    fmts["dot"] = lambda: dg.trace_dot(T, names=system)
    fmts["json"] = lambda: dg.graph_json(T)
    fmts["md"] = lambda: tb.md_table(["step", "action", "side", "parameters", "changed", "violated"], [
        [v, d["action"], d["actor"], ", ".join(f"{k}={dg.show_value(k, x)}" for k, x in d["params"].items()),
         ", ".join(T.nodes[v]["changed"]), ", ".join(T.nodes[v]["violated"] + d["violated"])]
        for _, v, d in sorted(T.edges(data=True))])
    return T, fmts, counts


def _cmd_diagram(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.spec.diagram import DiagramError, render_image
    from nlmmap.spec.graphs import ExploreError

    t0 = time.perf_counter()
    try:
        if args.format in IMAGE_FORMATS and args.out is None:
            raise _Usage(f"--format {args.format} writes binary data: give --out FILE")
        if args.file and args.what != "trace":
            raise _Usage(f"a FILE is only read with --what trace (got {args.file!r})")
        _graph, fmts, counts = _build(args)
        fmt = args.format or ("json" if args.json and args.out is None else "dot")
        source = "dot" if fmt in IMAGE_FORMATS else fmt
        if source not in fmts:
            raise _Usage(f"--what {args.what} has no {fmt} output; it has {sorted(set(fmts) | set(IMAGE_FORMATS))}")
        data: bytes | None = None
        if args.out is not None or not args.json:
            text = fmts[source]()
            data = render_image(text, fmt) if fmt in IMAGE_FORMATS else text.encode()
    except _Usage as e:
        err.write(f"nlmmap diagram: {e}\n")
        return EXIT_USAGE
    except (ExploreError, DiagramError) as e:
        err.write(f"nlmmap diagram: {e}\n")
        return EXIT_USAGE
    seconds = time.perf_counter() - t0
    if data is not None:
        if args.out is None:
            out.write(data.decode())
        else:
            Path(args.out).write_bytes(data)
    shown = ", ".join(f"{k} {v}" for k, v in counts.items())
    err.write(f"nlmmap diagram --what {args.what}: {shown} ({seconds:.2f} s)"
              + (f" -> {args.out}" if args.out else "") + "\n")
    if args.json:
        out.write(json.dumps({"tool": "nlmmap diagram", "what": args.what, "variant": args.variant or ["default"],
                              "format": fmt if data is not None else None, "out": args.out, **counts,
                              "seconds": round(seconds, 3)}, sort_keys=True) + "\n")
    return EXIT_OK


def _cmd_docs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from nlmmap.spec.diagram import DiagramError
    from nlmmap.spec.docs import DocsContext, DocsError, check_docs, write_docs

    ctx = DocsContext(Path(args.root))
    t0 = time.perf_counter()
    try:
        if args.check:
            stale = check_docs(ctx)
            secs = time.perf_counter() - t0
            if stale:
                err.write("nlmmap docs --check: these generated files are stale (run `nlmmap docs` and commit):\n")
                for line in stale:
                    err.write(f"  {line}\n")
            else:
                err.write(f"nlmmap docs --check: docs/generated is up to date ({secs:.1f} s)\n")
            if args.json:
                out.write(json.dumps({"tool": "nlmmap docs", "check": True, "ok": not stale, "stale": stale,
                                      "seconds": round(secs, 3)}, sort_keys=True) + "\n")
            return EXIT_FAIL if stale else EXIT_OK
        written = write_docs(ctx)
    except (DocsError, DiagramError) as e:
        err.write(f"nlmmap docs: {e}\n")
        return EXIT_USAGE
    secs = time.perf_counter() - t0
    err.write(f"nlmmap docs: {len(written)} files generated under {args.root} ({secs:.1f} s)\n")
    if args.json:
        out.write(json.dumps({"tool": "nlmmap docs", "check": False, "written": written, "seconds": round(secs, 3)},
                             sort_keys=True) + "\n")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, epilog: str, parser_class: type) -> None:
    """Register ``diagram`` and ``docs`` on ``sub``."""
    d = sub.add_parser("diagram", help="draw a graph of the spec (status machines, state graphs, traces)",
                       epilog=epilog, description=(
                           "Graphs read off the spec by exploring it with its own interpreter. --what frame: the "
                           "per-frame status machine of the RX and TX rings (--compare: a --variant beside Linux "
                           "4.5); state-graph: the reachable states of a small socket (--frames RX,TX; drawn as "
                           "its quotient by frame statuses, JSON the whole graph); queue: the queue service's "
                           "states with the invariants checked; trace FILE: an ITF trace as a path. Formats: "
                           "dot, svg and png (Graphviz), mermaid, json (node-link), md (a table). Exit 0 done, "
                           "2 usage or input error."))
    d.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="counts and the output path as one JSON document on stdout")
    d.add_argument("--what", choices=WHAT, default="frame")
    d.add_argument("file", nargs="?", metavar="FILE.itf.json", help="the trace (with --what trace)")
    d.add_argument("--frames", metavar="N[,N]", help="frames per ring (state-graph: RX,TX; default 2 each)")
    d.add_argument("--variant", action="append", metavar="SWITCH",
                   help="history switch (repeatable; tx_zero_copy, skip_broken, ..., queue_alloc_under_lock)")
    d.add_argument("--format", choices=FORMATS, help="output format (default dot)")
    d.add_argument("--out", metavar="FILE", help="write here (default: stdout, text formats only)")
    d.add_argument("--ring", choices=("rx", "tx"), help="frame: draw only this ring")
    d.add_argument("--loops", action="store_true", help="frame: also actions that leave a frame's status as it was")
    d.add_argument("--compare", action="store_true", help="frame: draw the --variant beside Linux 4.5")
    d.add_argument("--adversary", action="store_true",
                   help="state-graph: the adversary too; frame --format mermaid: its edges too")
    d.add_argument("--quotient", choices=("rx", "tx", "all"),
                   help="state-graph/queue: the quotient by these rings' statuses (drawings always are)")
    d.add_argument("--counter-bound", type=int, metavar="K", help="state-graph/queue: explore counters up to K")
    d.set_defaults(func=_cmd_diagram)

    c = sub.add_parser("docs", help="regenerate docs/generated from the spec (--check: fail if stale)",
                       epilog=epilog, description=(
                           "Writes docs/generated (pages, DOT, Mermaid, JSON, SVG and PNG through Graphviz) and "
                           "docs/README-diagrams-section.md from the spec. --check regenerates in memory and "
                           "compares: text files byte for byte, images by presence and the DOT they were drawn "
                           "from (MANIFEST.json); it needs no Graphviz. Exit 0 written or up to date, 1 stale "
                           "(the files are named), 2 no docs/ directory or Graphviz missing."))
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    c.add_argument("--check", action="store_true", help="only check; fail naming the stale files")
    c.add_argument("--root", default=".", help="the repository root holding docs/ (default: .)")
    c.set_defaults(func=_cmd_docs)


if __name__ == "__main__":  # pragma: no cover
    from nlmmap.cli import main

    sys.exit(main(["diagram", *sys.argv[1:]]))
