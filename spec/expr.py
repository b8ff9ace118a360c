"""A small expression language for guards, updates and invariants, with two meanings.

The protocol's actions and invariants are written once, as trees of these nodes
(:mod:`nlmmap.spec.protocol`). Each tree has two interpretations derived here:

* :func:`evaluate`: a concrete value over a concrete state, so the executable reference model
  *executes* the spec's guards and updates (and checks its invariants after every step);
* :func:`to_z3`: a z3 term over symbolic state, so the prover and the bounded model checker
  reason about the very same formulas for every ring size.

Integers are mathematical integers (frame statuses are u32 values the user may set to anything;
the spec compares them with the five statuses). Arrays are total maps from integers; quantifiers
range over integer intervals ``[lo, hi)`` so that the concrete evaluation is a finite loop.
Equality is spelled :func:`eq` / :func:`ne` (``==`` stays Python identity so nodes can be dict keys).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Expr", "Const", "Var", "Select", "Op", "Quant", "Count", "Ite", "E", "const", "var", "eq", "ne", "and_",
    "or_", "not_", "implies", "ite", "forall", "exists", "count", "select", "in_set", "cyclic_between",
    "evaluate", "to_z3", "free_vars", "render", "CONCRETE_OPS", "Z3_OPS",
]

#: What each binary operator of an :class:`Op` means, once: on Python values (the interpreter,
#: constant folding) and on z3 terms (:func:`to_z3`, the finite-scope encoding of ``cells``).
#: ``div2`` halves its first argument (floor; z3's integer ``/`` agrees for a positive divisor).
CONCRETE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "<": operator.lt, "<=": operator.le, "==": operator.eq,
    "!=": operator.ne, "div2": lambda a, _b: a // 2,
}
Z3_OPS: dict[str, Callable[[Any, Any], Any]] = dict(CONCRETE_OPS, div2=lambda a, _b: a / 2)


class Expr:
    """Base of every node; arithmetic and comparison operators build new nodes."""

    __slots__ = ()

    def __add__(self, o: E) -> Expr:
        return Op("+", (self, _lift(o)))

    def __radd__(self, o: E) -> Expr:
        return Op("+", (_lift(o), self))

    def __sub__(self, o: E) -> Expr:
        return Op("-", (self, _lift(o)))

    def __rsub__(self, o: E) -> Expr:
        return Op("-", (_lift(o), self))

    def __lt__(self, o: E) -> Expr:  # type: ignore[override]
        return Op("<", (self, _lift(o)))

    def __le__(self, o: E) -> Expr:  # type: ignore[override]
        return Op("<=", (self, _lift(o)))

    def __gt__(self, o: E) -> Expr:  # type: ignore[override]
        return Op("<", (_lift(o), self))

    def __ge__(self, o: E) -> Expr:  # type: ignore[override]
        return Op("<=", (_lift(o), self))

    def __and__(self, o: E) -> Expr:
        return and_(self, o)

    def __or__(self, o: E) -> Expr:
        return or_(self, o)

    def __invert__(self) -> Expr:
        return not_(self)

    def __getitem__(self, idx: E) -> Expr:
        return Select(self, _lift(idx))

    def __bool__(self) -> bool:
        raise TypeError("an nlmmap.spec expression has no truth value; use and_/or_/not_/eq")

    def __repr__(self) -> str:
        return render(self)


E = Expr | int | bool


@dataclass(frozen=True, eq=False, repr=False)
class Const(Expr):
    """A literal integer or boolean."""

    value: int | bool


@dataclass(frozen=True, eq=False, repr=False)
class Var(Expr):
    """A state variable, an action parameter, a constant, or a bound variable, by name."""

    name: str


@dataclass(frozen=True, eq=False, repr=False)
class Select(Expr):
    """``array[index]``."""

    array: Expr
    index: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Op(Expr):
    """An operator applied to arguments: + - < <= == != and or not =>."""

    op: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Ite(Expr):
    """``then if cond else other``."""

    cond: Expr
    then: Expr
    other: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Count(Expr):
    """``#{k in [lo, hi) : body}``: how many indices satisfy ``body``."""

    var: str
    lo: Expr
    hi: Expr
    body: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Quant(Expr):
    """``forall/exists k in [lo, hi): body`` (``kind`` is "forall" or "exists")."""

    kind: str
    var: str
    lo: Expr
    hi: Expr
    body: Expr


def _lift(x: E) -> Expr:
    if isinstance(x, Expr):
        return x
    if isinstance(x, (bool, int)):
        return Const(x)
    raise TypeError(f"cannot use {x!r} ({type(x).__name__}) in a spec expression")


def const(v: int | bool) -> Expr:
    """A literal."""
    return Const(v)


def var(name: str) -> Var:
    """A named variable."""
    return Var(name)


def eq(a: E, b: E) -> Expr:
    """``a == b``."""
    return Op("==", (_lift(a), _lift(b)))


def ne(a: E, b: E) -> Expr:
    """``a != b``."""
    return Op("!=", (_lift(a), _lift(b)))


def and_(*xs: E) -> Expr:
    """Conjunction (true when empty)."""
    items = [_lift(x) for x in xs]
    return Const(True) if not items else items[0] if len(items) == 1 else Op("and", tuple(items))


def or_(*xs: E) -> Expr:
    """Disjunction (false when empty)."""
    items = [_lift(x) for x in xs]
    return Const(False) if not items else items[0] if len(items) == 1 else Op("or", tuple(items))


def not_(a: E) -> Expr:
    """Negation."""
    return Op("not", (_lift(a),))


def implies(a: E, b: E) -> Expr:
    """``a => b``."""
    return Op("=>", (_lift(a), _lift(b)))


def ite(c: E, a: E, b: E) -> Expr:
    """If-then-else."""
    return Ite(_lift(c), _lift(a), _lift(b))


def select(a: E, i: E) -> Expr:
    """``a[i]``."""
    return Select(_lift(a), _lift(i))


_fresh_counter = [0]


def _quant(kind: str, lo: E, hi: E, body: Callable[[Var], Expr], name: str | None) -> Expr:
    if name is None:
        _fresh_counter[0] += 1
        name = f"k{_fresh_counter[0]}"
    v = Var(name)
    return Quant(kind, name, _lift(lo), _lift(hi), _lift(body(v)))


def forall(lo: E, hi: E, body: Callable[[Var], Expr], name: str | None = None) -> Expr:
    """``forall k in [lo, hi): body(k)``."""
    return _quant("forall", lo, hi, body, name)


def exists(lo: E, hi: E, body: Callable[[Var], Expr], name: str | None = None) -> Expr:
    """``exists k in [lo, hi): body(k)``."""
    return _quant("exists", lo, hi, body, name)


def count(lo: E, hi: E, body: Callable[[Var], Expr], name: str | None = None) -> Expr:
    """``#{k in [lo, hi) : body(k)}``."""
    if name is None:
        _fresh_counter[0] += 1
        name = f"k{_fresh_counter[0]}"
    return Count(name, _lift(lo), _lift(hi), _lift(body(Var(name))))


def in_set(x: E, values: tuple[int, ...]) -> Expr:
    """``x`` equals one of ``values``."""
    return or_(*(eq(x, v) for v in values))


def cyclic_between(k: E, start: E, end: E) -> Expr:
    """``k`` lies in the cyclic interval from ``start`` (included) to ``end`` (excluded) of a ring:
    the frames a cursor at ``start`` passes before reaching ``end`` (empty when start == end)."""
    k, start, end = _lift(k), _lift(start), _lift(end)
    return ite(start <= end, and_(start <= k, k < end), or_(start <= k, k < end))


# --- concrete evaluation -------------------------------------------------------------------------
class _Env:
    __slots__ = ("lookup", "bound")

    def __init__(self, lookup: Callable[[str], Any], bound: dict[str, Any]):
        self.lookup = lookup
        self.bound = bound


def _ev(e: Expr, env: _Env) -> Any:
    t = type(e)
    if t is Const:
        return e.value  # type: ignore[attr-defined]
    if t is Var:
        name = e.name  # type: ignore[attr-defined]
        if name in env.bound:
            return env.bound[name]
        return env.lookup(name)
    if t is Select:
        return _ev(e.array, env)[_ev(e.index, env)]  # type: ignore[attr-defined]
    if t is Op:
        op, args = e.op, e.args  # type: ignore[attr-defined]
        if op == "and":
            return all(_ev(a, env) for a in args)
        if op == "or":
            return any(_ev(a, env) for a in args)
        if op == "not":
            return not _ev(args[0], env)
        if op == "=>":
            return (not _ev(args[0], env)) or bool(_ev(args[1], env))
        fn = CONCRETE_OPS.get(op)
        if fn is None:
            raise ValueError(f"unknown operator {op!r}")
        return fn(_ev(args[0], env), _ev(args[1], env))
    if t is Ite:
        return _ev(e.then if _ev(e.cond, env) else e.other, env)  # type: ignore[attr-defined]
    if t is Count:
        c: Count = e  # type: ignore[assignment]
        lo, hi = _ev(c.lo, env), _ev(c.hi, env)
        saved = env.bound.get(c.var, _MISSING)
        n = 0
        try:
            for k in range(lo, hi):
                env.bound[c.var] = k
                n += bool(_ev(c.body, env))
        finally:
            if saved is _MISSING:
                env.bound.pop(c.var, None)
            else:
                env.bound[c.var] = saved
        return n
    if t is Quant:
        q: Quant = e  # type: ignore[assignment]
        lo, hi = _ev(q.lo, env), _ev(q.hi, env)
        if hi - lo > _MAX_CONCRETE_RANGE:
            raise ValueError(f"quantifier over [{lo}, {hi}) is too large to evaluate concretely")
        saved = env.bound.get(q.var, _MISSING)
        try:
            for k in range(lo, hi):
                env.bound[q.var] = k
                r = bool(_ev(q.body, env))
                if q.kind == "forall" and not r:
                    return False
                if q.kind == "exists" and r:
                    return True
            return q.kind == "forall"
        finally:
            if saved is _MISSING:
                env.bound.pop(q.var, None)
            else:
                env.bound[q.var] = saved
    raise TypeError(f"not an expression node: {e!r}")


_MISSING = object()
_MAX_CONCRETE_RANGE = 1 << 24


def _qrange(lo: int, hi: int) -> range:
    if hi - lo > _MAX_CONCRETE_RANGE:
        raise ValueError(f"quantifier over [{lo}, {hi}) is too large to evaluate concretely")
    return range(lo, hi)


class _Compiler:
    """Python source for an expression, meaning what :func:`_ev` computes, in its order: bound
    variables are the comprehensions' locals, free ones ``V(name)``, operators ``CONCRETE_OPS``'."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {"_qrange": _qrange, "O": CONCRETE_OPS}
        self.n = 0

    def name(self, value: Any, prefix: str) -> str:
        self.n += 1
        key = f"{prefix}{self.n}"
        self.ns[key] = value
        return key

    def src(self, e: Expr, scope: dict[str, str]) -> str:
        t = type(e)
        if t is Const:
            v = e.value  # type: ignore[attr-defined]
            return repr(v) if type(v) in (int, bool) else self.name(v, "c")
        if t is Var:
            name = e.name  # type: ignore[attr-defined]
            return scope[name] if name in scope else f"V({name!r})"
        if t is Select:
            return f"({self.src(e.array, scope)})[{self.src(e.index, scope)}]"  # type: ignore[attr-defined]
        if t is Op:
            op, args = e.op, e.args  # type: ignore[attr-defined]
            if op in ("and", "or"):
                if not args:
                    return "True" if op == "and" else "False"
                return "(not not (" + f" {op} ".join(f"({self.src(a, scope)})" for a in args) + "))"
            if op == "not":
                return f"(not ({self.src(args[0], scope)}))"
            if op == "=>":
                return f"((not ({self.src(args[0], scope)})) or (not not ({self.src(args[1], scope)})))"
            if op not in CONCRETE_OPS:
                raise _NotCompiled(op)
            # looked up at each evaluation, as _ev does: the table is the operators' one meaning
            return f"O[{op!r}]({self.src(args[0], scope)}, {self.src(args[1], scope)})"
        if t is Ite:
            c, a, b = (self.src(x, scope) for x in (e.cond, e.then, e.other))  # type: ignore[attr-defined]
            return f"(({a}) if ({c}) else ({b}))"
        if t in (Count, Quant):
            q: Any = e
            local = f"q{len(scope)}_{self.n}"
            self.n += 1
            lo, hi = self.src(q.lo, scope), self.src(q.hi, scope)
            body = self.src(q.body, {**scope, q.var: local})
            if t is Count:
                return f"sum(1 for {local} in range({lo}, {hi}) if ({body}))"
            fn = "all" if q.kind == "forall" else "any"
            if q.kind not in ("forall", "exists"):
                raise _NotCompiled(q.kind)
            return f"{fn}(({body}) for {local} in _qrange({lo}, {hi}))"
        raise _NotCompiled(t.__name__)


class _NotCompiled(Exception):
    pass


#: Compiled evaluators by node (nodes hash by identity) and by their source (a system built again
#: has new nodes of the same expressions); both bounded. The model evaluates the same guards and
#: invariants at every step, and a compiled one runs several times faster than :func:`_ev`.
_COMPILED: dict[Expr, Callable[[Callable[[str], Any]], Any] | None] = {}
_BY_SOURCE: dict[tuple, Callable[[Callable[[str], Any]], Any]] = {}
_COMPILED_MAX = 1 << 16


def _compiled(e: Expr) -> Callable[[Callable[[str], Any]], Any] | None:
    """The evaluator of ``e`` (a function of the lookup), or None where only :func:`_ev` can (an
    unknown operator, which must raise only if evaluated, or source too deep for Python)."""
    try:
        return _COMPILED[e]
    except KeyError:
        pass
    comp = _Compiler()
    fn: Callable[[Callable[[str], Any]], Any] | None
    try:
        body = comp.src(e, {})
        key = (body, *sorted((k, id(v)) for k, v in comp.ns.items()))
        fn = _BY_SOURCE.get(key)
        if fn is None:
            fn = eval(compile(f"lambda V: {body}", "<nlmmap.spec.expr>", "eval"), comp.ns)
            if len(_BY_SOURCE) >= _COMPILED_MAX:
                _BY_SOURCE.clear()
            _BY_SOURCE[key] = fn
    except (_NotCompiled, SyntaxError, RecursionError, MemoryError, ValueError):
        fn = None
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    _COMPILED[e] = fn
    return fn


def evaluate(e: E, lookup: Callable[[str], Any] | Mapping[str, Any], bound: Mapping[str, Any] | None = None) -> Any:
    """Value of ``e`` where ``lookup(name)`` (or ``lookup[name]``) gives variables' values; arrays
    are anything indexable by int."""
    t = type(e)
    if t is int or t is bool:  # a literal (what _lift would wrap in a Const)
        return e
    if t is Const:
        return e.value  # type: ignore[union-attr]
    fn = lookup.__getitem__ if isinstance(lookup, Mapping) else lookup
    e = _lift(e)
    code = _compiled(e)
    if code is None:
        return _ev(e, _Env(fn, dict(bound or {})))
    if bound:
        b = dict(bound)

        def look(name: str) -> Any:
            return b[name] if name in b else fn(name)

        return code(look)
    return code(fn)


# --- z3 ------------------------------------------------------------------------------------------
def to_z3(e: E, lookup: Callable[[str], Any] | Mapping[str, Any], bound: Mapping[str, Any] | None = None,
          count_fn: Callable[[Any, Callable[[Expr], Any], dict], Any] | None = None) -> Any:
    """The z3 term of ``e``; ``lookup(name)`` gives the z3 term of each free variable. Bounded
    quantifiers become z3 quantifiers over Int with the range as a guard; ``Count`` nodes are
    encoded by ``count_fn(node, encode, bound_env)`` (the prover supplies one)."""
    import z3

    fn = lookup.__getitem__ if isinstance(lookup, Mapping) else lookup
    env = dict(bound or {})

    def go(x: Expr) -> Any:
        t = type(x)
        if t is Const:
            v = x.value  # type: ignore[attr-defined]
            return z3.BoolVal(v) if isinstance(v, bool) else z3.IntVal(v)
        if t is Var:
            return env[x.name] if x.name in env else fn(x.name)  # type: ignore[attr-defined]
        if t is Select:
            return z3.Select(go(x.array), go(x.index))  # type: ignore[attr-defined]
        if t is Op:
            op, args = x.op, [go(a) for a in x.args]  # type: ignore[attr-defined]
            if op == "and":
                return z3.And(*args)
            if op == "or":
                return z3.Or(*args)
            if op == "not":
                return z3.Not(args[0])
            if op == "=>":
                return z3.Implies(args[0], args[1])
            return Z3_OPS[op](args[0], args[1])
        if t is Ite:
            return z3.If(go(x.cond), go(x.then), go(x.other))  # type: ignore[attr-defined]
        if t is Quant:
            q: Quant = x  # type: ignore[assignment]
            k = z3.FreshInt(q.var)
            saved = env.get(q.var, _MISSING)
            env[q.var] = k
            try:
                body, lo, hi = go(q.body), go(q.lo), go(q.hi)
            finally:
                if saved is _MISSING:
                    env.pop(q.var)
                else:
                    env[q.var] = saved
            rng = z3.And(lo <= k, k < hi)
            if q.kind == "forall":
                return z3.ForAll([k], z3.Implies(rng, body))
            return z3.Exists([k], z3.And(rng, body))
        if t is Count:
            if count_fn is None:
                raise NotImplementedError("Count needs a count_fn to be encoded for z3")
            return count_fn(x, go, env)
        raise TypeError(f"not an expression node: {x!r}")

    return go(_lift(e))


# --- inspection ----------------------------------------------------------------------------------
def free_vars(e: E) -> set[str]:
    """Names of the free variables of ``e``."""
    out: set[str] = set()

    def go(x: Expr, bound: frozenset[str]) -> None:
        if isinstance(x, Var):
            if x.name not in bound:
                out.add(x.name)
        elif isinstance(x, Select):
            go(x.array, bound)
            go(x.index, bound)
        elif isinstance(x, Op):
            for a in x.args:
                go(a, bound)
        elif isinstance(x, Ite):
            go(x.cond, bound)
            go(x.then, bound)
            go(x.other, bound)
        elif isinstance(x, (Quant, Count)):
            go(x.lo, bound)
            go(x.hi, bound)
            go(x.body, bound | {x.var})

    go(_lift(e), frozenset())
    return out


_INFIX = {"+": "+", "-": "-", "<": "<", "<=": "<=", "==": "=", "!=": "!=", "=>": "=>", "div2": "div2"}


def render(e: E, names: Mapping[int, str] | None = None) -> str:
    """Readable text of ``e`` (for tables, diagrams and CTIs)."""
    x = _lift(e)
    if isinstance(x, Const):
        v = x.value
        if isinstance(v, bool):
            return "true" if v else "false"
        return (names or {}).get(v, str(v)) if names is not None else str(v)
    if isinstance(x, Var):
        return x.name
    if isinstance(x, Select):
        return f"{render(x.array, names)}[{render(x.index, names)}]"
    if isinstance(x, Op):
        if x.op == "not":
            return f"not {_paren(x.args[0], names)}"
        if x.op in ("and", "or"):
            return f" {x.op} ".join(_paren(a, names) for a in x.args)
        if x.op == "div2":
            return f"{_paren(x.args[0], names)} div 2"
        return f"{_paren(x.args[0], names)} {_INFIX[x.op]} {_paren(x.args[1], names)}"
    if isinstance(x, Ite):
        return f"(if {render(x.cond, names)} then {render(x.then, names)} else {render(x.other, names)})"
    if isinstance(x, Count):
        return f"#{{{x.var} in [{render(x.lo, names)}, {render(x.hi, names)}) : {render(x.body, names)}}}"
    if isinstance(x, Quant):
        return f"{x.kind} {x.var} in [{render(x.lo, names)}, {render(x.hi, names)}): {render(x.body, names)}"
    return repr(x)


def _paren(x: Expr, names: Mapping[int, str] | None) -> str:
    s = render(x, names)
    return f"({s})" if isinstance(x, (Op, Quant)) and not (isinstance(x, Op) and x.op == "not") else s
