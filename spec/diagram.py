"""Drawing the graphs of :mod:`nlmmap.spec.graphs`: DOT (our own small emitter, every id, label and
attribute value quoted), SVG and PNG through Graphviz's ``dot``, Mermaid ``stateDiagram-v2`` for
Markdown, and node-link JSON.

Nothing here computes a graph, and the graph modules never import this one. Output is sorted and
deterministic: no timestamps, no dependence on dict order or hash seeds. Colours are by side:
the kernel blue, the user green, the adversary red; a status node is filled by the side that
owns a frame in that status (:func:`nlmmap.spec.graphs.status_owners`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from .graphs import ABSENT, OTHER, status_owners

__all__ = [
    "DiagramError", "SIDE_COLOURS", "OWNER_FILLS", "Dot", "quote", "frame_machine_dot", "frame_machines_side_by_side",
    "frame_machine_mermaid", "quotient_dot", "trace_dot", "graph_json", "render_image", "show_value",
]

SIDE_COLOURS = {"kernel": "#1f5fa8", "user": "#2a7d36", "adversary": "#c0392b"}
OWNER_FILLS = {"kernel": "#dce8f7", "user": "#dcf0de", None: "#eeeeee"}
OWNER_WORDS = {"kernel": "owned by the kernel", "user": "owned by the user", None: "owned by nobody"}
DIFF_ADDED = "#e67e00"
DIFF_REMOVED = "#8c8c8c"
FONT = "Helvetica"


class DiagramError(RuntimeError):
    """A diagram cannot be produced (Graphviz missing or failing); the message says what to do."""


# --- a small DOT emitter -----------------------------------------------------------------------------
def quote(text: Any, *, left: bool = False) -> str:
    """``text`` as a DOT double-quoted string; newlines become ``\\n`` (centred) or, with
    ``left``, ``\\l`` (left-justified, also after the last line)."""
    s = str(text).replace("\\", "\\\\").replace('"', '\\"')
    if left:
        return '"' + s.replace("\n", "\\l") + '\\l"'
    return '"' + s.replace("\n", "\\n") + '"'


def _attrs(attrs: Mapping[str, Any], left_label: bool = False) -> str:
    if not attrs:
        return ""
    parts = []
    for k in sorted(attrs):
        if not k.isidentifier():
            raise ValueError(f"DOT attribute name {k!r} is not an identifier")
        parts.append(f"{k}={quote(attrs[k], left=left_label and k in ('label', 'xlabel'))}")
    return " [" + ", ".join(parts) + "]"


class Dot:
    """A DOT graph built statement by statement, in the order given (callers pass sorted items)."""

    def __init__(self, name: str, *, directed: bool = True, cluster: bool = False, **graph: Any) -> None:
        self.name, self.directed, self.cluster = name, directed, cluster
        self.graph = dict(graph)
        self.node_defaults: dict[str, Any] = {}
        self.edge_defaults: dict[str, Any] = {}
        self.lines: list[str] = []

    def node(self, node_id: str, *, left: bool = False, **attrs: Any) -> None:
        """Add a node (``left``: left-justify its label lines)."""
        self.lines.append(f"{quote(node_id)}{_attrs(attrs, left)};")

    def edge(self, u: str, v: str, **attrs: Any) -> None:
        """Add an edge."""
        arrow = "->" if self.directed else "--"
        self.lines.append(f"{quote(u)} {arrow} {quote(v)}{_attrs(attrs)};")

    def subgraph(self, sub: Dot) -> None:
        """Nest ``sub`` (a cluster if built with ``cluster=True``)."""
        self.lines.extend(sub._body(nested=True))

    def rank_same(self, nodes: Iterable[str]) -> None:
        """Keep ``nodes`` on one rank."""
        self.lines.append("{rank=same; " + " ".join(f"{quote(n)};" for n in nodes) + "}")

    def _body(self, nested: bool) -> list[str]:
        head = ("subgraph " if nested else ("digraph " if self.directed else "graph ")) + \
            quote(("cluster_" if self.cluster else "") + self.name) + " {"
        out = [head]
        for k in sorted(self.graph):
            out.append(f"  {k}={quote(self.graph[k])};")
        if self.node_defaults:
            out.append("  node" + _attrs(self.node_defaults) + ";")
        if self.edge_defaults:
            out.append("  edge" + _attrs(self.edge_defaults) + ";")
        out += ["  " + line for line in self.lines]
        out.append("}")
        return out

    def source(self) -> str:
        """The DOT text (ends with a newline)."""
        return "\n".join(self._body(nested=False)) + "\n"


def _base(name: str, **graph: Any) -> Dot:
    d = Dot(name, fontname=FONT, **graph)
    d.node_defaults = {"fontname": FONT, "fontsize": "13"}
    d.edge_defaults = {"fontname": FONT, "fontsize": "11"}
    return d


def render_image(dot_source: str, fmt: str) -> bytes:
    """Render DOT text as ``svg`` or ``png`` with Graphviz's ``dot`` (Debian package ``graphviz``)."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"image format must be svg or png, got {fmt!r}")
    exe = shutil.which("dot")
    if exe is None:
        raise DiagramError("Graphviz's dot program is not installed (Debian/Ubuntu: apt-get install graphviz); "
                           "DOT, Mermaid, JSON and Markdown need no Graphviz")
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise DiagramError(f"dot -T{fmt} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def graph_json(G: nx.Graph, **extra: Any) -> str:
    """``G`` as node-link JSON (``nx.node_link_data(G, edges="edges")``), keys sorted, plus
    ``extra`` top-level entries (counts, domains)."""
    doc = nx.node_link_data(G, edges="edges")
    doc.update(extra)
    return json.dumps(doc, sort_keys=True, indent=1, default=_json_default) + "\n"


def _json_default(x: Any) -> Any:
    if isinstance(x, (set, frozenset)):
        return sorted(x, key=repr)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


# --- the per-frame status machine ----------------------------------------------------------------------
def _status_order(M: nx.MultiDiGraph, ring: str) -> list[str]:
    nodes = [n for n in M.nodes if n[0] == ring and n[1] != ABSENT]
    named = sorted((M.nodes[n]["value"], n[1]) for n in nodes if M.nodes[n]["value"] is not None)
    return [s for _, s in named] + ([OTHER] if (ring, OTHER) in M else [])


def _drawn_edges(M: nx.MultiDiGraph, ring: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The edges of one ring as drawn, and the drawn status nodes (id -> statuses it stands for).

    ABSENT is split into a start and an end point; a change that some action makes from every
    other status is drawn once from an "any status" node (its well-behaved edges stay apart); the
    adversary's rewrites of a status with itself are left out; statuses that no well-behaved
    action touches and that have the same edges are drawn as one node; parallel edges of one side
    and style are merged into one label."""
    statuses = _status_order(M, ring)
    edges = [(u[1], v[1], d) for u, v, d in M.edges(data=True) if d["ring"] == ring]
    by_target: dict[tuple[str, str], set[str]] = {}
    for b, a, d in edges:
        if b != a and b != ABSENT:
            by_target.setdefault((d["action"], a), set()).add(b)
    raw: list[dict[str, Any]] = []
    for b, a, d in edges:
        if b == a and d["actor"] == "adversary":
            continue
        src = "start" if b == ABSENT else b
        dst = "end" if a == ABSENT else a
        every = set(statuses) - {a}
        if b not in (ABSENT, a) and d["user"] != "well-behaved" and by_target.get((d["action"], a), set()) >= every \
                and len(every) >= 3:
            src = "any"
        style = "solid" if d["user"] == "well-behaved" else ("dotted" if d["actor"] == "adversary" else "dashed")
        raw.append({"src": src, "dst": dst, "actor": d["actor"], "style": style,
                    "presence": d.get("presence", "both"), "action": d["action"]})
    touched = {x for e in raw if e["style"] == "solid" or e["presence"] != "both" for x in (e["src"], e["dst"])}
    groups: dict[frozenset, list[str]] = {}
    for st in statuses:
        if st in touched:
            continue
        sig = frozenset([("in", e["src"], e["action"], e["style"]) for e in raw if e["dst"] == st]
                        + [("out", e["dst"], e["action"], e["style"]) for e in raw if e["src"] == st])
        groups.setdefault(sig, []).append(st)
    alias = {st: st for st in statuses}
    for members in groups.values():
        for st in members:
            alias[st] = "+".join(members)
    nodes: dict[str, list[str]] = {}
    for st in statuses:
        nodes.setdefault(alias[st], []).append(st)
    drawn: dict[tuple, dict[str, Any]] = {}
    for e in raw:
        src, dst = alias.get(e["src"], e["src"]), alias.get(e["dst"], e["dst"])
        key = (src, dst, e["actor"], e["style"], e["presence"])
        m = drawn.setdefault(key, {"src": src, "dst": dst, "actor": e["actor"], "style": e["style"],
                                   "presence": e["presence"], "actions": []})
        if e["action"] not in m["actions"]:
            m["actions"].append(e["action"])
    return [drawn[k] for k in sorted(drawn)], nodes


def _machine_cluster(M: nx.MultiDiGraph, ring: str, *, prefix: str, title: str) -> Dot:
    owners = status_owners(M)
    c = Dot(prefix + ring, cluster=True, label=title, labelloc="t", fontsize="15", fontname=FONT, color="#bbbbbb")
    edges, nodes = _drawn_edges(M, ring)
    used = {e["src"] for e in edges} | {e["dst"] for e in edges}
    for nid, members in nodes.items():
        parts = []
        for s in members:
            value = M.nodes[(ring, s)]["value"]
            parts.append(f"{s} {value}" if value is not None else "any other u32")
        owner = owners.get((ring, members[0])) if len(members) == 1 else None
        attrs: dict[str, Any] = {"label": "\n".join(parts), "shape": "box", "style": "rounded,filled",
                                 "fillcolor": OWNER_FILLS.get(owner, OWNER_FILLS[None]), "color": "#555555"}
        if any(M.nodes[(ring, s)].get("presence") in ("base", "other") for s in members):
            attrs["penwidth"] = "3"
        c.node(prefix + nid, **attrs)
    for special, label in (("start", "no ring"), ("end", "ring torn down")):
        if special in used:
            c.node(prefix + special, shape="box", style="filled", fillcolor="#333333", fontcolor="white",
                   fontsize="10", label=label)
    if "any" in used:
        c.node(prefix + "any", shape="box", style="dashed,rounded", label="any status", color="#999999",
               fontcolor="#555555")
    for e in edges:
        colour = SIDE_COLOURS.get(e["actor"], "black")
        label = "\n".join(e["actions"])
        attrs = {"color": colour, "fontcolor": colour, "style": e["style"], "label": " " + label + " "}
        if e["presence"] == "other":
            attrs.update(penwidth="3.5", color=DIFF_ADDED, fontcolor=DIFF_ADDED, label=f" + {label} ")
        elif e["presence"] == "base":
            attrs.update(penwidth="2.5", color=DIFF_REMOVED, fontcolor=DIFF_REMOVED, label=f" - {label} ")
        c.edge(prefix + e["src"], prefix + e["dst"], **attrs)
    return c


def _legend(*, diff: tuple[str, str] | None = None, adversary: bool = True, owners: bool = True,
            dashed: bool = True, horizontal: bool = False, prefix: str = "legend") -> Dot:
    """The legend cluster: edge colours by side and styles, node fills by owner; rows stacked
    (beside a top-to-bottom machine) or, ``horizontal``, all on one rank (above a tall graph)."""
    lg = Dot(prefix, cluster=True, label="Legend", labelloc="t", fontname=FONT, fontsize="12", color="#bbbbbb")
    rows: list[tuple[str, dict[str, Any]]] = [
        ("kernel action", {"color": SIDE_COLOURS["kernel"]}),
        ("user action", {"color": SIDE_COLOURS["user"]}),
    ]
    if adversary:
        rows.append(("adversary write (any value, any time)", {"color": SIDE_COLOURS["adversary"], "style": "dotted"}))
    if adversary and dashed:
        rows.append(("dashed: reachable only after adversarial writes", {"color": "#555555", "style": "dashed"}))
    if diff:
        rows += [(f"+ thick orange: only in {diff[1]}", {"color": DIFF_ADDED, "penwidth": "3.5"}),
                 (f"- grey: only in {diff[0]}", {"color": DIFF_REMOVED, "penwidth": "2.5"})]
    owner_list: list[str | None] = ["kernel", "user", None] if owners else []
    prev: str | None = None
    one_rank: list[str] = []
    for i, (text, attrs) in enumerate(rows):
        a, b = f"{prefix}_{i}a", f"{prefix}_{i}b"
        lg.node(a, shape="point", width="0.04", color="white")
        lg.node(b, shape="plaintext", label=text, fontsize="11")
        lg.edge(a, b, minlen="2", **attrs)
        row = [a, b]
        if i < len(owner_list) and not horizontal:
            n = f"{prefix}_own_{owner_list[i]}"
            lg.node(n, shape="box", style="rounded,filled", fillcolor=OWNER_FILLS[owner_list[i]], color="#555555",
                    label=f"status {OWNER_WORDS[owner_list[i]]}", fontsize="11")
            lg.edge(b, n, style="invis")
            row.append(n)
        if horizontal:
            if prev is not None:
                lg.edge(prev, a, style="invis")
            one_rank += row
            prev = b
            continue
        lg.rank_same(row)
        if prev is not None:
            lg.edge(prev, a, style="invis")
        prev = a
    if horizontal:
        for owner in owner_list:
            n = f"{prefix}_own_{owner}"
            lg.node(n, shape="box", style="rounded,filled", fillcolor=OWNER_FILLS[owner], color="#555555",
                    label=f"status {OWNER_WORDS[owner]}", fontsize="11")
            one_rank.append(n)
        lg.rank_same(one_rank)
    return lg


def frame_machine_dot(M: nx.MultiDiGraph, ring: str | Iterable[str], *, title: str | None = None) -> str:
    """DOT of one ring (or several, side by side) of a
    :func:`~nlmmap.spec.graphs.frame_status_machine`, with a legend."""
    rings = [ring] if isinstance(ring, str) else list(ring)
    for r in rings:
        if not any(n[0] == r for n in M.nodes):
            raise ValueError(f"the machine has no ring {r!r}; it has {sorted({n[0] for n in M.nodes})}")
    d = _base("_".join(rings) + "_status_machine", rankdir="TB", nodesep="0.35", ranksep="0.7")
    variant = _variant_text(M.graph.get("variant", {}), M.graph.get("system", ""))
    for r in rings:
        prefix = "" if len(rings) == 1 else r + "_"
        d.subgraph(_machine_cluster(M, r, prefix=prefix, title=title or f"{r.upper()} frame status ({variant})"))
    d.subgraph(_legend(adversary=any(e[2].get("user") == "any" for e in M.edges(data=True))))
    return d.source()


def frame_machines_side_by_side(base: nx.MultiDiGraph, other: nx.MultiDiGraph, diff: nx.MultiDiGraph, ring: str, *,
                                base_name: str, other_name: str) -> str:
    """DOT of one ring's machine under two variants, side by side; in each, the edges the other
    lacks are drawn thick (added by ``other_name``) or grey (removed by it). ``diff`` is
    :func:`~nlmmap.spec.graphs.machine_diff` of the two. Loops (an action leaving a frame's
    status as it was) are drawn only for the actions whose edges differ."""
    d = _base(f"{ring}_{other_name}_vs_{base_name}", rankdir="TB", nodesep="0.35", ranksep="0.7")
    marked_base = _marked(base, diff, keep="base")
    marked_other = _marked(other, diff, keep="other")
    d.subgraph(_machine_cluster(marked_base, ring, prefix="L_", title=f"{ring.upper()}: {base_name}"))
    d.subgraph(_machine_cluster(marked_other, ring, prefix="R_", title=f"{ring.upper()}: {other_name}"))
    d.subgraph(_legend(diff=(base_name, other_name)))
    return d.source()


def _marked(M: nx.MultiDiGraph, diff: nx.MultiDiGraph, keep: str) -> nx.MultiDiGraph:
    """``M`` with the edges only it has marked; loops are kept only for actions that differ."""
    differing = {k for _, _, k, d in diff.edges(keys=True, data=True) if d["presence"] != "both"}
    out = nx.MultiDiGraph(**M.graph)
    for n, d in M.nodes(data=True):
        out.add_node(n, **d)
    for u, v, k, d in M.edges(keys=True, data=True):
        if u == v and k not in differing:
            continue
        pres = diff.edges[u, v, k]["presence"]
        out.add_edge(u, v, key=k, **{**d, "presence": pres if pres == keep else "both"})
    return out


def _variant_text(variant: Mapping[str, bool], system: str) -> str:
    on = sorted(k for k, v in variant.items() if v and k != "queue_alloc_outside_lock")
    if system == "queue":
        return "queue, " + ("mainline" if variant.get("queue_alloc_outside_lock", True) else "queue_alloc_under_lock")
    return ", ".join(on) if on else "Linux 4.5"


def frame_machine_mermaid(M: nx.MultiDiGraph, ring: str, *, adversary: bool = False) -> str:
    """Mermaid ``stateDiagram-v2`` of one ring (well-behaved edges; with ``adversary`` also those
    reachable only after adversarial writes, collapsed as in the DOT drawing). ``[*]`` is a frame
    outside any ring (before set-up, after tear-down)."""
    owners = status_owners(M)
    lines = ["stateDiagram-v2", "    direction LR"]
    lines += [f"    classDef {o} fill:{OWNER_FILLS[o]},stroke:{SIDE_COLOURS[o]}" for o in ("kernel", "user")]
    shown = set()
    for e in _drawn_edges(M, ring)[0]:
        if e["style"] != "solid" and not adversary:
            continue
        if e["src"] == "any" or e["dst"] == "any":
            src = "ANY"
        else:
            src = "[*]" if e["src"] == "start" else e["src"]
        dst = "[*]" if e["dst"] == "end" else e["dst"]
        who = e["actor"] + ("" if e["style"] == "solid" else ", after adversarial writes")
        lines.append(f"    {_mermaid_id(src)} --> {_mermaid_id(dst)} : {', '.join(e['actions'])} ({who})")
        shown |= {src, dst}
    if "ANY" in shown:
        lines.insert(4, "    ANY : any status")
    for o in ("kernel", "user"):
        members = [s for s in _status_order(M, ring) if owners.get((ring, s)) == o and s in shown]
        if members:
            lines.append(f"    class {','.join(_mermaid_id(s) for s in members)} {o}")
    return "\n".join(lines) + "\n"


def _mermaid_id(s: str) -> str:
    return s if s == "[*]" else "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in s)


# --- quotients, queue graphs, traces --------------------------------------------------------------------
def quotient_dot(Q: nx.MultiDiGraph, *, title: str, show_loops: bool = False) -> str:
    """DOT of a :func:`~nlmmap.spec.graphs.quotient_by_status` graph: one box per class with its
    statuses and size, the initial class bold, classes holding a state that breaks an invariant
    red (when the graph was explored ``with_invariants``), with ``show_loops`` the actions that
    stay in a class. Edges back into an initial class without frames (ring tear-down, from
    nearly every class) are summed up in the title instead of drawn."""
    ids = {n: f"c{i}" for i, n in enumerate(Q.nodes)}
    initial = {n for n, a in Q.nodes(data=True) if a.get("initial")}
    back_to_initial = any(any(sts for sts in Q.nodes[n]["statuses"].values()) for n in initial)
    merged: dict[tuple[str, str, str], list[str]] = {}
    hidden: dict[str, set[str]] = {}
    for u, v, k, a in Q.edges(keys=True, data=True):
        if v in initial and not back_to_initial and u not in initial:
            hidden.setdefault(k, set()).add(u)
            continue
        merged.setdefault((ids[u], ids[v], a["actor"]), []).append(k)
    if hidden:
        title += "\n(not drawn: " + "; ".join(f"{k} from {len(src)} classes back to the initial one"
                                               for k, src in sorted(hidden.items())) + ")"
    d = _base("quotient", rankdir="TB", label=title, labelloc="t", fontsize="14", nodesep="0.35", ranksep="0.6")
    for n, a in Q.nodes(data=True):
        lines = [f"{ring}: {' '.join(s) if s else 'no ring'}" for ring, s in a["statuses"].items()]
        lines.append(f"({a['members']} state{'s' if a['members'] != 1 else ''})")
        if show_loops and a.get("loops"):
            lines.append("stays: " + ", ".join(a["loops"]))
        attrs: dict[str, Any] = {"shape": "box", "style": "rounded,filled", "fillcolor": "#f7f7f7",
                                 "color": "#555555"}
        if n in initial:
            lines.insert(0, "initial")
            attrs.update(penwidth="3", color="black")
        bad = a.get("violated") or {}
        if bad:
            lines += [f"{k} false in {c}" for k, c in sorted(bad.items())]
            attrs.update(fillcolor="#f8d7d3", color=SIDE_COLOURS["adversary"])
        attrs["label"] = "\n".join(lines)
        d.node(ids[n], **attrs)
    for (u, v, actor), acts in sorted(merged.items()):
        colour = SIDE_COLOURS.get(actor, "black")
        d.edge(u, v, color=colour, fontcolor=colour, label=" " + "\n".join(sorted(acts)) + " ")
    d.subgraph(_legend(adversary=False, owners=False, horizontal=True))
    return d.source()


def show_value(name: str, v: Any, names: Mapping[int, str] | None = None) -> str:
    """A variable's value as shown in tables and traces (status arrays by status name)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        if name.endswith("_status") and names is not None:
            return "[" + " ".join(names.get(x, str(x)) for x in v) + "]"
        return "[" + " ".join(show_value("", x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {show_value('', x)}" for k, x in sorted(v.items())) + "}"
    return str(v)


def trace_dot(T: nx.DiGraph, *, names: Mapping[int, str] | None = None, title: str | None = None) -> str:
    """DOT of a :func:`~nlmmap.spec.graphs.trace_graph`: the states top to bottom, each with the
    variables that change somewhere in the trace or that the broken property reads (``*``:
    changed by the step into it), the steps
    labelled with their action and parameters in the colour of their side, the violating state
    (or step) red and the broken property in the title."""
    prop = T.graph.get("property")
    variant = ", ".join(T.graph.get("variant") or []) or (
        "queue_alloc_outside_lock" if T.graph.get("system") == "queue" else "Linux 4.5")
    head = title or (f"{T.graph.get('system')} ({variant}): {prop} broken "
                     f"({T.graph.get('kind')}, user={T.graph.get('user')})")
    if T.graph.get("formula"):
        head += f"\n{prop}: {T.graph['formula']}"
    d = _base("trace", rankdir="TB", label=head, labelloc="t", fontsize="14", nodesep="0.3", ranksep="0.45")
    moving = sorted({k for n in T.nodes for k in T.nodes[n]["changed"]} | set(T.graph.get("property_vars", ())))
    at = T.graph.get("violation_at")
    for n in sorted(T.nodes):
        a = T.nodes[n]
        lines = [f"state {n}" + (" (initial)" if n == 0 else "")]
        for k in moving:
            mark = "*" if k in a["changed"] else " "
            lines.append(f"{mark} {k} = {show_value(k, a['state'][k], names)}")
        attrs: dict[str, Any] = {"shape": "box", "style": "filled", "fillcolor": "#f7f7f7", "color": "#555555",
                                 "fontname": "Courier", "fontsize": "11"}
        if a["violated"]:
            lines.append("VIOLATED: " + ", ".join(a["violated"]))
        if n == at and T.graph.get("kind") != "step":
            attrs.update(fillcolor="#f8d7d3", color=SIDE_COLOURS["adversary"], penwidth="3")
        attrs["label"] = "\n".join(lines)
        d.node(f"s{n}", left=True, **attrs)
    for u, v, a in sorted(T.edges(data=True)):
        colour = SIDE_COLOURS.get(a["actor"], "black")
        params = ", ".join(f"{k}={show_value(k, x)}" for k, x in a["params"].items())
        label = f" {a['action']}({params}) [{a['actor']}]"
        attrs = {"color": colour, "fontcolor": colour, "label": label}
        if a["actor"] == "adversary":
            attrs.update(style="dotted", penwidth="2")
        if a["violated"]:
            attrs.update(penwidth="3", label=label + "\n VIOLATES " + ", ".join(a["violated"]))
        d.edge(f"s{u}", f"s{v}", **attrs)
    d.subgraph(_legend(adversary=True, owners=False, dashed=False, horizontal=True))
    return d.source()
