"""The names the protocol is written in: state variables, frame statuses, and the helper
formulas several sections share (the head increment, ``forward_ring``, overrun, claims, poll,
``dump_space``)."""

from __future__ import annotations

from typing import Any

from ..abi import Status
from ..expr import (
    Expr,
    and_,
    cyclic_between,
    eq,
    exists,
    forall,
    implies,
    ite,
    ne,
    not_,
    or_,
    var,
)
from ..system import Assign, Param, Store
from .variants import LINUX_4_5, Variant

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
TX_IDLE, TX_COPIED, TX_VALIDATED, TX_ACTED = 0, 1, 2, 3
#: What the last TX kick told the user about the frame at the kernel's TX head (``tx_outcome``):
#: nothing known (a kick is running, or the user wrote that frame since), the walk ran to a frame
#: that is not VALID (sendmsg returned >= 0), or EINVAL for an oversize frame left VALID.
TX_NO_OUTCOME, TX_DRAINED, TX_EINVAL = 0, 1, 2

# --- names ---------------------------------------------------------------------------------------
V = var
rx_n, rx_cap, rx_head, rx_pending = V("rx_frame_nr"), V("rx_capacity"), V("rx_head"), V("rx_pending")
rx_status, rx_owned, rx_held, rx_seq = V("rx_status"), V("rx_owned"), V("rx_held"), V("rx_seq")
rx_len, rx_group, rx_cred = V("rx_len"), V("rx_group"), V("rx_cred")
rx_mlen, rx_mgroup, rx_queued = V("rx_mlen"), V("rx_mgroup"), V("rx_queued")
orphans = V("rq_orphans")
claims = V("claims")
rq_len, congested, sk_err, no_enobufs, drops = V("rq_len"), V("congested"), V("sk_err"), V("no_enobufs"), V("drops")
raised, reported, told, ack_owed = V("enobufs_raised"), V("enobufs_reported"), V("enobufs_told"), V("ack_enobufs")
mapped, file_shared, dump_running = V("mapped"), V("file_shared"), V("dump_running")
drained = V("queue_drained")
sent, in_ring, consumed, aborted, purged = (V(n) for n in ("sent", "in_ring", "consumed", "aborted", "purged"))
tx_n, tx_cap, tx_head, tx_pending = V("tx_frame_nr"), V("tx_capacity"), V("tx_head"), V("tx_pending")
tx_status, tx_len, tx_data = V("tx_status"), V("tx_len"), V("tx_data")
tx_phase, tx_cur, tx_private, tx_plen = V("tx_phase"), V("tx_cur"), V("tx_private"), V("tx_plen")
tx_validated, tx_vlen, tx_inplace = V("tx_validated"), V("tx_vlen"), V("tx_inplace")
tx_ucur, tx_outcome, tx_unacted = V("tx_user_cursor"), V("tx_outcome"), V("tx_unacted")
j, i, k, size, v, n, cap, ln, data, on = (V(x) for x in ("j", "i", "k", "size", "v", "n", "cap", "len", "data", "on"))
grp, rin, rerr = V("group"), V("pollin"), V("pollerr")

rx_on = rx_n >= 1
tx_on = tx_n >= 1


def nxt(x: Expr, nr: Expr) -> Expr:
    """``netlink_increment_head``: 0 after the last frame, else x + 1."""
    return ite(eq(x, nr - 1), 0, x + 1)


def fits_frame(size_: Expr | int) -> Expr:
    """A message of ``size`` bytes can be built in an RX frame (section 6.1; ldiff folded into size)."""
    from ..expr import _lift

    return and_(rx_on, _lift(size_) <= rx_cap)


def _forward_to(target: Expr, variant: Variant) -> Expr:
    """``netlink_forward_ring`` stops at ``target``: every frame from the head up to it is SKIP
    (section 2.3). Before 4.4 the loop was a no-op: the head stays where it is."""
    if variant.skip_broken:
        return eq(target, rx_head)
    return forall(0, rx_n, lambda kk: implies(cyclic_between(kk, rx_head, target), eq(rx_status[kk], SKIP)), "f")


#: ``netlink_overrun`` (6.5), the rule itself: unless NO_ENOBUFS, CONGESTED is set and, if it was
#: clear, sk_err = ENOBUFS (the drop is always counted). Evaluated by every kernel side through
#: :func:`nlmmap.spec.family.overrun_effect`.
OVERRUN_CONGESTED = ite(no_enobufs, congested, True)
OVERRUN_SK_ERR = ite(or_(no_enobufs, congested), sk_err, True)


#: An overrun that begins an ENOBUFS episode (6.5): NO_ENOBUFS is off and the socket was not
#: CONGESTED. The ghost account of raises counts these (written apart from the sk_err update).
EPISODE_STARTS = and_(not_(no_enobufs), not_(congested))


def _overrun() -> tuple:
    """``netlink_overrun`` (6.5): unless NO_ENOBUFS, set CONGESTED and, if it was clear, sk_err =
    ENOBUFS; always count the drop (``sk_drops``, which is also the ghost account's "dropped").
    Ghosts: an episode that begins raises one ENOBUFS the user has not been told of yet."""
    return (Assign("congested", OVERRUN_CONGESTED), Assign("sk_err", OVERRUN_SK_ERR), Assign("drops", drops + 1),
            Assign("sent", sent + 1), Assign("enobufs_raised", raised + ite(EPISODE_STARTS, 1, 0)),
            Assign("enobufs_told", and_(told, not_(EPISODE_STARTS))), Assign("queue_drained", False))


def _rcv_wake(queue_after: Expr, when: Expr | None = None) -> tuple:
    """``netlink_rcv_wake`` (run ``when``, default always): CONGESTED clears when the receive queue
    is empty. Ghost: whether it found the queue empty (so the socket is no longer CONGESTED until the
    next overrun)."""
    empty = eq(queue_after, 0) if when is None else and_(when, eq(queue_after, 0))
    return (Assign("congested", and_(congested, not_(empty))), Assign("queue_drained", or_(drained, empty)))


def _take(idx: Expr, changes: Expr | None = None) -> tuple:
    """The user writes frame ``idx``'s status (a handoff when it ``changes`` the word, default
    always): a kernel message in it counts as taken (consumed), unless the kernel still holds a
    claim on the frame."""
    mine = eq(rx_owned[idx], 0) if changes is None else and_(changes, eq(rx_owned[idx], 0))
    taken = and_(rx_held[idx], mine)
    # a COPY frame handed back before recvmsg returned its message: the message stays queued,
    # without a frame (the user's pairing of frames and messages is off from then on)
    orphaned = rx_queued[idx] if changes is None else and_(changes, rx_queued[idx])
    return (Store("rx_queued", idx, False if changes is None else and_(rx_queued[idx], not_(changes))),
            Assign("rq_orphans", orphans + ite(orphaned, 1, 0)),
            Store("rx_held", idx, and_(rx_held[idx], not_(mine))),
            Store("rx_seq", idx, ite(mine, 0, rx_seq[idx])),
            Assign("consumed", consumed + ite(taken, 1, 0)),
            Assign("in_ring", in_ring - ite(taken, 1, 0)))


def _claim(idx: Expr, status: int, ring_message: bool) -> tuple:
    """Kernel claims frame ``idx`` at its cursor: status, head past it, claim order; for a ring
    message the kernel keeps it (owned) until publish, and its credentials are not written yet. A
    COPY frame gets its header at once (nm_len, nm_group, credentials: the queued skb's, 6.3) and
    its message joins the receive queue. A message still held in the frame (the user released a
    frame the kernel had claimed) is the user's loss: counted as consumed."""
    old = ite(rx_held[idx], 1, 0)
    ups: tuple = (Store("rx_status", idx, status), Assign("rx_head", nxt(idx, rx_n)),
                  Assign("claims", claims + 1), Store("rx_seq", idx, claims + 1), Assign("sent", sent + 1))
    if ring_message:
        ups += (Store("rx_owned", idx, rx_owned[idx] + 1), Assign("rx_pending", rx_pending + 1),
                Store("rx_held", idx, True), Store("rx_cred", idx, False), Assign("in_ring", in_ring + 1 - old),
                Assign("consumed", consumed + old))
    else:
        ups += (Store("rx_held", idx, False), Assign("in_ring", in_ring - old), Assign("consumed", consumed + old),
                Assign("rq_len", rq_len + 1), Store("rx_queued", idx, True),
                Store("rx_len", idx, ln), Store("rx_group", idx, grp), Store("rx_cred", idx, True),
                Store("rx_mlen", idx, ln), Store("rx_mgroup", idx, grp))
    return ups


def ring_pos(x: Expr) -> Expr:
    """How far frame ``x`` lies ahead of the kernel's RX cursor (0 at the cursor): the order in
    which the cursor reaches frames, which is the order of the claims still in the ring (12.2)."""
    return ite(rx_head <= x, x - rx_head, x - rx_head + rx_n)


def oldest_queued(idx: Expr) -> Expr:
    """Frame ``idx``'s message is the head of the receive queue: it is queued, and no queued COPY
    frame lies nearer the cursor (the queue is FIFO and COPY frames are claimed in ring order)."""
    return and_(0 <= idx, rx_queued[idx],
                forall(0, rx_n, lambda kk: implies(rx_queued[kk], ring_pos(idx) <= ring_pos(kk)), "q"))


def choose_queue_head(state: Any) -> dict[str, Any]:
    """The COPY frame whose message recvmsg dequeues (:func:`oldest_queued`), or -1 when no queued
    message has a frame (no RX ring). A kernel side that knows its queue's head has no frame (the
    user released it early) passes -1 itself."""
    nr, head, queued = state["rx_frame_nr"], state["rx_head"], state["rx_queued"]
    best = None
    for step in range(nr):
        idx = (head + step) % nr
        if queued[idx]:
            best = idx
            break
    return {"j": -1 if best is None else best}


def choose_alloc(state: Any) -> dict[str, Any] | None:
    """The frame ``netlink_forward_ring`` stops at (the kernel's deterministic choice for
    ``alloc``/``alloc_full``, 4.4 on): first non-SKIP frame from the head, or None if all are SKIP."""
    nr, head = state["rx_frame_nr"], state["rx_head"]
    st = state["rx_status"]
    idx = head
    for _ in range(nr):
        if st[idx] != SKIP:
            return {"j": idx}
        idx = 0 if idx == nr - 1 else idx + 1
    return None


def choose_alloc_at_head(state: Any) -> dict[str, Any] | None:
    """Before 4.4 ``netlink_forward_ring`` was a no-op: allocation looks at the head frame only."""
    return {"j": state["rx_head"]} if state["rx_frame_nr"] >= 1 else None


def alloc_chooser(variant: Variant):
    """The kernel's choice of frame for ``alloc``/``alloc_full`` under ``variant``."""
    return choose_alloc_at_head if variant.skip_broken else choose_alloc


def poll_in(variant: Variant = LINUX_4_5) -> Expr:
    """POLLIN (section 7): receive queue non-empty, or, with an RX ring, any VALID frame (4.4) /
    the frame behind the head not UNUSED (before 4.4)."""
    if variant.poll_head_minus_one:
        behind = ite(eq(rx_head, 0), rx_n - 1, rx_head - 1)
        ring = and_(rx_on, ne(rx_status[behind], UNUSED))
    else:
        ring = and_(rx_on, exists(0, rx_n, lambda kk: eq(rx_status[kk], VALID), "p"))
    return or_(rq_len >= 1, ring)


def poll_err() -> Expr:
    """POLLERR: a pending socket error (ENOBUFS after an overrun)."""
    return sk_err


def choose_poll(variant: Variant) -> Any:
    """The mask the kernel computes in poll (:func:`poll_in`, :func:`poll_err`), as the poll
    action's parameters."""
    from ..expr import evaluate

    pin, perr = poll_in(variant), poll_err()
    return lambda state: {"pollin": bool(evaluate(pin, state.__getitem__)),
                          "pollerr": bool(evaluate(perr, state.__getitem__))}


def dump_space() -> Expr:
    """``netlink_dump_space`` (section 10): the head frame UNUSED and frame ``n`` UNUSED, where
    ``n = head + frame_max div 2`` minus frame_max (not frame_nr) if past the end."""
    from ..expr import Op

    half = Op("div2", (rx_n - 1, rx_n - 1))
    m = rx_head + half
    m = ite(rx_n - 1 < m, m - (rx_n - 1), m)
    return and_(rx_on, eq(rx_status[rx_head], UNUSED), eq(rx_status[m], UNUSED))



OVERRUN_ACTIONS = ("alloc_full", "alloc_all_skip", "copy_full", "copy_congested_kernel")

#: The RX frame an action works on, and a message's size in bytes (shared action parameters).
FRAME = Param("j", 0, rx_n, doc="RX frame index")
SIZE = Param("size", 0, None, doc="message bytes")
#: The bytes of a message and its multicast group number, as a header carries them (u32 fields).
LEN = Param("len", 0, 1 << 32, doc="nm_len: message bytes")
GROUP = Param("group", 0, 1 << 32, doc="nm_group: destination group number (0: unicast)")
#: The user's writes into the mapping need a mapping (section 4): no VMA, no store.
MAPPED = mapped >= 1


def kernel_tx_read(variant: Variant) -> tuple[Expr, Expr]:
    """What the kernel's TX walk reads after claiming a frame: its private copy (2015 on), or, for
    a frame taken zero-copy (3.10: ``tx_inplace``), the shared frame itself, as (message, length)."""
    if variant.tx_zero_copy:
        return ite(tx_inplace, tx_data[tx_cur], tx_private), ite(tx_inplace, tx_len[tx_cur], tx_plen)
    return tx_private, tx_plen


def zero_copy_exclusive() -> Expr:
    """The 3.10 zero-copy eligibility test (11.3, 12.1), run before the walk: not (file count > 2 or
    mapped > 1), where the file count is the user's descriptor, one reference per mapping (a VMA
    holds its file) and one for other holders (``file_shared``: dup, fork, SCM_RIGHTS). A writer
    that shares the one mapping without a file reference of its own (a CLONE_VM thread, ptrace,
    process_vm_writev) passes it."""
    return and_(1 + mapped + ite(file_shared, 1, 0) <= 2, mapped <= 1)
