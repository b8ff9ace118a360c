"""Cone-of-influence slicing: a smaller system that over-approximates a big one for some properties.

To check a few properties deep (``nlmmap bmc --property ...``), keep only the state variables the
properties depend on, closed under data dependence (the right-hand sides of the updates that write
them), and the actions that write those variables. A guard conjunct that mentions a dropped
variable is dropped too, which only *adds* behaviours: the slice can do everything the full
system does to the kept variables, and more. So "no violation in the slice" implies "no violation
in the system"; a violation found in the slice may be spurious and must be confirmed on the full
system (:func:`nlmmap.spec.bmc.bmc` does that). The slice keeps the system's declarations (sizes,
indices, value names, scoped counters) for what it keeps.
"""

from __future__ import annotations

from dataclasses import replace

from .expr import Const, Expr, Op, and_, free_vars
from .system import Action, Assign, Param, Store, System

__all__ = ["slice_system", "conjuncts"]


def conjuncts(e: Expr) -> list[Expr]:
    """Top-level conjuncts of ``e``."""
    if isinstance(e, Op) and e.op == "and":
        out: list[Expr] = []
        for a in e.args:
            out += conjuncts(a)
        return out
    if isinstance(e, Const) and e.value is True:
        return []
    return [e]


def _update_deps(u) -> set[str]:
    if isinstance(u, Assign):
        return free_vars(u.value)
    if isinstance(u, Store):
        return free_vars(u.index) | free_vars(u.value)
    return (free_vars(u.body) - {u.var}) | free_vars(u.lo) | free_vars(u.hi)


def slice_system(system: System, properties: list[str]) -> System:
    """The cone-of-influence slice of ``system`` for the named invariants and step properties."""
    names = set(properties)
    known = {i.name for i in system.invariants} | {sp.name for sp in system.step_properties}
    unknown = names - known
    if unknown:
        raise KeyError(f"system {system.name} has no property {sorted(unknown)}")
    state_names = {v.name for v in system.state}
    keep: set[str] = set()
    step_actions: set[str] = set()
    for inv in system.invariants:
        if inv.name in names:
            keep |= free_vars(inv.formula) & state_names
    for sp in system.step_properties:
        if sp.name in names:
            for an, f in sp.per_action.items():
                step_actions.add(an)
                keep |= free_vars(f) & state_names
    while True:
        before = set(keep)
        for a in system.actions:
            params = {p.name for p in a.params}
            for u in a.updates:
                target = u.var if isinstance(u, Assign) else u.array
                if target in keep:
                    keep |= (_update_deps(u) - params) & state_names
            if a.name in step_actions:
                keep |= (free_vars(a.guard) - params) & state_names
        if keep == before:
            break
    allowed = keep | {v.name for v in system.constants}
    actions: list[Action] = []
    for a in system.actions:
        if a.name not in step_actions and not set(a.modifies) & keep:
            continue
        pnames = {p.name for p in a.params}
        ups = tuple(u for u in a.updates if (u.var if isinstance(u, Assign) else u.array) in keep)
        guard = and_(*[c for c in conjuncts(a.guard) if free_vars(c) <= allowed | pnames])
        params = tuple(p if all(b is None or free_vars(b) <= allowed for b in (p.lo, p.hi))
                       else Param(p.name, None, None, p.sort, p.doc) for p in a.params)
        actions.append(replace(a, params=params, guard=guard, updates=ups))
    kept_names = {a.name for a in actions}
    # a kept array whose ring size is dropped is shown over the indices in play
    state = tuple(v if v.index is None or v.index in allowed else replace(v, index=None)
                  for v in system.state if v.name in keep)
    return replace(
        system, constants=system.constants,
        assumptions=and_(*[c for c in conjuncts(system.assumptions) if free_vars(c) <= allowed]),
        state=state,
        init=and_(*[c for c in conjuncts(system.init) if free_vars(c) <= allowed]),
        actions=tuple(actions),
        invariants=tuple(i for i in system.invariants if i.name in names),
        step_properties=tuple(replace(sp, per_action={k: f for k, f in sp.per_action.items() if k in kept_names})
                              for sp in system.step_properties if sp.name in names),
        doc=f"cone-of-influence slice of {system.name} for {', '.join(sorted(names))}",
        proof_aids=(),  # the prover's, not the search's
        run_bound=system.run_bound if system.run_bound is not None and free_vars(system.run_bound) <= allowed
        else None,
        scoped_counters=None if system.scoped_counters is None else
        tuple(n for n in system.scoped_counters if n in keep),
    )
