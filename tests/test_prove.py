"""nlmmap prove: the default spec is proved for every ring size; each guard conjunct is either
needed by some invariant (deleting it makes prove fail, with a readable CTI) or listed below as
protected by none; the count lemmas hold; the CLI speaks JSON."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from nlmmap.cli import main
from nlmmap.spec.expr import Const, Op, _lift, evaluate, render
from nlmmap.spec.protocol import Variant, queue_system, socket_system
from nlmmap.spec.prove import Verdict, prove_default, prove_system
from nlmmap.spec.system import DefaultArray


def test_prove_defaults_all_ok():
    rep = prove_default(timeout_ms=10000)
    bad = [r.line() for r in rep.results if r.verdict is not Verdict.OK]
    assert not bad, bad
    kinds = {r.kind for r in rep.results}
    assert kinds == {"lemma", "init", "consecution", "step"}
    assert rep.exit_code == 0


def test_prove_cli_json_is_one_document():
    out, err = io.StringIO(), io.StringIO()
    rc = main(["prove", "--json", "--variant", "queue_alloc_under_lock"], out, err)
    assert rc == 0
    doc = json.loads(out.getvalue())
    assert doc["verdict"] == "ok" and doc["z3"] and doc["counts"]["FAILED"] == 0
    assert "SeenIsPrefix" in doc["strengthening"]
    assert " preserves BatchVerdictSound ... ok (" in err.getvalue()


def test_mainline_queue_is_not_inductive_and_cli_exits_1():
    out, err = io.StringIO(), io.StringIO()
    rc = main(["prove", "--variant", "queue_alloc_outside_lock", "--only", "BatchVerdictSound"], out, err)
    assert rc == 1
    assert "FAILED" in err.getvalue() and "counterexample to induction" in err.getvalue()


def _conjuncts(g):
    if isinstance(g, Op) and g.op == "and":
        return [c for a in g.args for c in _conjuncts(a)]
    return [g]


def _guard_mutants():
    for sysm in (socket_system(), queue_system(Variant(queue_alloc_outside_lock=False))):
        for a in sysm.actions:
            cs = _conjuncts(_lift(a.guard))
            if len(cs) == 1 and isinstance(cs[0], Const):
                continue
            for i in range(len(cs)):
                yield pytest.param(sysm, a.name, i, id=f"{sysm.name}-{a.name}-{i}")


#: Guard conjuncts whose deletion no invariant or step property notices. They encode behaviour
#: (errno choices, which path a message takes, when reconfiguration is allowed) that the spec's
#: safety properties do not talk about; the executable model and conformance suite check them.
UNPROTECTED: set[tuple[str, str, str]] = set()  # every guard conjunct is needed by some property

#: The budget per obligation at which every guard mutant must be FAILED (never unknown).
MUTANT_BUDGET_MS = 3000


@pytest.mark.parametrize(("sysm", "action", "index"), list(_guard_mutants()))
def test_deleting_a_guard_conjunct(sysm, action, index):
    a = sysm.action(action)
    cs = _conjuncts(_lift(a.guard))
    rest = cs[:index] + cs[index + 1:]
    guard = Op("and", tuple(rest)) if len(rest) > 1 else (rest[0] if rest else Const(True))
    mutant = dataclasses.replace(sysm, actions=tuple(dataclasses.replace(x, guard=guard) if x is a else x
                                                     for x in sysm.actions))
    results = prove_system(mutant, lemmas=False, actions=[action], timeout_ms=MUTANT_BUDGET_MS)
    unknown = [r.line() for r in results if r.verdict is Verdict.UNKNOWN]
    failed = [r for r in results if r.verdict is Verdict.FAILED]
    if (sysm.name, action, render(cs[index])) in UNPROTECTED:
        assert not failed and not unknown, [r.line() for r in results if r.verdict is not Verdict.OK]
        return
    # a solver unknown is never a catch: the mutant must be FAILED, with a readable CTI
    assert failed, f"deleting {render(cs[index])} from {action} was not caught (unknown: {unknown})"
    for r in failed:  # a readable CTI naming the action, its parameters and a pre/post table
        text = r.cti.text()
        assert f"counterexample to induction: {action}(" in text and "pre" in text and "post" in text
        assert len(text.splitlines()) <= 45


def test_cti_is_a_real_counterexample_in_the_interpreter():
    """The translator checked against the interpreter: a CTI's pre-state satisfies the invariants
    it needs concretely and its post-state breaks the goal when the action is executed."""
    from nlmmap.spec.system import MapState, apply_action

    sysm = queue_system(Variant(queue_alloc_outside_lock=True))
    res = prove_system(sysm, lemmas=False, only=["BatchVerdictSound"], actions=["verdict_batch"])
    r = next(x for x in res if x.verdict is Verdict.FAILED)
    pre = r.cti.pre
    st = MapState({k: (DefaultArray(False if k in ("seen", "queued", "verdicted", "cpu_busy") else 0, v)
                       if isinstance(v, dict) else v) for k, v in pre.items()})
    for name in ("rx_head", "user_cursor", "cpu_frame", "cpu_busy"):
        st.setdefault(name, DefaultArray(False, {}) if name == "cpu_busy" else
                      (DefaultArray(0, {}) if name == "cpu_frame" else 0))
    assert evaluate(sysm.invariant("BatchVerdictSound").formula, st)
    apply_action(sysm.action("verdict_batch"), st, r.cti.params)
    assert not evaluate(sysm.invariant("BatchVerdictSound").formula, st)


def _mailbox(*, take_checks_full: bool = True):
    """A transition system that is not netlink (a ring of mailbox cells with a writer and a reader),
    declared with the same metadata: the engines must prove, search and print it unchanged."""
    from nlmmap.spec.expr import count, eq, ite, var
    from nlmmap.spec.system import Action, Assign, Invariant, Param, StateVar, Store, StoreRange, System

    slots, cell, wr, rd, filled, n = (var(x) for x in ("slots", "cell", "wr", "rd", "filled", "n"))
    EMPTY, FULL = 0, 1
    nxt = lambda x: ite(eq(x, slots - 1), 0, x + 1)  # noqa: E731
    take_guard = (slots >= 1) & eq(cell[rd], FULL) if take_checks_full else slots >= 1
    state = (StateVar("slots", "int", "cells in the ring", size=True),
             StateVar("cell", "int_array", "each cell's state", index="slots", values={EMPTY: "EMPTY", FULL: "FULL"}),
             StateVar("wr", "int", "writer cursor"), StateVar("rd", "int", "reader cursor"),
             StateVar("filled", "int", "cells written and not yet read"))
    actions = (
        Action("setup", "user", (Param("n", 1, None),), eq(slots, 0),
               (Assign("slots", n), StoreRange("cell", "c", 0, n, EMPTY), Assign("wr", 0), Assign("rd", 0),
                Assign("filled", 0)), "-", "make the ring"),
        Action("put", "user", (), (slots >= 1) & eq(cell[wr], EMPTY),
               (Store("cell", wr, FULL), Assign("wr", nxt(wr)), Assign("filled", filled + 1)), "-", "write a cell"),
        Action("take", "user", (), take_guard,
               (Store("cell", rd, EMPTY), Assign("rd", nxt(rd)), Assign("filled", filled - 1)), "-", "read a cell"),
    )
    invariants = (
        Invariant("CursorsInRange",
                  (slots >= 0) & ((slots < 1) | ((0 <= wr) & (wr < slots) & (0 <= rd) & (rd < slots))),
                  "cursors name cells", "-"),
        Invariant("FilledCountsFullCells", eq(filled, count(0, slots, lambda k: eq(cell[k], FULL), "f")),
                  "the count of filled cells is exact", "-"),
    )
    init = eq(slots, 0) & eq(wr, 0) & eq(rd, 0) & eq(filled, 0)
    return System("mailbox", {"take_checks_full": take_checks_full}, (), True, state, init, actions, invariants)


def test_a_second_system_plugs_into_the_engines_unchanged():
    """prove, bmc, the tables and replay know no netlink: a mailbox ring declared with the same
    metadata is proved, its flawed variant refuted with a CTI and a shortest trace, printed by
    value name, and the trace replays."""
    from nlmmap.spec.bmc import bmc, trace_to_itf
    from nlmmap.spec.replay import replay

    good, bad = _mailbox(), _mailbox(take_checks_full=False)
    assert all(r.verdict is Verdict.OK for r in prove_system(good, lemmas=False)), \
        [r.line() for r in prove_system(good, lemmas=False) if r.verdict is not Verdict.OK]
    failed = [r for r in prove_system(bad, lemmas=False) if r.verdict is Verdict.FAILED]
    assert [(r.action, r.property) for r in failed] == [("take", "FilledCountsFullCells")]
    assert "EMPTY" in failed[0].cti.text() and "counterexample to induction: take()" in failed[0].cti.text()
    assert bmc(good, depth=4).verdict is Verdict.OK
    res = bmc(bad, depth=4)
    assert res.verdict is Verdict.FAILED and res.violated == "FilledCountsFullCells"
    assert res.actions == ("init", "setup", "take") and "[EMPTY]" in res.text()
    assert replay(trace_to_itf(res), system=bad).reproduced


# ---- geometry and layout (sections 2.2, 2.4, 3.1, 17.1-17.3) ---------------------------------------
def test_layout_obligations_hold_for_every_accepted_geometry():
    from nlmmap.spec.protocol.geometry import prove_layout

    res = prove_layout()
    assert [r.verdict for r in res] == [Verdict.OK] * len(res), [r.line() for r in res]
    assert {r.property for r in res} >= {"FramesDisjoint", "FramesInsideTheRing", "RingsApartInTheMapping"}


def test_layout_catches_the_documentation_formula(monkeypatch):
    """The kernel documentation's ``offset = i * frame_size`` walk is wrong when a block ends with
    slack (section 2.2): as the frame offset it makes frames cross their block, and prove_layout
    says so."""
    from nlmmap.spec.protocol import geometry

    monkeypatch.setattr(geometry, "frame_offset", lambda g, blk, slot: (blk * g.fpb + slot) * g.frame_size)
    res = {r.property: r.verdict for r in geometry.prove_layout()}
    assert res["FramesInsideTheirBlock"] is Verdict.FAILED


def test_prove_discharges_the_layout_obligations(monkeypatch):
    """``nlmmap prove`` (every system's lemmas, with the first) includes the ring layout's
    obligations, and fails when the frame offset is the documentation's ``i * frame_size``."""
    from nlmmap.spec.protocol import geometry

    names = {n for n, _, _ in geometry.layout_obligations()}
    sysm = socket_system(Variant())
    got = {r.property: r.verdict for r in prove_system(sysm, only=()) if r.system == "layout"}
    assert set(got) == names and set(got.values()) == {Verdict.OK}, got
    monkeypatch.setattr(geometry, "frame_offset", lambda g, blk, slot: (blk * g.fpb + slot) * g.frame_size)
    bad = {r.property: r.verdict for r in prove_system(sysm, only=()) if r.system == "layout"}
    assert bad["FramesInsideTheirBlock"] is Verdict.FAILED


@settings(max_examples=200, deadline=None)
@given(block_pages=st.integers(0, 5), block_nr=st.integers(0, 6),
       frame_size=st.one_of(st.integers(0, 9000), st.integers(6, 1024).map(lambda w: 4 * w)),
       frame_nr=st.one_of(st.none(), st.integers(0, 64)), page=st.sampled_from([4096, 65536]))
def test_layout_formulas_are_the_abi_rules(block_pages, block_nr, frame_size, frame_nr, page):
    """The symbolic geometry rules and frame offsets are those of nlmmap.spec.abi, on concrete
    requests (accepted exactly when check_ring_geometry accepts a create; offsets equal
    RingGeometry.frame_offset). Frame sizes are often aligned and ``frame_nr`` None is the
    consistent count, so that accepted geometries are drawn as often as refused ones."""
    import z3

    from nlmmap.spec.abi import RingGeometry, RingRequest, check_ring_geometry
    from nlmmap.spec.errors import NetlinkError
    from nlmmap.spec.protocol.geometry import Ring, accepted, frame_offset

    block_size = block_pages * page + (7 if block_pages == 5 else 0)  # some not a page multiple
    if frame_nr is None:
        frame_nr = (block_size // frame_size) * block_nr if frame_size else 0  # consistent
    req = RingRequest(block_size, block_nr, frame_size, frame_nr)
    try:
        ok = not check_ring_geometry(req, page_size=page).is_teardown
    except NetlinkError:
        ok = False
    g = Ring("g")
    s = z3.Solver()
    s.add(g.block_size == block_size, g.block_nr == block_nr, g.frame_size == frame_size, g.frame_nr == frame_nr)
    s.add(accepted(g, z3.IntVal(page)))
    assert (s.check() == z3.sat) == ok, req
    event("accepted" if ok else "refused")
    if ok:
        geom = RingGeometry(block_size, block_nr, frame_size, frame_nr)
        fpb = geom.frames_per_block
        for i in range(min(frame_nr, 20)):
            off = z3.simplify(frame_offset(g, z3.IntVal(i // fpb), z3.IntVal(i % fpb)))
            s2 = z3.Solver()
            s2.add(g.block_size == block_size, g.frame_size == frame_size)
            s2.add(z3.Int("o") == off)
            assert s2.check() == z3.sat and s2.model().eval(z3.Int("o")).as_long() == geom.frame_offset(i)


def test_queue_ids_wrap_in_a_small_id_space():
    """The queue system's ids are serial numbers: with an id space of 4 (the proofs hold for any),
    packets queued, read and batch-verdicted across the wrap many times keep every invariant, and
    each batch verdict decides exactly the queued ids not after its id."""
    from nlmmap.spec.system import MapState, apply_action, enabled, violated_invariants

    sysm = queue_system(Variant(queue_alloc_outside_lock=False))
    st = MapState({"id_space": 4, "rx_frame_nr": 2, "rx_status": [0, 0], "rx_head": 0, "frame_id": [0, 0],
                   "cpu_busy": DefaultArray(False), "cpu_frame": DefaultArray(0), "id_seq": 0, "q_head": 1,
                   "assigned": 0, "user_cursor": 0, "seen": DefaultArray(False), "verdicted": DefaultArray(False)})
    read: list[int] = []
    wraps = 0
    for step in range(40):
        if enabled(sysm.action("queue_enqueue"), st, {"c": 0}):
            apply_action(sysm.action("queue_enqueue"), st, {"c": 0})
            wraps += st["id_seq"] == 0
        if enabled(sysm.action("read_frame"), st, {}):
            read.append(st["frame_id"][st["user_cursor"]])
            apply_action(sysm.action("read_frame"), st, {})
        if step % 3 == 2 and read:
            m = read[-1]
            q_head = st["q_head"]
            name = "verdict_batch" if q_head <= m else "verdict_batch_wrap"
            decided = [(q_head + k) % 4 for k in range((m - q_head) % 4 + 1)]
            before = {x: st["verdicted"][x] for x in range(4)}
            apply_action(sysm.action(name), st, {"m": m})
            assert {x for x in range(4) if st["verdicted"][x] and not before[x]} <= set(decided)
            assert st["q_head"] == (m + 1) % 4
            for x in decided:  # fresh ids are reset at enqueue, so each decided id is verdicted now
                assert st["verdicted"][x]
            read.clear()
        assert violated_invariants(sysm, st, user="well-behaved") == [], (step, dict(st))
    assert wraps >= 5
