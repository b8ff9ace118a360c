"""Counterexamples to induction: a z3 model of a failed obligation read back as a minimal table,
and checked by the spec's interpreter before it is shown.

A CTI shows only the variables the goal, the guard and the updates mention (plus the ring sizes),
in a model made small first: the fewest frames, among models whose integers (ids, counters,
parameters) lie in ``[-16, 16]`` when there are such, so every index the counterexample needs
shows in its table. Which indices of an array are shown comes from the system's declarations:
``[0, size)`` for arrays indexed by a ring's frames, the integers in play for the others.

Every CTI also carries its whole pre-state as a concrete state (arrays as
:class:`~nlmmap.spec.system.DefaultArray`), and :func:`check_cti` runs it in the interpreter, as
mypyvy's solver smoke test does: the action must be enabled, the hypotheses and the run bound true
in the pre-state, and the goal false (in the pre-state for a step property, after
:func:`~nlmmap.spec.system.apply_action` for consecution). A CTI read from the finite-scope
encoding (:mod:`.cells`) is exactly that state, so a disagreement is a bug of the engine.
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

__all__ = ["Cti", "CtiCheck", "make_cti", "cell_cti", "minimize", "model_value", "state_values", "small_ints",
           "check_cti", "concrete_state", "evaluate_finite", "SMALL"]

#: Integers a CTI prefers (ids, counters, parameters in ``[-SMALL, SMALL]``), and the most frames shown.
SMALL = 16
#: Time spent lowering a CTI's integers toward 0, at most.
INT_BUDGET_S = 0.5


@dataclass(frozen=True)
class Cti:
    """One counterexample to induction: the action and its parameters, the pre- and post-state
    (arrays as ``{index: value}`` over the indices shown); rendered by :meth:`text`."""

    action: str
    params: dict[str, Any]
    pre: dict[str, Any]
    post: dict[str, Any]
    columns: Mapping[str, Column] = field(default_factory=dict, compare=False, repr=False)
    #: the whole pre-state (arrays over the indices read back) and each array's value elsewhere
    state: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    defaults: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def text(self) -> str:
        """The two-column table (see :func:`nlmmap.spec.tables.cti_table`)."""
        return cti_table(self.action, self.params, self.pre, self.post, self.columns)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {"params": self.params, "pre": self.pre, "post": self.post}

    def concrete(self, system: System) -> Any:
        """The pre-state as a concrete state the interpreter runs (:func:`concrete_state`)."""
        return concrete_state(system, self.state, self.defaults)


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
    among models whose integers lie in ``[-SMALL, SMALL]`` when there are such models; then, the
    frames kept, each of those integers as close to 0 as it can be (a counter of 3, not 8)."""
    m = s.model()
    small = list(small)
    t0 = time.perf_counter()
    if small:
        s.push()
        s.add(*[z3.And(t >= -SMALL, t <= SMALL) for t in small])
        if s.check() == z3.sat:
            m = _fewest_frames(s, sizes, budget_s, s.model())
            total = z3.Sum([z3.If(x >= 0, x, 0) for x in sizes]) if sizes else None
            if total is not None:
                s.add(total <= m.eval(total, model_completion=True))
            m = _smallest_ints(s, small, min(INT_BUDGET_S, max(0.0, budget_s - (time.perf_counter() - t0))), m)
        s.pop()
        return m
    return _fewest_frames(s, sizes, budget_s, m)


def _smallest_ints(s: z3.Solver, terms: list[Any], budget_s: float, m: z3.ModelRef) -> z3.ModelRef:
    """Each term in turn at the smallest absolute value still satisfiable (binary search), kept."""
    t0 = time.perf_counter()
    seen: set[str] = set()
    for t in terms:
        if not z3.is_expr(t) or z3.is_int_value(t):
            continue  # a constant (folded by the encoding)
        key = t.sexpr()
        if key in seen:
            continue
        seen.add(key)
        cur = abs(m.eval(t, model_completion=True).as_long())
        lo, hi = 0, cur  # the smallest |t| is in [lo, hi]
        while lo < hi and time.perf_counter() - t0 < budget_s:
            mid = (lo + hi) // 2
            s.push()
            s.add(t >= -mid, t <= mid)
            if s.check() == z3.sat:
                m, hi = s.model(), abs(s.model().eval(t, model_completion=True).as_long())
            else:
                lo = mid + 1
            s.pop()
        s.add(t >= -hi, t <= hi)
    return m


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
    allnames = [v.name for v in system.constants + system.state]
    far = -(1 << 40)  # an index no counterexample reads: the array's value "elsewhere"
    defaults = {v.name: model_value(m, pre[v.name], v.sort, [far])[far] for v in system.constants + system.state
                if v.sort.endswith("array")}
    return Cti(action.name, pvals, state_values(system, m, pre, ordered, doms),
               state_values(system, m, post, ordered, doms), {n: cols[n] for n in ordered},
               state_values(system, m, pre, allnames, doms), defaults)


def cell_cti(system: System, enc: Any, m: z3.ModelRef, pre: Any, post: Any, action: Action,
             params: Mapping[str, Any], goal: Expr) -> Cti:
    """The CTI of a model of the finite-scope encoding (``enc``: a :class:`~nlmmap.spec.cells.CellEncoder`,
    ``pre``/``post`` its states): exact, every array is its cells and one value elsewhere."""
    from .cells import _val

    names = set(free_vars(goal)) | set(free_vars(action.guard)) | set(action.modifies) | set(size_vars(system))
    ordered = [v.name for v in system.constants + system.state if v.name in names]
    sizes = {n: max(_val(m, pre[n]), _val(m, post[n])) for n in size_vars(system)}
    dflt = enc.defaults(m, pre)

    def shown(st: Any) -> dict[str, Any]:
        vals = enc.values(m, st, ordered)
        for n in ordered:
            v = system.var(n)
            if v.index is not None:
                vals[n] = {k: x for k, x in vals[n].items() if 0 <= k < min(SMALL, sizes[v.index])}
            elif v.sort.endswith("array"):
                vals[n] = {k: x for k, x in vals[n].items() if x != dflt[n]}
        return vals

    pvals = {p.name: _val(m, params[p.name]) for p in action.params}
    cols = layout(system)
    return Cti(action.name, pvals, shown(pre), shown(post), {n: cols[n] for n in ordered},
               enc.values(m, pre), dflt)


def concrete_state(system: System, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    """A concrete state (:func:`nlmmap.spec.replay.map_state_factory`) of ``values``: arrays as
    ``{index: value}`` read back, ``defaults`` elsewhere."""
    from .replay import map_state_factory

    return map_state_factory(system, values, defaults)


@dataclass(frozen=True)
class CtiCheck:
    """What the interpreter says of a CTI: ``problems`` (where it disagrees with the solver; empty
    when confirmed) and ``unchecked`` (hypotheses it cannot evaluate, e.g. over ranges too large)."""

    problems: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()

    @property
    def confirmed(self) -> bool:
        """The interpreter agrees (what it could evaluate)."""
        return not self.problems

    def text(self) -> str:
        """One phrase for the obligation line."""
        if self.problems:
            return "the interpreter disagrees: " + "; ".join(self.problems)
        if self.unchecked:
            return "confirmed by the interpreter (not evaluated: " + ", ".join(self.unchecked) + ")"
        return "confirmed by the interpreter"


def check_cti(system: System, cti: Cti, hyps: Iterable[tuple[str, Expr]], goal: Expr, *, step: bool) -> CtiCheck:
    """Run ``cti`` in the interpreter: ``action`` enabled with its parameters, ``assumptions``,
    the named hypotheses ``hyps`` and the run bound true in the pre-state, ``goal`` false in the
    pre-state (``step``) or after the action (consecution)."""
    from .system import apply_action, enabled

    problems: list[str] = []
    unchecked: list[str] = []
    action = system.action(cti.action)
    st = cti.concrete(system)

    def holds(name: str, e: Expr, state: Any, params: Mapping[str, Any] | None = None) -> bool | None:
        try:
            look = (lambda n: params[n] if n in params else state[n]) if params else state.__getitem__
            return bool(evaluate_finite(e, look, state))
        except (ValueError, NotImplementedError):
            unchecked.append(name)
            return None
        except (IndexError, KeyError, TypeError) as e_:
            problems.append(f"{name} cannot be evaluated ({type(e_).__name__}: {e_})")
            return None

    try:
        if not enabled(action, st, cti.params):
            problems.append(f"{action.name}{cti.params} is not enabled in the pre-state")
    except (IndexError, KeyError, TypeError, ValueError) as e:
        problems.append(f"the guard of {action.name} cannot be evaluated ({type(e).__name__}: {e})")
    if holds("the assumptions", system.assumptions, st) is False:
        problems.append("the assumptions are false in the pre-state")
    for name, f in hyps:
        if holds(name, f, st) is False:
            problems.append(f"hypothesis {name} is false in the pre-state")
    if system.run_bound is not None and holds("the run bound", system.run_bound, st) is False:
        problems.append("the run bound is false in the pre-state")
    if step:
        if holds("the goal", goal, st, cti.params) is True:
            problems.append("the step property holds in the pre-state")
    elif not problems:
        post = type(st)(dict(st))
        try:
            apply_action(action, post, cti.params)
        except Exception as e:
            problems.append(f"{action.name} cannot be applied ({type(e).__name__}: {e})")
        else:
            if holds("the goal", goal, post) is True:
                problems.append("the invariant holds after the action")
            if system.run_bound is not None and holds("the run bound", system.run_bound, post) is False:
                problems.append("the run bound is false after the action")
    return CtiCheck(tuple(problems), tuple(dict.fromkeys(unchecked)))


def evaluate_finite(e: Expr, look: Any, state: Any) -> Any:
    """:func:`~nlmmap.spec.expr.evaluate`, where a quantifier over a range too large to loop over
    (``forall id in [id_seq + 1, 2**62)``) whose body reads arrays only at the bound variable is
    decided on the indices ``state``'s arrays hold explicitly and one index beyond them (every
    other index reads each array's default, so gives the same body)."""
    from .expr import evaluate

    return evaluate(_finite(e, _support(state), look), look)


def _support(state: Any) -> tuple[int, int]:
    from .system import DefaultArray

    keys = [int(k) for v in dict(state).values() if isinstance(v, DefaultArray) for k in v]
    return (min(keys + [0]), max(keys + [0]) + 1)


def _bound_value(e: Expr, look: Any) -> int | None:
    """A quantifier bound's value: a constant, or a term of state variables (``id_space``) read in
    the state; None if it reads a bound variable."""
    from .expr import Const, evaluate

    if isinstance(e, Const):
        return int(e.value)
    try:
        return int(evaluate(e, look))
    except (KeyError, TypeError, ValueError):
        return None


def _finite(e: Expr, sup: tuple[int, int], look: Any = None) -> Expr:
    from .expr import Const, Ite, Op, Quant, Select, and_, implies, or_

    if isinstance(e, Quant):
        body = _finite(e.body, sup, look)
        hi_v = _bound_value(e.hi, look) if look is not None or isinstance(e.hi, Const) else None
        lo_v = _bound_value(e.lo, look) if look is not None or isinstance(e.lo, Const) else None
        big = hi_v is not None and hi_v - (lo_v if lo_v is not None else 0) > (1 << 20)
        if big and _uniform(e.var, e.body):
            from .z3enc import substitute

            lo, hi = e.lo, e.hi
            a, b = sup
            inner = Quant(e.kind, e.var, ite_max(lo, a), ite_min(hi, b), body)
            below = and_(lo < hi, lo < a)
            above = and_(lo < hi, b < hi)
            rep_lo, rep_hi = substitute(body, e.var, Const(a - 1)), substitute(body, e.var, Const(b))
            if e.kind == "forall":
                return and_(inner, implies(below, rep_lo), implies(above, rep_hi))
            return or_(inner, and_(below, rep_lo), and_(above, rep_hi))
        return Quant(e.kind, e.var, _finite(e.lo, sup, look), _finite(e.hi, sup, look), body)
    if isinstance(e, Op):
        return Op(e.op, tuple(_finite(a, sup, look) for a in e.args))
    if isinstance(e, Ite):
        return Ite(_finite(e.cond, sup, look), _finite(e.then, sup, look), _finite(e.other, sup, look))
    if isinstance(e, Select):
        return Select(_finite(e.array, sup, look), _finite(e.index, sup, look))
    return e


def ite_max(x: Expr, c: int) -> Expr:
    """``max(x, c)`` as an expression."""
    from .expr import ite

    return ite(x < c, c, x)


def ite_min(x: Expr, c: int) -> Expr:
    """``min(x, c)`` as an expression."""
    from .expr import ite

    return ite(c < x, c, x)


def _uniform(name: str, e: Expr) -> bool:
    """``name`` occurs in ``e`` only as the whole index of array reads."""
    from .expr import Const, Count, Ite, Op, Quant, Select, Var

    if isinstance(e, Var):
        return e.name != name
    if isinstance(e, Const):
        return True
    if isinstance(e, Select):
        if isinstance(e.index, Var) and e.index.name == name:
            return _uniform(name, e.array)
        return _uniform(name, e.array) and _uniform(name, e.index)
    if isinstance(e, Op):
        return all(_uniform(name, a) for a in e.args)
    if isinstance(e, Ite):
        return _uniform(name, e.cond) and _uniform(name, e.then) and _uniform(name, e.other)
    if isinstance(e, (Quant, Count)):
        return e.var == name and _uniform(name, e.lo) and _uniform(name, e.hi) or \
            (_uniform(name, e.lo) and _uniform(name, e.hi) and _uniform(name, e.body))
    return False
