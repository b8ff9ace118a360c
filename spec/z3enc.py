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
* **Counting.** ``Count`` nodes (``#{k in [lo, hi) : body}``) have no direct z3 meaning. For
  proofs at any ring size each count occurrence in each state becomes a fresh
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

Bounded searches (``nlmmap bmc``, the prover's small scopes) use the finite-scope encoding of
:mod:`nlmmap.spec.cells` instead, where counts are finite sums and every formula is quantifier-free.
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
    "COUNT_LEMMAS", "count_lemma_obligations", "size_vars", "make_solver", "substitute", "store_indices",
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

    Count instances accumulate in :attr:`counts`; callers take what they need and may
    :meth:`reset` between obligations."""

    system: System
    counts: list[CountInstance] = field(default_factory=list)
    _memo: dict[tuple[int, str], Any] = field(default_factory=dict)

    def fork(self) -> Encoder:
        """A copy that shares what was encoded so far (count instances, memo) and adds to its own
        lists: encode the hypotheses once, then fork per obligation."""
        return Encoder(self.system, list(self.counts), dict(self._memo))

    def reset(self) -> None:
        """Forget count instances (start of a new obligation)."""
        self.counts.clear()
        self._memo.clear()

    def fresh_state(self, tag: str) -> SymState:
        """A state of fresh constants named ``var@tag``."""
        vs: Iterable[StateVar] = self.system.constants + self.system.state
        return SymState(tag, {v.name: z3.Const(f"{v.name}@{tag}", z3_sort(v.sort)) for v in vs})

    def expr(self, e: Expr, st: SymState, params: Mapping[str, Any] | None = None) -> Any:
        """The z3 term of ``e`` in state ``st`` (action parameters from ``params``)."""
        p = dict(params or {})

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
            k = z3.FreshInt(u.var)
            body = enc.expr(u.body, pre, {**params, u.var: k})
            cur[u.array] = z3.Lambda([k], z3.If(z3.And(lo <= k, k < hi), body, z3.Select(cur[u.array], k)))
        else:  # pragma: no cover - System validates update kinds
            raise TypeError(f"unknown update {u!r}")
    return SymState(tag, cur)


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
