"""The RX ring, user half (sections 5, 7, 8, 9): recvmsg, poll, release, SKIP, and the adversary
writing any value into any status word."""

from __future__ import annotations

from ..expr import and_, eq, in_set, not_, or_
from ..system import Action, Assign, Param, Store
from .names import (
    COPY,
    SKIP,
    UNUSED,
    VALID,
    _rcv_wake,
    _take,
    congested,
    consumed,
    j,
    rq_len,
    rx_n,
    rx_on,
    rx_status,
    sk_err,
    v,
)
from .variants import Variant


def rx_user_actions(variant: Variant) -> list[Action]:
    """The user's RX actions (the adversary's write_status included)."""
    return [
        Action("recvmsg", "user", (), and_(not_(sk_err), rq_len >= 1),
               (Assign("rq_len", rq_len - 1), Assign("consumed", consumed + 1), _rcv_wake(rq_len - 1)),
               "8", "recvmsg dequeues the next queued message (never touches a frame)."),
        Action("recvmsg_error", "user", (), sk_err,
               (Assign("sk_err", False), _rcv_wake(rq_len)),
               "8", "recvmsg returns the pending ENOBUFS once.", errno="ENOBUFS"),
        Action("recvmsg_empty", "user", (), and_(not_(sk_err), eq(rq_len, 0)), (_rcv_wake(rq_len),),
               "8", "recvmsg on an empty queue: EAGAIN (and CONGESTED clears).", errno="EAGAIN"),
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
    ]
