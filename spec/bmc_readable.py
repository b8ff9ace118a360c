"""Making a violating trace readable before it is shown: a second, bounded pass over the model.

A shortest trace found by :func:`nlmmap.spec.bmc.bmc` may carry any values the solver liked. Within
:data:`READABLE_BUDGET_S` per phase (the shape of the trace, then its values; each check bounded
by what is left, so the pass never hangs), keeping the trace's length, the solver is asked in turn
for:

1. the fewest adversary steps (a user who misbehaves only where the flaw needs it);
2. the fewest frames (every ring size at most ``cap`` for the smallest ``cap`` still satisfiable);
3. with the actions now fixed, values a person would write: each integer parameter and each free
   integer of the initial state, in trace order, takes the most preferred value still possible.
   Preferences come from the system's metadata only: an index (a parameter bounded by a ring
   size, or used to index an array) prefers small numbers; a value stored into an array whose
   values have names (a status) prefers the named values; the catalog's hints for a name
   (:func:`nlmmap.spec.catalog.readable_hints`: real frame capacities, message lengths) come
   next; anything else prefers round numbers (:data:`ROUND`);
4. an initial state whose arrays hold one value (0 or false if possible), and whose booleans are
   false where they can be.

A check that runs out of time keeps the trace found so far.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import z3

from .cells import CellArray, _z
from .expr import Select, Var, free_vars
from .system import Action, Assign, Store, StoreRange
from .z3enc import size_vars

if TYPE_CHECKING:  # pragma: no cover
    from .bmc import Unrolling

__all__ = ["readable_model", "READABLE_BUDGET_S", "ROUND", "preferences"]

READABLE_BUDGET_S = 1.5  # time per phase spent making a found trace readable, at most (each check bounded)

#: Round numbers, in the order a person reaches for them (0 first, then small, then round sizes).
ROUND: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 8, 10, 16, 20, 32, 50, 64, 100, 128, 200, 256, 500, 512, 1000, 1500,
                          2000, 3000, 4000, 5000, 8000, 10000, 16000, 20000, 50000, 65535, 100000, 1000000,
                          (1 << 31) - 1, (1 << 32) - 1)


def _index_names(e: Any, out: set[str]) -> None:
    """Names used inside array indices of ``e``."""
    if isinstance(e, Select):
        out |= free_vars(e.index)
    for f in ("array", "index", "cond", "then", "other", "lo", "hi", "body"):
        if hasattr(e, f):
            _index_names(getattr(e, f), out)
    for a in getattr(e, "args", ()) or ():
        _index_names(a, out)


def _param_roles(system: Any, action: Action) -> tuple[set[str], dict[str, str]]:
    """The parameters of ``action`` used as indices, and those stored into an array (-> the array)."""
    idx: set[str] = set()
    stored: dict[str, str] = {}
    exprs = [action.guard]
    for u in action.updates:
        if isinstance(u, Assign):
            exprs.append(u.value)
        elif isinstance(u, Store):
            idx |= free_vars(u.index)
            exprs += [u.index, u.value]
            if isinstance(u.value, Var):
                stored[u.value.name] = u.array
        elif isinstance(u, StoreRange):
            exprs += [u.lo, u.hi, u.body]
    for e in exprs:
        _index_names(e, idx)
    sizes = {v.name for v in system.constants + system.state if v.size}
    for p in action.params:
        if p.hi is not None and free_vars(p.hi) & sizes:
            idx.add(p.name)
    return idx, stored


def preferences(u: Unrolling, action: Action | None, name: str, hints: dict[str, tuple[int, ...]],
                unchanged: Any = None) -> list[Any]:
    """The values a person would write for parameter ``name`` of ``action`` (None: the initial
    state's variable ``name``), most preferred first (see the module docstring); ``unchanged``: for
    a parameter stored into an array, the term of the element it overwrites, preferred first (an
    adversary who rewrites one field of a frame leaves the others as they were)."""
    system = u.system
    small = list(range(0, max(u.index_scope, 8)))
    if action is None:
        idx: set[str] = set()
        for a in system.actions:
            for e in [a.guard, *(x.index for x in a.updates if isinstance(x, Store))]:
                _index_names(e, idx)
        if name in idx:
            return small
        return list(dict.fromkeys([*hints.get(name, ()), *ROUND]))
    idx, stored = _param_roles(system, action)
    first = [unchanged] if unchanged is not None else []
    if name in stored:
        names = system.var(stored[name]).value_names
        if names:
            return first + list(dict.fromkeys([*sorted(names), *ROUND]))
    if name in idx:
        return small
    return first + list(dict.fromkeys([*hints.get(name, ()), *ROUND]))


def readable_model(u: Unrolling, s: z3.Solver, d: int, lit: z3.BoolRef | None = None) -> z3.ModelRef:
    """The most readable model of ``s`` (satisfiable under the assumption ``lit``, over ``u``'s
    first ``d`` steps) that the budget allows; ``s`` is left as it was (assertions and timeout)."""
    from .catalog import readable_hints

    assume = [lit] if lit is not None else []
    m = s.model()
    deadline = time.perf_counter() + READABLE_BUDGET_S
    depth = 0

    def check(*extra: Any) -> z3.ModelRef | None:
        left_ms = int((deadline - time.perf_counter()) * 1000)
        if left_ms <= 20:
            return None
        s.set("timeout", left_ms)
        s.push()
        s.add(*extra)
        r = s.check(*assume)
        out = s.model() if r == z3.sat else None
        s.pop()
        return out

    def keep(*facts: Any) -> None:
        nonlocal depth
        s.push()
        depth += 1
        s.add(*facts)

    try:
        # 1. the fewest adversary steps
        adv = [z3.Or(*[sel == i for i in u.adversary]) for sel in u.sels[:d]] if u.adversary else []
        if adv:
            n_adv = z3.Sum([z3.If(a, 1, 0) for a in adv])
            have = m.eval(n_adv, model_completion=True).as_long()
            for c in range(0, have):
                got = check(n_adv <= c)
                if got is not None:
                    m = got
                    have = c
                    break
            keep(n_adv <= have)
        # 2. the fewest frames
        sizes = [st[n] for st in u.states[: d + 1] for n in size_vars(u.system)]
        for cap in range(0, u.max_n):
            got = check(*[x <= cap for x in sizes])
            if got is not None:
                m = got
                keep(*[x <= cap for x in sizes])
                break
        # 3. the actions fixed, values a person would write (a phase with its own budget)
        keep(*[sel == m.eval(sel, model_completion=True) for sel in u.sels[:d]])
        deadline = time.perf_counter() + READABLE_BUDGET_S
        hints = readable_hints(u.system)
        terms: list[tuple[Any, list[int]]] = []
        s0 = u.states[0]
        for v in u.system.constants + u.system.state:
            if v.sort == "int":
                terms.append((s0[v.name], preferences(u, None, v.name, hints)))
        for k in range(d):
            idx = m.eval(u.sels[k], model_completion=True).as_long()
            a = u.actions[idx]
            params = u.params[k][idx]
            _, stored = _param_roles(u.system, a)
            for p in a.params:
                if p.sort == "int":
                    old = _overwritten(u, a, k, params, stored.get(p.name)) if a.actor == "adversary" else None
                    terms.append((params[p.name], preferences(u, a, p.name, hints, old)))
        # 4. (first, so that values are chosen in a plain initial state) constant initial arrays
        flat = []
        for v in u.system.constants + u.system.state:
            arr = s0[v.name]
            if isinstance(arr, CellArray):
                flat += [_z(arr.at(i)) == _z(arr.out) for i in u.enc.domain(v.name)]
                plain = z3.BoolVal(False) if v.sort == "bool_array" else z3.IntVal(0)
                flat.append(_z(arr.out) == plain)
        got = check(*flat)
        if got is not None:
            m = got
            keep(*flat)
        for v in u.system.constants + u.system.state:  # booleans at rest: false where possible
            if v.sort == "bool":
                got = check(z3.Not(s0[v.name]))
                if got is not None:
                    m = got
                    keep(z3.Not(s0[v.name]))
        for t, prefs in terms:
            m = _prefer(check, keep, m, t, prefs)
    finally:
        for _ in range(depth):
            s.pop()
        s.set("timeout", u.timeout_ms)
    return m


def _overwritten(u: Unrolling, a: Action, k: int, params: dict[str, Any], array: str | None) -> Any:
    """The pre-state term of the element of ``array`` that ``a`` (step ``k``) stores its parameter into."""
    if array is None:
        return None
    store = next(x for x in a.updates if isinstance(x, Store) and x.array == array)
    return u.enc.expr(Select(Var(array), store.index), u.states[k], params)


def _prefer(check: Any, keep: Any, m: z3.ModelRef, t: Any, prefs: Sequence[Any]) -> z3.ModelRef:
    """Fix ``t`` to the most preferred value of ``prefs`` (numbers or terms) still satisfiable
    (binary search over the preference rank), keeping it; or leave it to the model if none is."""
    if z3.is_int_value(_z(t)):
        return m
    prefs = [_z(v) for v in prefs]

    def rank(model: z3.ModelRef) -> int:
        val = model.eval(t, model_completion=True).as_long()
        return next((i for i, v in enumerate(prefs) if model.eval(v, model_completion=True).as_long() == val),
                    len(prefs))

    lo, hi, best = 0, rank(m), m  # the best rank is in [lo, hi]; hi == len(prefs): none of them (yet)
    if hi == len(prefs):
        got = check(z3.Or(*[t == v for v in prefs]))
        if got is not None:
            hi, best = rank(got), got
    while lo < hi and hi < len(prefs):
        mid = (lo + hi - 1) // 2
        got = check(z3.Or(*[t == v for v in prefs[lo:mid + 1]]))
        if got is None:
            lo = mid + 1
        else:
            hi, best = rank(got), got
    keep(t == (prefs[hi] if hi < len(prefs) else best.eval(t, model_completion=True)))
    return best
