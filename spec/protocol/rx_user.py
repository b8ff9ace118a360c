"""The RX ring, user half (sections 5, 7, 8, 9): recvmsg, poll, release, SKIP, and the adversary
writing any value into any status word or header field."""

from __future__ import annotations

from ..expr import and_, eq, exists, implies, in_set, ite, ne, not_, or_
from ..system import Action, Assign, Param, Store
from .names import (
    COPY,
    GROUP,
    LEN,
    MAPPED,
    SKIP,
    UNUSED,
    VALID,
    _rcv_wake,
    _take,
    choose_poll,
    choose_queue_head,
    consumed,
    dump_running,
    dump_space,
    grp,
    j,
    ln,
    oldest_queued,
    orphans,
    poll_err,
    poll_in,
    reported,
    rerr,
    rin,
    rq_len,
    rx_n,
    rx_on,
    rx_queued,
    rx_status,
    sk_err,
    v,
)
from .variants import Variant


def rx_user_actions(variant: Variant) -> list[Action]:
    """The user's RX actions (the adversary's write_status and write_rx_header included)."""
    # the queue's head has no COPY frame: no RX ring, or its frame was handed back before recvmsg
    no_frame = and_(eq(j, -1), or_(orphans >= 1, not_(exists(0, rx_n, lambda kk: rx_queued[kk], "n"))))
    return [
        Action("recvmsg", "user", (Param("j", -1, rx_n, doc="the COPY frame of the message (-1: none)"),),
               and_(not_(sk_err), rq_len >= 1, or_(oldest_queued(j), no_frame)),
               (Assign("rq_len", rq_len - 1), Assign("consumed", consumed + 1), Store("rx_queued", j, False),
                Assign("rq_orphans", orphans - ite(and_(eq(j, -1), orphans >= 1), 1, 0)))
               + _rcv_wake(rq_len - 1),
               "8", "recvmsg dequeues the message at the head of the receive queue (the one of the queued "
                    "COPY frame nearest the cursor); it never touches a frame.",
               choose=choose_queue_head),
        Action("recvmsg_error", "user", (), sk_err,
               (Assign("sk_err", False), Assign("enobufs_reported", reported + 1), Assign("enobufs_told", True),
                Assign("ack_enobufs", False)) + _rcv_wake(rq_len),
               "8", "recvmsg returns the pending ENOBUFS once.", errno="ENOBUFS"),
        Action("recvmsg_empty", "user", (), and_(not_(sk_err), eq(rq_len, 0)), _rcv_wake(rq_len),
               "8", "recvmsg on an empty queue: EAGAIN (and CONGESTED clears).", errno="EAGAIN"),
        Action("poll", "user", (Param("pollin", sort="bool"), Param("pollerr", sort="bool")),
               and_(eq(rin, poll_in(variant)), eq(rerr, poll_err()), implies(dump_running, not_(dump_space()))),
               _rcv_wake(rq_len, rx_on),
               "7", "poll: continue a dump while dump_space (it returns only when the dump cannot go on), "
                    "rcv_wake (CONGESTED clears if the queue is empty), then the mask: POLLIN, POLLERR.",
               choose=choose_poll(variant)),
        Action("release_frame", "user", (Param("j", 0, rx_n),),
               and_(MAPPED, in_set(rx_status[j], (VALID, COPY, SKIP))),
               (Store("rx_status", j, UNUSED),) + _take(j),
               "5", "The user hands a frame it read back to the kernel (UNUSED); a COPY frame normally after "
                    "recvmsg has returned its message."),
        Action("skip_frame", "user", (Param("j", 0, rx_n),), and_(MAPPED, eq(rx_status[j], VALID)),
               (Store("rx_status", j, SKIP),) + _take(j),
               "9", "The user keeps a frame for later (SKIP); allocation steps over it."),
        Action("write_status", "adversary", (Param("j", 0, rx_n), Param("v", 0, 1 << 32)), MAPPED,
               (Store("rx_status", j, v),) + _take(j, ne(v, rx_status[j])),
               "5", "Any thread of the user writes any value into an RX status word, at any time (the same "
                    "value again hands nothing over)."),
        Action("write_rx_header", "adversary", (Param("j", 0, rx_n), LEN, GROUP), MAPPED,
               (Store("rx_len", j, ln), Store("rx_group", j, grp)),
               "5", "Any thread of the user writes any nm_len and nm_group into an RX frame header."),
    ]
