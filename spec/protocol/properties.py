"""What the socket protocol must guarantee (section 17): invariants of every reachable state and
step properties of every kernel step, each named after what it protects; strengthening
invariants (marked) only make the others inductive.

The properties about effects are invariants over state that records what happened: the claim
number and the message of each frame (``rx_seq``, ``rx_mlen``, ``rx_mgroup``), the queued COPY
frames (``rx_queued``), the ENOBUFS raised and reported (``enobufs_*``), the TX walk's frame
(``tx_cur``), the user's TX cursor and what the last kick returned (``tx_outcome``); the
properties of what a call observes (poll's mask) are step properties over the call's results,
stated apart from the guard that computes them."""

from __future__ import annotations

from ..expr import Expr, and_, cyclic_between, eq, exists, forall, implies, in_set, ite, ne, not_, or_
from ..expr import count as count_
from ..system import Invariant, StepProperty
from .names import (
    COPY,
    RESERVED,
    SKIP,
    TX_ACTED,
    TX_COPIED,
    TX_DRAINED,
    TX_EINVAL,
    TX_IDLE,
    TX_NO_OUTCOME,
    TX_VALIDATED,
    UNUSED,
    VALID,
    aborted,
    ack_owed,
    claims,
    congested,
    consumed,
    drained,
    drops,
    dump_running,
    fits_frame,
    in_ring,
    j,
    kernel_tx_read,
    mapped,
    no_enobufs,
    nxt,
    orphans,
    purged,
    raised,
    reported,
    rerr,
    rin,
    ring_pos,
    rq_len,
    rx_cap,
    rx_cred,
    rx_group,
    rx_head,
    rx_held,
    rx_len,
    rx_mgroup,
    rx_mlen,
    rx_n,
    rx_on,
    rx_owned,
    rx_pending,
    rx_queued,
    rx_seq,
    rx_status,
    sent,
    size,
    sk_err,
    told,
    tx_cap,
    tx_cur,
    tx_head,
    tx_inplace,
    tx_len,
    tx_n,
    tx_on,
    tx_outcome,
    tx_pending,
    tx_phase,
    tx_status,
    tx_ucur,
    tx_unacted,
    tx_validated,
    tx_vlen,
    zero_copy_exclusive,
)
from .variants import Variant

_MAPPED_WRITES = ("release_frame", "skip_frame", "write_status", "write_rx_header", "fill_tx_frame", "write_tx")


def _dump_space_kernel() -> Expr:
    """``netlink_dump_space`` as section 10 words it, written out for the property that poll
    honours it: head frame UNUSED, and the frame ``head + frame_max div 2`` (less frame_max past
    the end) UNUSED."""
    from ..expr import Op

    fmax = rx_n - 1
    m = rx_head + Op("div2", (fmax, fmax))
    return and_(rx_on, eq(rx_status[rx_head], UNUSED), eq(rx_status[ite(fmax < m, m - fmax, m)], UNUSED))


def socket_invariants(variant: Variant) -> tuple[Invariant, ...]:
    """The socket's invariants (some hold whatever the user writes, others for a well-behaved user)."""
    src, srclen = kernel_tx_read(variant)
    published = lambda kk: and_(rx_seq[kk] >= 1, eq(rx_owned[kk], 0))  # noqa: E731
    tx_valid = lambda kk: eq(tx_status[kk], VALID)  # noqa: E731
    return (
        Invariant("HeadInRange", and_(implies(rx_on, and_(0 <= rx_head, rx_head < rx_n)),
                                      implies(tx_on, and_(0 <= tx_head, tx_head < tx_n))),
                  "the kernel cursor always names a frame of its ring", "17.4"),
        Invariant("NoSilentLoss",
                  and_(eq(sent, in_ring + rq_len + consumed + drops + aborted + purged),
                       eq(in_ring, count_(0, rx_n, lambda kk: rx_held[kk], "h")),
                       implies(congested, or_(sk_err, told)), implies(ack_owed, sk_err)),
                  "every message the kernel sends is in a frame, in the receive queue, taken by the user, "
                  "or counted dropped; a drop without NETLINK_NO_ENOBUFS leaves the socket CONGESTED with "
                  "its episode's ENOBUFS pending or already reported, and a lost ACK's ENOBUFS is pending",
                  "6.5, 17, 20"),
        Invariant("EnobufsOncePerEpisode",
                  reported + ite(sk_err, 1, 0) <= raised,
                  "recvmsg reports each ENOBUFS once and clears it; it is raised once per episode of "
                  "overruns (and once per lost ACK), never while NETLINK_NO_ENOBUFS is set", "6.5, 8, 19"),
        Invariant("CongestionEndsWhenDrained", implies(drained, not_(congested)),
                  "once recvmsg or poll finds the receive queue empty the socket is no longer CONGESTED "
                  "(netlink_rcv_wake), until the next overrun", "6.5, 7, 8"),
        Invariant("NoEnobufsSilences", implies(no_enobufs, not_(congested)),
                  "with NETLINK_NO_ENOBUFS an overrun neither congests the socket nor raises ENOBUFS", "6.5, 19"),
        Invariant("PendingMatchesReserved",
                  and_(eq(rx_pending, count_(0, rx_n, lambda kk: rx_owned[kk] >= 1, "o")),
                       forall(0, rx_n, lambda kk: and_(implies(rx_owned[kk] >= 1,
                                                                and_(eq(rx_status[kk], RESERVED), rx_held[kk])),
                                                        implies(eq(rx_status[kk], RESERVED), eq(rx_owned[kk], 1))),
                              "r")),
                  "pending counts exactly the frames the kernel holds RESERVED (for a user that never "
                  "writes RESERVED or releases a frame it does not own)", "17.6", user="well-behaved"),
        Invariant("RingOrderIsAllocationOrder",
                  forall(0, rx_n, lambda a: forall(0, rx_n, lambda b: and_(
                      implies(and_(rx_seq[a] >= 1, rx_seq[b] >= 1, rx_seq[a] < rx_seq[b]), ring_pos(a) < ring_pos(b)),
                      implies(and_(rx_seq[a] >= 1, eq(rx_seq[a], rx_seq[b])), eq(a, b))), "b"), "a"),
                  "messages still in the ring appear in the order their frames were claimed, starting "
                  "from the kernel cursor (not the order they were sent)", "12.2", user="well-behaved"),
        Invariant("ClaimedFramesHoldMessages",
                  forall(0, rx_n, lambda kk: eq(rx_seq[kk] >= 1, in_set(rx_status[kk], (RESERVED, VALID, COPY))),
                         "c"),
                  "a frame is RESERVED, VALID or COPY exactly while it carries a claim the user has not "
                  "taken: the cursor never steps over a message still in the ring, and an aborted "
                  "allocation is published as an empty VALID frame, never freed in silence", "5, 6.4, 12.2",
                  user="well-behaved"),
        Invariant("FrameHeaderDescribesMessage",
                  forall(0, rx_n, lambda kk: implies(published(kk), and_(
                      implies(or_(rx_held[kk], eq(rx_status[kk], COPY)),
                              and_(eq(rx_len[kk], rx_mlen[kk]), eq(rx_group[kk], rx_mgroup[kk]), rx_cred[kk])),
                      implies(and_(rx_held[kk], eq(rx_status[kk], VALID)),
                              and_(0 <= rx_len[kk], rx_len[kk] <= rx_cap, eq(rx_group[kk], 0))),
                      implies(and_(not_(rx_held[kk]), eq(rx_status[kk], VALID)), eq(rx_len[kk], 0)))), "m"),
                  "a frame handed to the user carries its message's header: nm_len, nm_group and the "
                  "credentials (a ring message: unicast, within the frame); an aborted one nm_len 0",
                  "6.2, 6.3, 6.4, 13.2", user="well-behaved"),
        Invariant("QueueMatchesCopyFrames",
                  and_(orphans >= 0,
                       implies(rx_on, eq(rq_len, orphans + count_(0, rx_n, lambda kk: rx_queued[kk], "q"))),
                       forall(0, rx_n, lambda a: and_(
                           implies(rx_queued[a], and_(eq(rx_status[a], COPY), rx_seq[a] >= 1)),
                           forall(0, rx_n, lambda b: implies(
                               and_(eq(rx_status[a], COPY), rx_seq[a] >= 1, not_(rx_queued[a]), rx_queued[b]),
                               rx_seq[a] < rx_seq[b]), "e")), "d")),
                  "with an RX ring the receive queue holds exactly the messages of the COPY frames not yet "
                  "received (and those whose frame the user handed back early), and recvmsg returns them in "
                  "ring order: while the user calls recvmsg once per COPY frame before releasing it, the i-th "
                  "COPY frame's message is the i-th in the queue (ring setup purges what was queued before)",
                  "3.1, 6.3, 17.10",
                  user="well-behaved"),
        Invariant("TxActsOnValidated",
                  implies(eq(tx_phase, TX_VALIDATED), and_(eq(src, tx_validated), eq(srclen, tx_vlen))),
                  "the kernel acts only on the bytes it validated, whatever the user writes meanwhile", "12.1"),
        Invariant("HeaderWithinFrame",
                  implies(in_set(tx_phase, (TX_COPIED, TX_VALIDATED)), and_(0 <= srclen, srclen <= tx_cap)),
                  "the kernel never uses more bytes than a frame holds (nm_len read once)", "11.2"),
        Invariant("TxNeverPending", eq(tx_pending, 0) if not variant.tx_zero_copy else and_(
                      eq(tx_pending, ite(and_(ne(tx_phase, TX_IDLE), tx_inplace), 1, 0)),
                      implies(eq(tx_phase, TX_ACTED), tx_inplace)),
                  "after 2015 no kernel skb aliases a TX frame (3.10: only the frame the walk took zero-copy, "
                  "until its skb is freed)", "11.3, 17.8"),
        Invariant("TxWalkFollowsHead",
                  implies(ne(tx_phase, TX_IDLE), and_(0 <= tx_cur, tx_cur < tx_n, eq(tx_head, nxt(tx_cur, tx_n)))),
                  "the TX head moves past each frame the walk takes, one frame at a time", "2.3, 11.2"),
        Invariant("TxActsOnEveryFrameTaken",
                  eq(tx_unacted, ite(in_set(tx_phase, (TX_COPIED, TX_VALIDATED)), 1, 0)),
                  "every frame the walk takes is validated and acted on before the next one (no message "
                  "the kernel consumed is lost)", "11.2, 12.1"),
        Invariant("TxProgress",
                  implies(tx_on, and_(implies(ne(tx_phase, TX_IDLE), eq(tx_outcome, TX_NO_OUTCOME)),
                                      implies(eq(tx_outcome, TX_DRAINED), ne(tx_status[tx_head], VALID)),
                                      implies(eq(tx_outcome, TX_EINVAL),
                                              and_(eq(tx_status[tx_head], VALID), tx_cap < tx_len[tx_head])))),
                  "when sendmsg returns, the frame under the TX head is not VALID (every VALID frame was "
                  "sent), or the call failed with EINVAL and the oversize frame is still VALID under the "
                  "head", "11.2, 17.9, 19"),
        Invariant("TxRingIsFillOrder",
                  forall(0, tx_n, lambda kk: and_(
                      or_(in_set(tx_status[kk], (UNUSED, VALID)),
                          *((and_(eq(kk, tx_cur), eq(tx_status[kk], RESERVED), ne(tx_phase, TX_IDLE), tx_inplace),)
                            if variant.tx_zero_copy else ())),
                      implies(ne(tx_ucur, tx_head), eq(tx_valid(kk), cyclic_between(kk, tx_head, tx_ucur))),
                      implies(eq(tx_ucur, tx_head), eq(tx_valid(kk), tx_valid(tx_head))),
                      and_(0 <= tx_ucur, tx_ucur < tx_n)), "x"),
                  "the VALID TX frames are exactly those the user filled and the kernel has not taken, "
                  "from the TX head to the user's cursor: the walk passes each filled frame once, in ring "
                  "order, and skips none", "11.2, 15, 17.9", user="well-behaved"),
        # Strengthening invariants (nlmmap prove): true of every reachable state, added so that the
        # invariants above are inductive (each is itself proved inductive).
        *((Invariant("ZeroCopyFrameStaysReserved",
                     implies(and_(ne(tx_phase, TX_IDLE), tx_inplace), eq(tx_status[tx_cur], RESERVED)),
                     "the frame a 3.10 walk took zero-copy stays RESERVED until its skb is freed", "11.3",
                     user="well-behaved", strengthening=True),) if variant.tx_zero_copy else ()),
        Invariant("TypeOk",
                  and_(rx_n >= 0, tx_n >= 0, rx_cap >= 0, tx_cap >= 0, rq_len >= 0, mapped >= 0, claims >= 0,
                       reported >= 0,
                       forall(0, rx_n, lambda kk: and_(rx_owned[kk] >= 0, 0 <= rx_seq[kk], rx_seq[kk] <= claims),
                              "t"),
                       forall(0, tx_n, lambda kk: and_(0 <= tx_len[kk], tx_len[kk] < (1 << 32)), "u")),
                  "sizes and counters are never negative; claim numbers are at most the claims made; "
                  "nm_len is a u32", "1.3, 2.1", strengthening=True),
    )


def socket_step_properties(variant: Variant) -> tuple[StepProperty, ...]:
    """Properties of single steps: what the kernel may write, when it may drop, the errno rules."""
    write_perm: dict[str, Expr] = {
        "alloc": eq(rx_status[j], UNUSED),
        "publish": rx_owned[j] >= 1,
        "abort": rx_owned[j] >= 1,
        "copy_claim": eq(rx_status[rx_head], UNUSED),
        "tx_copy": eq(tx_status[tx_head], VALID),
    }
    if variant.tx_zero_copy:
        write_perm["tx_claim"] = eq(tx_status[tx_head], VALID)
        write_perm["tx_release"] = eq(tx_phase, TX_ACTED)
    readable = or_(rq_len >= 1, exists(0, rx_n, lambda kk: and_(rx_seq[kk] >= 1, eq(rx_owned[kk], 0),
                                                                   ne(rx_status[kk], COPY)), "y"))
    steps = (
        StepProperty("KernelWritesOnlyOwnedFrames", write_perm,
                     "the kernel writes an RX frame only after seeing it UNUSED at its cursor or while it "
                     "holds it RESERVED (a TX frame only after seeing it VALID)", "5, 17.7"),
        StepProperty("SkipNeverClaimed", {"alloc": ne(rx_status[j], SKIP)},
                     "a successful allocation never claims a frame the user marked SKIP", "9, 17.12"),
        StepProperty("FullMeansFull",
                     {"alloc_full": not_(exists(0, rx_n, lambda jj: and_(
                         forall(0, rx_n, lambda kk: implies(cyclic_between(kk, rx_head, jj),
                                                            eq(rx_status[kk], SKIP)), "g"),
                         eq(rx_status[jj], UNUSED)), "e"))},
                     "the kernel drops a ring message only when no UNUSED frame follows the SKIP run at its "
                     "cursor (SKIP frames are stepped over)", "9, 17.12"),
        StepProperty("PollInMeansReadable", {"poll": eq(rin, readable)},
                     "poll reports POLLIN exactly when the user has something to read: a queued message, or "
                     "a frame the kernel published (a message, or an empty one) and the user has not taken",
                     "7, 19", user="well-behaved"),
        StepProperty("PollErrMeansEnobufs", {"poll": eq(rerr, sk_err)},
                     "poll reports POLLERR exactly while an ENOBUFS is pending (the next recvmsg fails with "
                     "it)", "7, 19"),
        StepProperty("PollContinuesDumps", {"poll": implies(dump_running, not_(_dump_space_kernel()))},
                     "poll returns while a dump runs only once the ring has no room for its next batch "
                     "(netlink_dump_space: the head frame and the one half a ring ahead UNUSED)", "7, 10"),
        # Rule properties: the kernel's errno and path rules, stated as obligations so that no guard
        # of the spec can be lost without `nlmmap prove` failing on the rule it enforced.
        StepProperty("ReconfigureOnlyWhenIdle", {
            "set_rx_ring": and_(eq(mapped, 0), eq(rx_n, 0)),
            "teardown_rx_ring": and_(eq(mapped, 0), eq(rx_pending, 0)),
            "set_tx_ring": and_(eq(mapped, 0), eq(tx_n, 0)),
            "teardown_tx_ring": and_(eq(mapped, 0), eq(tx_phase, TX_IDLE),
                                     *((eq(tx_pending, 0),) if variant.tx_zero_copy else ()))},
                     "a ring changes only while unmapped with nothing in flight, and is created only where "
                     "none exists (EBUSY otherwise)", "3.1, 17.5", user="well-behaved"),
        StepProperty("MmapNeedsARing", {"mmap": or_(rx_on, tx_on)},
                     "mmap of a socket without a ring fails (EINVAL)", "4", user="well-behaved"),
        StepProperty("UserWritesNeedTheMapping", {a: mapped >= 1 for a in _MAPPED_WRITES},
                     "the user (any thread of it) writes a frame only through a mapping of the rings", "4"),
        StepProperty("OneDumpAtATime", {"dump_begin": not_(dump_running)},
                     "a dump request while a dump runs is refused (EBUSY)", "10"),
        StepProperty("RingPathOnlyWhenItFits",
                     {a: fits_frame(size) for a in ("alloc", "alloc_full") +
                      (() if variant.skip_broken else ("alloc_all_skip",))},
                     "only a message that fits a frame of a configured RX ring is allocated in the ring; "
                     "anything else is a plain message (COPY path)", "6.1"),
        StepProperty("NoGratuitousDrop", {
            "copy_full": and_(rx_on, ne(rx_status[rx_head], UNUSED)),
            "copy_congested_kernel": congested,
            "copy_refused": congested,
            **({} if variant.skip_broken else {"alloc_all_skip": forall(
                0, rx_n, lambda kk: eq(rx_status[kk], SKIP), "d")})},
                     "a plain message is refused or dropped only when the frame at the cursor is not "
                     "UNUSED or the socket is congested; the ring counts as full only when all its "
                     "frames are SKIP", "6.3, 6.5, 9"),
        StepProperty("CopyPathMarksAFrame", {"queue_plain": not_(rx_on)},
                     "with an RX ring every plain message is announced by a COPY frame", "6.3"),
        StepProperty("RecvmsgReportsInOrder", {
            "recvmsg": not_(sk_err), "recvmsg_error": sk_err, "recvmsg_empty": and_(not_(sk_err), eq(rq_len, 0))},
                     "recvmsg reports a pending ENOBUFS first, then queued messages, and EAGAIN only when "
                     "there is neither", "8, 19", user="well-behaved"),
        StepProperty("TxRejectsOnlyOversize", {"tx_reject": and_(
            tx_on, eq(tx_phase, TX_IDLE), eq(tx_status[tx_head], VALID), tx_cap < tx_len[tx_head])},
                     "the TX walk answers EINVAL only for a VALID frame at its cursor whose nm_len exceeds "
                     "frame_size - 24", "11.2"),
        StepProperty("TxOneFrameAtATime", {**{a: eq(tx_phase, TX_IDLE) for a in
                                              ("tx_copy", "tx_done") + (("tx_claim",) if variant.tx_zero_copy else ())},
                                           "tx_act": eq(tx_phase, TX_VALIDATED)},
                     "the TX walk takes the next frame, or ends, only when the previous frame is done, and "
                     "acts only on a message it has validated (pg_vec_lock serialises the walk)", "11.2, 12.1"),
        StepProperty("UserFillsOnlyFreeTxFrames", {"fill_tx_frame": eq(tx_status[j], UNUSED)},
                     "a well-behaved user writes a message only into a TX frame it owns (UNUSED)", "11.2, 15",
                     user="well-behaved"),
    )
    if variant.tx_zero_copy:
        steps += (StepProperty("ZeroCopyOnlyWhenExclusive", {"tx_claim": zero_copy_exclusive()},
                               "3.10 takes a frame zero-copy only when the file is not shared and has one mapping "
                               "(the test a writer sharing that mapping passes)", "11.3, 12.1"),)
    return steps
