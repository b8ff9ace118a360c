"""Spec obligations that a mutation sweep could weaken with every other test green: the ring layout
lemmas (2.2), two TX invariants on concrete states (11.2, 17.9), and the 3.10 zero-copy verdicts
(11.3). Each test here was seen to fail against a spec with the guarded line mutated."""

from __future__ import annotations

import pytest

from nlmmap.spec.abi import NL_MMAP_MSG_ALIGNMENT
from nlmmap.spec.explore import initial_states
from nlmmap.spec.expr import evaluate
from nlmmap.spec.protocol import Variant, socket_system
from nlmmap.spec.protocol.names import (
    COPY,
    RESERVED,
    SKIP,
    TX_COPIED,
    TX_DRAINED,
    TX_EINVAL,
    TX_IDLE,
    TX_NO_OUTCOME,
    UNUSED,
    VALID,
)
from nlmmap.spec.system import apply_action, enabled
from nlmmap.spec.verdict import Verdict

S = socket_system()
ZC = socket_system(Variant(tx_zero_copy=True))


# --- 2.2 layout: a wrong frame offset fails exactly the obligation that protects it ------------------
def _shift(ring, delta):
    """The block/slot offset rule, with every frame of ``ring`` ("rx" or "tx") moved ``delta(g)`` bytes."""
    return lambda g, blk, slot: blk * g.block_size + slot * g.frame_size + (delta(g) if g.name == ring else 0)


@pytest.mark.parametrize(("failed", "offset"), [
    # frames one alignment unit too close: frame i overlaps frame i + 1, yet each stays in its block
    ({"FramesDisjoint"}, lambda g, blk, slot: blk * g.block_size + slot * (g.frame_size - NL_MMAP_MSG_ALIGNMENT)),
    # one block on: the last block's frames lie past block_nr * block_size (0 <= off still holds),
    # out of their block and into the TX ring
    ({"FramesInsideTheRing", "FramesInsideTheirBlock", "RingsApartInTheMapping"},
     lambda g, blk, slot: (blk + 1) * g.block_size + slot * g.frame_size),
    # RX frames one alignment unit on: each starts inside the ring, the last of a slack-free block
    # ends past it (and past its block, over TX frame 0)
    ({"FramesInsideTheRing", "FramesInsideTheirBlock", "RingsApartInTheMapping"},
     _shift("rx", lambda g: NL_MMAP_MSG_ALIGNMENT)),
    # RX frames one alignment unit back: frame 0 starts before its ring (and its block), while
    # every frame still ends inside the ring
    ({"FramesInsideTheRing", "FramesInsideTheirBlock"}, _shift("rx", lambda g: -NL_MMAP_MSG_ALIGNMENT)),
    # TX frame 0 starts a block before the RX ring ends: RX and TX frames overlap
    ({"RingsApartInTheMapping"}, _shift("tx", lambda g: -g.block_size)),
    # TX frames one block on: the last TX block runs past the end of the mapping
    ({"RingsApartInTheMapping"}, _shift("tx", lambda g: g.block_size)),
    # TX frames one frame on: the last of a slack-free block starts at the mapping's end, ends past it
    ({"RingsApartInTheMapping"}, _shift("tx", lambda g: g.frame_size)),
], ids=["disjoint-overlap", "inside-ring-block-on", "inside-ring-align-on",
        "inside-ring-before-start", "rings-apart-overlap",
        "rings-apart-block-past-mapping", "rings-apart-frame-past-mapping"])
def test_s2_2_a_wrong_frame_offset_fails_exactly_its_obligations(monkeypatch, failed, offset):
    """Each wrong offset is caught (a definite FAILED) by the obligations that protect against it,
    and the others stay proved: dropping a conjunct of a goal lets the bug through (2.2)."""
    from nlmmap.spec.protocol import geometry

    monkeypatch.setattr(geometry, "frame_offset", offset)
    res = {r.property: r.verdict for r in geometry.prove_layout(timeout_ms=20000)}
    assert {p for p, v in res.items() if v is Verdict.FAILED} == failed, res
    assert all(v is Verdict.OK for p, v in res.items() if p not in failed), res


# --- 11.2, 17.9: TxProgress and TxRingIsFillOrder on concrete states ----------------------------------
def _socket(system, tx: int = 2, cap: int = 100):
    """A socket of ``system`` with a TX ring of ``tx`` frames of room ``cap``, mapped once."""
    st = initial_states(system, {"rx_frame_nr": (0,), "tx_frame_nr": (0,)})[0]
    apply_action(system.action("set_tx_ring"), st, {"n": tx, "cap": cap})
    apply_action(system.action("mmap"), st, {})
    return st


def _step(system, st, name, **params):
    a = system.action(name)
    assert enabled(a, st, params), f"{name}{params} is not enabled"
    apply_action(a, st, params)


def _holds(system, prop, st) -> bool:
    formula = next(i.formula for i in system.invariants if i.name == prop)
    return bool(evaluate(formula, st.__getitem__))


def test_s11_2_tx_progress_holds_along_a_kick_and_its_einval():
    """Reachable states of a kick (a frame copied, acted on, the walk drained) and of an oversize
    frame refused with EINVAL satisfy TxProgress: a mutant that forbids any of them is wrong."""
    st = _socket(S)
    _step(S, st, "fill_tx_frame", j=0, len=10, data=7)
    seen = []
    for a in ("tx_copy", "tx_validate", "tx_act", "tx_done"):
        _step(S, st, a)
        seen.append((st["tx_phase"], st["tx_outcome"]))
        assert _holds(S, "TxProgress", st), a
    assert seen[0] == (TX_COPIED, TX_NO_OUTCOME) and seen[-1] == (TX_IDLE, TX_DRAINED)
    _step(S, st, "fill_tx_frame", j=1, len=101, data=8)
    _step(S, st, "tx_reject")
    assert (st["tx_outcome"], st["tx_status"][st["tx_head"]]) == (TX_EINVAL, VALID)
    assert _holds(S, "TxProgress", st)


@pytest.mark.parametrize(("phase", "outcome", "head_status", "head_len"), [
    (TX_COPIED, TX_DRAINED, UNUSED, 0),  # a walk running, yet the kick reported drained
    (TX_COPIED, TX_EINVAL, VALID, 101),  # a walk running, yet the kick reported EINVAL
    (TX_IDLE, TX_EINVAL, UNUSED, 101),  # EINVAL, but the oversize frame is no longer VALID
    (TX_IDLE, TX_EINVAL, RESERVED, 101),  # EINVAL, the oversize frame neither VALID nor UNUSED
    (TX_IDLE, TX_EINVAL, VALID, 100),  # EINVAL for a frame that fits
    (TX_IDLE, TX_DRAINED, VALID, 10),  # drained with a VALID frame under the head
], ids=["running-drained", "running-einval", "einval-unused", "einval-reserved", "einval-fits", "drained-valid"])
def test_s11_2_tx_progress_refuses_each_wrong_outcome(phase, outcome, head_status, head_len):
    """Each state breaks one conjunct of TxProgress and no other: deleting that conjunct (phase not
    idle -> no outcome; EINVAL -> head VALID; EINVAL -> oversize; drained -> not VALID) is caught."""
    st = _socket(S)
    st["tx_phase"], st["tx_outcome"] = phase, outcome
    st["tx_status"][0], st["tx_len"][0] = head_status, head_len
    assert st["tx_head"] == 0 and st["tx_capacity"] == 100
    assert not _holds(S, "TxProgress", st)


def test_s11_2_fill_order_holds_of_filled_and_taken_frames():
    """UNUSED and VALID frames in fill order (two filled, one taken) satisfy TxRingIsFillOrder: a
    mutant that drops UNUSED or VALID from the statuses it allows is wrong."""
    st = _socket(S, tx=3)
    _step(S, st, "fill_tx_frame", j=0, len=10, data=1)
    _step(S, st, "fill_tx_frame", j=1, len=10, data=2)
    assert _holds(S, "TxRingIsFillOrder", st)
    _step(S, st, "tx_copy")
    assert [st["tx_status"][k] for k in range(3)] == [UNUSED, VALID, UNUSED]
    assert _holds(S, "TxRingIsFillOrder", st)


@pytest.mark.parametrize("status", [RESERVED, COPY, SKIP], ids=["RESERVED", "COPY", "SKIP"])
def test_s11_2_fill_order_refuses_a_tx_frame_neither_unused_nor_valid(status):
    """A TX frame a well-behaved user never writes (RESERVED, COPY, SKIP), away from the cursors so
    only the UNUSED-or-VALID disjunct is broken, fails TxRingIsFillOrder (2015 on, no zero-copy)."""
    st = _socket(S, tx=3)
    st["tx_status"][1] = status
    assert not _holds(S, "TxRingIsFillOrder", st)
    st["tx_status"][1] = UNUSED
    assert _holds(S, "TxRingIsFillOrder", st)


def test_s11_3_fill_order_allows_exactly_the_frame_taken_zero_copy():
    """3.10: the frame a walk took zero-copy is RESERVED until its skb is freed, and
    TxRingIsFillOrder allows that one frame only while the walk holds it in place."""
    st = _socket(ZC)
    _step(ZC, st, "fill_tx_frame", j=0, len=10, data=1)
    _step(ZC, st, "tx_claim")
    assert st["tx_status"][0] == RESERVED and st["tx_inplace"]
    for a in ("tx_validate", "tx_act"):
        assert _holds(ZC, "TxRingIsFillOrder", st), a
        _step(ZC, st, a)
    assert _holds(ZC, "TxRingIsFillOrder", st)
    for key, value in (("tx_phase", TX_IDLE), ("tx_inplace", False), ("tx_cur", 1)):
        bad = {**st, key: value}
        assert not _holds(ZC, "TxRingIsFillOrder", bad), key
    for status in (COPY, SKIP):  # the frame under the walk, in place but not RESERVED
        st["tx_status"][0] = status
        assert not _holds(ZC, "TxRingIsFillOrder", st), status
    st["tx_status"][0] = RESERVED
    _step(ZC, st, "tx_release")
    assert _holds(ZC, "TxRingIsFillOrder", st)


# --- 11.3: the 3.10 zero-copy walk fails exactly the two 2014-race obligations ------------------------
def test_s11_3_zero_copy_fails_exactly_the_2014_race_and_proves_the_rest():
    """With 3.10 zero-copy a user write into a frame the kernel validated in place breaks
    TxActsOnValidated and HeaderWithinFrame (fill_tx_frame, write_tx), CTIs the interpreter confirms;
    every other obligation, the zero-copy ones included, is proved, none unknown."""
    from nlmmap.spec.prove import prove_system

    res = prove_system(ZC, lemmas=False)
    failed = {(r.action, r.property) for r in res if r.verdict is Verdict.FAILED}
    assert failed == {(a, p) for a in ("fill_tx_frame", "write_tx") for p in ("TxActsOnValidated", "HeaderWithinFrame")}
    for r in res:
        if r.verdict is Verdict.FAILED:
            assert r.check.startswith("confirmed by the interpreter"), r.line()
        else:
            assert r.verdict is Verdict.OK, r.line()
    keys = {(r.kind, r.action, r.property) for r in res}
    for need in (("step", "tx_claim", "KernelWritesOnlyOwnedFrames"),
                 ("step", "tx_release", "KernelWritesOnlyOwnedFrames"),
                 ("consecution", "tx_claim", "TxRingIsFillOrder"),
                 ("consecution", "tx_release", "ZeroCopyFrameStaysReserved")):
        assert need in keys, need
