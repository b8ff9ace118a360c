"""What the socket protocol must guarantee (section 17): invariants of every reachable state and
step properties of every kernel step, each named after what it protects; strengthening
invariants (marked) only make the others inductive."""

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
    TX_IDLE,
    TX_VALIDATED,
    UNUSED,
    VALID,
    aborted,
    claims,
    congested,
    consumed,
    drops,
    fits_frame,
    in_ring,
    j,
    kernel_tx_read,
    mapped,
    purged,
    rq_len,
    rx_cap,
    rx_head,
    rx_held,
    rx_n,
    rx_on,
    rx_owned,
    rx_pending,
    rx_seq,
    rx_status,
    sent,
    size,
    sk_err,
    tx_cap,
    tx_head,
    tx_len,
    tx_n,
    tx_on,
    tx_pending,
    tx_phase,
    tx_status,
    tx_validated,
    tx_vlen,
    unsignalled,
)
from .variants import Variant


def socket_invariants(variant: Variant) -> tuple[Invariant, ...]:
    """The socket's invariants (some hold whatever the user writes, others for a well-behaved user)."""
    src, srclen = kernel_tx_read(variant)
    pos = lambda x: ite(rx_head <= x, x - rx_head, x - rx_head + rx_n)  # noqa: E731
    return (
        Invariant("HeadInRange", and_(implies(rx_on, and_(0 <= rx_head, rx_head < rx_n)),
                                      implies(tx_on, and_(0 <= tx_head, tx_head < tx_n))),
                  "the kernel cursor always names a frame of its ring", "17.4"),
        Invariant("NoSilentLoss",
                  and_(eq(sent, in_ring + rq_len + consumed + drops + aborted + purged), eq(unsignalled, 0),
                       eq(in_ring, count_(0, rx_n, lambda kk: rx_held[kk], "h"))),
                  "every message the kernel sends is in a frame, in the receive queue, taken by the user, "
                  "or counted dropped with ENOBUFS raised unless NETLINK_NO_ENOBUFS", "6.5, 17"),
        Invariant("PendingMatchesReserved",
                  and_(eq(rx_pending, count_(0, rx_n, lambda kk: rx_owned[kk] >= 1, "o")),
                       forall(0, rx_n, lambda kk: and_(implies(rx_owned[kk] >= 1, eq(rx_status[kk], RESERVED)),
                                                        implies(eq(rx_status[kk], RESERVED), eq(rx_owned[kk], 1))),
                              "r")),
                  "pending counts exactly the frames the kernel holds RESERVED (for a user that never "
                  "writes RESERVED or releases a frame it does not own)", "17.6", user="well-behaved"),
        Invariant("RingOrderIsAllocationOrder",
                  forall(0, rx_n, lambda a: forall(0, rx_n, lambda b: implies(
                      and_(rx_seq[a] >= 1, rx_seq[b] >= 1, rx_seq[a] < rx_seq[b]), pos(a) < pos(b)), "b"), "a"),
                  "messages still in the ring appear in the order their frames were claimed, starting "
                  "from the kernel cursor (not the order they were sent)", "12.2", user="well-behaved"),
        Invariant("TxActsOnValidated",
                  implies(eq(tx_phase, TX_VALIDATED), and_(eq(src, tx_validated), eq(srclen, tx_vlen))),
                  "the kernel acts only on the bytes it validated, whatever the user writes meanwhile", "12.1"),
        Invariant("HeaderWithinFrame",
                  implies(in_set(tx_phase, (TX_COPIED, TX_VALIDATED)), and_(0 <= srclen, srclen <= tx_cap)),
                  "the kernel never uses more bytes than a frame holds (nm_len read once)", "11.2"),
        Invariant("TxNeverPending", eq(tx_pending, 0) if not variant.tx_zero_copy else True,
                  "after 2015 no kernel skb aliases a TX frame", "17.8"),
        # Strengthening invariants (nlmmap prove): true of every reachable state, added so that the
        # invariants above are inductive (each is itself proved inductive).
        Invariant("TypeOk",
                  and_(rx_n >= 0, tx_n >= 0, rx_cap >= 0, tx_cap >= 0, rq_len >= 0, mapped >= 0, claims >= 0,
                       forall(0, rx_n, lambda kk: and_(rx_owned[kk] >= 0, 0 <= rx_seq[kk], rx_seq[kk] <= claims),
                              "t"),
                       forall(0, tx_n, lambda kk: and_(0 <= tx_len[kk], tx_len[kk] < (1 << 32)), "u")),
                  "sizes and counters are never negative; claim numbers are at most the claims made; "
                  "nm_len is a u32", "1.3, 2.1", strengthening=True),
        Invariant("ClaimedFramesHoldMessages",
                  forall(0, rx_n, lambda kk: implies(rx_seq[kk] >= 1,
                                                     in_set(rx_status[kk], (RESERVED, VALID, COPY))), "c"),
                  "a frame with a claim number is RESERVED, VALID or COPY (never UNUSED or SKIP), so "
                  "the cursor never steps over a message still in the ring", "5, 12.2",
                  user="well-behaved", strengthening=True),
    )


def socket_step_properties(variant: Variant) -> tuple[StepProperty, ...]:
    """Properties of single steps: what the kernel may write, when it may drop, the errno rules."""
    write_perm: dict[str, Expr] = {
        "alloc": eq(rx_status[j], UNUSED),
        "publish": rx_owned[j] >= 1,
        "abort": rx_owned[j] >= 1,
        "copy_claim": eq(rx_status[rx_head], UNUSED),
        ("tx_claim" if variant.tx_zero_copy else "tx_copy"): eq(tx_status[tx_head], VALID),
    }
    if variant.tx_zero_copy:
        write_perm["tx_release"] = eq(tx_phase, TX_ACTED)
    return (
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
        # Rule properties: the kernel's errno and path rules, stated as obligations so that no guard
        # of the spec can be lost without `nlmmap prove` failing on the rule it enforced.
        StepProperty("ReconfigureOnlyWhenIdle", {
            "set_rx_ring": and_(eq(mapped, 0), eq(rx_n, 0)),
            "teardown_rx_ring": and_(eq(mapped, 0), eq(rx_pending, 0)),
            "set_tx_ring": and_(eq(mapped, 0), eq(tx_n, 0), eq(tx_phase, TX_IDLE)),
            "teardown_tx_ring": and_(eq(mapped, 0), eq(tx_phase, TX_IDLE),
                                     *((eq(tx_pending, 0),) if variant.tx_zero_copy else ()))},
                     "a ring changes only while unmapped with nothing in flight, and is created only where "
                     "none exists (EBUSY otherwise)", "3.1, 17.5", user="well-behaved"),
        StepProperty("MmapNeedsARing", {"mmap": or_(rx_on, tx_on)},
                     "mmap of a socket without a ring fails (EINVAL)", "4", user="well-behaved"),
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
        StepProperty("TxOneFrameAtATime", {("tx_claim" if variant.tx_zero_copy else "tx_copy"): eq(tx_phase, TX_IDLE),
                                           "tx_act": eq(tx_phase, TX_VALIDATED)},
                     "the TX walk takes the next frame only when the previous one is done, and acts only on "
                     "a message it has validated (pg_vec_lock serialises the walk)", "11.2, 12.1"),
        StepProperty("UserFillsOnlyFreeTxFrames", {"fill_tx_frame": eq(tx_status[j], UNUSED)},
                     "a well-behaved user writes a message only into a TX frame it owns (UNUSED)", "11.2, 15",
                     user="well-behaved"),
    )
