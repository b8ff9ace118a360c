"""Execution graphs of litmus counterexamples, as a text table and as DOT text.

Input is a :class:`nlmmap.spec.memory_model.Execution`: events per thread with the values they
wrote or read, the ``rf``/``co``/``fr`` edges, the shortest cycle of ``po | rf | co | fr`` (what makes
the outcome impossible under SC) and the cycle's ``po`` edges the model leaves unordered (where a
barrier would go). The DOT is written by this small emitter with every id and label quoted (the
project's convention); ``dot -Tpng`` draws it.
"""

from __future__ import annotations

from typing import Any

from .memory_model import Execution

__all__ = ["format_execution", "execution_dot"]


def _vname(ex: Execution, loc: str | None, v: Any) -> str:
    return ex.value_names.get(loc or "", {}).get(v, str(v))


def _event_text(ex: Execution, e: dict[str, Any]) -> str:
    if e["kind"] == "F":
        return f"F {'/'.join(e['ann'])}"
    return f"{e['kind']} {e['loc']} = {_vname(ex, e['loc'], e['value'])}"


def _edge_text(ex: Execution, pairs: tuple[tuple[str, str], ...], rel: str) -> str:
    thread = {e["id"]: e["thread"] for e in ex.events}
    return ", ".join(f"{a} -> {b} ({rel}{'i' if thread[a] == thread[b] else 'e'})" for a, b in pairs) or "-"


def format_execution(ex: Execution) -> str:
    """The execution as a table: initial values, one column per thread (event id, access, value,
    instruction, source operation), then the edges, the cycle and the unordered po edges."""
    init = [e for e in ex.events if e["thread"] == -1]
    cols: list[list[str]] = []
    for t, name in enumerate(ex.thread_names):
        rows = [name]
        evs = [e for e in ex.events if e["thread"] == t]
        w1 = max((len(_event_text(ex, e)) for e in evs), default=0)
        w2 = max((len(e["instr"]) for e in evs), default=0)
        for e in evs:
            rows.append(f"{e['id']:<3}{_event_text(ex, e):<{w1}}  {e['instr']:<{w2}}  {e['src']}".rstrip())
        cols.append(rows)
    height = max(len(c) for c in cols)
    widths = [max(len(r) for r in c) for c in cols]
    lines = [f"{ex.program} under {ex.model}: {ex.condition}",
             "  initial: " + ", ".join(f"{e['loc']} = {_vname(ex, e['loc'], e['value'])}" for e in init)]
    for i in range(height):
        cells = [(c[i] if i < len(c) else "").ljust(w) for c, w in zip(cols, widths, strict=True)]
        lines.append(("  " + " | ".join(cells)).rstrip())
    lines.append("  rf: " + _edge_text(ex, ex.rf, "rf"))
    lines.append("  co: " + _edge_text(ex, ex.co, "co") + "  (initial writes first)")
    lines.append("  fr: " + _edge_text(ex, ex.fr, "fr"))
    if ex.ctrl:
        lines.append("  ctrl: " + ", ".join(f"{a} -> {b}" for a, b in ex.ctrl))
    if ex.cycle:
        lines.append("  cycle: " + ex.cycle[0][0] + "".join(f" -{rel}-> {b}" for _a, rel, b in ex.cycle))
    by_id = {e["id"]: e for e in ex.events}
    if ex.unordered:
        what = "; ".join(f"{a} -po-> {b} ({_event_text(ex, by_id[a])} before {_event_text(ex, by_id[b])})"
                         for a, b in ex.unordered)
        lines.append(f"  not ordered by {ex.model}: {what}")
    return "\n".join(lines)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_COLORS = {"po": "black", "rf": "red", "co": "blue", "fr": "darkorange"}


def execution_dot(ex: Execution) -> str:
    """DOT text: a cluster per thread (and one for the initial state), ``po`` in black, ``rf`` red,
    ``co`` blue, ``fr`` orange; the cycle's edges bold, its unordered ``po`` edges dashed."""
    cyc = {(a, rel[:2], b) for a, rel, b in ex.cycle}
    unordered = set(ex.unordered)
    thread = {e["id"]: e["thread"] for e in ex.events}
    out = [f"digraph {_q(ex.program + ' under ' + ex.model)} {{",
           f"  label={_q(ex.program + ' under ' + ex.model + ': ' + ex.condition)};",
           '  labelloc="t";', '  fontname="monospace";', '  node [shape="box", fontname="monospace"];',
           '  edge [fontname="monospace"];']
    groups = [(-1, "initial state")] + list(enumerate(ex.thread_names))
    for t, name in groups:
        evs = [e for e in ex.events if e["thread"] == t]
        if not evs:
            continue
        out.append(f"  subgraph {_q(f'cluster_{t + 1}')} {{")
        out.append(f"    label={_q(name)};")
        for e in evs:
            label = f"{e['id']}: {_event_text(ex, e)}"
            if e["instr"] and e["instr"] != "init":
                label += f"\n{e['instr']}"
            out.append(f"    {_q(e['id'])} [label={_q(label)}];")
        out.append("  }")

    def edge(a: str, b: str, rel: str) -> None:
        name = rel if rel == "po" else rel + ("i" if thread[a] == thread[b] else "e")
        attrs = [f"label={_q(name)}", f"color={_q(_COLORS[rel])}", f"fontcolor={_q(_COLORS[rel])}"]
        if (a, rel, b) in cyc:
            attrs.append('penwidth="2.5"')
        if rel == "po" and (a, b) in unordered:
            attrs += ['style="dashed"', f"xlabel={_q('not ordered')}"]
        if rel != "po":
            attrs.append('constraint="false"')
        out.append(f"  {_q(a)} -> {_q(b)} [{', '.join(attrs)}];")

    shown_po: set[tuple[str, str]] = set()
    for t in range(len(ex.thread_names)):
        ids = [e["id"] for e in ex.events if e["thread"] == t]
        for a, b in zip(ids, ids[1:], strict=False):
            edge(a, b, "po")
            shown_po.add((a, b))
    for a, rel, b in ex.cycle:  # a po edge of the cycle that skips events (e.g. over a fence)
        if rel == "po" and (a, b) not in shown_po:
            edge(a, b, "po")
    for a, b in ex.rf:
        edge(a, b, "rf")
    for a, b in ex.co:
        edge(a, b, "co")
    for a, b in ex.fr:
        edge(a, b, "fr")
    for a, b in ex.ctrl:
        out.append(f'  {_q(a)} -> {_q(b)} [label="ctrl", color="gray50", fontcolor="gray50", style="dotted", '
                   'constraint="false"];')
    out.append("}")
    return "\n".join(out) + "\n"
