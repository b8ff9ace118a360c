"""Graphs of a transition system, read off its data: the per-frame status machine, reachable state
graphs and their quotients, traces, variant differences and edge coverage.

Pure functions that return ``networkx`` graphs or plain data; nothing here draws (drawing and
file formats live in :mod:`nlmmap.spec.diagram`, which imports this module, never the reverse).
Every graph comes from exploring the spec with its own interpreter (:mod:`nlmmap.spec.explore`,
domains derived by :mod:`nlmmap.spec.scope`), so it can never drift from the spec and no edge is
ever listed by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from .explore import explore, initial_states, plain_state, select_actions, state_of
from .expr import evaluate, free_vars, render
from .scope import (
    Analysis,
    ExploreError,
    analyse,
    param_domain_rules,
    relevant_vars,
    ring_size_vars,
    status_arrays,
    status_names,
    with_status_names,
)
from .system import System

__all__ = [
    "OTHER", "ABSENT", "ExploreError", "explore", "initial_states", "plain_state", "analyse", "relevant_vars",
    "ring_size_vars", "status_arrays", "status_names", "param_domain_rules", "frame_status_machine",
    "frame_status_edges", "frame_changes", "status_owners", "machine_diff", "edge_coverage", "state_graph",
    "quotient_by_status", "class_name", "trace_graph", "state_of", "Edge", "without_loops",
]

#: Node name of "any other u32": a status word holding none of the named statuses.
OTHER = "OTHER"
#: Node name of a frame that is not part of a ring (before the ring is set up, after tear-down).
ABSENT = "ABSENT"


# --- the per-frame status machine --------------------------------------------------------------------
def _status_of(an: Analysis, names: Mapping[int, str], st: Mapping[str, Any], array: str, f: int) -> str:
    n = an.indexed_by.get(array)
    if n is not None and f >= st[n]:
        return ABSENT
    return names.get(st[array][f], OTHER)


Edge = tuple[str, str, str, str]


def frame_changes(system: System | Analysis, before: Mapping[str, Any], after: Mapping[str, Any], action: str,
                  params: Mapping[str, Any] | None = None, *, loops: bool = False) -> frozenset[Edge]:
    """The per-frame edges one step makes: ``(ring, status before, status after, action)`` for
    every frame whose status changes from ``before`` to ``after`` (states as mappings from
    variable names to values; arrays indexable by frame). With ``loops``, also the frame the
    action is taken on when its status stays (see :func:`frame_status_machine`). This is the one
    rule by which both the machine and an observer (the conformance suite) count edges; pass
    :func:`analyse`'s result instead of the system to reuse it across many steps.

    >>> from nlmmap.spec.protocol import socket_system
    >>> frame_changes(socket_system(), {"rx_frame_nr": 1, "rx_status": [0], "tx_frame_nr": 0, "tx_status": []},
    ...               {"rx_frame_nr": 1, "rx_status": [1], "tx_frame_nr": 0, "tx_status": []}, "alloc")
    frozenset({('rx', 'UNUSED', 'RESERVED', 'alloc')})
    """
    an = system if isinstance(system, Analysis) else analyse(system)
    names = an.names
    out: set[tuple[str, str, str, str]] = set()
    for array, ring in an.statuses.items():
        n = an.indexed_by.get(array)
        width = max(before[n], after[n]) if n is not None else len(before[array])
        for f in range(width):
            b, c = _status_of(an, names, before, array, f), _status_of(an, names, after, array, f)
            if b != c:
                out.add((ring, b, c, action))
        if not loops:
            continue
        p = dict(params or {})
        for idx in an.designated[(action, array)]:
            f = evaluate(idx, lambda name, p=p: p[name] if name in p else before[name])
            if 0 <= f < width:
                b, c = _status_of(an, names, before, array, f), _status_of(an, names, after, array, f)
                if b == c:
                    out.add((ring, b, c, action))
    return frozenset(out)


def _frame_changes(an: Analysis, G: nx.MultiDiGraph, loops: bool) -> set[tuple[str, str, str, str]]:
    """Every per-frame edge of the transitions of ``G`` (memoized on what :func:`frame_changes`
    reads: the status arrays, their sizes, and what the designated frame indices read)."""
    arrays = sorted(an.statuses)
    reads = sorted({an.indexed_by[a] for a in arrays if a in an.indexed_by} | set(arrays))
    index_reads = {(a.name): sorted(set().union(*(free_vars(e) for arr in arrays
                                                  for e in an.designated[(a.name, arr)])) - {p.name for p in a.params})
                   for a in an.system.actions}
    out: set[tuple[str, str, str, str]] = set()
    seen: set[tuple] = set()
    for u, v, d in G.edges(data=True):
        su, sv = G.nodes[u]["state"], G.nodes[v]["state"]
        act = d["action"]
        key = (act, tuple(d["params"].values()) if loops else (),
               tuple(_hashable(su[n]) for n in reads), tuple(_hashable(sv[n]) for n in reads),
               tuple(_hashable(su[n]) for n in index_reads[act]) if loops else ())
        if key in seen:
            continue
        seen.add(key)
        out |= frame_changes(an, su, sv, act, d["params"], loops=loops)
    return out


def _hashable(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(x)
    if isinstance(x, dict):
        return tuple(sorted(x.items()))
    return x


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
    chosen = select_actions(system, actions, actors)
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
            found[label] = {e for e in _frame_changes(an, G, loops) if e[0] == ring}
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
    """The edges of :func:`frame_status_machine` as plain data: the conformance suite's coverage
    denominator.

    Parameters
    ----------
    system : System
        The transition system.
    actions, actors : iterable of str, optional
        Only the actions a target's features allow (by name and/or side); reachability is
        recomputed under the restriction.
    frames : int
        Frames per ring explored (default 2; 1, 2 and 3 give the same edges for the socket).
    loops : bool
        Also the edges of actions taken on a frame that leave its status as it was.

    Returns
    -------
    frozenset of (ring, before, after, action)
        ``before``/``after`` are status names, :data:`OTHER` or :data:`ABSENT`. Count observed
        steps with :func:`frame_changes` and compare with :func:`edge_coverage`.

    >>> from nlmmap.spec.protocol import socket_system
    >>> ("tx", "VALID", "UNUSED", "tx_copy") in frame_status_edges(socket_system(), actors=["kernel", "user"])
    True
    """
    M = frame_status_machine(system, actions=actions, actors=actors, frames=frames, loops=loops)
    return frozenset((d["ring"], M.nodes[u]["status"], M.nodes[v]["status"], d["action"])
                     for u, v, d in M.edges(data=True))


def without_loops(M: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A machine built with ``loops=True`` as it would be without: the same, minus loop edges
    (loops only ever add edges whose status stays), minus nodes left without edges."""
    out = nx.MultiDiGraph(**{**M.graph, "loops": False})
    keep = {n for u, v in M.edges() if u != v for n in (u, v)}
    for n, d in M.nodes(data=True):
        if n in keep:
            out.add_node(n, **d)
    for u, v, k, d in M.edges(keys=True, data=True):
        if u != v:
            out.add_edge(u, v, key=k, **d)
    return out


def status_owners(machine: nx.MultiDiGraph) -> dict[tuple[str, str], str | None]:
    """Who owns a frame in each status of ``machine``: the side whose well-behaved actions move it
    on (ring setup and tear-down aside), e.g. ``("rx", "UNUSED") -> "kernel"`` (the kernel may
    claim it), ``("rx", "VALID") -> "user"``; ``None`` when no well-behaved action leaves it."""
    out: dict[tuple[str, str], str | None] = {}
    for node in machine.nodes:
        sides = sorted({d["actor"] for _, v, d in machine.out_edges(node, data=True)
                        if d["user"] == "well-behaved" and v != node and v[1] != ABSENT})
        out[node] = "+".join(sides) if sides else None
    return out


def machine_diff(base: nx.MultiDiGraph, other: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Two status machines (e.g. Linux 4.5 and a history switch) in one graph: every edge and node
    of either, with ``presence`` ``"both"``, ``"base"`` (removed by the switch) or ``"other"``
    (added by it); edge attributes are the other machine's where it has the edge."""
    D = nx.MultiDiGraph(base=dict(base.graph), other=dict(other.graph))
    for n in sorted(set(base.nodes) | set(other.nodes)):
        src = other.nodes[n] if n in other else base.nodes[n]
        D.add_node(n, **src, presence="both" if n in base and n in other else "base" if n in base else "other")
    keys = sorted({(u, v, k) for u, v, k in base.edges(keys=True)} | {(u, v, k) for u, v, k in other.edges(keys=True)})
    for u, v, k in keys:
        inb, ino = base.has_edge(u, v, k), other.has_edge(u, v, k)
        d = dict(other.edges[u, v, k] if ino else base.edges[u, v, k])
        if inb and ino and base.edges[u, v, k].get("user") != other.edges[u, v, k].get("user"):
            d["user_base"] = base.edges[u, v, k].get("user")
        D.add_edge(u, v, key=k, **d, presence="both" if inb and ino else "base" if inb else "other")
    return D


def edge_coverage(expected: Iterable[Edge], observed: Iterable[Edge]) -> dict[str, Any]:
    """Edge coverage as plain data: of the ``expected`` edges (a machine's
    :func:`frame_status_edges`), how many were ``observed`` (e.g. by :func:`frame_changes` over a
    run), which are missing, and which observed edges the machine does not have.

    >>> edge_coverage({("rx", "UNUSED", "RESERVED", "alloc"), ("rx", "RESERVED", "VALID", "publish")},
    ...               [("rx", "UNUSED", "RESERVED", "alloc")])["ratio"]
    0.5
    """
    exp, obs = set(expected), set(observed)
    hit = exp & obs
    return {"total": len(exp), "covered": len(hit), "ratio": len(hit) / len(exp) if exp else 1.0,
            "missing": sorted(exp - obs), "unexpected": sorted(obs - exp)}


# --- state graphs and their quotients ------------------------------------------------------------------
def state_graph(system: System, *, sizes: Mapping[str, Iterable[int]] | None = None, adversary: bool = False,
                rings_only: bool = True, counter_bound: int | None = None, with_invariants: bool = False,
                max_states: int = 500_000) -> nx.MultiDiGraph:
    """The reachable state graph of a small system (:func:`explore`): the kernel and a
    well-behaved user (and the adversary if ``adversary``), projected on the cone of the status
    arrays (``rings_only``: the rings' state, cursors, pending counts and mappings; the receive
    queue and error flags left out, exact for the rings) or on every relevant variable. With
    ``with_invariants`` the variables the invariants read are kept too, and each node carries
    ``violated``: the invariants false there (for the user class explored).

    >>> from nlmmap.spec.protocol import socket_system
    >>> G = state_graph(socket_system(), sizes={"rx_frame_nr": [1], "tx_frame_nr": [1]})
    >>> G.number_of_nodes() > 10, sum(d["initial"] for _, d in G.nodes(data=True))
    (True, 1)
    """
    actors = sorted({a.actor for a in system.actions if adversary or a.actor != "adversary"})
    focus: list[str] | None = list(status_arrays(system)) if rings_only else None
    if with_invariants:
        inv_vars = set().union(*(free_vars(i.formula) for i in system.invariants)) & {v.name for v in system.state}
        focus = sorted(set(focus if focus is not None else relevant_vars(system)) | inv_vars)
    G = explore(system, sizes=sizes, counter_bound=counter_bound, actors=actors, focus=focus, max_states=max_states)
    G.graph["adversary"] = adversary
    G.graph["rings_only"] = rings_only
    if with_invariants:
        from .system import violated_invariants

        user = "any" if adversary else "well-behaved"
        known = set(G.graph["relevant"])
        checked = [i for i in system.invariants if free_vars(i.formula) & {v.name for v in system.state} <= known]
        sub = _with_invariants(system, checked)
        for n in G.nodes:
            G.nodes[n]["violated"] = violated_invariants(sub, state_of(G, n), user=user)
        G.graph["invariants_checked"] = [i.name for i in checked]
    return G


def _with_invariants(system: System, invariants: list) -> System:
    from dataclasses import replace

    return replace(system, invariants=tuple(invariants))


def _status_tuple(an: Analysis, st: Mapping[str, Any], array: str) -> tuple[str, ...]:
    n = an.indexed_by.get(array)
    width = st[n] if n is not None else len(st[array])
    return tuple(an.names.get(st[array][f], OTHER) for f in range(width))


def class_name(statuses: Mapping[str, tuple[str, ...]]) -> str:
    """The name of a quotient class: ``"rx: UNUSED VALID | tx: -"`` (``-``: no ring)."""
    return " | ".join(f"{ring}: {' '.join(sts) if sts else '-'}" for ring, sts in statuses.items())


def quotient_by_status(G: nx.MultiDiGraph, system: System, *, rings: Iterable[str] | None = None) -> nx.MultiDiGraph:
    """The quotient of an explored graph by frame statuses only: states with the same status word
    in every frame of the chosen ``rings`` are one node (``class_name``), with ``statuses``,
    ``members`` (how many states), ``initial``, ``loops`` (actions that stay in the class) and
    ``violated`` (invariant -> how many member states break it, from :func:`state_graph`);
    one edge per action between two classes, with ``actor`` and ``count`` (transitions).

    >>> from nlmmap.spec.protocol import queue_system
    >>> Q = quotient_by_status(state_graph(queue_system(), sizes={"rx_frame_nr": [1]}), queue_system())
    >>> sorted(Q.nodes)
    ['rx: RESERVED', 'rx: UNUSED', 'rx: VALID']
    """
    an = analyse(system)
    arrays = [(a, r) for a, r in sorted(an.statuses.items(), key=lambda x: x[1])
              if rings is None or r in set(rings)]
    if rings is not None and set(rings) - {r for _, r in arrays}:
        raise ExploreError(f"system {system.name} has no ring {sorted(set(rings) - {r for _, r in arrays})}")
    cls: dict[Any, str] = {}
    Q = nx.MultiDiGraph(**{k: v for k, v in G.graph.items() if k not in ("domains",)}, quotient=[r for _, r in arrays])
    for n, d in G.nodes(data=True):
        sts = {r: _status_tuple(an, d["state"], a) for a, r in arrays}
        name = class_name(sts)
        cls[n] = name
        if name not in Q:
            Q.add_node(name, statuses={r: list(s) for r, s in sts.items()}, members=0, initial=False, loops=set(),
                       violated={})
        q = Q.nodes[name]
        q["members"] += 1
        q["initial"] |= bool(d.get("initial"))
        for inv in d.get("violated", ()):
            q["violated"][inv] = q["violated"].get(inv, 0) + 1
    counts: dict[tuple[str, str, str, str], int] = {}
    for u, nbrs in G.adjacency():
        cu = cls[u]
        for v, keyed in nbrs.items():
            cv = cls[v]
            for d in keyed.values():
                if cu == cv:
                    Q.nodes[cu]["loops"].add(d["action"])
                else:
                    k = (cu, cv, d["action"], d["actor"])
                    counts[k] = counts.get(k, 0) + 1
    for (cu, cv, action, actor), c in counts.items():
        Q.add_edge(cu, cv, key=action, action=action, actor=actor, count=c)
    for n in Q.nodes:
        Q.nodes[n]["loops"] = sorted(Q.nodes[n]["loops"])
    return _sorted_copy(Q)


def _sorted_copy(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """The same graph with nodes and edges inserted in sorted order (deterministic output)."""
    H = nx.MultiDiGraph(**G.graph)
    for n in sorted(G.nodes, key=repr):
        H.add_node(n, **G.nodes[n])
    for u, v, k in sorted(G.edges(keys=True), key=repr):
        H.add_edge(u, v, key=k, **G.edges[u, v, k])
    return H


# --- traces -------------------------------------------------------------------------------------------
def trace_graph(doc: Mapping[str, Any], *, system: System | None = None) -> nx.DiGraph:
    """An ITF trace (``nlmmap bmc --out``, a conformance failure) as a path graph: node ``i`` is
    state ``i`` (``state``: the variables, arrays as lists over each ring's frames; ``changed``:
    the variables the step into it changed; ``violated``: the invariants false there for the
    trace's user class), edge ``i -> i+1`` the action taken (``action``, ``actor``, ``params``,
    ``violated``: the step properties it breaks). ``G.graph`` carries the trace's ``property``,
    ``kind``, ``user``, ``system``, ``variant``, ``formula`` and ``property_vars`` (what the
    property says and reads) and ``violation_at`` (the first state, or step, where the property
    named in the trace breaks; None if it does not)."""
    from .itf import ACTION_KEY, PICKS_KEY, decode_value
    from .system import DefaultArray, MapState, violated_invariants, violated_step_properties

    meta = doc.get("#meta", {})
    if system is None:
        from .protocol import Variant, system_by_name

        system = system_by_name(str(meta.get("system", "socket")), Variant.from_names(list(meta.get("variant", []))))
    user = str(meta.get("user") or "any")
    an = analyse(system)
    defaults = meta.get("defaults", {})
    states = [decode_value(s) for s in doc.get("states", [])]
    if not states:
        raise ExploreError("the trace has no states")
    prop, kind = meta.get("invariant"), meta.get("kind")
    formula, reads = "", set()
    state_names = {v.name for v in system.state + system.constants}
    for inv in system.invariants:
        if inv.name == prop:
            formula, reads = render(with_status_names(inv.formula, an)), free_vars(inv.formula) & state_names
    for sp in system.step_properties:
        if sp.name == prop:
            formula = "; ".join(f"{a}: {render(with_status_names(f, an))}" for a, f in sorted(sp.per_action.items()))
            reads = set().union(*(free_vars(f) for f in sp.per_action.values())) & state_names
    T = nx.DiGraph(property=prop, kind=kind, user=user, system=system.name, variant=list(meta.get("variant", [])),
                   description=meta.get("description", ""), violation_at=None, formula=formula,
                   property_vars=sorted(reads))
    concrete = []
    for i, st in enumerate(states):
        values = {}
        for v in system.constants + system.state:
            if v.name not in st:
                raise ExploreError(f"trace state {i} has no variable {v.name!r} of system {system.name}")
            x = st[v.name]
            values[v.name] = DefaultArray(defaults.get(v.name, False if v.sort == "bool_array" else 0), x) \
                if v.sort.endswith("array") else x
        concrete.append(MapState(values))
    for i, st in enumerate(concrete):
        shown = _trace_state(an, st)
        prev = _trace_state(an, concrete[i - 1]) if i else shown
        bad = violated_invariants(system, st, user=user)
        T.add_node(i, state=shown, changed=sorted(k for k in shown if shown[k] != prev[k]) if i else [],
                   violated=bad)
        if prop in bad and kind != "step" and T.graph["violation_at"] is None:
            T.graph["violation_at"] = i
    for i in range(1, len(states)):
        raw = doc["states"][i]
        a = system.action(raw[ACTION_KEY])
        picks = decode_value(raw.get(PICKS_KEY, {}))
        bad = violated_step_properties(system, a, concrete[i - 1], picks, user=user)
        T.add_edge(i - 1, i, action=a.name, actor=a.actor, params=dict(sorted(picks.items())), violated=bad)
        if prop in bad and kind == "step" and T.graph["violation_at"] is None:
            T.graph["violation_at"] = i
    return T


def _trace_state(an: Analysis, st: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in an.system.constants + an.system.state:
        x = st[v.name]
        if isinstance(x, dict):
            n = an.indexed_by.get(v.name)
            if n is not None:
                out[v.name] = [x[k] for k in range(max(0, st[n]))]
            else:
                d = getattr(x, "default", None)
                out[v.name] = {k: y for k, y in sorted(x.items()) if y != d}
        else:
            out[v.name] = x
    return out
