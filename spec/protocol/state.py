"""The state of one socket (section 2.1, 3, 6, 11) and its initial condition: rings, frame
headers, receive queue, error state, the TX walk, and the ghost bookkeeping the invariants need."""

from __future__ import annotations

from ..abi import Status
from ..expr import and_, eq, not_
from ..system import StateVar
from .names import (
    TX_IDLE,
    TX_NO_OUTCOME,
    aborted,
    ack_owed,
    claims,
    congested,
    consumed,
    drained,
    drops,
    dump_running,
    file_shared,
    in_ring,
    mapped,
    no_enobufs,
    orphans,
    purged,
    raised,
    reported,
    rq_len,
    rx_cap,
    rx_head,
    rx_n,
    rx_pending,
    sent,
    sk_err,
    told,
    tx_cap,
    tx_cur,
    tx_head,
    tx_n,
    tx_outcome,
    tx_pending,
    tx_phase,
    tx_ucur,
    tx_unacted,
)
from .variants import Variant

_OUTCOMES = {0: "none", 1: "drained", 2: "EINVAL"}

SOCKET_STATE: tuple[StateVar, ...] = (
    StateVar("rx_frame_nr", "int", "RX frames (0: no RX ring)", size=True),
    StateVar("rx_capacity", "int", "RX frame payload bytes: frame_size - 24"),
    StateVar("rx_status", "int_array", "nm_status of each RX frame (any u32 the user writes)",
             index="rx_frame_nr", values=Status),
    StateVar("rx_len", "int_array", "nm_len of each RX frame (header offset 4)", index="rx_frame_nr"),
    StateVar("rx_group", "int_array", "nm_group of each RX frame (header offset 8)", index="rx_frame_nr"),
    StateVar("rx_cred", "bool_array", "the kernel wrote the credentials (nm_pid, nm_uid, nm_gid) of the frame's "
             "message", True, index="rx_frame_nr"),
    StateVar("rx_head", "int", "kernel RX cursor (frame index)"),
    StateVar("rx_pending", "int", "in-flight ring skbs pointing into RX frames"),
    StateVar("rx_owned", "int_array", "claims the kernel holds on each RX frame (RESERVED by alloc)", True,
             index="rx_frame_nr"),
    StateVar("rx_held", "bool_array", "frame holds a kernel message the user has not taken", True,
             index="rx_frame_nr"),
    StateVar("rx_seq", "int_array", "claim number of the frame's message (0: none)", True, index="rx_frame_nr"),
    StateVar("rx_mlen", "int_array", "length of the message the kernel put in (or announced by) the frame", True,
             index="rx_frame_nr"),
    StateVar("rx_mgroup", "int_array", "destination group of that message", True, index="rx_frame_nr"),
    StateVar("rx_queued", "bool_array", "COPY frame whose message is still in the receive queue", True,
             index="rx_frame_nr"),
    StateVar("rq_orphans", "int", "queued messages whose COPY frame the user handed back before recvmsg", True),
    StateVar("claims", "int", "frames claimed so far (ring and COPY path)", True),
    StateVar("rq_len", "int", "messages in the socket receive queue"),
    StateVar("congested", "bool", "NETLINK_S_CONGESTED"),
    StateVar("sk_err", "bool", "sk_err = ENOBUFS pending"),
    StateVar("no_enobufs", "bool", "NETLINK_NO_ENOBUFS set"),
    StateVar("drops", "int", "sk_drops"),
    StateVar("enobufs_raised", "int", "ENOBUFS raised: one per episode of overruns (CONGESTED set), one per "
             "lost ACK", True),
    StateVar("enobufs_reported", "int", "ENOBUFS returned by recvmsg", True),
    StateVar("enobufs_told", "bool", "recvmsg has reported the ENOBUFS of the current episode", True),
    StateVar("ack_enobufs", "bool", "an ACK was lost and its ENOBUFS not yet reported", True),
    StateVar("queue_drained", "bool", "rcv_wake found the receive queue empty since the last overrun", True),
    StateVar("dump_running", "bool", "a dump is in progress (cb_running)"),
    StateVar("mapped", "int", "live VMAs of the socket (both rings)"),
    StateVar("sent", "int", "messages the kernel sent to this socket", True),
    StateVar("in_ring", "int", "kernel messages sitting in RX frames", True),
    StateVar("consumed", "int", "messages the user took (recvmsg, or wrote the frame's status)", True),
    StateVar("aborted", "int", "ring messages freed undelivered (empty VALID frame)", True),
    StateVar("purged", "int", "queued messages discarded by ring setup or close", True),
    StateVar("tx_frame_nr", "int", "TX frames (0: no TX ring)", size=True),
    StateVar("tx_capacity", "int", "TX frame payload bytes: frame_size - 24"),
    StateVar("tx_status", "int_array", "nm_status of each TX frame", index="tx_frame_nr", values=Status),
    StateVar("tx_len", "int_array", "nm_len of each TX frame as the user wrote it", index="tx_frame_nr"),
    StateVar("tx_data", "int_array", "contents of each TX frame's payload area", index="tx_frame_nr"),
    StateVar("tx_head", "int", "kernel TX cursor"),
    StateVar("tx_pending", "int", "zero-copy TX skbs in flight (0 after 2015)"),
    StateVar("tx_user_cursor", "int", "the next TX frame a well-behaved user fills (in ring order, 11.2)", True),
    StateVar("tx_outcome", "int", "what the last kick told of the frame at the TX head: none, drained "
             "(returned >= 0) or EINVAL", True, values=_OUTCOMES),
    StateVar("tx_unacted", "int", "frames the walk took whose message the family has not acted on yet", True),
    StateVar("tx_phase", "int", "kernel TX walk: 0 idle, 1 copied/claimed, 2 validated, 3 acted", True),
    StateVar("tx_cur", "int", "TX frame the walk is on", True),
    StateVar("tx_private", "int", "the kernel's private copy of the message", True),
    StateVar("tx_plen", "int", "nm_len as the walk read it (once)", True),
    StateVar("tx_validated", "int", "the bytes the kernel validated", True),
    StateVar("tx_vlen", "int", "the length the kernel validated", True),
)

#: State only the 3.10 zero-copy TX path has (``tx_zero_copy``, 11.3).
ZERO_COPY_STATE: tuple[StateVar, ...] = (
    StateVar("file_shared", "bool", "the socket file has holders besides the user's descriptor and the "
             "mappings (dup, fork, SCM_RIGHTS)"),
    StateVar("tx_inplace", "bool", "the walk took the current frame zero-copy (the skb is the shared frame)", True),
)


def socket_state(variant: Variant) -> tuple[StateVar, ...]:
    """The socket's state variables under ``variant``."""
    return SOCKET_STATE + (ZERO_COPY_STATE if variant.tx_zero_copy else ())


#: Linux at socket creation: no ring, nothing queued, no error, no dump; all counters zero.
SOCKET_INIT = and_(
    eq(rx_n, 0), eq(tx_n, 0), eq(rx_head, 0), eq(tx_head, 0), eq(rx_pending, 0), eq(tx_pending, 0),
    eq(claims, 0), eq(rq_len, 0), eq(orphans, 0), not_(congested), not_(sk_err), not_(no_enobufs), eq(drops, 0),
    eq(raised, 0), eq(reported, 0), not_(told), not_(ack_owed), not_(dump_running),
    eq(mapped, 0), eq(sent, 0), eq(in_ring, 0), eq(consumed, 0), eq(aborted, 0),
    eq(purged, 0), eq(tx_phase, TX_IDLE), eq(tx_cur, 0), eq(tx_ucur, 0), eq(tx_outcome, TX_NO_OUTCOME),
    eq(tx_unacted, 0), not_(drained),
    rx_cap >= 0, tx_cap >= 0,
)


def socket_init(variant: Variant):
    """The initial condition under ``variant`` (zero-copy: the file is not shared yet)."""
    return and_(SOCKET_INIT, not_(file_shared)) if variant.tx_zero_copy else SOCKET_INIT
