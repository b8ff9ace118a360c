"""The RX ring, kernel half (section 6, 10): allocation at the cursor, publish (the header, then
VALID), abort (an empty VALID frame), the COPY path, overruns and congestion, netlink_ack's
allocation failure, and a dump's start and end."""

from __future__ import annotations

from ..expr import and_, eq, forall, ite, ne, not_
from ..system import Action, Assign, Param, Store
from .names import (
    COPY,
    FRAME,
    GROUP,
    LEN,
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
    dump_running,
    fits_frame,
    in_ring,
    j,
    ln,
    raised,
    rq_len,
    rx_cap,
    rx_head,
    rx_held,
    rx_n,
    rx_on,
    rx_owned,
    rx_pending,
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
        Action("publish", "kernel", (FRAME, Param("len", 0, rx_cap + 1, doc="nm_len: the message's bytes")),
               rx_owned[j] >= 1,
               (Store("rx_len", j, ln), Store("rx_group", j, 0), Store("rx_cred", j, True),
                Store("rx_mlen", j, ln), Store("rx_mgroup", j, 0),
                Store("rx_status", j, VALID), Store("rx_owned", j, rx_owned[j] - 1),
                Assign("rx_pending", rx_pending - 1)),
               "6.2", "netlink_queue_mmaped_skb: write the header (nm_len, nm_group 0: a ring message is "
                      "unicast, the kernel's credentials), then VALID; pending -= 1."),
        Action("abort", "kernel", (FRAME,), rx_owned[j] >= 1,
               (Store("rx_len", j, 0), Store("rx_status", j, VALID), Store("rx_owned", j, rx_owned[j] - 1),
                Assign("rx_pending", rx_pending - 1),
                Store("rx_held", j, and_(rx_held[j], rx_owned[j] >= 2)),
                Assign("in_ring", in_ring - ite(and_(rx_held[j], eq(rx_owned[j], 1)), 1, 0)),
                Assign("aborted", aborted + ite(and_(rx_held[j], eq(rx_owned[j], 1)), 1, 0))),
               "6.4", "A ring skb freed undelivered: nm_len = 0, then VALID (an empty frame the user "
                      "releases; the other header fields keep their stale values)."),
        Action("copy_claim", "kernel", (LEN, GROUP), and_(rx_on, eq(rx_status[rx_head], UNUSED)),
               _claim(rx_head, COPY, False),
               "6.3", "COPY path (after admission: see copy_refused; dumps skip it): the frame at the "
                      "cursor (no SKIP stepping) becomes COPY with the message's header, the message goes "
                      "to the receive queue."),
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
        Action("ack_alloc_failed", "kernel", (), True,
               (Assign("sk_err", True), Assign("enobufs_raised", raised + 1), Assign("ack_enobufs", True)),
               "6.5", "netlink_ack could not allocate its reply: sk_err = ENOBUFS regardless of "
                      "NETLINK_NO_ENOBUFS."),
        Action("dump_begin", "kernel", (), not_(dump_running), (Assign("dump_running", True),),
               "10", "__netlink_dump_start: a dump request starts a dump (one at a time: EBUSY while "
                     "one runs); its batches are ring or COPY messages.", refusal="EBUSY"),
        Action("dump_end", "kernel", (), True, (Assign("dump_running", False),),
               "10", "The dump's last batch (NLMSG_DONE) was sent."),
    ]
