"""Graphs of a transition system, read off its data: reachable states, the per-frame status machine,
quotients, traces and edge coverage.

Pure functions that return ``networkx`` graphs or plain data; nothing here draws (the drawing and
file formats live in :mod:`nlmmap.spec.diagram`, which imports this module and never the other
way round). Every graph is explored with the spec's own interpreter
(:func:`nlmmap.spec.system.enabled` and :func:`~nlmmap.spec.system.apply_action` on a
:class:`~nlmmap.spec.system.MapState`), so it can never drift from the spec.

Finite exploration needs finite domains. They are derived from the system's data
(:func:`param_domain_rules` states them): ring sizes are the caller's; a value written into a
status array ranges over the named statuses plus one value that is none of them ("any other
u32"); an integer parameter compared in a guard ranges from its lower bound to one past the
largest value it is compared with (sizes ``{0 .. cap + 1}``); an index into an unbounded array
takes two distinct values; a parameter that no guard ever reads (payload bytes) takes one value.
States are projected on the *relevant* variables (:func:`relevant_vars`: those read by a guard,
closed under the updates that write them), which is exact: ghost bookkeeping never changes what
can happen next. Counters (variables an update increments) are explored up to a bound; a
transition past it is cut and counted in the graph's ``cut`` attribute.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from .expr import Const, Count, Expr, Ite, Op, Quant, Select, Var, evaluate, free_vars, render
from .expr import _lift as _lift_expr
from .system import Action, Assign, DefaultArray, MapState, Param, Store, StoreRange, System, apply_action, enabled

__all__ = [
    "OTHER", "ABSENT", "ExploreError", "Analysis", "analyse", "relevant_vars", "ring_size_vars", "status_arrays",
    "param_domain_rules", "initial_states", "explore", "frame_status_machine", "frame_status_edges",
    "status_names",
]

#: Node name of "any other u32": a status word holding none of the named statuses.
OTHER = "OTHER"
#: Node name of a frame that is not part of a ring (before the ring is set up, after tear-down).
ABSENT = "ABSENT"

_MAX_RANGE = 64  # a bounded parameter with at most this many values is enumerated in full
_MAX_SPAN = 16  # a derived integer domain has at most this many values


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
            return f"{{{lo}, {lo} + 1}} (two distinct cells)"
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
    (``{"alloc": {"j": "[0, rx_frame_nr)", "size": "{0 .. max(rx_capacity) + 1}"}, ...}``)."""
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


# --- states ------------------------------------------------------------------------------------------
def _lift(x: Any) -> Expr | None:
    return None if x is None else _lift_expr(x)


def _conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, Op) and e.op == "and":
        return [c for a in e.args for c in _conjuncts(a)]
    if isinstance(e, Const) and e.value is True:
        return []
    return [e]


def initial_states(system: System, sizes: Mapping[str, tuple[int, ...]]) -> list[MapState]:
    """The initial states of ``system`` for the ring sizes asked: its ``init`` solved conjunct by
    conjunct (``x = c``, ``x``, ``not x``, ``x >= c``, and ``forall k: a[k] = c`` over arrays);
    a ring-size variable that ``init`` only bounds takes each size in ``sizes``."""
    an = analyse(system)
    fixed: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    free_sizes: list[str] = []
    for c in _conjuncts(system.init):
        if isinstance(c, Op) and c.op == "==" and isinstance(c.args[0], Var) and isinstance(c.args[1], Const):
            fixed[c.args[0].name] = c.args[1].value
        elif isinstance(c, Var):
            fixed[c.name] = True
        elif isinstance(c, Op) and c.op == "not" and isinstance(c.args[0], Var):
            fixed[c.args[0].name] = False
        elif isinstance(c, Op) and c.op == "<=" and isinstance(c.args[0], Const) and isinstance(c.args[1], Var):
            name = c.args[1].name
            if name in an.sizes:
                free_sizes.append(name)
            else:
                fixed.setdefault(name, c.args[0].value)
        elif isinstance(c, Quant) and c.kind == "forall":
            for b in _conjuncts(c.body):
                if isinstance(b, Op) and b.op == "==" and isinstance(b.args[0], Select) \
                        and isinstance(b.args[1], Const) and isinstance(b.args[0].array, Var):
                    defaults[b.args[0].array.name] = b.args[1].value
                elif isinstance(b, Op) and b.op == "not" and isinstance(b.args[0], Select) \
                        and isinstance(b.args[0].array, Var):
                    defaults[b.args[0].array.name] = False
                else:
                    raise ExploreError(f"system {system.name}: cannot build an initial state from {render(c)}")
        else:
            raise ExploreError(f"system {system.name}: cannot build an initial state from the conjunct "
                               f"{render(c)} of init (supported: x = c, x, not x, x >= c, forall k: a[k] = c)")
    out = []
    choices = [[(n, s) for s in sizes.get(n, ())] for n in free_sizes]
    for combo in itertools.product(*choices):
        values: dict[str, Any] = {}
        for v in system.constants + system.state:
            if v.sort.endswith("array"):
                values[v.name] = DefaultArray(defaults.get(v.name, False if v.sort == "bool_array" else 0))
            else:
                values[v.name] = fixed.get(v.name, False if v.sort == "bool" else 0)
        values.update(dict(combo))
        st = MapState(values)
        for c in _conjuncts(system.init):
            try:
                ok = evaluate(c, st.__getitem__)
            except ValueError:  # a quantifier over a huge range: solved structurally above
                continue
            if not ok:
                raise ExploreError(f"system {system.name}: the initial state built does not satisfy {render(c)}")
        out.append(st)
    return out


def _key(an: Analysis, st: Any) -> tuple:
    out = []
    for name in an.relevant:
        x = st[name]
        if isinstance(x, dict):
            n = an.indexed_by.get(name)
            if n is not None:
                out.append(tuple(x[k] for k in range(st[n])))
            else:
                d = getattr(x, "default", None)
                out.append((d, tuple(sorted((k, v) for k, v in x.items() if v != d))))
        else:
            out.append(x)
    return tuple(out)


def plain_state(an: Analysis, st: Any) -> dict[str, Any]:
    """The relevant part of a concrete state as plain data (arrays over their live indices as
    lists, other arrays as ``{index: value}`` of the entries off their default)."""
    out: dict[str, Any] = {}
    for name in an.relevant:
        x = st[name]
        if isinstance(x, dict):
            n = an.indexed_by.get(name)
            if n is not None:
                out[name] = [x[k] for k in range(st[n])]
            else:
                d = getattr(x, "default", None)
                out[name] = {k: v for k, v in sorted(x.items()) if v != d}
        else:
            out[name] = x
    return out


def _in_scope(an: Analysis, st: Any, bound: int) -> bool:
    for name in an.counters:
        x = st[name]
        if isinstance(x, dict):
            n = an.indexed_by.get(name)
            vals = [x[k] for k in range(st[n])] if n is not None else list(x.values())
            if any(abs(v) > bound for v in vals):
                return False
        elif abs(x) > bound:
            return False
    return True


def _copy(st: MapState) -> MapState:
    return MapState(dict(st), st.defaults)


# --- exploration ---------------------------------------------------------------------------------
def explore(system: System, *, sizes: Mapping[str, Iterable[int]] | None = None, counter_bound: int | None = None,
            actions: Iterable[str] | None = None, actors: Iterable[str] | None = None,
            focus: Iterable[str] | None = None, max_states: int = 200_000) -> nx.MultiDiGraph:
    """The reachable state graph of ``system`` in a finite scope, explored breadth-first with the
    spec's interpreter.

    Parameters
    ----------
    system : System
        The transition system (e.g. ``socket_system(variant)``).
    sizes : mapping, optional
        Ring sizes per ring-size variable (:func:`ring_size_vars`), e.g. ``{"rx_frame_nr": [3],
        "tx_frame_nr": [2]}``; default 2 frames for each. An empty list keeps that ring unset.
    counter_bound : int, optional
        Counters (variables an update increments: pending, queued messages, mappings, ...) are
        explored up to this value (default: the largest ring size); a transition beyond is cut.
    actions, actors : iterable of str, optional
        Only these actions (by name) and/or actors (``kernel``, ``user``, ``adversary``) are taken.
    focus : iterable of str, optional
        Explore the cone of these state variables only (:func:`relevant_vars`): states are
        projected on it; an action that writes none of it is taken only if its guard reads a
        status array and nothing outside the cone (it is then a loop: ``copy_full``).
    max_states : int
        An :class:`ExploreError` is raised past this many states.

    Returns
    -------
    networkx.MultiDiGraph
        Nodes ``0, 1, ...`` in breadth-first order with ``state`` (the relevant variables as
        plain data, :func:`relevant_vars`) and ``initial``; one edge per transition with
        ``action``, ``actor`` and ``params`` (keyed ``"action(p=v, ...)"``). ``G.graph`` holds
        ``system``, ``variant``, ``sizes``, ``counter_bound``, ``cut`` (transitions out of scope)
        and ``domains`` (each parameter's domain rule).

    Examples
    --------
    >>> from nlmmap.spec.protocol import queue_system
    >>> G = explore(queue_system(), sizes={"rx_frame_nr": [1]})
    >>> G.nodes[0]["initial"], G.graph["sizes"]
    (True, {'rx_frame_nr': [1]})
    """
    an = analyse(system, focus)
    scope = {n: sorted(set(sizes[n])) if sizes and n in sizes else [2] for n in an.sizes}
    if sizes:
        unknown = set(sizes) - set(an.sizes)
        if unknown:
            raise ExploreError(f"system {system.name} has no ring size {sorted(unknown)}; its ring sizes are "
                               f"{list(an.sizes)}")
    if any(s < 1 for v in scope.values() for s in v):
        raise ExploreError(f"ring sizes must be >= 1, got {scope}")
    bound = counter_bound if counter_bound is not None else max([1] + [s for v in scope.values() for s in v])
    chosen = _select_actions(system, actions, actors)
    if focus is not None:
        cone = set(an.relevant) | {v.name for v in system.constants}
        chosen = [a for a in chosen if set(a.modifies) & cone or (
            set().union(*(free_vars(e) for e in _guard_exprs(a))) - {p.name for p in a.params} <= cone
            and free_vars(a.guard) & set(an.statuses))]
    G = nx.MultiDiGraph(system=system.name, variant=dict(sorted(system.variant.items())), sizes=scope,
                        counter_bound=bound, counters=list(an.counters), relevant=list(an.relevant),
                        actions=[a.name for a in chosen],
                        domains={a.name: {p.name: an.rules[(a.name, p.name)].text() for p in a.params}
                                 for a in chosen if a.params})
    ids: dict[tuple, int] = {}
    reps: list[MapState] = []
    todo: deque[int] = deque()
    for st in initial_states(system, scope):
        k = _key(an, st)
        if k not in ids:
            ids[k] = len(reps)
            reps.append(st)
            G.add_node(ids[k], state=plain_state(an, st), initial=True)
            todo.append(ids[k])
    cut = 0
    while todo:
        sid = todo.popleft()
        st = reps[sid]
        for a in chosen:
            for params in _param_choices(an, a, st, scope):
                if not enabled(a, st, params):
                    continue
                nxt = _copy(st)
                apply_action(a, nxt, params)
                if not _in_scope(an, nxt, bound):
                    cut += 1
                    continue
                k = _key(an, nxt)
                tid = ids.get(k)
                if tid is None:
                    if len(reps) >= max_states:
                        raise ExploreError(f"more than {max_states} states: choose smaller ring sizes or "
                                           f"counter bound, or raise max_states")
                    tid = ids[k] = len(reps)
                    reps.append(nxt)
                    G.add_node(tid, state=plain_state(an, nxt), initial=False)
                    todo.append(tid)
                label = a.name + ("(" + ", ".join(f"{n}={_show(v)}" for n, v in params.items()) + ")"
                                  if params else "")
                G.add_edge(sid, tid, key=label, action=a.name, actor=a.actor, params=dict(params))
    G.graph["cut"] = cut
    return G


def _show(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _select_actions(system: System, actions: Iterable[str] | None, actors: Iterable[str] | None) -> list[Action]:
    names = None if actions is None else set(actions)
    who = None if actors is None else set(actors)
    if names is not None:
        unknown = names - {a.name for a in system.actions}
        if unknown:
            raise ExploreError(f"system {system.name} has no action {sorted(unknown)}")
    if who is not None:
        unknown = who - {a.actor for a in system.actions}
        if unknown:
            raise ExploreError(f"system {system.name} has no actor {sorted(unknown)}; its actors are "
                               f"{sorted({a.actor for a in system.actions})}")
    return [a for a in system.actions if (names is None or a.name in names) and (who is None or a.actor in who)]


def _param_choices(an: Analysis, a: Action, st: Any, scope: Mapping[str, list[int]]) -> Iterator[dict[str, Any]]:
    if not a.params:
        yield {}
        return
    look = st.__getitem__
    doms = [_domain(an, an.rules[(a.name, p.name)], look, scope) for p in a.params]
    for combo in itertools.product(*doms):
        yield dict(zip((p.name for p in a.params), combo, strict=True))


# --- the per-frame status machine --------------------------------------------------------------------
def _status_of(an: Analysis, names: Mapping[int, str], st: Mapping[str, Any], array: str, f: int) -> str:
    n = an.indexed_by.get(array)
    if n is not None and f >= st[n]:
        return ABSENT
    return names.get(st[array][f], OTHER)


def _designated(system: System, a: Action, array: str) -> list[Expr]:
    """The frames of ``array`` that ``a`` is taken on: the indices it stores at, and those its
    guard reads outside any quantifier (``j`` for ``alloc_full``, ``rx_head`` for ``copy_full``)."""
    out: dict[str, Expr] = {}
    for u in a.updates:
        if isinstance(u, Store) and u.array == array:
            out.setdefault(render(u.index), u.index)
    names = {v.name for v in system.state + system.constants} | {p.name for p in a.params}
    for x in _walk(a.guard):
        if isinstance(x, Select) and isinstance(x.array, Var) and x.array.name == array \
                and free_vars(x.index) <= names:
            out.setdefault(render(x.index), x.index)
    return [out[k] for k in sorted(out)]


def _frame_changes(an: Analysis, G: nx.MultiDiGraph, names: Mapping[int, str],
                   loops: bool) -> set[tuple[str, str, str, str]]:
    out: set[tuple[str, str, str, str]] = set()
    by_name = {a.name: a for a in an.system.actions}
    designated: dict[tuple[str, str], list[Expr]] = {}
    for u, v, d in G.edges(data=True):
        su, sv = G.nodes[u]["state"], G.nodes[v]["state"]
        for array, ring in an.statuses.items():
            n = an.indexed_by.get(array)
            width = max(su[n], sv[n]) if n is not None else len(su[array])
            for f in range(width):
                before, after = _status_of(an, names, su, array, f), _status_of(an, names, sv, array, f)
                if before != after:
                    out.add((ring, before, after, d["action"]))
            if not loops:
                continue
            key = (d["action"], array)
            if key not in designated:
                designated[key] = _designated(an.system, by_name[d["action"]], array)
            params = d["params"]
            for idx in designated[key]:
                f = evaluate(idx, lambda name, params=params, su=su: params[name] if name in params else su[name])
                if 0 <= f < width:
                    before, after = _status_of(an, names, su, array, f), _status_of(an, names, sv, array, f)
                    if before == after:
                        out.add((ring, before, after, d["action"]))
    return out


def frame_status_machine(system: System, *, actions: Iterable[str] | None = None,
                         actors: Iterable[str] | None = None, frames: int = 2,
                         loops: bool = False) -> nx.MultiDiGraph:
    """The per-frame status machine of ``system``: which change of one frame's status word each
    action can make in a reachable state, for each ring.

    Derived from the spec's data, never listed by hand: each ring's status array is explored on
    its own (:func:`explore` on the cone of that array, ``frames`` frames, the other rings left
    unset), once with every allowed
    action and once without the adversary; every transition that changes the status of a frame
    (or brings a frame into or out of a ring) gives an edge. A frame's status is its status
    word by name (:func:`status_names`), :data:`OTHER` for any other value (the adversary may
    write any u32), or :data:`ABSENT` when the frame is not in a ring.

    Parameters
    ----------
    system : System
        The transition system (``socket_system(variant)``, ``queue_system(variant)``).
    actions, actors : iterable of str, optional
        Explore with only these actions (names) and/or actors (``kernel``, ``user``,
        ``adversary``), e.g. the actions a conformance target's features allow; reachability is
        recomputed, so an edge that needs an excluded action to be reachable disappears.
    frames : int
        Frames per ring in the exploration (default 2).
    loops : bool
        Also give a loop edge when an action is taken on a frame (the frame it stores at or its
        guard reads: its frame parameter or the cursor) and leaves its status as it was, such as
        ``alloc_full`` on a frame that is not UNUSED or ``tx_reject`` on a VALID frame.

    Returns
    -------
    networkx.MultiDiGraph
        Nodes ``(ring, status)`` with attributes ``ring``, ``status`` and ``value`` (the status
        word, ``None`` for OTHER and ABSENT). Edges keyed by action name, with ``action``,
        ``actor`` (kernel, user or adversary), ``ring``, ``section`` (fact sheet) and ``user``:
        ``"well-behaved"`` if the change is reachable without the adversary, else ``"any"``
        (reachable only after adversarial writes). ``G.graph`` holds ``system``, ``variant``,
        ``frames`` and the explored state counts per ring.

    Examples
    --------
    >>> from nlmmap.spec.protocol import socket_system
    >>> M = frame_status_machine(socket_system())
    >>> M.edges[("rx", "UNUSED"), ("rx", "RESERVED"), "alloc"]["actor"]
    'kernel'
    >>> sorted(u[1] for u, v, k, d in M.edges(keys=True, data=True)
    ...        if k == "publish" and d["user"] == "well-behaved")
    ['RESERVED']
    """
    an = analyse(system)
    names = status_names(system)
    chosen = _select_actions(system, actions, actors)
    allowed = [a.name for a in chosen]
    honest = [a.name for a in chosen if a.actor != "adversary"]
    M = nx.MultiDiGraph(system=system.name, variant=dict(sorted(system.variant.items())), frames=frames,
                        loops=loops, actions=allowed, states={})
    rings = sorted(set(an.statuses.values()))
    for ring in rings:
        for value, name in list(names.items()) + [(None, OTHER), (None, ABSENT)]:
            M.add_node((ring, name), ring=ring, status=name, value=value)
    by_name = {a.name: a for a in system.actions}
    for array, ring in sorted(an.statuses.items()):
        size = an.indexed_by.get(array)
        scope = {n: ([frames] if n == size or size is None else []) for n in an.sizes}
        found: dict[str, set[tuple[str, str, str, str]]] = {}
        for label, acts in (("well-behaved", honest), ("any", allowed)):
            if label == "any" and acts == honest and "well-behaved" in found:
                found[label] = found["well-behaved"]
                continue
            G = explore(system, sizes=scope, actions=acts, focus=[array])
            M.graph["states"][f"{ring}/{label}"] = G.number_of_nodes()
            found[label] = {e for e in _frame_changes(an, G, names, loops) if e[0] == ring}
        for r, before, after, act in sorted(found["any"]):
            a = by_name[act]
            user = "well-behaved" if (r, before, after, act) in found["well-behaved"] else "any"
            M.add_edge((r, before), (r, after), key=act, action=act, actor=a.actor, ring=r, section=a.section,
                       user=user)
    for node in [n for n in M.nodes if M.degree(n) == 0]:
        M.remove_node(node)
    return M


def frame_status_edges(system: System, *, actions: Iterable[str] | None = None, actors: Iterable[str] | None = None,
                       frames: int = 2, loops: bool = False) -> frozenset[tuple[str, str, str, str]]:
    """The edges of :func:`frame_status_machine` as plain data: ``(ring, before, after, action)``
    (the conformance suite's coverage denominator, optionally restricted to the actions a target
    allows).

    >>> from nlmmap.spec.protocol import socket_system
    >>> ("tx", "VALID", "UNUSED", "tx_copy") in frame_status_edges(socket_system(), actors=["kernel", "user"])
    True
    """
    M = frame_status_machine(system, actions=actions, actors=actors, frames=frames, loops=loops)
    return frozenset((d["ring"], M.nodes[u]["status"], M.nodes[v]["status"], d["action"])
                     for u, v, d in M.edges(data=True))
