"""The prover's engine (nlmmap.spec.prove, cells, cti): honest counts, CTIs the interpreter confirms,
engine bugs reported as ERROR, no unknown at the default budget on spec mutants, and the finite-scope
encoding agreeing with the interpreter."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
import z3

from nlmmap.cli import main
from nlmmap.spec.cells import CellEncoder
from nlmmap.spec.expr import free_vars
from nlmmap.spec.protocol import Variant, queue_system, socket_system
from nlmmap.spec.prove import (
    DEFAULT_TIMEOUT_MS,
    Verdict,
    prove_system,
    prove_systems,
    untouched,
)
from nlmmap.spec.system import Assign, DefaultArray, MapState, Store, apply_action, enabled

QUEUE_FIX = Variant(queue_alloc_outside_lock=False)


@pytest.fixture(scope="module")
def socket_results():
    return prove_system(socket_system(), lemmas=False)


def _with_action(system, action):
    return dataclasses.replace(system, actions=tuple(action if a.name == action.name else a for a in system.actions))


# --- honest counts -----------------------------------------------------------------------------------
def test_untouched_is_read_off_modifies_and_every_such_obligation_is_proved(socket_results):
    """An obligation is untouched exactly when its action writes none of the invariant's variables,
    and it is still proved (by the frame condition), never skipped."""
    system = socket_system()
    invs = {i.name: i for i in system.invariants + system.proof_aids}
    seen = {True: 0, False: 0}
    for r in socket_results:
        if r.kind != "consecution":
            assert not r.untouched
            continue
        syntactic = untouched(system.action(r.action), invs[r.property].formula)
        assert r.untouched == syntactic, r.line()
        assert r.verdict is Verdict.OK, r.line()
        assert (", untouched)" in r.line()) == syntactic
        seen[syntactic] += 1
    assert seen[True] and seen[False]  # both kinds occur


def test_untouched_is_confirmed_by_a_solver_not_assumed(monkeypatch):
    """If the generated frame condition were wrong (an action changing a variable it does not
    list), the frame-only query would not be unsatisfiable and the obligation would not be counted
    untouched: the flag is a proof, not the syntactic guess."""
    import nlmmap.spec.prove as prove_mod

    real = prove_mod.successor

    def leaky(enc, a, pre, params, tag):
        post = real(enc, a, pre, params, tag)
        post.terms["rx_head"] = post.terms["rx_head"] + 1  # "everything else unchanged" broken
        return post

    monkeypatch.setattr(prove_mod, "successor", leaky)
    res = prove_system(socket_system(), lemmas=False, only=["HeadInRange"], actions=["set_no_enobufs"])
    assert [r.untouched for r in res] == [False]


def test_summary_and_json_count_the_untouched_apart():
    out, err = io.StringIO(), io.StringIO()
    rc = main(["prove", "--json", "--variant", "queue_alloc_under_lock"], out, err)
    assert rc == 0
    doc = json.loads(out.getvalue())
    flags = [o["untouched"] for o in doc["obligations"]]
    assert doc["untouched"] == sum(flags) > 0
    assert doc["counts"]["ok"] == len(doc["obligations"]) and doc["slowest_ms"] > 0
    assert f"proved, of which {doc['untouched']} untouched by the action;" in err.getvalue()
    assert sum(", untouched)" in line for line in err.getvalue().splitlines()) == doc["untouched"]


# --- CTIs checked by the interpreter -----------------------------------------------------------------
def test_every_cti_is_confirmed_by_the_interpreter():
    """Mainline nfqueue is not inductive: its CTI is shown only after the interpreter runs it
    (action enabled, hypotheses true, goal false after the action)."""
    res = prove_system(queue_system(Variant(queue_alloc_outside_lock=True)), lemmas=False,
                       only=["BatchVerdictSound"])
    failed = [r for r in res if r.verdict is Verdict.FAILED]
    assert failed
    for r in failed:
        assert r.check.startswith("confirmed by the interpreter"), r.line()
        assert "CTI in scope N <= 3" in r.line() or "CTI from the unbounded query" in r.line()
        st = r.cti.concrete(queue_system(Variant(queue_alloc_outside_lock=True)))
        a = queue_system().action(r.action)
        assert enabled(a, st, r.cti.params)


def test_a_cti_the_interpreter_refutes_is_an_engine_error(monkeypatch):
    """A translator that disagrees with the interpreter (here: the scope's successor forgets an
    update) must give verdict ERROR (exit 4), never a printed counterexample."""
    real = CellEncoder.successor

    def forgetful(self, action, pre, params, tag):
        if action.name == "read_frame":
            action = dataclasses.replace(action, updates=tuple(u for u in action.updates
                                                               if not (isinstance(u, Assign) and
                                                                       u.var == "user_cursor")))
        return real(self, action, pre, params, tag)

    monkeypatch.setattr(CellEncoder, "successor", forgetful)
    system = queue_system(QUEUE_FIX)
    res = prove_system(system, lemmas=False, actions=["read_frame"])
    errors = [r for r in res if r.verdict is Verdict.ERROR]
    assert errors and not any(r.verdict is Verdict.FAILED for r in res)
    for r in errors:
        assert "engine bug" in r.reason and "the interpreter disagrees" in r.reason
        assert "counterexample to induction" not in r.text()
    rep = prove_systems([system], only=[errors[0].property])
    assert rep.exit_code == 4 and "ERROR" in rep.summary()


def test_check_cti_names_each_disagreement():
    """The smoke test itself: a pre-state that breaks a hypothesis, a disabled action and a goal
    that still holds are each reported."""
    from nlmmap.spec.cti import Cti, check_cti

    system = queue_system(QUEUE_FIX)
    state = {v.name: (DefaultArray(False if v.sort == "bool_array" else 0) if v.sort.endswith("array") else 0)
             for v in system.state}
    state["rx_frame_nr"] = 2
    values = {k: (dict(v) if isinstance(v, DefaultArray) else v) for k, v in state.items()}
    defaults = {k: v.default for k, v in state.items() if isinstance(v, DefaultArray)}
    bogus = Cti("read_frame", {}, {}, {}, state=values, defaults=defaults)
    hyps = [(i.name, i.formula) for i in system.invariants]
    chk = check_cti(system, bogus, hyps, system.invariant("HeadInRange").formula, step=False)
    assert not chk.confirmed
    text = chk.text()
    assert "read_frame{} is not enabled" in text and "the invariant holds after the action" not in text


# --- no unknown at the default budget ----------------------------------------------------------------
def _drop_update_mutants():
    for sysm in (socket_system(), socket_system(Variant(tx_zero_copy=True)), queue_system(QUEUE_FIX)):
        tag = sysm.name + ("-zc" if sysm.variant.get("tx_zero_copy") else "")
        for a in sysm.actions:
            for i, u in enumerate(a.updates):
                target = u.var if isinstance(u, Assign) else u.array
                yield pytest.param(sysm, a.name, i, id=f"{tag}-{a.name}-drop-{target}-{i}")


def _value_mutants():
    """Spec bugs of the kind the issue names: a status written wrong, a cursor arithmetic slip."""
    from nlmmap.spec.expr import Const, Op

    sysm = queue_system(QUEUE_FIX)
    a = sysm.action("read_frame")
    # read_frame writes RESERVED instead of UNUSED: was unknown at the default budget (the small
    # scope kept the proof aid's quantifier over every id, the unbounded query timed out)
    yield pytest.param(sysm, dataclasses.replace(a, updates=tuple(
        Store(u.array, u.index, Const(1)) if isinstance(u, Store) and u.array == "rx_status" else u
        for u in a.updates)), id="queue-read_frame-writes-RESERVED")
    s = socket_system()
    for name in ("alloc", "copy_claim", "tx_copy"):
        act = s.action(name)
        ups = tuple(Assign(u.var, Op("+", (u.value, Const(1)))) if isinstance(u, Assign) and
                    u.var in ("rx_head", "tx_head") else u for u in act.updates)
        yield pytest.param(s, dataclasses.replace(act, updates=ups), id=f"socket-{name}-head-off-by-one")


@pytest.mark.parametrize(("sysm", "action", "index"), list(_drop_update_mutants()))
def test_dropping_an_update_is_decided_at_the_default_budget(sysm, action, index):
    """Every obligation of a spec with one update deleted is decided (ok, or FAILED with a CTI
    the interpreter confirms) at the default budget: never unknown, never ERROR."""
    a = sysm.action(action)
    mutant = _with_action(sysm, dataclasses.replace(a, updates=a.updates[:index] + a.updates[index + 1:]))
    res = prove_system(mutant, lemmas=False, actions=[action], timeout_ms=DEFAULT_TIMEOUT_MS)
    bad = [r.line() for r in res if r.verdict in (Verdict.UNKNOWN, Verdict.ERROR)]
    assert not bad, bad
    for r in res:
        if r.verdict is Verdict.FAILED:
            assert r.check.startswith("confirmed by the interpreter"), r.line()


@pytest.mark.parametrize(("sysm", "mutated"), list(_value_mutants()))
def test_realistic_spec_bugs_are_caught_with_a_confirmed_cti(sysm, mutated):
    res = prove_system(_with_action(sysm, mutated), lemmas=False, actions=[mutated.name])
    assert not [r.line() for r in res if r.verdict in (Verdict.UNKNOWN, Verdict.ERROR)]
    failed = [r for r in res if r.verdict is Verdict.FAILED]
    assert failed and all(r.check.startswith("confirmed by the interpreter") for r in failed)
    # each is found in the small scope, quantifier-free there: before the cell encoding the queue
    # mutant's small-scope query kept the proof aid's quantifier over every id (z3: unknown,
    # "incomplete quantifiers") and the obligation was left to the unbounded query
    assert all(r.found == "in scope N <= 3" for r in failed), [r.line() for r in failed]


# --- the finite-scope encoding against the interpreter -----------------------------------------------
def _random_states(system, n, seed):
    """Concrete states of the scope (arrays: a few cells and a default) with small values."""
    import random

    rnd = random.Random(seed)
    enc = CellEncoder(system, frames=3, index_range=(-2, 6))
    for _ in range(n):
        st = {}
        for v in system.constants + system.state:
            if v.sort == "int":
                st[v.name] = rnd.randint(0, 3) if v.size else rnd.randint(-1, 4)
            elif v.sort == "bool":
                st[v.name] = rnd.random() < 0.5
            else:
                pick = (lambda: rnd.random() < 0.5) if v.sort == "bool_array" else (lambda: rnd.randint(-1, 4))
                st[v.name] = DefaultArray(pick(), {i: pick() for i in enc.domain(v.name)})
        yield enc, st


def _pin(enc, sym, st):
    out = []
    for n, x in st.items():
        if isinstance(x, DefaultArray):
            out += [sym[n].cells[i] == x[i] for i in enc.domain(n)] + [sym[n].out == x.default]
        else:
            out.append(sym[n] == x)
    return out


@pytest.mark.parametrize("system", [socket_system(), queue_system(QUEUE_FIX)], ids=["socket", "queue"])
def test_cell_encoding_evaluates_every_formula_as_the_interpreter(system):
    """Each invariant, guard and update of the system, evaluated by z3 in the cell encoding on a
    pinned concrete state, gives the interpreter's value (the post-state too)."""
    import random

    from nlmmap.spec.cti import evaluate_finite

    rnd = random.Random(7)
    checked = 0
    for enc, st in _random_states(system, 40, seed=len(system.actions)):
        sym = enc.fresh_state("s")
        s = z3.Solver()
        s.set("timeout", 10000)
        s.add(*_pin(enc, sym, st))
        assert s.check() == z3.sat
        m = s.model()
        state = MapState(st)

        def agrees(term, want: bool, s=s) -> bool:  # the pinned state forces term == want (quantifiers too)
            return s.check(term != z3.BoolVal(want)) == z3.unsat

        for inv in system.invariants + system.proof_aids:
            want = bool(evaluate_finite(inv.formula, state.__getitem__, state))
            assert agrees(enc.expr(inv.formula, sym), want), inv.name
        for a in system.actions:
            picks = {p.name: (rnd.random() < 0.5 if p.sort == "bool" else rnd.randint(-1, 4)) for p in a.params}
            prm = {p.name: (z3.BoolVal(x) if isinstance(x, bool) else z3.IntVal(x)) for p, x in
                   zip(a.params, picks.values(), strict=True)}
            try:
                ok = enabled(a, state, picks)
            except (IndexError, KeyError):
                continue
            cond = z3.And(*enc.param_constraints(a, sym, prm), enc.expr(a.guard, sym, prm))
            assert agrees(cond, ok), (a.name, picks)
            if not ok:
                continue
            post, inside = enc.successor(a, sym, prm, "post")
            if not all(z3.is_true(m.eval(z3.BoolVal(c) if isinstance(c, bool) else c, model_completion=True))
                       for c in inside):
                continue  # the step writes outside the cells: not taken in the scope
            conc = MapState(dict(state))
            apply_action(a, conc, picks)
            for n in a.modifies:
                got = enc.values(m, post, [n])[n]
                want = conc[n]
                if isinstance(got, dict):
                    assert all(got[i] == want[i] for i in enc.domain(n)), (a.name, picks, n)
                else:
                    assert got == want, (a.name, picks, n)
            checked += 1
    assert checked > 10


def test_free_variables_of_untouched_goals_are_really_unwritten():
    """The syntactic rule, spelled out on one pair: set_no_enobufs writes no_enobufs and congested,
    which TxActsOnValidated does not mention."""
    s = socket_system()
    a, inv = s.action("set_no_enobufs"), s.invariant("TxActsOnValidated")
    assert not set(a.modifies) & free_vars(inv.formula) and untouched(a, inv.formula)
    assert not untouched(s.action("tx_validate"), inv.formula)


def test_run_prove_cli_is_prove_as_one_call():
    """What `nlmmap verify` runs: the same lines, summary and JSON document as `nlmmap prove`."""
    from nlmmap.spec.prove import run_prove_cli

    out, err = io.StringIO(), io.StringIO()
    rc = run_prove_cli([queue_system(QUEUE_FIX)], json_out=True, out=out, err=err)
    doc = json.loads(out.getvalue())
    assert rc == 0 and doc["verdict"] == "ok" and len(doc["obligations"]) == len(err.getvalue().splitlines()) - 3
    assert err.getvalue().splitlines()[-1].startswith("nlmmap prove: ") and "untouched by the action" in err.getvalue()
    rc = run_prove_cli([queue_system(Variant(queue_alloc_outside_lock=True))], json_out=False, out=out, err=err,
                       only=["BatchVerdictSound"])
    assert rc == 1 and "counterexample to induction" in err.getvalue()
