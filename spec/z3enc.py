"""z3 encoding of a :class:`~nlmmap.spec.system.System`: states, transitions, and sound counting.

What is encoded, and why it is done this way:

* **States.** Every state variable (and constant) becomes a z3 constant of its sort: ``int`` ->
  ``Int``, ``bool`` -> ``Bool``, ``int_array`` -> ``Array(Int, Int)``, ``bool_array`` ->
  ``Array(Int, Bool)``. A :class:`SymState` maps names to z3 terms; the ring sizes are ordinary
  ``Int`` variables, so every proof is for *every* ring size at once.
* **Transitions.** :func:`successor` derives the post-state of an action from its updates alone,
  exactly as :func:`nlmmap.spec.system.apply_action` executes them: every right-hand side is
  evaluated in the pre-state, then the writes are folded in listed order (a later write to the same
  variable or index wins; ``StoreRange`` becomes a z3 ``Lambda``). Variables not in
  ``Action.modifies`` keep their pre-state term, so "everything else unchanged" is generated,
  never written by hand. Parameters are fresh constants constrained to their declared ranges
  (:func:`param_constraints`), i.e. existentially quantified in a satisfiability query.
* **Counting.** ``Count`` nodes (``#{k in [lo, hi) : body}``) have no direct z3 meaning. Two
  encodings are offered:

  - ``"abstract"`` (proofs, any ring size): each count occurrence in each state becomes a fresh
    ``Int`` ``c``, standing for ``cnt(lambda k. body, lo, hi)`` where ``cnt`` is *defined* by
    ``cnt(B, lo, hi) = 0`` for ``hi <= lo`` and ``cnt(B, lo, hi + 1) = cnt(B, lo, hi) + [B[hi]]``
    for ``hi >= lo`` (a definition by recursion on ``hi``, so it exists and is unique). The
    facts the prover may use about ``c`` are instances of four lemmas (:data:`COUNT_LEMMAS`), each
    proved from that definition by induction on ``hi`` in separate z3 obligations
    (:func:`count_lemma_obligations`): bounds ``0 <= cnt <= max(0, hi - lo)``; positivity
    ``cnt >= 1 <=> exists k in [lo, hi). B[k]``; extensionality (equal on the range => equal
    counts); and the point update (equal on the range except at ``i`` => counts differ by
    ``[C[i]] - [B[i]]``). Only instances are added, so the argument is sound; it is incomplete only
    in that a proof needing another counting fact fails (it never wrongly succeeds).
  - ``"unrolled"`` (bounded model checking, small ring sizes): ``sum_{k < K} [lo <= k < hi and
    body(k)]`` with the side condition ``0 <= lo, hi <= K`` recorded in :attr:`Encoder.side`, which
    the caller asserts (the search is then restricted to ranges of at most ``K`` indices).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from .expr import Count, Expr, free_vars, to_z3
from .system import Action, Assign, Param, StateVar, Store, StoreRange, System

__all__ = [
    "SymState", "Encoder", "CountInstance", "successor", "param_constraints", "make_params", "z3_sort",
    "COUNT_LEMMAS", "count_lemma_obligations", "size_vars", "make_solver", "substitute", "expand_bounded",
    "store_indices", "SCOPE_INDEX",
]


def z3_sort(sort: str) -> z3.SortRef:
    """The z3 sort of a spec sort name."""
    if sort not in _SORTS:
        _SORTS[sort] = {"int": z3.IntSort, "bool": z3.BoolSort,
                        "int_array": lambda: z3.ArraySort(z3.IntSort(), z3.IntSort()),
                        "bool_array": lambda: z3.ArraySort(z3.IntSort(), z3.BoolSort())}[sort]()
    return _SORTS[sort]


_SORTS: dict[str, z3.SortRef] = {}


def make_solver(*, timeout_ms: int, seed: int) -> z3.Solver:
    """A fresh solver with its own timeout and fixed seed (never a global ``set_param``)."""
    s = z3.Solver()
    s.set("timeout", int(timeout_ms))
    s.set("random_seed", int(seed))
    return s


def size_vars(system: System) -> list[str]:
    """The ring-size variables (declared ``StateVar(size=True)``): what a minimal counterexample
    makes small and bounded model checking bounds."""
    return [v.name for v in system.constants + system.state if v.size]


@dataclass
class SymState:
    """A symbolic state: ``terms[name]`` is the z3 term of state variable ``name``."""

    tag: str
    terms: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.terms[name]


@dataclass
class CountInstance:
    """One ``Count`` node encoded in one state (abstract mode): ``value`` is its fresh constant."""

    node: Count
    state: str
    value: Any
    lo: Any
    hi: Any
    body_at: Callable[[Any], Any]


@dataclass
class Encoder:
    """Encodes expressions of ``system`` over symbolic states (see the module docstring).

    ``count_mode`` is ``"abstract"`` or ``"unrolled"`` (then ``unroll_bound`` is the ``K``).
    Count instances (abstract) and side conditions (unrolled) accumulate in :attr:`counts` and
    :attr:`side`; callers take what they need and may :meth:`reset` between obligations."""

    system: System
    count_mode: str = "abstract"
    unroll_bound: int = 4
    counts: list[CountInstance] = field(default_factory=list)
    side: list[Any] = field(default_factory=list)
    _memo: dict[tuple[int, str], Any] = field(default_factory=dict)
    scoped: Mapping[str, int] = field(default_factory=dict)

    index_scope: int | None = None

    def bounds(self) -> dict[str, int]:
        """Upper bounds of the variables a bounded search bounds (ring sizes <= ``unroll_bound``, and
        the ``scoped`` integer variables), as used to expand quantifiers into finite formulas."""
        b = {**{n: self.unroll_bound for n in size_vars(self.system)}, **dict(self.scoped)}
        if self.index_scope is not None:
            b[SCOPE_INDEX] = self.index_scope
        return b

    def fork(self) -> Encoder:
        """A copy that shares what was encoded so far (count instances, side conditions, memo) and
        adds to its own lists: encode the hypotheses once, then fork per obligation."""
        return Encoder(self.system, self.count_mode, self.unroll_bound, list(self.counts), list(self.side),
                       dict(self._memo), dict(self.scoped), self.index_scope)

    def reset(self) -> None:
        """Forget count instances and side conditions (start of a new obligation)."""
        self.counts.clear()
        self.side.clear()
        self._memo.clear()

    def fresh_state(self, tag: str) -> SymState:
        """A state of fresh constants named ``var@tag``."""
        vs: Iterable[StateVar] = self.system.constants + self.system.state
        return SymState(tag, {v.name: z3.Const(f"{v.name}@{tag}", z3_sort(v.sort)) for v in vs})

    def expr(self, e: Expr, st: SymState, params: Mapping[str, Any] | None = None) -> Any:
        """The z3 term of ``e`` in state ``st`` (action parameters from ``params``)."""
        p = dict(params or {})
        if self.count_mode == "unrolled":
            e = expand_bounded(e, self.bounds())

        def look(name: str) -> Any:
            return p[name] if name in p else st.terms[name]

        def count_fn(node: Count, go: Callable[[Expr], Any], env: dict) -> Any:
            return self._count(node, go, env, st, p)

        return to_z3(e, look, None, count_fn)

    def _count(self, node: Count, go: Callable[[Expr], Any], env: dict, st: SymState,
               params: Mapping[str, Any]) -> Any:
        captured = (free_vars(node) & set(env)) - {node.var}
        if captured or (params and free_vars(node) & set(params)):
            raise NotImplementedError(
                f"Count {node!r} mentions bound variables or parameters {sorted(captured or params)}; "
                "the z3 encoding supports counts over state variables only")
        lo, hi = go(node.lo), go(node.hi)

        def body_at(k: Any) -> Any:
            saved = env.get(node.var, _MISSING)
            env[node.var] = k
            try:
                return go(node.body)
            finally:
                if saved is _MISSING:
                    env.pop(node.var, None)
                else:
                    env[node.var] = saved

        if self.count_mode == "unrolled":
            K = self.unroll_bound
            self.side.append(z3.And(lo >= 0, hi <= K))
            return z3.Sum([z3.If(z3.And(lo <= kk, kk < hi, body_at(z3.IntVal(kk))), 1, 0) for kk in range(K)])
        key = (id(node), st.tag)
        if key in self._memo:
            return self._memo[key]
        c = z3.FreshInt(f"count_{node.var}@{st.tag}")
        self._memo[key] = c
        self.counts.append(CountInstance(node, st.tag, c, lo, hi, body_at))
        return c

    def count_facts(self, candidates: Iterable[Any] = ()) -> list[Any]:
        """Instances of :data:`COUNT_LEMMAS` for the counts encoded so far: bounds and positivity
        for each, and extensionality and point updates (at each ``candidates`` index) between
        the occurrences of the same node in two states."""
        facts: list[Any] = []
        cands = list(candidates)
        for ci in self.counts:
            k = z3.FreshInt("k")
            facts.append(ci.value >= 0)
            facts.append(ci.value <= z3.If(ci.hi - ci.lo >= 0, ci.hi - ci.lo, 0))
            facts.append((ci.value >= 1) == z3.Exists([k], z3.And(ci.lo <= k, k < ci.hi, ci.body_at(k))))
        by_node: dict[int, list[CountInstance]] = {}
        for ci in self.counts:
            by_node.setdefault(id(ci.node), []).append(ci)
        for group in by_node.values():
            for a_i, a in enumerate(group):
                for b in group[a_i + 1:]:
                    same = z3.And(a.lo == b.lo, a.hi == b.hi)
                    k = z3.FreshInt("k")
                    allsame = z3.ForAll([k], z3.Implies(z3.And(a.lo <= k, k < a.hi), a.body_at(k) == b.body_at(k)))
                    facts.append(z3.Implies(z3.And(same, allsame), a.value == b.value))
                    for i in cands:
                        k2 = z3.FreshInt("k")
                        others = z3.ForAll([k2], z3.Implies(z3.And(a.lo <= k2, k2 < a.hi, k2 != i),
                                                            a.body_at(k2) == b.body_at(k2)))
                        facts.append(z3.Implies(
                            z3.And(same, a.lo <= i, i < a.hi, others),
                            b.value == a.value - z3.If(a.body_at(i), 1, 0) + z3.If(b.body_at(i), 1, 0)))
        return facts


_MISSING = object()


def substitute(e: Expr, name: str, value: Expr) -> Expr:
    """``e`` with the free occurrences of variable ``name`` replaced by ``value``."""
    from .expr import Const, Ite, Op, Quant, Select, Var

    def go(x: Expr) -> Expr:
        if isinstance(x, Var):
            return value if x.name == name else x
        if isinstance(x, Const):
            return x
        if isinstance(x, Select):
            return Select(go(x.array), go(x.index))
        if isinstance(x, Op):
            return Op(x.op, tuple(go(a) for a in x.args))
        if isinstance(x, Ite):
            return Ite(go(x.cond), go(x.then), go(x.other))
        if isinstance(x, (Quant, Count)):
            body = x.body if x.var == name else go(x.body)
            if isinstance(x, Quant):
                return Quant(x.kind, x.var, go(x.lo), go(x.hi), body)
            return Count(x.var, go(x.lo), go(x.hi), body)
        raise TypeError(f"not an expression node: {x!r}")

    return go(e)


_EXPAND_MEMO: dict[tuple[int, tuple], Expr] = {}

#: Key of :meth:`Encoder.bounds` giving the BMC scope for indices and unbounded parameters.
SCOPE_INDEX = "<index scope>"


def hi_bound(hi: Expr, bounds: Mapping[str, int]) -> int | None:
    """An upper bound of ``hi`` when every variable in it is bounded by ``bounds``
    (``N``, ``N + c``, constants), else None."""
    from .expr import Const, Op, Var

    if isinstance(hi, Const):
        return int(hi.value)
    if isinstance(hi, Var):
        return bounds.get(hi.name)
    if isinstance(hi, Op) and hi.op == "+" and isinstance(hi.args[1], Const):
        b = hi_bound(hi.args[0], bounds)
        return None if b is None else b + int(hi.args[1].value)
    return None


def expand_bounded(e: Expr, bounds: Mapping[str, int]) -> Expr:
    """Bounded model checking only: every quantifier ``[c, hi)`` whose upper bound is bounded by
    ``bounds`` (ring sizes, and the scoped counters BMC asserts bounds on in every state) becomes a
    finite conjunction/disjunction over ``c..bound-1`` with the range as a guard; other quantifiers
    are left to z3. Exact whenever the bounds hold, which BMC asserts."""
    from .expr import Const, Ite, Op, Quant, Select, Var, _lift, and_, implies, or_

    e = _lift(e)
    key = (id(e), tuple(sorted(bounds.items())))
    if key in _EXPAND_MEMO:
        return _EXPAND_MEMO[key]

    def go(x: Expr) -> Expr:
        if isinstance(x, (Var, Const)):
            return x
        if isinstance(x, Select):
            return Select(go(x.array), go(x.index))
        if isinstance(x, Op):
            return Op(x.op, tuple(go(a) for a in x.args))
        if isinstance(x, Ite):
            return Ite(go(x.cond), go(x.then), go(x.other))
        if isinstance(x, Quant):
            top = hi_bound(x.hi, bounds)
            if isinstance(x.lo, Const) and isinstance(x.hi, Const) and int(x.hi.value) - int(x.lo.value) > 64 \
                    and SCOPE_INDEX in bounds:
                # a huge constant range (an init clearing every id): within the scope every index
                # read is below SCOPE_INDEX (parameters are bounded by it), so truncate
                top = min(int(x.hi.value), bounds[SCOPE_INDEX])
                x = Quant(x.kind, x.var, x.lo, Const(top), x.body)
            if top is not None and isinstance(x.lo, Const) and top - int(x.lo.value) <= 64:
                lo = int(x.lo.value)
                parts = []
                for c in range(lo, top):
                    body = go(substitute(x.body, x.var, Const(c)))
                    parts.append(implies(Const(c) < x.hi, body) if x.kind == "forall"
                                 else and_(Const(c) < x.hi, body))
                return and_(*parts) if x.kind == "forall" else or_(*parts)
            return Quant(x.kind, x.var, go(x.lo), go(x.hi), go(x.body))
        if isinstance(x, Count):
            return Count(x.var, go(x.lo), go(x.hi), go(x.body))
        raise TypeError(f"not an expression node: {x!r}")

    out = go(e)
    _EXPAND_MEMO[key] = out
    _EXPAND_KEEP.append(e)  # keep e alive so its id is not reused while memoized
    return out


_EXPAND_KEEP: list[Expr] = []


# --- actions -------------------------------------------------------------------------------------
def make_params(action: Action, tag: str) -> dict[str, Any]:
    """Fresh constants for the parameters of ``action`` (named ``param@action@tag``)."""
    return {p.name: z3.Const(f"{p.name}@{action.name}@{tag}", z3_sort(p.sort)) for p in action.params}


def param_constraints(enc: Encoder, action: Action, st: SymState, params: Mapping[str, Any]) -> list[Any]:
    """The declared ranges of the parameters (``lo <= p < hi``), evaluated in ``st``."""
    out = []
    for p in action.params:
        p: Param
        if p.lo is not None:
            out.append(enc.expr(p.lo, st, params) <= params[p.name])
        if p.hi is not None:
            out.append(params[p.name] < enc.expr(p.hi, st, params))
        elif p.lo is not None and p.sort == "int" and enc.index_scope is not None:
            out.append(params[p.name] < enc.index_scope)  # BMC scope (see Encoder.index_scope)
    return out


def successor(enc: Encoder, action: Action, pre: SymState, params: Mapping[str, Any], tag: str) -> SymState:
    """The post-state of ``action`` from ``pre``: updates evaluated in ``pre``, folded in order;
    variables outside ``action.modifies`` keep their pre-state terms."""
    cur = dict(pre.terms)
    for u in action.updates:
        if isinstance(u, Assign):
            cur[u.var] = enc.expr(u.value, pre, params)
        elif isinstance(u, Store):
            cur[u.array] = z3.Store(cur[u.array], enc.expr(u.index, pre, params), enc.expr(u.value, pre, params))
        elif isinstance(u, StoreRange):
            lo, hi = enc.expr(u.lo, pre, params), enc.expr(u.hi, pre, params)
            top = _range_bound(enc, action, u)
            if top is None and enc.count_mode == "unrolled" and enc.scoped and _lift_int(u.lo) >= 0:
                top = max(enc.scoped.values()) + 1  # range_conditions() makes the step respect this
            if top is not None:
                arr = cur[u.array]
                for c in range(int(_lift_int(u.lo)), top):
                    body = enc.expr(u.body, pre, {**params, u.var: z3.IntVal(c)})
                    arr = z3.Store(arr, c, z3.If(z3.And(lo <= c, c < hi), body, z3.Select(cur[u.array], c)))
                cur[u.array] = arr
                continue
            k = z3.FreshInt(u.var)
            body = enc.expr(u.body, pre, {**params, u.var: k})
            cur[u.array] = z3.Lambda([k], z3.If(z3.And(lo <= k, k < hi), body, z3.Select(cur[u.array], k)))
        else:  # pragma: no cover - System validates update kinds
            raise TypeError(f"unknown update {u!r}")
    return SymState(tag, cur)


def _lift_int(x: Any) -> int:
    from .expr import Const, _lift

    c = _lift(x)
    return int(c.value) if isinstance(c, Const) else -1


def _range_bound(enc: Encoder, action: Action, u: StoreRange) -> int | None:
    """BMC only: an upper bound of ``u``'s range when it can be unrolled into stores: ``[c, N)``
    with ``N`` bounded (a ring size, a scoped counter, or a parameter the action assigns to a ring
    size, which the next state's size bound limits)."""
    from .expr import Var, _lift

    if enc.count_mode != "unrolled" or _lift_int(u.lo) < 0:
        return None
    hi = _lift(u.hi)
    b = hi_bound(hi, enc.bounds())
    if b is not None:
        return b
    sizes = set(size_vars(enc.system))
    if isinstance(hi, Var) and any(isinstance(x, Assign) and x.var in sizes and isinstance(x.value, Var)
                                   and x.value.name == hi.name for x in action.updates):
        return enc.unroll_bound
    return None


def range_conditions(enc: Encoder, action: Action, pre: SymState, params: Mapping[str, Any]) -> list[Any]:
    """BMC only: for ``StoreRange`` updates whose upper bound depends on a parameter (e.g. a batch
    up to ``m + 1``), the condition that it stays within the scoped bound: the step is only taken
    within the scope (a restriction of the search, never a spurious trace)."""
    from .expr import _lift

    out = []
    if enc.count_mode != "unrolled":
        return out
    for u in action.updates:
        if isinstance(u, StoreRange) and _range_bound(enc, action, u) is None and enc.scoped:
            top = max(enc.scoped.values()) + 1
            out.append(enc.expr(_lift(u.hi), pre, params) <= top)
    return out


def store_indices(enc: Encoder, action: Action, pre: SymState, params: Mapping[str, Any]) -> list[Any]:
    """The (pre-state) indices ``action`` writes with ``Store``: candidates for count point lemmas."""
    out, seen = [], set()
    for u in action.updates:
        if isinstance(u, Store):
            t = enc.expr(u.index, pre, params)
            if t.sexpr() not in seen:
                seen.add(t.sexpr())
                out.append(t)
    return out


# --- count lemmas, proved by induction -------------------------------------------------------------
#: Names and statements of the lemmas about ``cnt`` used by the abstract count encoding.
COUNT_LEMMAS: dict[str, str] = {
    "CountBounds": "0 <= cnt(B, lo, hi) <= max(0, hi - lo)",
    "CountPositive": "cnt(B, lo, hi) >= 1 <=> exists k in [lo, hi). B[k]",
    "CountExtensional": "(forall k in [lo, hi). B[k] = C[k]) => cnt(B, lo, hi) = cnt(C, lo, hi)",
    "CountPointUpdate": "lo <= i < hi and (forall k in [lo, hi), k != i. B[k] = C[k]) => "
                        "cnt(C, lo, hi) = cnt(B, lo, hi) - [B[i]] + [C[i]]",
}


def count_lemma_obligations() -> list[tuple[str, str, list[Any], Any]]:
    """The induction obligations for :data:`COUNT_LEMMAS`: ``(lemma, case, hypotheses, goal)``
    where the obligation is valid iff ``hypotheses and not goal`` is unsatisfiable.

    ``cnt`` is an uninterpreted function constrained only by ground instances of its defining
    equations, so each obligation is quantifier-free apart from the lemma's own statement.
    Base case: ``hi <= lo``. Step: the lemma at ``hi`` (``hi >= lo``) implies it at ``hi + 1``.
    Together they give every ``hi`` (induction on ``hi - lo``)."""
    A = z3.ArraySort(z3.IntSort(), z3.BoolSort())
    cnt = z3.Function("cnt", A, z3.IntSort(), z3.IntSort(), z3.IntSort())
    B, C = z3.Const("B", A), z3.Const("C", A)
    lo, hi, i = z3.Ints("lo hi i")

    def ind(x: Any) -> Any:
        return z3.If(x, 1, 0)

    def d0(arr: Any, h: Any) -> Any:  # cnt = 0 below lo
        return z3.Implies(h <= lo, cnt(arr, lo, h) == 0)

    def d1(arr: Any, h: Any) -> Any:  # one more index
        return z3.Implies(lo <= h, cnt(arr, lo, h + 1) == cnt(arr, lo, h) + ind(z3.Select(arr, h)))

    def stmt(name: str, h: Any) -> Any:
        k = z3.FreshInt("k")
        if name == "CountBounds":
            return z3.And(cnt(B, lo, h) >= 0, cnt(B, lo, h) <= z3.If(h - lo >= 0, h - lo, 0))
        if name == "CountPositive":
            return (cnt(B, lo, h) >= 1) == z3.Exists([k], z3.And(lo <= k, k < h, B[k]))
        if name == "CountExtensional":
            return z3.Implies(z3.ForAll([k], z3.Implies(z3.And(lo <= k, k < h), B[k] == C[k])),
                              cnt(B, lo, h) == cnt(C, lo, h))
        return z3.Implies(z3.And(lo <= i, i < h,
                                 z3.ForAll([k], z3.Implies(z3.And(lo <= k, k < h, k != i), B[k] == C[k]))),
                          cnt(C, lo, h) == cnt(B, lo, h) - ind(B[i]) + ind(C[i]))

    out: list[tuple[str, str, list[Any], Any]] = []
    proved: list[str] = []
    for name in COUNT_LEMMAS:
        defs = [d0(B, hi), d0(C, hi), d1(B, hi), d1(C, hi), d0(B, hi + 1), d0(C, hi + 1)]
        out.append((name, "base", [hi <= lo, d0(B, hi), d0(C, hi)], stmt(name, hi)))
        # the step may use the lemmas proved before this one, at hi (e.g. positivity needs the
        # lower bound; the point update at i == hi needs extensionality)
        hyps = [lo <= hi, stmt(name, hi), *defs, *(stmt(prev, hi) for prev in proved)]
        out.append((name, "step", hyps, stmt(name, hi + 1)))
        proved.append(name)
    return out
