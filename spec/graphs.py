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

from .explore import explore, initial_states, plain_state, select_actions
from .expr import Expr, Select, Var, evaluate, free_vars, render
from .scope import (
    Analysis,
    ExploreError,
    _walk,
    analyse,
    param_domain_rules,
    relevant_vars,
    ring_size_vars,
    status_arrays,
    status_names,
)
from .system import Action, Store, System

__all__ = [
    "OTHER", "ABSENT", "ExploreError", "explore", "initial_states", "plain_state", "analyse", "relevant_vars",
    "ring_size_vars", "status_arrays", "status_names", "param_domain_rules", "frame_status_machine",
    "frame_status_edges",
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
