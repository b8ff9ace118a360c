"""The protocol, written once: one netlink socket with an RX and a TX ring, as a transition system.

Read this module like the fact sheet it encodes (kernel-protocol.md; section numbers in every
action). The *state* of a socket is its rings (frame statuses, the kernel's head, the pending
count, for TX each frame's ``nm_len`` and contents), its receive queue, and its error state
(``congested``, a pending ``sk_err`` of ENOBUFS, NETLINK_NO_ENOBUFS, ``sk_drops``). *Ghost*
variables record what the invariants talk about and the kernel never stores: which frames the
kernel has claimed and not yet published (``rx_owned``), which frames hold a kernel message the
user has not yet taken (``rx_held``), the order in which frames were claimed (``rx_seq``), and an
account of every message the kernel sent (``sent = in_ring + rq_len + consumed + dropped +
aborted + purged``).

*Actions* are split into the kernel's and the user's halves so that races are visible steps:
``alloc`` (claim a frame) is apart from ``publish`` (hand it over), and the TX walk is
``tx_copy`` / ``tx_validate`` / ``tx_act``. The user's ``write_status`` and ``write_tx`` are the
adversary: shared memory can be written at any time, with any value, and the invariants marked
``user="any"`` must hold whatever it writes.

Historical behaviours are switches of the same spec (all off = Linux 4.5):

* ``tx_zero_copy`` (3.10-3.18): TX validates the message in the shared frame and uses it later;
* ``skip_broken`` (before 4.4): allocation does not step over SKIP frames;
* ``poll_head_minus_one`` (before 4.4): POLLIN iff the frame behind the head is not UNUSED;
* ``dump_offset_bug`` (4.4.34): dump data is placed away from frame + 24 (model only);

and, for the nfqueue-like queue service (:func:`queue_system`), ``queue_alloc_outside_lock``
(mainline: the frame is claimed before the packet id is assigned under the queue lock) versus its
fix ``queue_alloc_under_lock``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .abi import Status
from .expr import (
    Expr,
    and_,
    cyclic_between,
    eq,
    exists,
    forall,
    implies,
    in_set,
    ite,
    ne,
    not_,
    or_,
    var,
)
from .expr import count as count_
from .system import Action, Assign, Invariant, Param, StateVar, StepProperty, Store, StoreRange, System

__all__ = [
    "Variant", "VARIANT_SWITCHES", "socket_system", "queue_system", "TX_IDLE", "TX_COPIED", "TX_VALIDATED",
    "TX_ACTED", "fits_frame", "poll_in", "poll_err", "dump_space", "choose_alloc", "OVERRUN_ACTIONS",
    "EXPECTED_VIOLATIONS", "expected_violations",
]

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
TX_IDLE, TX_COPIED, TX_VALIDATED, TX_ACTED = 0, 1, 2, 3

VARIANT_SWITCHES = ("tx_zero_copy", "skip_broken", "poll_head_minus_one", "dump_offset_bug",
                    "queue_alloc_outside_lock")


@dataclass(frozen=True)
class Variant:
    """History switches; all False is the reference behaviour (Linux 4.5). For the queue service,
    ``queue_alloc_outside_lock`` True is mainline nfqueue, False the extended-spinlock fix."""

    tx_zero_copy: bool = False
    skip_broken: bool = False
    poll_head_minus_one: bool = False
    dump_offset_bug: bool = False
    queue_alloc_outside_lock: bool = True

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...]) -> Variant:
        """Build from switch names (``"queue_alloc_under_lock"`` turns the queue fix on)."""
        kw: dict[str, bool] = {}
        for n in names:
            if n == "queue_alloc_under_lock":
                kw["queue_alloc_outside_lock"] = False
            elif n in VARIANT_SWITCHES:
                kw[n] = True
            else:
                from .errors import NetlinkError

                raise NetlinkError("EINVAL", f"unknown variant {n!r}; known: "
                                             f"{', '.join(VARIANT_SWITCHES + ('queue_alloc_under_lock',))}")
        return cls(**kw)

    def as_dict(self) -> dict[str, bool]:
        """The switches as a plain dict."""
        return {n: getattr(self, n) for n in VARIANT_SWITCHES}


# --- names ---------------------------------------------------------------------------------------
V = var
rx_n, rx_cap, rx_head, rx_pending = V("rx_frame_nr"), V("rx_capacity"), V("rx_head"), V("rx_pending")
rx_status, rx_owned, rx_held, rx_seq = V("rx_status"), V("rx_owned"), V("rx_held"), V("rx_seq")
claims = V("claims")
rq_len, congested, sk_err, no_enobufs, drops = V("rq_len"), V("congested"), V("sk_err"), V("no_enobufs"), V("drops")
mapped = V("mapped")
sent, in_ring, consumed, dropped, aborted, purged = (V(n) for n in (
    "sent", "in_ring", "consumed", "dropped", "aborted", "purged"))
unsignalled = V("unsignalled_drops")
tx_n, tx_cap, tx_head, tx_pending = V("tx_frame_nr"), V("tx_capacity"), V("tx_head"), V("tx_pending")
tx_status, tx_len, tx_data = V("tx_status"), V("tx_len"), V("tx_data")
tx_phase, tx_cur, tx_private, tx_plen = V("tx_phase"), V("tx_cur"), V("tx_private"), V("tx_plen")
tx_validated, tx_vlen = V("tx_validated"), V("tx_vlen")
j, i, k, size, v, n, cap, ln, data, on = (V(x) for x in ("j", "i", "k", "size", "v", "n", "cap", "len", "data", "on"))

rx_on = rx_n >= 1
tx_on = tx_n >= 1


def nxt(x: Expr, nr: Expr) -> Expr:
    """``netlink_increment_head``: 0 after the last frame, else x + 1."""
    return ite(eq(x, nr - 1), 0, x + 1)


def fits_frame(size_: Expr | int) -> Expr:
    """A message of ``size`` bytes can be built in an RX frame (section 6.1; ldiff folded into size)."""
    from .expr import _lift

    return and_(rx_on, _lift(size_) <= rx_cap)


def _forward_to(target: Expr, variant: Variant) -> Expr:
    """``netlink_forward_ring`` stops at ``target``: every frame from the head up to it is SKIP
    (section 2.3). Before 4.4 the loop was a no-op: the head stays where it is."""
    if variant.skip_broken:
        return eq(target, rx_head)
    return forall(0, rx_n, lambda kk: implies(cyclic_between(kk, rx_head, target), eq(rx_status[kk], SKIP)), "f")


def _overrun() -> tuple:
    """``netlink_overrun`` (6.5): unless NO_ENOBUFS, set CONGESTED and, if it was clear, sk_err =
    ENOBUFS; always count the drop. Also the ghost account of a dropped message."""
    new_cong = ite(no_enobufs, congested, True)
    new_err = ite(or_(no_enobufs, congested), sk_err, True)
    return (Assign("congested", new_cong), Assign("sk_err", new_err), Assign("drops", drops + 1),
            Assign("sent", sent + 1), Assign("dropped", dropped + 1),
            Assign("unsignalled_drops", unsignalled + ite(or_(no_enobufs, new_cong, new_err), 0, 1)))


def _rcv_wake(queue_after: Expr) -> Assign:
    """``netlink_rcv_wake``: CONGESTED clears when the receive queue is empty."""
    return Assign("congested", and_(congested, queue_after >= 1))


def _take(idx: Expr) -> tuple:
    """The user writes frame ``idx``'s status: a kernel message in it counts as taken
    (consumed), unless the kernel still holds a claim on the frame."""
    taken = and_(rx_held[idx], eq(rx_owned[idx], 0))
    return (Store("rx_held", idx, and_(rx_held[idx], not_(eq(rx_owned[idx], 0)))),
            Store("rx_seq", idx, ite(eq(rx_owned[idx], 0), 0, rx_seq[idx])),
            Assign("consumed", consumed + ite(taken, 1, 0)),
            Assign("in_ring", in_ring - ite(taken, 1, 0)))


def _claim(idx: Expr, status: int, ring_message: bool) -> tuple:
    """Kernel claims frame ``idx`` at its cursor: status, head past it, claim order; for a ring
    message the kernel keeps it (owned) until publish. A message still held in the frame (the
    user released a frame the kernel had claimed) is the user's loss: counted as consumed."""
    old = ite(rx_held[idx], 1, 0)
    ups: tuple = (Store("rx_status", idx, status), Assign("rx_head", nxt(idx, rx_n)),
                  Assign("claims", claims + 1), Store("rx_seq", idx, claims + 1), Assign("sent", sent + 1))
    if ring_message:
        ups += (Store("rx_owned", idx, rx_owned[idx] + 1), Assign("rx_pending", rx_pending + 1),
                Store("rx_held", idx, True), Assign("in_ring", in_ring + 1 - old),
                Assign("consumed", consumed + old))
    else:
        ups += (Store("rx_held", idx, False), Assign("in_ring", in_ring - old), Assign("consumed", consumed + old),
                Assign("rq_len", rq_len + 1))
    return ups


def choose_alloc(state: Any) -> dict[str, Any] | None:
    """The frame ``netlink_forward_ring`` stops at (the kernel's deterministic choice for
    ``alloc``/``alloc_full``): first non-SKIP frame from the head, or None if all are SKIP."""
    nr, head = state["rx_frame_nr"], state["rx_head"]
    st = state["rx_status"]
    idx = head
    for _ in range(nr):
        if st[idx] != SKIP:
            return {"j": idx}
        idx = 0 if idx == nr - 1 else idx + 1
    return None


def poll_in(variant: Variant = Variant()) -> Expr:
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


def dump_space() -> Expr:
    """``netlink_dump_space`` (section 10): the head frame UNUSED and frame ``n`` UNUSED, where
    ``n = head + frame_max div 2`` minus frame_max (not frame_nr) if past the end."""
    from .expr import Op

    half = Op("div2", (rx_n - 1, rx_n - 1))
    m = rx_head + half
    m = ite(rx_n - 1 < m, m - (rx_n - 1), m)
    return and_(rx_on, eq(rx_status[rx_head], UNUSED), eq(rx_status[m], UNUSED))


#: The property each history switch is known to break (the historical flaws, kept visible).
EXPECTED_VIOLATIONS: dict[str, tuple[str, ...]] = {
    "tx_zero_copy": ("TxActsOnValidated", "HeaderWithinFrame"),
    "skip_broken": ("FullMeansFull",),
    "queue_alloc_outside_lock": ("BatchVerdictSound",),
}


def expected_violations(variant: Variant) -> frozenset[str]:
    """Invariants and step properties the switches of ``variant`` are known to break."""
    on = variant.as_dict()
    return frozenset(p for sw, props in EXPECTED_VIOLATIONS.items() if on.get(sw) for p in props)


OVERRUN_ACTIONS = ("alloc_full", "alloc_all_skip", "copy_full", "copy_congested_kernel")


def socket_system(variant: Variant = Variant()) -> System:
    """One netlink socket with RX and TX rings, as a transition system (Linux 4.5 by default)."""
    st = StateVar
    state = (
        st("rx_frame_nr", "int", "RX frames (0: no RX ring)"),
        st("rx_capacity", "int", "RX frame payload bytes: frame_size - 24"),
        st("rx_status", "int_array", "nm_status of each RX frame (any u32 the user writes)"),
        st("rx_head", "int", "kernel RX cursor (frame index)"),
        st("rx_pending", "int", "in-flight ring skbs pointing into RX frames"),
        st("rx_owned", "int_array", "claims the kernel holds on each RX frame (RESERVED by alloc)", True),
        st("rx_held", "bool_array", "frame holds a kernel message the user has not taken", True),
        st("rx_seq", "int_array", "claim number of the frame's message (0: none)", True),
        st("claims", "int", "frames claimed so far (ring and COPY path)", True),
        st("rq_len", "int", "messages in the socket receive queue"),
        st("congested", "bool", "NETLINK_S_CONGESTED"),
        st("sk_err", "bool", "sk_err = ENOBUFS pending"),
        st("no_enobufs", "bool", "NETLINK_NO_ENOBUFS set"),
        st("drops", "int", "sk_drops"),
        st("mapped", "int", "live VMAs of the socket (both rings)"),
        st("sent", "int", "messages the kernel sent to this socket", True),
        st("in_ring", "int", "kernel messages sitting in RX frames", True),
        st("consumed", "int", "messages the user took (recvmsg, or wrote the frame's status)", True),
        st("dropped", "int", "messages lost to a full ring or congestion", True),
        st("aborted", "int", "ring messages freed undelivered (empty VALID frame)", True),
        st("purged", "int", "queued messages discarded by ring setup or close", True),
        st("unsignalled_drops", "int", "drops with neither ENOBUFS raised nor NO_ENOBUFS", True),
        st("tx_frame_nr", "int", "TX frames (0: no TX ring)"),
        st("tx_capacity", "int", "TX frame payload bytes: frame_size - 24"),
        st("tx_status", "int_array", "nm_status of each TX frame"),
        st("tx_len", "int_array", "nm_len of each TX frame as the user wrote it"),
        st("tx_data", "int_array", "contents of each TX frame's payload area"),
        st("tx_head", "int", "kernel TX cursor"),
        st("tx_pending", "int", "zero-copy TX skbs in flight (0 after 2015)"),
        st("tx_phase", "int", "kernel TX walk: 0 idle, 1 copied/claimed, 2 validated, 3 acted", True),
        st("tx_cur", "int", "TX frame the walk is on", True),
        st("tx_private", "int", "the kernel's private copy of the message", True),
        st("tx_plen", "int", "nm_len as the walk read it (once)", True),
        st("tx_validated", "int", "the bytes the kernel validated", True),
        st("tx_vlen", "int", "the length the kernel validated", True),
    )
    init = and_(
        eq(rx_n, 0), eq(tx_n, 0), eq(rx_head, 0), eq(tx_head, 0), eq(rx_pending, 0), eq(tx_pending, 0),
        eq(claims, 0), eq(rq_len, 0), not_(congested), not_(sk_err), not_(no_enobufs), eq(drops, 0),
        eq(mapped, 0), eq(sent, 0), eq(in_ring, 0), eq(consumed, 0), eq(dropped, 0), eq(aborted, 0),
        eq(purged, 0), eq(unsignalled, 0), eq(tx_phase, TX_IDLE), eq(tx_cur, 0), rx_cap >= 0, tx_cap >= 0,
    )
    frame = Param("j", 0, rx_n, doc="RX frame index")
    size_p = Param("size", 0, None, doc="message bytes")
    kernel_tx_read = (tx_data[tx_cur], tx_len[tx_cur]) if variant.tx_zero_copy else (tx_private, tx_plen)

    actions: list[Action] = [
        # ---- setup (section 3, 4) ----
        Action("set_rx_ring", "user", (Param("n", 1, None), Param("cap", 0, None)),
               and_(eq(mapped, 0), eq(rx_n, 0)),  # nothing is pending without a ring
               (Assign("rx_frame_nr", n), Assign("rx_capacity", cap), Assign("rx_head", 0),
                StoreRange("rx_status", "r", 0, n, UNUSED), StoreRange("rx_owned", "r", 0, n, 0),
                StoreRange("rx_held", "r", 0, n, False), StoreRange("rx_seq", "r", 0, n, 0),
                Assign("rq_len", 0), Assign("purged", purged + rq_len), Assign("in_ring", 0),
                Assign("consumed", consumed + in_ring)),
               "3.1", "setsockopt(NETLINK_RX_RING) creates a zeroed ring, purging the receive queue; "
               "only while unmapped, with nothing pending and no ring yet."),
        Action("teardown_rx_ring", "user", (),
               and_(eq(mapped, 0), eq(rx_pending, 0)),
               (Assign("rx_frame_nr", 0), Assign("rx_head", 0), Assign("rq_len", 0),
                Assign("purged", purged + rq_len), Assign("in_ring", 0), Assign("consumed", consumed + in_ring),
                StoreRange("rx_held", "r", 0, rx_n, False), StoreRange("rx_seq", "r", 0, rx_n, 0)),
               "3.1", "An all-zero request tears the ring down (and still purges the queue)."),
        Action("set_tx_ring", "user", (Param("n", 1, None), Param("cap", 0, None)),
               and_(eq(mapped, 0), eq(tx_n, 0), eq(tx_phase, TX_IDLE)),  # nothing is pending without a ring
               (Assign("tx_frame_nr", n), Assign("tx_capacity", cap), Assign("tx_head", 0),
                StoreRange("tx_status", "r", 0, n, UNUSED), StoreRange("tx_len", "r", 0, n, 0),
                StoreRange("tx_data", "r", 0, n, 0)),
               "3.1", "setsockopt(NETLINK_TX_RING) creates a zeroed TX ring."),
        Action("teardown_tx_ring", "user", (),
               and_(eq(mapped, 0), eq(tx_phase, TX_IDLE), *((eq(tx_pending, 0),) if variant.tx_zero_copy else ())),
               (Assign("tx_frame_nr", 0), Assign("tx_head", 0)),
               "3.1", "Tear-down of the TX ring."),
        Action("mmap", "user", (), or_(rx_on, tx_on), (Assign("mapped", mapped + 1),),
               "4", "mmap() of both rings: mapped += 1 (rings can no longer change)."),
        Action("munmap", "user", (), mapped >= 1, (Assign("mapped", mapped - 1),),
               "4", "munmap(): mapped -= 1; the rings keep their state."),
        Action("set_no_enobufs", "user", (Param("on", sort="bool"),), True,
               (Assign("no_enobufs", on), Assign("congested", and_(congested, not_(on)))),
               "6.5", "NETLINK_NO_ENOBUFS; setting it clears CONGESTED at once."),
        # ---- RX, kernel (section 6) ----
        Action("alloc", "kernel", (frame, size_p),
               and_(size <= rx_cap, _forward_to(j, variant), eq(rx_status[j], UNUSED)),  # j < rx_frame_nr
               _claim(j, RESERVED, True),
               "6.1", "netlink_alloc_skb: step over SKIP frames at the cursor, claim the UNUSED frame "
                      "there as RESERVED, advance the cursor past it.",
               choose=choose_alloc),
        Action("alloc_full", "kernel", (frame, size_p),
               and_(size <= rx_cap, _forward_to(j, variant), ne(rx_status[j], UNUSED),
                    *(() if variant.skip_broken else (ne(rx_status[j], SKIP),))),
               (Assign("rx_head", j),) + _overrun(),
               "6.1", "Ring full: the frame the cursor stops at is not UNUSED; the message is lost "
                      "(overrun), the frames untouched, the cursor past the SKIP run.",
               choose=choose_alloc),
        *(() if variant.skip_broken else (
            Action("alloc_all_skip", "kernel", (size_p,),
                   and_(fits_frame(size), forall(0, rx_n, lambda kk: eq(rx_status[kk], SKIP), "s")),
                   _overrun(),
                   "9", "Every frame is SKIP: the cursor comes back to its start and allocation fails."),)),
        Action("publish", "kernel", (frame,), rx_owned[j] >= 1,
               (Store("rx_status", j, VALID), Store("rx_owned", j, rx_owned[j] - 1),
                Assign("rx_pending", rx_pending - 1)),
               "6.2", "netlink_queue_mmaped_skb: write the header, then VALID; pending -= 1."),
        Action("abort", "kernel", (frame,), rx_owned[j] >= 1,
               (Store("rx_status", j, VALID), Store("rx_owned", j, rx_owned[j] - 1),
                Assign("rx_pending", rx_pending - 1),
                Store("rx_held", j, and_(rx_held[j], rx_owned[j] >= 2)),
                Store("rx_seq", j, ite(rx_owned[j] >= 2, rx_seq[j], 0)),
                Assign("in_ring", in_ring - ite(and_(rx_held[j], eq(rx_owned[j], 1)), 1, 0)),
                Assign("aborted", aborted + ite(and_(rx_held[j], eq(rx_owned[j], 1)), 1, 0))),
               "6.4", "A ring skb freed undelivered: nm_len = 0, then VALID (an empty frame)."),
        Action("copy_claim", "kernel", (), and_(rx_on, eq(rx_status[rx_head], UNUSED)),
               _claim(rx_head, COPY, False),
               "6.3", "COPY path (after admission: see copy_refused; dumps skip it): the frame at the "
                      "cursor (no SKIP stepping) becomes COPY, the message goes to the receive queue."),
        Action("copy_full", "kernel", (), and_(rx_on, ne(rx_status[rx_head], UNUSED)),
               _overrun(),
               "6.3", "COPY path with the cursor frame not UNUSED (SKIP included): dropped, overrun."),
        Action("copy_congested_kernel", "kernel", (), congested, _overrun(),
               "6.5", "A kernel sender's plain message to a CONGESTED socket is dropped with an overrun."),
        Action("copy_refused", "kernel", (), congested, (),
               "6.5", "A non-blocking user-space sender gets EAGAIN from a CONGESTED socket; "
                      "nothing changes."),
        Action("queue_plain", "kernel", (), not_(rx_on),
               (Assign("rq_len", rq_len + 1), Assign("sent", sent + 1)),
               "6.3", "Without an RX ring a plain message is queued for recvmsg."),
        Action("ack_alloc_failed", "kernel", (), True, (Assign("sk_err", True),),
               "6.5", "netlink_ack could not allocate its reply: sk_err = ENOBUFS regardless of "
                      "NETLINK_NO_ENOBUFS."),
        # ---- RX, user (sections 5, 8, 9) ----
        Action("recvmsg", "user", (), and_(not_(sk_err), rq_len >= 1),
               (Assign("rq_len", rq_len - 1), Assign("consumed", consumed + 1), _rcv_wake(rq_len - 1)),
               "8", "recvmsg dequeues the next queued message (never touches a frame)."),
        Action("recvmsg_error", "user", (), sk_err,
               (Assign("sk_err", False), _rcv_wake(rq_len)),
               "8", "recvmsg returns the pending ENOBUFS once."),
        Action("recvmsg_empty", "user", (), and_(not_(sk_err), eq(rq_len, 0)), (_rcv_wake(rq_len),),
               "8", "recvmsg on an empty queue: EAGAIN (and CONGESTED clears)."),
        Action("poll", "user", (), True, (Assign("congested", and_(congested, or_(rq_len >= 1, not_(rx_on)))),),
               "7", "poll: with an RX ring, rcv_wake clears CONGESTED if the queue is empty."),
        Action("release_frame", "user", (Param("j", 0, rx_n),),
               in_set(rx_status[j], (VALID, COPY, SKIP)),
               (Store("rx_status", j, UNUSED),) + _take(j),
               "5", "The user hands a frame it read back to the kernel (UNUSED)."),
        Action("skip_frame", "user", (Param("j", 0, rx_n),), eq(rx_status[j], VALID),
               (Store("rx_status", j, SKIP),) + _take(j),
               "9", "The user keeps a frame for later (SKIP); allocation steps over it."),
        Action("write_status", "adversary", (Param("j", 0, rx_n), Param("v", 0, 1 << 32)), True,
               (Store("rx_status", j, v),) + _take(j),
               "5", "Any thread of the user writes any value into an RX status word, at any time."),
        # ---- TX (section 11) ----
        Action("fill_tx_frame", "user", (Param("j", 0, tx_n), Param("len", 0, 1 << 32), Param("data", sort="int")),
               eq(tx_status[j], UNUSED),
               (Store("tx_len", j, ln), Store("tx_data", j, data), Store("tx_status", j, VALID)),
               "11.2", "The user writes a message and nm_len into an UNUSED TX frame, then VALID."),
        Action("write_tx", "adversary",
               (Param("j", 0, tx_n), Param("v", 0, 1 << 32), Param("len", 0, 1 << 32), Param("data", sort="int")),
               True, (Store("tx_status", j, v), Store("tx_len", j, ln), Store("tx_data", j, data)),
               "11.2", "Any thread of the user writes any bytes of a TX frame, at any time."),
        Action("tx_reject", "kernel", (),
               and_(tx_on, eq(tx_phase, TX_IDLE), eq(tx_status[tx_head], VALID), tx_cap < tx_len[tx_head]),
               (), "11.2", "nm_len > frame_size - 24: sendmsg returns EINVAL, the frame stays VALID and "
                           "the cursor stays on it."),
    ]
    if variant.tx_zero_copy:
        actions += [
            Action("tx_claim", "kernel", (),
                   and_(tx_on, eq(tx_phase, TX_IDLE), eq(tx_status[tx_head], VALID), tx_len[tx_head] <= tx_cap),
                   (Store("tx_status", tx_head, RESERVED), Assign("tx_pending", tx_pending + 1),
                    Assign("tx_cur", tx_head), Assign("tx_head", nxt(tx_head, tx_n)), Assign("tx_phase", TX_COPIED)),
                   "11.3", "3.10 zero-copy: the skb's data is the shared frame; it is RESERVED in place."),
        ]
    else:
        actions += [
            Action("tx_copy", "kernel", (),
                   and_(tx_on, eq(tx_phase, TX_IDLE), eq(tx_status[tx_head], VALID), tx_len[tx_head] <= tx_cap),
                   (Assign("tx_private", tx_data[tx_head]), Assign("tx_plen", tx_len[tx_head]),
                    Store("tx_status", tx_head, UNUSED), Assign("tx_cur", tx_head),
                    Assign("tx_head", nxt(tx_head, tx_n)), Assign("tx_phase", TX_COPIED)),
                   "11.2", "Read nm_len once, copy the message to private memory, release the frame "
                           "(UNUSED), advance."),
        ]
    src, srclen = kernel_tx_read
    actions += [
        Action("tx_validate", "kernel", (), eq(tx_phase, TX_COPIED),
               (Assign("tx_validated", src), Assign("tx_vlen", srclen), Assign("tx_phase", TX_VALIDATED)),
               "12.1", "The receiving family validates the message (lengths, attributes)."),
        Action("tx_act", "kernel", (), eq(tx_phase, TX_VALIDATED),
               (Assign("tx_phase", TX_ACTED if variant.tx_zero_copy else TX_IDLE),),
               "12.1", "The family acts on the message it validated."),
    ]
    if variant.tx_zero_copy:
        actions += [
            Action("tx_release", "kernel", (), eq(tx_phase, TX_ACTED),
                   (Store("tx_status", tx_cur, UNUSED), Assign("tx_pending", tx_pending - 1),
                    Assign("tx_phase", TX_IDLE)),
                   "11.3", "The zero-copy skb is freed: its frame becomes UNUSED."),
        ]

    pos = lambda x: ite(rx_head <= x, x - rx_head, x - rx_head + rx_n)  # noqa: E731
    invariants = (
        Invariant("HeadInRange", and_(implies(rx_on, and_(0 <= rx_head, rx_head < rx_n)),
                                      implies(tx_on, and_(0 <= tx_head, tx_head < tx_n))),
                  "the kernel cursor always names a frame of its ring", "17.4"),
        Invariant("NoSilentLoss",
                  and_(eq(sent, in_ring + rq_len + consumed + dropped + aborted + purged), eq(dropped, drops),
                       eq(unsignalled, 0),
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
    write_perm: dict[str, Expr] = {
        "alloc": eq(rx_status[j], UNUSED),
        "publish": rx_owned[j] >= 1,
        "abort": rx_owned[j] >= 1,
        "copy_claim": eq(rx_status[rx_head], UNUSED),
        ("tx_claim" if variant.tx_zero_copy else "tx_copy"): eq(tx_status[tx_head], VALID),
    }
    if variant.tx_zero_copy:
        write_perm["tx_release"] = eq(tx_phase, TX_ACTED)
    fixed_forward = _forward_to(j, Variant())
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
    del fixed_forward
    return System("socket", variant.as_dict(), (), True, state, init, tuple(actions), invariants, steps,
                  __doc__ or "")


# --- the queue service (nfqueue-like), section 12.2 ----------------------------------------------
def queue_system(variant: Variant = Variant()) -> System:
    """nfqueue-like service on one RX ring with a well-behaved reader: kernel CPUs claim a frame
    and assign a packet id (under one lock with the fix, in two steps in mainline), the user reads
    frames in ring order and sends batch verdicts (a verdict for id n covers every queued id <= n)."""
    qn, qhead = V("rx_frame_nr"), V("rx_head")
    qst, fid = V("rx_status"), V("frame_id")
    cpu_frame, cpu_busy = V("cpu_frame"), V("cpu_busy")
    id_seq, ucur = V("id_seq"), V("user_cursor")
    queued, seen, verdicted = V("queued"), V("seen"), V("verdicted")
    c, m = V("c"), V("m")
    state = (
        StateVar("rx_frame_nr", "int", "frames of the RX ring"),
        StateVar("rx_status", "int_array", "nm_status of each frame"),
        StateVar("rx_head", "int", "kernel cursor"),
        StateVar("frame_id", "int_array", "packet id carried by each frame (0: none yet)"),
        StateVar("cpu_busy", "bool_array", "CPU c holds a claimed frame without an id yet"),
        StateVar("cpu_frame", "int_array", "the frame CPU c claimed"),
        StateVar("id_seq", "int", "last packet id assigned (++id_sequence under the queue lock)"),
        StateVar("user_cursor", "int", "the reader's position in the ring"),
        StateVar("queued", "bool_array", "packet id is waiting for a verdict"),
        StateVar("seen", "bool_array", "the user has read the packet with this id", True),
        StateVar("verdicted", "bool_array", "a verdict was applied to this id", True),
    )
    init = and_(qn >= 1, eq(qhead, 0), eq(id_seq, 0), eq(ucur, 0),
                forall(0, qn, lambda kk: and_(eq(qst[kk], UNUSED), eq(fid[kk], 0)), "i"),
                forall(0, 1 << 62, lambda kk: and_(not_(cpu_busy[kk]), not_(queued[kk]), not_(seen[kk]),
                                                    not_(verdicted[kk])), "q"))
    cpu = Param("c", 0, None, doc="kernel CPU")
    enqueue_updates = lambda f: (  # noqa: E731
        Assign("id_seq", id_seq + 1), Store("frame_id", f, id_seq + 1), Store("rx_status", f, VALID),
        Store("queued", id_seq + 1, True))
    actions: list[Action] = []
    if variant.queue_alloc_outside_lock:
        actions += [
            Action("queue_alloc", "kernel", (cpu,), and_(not_(cpu_busy[c]), eq(qst[qhead], UNUSED)),
                   (Store("rx_status", qhead, RESERVED), Store("cpu_busy", c, True), Store("cpu_frame", c, qhead),
                    Assign("rx_head", nxt(qhead, qn))),
                   "12.2", "nfqnl_build_packet_message: the ring frame is claimed outside the queue lock."),
            Action("queue_send", "kernel", (cpu,), cpu_busy[c],
                   (Store("cpu_busy", c, False),) + enqueue_updates(cpu_frame[c]),
                   "12.2", "Under the queue lock: id = ++id_sequence, build, publish VALID, enqueue."),
        ]
    else:
        actions += [
            Action("queue_enqueue", "kernel", (cpu,), eq(qst[qhead], UNUSED),
                   (Assign("rx_head", nxt(qhead, qn)),) + enqueue_updates(qhead),
                   "12.2", "Extended spinlock: claim the frame, assign the id, publish and enqueue under "
                           "one lock."),
        ]
    actions += [
        Action("read_frame", "user", (), eq(qst[ucur], VALID),
               (Store("seen", fid[ucur], True), Store("rx_status", ucur, UNUSED), Store("frame_id", ucur, 0),
                Assign("user_cursor", nxt(ucur, qn))),
               "15", "The reader takes the VALID frame at its cursor (in ring order), reads the id, releases it."),
        Action("verdict_batch", "user", (Param("m", 1, None),), and_(seen[m], queued[m], m <= id_seq),
               (StoreRange("verdicted", "x", 1, m + 1, or_(verdicted[V("x")], queued[V("x")])),
                StoreRange("queued", "x", 1, m + 1, False)),
               "12.2", "NFQNL_MSG_VERDICT_BATCH for id m: every queued id <= m gets the verdict."),
    ]
    invariants = (
        Invariant("BatchVerdictSound", forall(1, id_seq + 1, lambda x: implies(verdicted[x], seen[x]), "v"),
                  "a batch verdict covers only packets the user has seen", "12.2, 17.11", user="well-behaved"),
        Invariant("HeadInRange", and_(0 <= qhead, qhead < qn, 0 <= ucur, ucur < qn),
                  "cursors name frames of the ring", "17.4"),
    )
    if not variant.queue_alloc_outside_lock:
        # Strengthening invariants of the fix (nlmmap prove): with claim, id and publish under one
        # lock, the VALID frames are exactly the cyclic run from the reader's cursor to the kernel's
        # head, carrying consecutive ids that end at id_seq; the user has seen exactly the ids
        # below the one at its cursor. (Mainline breaks both: see nlmmap bmc.)
        valid = lambda kk: eq(qst[kk], VALID)  # noqa: E731
        back = lambda kk: ite(kk < qhead, qhead - kk, qhead - kk + qn)  # noqa: E731
        first_unseen = ite(valid(ucur), fid[ucur], id_seq + 1)
        invariants += (
            Invariant("QueueRingIsIdOrder",
                      and_(id_seq >= 0, forall(0, qn, lambda kk: and_(
                          or_(valid(kk), eq(qst[kk], UNUSED)),
                          implies(valid(kk), and_(eq(fid[kk], id_seq + 1 - back(kk)), fid[kk] >= 1)),
                          implies(cyclic_between(kk, ucur, qhead), valid(kk)),
                          implies(and_(valid(kk), ne(ucur, qhead)), cyclic_between(kk, ucur, qhead)),
                          implies(eq(ucur, qhead), eq(valid(kk), valid(ucur)))), "w")),
                      "the VALID frames run from the reader's cursor to the head with consecutive ids "
                      "ending at id_seq", "12.2", user="well-behaved", strengthening=True),
            Invariant("SeenIsPrefix",
                      forall(1, id_seq + 1, lambda x: eq(seen[x], x < first_unseen), "s"),
                      "the user has seen exactly the ids below the one at its cursor", "12.2",
                      user="well-behaved", strengthening=True),
        )
    steps = (
        StepProperty("BatchVerdictNamesAQueuedId", {"verdict_batch": queued[m]},
                     "a batch verdict names a packet that is still queued (ENOENT otherwise)", "12.2",
                     user="well-behaved"),
    )
    return System("queue", {"queue_alloc_outside_lock": variant.queue_alloc_outside_lock}, (), True, state,
                  init, tuple(actions), invariants, steps, queue_system.__doc__ or "")


def system_by_name(name: str, variant: Variant = Variant()) -> System:
    """``"socket"`` or ``"queue"``."""
    if name == "socket":
        return socket_system(variant)
    if name == "queue":
        return queue_system(variant)
    from .errors import NetlinkError

    raise NetlinkError("EINVAL", f"unknown system {name!r}; known: socket, queue")


def describe(system: System) -> Mapping[str, Any]:
    """Plain-dict summary (actions with guards, invariants) for tables and ``--json``."""
    from .expr import render

    names = {int(s): s.name for s in Status}
    return {
        "system": system.name,
        "variant": dict(system.variant),
        "actions": [{"name": a.name, "actor": a.actor, "section": a.section, "doc": a.doc,
                     "params": [p.name for p in a.params], "guard": render(a.guard, names),
                     "modifies": list(a.modifies)} for a in system.actions],
        "invariants": [{"name": inv.name, "protects": inv.protects, "section": inv.section, "user": inv.user}
                       for inv in system.invariants],
        "step_properties": [{"name": sp.name, "protects": sp.protects, "actions": sorted(sp.per_action)}
                            for sp in system.step_properties],
    }
