"""Markdown tables generated from the spec: the actions (side, parameters and their exploration
domains, guard, updates, fact-sheet section) and the properties (what each protects, the users
it holds for, the proof obligations that prove it, the history switch known to break it).

Pure text from the spec's data; :mod:`nlmmap.spec.docs` puts the tables in ``docs/generated``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .expr import Const, _lift, render
from .scope import Analysis, analyse, param_domain_rules, with_status_names
from .system import Action, Assign, Store, StoreRange, System

__all__ = ["md_table", "render_update", "actions_table", "invariants_table", "step_properties_table",
           "obligations_of", "frame_edges_table"]


def md_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """A Markdown table (``|`` in cells escaped, newlines folded)."""
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    head = list(header)
    out = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def render_update(u: Any, system: System | Analysis) -> str:
    """``x := e``, ``a[i] := e`` or ``a[k] := e for k in [lo, hi)``, with status names where a
    status word is written (pass :func:`~nlmmap.spec.scope.analyse`'s result to reuse it)."""
    an = system if isinstance(system, Analysis) else analyse(system)

    def val(target: str, e: Any) -> str:
        e = _lift(e)
        if target in an.statuses and isinstance(e, Const) and not isinstance(e.value, bool) and e.value in an.names:
            return an.names[e.value]
        return render(with_status_names(e, an))

    if isinstance(u, Assign):
        return f"{u.var} := {val(u.var, u.value)}"
    if isinstance(u, Store):
        return f"{u.array}[{render(u.index)}] := {val(u.array, u.value)}"
    if isinstance(u, StoreRange):
        return f"{u.array}[{u.var}] := {val(u.array, u.body)} for {u.var} in [{render(u.lo)}, {render(u.hi)})"
    raise TypeError(f"not an update: {u!r}")


def _code(s: str) -> str:
    return f"`{s}`" if s else ""


def actions_table(system: System) -> str:
    """One row per action, in the spec's order."""
    an = analyse(system)
    rules = param_domain_rules(system)
    rows = []
    for a in system.actions:
        params = "; ".join(f"`{p.name}`: {rules[a.name][p.name]}" for p in a.params)
        ups = "<br>".join(_code(render_update(u, an)) for u in a.updates) or "(nothing changes)"
        rows.append([f"`{a.name}`", a.actor, params, _code(render(with_status_names(a.guard, an))), ups, a.section,
                     a.doc])
    return md_table(["action", "side", "parameters (exploration domain)", "guard", "updates", "section", "what"], rows)


def _class_actions(system: System, user: str) -> list[Action]:
    """The actions present when proving a property for ``user`` (nlmmap prove's user classes:
    ``any`` has the adversary, ``well-behaved`` every other action)."""
    return [a for a in system.actions if user == "any" or a.actor != "adversary"]


def obligations_of(system: System, name: str) -> list[str]:
    """The obligation lines ``nlmmap prove`` discharges for property ``name`` of ``system``
    (``init establishes X``, ``a preserves X``, ``a satisfies P``), in its order."""
    for inv in system.invariants:
        if inv.name == name:
            return [f"init establishes {name}"] + [f"{a.name} preserves {name}"
                                                   for a in _class_actions(system, inv.user)]
    for sp in system.step_properties:
        if sp.name == name:
            return [f"{a} satisfies {name}" for a in sp.per_action]
    raise KeyError(f"system {system.name} has no property {name!r}")


def _broken_by(name: str, expected: Mapping[str, Iterable[str]]) -> str:
    return ", ".join(f"`{sw}`" for sw, props in sorted(expected.items()) if name in props) or "none known"


def invariants_table(system: System, expected: Mapping[str, Iterable[str]]) -> str:
    """One row per invariant: what it protects, users, obligations, the switch that breaks it."""
    rows = []
    for inv in system.invariants:
        obl = obligations_of(system, inv.name)
        kind = " (strengthening)" if inv.strengthening else ""
        rows.append([f"`{inv.name}`{kind}", inv.protects, f'`user="{inv.user}"`',
                     f"`{obl[0]}` and `... preserves {inv.name}` for each of its {len(obl) - 1} actions",
                     _broken_by(inv.name, expected), inv.section])
    return md_table(["invariant", "protects", "holds for", "proof obligations (nlmmap prove)", "broken by",
                     "section"], rows)


def step_properties_table(system: System, expected: Mapping[str, Iterable[str]]) -> str:
    """One row per step property."""
    rows = []
    for sp in system.step_properties:
        rows.append([f"`{sp.name}`", sp.protects, f'`user="{sp.user}"`',
                     ", ".join(f"`{o}`" for o in obligations_of(system, sp.name)), _broken_by(sp.name, expected),
                     sp.section])
    return md_table(["step property", "protects", "holds for", "proof obligations (nlmmap prove)", "broken by",
                     "section"], rows)


def frame_edges_table(machine: Any) -> str:
    """One row per edge of a frame status machine, sorted."""
    rows = []
    for u, v, k, d in sorted(machine.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2])):
        rows.append([d["ring"], u[1], v[1], f"`{k}`", d["actor"],
                     "well-behaved" if d["user"] == "well-behaved" else "only after adversarial writes",
                     d["section"]])
    return md_table(["ring", "before", "after", "action", "side", "reachable", "section"], rows)
