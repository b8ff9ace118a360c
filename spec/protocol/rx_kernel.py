"""The RX ring, kernel half (section 6): allocation at the cursor, publish, abort, the COPY path,
overruns and congestion, and netlink_ack's allocation failure."""

from __future__ import annotations

from ..expr import and_, eq, forall, ite, ne, not_
from ..system import Action, Assign, Store
from .names import (
    COPY,
    FRAME,
    RESERVED,
    SIZE,
    SKIP,
    UNUSED,
    VALID,
    _claim,
    _forward_to,
    _overrun,
    aborted,
    alloc_chooser,
    congested,
    fits_frame,
    in_ring,
    j,
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
)
from .variants import Variant


def rx_kernel_actions(variant: Variant) -> list[Action]:
    """The kernel's RX actions."""
    return [
        Action("alloc", "kernel", (FRAME, SIZE),
               and_(size <= rx_cap, _forward_to(j, variant), eq(rx_status[j], UNUSED)),  # j < rx_frame_nr
               _claim(j, RESERVED, True),
               "6.1", "netlink_alloc_skb: step over SKIP frames at the cursor, claim the UNUSED frame "
                      "there as RESERVED, advance the cursor past it.",
               choose=alloc_chooser(variant)),
        Action("alloc_full", "kernel", (FRAME, SIZE),
               and_(size <= rx_cap, _forward_to(j, variant), ne(rx_status[j], UNUSED),
                    *(() if variant.skip_broken else (ne(rx_status[j], SKIP),))),
               (Assign("rx_head", j),) + _overrun(),
               "6.1", "Ring full: the frame the cursor stops at is not UNUSED; the message is lost "
                      "(overrun), the frames untouched, the cursor past the SKIP run.",
               choose=alloc_chooser(variant)),
        *(() if variant.skip_broken else (
            Action("alloc_all_skip", "kernel", (SIZE,),
                   and_(fits_frame(size), forall(0, rx_n, lambda kk: eq(rx_status[kk], SKIP), "s")),
                   _overrun(),
                   "9", "Every frame is SKIP: the cursor comes back to its start and allocation fails."),)),
        Action("publish", "kernel", (FRAME,), rx_owned[j] >= 1,
               (Store("rx_status", j, VALID), Store("rx_owned", j, rx_owned[j] - 1),
                Assign("rx_pending", rx_pending - 1)),
               "6.2", "netlink_queue_mmaped_skb: write the header, then VALID; pending -= 1."),
        Action("abort", "kernel", (FRAME,), rx_owned[j] >= 1,
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
                      "nothing changes.", errno="EAGAIN"),
        Action("queue_plain", "kernel", (), not_(rx_on),
               (Assign("rq_len", rq_len + 1), Assign("sent", sent + 1)),
               "6.3", "Without an RX ring a plain message is queued for recvmsg."),
        Action("ack_alloc_failed", "kernel", (), True, (Assign("sk_err", True),),
               "6.5", "netlink_ack could not allocate its reply: sk_err = ENOBUFS regardless of "
                      "NETLINK_NO_ENOBUFS."),
    ]
