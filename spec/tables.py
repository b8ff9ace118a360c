"""State tables for people: counterexamples to induction (``nlmmap prove``) and traces
(``nlmmap bmc``, ``nlmmap replay``), both rendered here from the same cells.

What a cell shows comes from the system's declarations only (:class:`~nlmmap.spec.system.StateVar`
metadata), never from variable names: an array indexed by a ring's frames (``index=``) is a list
over ``[0, size)`` of that state; an array indexed by unbounded integers (packet ids, CPUs) shows
the indices in play that are set, ``{1,2}`` or ``{0:7}``; values with names (``values=``, e.g.
frame statuses) print by name; booleans print ``T``/``F`` inside lists and ``true``/``false``
alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .system import System

__all__ = ["Column", "layout", "param_layout", "cell", "cti_table", "trace_table"]


@dataclass(frozen=True)
class Column:
    """How one variable is shown: its sort, the size variable indexing it (arrays of a ring's
    frames), and the names of its values."""

    name: str
    sort: str
    index: str | None = None
    values: Mapping[int, str] = field(default_factory=dict)


def layout(system: System) -> dict[str, Column]:
    """The column of every constant and state variable of ``system``, in declaration order."""
    return {v.name: Column(v.name, v.sort, v.index, v.value_names) for v in system.constants + system.state}


def param_layout(system: System) -> dict[tuple[str, str], Column]:
    """``(action, parameter) -> column`` of the array a parameter is stored into, when that array's
    values have names (``write_status(v=SKIP)`` rather than ``v=4``)."""
    from .expr import Var
    from .system import Store

    cols = layout(system)
    out: dict[tuple[str, str], Column] = {}
    for a in system.actions:
        names = {p.name for p in a.params}
        for u in a.updates:
            if isinstance(u, Store) and isinstance(u.value, Var) and u.value.name in names:
                c = cols.get(u.array)
                if c is not None and c.values:
                    out[(a.name, u.value.name)] = c
    return out


def _scalar(col: Column | None, v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if col is not None and isinstance(v, int) and v in col.values:
        return col.values[v]
    return str(v)


def _item(col: Column | None, v: Any) -> str:
    if isinstance(v, bool):
        return "T" if v else "F"
    return _scalar(col, v)


def cell(col: Column | None, value: Any, state: Mapping[str, Any] | None = None) -> str:
    """The text of ``value`` of variable ``col`` in ``state`` (which gives the ring size of an
    array indexed by frames; without it every index given is shown)."""
    if not isinstance(value, Mapping):
        return _scalar(col, value)
    keys = sorted(value)
    if col is not None and col.index is not None:
        size = (state or {}).get(col.index)
        if isinstance(size, int) and not isinstance(size, bool):
            keys = [k for k in keys if 0 <= k < size]
        return "[" + " ".join(_item(col, value[k]) for k in keys) + "]"
    keys = [k for k in keys if value[k] not in (False, 0)]
    return "{" + ",".join(str(k) if value[k] is True else f"{k}:{_item(col, value[k])}" for k in keys) + "}"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(header)]
    fmt = lambda r: (indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()  # noqa: E731
    return [fmt(header)] + [fmt(r) for r in rows]


def cti_table(action: str, params: Mapping[str, Any], pre: Mapping[str, Any], post: Mapping[str, Any],
              columns: Mapping[str, Column]) -> str:
    """A counterexample to induction as a two-column table (pre, post); changed rows marked ``*``."""
    args = ", ".join(f"{k}={_scalar(None, v)}" for k, v in params.items())
    rows = []
    for n in pre:
        a, b = cell(columns.get(n), pre[n], pre), cell(columns.get(n), post[n], post)
        rows.append(["*" if a != b else " ", n, a, b])
    lines = [f"    counterexample to induction: {action}({args})"]
    lines += _grid([" ", "variable", "pre", "post"], rows, indent="    ")
    return "\n".join(lines)


def trace_table(states: Sequence[Mapping[str, Any]], actions: Sequence[str], picks: Sequence[Mapping[str, Any]],
                columns: Mapping[str, Column], params: Mapping[tuple[str, str], Column] | None = None) -> str:
    """A trace as a step table: the action taken (with its parameters, by value name where
    ``params`` gives one) and every variable whose cell changes somewhere along the trace."""
    params = params or {}
    names = [n for n in columns if states and n in states[0]]
    changing = [n for n in names if len({json.dumps(cell(columns[n], st[n], st)) for st in states}) > 1]
    rows = []
    for i, (st, a, p) in enumerate(zip(states, actions, picks, strict=True)):
        args = ", ".join(f"{k}={_scalar(params.get((a, k)), v)}" for k, v in p.items())
        rows.append([str(i), f"{a}({args})" if a != "init" else "init"]
                    + [cell(columns[n], st[n], st) for n in changing])
    return "\n".join(_grid(["step", "action", *changing], rows))
