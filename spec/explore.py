"""Reachable state graphs of a transition system in a finite scope, explored breadth-first with the
spec's own interpreter (:func:`nlmmap.spec.system.enabled` and
:func:`~nlmmap.spec.system.apply_action` on a :class:`~nlmmap.spec.system.MapState`), so a graph
can never drift from the spec.

Domains come from :mod:`nlmmap.spec.scope`. States are projected on the relevant variables (or
the cone of a focus, such as the status arrays), which is exact: ghost bookkeeping never changes
what can happen next. Counters (variables an update increments) are explored up to a bound; a
transition past it is cut and counted in the graph's ``cut`` attribute.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import networkx as nx

from .expr import Const, Op, Quant, Select, Var, evaluate, free_vars, render
from .scope import Analysis, ExploreError, _conjuncts, _domain, _guard_exprs, _reads, _target, analyse
from .system import Action, DefaultArray, MapState, System, apply_action, enabled

__all__ = ["explore", "initial_states", "plain_state", "select_actions"]


# --- states ------------------------------------------------------------------------------------------
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


def _canon(an: Analysis, name: str, x: Any, st: Any) -> Any:
    """A hashable value of variable ``name`` (arrays over their live indices, or their entries off
    the default when no ring size bounds them)."""
    if isinstance(x, dict):
        n = an.indexed_by.get(name)
        if n is not None:
            return tuple(x[k] for k in range(st[n]))
        d = getattr(x, "default", None)
        return (d, tuple(sorted((k, v) for k, v in x.items() if v != d)))
    if isinstance(x, list):
        return tuple(x)
    return x


def _key(an: Analysis, st: Any) -> tuple:
    return tuple(_canon(an, name, st[name], st) for name in an.relevant)


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


def _in_scope(an: Analysis, st: Any, bound: int, counters: Iterable[str] | None = None) -> bool:
    for name in an.counters if counters is None else counters:
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
    chosen = select_actions(system, actions, actors)
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
    pos = {name: i for i, name in enumerate(an.relevant)}
    rel = set(an.relevant)

    def positions(names: set[str]) -> tuple[int, ...]:
        return tuple(sorted(pos[n] for n in names & rel))

    # Memo tables: a guard's value and an action's writes to the relevant variables depend only on
    # the relevant variables they read (the relevant set is closed), so each is computed once per
    # distinct input by the spec's own enabled/apply_action.
    plan = []
    for a in chosen:
        pnames = {p.name for p in a.params}
        bounds = set().union(*(free_vars(e) for e in _guard_exprs(a)[1:]), *(
            free_vars(x) for p in a.params for x in an.rules[(a.name, p.name)].partners)) - pnames
        guard = set().union(*(free_vars(e) for e in _guard_exprs(a))) - pnames
        writes = [n for n in a.modifies if n in rel]
        # what the writes read, and the sizes that bound the arrays written (their live range)
        reads = set().union(*(_reads(u) for u in a.updates if _target(u) in rel)) - pnames
        reads |= set(writes) | {an.indexed_by[n] for n in writes if n in an.indexed_by}
        # the arrays whose live range changes when a ring size is written
        resized = [n for n in an.relevant if an.indexed_by.get(n) in writes and n not in writes]
        reads |= set(resized)
        counters = [n for n in writes + resized if n in an.counters]
        plan.append((a, positions(bounds), positions(guard), positions(reads), writes + resized, counters))
    choice_memo: dict[tuple, list[tuple[dict[str, Any], tuple, str]]] = {}
    guard_memo: dict[tuple, bool] = {}
    write_memo: dict[tuple, tuple[list[tuple[str, Any]], list[tuple[int, Any]], bool]] = {}
    ids: dict[tuple, int] = {}
    reps: list[MapState] = []
    keys: list[tuple] = []
    todo: deque[int] = deque()
    for st in initial_states(system, scope):
        k = _key(an, st)
        if k not in ids:
            ids[k] = len(reps)
            reps.append(st)
            keys.append(k)
            G.add_node(ids[k], state=plain_state(an, st), initial=True)
            todo.append(ids[k])
    cut = 0
    while todo:
        sid = todo.popleft()
        st, skey = reps[sid], keys[sid]
        for a, bpos, gpos, wpos, changed, counters in plan:
            ck = (a.name, tuple(skey[i] for i in bpos))
            choices = choice_memo.get(ck)
            if choices is None:
                choices = choice_memo[ck] = [
                    (params, tuple(params.values()), a.name + ("(" + ", ".join(
                        f"{n}={_show(v)}" for n, v in params.items()) + ")" if params else ""))
                    for params in _param_choices(an, a, st, scope)]
            for params, pv, label in choices:
                gk = (a.name, pv, tuple(skey[i] for i in gpos))
                ok = guard_memo.get(gk)
                if ok is None:
                    ok = guard_memo[gk] = enabled(a, st, params)
                if not ok:
                    continue
                wk = (a.name, pv, tuple(skey[i] for i in wpos))
                memo = write_memo.get(wk)
                if memo is None:
                    tmp = _copy(st)
                    apply_action(a, tmp, params)
                    memo = write_memo[wk] = ([(n, tmp[n]) for n in changed],
                                             [(pos[n], _canon(an, n, tmp[n], tmp)) for n in changed],
                                             _in_scope(an, tmp, bound, counters))
                delta, cdelta, inside = memo
                if not inside:
                    cut += 1
                    continue
                kl = list(skey)
                for i, c in cdelta:
                    kl[i] = c
                k = tuple(kl)
                tid = ids.get(k)
                if tid is None:
                    if len(reps) >= max_states:
                        raise ExploreError(f"more than {max_states} states: choose smaller ring sizes or "
                                           f"counter bound, or raise max_states")
                    nxt = _copy(st)
                    for n, val in delta:
                        nxt[n] = val
                    tid = ids[k] = len(reps)
                    reps.append(nxt)
                    keys.append(k)
                    G.add_node(tid, state=plain_state(an, nxt), initial=False)
                    todo.append(tid)
                G.add_edge(sid, tid, key=label, action=a.name, actor=a.actor, params=params)
    G.graph["cut"] = cut
    return G


def _show(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def select_actions(system: System, actions: Iterable[str] | None = None,
                   actors: Iterable[str] | None = None) -> list[Action]:
    """The actions of ``system`` named in ``actions`` and taken by ``actors`` (all if None), in
    system order; an unknown name is an :class:`ExploreError`."""
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
