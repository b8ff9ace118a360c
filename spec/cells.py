"""The finite-scope z3 encoding: every array a few cells, every formula quantifier-free.

Bounded model checking (:mod:`.bmc`) and the prover's small-scope search (:mod:`.prove`) look at
the states of a finite **scope**: ring sizes (``StateVar(size=True)``) at most ``frames``; an
array indexed by a ring's frames (``StateVar(index=...)``) stored in cells ``[0, frames)`` (or a
wider ``frame_cells``, so that a write just outside the ring, at a sentinel index such as -1, stays
in the scope), an
array indexed by unbounded integers (packet ids, CPUs) in cells ``[index_lo, index_hi)``; outside
its cells every array holds one value of its own (``out``), which no step of the scope changes:
a step that would write outside the cells is not taken in the scope (:meth:`CellEncoder.successor`
returns that condition). Such a state *is* a concrete state (a :class:`~nlmmap.spec.system.DefaultArray`
per array), so a model read back is exact and the spec's interpreter can run it
(:meth:`CellEncoder.concrete`).

What makes the encoding quantifier-free, and why each step is exact in the scope:

* a read at a symbolic index is an if-then-else over the cells, ``out`` elsewhere;
* a quantifier or count over ``[lo, hi)`` whose bounds have known intervals (from the scope's
  ``bounds``: ring sizes, scoped counters, integers bounded by the caller) expands into a finite
  conjunction, disjunction or sum with the range as a guard;
* a quantifier over a range too large to expand (``forall id in [id_seq + 1, 2**62)``) whose body
  reads arrays only at the bound variable is the same for every index outside the cells, so the
  cells plus one representative outside them decide it;
* anything else stays a z3 quantifier over integers (exact, only slower).

Constant subterms are folded in Python (an expanded ``rx_status[2]`` is the cell itself), which
keeps the terms small: this is what makes deep unrolling cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from .expr import CONCRETE_OPS, Z3_OPS, Const, Count, Expr, Ite, Op, Quant, Select, Var, _lift, free_vars
from .system import Action, Assign, DefaultArray, Store, StoreRange, System

__all__ = ["CellArray", "CellState", "CellEncoder", "EXPAND_MAX"]

#: Quantifier and count ranges up to this many indices are expanded.
EXPAND_MAX = 64

Term = Any  # a Python int or bool (folded constant) or a z3 expression


def _z(x: Term) -> Any:
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if isinstance(x, int):
        return z3.IntVal(x)
    return x


def _const(x: Term) -> bool:
    return isinstance(x, (bool, int))


def _and(xs: Iterable[Term]) -> Term:
    out = []
    for x in xs:
        if x is True:
            continue
        if x is False:
            return False
        out.append(x)
    return True if not out else out[0] if len(out) == 1 else z3.And(*out)


def _or(xs: Iterable[Term]) -> Term:
    out = []
    for x in xs:
        if x is False:
            continue
        if x is True:
            return True
        out.append(x)
    return False if not out else out[0] if len(out) == 1 else z3.Or(*out)


def _not(x: Term) -> Term:
    return (not x) if isinstance(x, bool) else z3.Not(x)


def _ite(c: Term, a: Term, b: Term) -> Term:
    if isinstance(c, bool):
        return a if c else b
    if _const(a) and _const(b) and type(a) is type(b) and a == b:
        return a
    return z3.If(c, _z(a), _z(b))


def _bin(op: str, a: Term, b: Term) -> Term:
    """``a op b``, folded when both are constants (the operators' meaning: ``expr.CONCRETE_OPS``)."""
    table = CONCRETE_OPS if _const(a) and _const(b) else Z3_OPS
    fn = table.get(op)
    if fn is None:
        raise ValueError(f"unknown operator {op!r}")
    return fn(a, b) if table is CONCRETE_OPS else fn(_z(a), _z(b))


@dataclass
class CellArray:
    """An array of the scope: a term per cell, and the one value it holds everywhere else."""

    cells: dict[int, Term]
    out: Term

    def at(self, i: int) -> Term:
        """The term of index ``i`` (``out`` outside the cells)."""
        return self.cells.get(i, self.out)


@dataclass
class CellState:
    """A state of the scope: ``terms[name]`` is a scalar's term or a :class:`CellArray`."""

    tag: str
    terms: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.terms[name]


@dataclass
class CellEncoder:
    """Encodes the expressions and actions of ``system`` over the states of one scope.

    ``frames``: ring sizes at most this (cells ``[0, frames)`` of arrays indexed by a ring, or
    ``frame_cells``);
    ``index_range``: the cells of arrays indexed by unbounded integers; ``bounds``: upper bounds of
    integer variables that the caller asserts in every state (ring sizes get ``frames``), and
    ``lower``: their lower bounds, used to expand quantifiers and counts (see the module docstring)."""

    system: System
    frames: int
    index_range: tuple[int, int] = (0, 16)
    frame_cells: tuple[int, int] | None = None
    bounds: Mapping[str, int] = field(default_factory=dict)
    lower: Mapping[str, int] = field(default_factory=dict)
    _memo: dict[tuple[int, int], tuple[Any, Any, Term]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._vars = {v.name: v for v in self.system.constants + self.system.state}
        self._sizes = {v.name for v in self._vars.values() if v.size}
        b = {n: self.frames for n in self._sizes}
        b.update(self.bounds)
        self.bounds = b
        self.lower = dict(self.lower)

    # --- the scope -----------------------------------------------------------------------------
    def domain(self, name: str) -> range:
        """The cells of array ``name``."""
        v = self._vars[name]
        if v.index is not None:
            return range(*(self.frame_cells or (0, self.frames)))
        return range(*self.index_range)

    def arrays(self) -> list[str]:
        """The array variables, in declaration order."""
        return [n for n, v in self._vars.items() if v.sort.endswith("array")]

    def fresh_state(self, tag: str) -> CellState:
        """A state of fresh constants (``var@tag``, ``var[i]@tag``, ``var[out]@tag``)."""
        terms: dict[str, Any] = {}
        for name, v in self._vars.items():
            if v.sort == "int":
                terms[name] = z3.Int(f"{name}@{tag}")
            elif v.sort == "bool":
                terms[name] = z3.Bool(f"{name}@{tag}")
            else:
                mk = z3.Int if v.sort == "int_array" else z3.Bool
                terms[name] = CellArray({i: mk(f"{name}[{i}]@{tag}") for i in self.domain(name)},
                                        mk(f"{name}[out]@{tag}"))
        return CellState(tag, terms)

    def scope_facts(self, st: CellState, names: Iterable[str] | None = None) -> list[Any]:
        """The scope's bounds in ``st`` (for ``names`` only, if given): every bounded integer within
        ``[lower, bound]``."""
        want = set(self.bounds) | set(self.lower) if names is None else set(names)
        out = []
        for n in sorted(want & (set(self.bounds) | set(self.lower))):
            if n not in self._vars:
                continue
            t = st[n]
            if n in self.bounds:
                out.append(t <= self.bounds[n])
            if n in self.lower:
                out.append(t >= self.lower[n])
        return out

    def equal(self, a: CellState, b: CellState, names: Iterable[str]) -> list[Any]:
        """``a`` and ``b`` agree on ``names`` (every cell and ``out`` of an array)."""
        out = []
        for n in names:
            x, y = a[n], b[n]
            if isinstance(x, CellArray):
                out += [_z(x.at(i)) == _z(y.at(i)) for i in self.domain(n)]
                out.append(_z(x.out) == _z(y.out))
            else:
                out.append(_z(x) == _z(y))
        return out

    # --- expressions ---------------------------------------------------------------------------
    def expr(self, e: Expr | int | bool, st: CellState, params: Mapping[str, Any] | None = None) -> Any:
        """The z3 term of ``e`` in ``st`` (action parameters from ``params``)."""
        return _z(self.term(e, st, params))

    def term(self, e: Expr | int | bool, st: CellState, params: Mapping[str, Any] | None = None) -> Term:
        """As :meth:`expr`, folded constants left as Python values."""
        e = _lift(e)
        if not params:
            key = (id(e), id(st))
            hit = self._memo.get(key)
            if hit is None or hit[0] is not st or hit[1] is not e:
                hit = (st, e, self._tr(e, st, {}, {}))
                self._memo[key] = hit
            return hit[2]
        return self._tr(e, st, dict(params), {})

    def _look(self, name: str, st: CellState, params: Mapping[str, Any], env: Mapping[str, Term]) -> Any:
        if name in env:
            return env[name]
        if name in params:
            return params[name]
        return st.terms[name]

    def _tr(self, e: Expr, st: CellState, params: Mapping[str, Any], env: dict[str, Term]) -> Term:
        t = type(e)
        if t is Const:
            return e.value  # type: ignore[attr-defined]
        if t is Var:
            x = self._look(e.name, st, params, env)  # type: ignore[attr-defined]
            if isinstance(x, CellArray):
                raise TypeError(f"array {e.name} used as a value")  # type: ignore[attr-defined]
            return x
        if t is Select:
            arr = e.array  # type: ignore[attr-defined]
            if not isinstance(arr, Var):
                raise NotImplementedError(f"select from a non-variable array {arr!r}")
            a = self._look(arr.name, st, params, env)
            return self._select(arr.name, a, self._tr(e.index, st, params, env))  # type: ignore[attr-defined]
        if t is Op:
            op, args = e.op, e.args  # type: ignore[attr-defined]
            if op == "and":
                return _and(self._tr(a, st, params, env) for a in args)
            if op == "or":
                return _or(self._tr(a, st, params, env) for a in args)
            if op == "not":
                return _not(self._tr(args[0], st, params, env))
            if op == "=>":
                a = self._tr(args[0], st, params, env)
                if a is False:
                    return True
                b = self._tr(args[1], st, params, env)
                if a is True or b is True:
                    return b
                return z3.Implies(_z(a), _z(b)) if b is not False else _not(a)
            return _bin(op, self._tr(args[0], st, params, env), self._tr(args[1], st, params, env))
        if t is Ite:
            c = self._tr(e.cond, st, params, env)  # type: ignore[attr-defined]
            if isinstance(c, bool):
                return self._tr(e.then if c else e.other, st, params, env)  # type: ignore[attr-defined]
            return _ite(c, self._tr(e.then, st, params, env), self._tr(e.other, st, params, env))  # type: ignore
        if t is Quant:
            return self._quant(e, st, params, env)  # type: ignore[arg-type]
        if t is Count:
            return self._count(e, st, params, env)  # type: ignore[arg-type]
        raise TypeError(f"not an expression node: {e!r}")

    def _select(self, name: str, a: CellArray, idx: Term) -> Term:
        if isinstance(idx, int) and not isinstance(idx, bool):
            return a.at(idx)
        out = a.out
        for i in reversed(self.domain(name)):
            out = _ite(_z(idx) == i, a.at(i), out)
        return out

    def interval(self, e: Expr, env_iv: Mapping[str, int] | None = None) -> tuple[int | None, int | None]:
        """Bounds ``(lo, hi)`` (inclusive, None when unknown) of the integer ``e`` in every state of
        the scope (``env_iv``: bound variables with known values)."""
        env_iv = env_iv or {}
        if isinstance(e, Const):
            return (None, None) if isinstance(e.value, bool) else (int(e.value), int(e.value))
        if isinstance(e, Var):
            if e.name in env_iv:
                return env_iv[e.name], env_iv[e.name]
            return self.lower.get(e.name), self.bounds.get(e.name)
        if isinstance(e, Op) and e.op in ("+", "-", "div2"):
            a = self.interval(e.args[0], env_iv)
            if e.op == "div2":
                return tuple(None if x is None else x // 2 for x in a)  # type: ignore[return-value]
            b = self.interval(e.args[1], env_iv)
            if e.op == "+":
                return _opt(a[0], b[0], 1), _opt(a[1], b[1], 1)
            return _opt(a[0], b[1], -1), _opt(a[1], b[0], -1)
        if isinstance(e, Ite):
            a, b = self.interval(e.then, env_iv), self.interval(e.other, env_iv)
            return (None if a[0] is None or b[0] is None else min(a[0], b[0]),
                    None if a[1] is None or b[1] is None else max(a[1], b[1]))
        return None, None

    def _range(self, q: Quant | Count, lo: Term, hi: Term, env: Mapping[str, Term]) -> tuple[int, int] | None:
        """A finite ``[a, b)`` that contains ``[lo, hi)`` in every state of the scope (None if unknown)."""
        env_iv = {k: v for k, v in env.items() if isinstance(v, int) and not isinstance(v, bool)}
        a = lo if _const(lo) else self.interval(q.lo, env_iv)[0]
        b = hi if _const(hi) else self.interval(q.hi, env_iv)[1]
        if a is None or b is None:
            return None
        return int(a), int(b)

    def _quant(self, q: Quant, st: CellState, params: Mapping[str, Any], env: dict[str, Term]) -> Term:
        lo, hi = self._tr(q.lo, st, params, env), self._tr(q.hi, st, params, env)
        forall = q.kind == "forall"
        join = _and if forall else _or

        def inst(c: int) -> Term:
            body = self._tr(q.body, st, params, {**env, q.var: c})
            guard = _and([_bin("<=", lo, c), _bin("<", c, hi)])
            return _or([_not(guard), body]) if forall else _and([guard, body])

        rng = self._range(q, lo, hi, env)
        if rng is not None and rng[1] - rng[0] <= EXPAND_MAX:
            return join(inst(c) for c in range(rng[0], rng[1]))
        reps = self._uniform_points(q)
        if reps is not None:
            a, b = reps
            if rng is not None:
                a, b = max(a, rng[0]), min(b, rng[1])
            parts = [inst(c) for c in range(a, b)]
            # every index outside the cells reads ``out`` everywhere: one representative decides them
            body = self._tr(q.body, st, params, {**env, q.var: reps[1]})
            some_below = _and([_bin("<", lo, hi), _bin("<", lo, reps[0])])
            some_above = _and([_bin("<", lo, hi), _bin("<", reps[1], hi)])
            outside = _or([some_below, some_above])
            parts.append(_or([_not(outside), body]) if forall else _and([outside, body]))
            return join(parts)
        k = z3.FreshInt(q.var)
        body = self._tr(q.body, st, params, {**env, q.var: k})
        rngt = z3.And(_z(_bin("<=", lo, k)), _z(_bin("<", k, hi)))
        return z3.ForAll([k], z3.Implies(rngt, _z(body))) if forall else z3.Exists([k], z3.And(rngt, _z(body)))

    def _uniform_points(self, q: Quant) -> tuple[int, int] | None:
        """``(a, b)`` when ``q``'s body reads arrays only at exactly the bound variable and uses it
        nowhere else: then every index outside ``[a, b)`` (the hull of those arrays' cells) gives
        the same body. None otherwise."""
        arrays: set[str] = set()

        def ok(x: Expr) -> bool:
            if isinstance(x, Var):
                return x.name != q.var
            if isinstance(x, Const):
                return True
            if isinstance(x, Select):
                if isinstance(x.index, Var) and x.index.name == q.var and isinstance(x.array, Var):
                    arrays.add(x.array.name)
                    return True
                return ok(x.array) and ok(x.index)
            if isinstance(x, Op):
                return all(ok(a) for a in x.args)
            if isinstance(x, Ite):
                return ok(x.cond) and ok(x.then) and ok(x.other)
            if isinstance(x, (Quant, Count)):
                return q.var not in free_vars(x) or (x.var != q.var and ok(x.lo) and ok(x.hi) and ok(x.body))
            return False

        if not ok(q.body) or not arrays or not all(n in self._vars for n in arrays):
            return None
        doms = [self.domain(n) for n in arrays]
        return min(d.start for d in doms), max(d.stop for d in doms)

    def _count(self, c: Count, st: CellState, params: Mapping[str, Any], env: dict[str, Term]) -> Term:
        lo, hi = self._tr(c.lo, st, params, env), self._tr(c.hi, st, params, env)
        rng = self._range(c, lo, hi, env)
        if rng is None or rng[1] - rng[0] > EXPAND_MAX:
            raise NotImplementedError(f"count {c!r}: its range is not bounded in this scope (bound its variables)")
        total: Term = 0
        for k in range(rng[0], rng[1]):
            body = self._tr(c.body, st, params, {**env, c.var: k})
            total = _bin("+", total, _ite(_and([_bin("<=", lo, k), _bin("<", k, hi), body]), 1, 0))
        return total

    # --- actions -------------------------------------------------------------------------------
    def make_params(self, action: Action, tag: str) -> dict[str, Any]:
        """Fresh constants for ``action``'s parameters (``p@action@tag``)."""
        mk = {"int": z3.Int, "bool": z3.Bool}
        return {p.name: mk[p.sort](f"{p.name}@{action.name}@{tag}") for p in action.params}

    def param_constraints(self, action: Action, st: CellState, params: Mapping[str, Any]) -> list[Any]:
        """The declared ranges of the parameters (``lo <= p < hi``), in ``st``."""
        out = []
        for p in action.params:
            if p.lo is not None:
                out.append(self.expr(p.lo, st, params) <= params[p.name])
            if p.hi is not None:
                out.append(params[p.name] < self.expr(p.hi, st, params))
        return out

    def successor(self, action: Action, pre: CellState, params: Mapping[str, Any],
                  tag: str) -> tuple[CellState, list[Any]]:
        """The post-state of ``action`` from ``pre`` (updates evaluated in ``pre``, folded in order,
        everything else unchanged) and the condition that the step stays in the scope (it writes
        only inside the cells)."""
        terms = {n: (CellArray(dict(x.cells), x.out) if isinstance(x, CellArray) else x)
                 for n, x in pre.terms.items()}
        inside: list[Term] = []
        for u in action.updates:
            if isinstance(u, Assign):
                terms[u.var] = self.term(u.value, pre, params)
            elif isinstance(u, Store):
                idx = self.term(u.index, pre, params)
                val = self.term(u.value, pre, params)
                arr: CellArray = terms[u.array]
                dom = self.domain(u.array)
                if isinstance(idx, int):
                    if idx in dom:
                        arr.cells[idx] = val
                    else:
                        inside.append(False)
                else:
                    for i in dom:
                        arr.cells[i] = _ite(_z(idx) == i, val, arr.cells[i])
                    inside.append(_and([_bin("<=", dom.start, idx), _bin("<", idx, dom.stop)]))
            elif isinstance(u, StoreRange):
                lo, hi = self.term(u.lo, pre, params), self.term(u.hi, pre, params)
                arr = terms[u.array]
                dom = self.domain(u.array)
                for i in dom:
                    body = self._tr(_lift(u.body), pre, dict(params), {u.var: i})
                    arr.cells[i] = _ite(_and([_bin("<=", lo, i), _bin("<", i, hi)]), body, arr.cells[i])
                inside.append(_or([_bin("<=", hi, lo), _and([_bin("<=", dom.start, lo), _bin("<=", hi, dom.stop)])]))
            else:  # pragma: no cover - System validates update kinds
                raise TypeError(f"unknown update {u!r}")
        return CellState(tag, terms), [x for x in inside if x is not True]

    # --- models --------------------------------------------------------------------------------
    def values(self, m: z3.ModelRef, st: CellState, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The values of ``st`` in ``m``: ints, bools, and arrays as ``{index: value}`` over their cells."""
        out: dict[str, Any] = {}
        for n in (names if names is not None else self._vars):
            x = st[n]
            if isinstance(x, CellArray):
                out[n] = {i: _val(m, x.at(i)) for i in self.domain(n)}
            else:
                out[n] = _val(m, x)
        return out

    def defaults(self, m: z3.ModelRef, st: CellState) -> dict[str, Any]:
        """Each array's value outside its cells in ``m``."""
        return {n: _val(m, st[n].out) for n in self.arrays()}

    def concrete(self, m: z3.ModelRef, st: CellState) -> dict[str, Any]:
        """``st`` in ``m`` as a concrete state's values: arrays as :class:`DefaultArray` (exact: the
        scope's arrays are their cells and one value elsewhere)."""
        vals = self.values(m, st)
        dflt = self.defaults(m, st)
        return {n: (DefaultArray(dflt[n], v) if n in dflt else v) for n, v in vals.items()}

    def pin(self, st: CellState, values: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> list[Any]:
        """Constraints fixing ``st`` to ``values`` (arrays over the cells given, ``defaults`` outside)."""
        out = []
        for n, v in values.items():
            x = st[n]
            if isinstance(x, CellArray):
                out += [_z(x.at(i)) == _z(w) for i, w in v.items()]
                if defaults and n in defaults:
                    out.append(_z(x.out) == _z(defaults[n]))
            else:
                out.append(_z(x) == _z(v))
        return out


def _opt(a: int | None, b: int | None, sign: int) -> int | None:
    return None if a is None or b is None else a + sign * b


def _val(m: z3.ModelRef, t: Term) -> Any:
    if _const(t):
        return t
    v = m.eval(_z(t), model_completion=True)
    if z3.is_bool(v):
        return z3.is_true(v)
    return v.as_long()

