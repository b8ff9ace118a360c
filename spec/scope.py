"""The finite scope of a transition system, derived from its data: which variables matter, which
are ring sizes, status words and counters, and each action parameter's finite domain.

Finite exploration (:mod:`nlmmap.spec.explore`) needs finite domains; none is written by hand.
Ring sizes are the caller's; a value written into a status array ranges over the named statuses
plus one value that is none of them ("any other u32"); an integer parameter compared in a guard
ranges from its lower bound to one past the largest value it is compared with (sizes
``{0 .. cap + 1}``); an index into an unbounded array takes two distinct values; a parameter
compared only with other parameters takes its lowest value; one that no guard reads (payload
bytes) takes one value. :func:`param_domain_rules` states them in words.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .expr import Const, Count, Expr, Ite, Op, Quant, Select, Var, evaluate, free_vars, render
from .expr import _lift as _lift_expr
from .system import Action, Assign, Param, Store, StoreRange, System

__all__ = [
    "ExploreError", "Analysis", "analyse", "relevant_vars", "ring_size_vars", "status_arrays", "status_names",
    "param_domain_rules",
]

_MAX_RANGE = 64  # a bounded parameter with at most this many values is enumerated in full
_MAX_SPAN = 16  # a derived integer domain has at most this many values


def _lift(x: Any) -> Expr | None:
    return None if x is None else _lift_expr(x)


def _conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, Op) and e.op == "and":
        return [c for a in e.args for c in _conjuncts(a)]
    if isinstance(e, Const) and e.value is True:
        return []
    return [e]


class ExploreError(ValueError):
    """The system cannot be explored as asked (bad scope, an initial condition not of the supported
    shape, too many states); the message names the problem and the fix."""


# --- static analysis of a system -------------------------------------------------------------------
def _walk(e: Expr) -> Iterator[Expr]:
    yield e
    if isinstance(e, Select):
        yield from _walk(e.array)
        yield from _walk(e.index)
    elif isinstance(e, Op):
        for a in e.args:
            yield from _walk(a)
    elif isinstance(e, Ite):
        yield from _walk(e.cond)
        yield from _walk(e.then)
        yield from _walk(e.other)
    elif isinstance(e, (Quant, Count)):
        yield from _walk(e.lo)
        yield from _walk(e.hi)
        yield from _walk(e.body)


def _target(u: Any) -> str:
    return u.var if isinstance(u, Assign) else u.array


def _reads(u: Any) -> set[str]:
    if isinstance(u, Assign):
        return free_vars(u.value)
    if isinstance(u, Store):
        return free_vars(u.index) | free_vars(u.value)
    return (free_vars(u.body) - {u.var}) | free_vars(u.lo) | free_vars(u.hi)


def _guard_exprs(a: Action) -> list[Expr]:
    out = [a.guard]
    for p in a.params:
        out += [b for b in (p.lo, p.hi) if b is not None]
    return out


def relevant_vars(system: System, focus: Iterable[str] | None = None) -> tuple[str, ...]:
    """State variables that decide what can happen next, in system order.

    Without ``focus``: those read by a guard or a parameter bound, closed under the updates that
    write them; the others (ghost bookkeeping such as message accounts) only feed invariants.
    With ``focus`` (e.g. the status arrays): the cone of those variables, i.e. the smallest set
    holding them, the guards and parameter bounds of every action that writes into the set, and
    what those writes read. Projecting states on either set is exact for the variables in it."""
    names = {v.name for v in system.state}
    if focus is None:
        keep: set[str] = set()
        for a in system.actions:
            for e in _guard_exprs(a):
                keep |= free_vars(e) & names
        keep |= set(status_arrays(system)) | (set(ring_size_vars(system)) & names)
    else:
        keep = set(focus)
        unknown = keep - names
        if unknown:
            raise ExploreError(f"system {system.name} has no state variable {sorted(unknown)}")
    while True:
        before = set(keep)
        for a in system.actions:
            params = {p.name for p in a.params}
            if focus is not None and set(a.modifies) & keep:
                for e in _guard_exprs(a):
                    keep |= (free_vars(e) - params) & names
            for u in a.updates:
                if _target(u) in keep:
                    keep |= (_reads(u) - params) & names
        if keep == before:
            return tuple(v.name for v in system.state if v.name in keep)


def ring_size_vars(system: System) -> tuple[str, ...]:
    """Integer variables that are ring sizes: the upper bound of an index parameter
    (``Param("j", 0, rx_frame_nr)``) or of a quantifier over an array."""
    ints = {v.name for v in system.state + system.constants if v.sort == "int"}
    found: set[str] = set()
    for a in system.actions:
        for p in a.params:
            if isinstance(p.hi, Var) and p.hi.name in ints:
                found.add(p.hi.name)
    for e in _all_exprs(system):
        for x in _walk(e):
            if isinstance(x, (Quant, Count)) and isinstance(x.hi, Var) and x.hi.name in ints:
                found.add(x.hi.name)
    return tuple(v.name for v in system.constants + system.state if v.name in found)


def _all_exprs(system: System) -> Iterator[Expr]:
    yield system.init
    for a in system.actions:
        yield from _guard_exprs(a)
    for inv in system.invariants:
        yield inv.formula


def _indexed_by(system: System) -> dict[str, str]:
    """Array -> the ring size variable its live indices are bounded by (``rx_status`` ->
    ``rx_frame_nr``): an index parameter ranging below the size selects or stores it, or a
    quantifier ranging below the size selects it at its bound variable."""
    sizes = set(ring_size_vars(system))
    arrays = {v.name for v in system.state if v.sort.endswith("array")}
    out: dict[str, str] = {}
    for a in system.actions:
        idx = {p.name: p.hi.name for p in a.params if isinstance(p.hi, Var) and p.hi.name in sizes}
        for u in a.updates:
            if isinstance(u, Store) and isinstance(u.index, Var) and u.index.name in idx:
                out.setdefault(u.array, idx[u.index.name])
        for e in _guard_exprs(a) + [x for u in a.updates if isinstance(u, (Assign, Store)) for x in
                                    ((u.value,) if isinstance(u, Assign) else (u.index, u.value))]:
            for x in _walk(e):
                if isinstance(x, Select) and isinstance(x.array, Var) and isinstance(x.index, Var) \
                        and x.index.name in idx:
                    out.setdefault(x.array.name, idx[x.index.name])
    for e in _all_exprs(system):
        for q in _walk(e):
            if isinstance(q, (Quant, Count)) and isinstance(q.hi, Var) and q.hi.name in sizes:
                for x in _walk(q.body):
                    if isinstance(x, Select) and isinstance(x.array, Var) and isinstance(x.index, Var) \
                            and x.index.name == q.var:
                        out.setdefault(x.array.name, q.hi.name)
    return {k: v for k, v in out.items() if k in arrays}


def status_arrays(system: System) -> dict[str, str]:
    """Status-word arrays and the ring each belongs to (``{"rx_status": "rx", "tx_status": "tx"}``).

    A state variable's ``holds == "status"`` metadata decides when the spec carries it; otherwise
    an integer array named ``<ring>_status``."""
    out = {}
    for v in system.state:
        holds = getattr(v, "holds", None)
        if v.sort == "int_array" and (holds == "status" or (holds is None and v.name.endswith("_status"))):
            out[v.name] = v.name[: -len("_status")] or v.name
    return out


def status_names(system: System) -> dict[int, str]:
    """The named status values of ``system`` (``{0: "UNUSED", ...}``): the spec's ``Status``
    enumeration (its ABI), in value order."""
    names = getattr(system, "status_names", None)
    if names:
        return dict(sorted(dict(names).items()))
    from .abi import Status

    return {int(s): s.name for s in Status}


def _counters(system: System, relevant: set[str]) -> tuple[str, ...]:
    """Relevant integer variables (scalars or arrays) that some update increments."""
    out = set()
    for a in system.actions:
        for u in a.updates:
            t = _target(u)
            if t not in relevant or isinstance(u, StoreRange):
                continue
            val = u.value
            if isinstance(val, Op) and val.op == "+" and any(
                    (isinstance(x, Var) and x.name == t) or (isinstance(x, Select) and isinstance(x.array, Var)
                                                             and x.array.name == t) for x in val.args):
                out.add(t)
    return tuple(v.name for v in system.state if v.name in out)


@dataclass(frozen=True)
class _Rule:
    """How one parameter's finite domain is derived (see :func:`param_domain_rules`)."""

    kind: str  # bool | size | status | range | partners | index | lowest | one
    lo: Expr | None
    hi: Expr | None
    size: str = ""
    partners: tuple[Expr, ...] = ()

    def text(self) -> str:
        lo = render(self.lo) if self.lo is not None else "0"
        if self.kind == "bool":
            return "{false, true}"
        if self.kind == "size":
            return f"the ring sizes chosen for {self.size}"
        if self.kind == "status":
            return "every named status, and one other value"
        if self.kind == "range":
            return f"[{lo}, {render(self.hi)})" if self.hi is not None else lo
        if self.kind == "partners":
            return f"{{{lo} .. max({', '.join(render(p) for p in self.partners)}) + 1}}"
        if self.kind == "index":
            nxt = str(self.lo.value + 1) if isinstance(self.lo, Const) else f"{lo} + 1"
            return f"{{{lo}, {nxt}}} (two distinct cells)"
        if self.kind == "lowest":
            return f"{{{lo}}} (compared only with other parameters, which range around it)"
        return f"{{{lo}}} (no guard reads it)"


@dataclass(frozen=True)
class Analysis:
    """What exploration needs to know about a system, derived once from its data."""

    system: System
    relevant: tuple[str, ...]
    sizes: tuple[str, ...]
    indexed_by: Mapping[str, str]
    statuses: Mapping[str, str]
    counters: tuple[str, ...]
    rules: Mapping[tuple[str, str], _Rule]
    sorts: Mapping[str, str]
    status_values: tuple[int, ...]
    other_value: int


def analyse(system: System, focus: Iterable[str] | None = None) -> Analysis:
    """Derive the :class:`Analysis` of ``system`` (relevant variables, or the cone of ``focus``;
    ring sizes, status arrays, counters, each parameter's domain rule)."""
    relevant = relevant_vars(system, focus)
    rel = set(relevant)
    sizes = ring_size_vars(system)
    statuses = status_arrays(system)
    named = tuple(sorted(status_names(system)))
    other = next(x for x in itertools.count(max(named, default=-1) + 1) if x not in named)
    rules = {(a.name, p.name): _rule(system, a, p, rel, set(sizes), set(statuses)) for a in system.actions
             for p in a.params}
    return Analysis(system, relevant, sizes, _indexed_by(system), statuses, _counters(system, rel), rules,
                    {v.name: v.sort for v in system.state + system.constants}, named, other)


def _rule(system: System, a: Action, p: Param, relevant: set[str], sizes: set[str], statuses: set[str]) -> _Rule:
    p = Param(p.name, _lift(p.lo), _lift(p.hi), p.sort, p.doc)
    if p.sort == "bool":
        return _Rule("bool", None, None)
    pv = p.name
    assigned = {u.var for u in a.updates if isinstance(u, Assign) and isinstance(u.value, Var) and u.value.name == pv}
    stored = {u.array for u in a.updates if isinstance(u, Store) and isinstance(u.value, Var) and u.value.name == pv}
    for s in sorted(assigned & sizes):
        return _Rule("size", p.lo, p.hi, size=s)
    if stored & statuses:
        return _Rule("status", p.lo, p.hi)
    if p.lo is not None and p.hi is not None and not (isinstance(p.hi, Const) and isinstance(p.lo, Const)
                                                      and p.hi.value - p.lo.value > _MAX_RANGE):
        return _Rule("range", p.lo, p.hi)
    in_guard = pv in free_vars(a.guard)
    reaches = in_guard or any(pv in _reads(u) and (_target(u) in relevant or (
        isinstance(u, Store) and pv in free_vars(u.index))) for u in a.updates)
    if not reaches:
        return _Rule("one", p.lo, p.hi)
    partners: dict[str, Expr] = {}
    state_names = {v.name for v in system.state + system.constants}
    for b in system.actions:
        for e in _guard_exprs(b):
            for x in _walk(e):
                if not (isinstance(x, Op) and x.op in ("<", "<=", "==", "!=")):
                    continue
                for side, other in ((x.args[0], x.args[1]), (x.args[1], x.args[0])):
                    hit = (b is a and isinstance(side, Var) and side.name == pv) \
                        or (isinstance(side, Select) and isinstance(side.array, Var) and side.array.name in stored)
                    if hit and free_vars(other) <= state_names:
                        partners.setdefault(render(other), other)
    if partners:
        return _Rule("partners", p.lo, p.hi, partners=tuple(partners[k] for k in sorted(partners)))
    as_index = any(isinstance(x, Select) and isinstance(x.index, Var) and x.index.name == pv
                   for e in [a.guard] + [v for u in a.updates for v in (
                       (u.value,) if isinstance(u, Assign) else (u.index, u.value) if isinstance(u, Store) else ())]
                   for x in _walk(e)) or any(isinstance(u, Store) and isinstance(u.index, Var) and u.index.name == pv
                                             for u in a.updates)
    return _Rule("index" if as_index else "lowest", p.lo, p.hi)


def param_domain_rules(system: System) -> dict[str, dict[str, str]]:
    """For each action and parameter, how its finite exploration domain is derived, in words
    (``{"alloc": {"j": "[0, rx_frame_nr)", "size": "{0 .. max(rx_capacity) + 1}"}, ...}``).

    >>> from nlmmap.spec.protocol import socket_system
    >>> rules = param_domain_rules(socket_system())
    >>> rules["alloc"]["size"], rules["write_status"]["v"], rules["fill_tx_frame"]["data"]
    ('{0 .. max(rx_capacity) + 1}', 'every named status, and one other value', '{0} (no guard reads it)')
    """
    an = analyse(system)
    return {a.name: {p.name: an.rules[(a.name, p.name)].text() for p in a.params} for a in system.actions}


def _domain(an: Analysis, rule: _Rule, look: Any, scope_sizes: Mapping[str, tuple[int, ...]]) -> list[Any]:
    if rule.kind == "bool":
        return [False, True]
    lo = evaluate(rule.lo, look) if rule.lo is not None else 0
    hi = evaluate(rule.hi, look) if rule.hi is not None else None
    if rule.kind == "size":
        vals = list(scope_sizes.get(rule.size, ()))
    elif rule.kind == "status":
        vals = list(an.status_values) + [an.other_value]
    elif rule.kind == "range":
        vals = list(range(lo, hi))
    elif rule.kind == "partners":
        top = max(evaluate(e, look) for e in rule.partners)
        vals = list(range(lo, min(top + 2, lo + _MAX_SPAN)))
    elif rule.kind == "index":
        vals = [lo, lo + 1]
    else:
        vals = [lo]
    return [v for v in vals if v >= lo and (hi is None or v < hi)]
