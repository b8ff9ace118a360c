"""The compiled evaluator of spec expressions (``nlmmap.spec.expr.evaluate``) means what the tree
interpreter (``expr._ev``) means: the same value, or the same exception, for random expressions
over integers, booleans, arrays, bound variables and every node kind."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nlmmap.spec import expr as X

NAMES = ("a", "b", "arr", "flag")
STATE = {"a": 2, "b": -1, "arr": [3, 0, 1], "flag": True}


def _exprs() -> st.SearchStrategy[X.Expr]:
    leaf = st.one_of(st.integers(-3, 4).map(X.Const), st.booleans().map(X.Const),
                     st.sampled_from(NAMES + ("k", "j")).map(X.Var))

    def extend(sub: st.SearchStrategy[X.Expr]) -> st.SearchStrategy[X.Expr]:
        binop = st.sampled_from(sorted(X.CONCRETE_OPS))
        binder = st.sampled_from(("k", "j", "a", "b"))  # a and b: bound over the state's own a and b
        bounds = st.one_of(st.integers(-1, 3).map(X.Const), sub)
        # a body that uses its bound variable, or anything
        body = st.one_of(st.builds(lambda op, x: lambda v: X.Op(op, (X.Var(v), x)), binop, sub),
                         sub.map(lambda x: lambda v: x))
        return st.one_of(
            st.builds(lambda op, a, b: X.Op(op, (a, b)), binop, sub, sub),
            st.builds(lambda op, args: X.Op(op, tuple(args)), st.sampled_from(("and", "or")),
                      st.lists(sub, max_size=3)),
            st.builds(lambda a: X.Op("not", (a,)), sub),
            st.builds(lambda a, b: X.Op("=>", (a, b)), sub, sub),
            st.builds(X.Ite, sub, sub, sub),
            st.builds(lambda i: X.Select(X.Var("arr"), i), sub),
            st.builds(lambda v, lo, hi, body: X.Count(v, lo, hi, body(v)), binder, bounds, bounds, body),
            st.builds(lambda kind, v, lo, hi, body: X.Quant(kind, v, lo, hi, body(v)),
                      st.sampled_from(("forall", "exists")), binder, bounds, bounds, body),
        )

    return st.recursive(leaf, extend, max_leaves=12)


def _outcome(fn):
    try:
        return ("value", fn())
    except Exception as e:  # the exception's kind is part of the meaning
        return ("raises", type(e).__name__)


@settings(max_examples=400, deadline=None)
@given(e=_exprs(), bound=st.dictionaries(st.sampled_from(("k", "a")), st.integers(-2, 3), max_size=2))
def test_compiled_evaluation_is_the_interpreters(e, bound):
    def look(name):
        return STATE[name]  # KeyError for an unbound k or j: the same in both

    want = _outcome(lambda: X._ev(e, X._Env(look, dict(bound))))
    got = _outcome(lambda: X.evaluate(e, look, bound))
    assert got == want, X.render(e)
    if want[0] == "value":
        assert type(got[1]) is type(want[1]), X.render(e)  # True is not 1


def test_an_unknown_operator_raises_only_when_evaluated():
    bad = X.Op("%%", (X.Const(1), X.Const(2)))
    assert X.evaluate(X.Ite(X.Const(True), X.Const(5), bad), {}) == 5
    try:
        X.evaluate(bad, {})
    except ValueError as e:
        assert "unknown operator" in str(e)
    else:
        raise AssertionError("an unknown operator evaluated")


def test_a_system_built_again_reuses_the_compiled_guards():
    from nlmmap.spec.protocol import socket_system

    a, b = socket_system(), socket_system()
    ga, gb = a.actions[0].guard, b.actions[0].guard
    assert ga is not gb
    fa = X._compiled(ga)
    assert fa is not None and X._compiled(gb) is fa


def test_the_operator_table_is_read_at_each_evaluation(monkeypatch):
    """``CONCRETE_OPS`` is the operators' one meaning: changing it changes what an expression
    compiled before means, as it changes the interpreter's."""
    e = X.Op("<", (X.Var("a"), X.Const(2)))
    assert X.evaluate(e, STATE) is False  # a == 2: compiled now
    monkeypatch.setitem(X.CONCRETE_OPS, "<", lambda x, y: x <= y)
    assert X.evaluate(e, STATE) is True
    assert X._ev(e, X._Env(STATE.__getitem__, {})) is True
