"""Drawing (nlmmap.spec.diagram) and `nlmmap diagram`: DOT is well quoted and parses, Mermaid is a
stateDiagram-v2 of the spec's edges, JSON is node-link, output is deterministic, and the CLI
reports counts and errors with the documented exit codes."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import networkx as nx
import pytest

from nlmmap.cli import main
from nlmmap.spec import diagram as dg
from nlmmap.spec import graphs as gr
from nlmmap.spec.itf import read_itf
from nlmmap.spec.protocol import Variant, socket_system

TRACES = sorted((Path(__file__).parent / "traces").glob("*.itf.json"))


@pytest.fixture(scope="module")
def machine() -> nx.MultiDiGraph:
    return gr.frame_status_machine(socket_system())


def test_quote_escapes_what_dot_would_misread():
    assert dg.quote('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert dg.quote("x\ny") == '"x\\ny"'
    assert dg.quote("x\ny", left=True) == '"x\\ly\\l"'
    d = dg.Dot("g")
    d.node('odd "id"', label="two\nlines")
    d.edge('odd "id"', "b", label="->")
    src = d.source()
    assert '"odd \\"id\\"" [label="two\\nlines"];' in src and '"odd \\"id\\"" -> "b" [label="->"];' in src
    with pytest.raises(ValueError, match="identifier"):
        dg.Dot("g").node("a", **{"bad name": "x"})


def test_every_statement_of_a_drawing_is_quoted(machine):
    """Every id, attribute value and label of the emitted DOT is a double-quoted string."""
    src = dg.frame_machine_dot(machine, ["rx", "tx"])
    unquoted_value = re.compile(r'=\s*[^"\s]')
    for line in src.splitlines()[1:-1]:
        line = line.strip()
        if line in ("}",) or line.startswith(("subgraph ", "{rank=same")):
            continue
        assert not unquoted_value.search(line), line
        assert line.startswith(('"', "node [", "edge [", "fontname=", "label=", "labelloc=", "fontsize=",
                                "color=", "rankdir=", "nodesep=", "ranksep=")), line


def test_drawings_parse_with_graphviz(machine, tmp_path):
    base = gr.frame_status_machine(socket_system(), loops=True)
    zc = gr.frame_status_machine(socket_system(Variant(tx_zero_copy=True)), loops=True)
    sources = [dg.frame_machine_dot(machine, "rx"), dg.frame_machine_dot(machine, ["rx", "tx"]),
               dg.frame_machines_side_by_side(base, zc, gr.machine_diff(base, zc), "tx", base_name="Linux 4.5",
                                              other_name="tx_zero_copy"),
               dg.trace_dot(gr.trace_graph(read_itf(TRACES[0])))]
    for src in sources:
        svg = dg.render_image(src, "svg")
        assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    png = dg.render_image(sources[0], "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(dg.DiagramError, match="dot -Tsvg failed"):
        dg.render_image("digraph { a -> }", "svg")


def test_mermaid_is_the_well_behaved_machine(machine):
    text = dg.frame_machine_mermaid(machine, "rx")
    assert text.startswith("stateDiagram-v2\n")
    drawn = set()
    for line in text.splitlines():
        m = re.match(r"\s+(\S+) --> (\S+) : (.+) \((\w+)\)$", line)
        if m:
            for action in m.group(3).split(", "):
                drawn.add((m.group(1), m.group(2), action, m.group(4)))
    want = {("[*]" if u[1] == gr.ABSENT else u[1], "[*]" if v[1] == gr.ABSENT else v[1], k, d["actor"])
            for u, v, k, d in machine.edges(keys=True, data=True) if d["ring"] == "rx" and d["user"] == "well-behaved"}
    assert drawn == want
    assert "class UNUSED,RESERVED kernel" in text and "class VALID,COPY,SKIP user" in text


def test_owners_are_derived_from_who_moves_a_frame_on(machine):
    own = gr.status_owners(machine)
    assert own[("rx", "UNUSED")] == own[("rx", "RESERVED")] == "kernel"
    assert own[("rx", "VALID")] == own[("rx", "SKIP")] == own[("rx", "COPY")] == "user"
    assert own[("tx", "UNUSED")] == "user" and own[("tx", "VALID")] == "kernel"
    assert own[("rx", gr.OTHER)] is None


def test_json_is_node_link_and_deterministic(machine):
    a = dg.graph_json(machine)
    b = dg.graph_json(gr.frame_status_machine(socket_system()))
    assert a == b
    doc = json.loads(a)
    assert set(doc) >= {"nodes", "edges", "graph", "directed", "multigraph"} and doc["multigraph"]
    back = nx.node_link_graph(doc, edges="edges")
    assert back.number_of_edges() == machine.number_of_edges()


def test_trace_drawing_marks_the_violation():
    T = gr.trace_graph(read_itf(TRACES[0]))
    src = dg.trace_dot(T)
    at = T.graph["violation_at"]
    assert at == T.number_of_nodes() - 1
    line = next(x for x in src.splitlines() if x.strip().startswith(f'"s{at}"'))
    assert "VIOLATED: " + T.graph["property"] in line and "#f8d7d3" in line
    assert T.graph["property"] in src.splitlines()[1] or T.graph["property"] in src


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_frame_json_counts_match_the_library(machine):
    rc, out, err = _run("diagram", "--what", "frame", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["edges"] == machine.number_of_edges() and doc["nodes"] == machine.number_of_nodes()
    assert "nlmmap diagram --what frame" in err


def test_cli_writes_each_format(tmp_path):
    for fmt in ("dot", "svg", "png", "mermaid", "json", "md"):
        path = tmp_path / f"m.{fmt}"
        rc, out, err = _run("diagram", "--what", "frame", "--ring", "tx", "--format", fmt, "--out", str(path), "--json")
        assert rc == 0, err
        assert json.loads(out)["out"] == str(path) and path.stat().st_size > 0
    rc, out, _ = _run("diagram", "--what", "frame", "--format", "mermaid", "--ring", "tx")
    assert rc == 0 and out.startswith("stateDiagram-v2")


def test_cli_state_graph_and_queue_and_trace(tmp_path):
    rc, out, _ = _run("diagram", "--what", "state-graph", "--frames", "1,1", "--json")
    doc = json.loads(out)
    G = gr.state_graph(socket_system(), sizes={"rx_frame_nr": [1], "tx_frame_nr": [1]})
    assert rc == 0 and (doc["nodes"], doc["edges"]) == (G.number_of_nodes(), G.number_of_edges())
    rc, out, _ = _run("diagram", "--what", "queue", "--json")
    assert rc == 0 and json.loads(out)["violating_states"] > 0
    rc, out, _ = _run("diagram", "--what", "queue", "--variant", "queue_alloc_under_lock", "--json")
    assert rc == 0 and json.loads(out)["violating_states"] == 0
    rc, out, _ = _run("diagram", "--what", "trace", str(TRACES[0]), "--format", "md")
    assert rc == 0 and out.startswith("| step |")


@pytest.mark.parametrize(("argv", "needle"), [
    (["diagram", "--variant", "nope"], "unknown variant"),
    (["diagram", "--what", "trace"], "needs the trace file"),
    (["diagram", "--what", "state-graph", "--frames", "x"], "--frames takes integers"),
    (["diagram", "--what", "frame", "--format", "png"], "give --out FILE"),
    (["diagram", "--what", "queue", "--format", "mermaid"], "has no mermaid output"),
    (["diagram", "--what", "frame", "--compare"], "give it with --variant"),
])
def test_cli_usage_errors_exit_2(argv, needle):
    rc, out, err = _run(*argv)
    assert rc == 2 and needle in err and out == ""


def test_cli_bad_trace_file_exits_2(tmp_path):
    bad = tmp_path / "bad.itf.json"
    bad.write_text("{not json")
    rc, _, err = _run("diagram", "--what", "trace", str(bad))
    assert rc == 2 and "not JSON" in err
    wrong = tmp_path / "wrong.itf.json"
    wrong.write_text(json.dumps({"#meta": {"system": "socket"}, "states": [{"x": 1}]}))
    rc, _, err = _run("diagram", "--what", "trace", str(wrong))
    assert rc == 2 and "not a trace of an nlmmap system" in err
