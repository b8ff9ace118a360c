"""Counterexamples to induction: a z3 model of a failed obligation read back as a minimal table.

A CTI shows only the variables the goal, the guard and the updates mention (plus the ring sizes),
in a model made small first: the fewest frames, among models whose integers (ids, counters,
parameters) lie in ``[-16, 16]`` when there are such, so every index the counterexample needs
shows in its table. Which indices of an array are shown comes from the system's declarations:
``[0, size)`` for arrays indexed by a ring's frames, the integers in play for the others.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from .expr import Expr, free_vars
from .system import Action, System
from .tables import Column, cti_table, layout
from .z3enc import SymState, size_vars

__all__ = ["Cti", "make_cti", "minimize", "model_value", "state_values", "small_ints", "SMALL"]

#: Integers a CTI prefers (ids, counters, parameters in ``[-SMALL, SMALL]``), and the most frames shown.
SMALL = 16


@dataclass(frozen=True)
class Cti:
    """One counterexample to induction: the action and its parameters, the pre- and post-state
    (arrays as ``{index: value}`` over the indices shown); rendered by :meth:`text`."""

    action: str
    params: dict[str, Any]
    pre: dict[str, Any]
    post: dict[str, Any]
    columns: Mapping[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def text(self) -> str:
        """The two-column table (see :func:`nlmmap.spec.tables.cti_table`)."""
        return cti_table(self.action, self.params, self.pre, self.post, self.columns)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"params": self.params, "pre": self.pre, "post": self.post}


def model_value(m: z3.ModelRef, term: Any, sort: str, domain: Iterable[int] = ()) -> Any:
    """Python value of ``term`` in model ``m``: int, bool, or ``{index: value}`` over ``domain``."""
    if sort == "int":
        return m.eval(term, model_completion=True).as_long()
    if sort == "bool":
        return z3.is_true(m.eval(term, model_completion=True))
    out = {}
    for k in domain:
        v = m.eval(z3.Select(term, k), model_completion=True)
        out[k] = z3.is_true(v) if sort == "bool_array" else v.as_long()
    return out


def state_values(system: System, m: z3.ModelRef, st: SymState, names: Iterable[str],
                 domains: Mapping[str, list[int]]) -> dict[str, Any]:
    """Values of the variables ``names`` of ``st`` in ``m`` (arrays over ``domains[name]``)."""
    return {n: model_value(m, st[n], system.var(n).sort, domains.get(n, [])) for n in names}


def _array_domains(system: System, m: z3.ModelRef, states: list[SymState],
                   extra_ints: Iterable[Any] = ()) -> dict[str, list[int]]:
    """Indices worth showing for each array: ``[0, N)`` of the ring indexing it (the largest N over
    ``states``, at most :data:`SMALL`); for the others every integer in play."""
    sizes = {sv: min(SMALL, max(max(0, m.eval(s[sv], model_completion=True).as_long()) for s in states))
             for sv in size_vars(system)}
    small = [max(sizes.values(), default=0) - 1]
    points: set[int] = set()  # every integer in play, also when large: an index the action uses

    def note(x: Any) -> None:
        if z3.is_int_value(x):
            v = x.as_long()
            if 0 <= v <= SMALL:
                small.append(v)
            elif v > SMALL:
                points.add(v)

    for st in states:
        for v in system.state + system.constants:
            if v.sort == "int":
                note(m.eval(st[v.name], model_completion=True))
    for t in extra_ints:
        note(m.eval(t, model_completion=True))
    doms = {}
    for v in system.state + system.constants:
        if v.sort.endswith("array"):
            doms[v.name] = list(range(sizes[v.index])) if v.index is not None else \
                sorted(set(range(max(small) + 1)) | points)
    return doms


def small_ints(system: System, states: list[SymState], params: Mapping[str, Any]) -> list[Any]:
    """The integer terms of a CTI (int state variables, int parameters) to keep small."""
    out = [st[v.name] for st in states for v in system.state + system.constants if v.sort == "int"]
    return out + [t for t in params.values() if t.sort() == z3.IntSort()]


def minimize(s: z3.Solver, sizes: list[Any], budget_s: float = 2.0, small: Iterable[Any] = ()) -> z3.ModelRef:
    """Fewest frames: lower the sum of the ring sizes while still satisfiable (within a budget),
    among models whose integers lie in ``[-SMALL, SMALL]`` when there are such models."""
    m = s.model()
    small = list(small)
    if small:
        s.push()
        s.add(*[z3.And(t >= -SMALL, t <= SMALL) for t in small])
        if s.check() == z3.sat:
            m = _fewest_frames(s, sizes, budget_s, s.model())
        s.pop()
        return m
    return _fewest_frames(s, sizes, budget_s, m)


def _fewest_frames(s: z3.Solver, sizes: list[Any], budget_s: float, m: z3.ModelRef) -> z3.ModelRef:
    if not sizes:
        return m
    t0 = time.perf_counter()
    total = z3.Sum([z3.If(x >= 0, x, 0) for x in sizes])
    while time.perf_counter() - t0 < budget_s:
        cur = m.eval(total, model_completion=True).as_long()
        if cur <= 0:
            break
        s.push()
        s.add(total < cur)
        if s.check() != z3.sat:
            s.pop()
            break
        m = s.model()
        s.pop()
    return m


def make_cti(system: System, m: z3.ModelRef, pre: SymState, post: SymState, action: Action,
             params: Mapping[str, Any], goal: Expr, extra: Iterable[Expr] = ()) -> Cti:
    """A minimal state table: only the variables the goal, the guard and the updates mention
    (and the ring sizes, which say which frames exist)."""
    names = set(free_vars(goal)) | set(free_vars(action.guard)) | set(action.modifies)
    for e in extra:
        names |= free_vars(e)
    names |= set(size_vars(system))
    ordered = [v.name for v in system.constants + system.state if v.name in names]
    doms = _array_domains(system, m, [pre, post], [t for t in params.values() if t.sort() == z3.IntSort()])
    pvals = {}
    for p in action.params:
        t = params[p.name]
        pvals[p.name] = z3.is_true(m.eval(t, model_completion=True)) if p.sort == "bool" else \
            m.eval(t, model_completion=True).as_long()
    cols = layout(system)
    return Cti(action.name, pvals, state_values(system, m, pre, ordered, doms),
               state_values(system, m, post, ordered, doms), {n: cols[n] for n in ordered})
