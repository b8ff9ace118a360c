"""The test family's kernel rules, written once for every kernel side (model and implementation).

The frame-level protocol is the transition system of :mod:`nlmmap.spec.protocol`; this module
holds the *pure decisions* around it that a kernel side takes on a socket of the test family
(NETLINK_ROUTE on Linux 4.5, kernel-protocol.md sections 6.5, 8, 10, 11.1, 12.2, 20):

* the SOL_NETLINK options other than the rings (:func:`socket_option_effect`) and the family's
  multicast group range (:data:`FAMILY_GROUPS`);
* the delivery checks (:func:`check_delivery`), multicast membership (:func:`multicast_deliver`)
  and admission of a plain message to a congested socket (:func:`admission`, with the spec action
  behind it, :func:`admission_action`), the overrun rule (:func:`overrun_effect`), the SO_SNDBUF
  limit and the flags of a send (:func:`check_plain_send`, :func:`check_send_flags`);
* ``netlink_rcv_skb`` and the family's answer to each request (:func:`rcv_skb`,
  :func:`family_answer`), with its ACKs;
* dumps (:data:`DUMP_TYPE`, :func:`dump_request`, :func:`dump_messages`, :func:`dump_alloc_sizes`,
  :func:`dump_batch`, :func:`recvmsg_len_after`);
* the nfqueue batch-verdict selection (:func:`batch_verdict_ids`).

Each function is a decision with no I/O: a kernel side calls it and applies the result to its own
state (bytes in a model, shared memory in the implementation). Where the rule is also part of the
transition system (overrun, ``dump_space``, POLLIN), it is the spec's expression evaluated here
(:func:`evaluate_on`), so the rule still exists once.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from . import netlink as nl
from .abi import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_BROADCAST_ERROR,
    NETLINK_CAP_ACK,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_LISTEN_ALL_NSID,
    NETLINK_NO_ENOBUFS,
    NETLINK_PKTINFO,
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    as_bytes,
    nonneg_int,
)
from .errors import NetlinkError, errno_code
from .expr import Expr, evaluate

__all__ = [
    "FAMILY_GROUPS", "SockoptEffect", "socket_option_effect", "check_group", "check_delivery", "multicast_deliver",
    "admission",
    "admission_action", "overrun_effect", "MSG_OOB", "check_send_flags", "check_plain_send", "family_answer",
    "rcv_skb", "DUMP_TYPE", "DUMP_MAX_MESSAGES", "is_dump_request", "autobind_portid", "AUTOBIND_ROVER_TOP",
    "dump_request", "parse_dump_request", "dump_messages", "dump_done", "dump_alloc_sizes", "dump_batch",
    "recvmsg_len_after", "batch_verdict_ids", "evaluate_on", "DELIVERY_PATHS",
]

#: Multicast groups of the test family: ``netlink_kernel_create`` gives every family at least 32
#: groups (``groups < 32 -> 32``), so NETLINK_ROUTE on 4.5 has max(32, RTNLGRP_MAX) = 32 group
#: numbers, 1..32; ``NETLINK_ADD_MEMBERSHIP`` of 0 or more is EINVAL (``val - 1 >= ngroups``).
FAMILY_GROUPS = max(32, nl.RTNLGRP_MAX)

#: Where a delivery comes from: ``ring`` (a converted kernel subsystem, netlink_alloc_skb) or
#: ``copy`` (a plain skb: a user-space sender, or a multicast notification).
DELIVERY_PATHS = ("ring", "copy")

_U32 = struct.Struct("=I")
K = TypeVar("K")


# --- SOL_NETLINK options other than the rings (section 1.1, af_netlink.c netlink_setsockopt) ----
@dataclass(frozen=True)
class SockoptEffect:
    """What a non-ring SOL_NETLINK option does: ``kind`` is ``no_enobufs``, ``cap_ack``,
    ``add_membership``, ``drop_membership`` or ``flag`` (an option with no effect on the rings);
    ``value`` is the int the kernel read (0 when ``optlen < 4``)."""

    kind: str
    option: int
    value: int


_FLAG_OPTIONS = {NETLINK_PKTINFO: "NETLINK_PKTINFO", NETLINK_BROADCAST_ERROR: "NETLINK_BROADCAST_ERROR",
                 NETLINK_LISTEN_ALL_NSID: "NETLINK_LISTEN_ALL_NSID"}


def socket_option_effect(option: int, optval: bytes) -> SockoptEffect:
    """``netlink_setsockopt`` for an option other than the rings: the int is read only when
    ``optlen >= 4`` (else 0); membership options check the group range (EINVAL); unknown options
    are ENOPROTOOPT.

    >>> socket_option_effect(5, b"\\x01\\0\\0\\0")
    SockoptEffect(kind='no_enobufs', option=5, value=1)
    >>> socket_option_effect(1, b"\\x21\\0\\0\\0")
    Traceback (most recent call last):
    nlmmap.spec.errors.NetlinkError: EINVAL: multicast group 33 is not 1..32
    """
    option = nonneg_int(option, "option")
    data = as_bytes(optval, "optval")
    if option in (NETLINK_RX_RING, NETLINK_TX_RING):
        raise NetlinkError("EINVAL", "ring options go through netlink_set_ring (nlmmap.spec.abi.check_ring_change)")
    val = _U32.unpack_from(data, 0)[0] if len(data) >= 4 else 0
    if option == NETLINK_NO_ENOBUFS:
        return SockoptEffect("no_enobufs", option, val)
    if option == NETLINK_CAP_ACK:
        return SockoptEffect("cap_ack", option, val)
    if option in (NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP):
        check_group(val, zero_ok=False)
        return SockoptEffect("add_membership" if option == NETLINK_ADD_MEMBERSHIP else "drop_membership", option, val)
    if option in _FLAG_OPTIONS:
        return SockoptEffect("flag", option, val)
    raise NetlinkError("ENOPROTOOPT", f"SOL_NETLINK option {option} is not supported")


def check_group(group: int, *, zero_ok: bool = True) -> int:
    """A group number of the test family: 1..:data:`FAMILY_GROUPS` (0 = unicast, when allowed)."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 0:
        raise NetlinkError("EINVAL", f"multicast group must be a non-negative integer, got {group!r}")
    if (group == 0 and not zero_ok) or group > FAMILY_GROUPS:
        raise NetlinkError("EINVAL", f"multicast group {group} is not 1..{FAMILY_GROUPS}")
    return group


def check_delivery(path: str, group: int) -> None:
    """A delivery to a socket: ``ring`` deliveries are unicast (a kernel subsystem's reply to one
    socket); ``copy`` deliveries are unicast (group 0) or to one of the family's groups."""
    if path not in DELIVERY_PATHS:
        raise NetlinkError("EINVAL", f"path must be 'ring' or 'copy', got {path!r}")
    check_group(group)
    if path == "ring" and group:
        raise NetlinkError("EINVAL", "ring-path deliveries are unicast (group must be 0)")


def multicast_deliver(group: int, target: K, joined: Iterable[int],
                      sockets: Iterable[tuple[K, Iterable[int]]]) -> tuple[bool, list[K]]:
    """The adapter's multicast ``deliver`` to group ``group`` (``check_group`` first) addressed to
    socket ``target``: the target joins the group the first time a delivery names it (``joined``:
    groups it joined that way before; a socket that left with NETLINK_DROP_MEMBERSHIP after that
    join is not joined again, as the real-kernel agent does), then its peer sends to the group and
    ``netlink_broadcast`` gives a copy to *every* socket of the family that is a member of the
    group (13.3; ``do_one_broadcast`` skips only the sender, the peer, which never joins).
    ``sockets`` are (socket, groups it is a member of) before the join. Returns (the target joins
    now, the members that get the message, in the order given).

    >>> multicast_deliver(3, "a", joined=(), sockets=[("a", ()), ("b", (3,)), ("c", (1,))])
    (True, ['a', 'b'])
    >>> multicast_deliver(3, "a", joined=(3,), sockets=[("a", ()), ("b", (3,))])
    (False, ['b'])
    """
    check_group(group, zero_ok=False)
    join = group not in set(joined)
    return join, [k for k, groups in sockets if group in set(groups) or (join and k == target)]


def admission_action(*, from_kernel: bool, broadcast: bool = False) -> str:
    """The spec action (:mod:`nlmmap.spec.protocol`) that turns a plain message away from a
    CONGESTED socket: ``copy_congested_kernel`` (dropped with an overrun) for a kernel sender's or
    a multicast message, ``copy_refused`` (its errno, EAGAIN) for a user-space unicast sender."""
    return "copy_congested_kernel" if from_kernel or broadcast else "copy_refused"


def admission(congested: bool, *, from_kernel: bool, broadcast: bool = False) -> str:
    """``netlink_attachskb`` / ``netlink_broadcast_deliver`` for a plain message (6.3, 6.5):
    ``"deliver"``, or on a CONGESTED socket ``"overrun"`` (a kernel sender's or a multicast
    message is dropped with an overrun); a non-blocking user-space unicast sender gets EAGAIN.
    The guard and errno are those of the spec action :func:`admission_action` names.

    >>> admission(True, from_kernel=True), admission(False, from_kernel=False)
    ('overrun', 'deliver')
    >>> try:
    ...     admission(True, from_kernel=False)
    ... except NetlinkError as e:
    ...     print(e.errno)
    EAGAIN
    """
    action = _socket_action(admission_action(from_kernel=from_kernel, broadcast=broadcast))
    if not evaluate(action.guard, {"congested": bool(congested)}):
        return "deliver"
    if action.errno:
        raise NetlinkError(action.errno, action.doc)
    return "overrun"


@functools.cache
def _socket_action(name: str) -> Any:
    from .protocol import socket_system

    return socket_system().action(name)


def evaluate_on(e: Expr, values: Mapping[str, Any] | Callable[[str], Any]) -> Any:
    """A spec expression evaluated on a kernel side's own state (``values[name]`` or
    ``values(name)`` gives each spec variable the expression reads)."""
    return evaluate(e, values)


def overrun_effect(*, congested: bool, sk_err: bool, no_enobufs: bool) -> tuple[bool, bool]:
    """``netlink_overrun`` (6.5): the new (CONGESTED, sk_err = ENOBUFS) after a drop; the drop is
    always counted. The spec's own expressions, evaluated."""
    from .protocol.names import OVERRUN_CONGESTED, OVERRUN_SK_ERR

    env = {"congested": bool(congested), "sk_err": bool(sk_err), "no_enobufs": bool(no_enobufs)}
    return bool(evaluate(OVERRUN_CONGESTED, env)), bool(evaluate(OVERRUN_SK_ERR, env))


#: ``MSG_OOB``: netlink_sendmsg refuses out-of-band data (EOPNOTSUPP, section 11.1).
MSG_OOB = 0x1


def check_send_flags(flags: int) -> int:
    """The sendmsg flags netlink accepts: anything but MSG_OOB (EOPNOTSUPP); EINVAL for a
    non-integer."""
    flags = nonneg_int(flags, "flags")
    if flags & MSG_OOB:
        raise NetlinkError("EOPNOTSUPP", "MSG_OOB is not supported by netlink")
    return flags


def check_plain_send(length: int, sndbuf: int) -> None:
    """A plain sendmsg longer than ``sndbuf - 32`` fails with EMSGSIZE (11.1; the ring path has
    no such check, only the frame size)."""
    if length > sndbuf - 32:
        raise NetlinkError("EMSGSIZE", f"message of {length} bytes > sndbuf - 32 ({sndbuf - 32})")


# --- port ids (netlink_autobind) ------------------------------------------------------------------
#: Where netlink_autobind (Linux 4.5) searches after a collision: negative port ids below this.
AUTOBIND_ROVER_TOP = -4097


def autobind_portid(tgid: int, taken: Collection[int]) -> int:
    """The port id netlink_autobind gives a new socket of a process ``tgid`` (as u32): the tgid
    when no socket holds it, else a free negative value at or below -4097. 4.5 starts that search
    at a random point (the real kernel's agent's second socket got 0xfffc8a65); here at the top,
    a kernel side's free choice. Recordings of 4.5 come from an agent that runs as pid 1."""
    taken_u32 = {int(p) & 0xFFFFFFFF for p in taken}
    if tgid & 0xFFFFFFFF not in taken_u32:
        return tgid & 0xFFFFFFFF
    rover = AUTOBIND_ROVER_TOP
    while rover & 0xFFFFFFFF in taken_u32:
        rover -= 1
    return rover & 0xFFFFFFFF


# --- netlink_rcv_skb and the family's answers (section 20) ----------------------------------------
def family_answer(hdr: nl.NlMsgHdr, raw: bytes, *, cap_net_admin: bool = True, dump_service: bool = True,
                  start_dump: Callable[[nl.NlMsgHdr, int, int], int] | None = None,
                  page_size: int = 4096) -> nl.Reply:
    """The test family's result for one request: NETLINK_ROUTE's answer (section 20) and, with the
    dump service, a dump of :data:`DUMP_TYPE` started through ``start_dump(hdr, count, size)``
    (0, or -errno such as -EBUSY: then an error ACK). A started dump gets no ACK. ``page_size``
    bounds the dump's message size (:func:`parse_dump_request`)."""
    dump_types = frozenset({DUMP_TYPE}) if dump_service else frozenset()
    reply = nl.route_family_answer(hdr, dump_types=dump_types, cap_net_admin=cap_net_admin)
    if not reply.dump:
        return reply
    if not is_dump_request(raw):  # not the service's request: Linux 4.5's answer, as without it
        return nl.route_family_answer(hdr, cap_net_admin=cap_net_admin)
    try:
        count, size = parse_dump_request(raw, page_size=page_size)
    except NetlinkError as e:
        return nl.Reply(-e.code, True)
    if start_dump is None:
        return nl.Reply(-errno_code("EOPNOTSUPP"), True)
    err = start_dump(hdr, count, size)
    return nl.Reply(0, False) if err == 0 else nl.Reply(err, True)


def rcv_skb(datagram: bytes, portid: int, *, cap_ack: bool,
            answer: Callable[[nl.NlMsgHdr, bytes], nl.Reply]) -> Iterator[bytes]:
    """``netlink_rcv_skb`` over one datagram sent to the kernel: each well-formed message in order
    gets ``answer(hdr, raw)``; a non-zero result always, a zero one only with NLM_F_ACK, produces an
    ACK, yielded for the caller to send *before* the next message is taken (lazily, so replies a
    handler sends, such as a dump's first batch, stay in order). A malformed header ends the walk
    silently (:func:`nlmmap.spec.netlink.split_messages`)."""
    for hdr, raw in nl.split_messages(datagram):
        reply = answer(hdr, raw)
        if reply.ack or reply.error:
            yield nl.build_ack(raw, portid, reply.error, cap_ack=cap_ack)


# --- dumps (section 10) -----------------------------------------------------------------------------
#: The test family's dump: a GET request (kind 2) of this type with NLM_F_DUMP and a payload of
#: rtgenmsg (family byte, 3 pad bytes), u32 message count, u32 message payload bytes. 54 is the GET
#: kind of RTM_NEWPREFIX's group, for which Linux 4.5 registers no handler: a real kernel answers
#: it with EOPNOTSUPP, a kernel side with the dump service (feature ``dump``) with the dump when
#: the payload starts as :func:`dump_request` writes it (:func:`is_dump_request`), else as 4.5.
DUMP_TYPE = 54
#: Most messages one dump request may ask for (a bound on work, not a kernel rule).
DUMP_MAX_MESSAGES = 4096
_DUMP_REQ = struct.Struct("=B3xII")


def dump_request(count: int, size: int, *, seq: int = 0, flags: int = nl.NLM_F_REQUEST | nl.NLM_F_DUMP,
                 portid: int = 0) -> bytes:
    """A request for a dump of ``count`` messages of ``size`` payload bytes each."""
    return nl.build_message(DUMP_TYPE, flags, seq, portid, _DUMP_REQ.pack(0, count, size))


def is_dump_request(raw: bytes) -> bool:
    """A DUMP_TYPE dump the dump service takes as its own: the payload starts as
    :func:`dump_request` writes it, rtgenmsg of AF_UNSPEC and zero padding (whole, or what of it
    there is). Any other is answered as Linux 4.5 answers it (no handler: EOPNOTSUPP), so that a
    kernel side with the service agrees with a real kernel on every message but its own requests
    (a recording of Linux 4.5 holds DUMP_TYPE dumps of random payloads)."""
    hdr = nl.NlMsgHdr.unpack(raw)
    head = bytes(raw[nl.NLMSG_HDRLEN:min(hdr.len, nl.NLMSG_HDRLEN + 4)])
    return head == bytes(len(head))


def _dump_size_limit(page_size: int) -> int:
    # one dump message and NLMSG_DONE must fit a NLMSG_GOODSIZE skb
    return nl.nlmsg_goodsize(page_size) - nl.NLMSG_HDRLEN - 4 - nl.NLMSG_HDRLEN


def parse_dump_request(raw: bytes, *, page_size: int = 4096) -> tuple[int, int]:
    """(count, size) of a dump request; EINVAL if the payload is short or asks for messages that
    do not fit a NLMSG_GOODSIZE skb, or for more than :data:`DUMP_MAX_MESSAGES`."""
    hdr = nl.NlMsgHdr.unpack(raw)
    body = bytes(raw[nl.NLMSG_HDRLEN:hdr.len])
    if len(body) < _DUMP_REQ.size:
        raise NetlinkError("EINVAL", f"dump request payload of {len(body)} bytes < {_DUMP_REQ.size}")
    _, count, size = _DUMP_REQ.unpack_from(body, 0)
    if count > DUMP_MAX_MESSAGES or nl.nlmsg_align(size) > _dump_size_limit(page_size):
        raise NetlinkError("EINVAL", f"dump of {count} messages of {size} bytes: at most {DUMP_MAX_MESSAGES} "
                                     f"messages of at most {_dump_size_limit(page_size)} bytes")
    return count, size


def dump_messages(hdr: nl.NlMsgHdr, portid: int, count: int, size: int) -> list[bytes]:
    """The dump's messages: NLM_F_MULTI, the request's type and seq, ``nlmsg_pid`` = the
    requester's portid, payload bytes ``(k + b) mod 256`` for message k (so each is distinct)."""
    return [nl.build_message(hdr.type, nl.NLM_F_MULTI, hdr.seq, portid, bytes((k + b) & 0xFF for b in range(size)))
            for k in range(count)]


def dump_done(seq: int, portid: int) -> bytes:
    """NLMSG_DONE ending a dump (NLM_F_MULTI, payload the s32 result 0)."""
    return nl.build_message(nl.NLMSG_DONE, nl.NLM_F_MULTI, seq, portid, b"\0\0\0\0")


def dump_alloc_sizes(max_recvmsg_len: int, page_size: int) -> list[int]:
    """``netlink_dump``'s allocation attempts (4.4): ``max_recvmsg_len`` first if it exceeds
    NLMSG_GOODSIZE, then NLMSG_GOODSIZE. Each attempt uses a ring frame when one can hold it."""
    good = nl.nlmsg_goodsize(page_size)
    return ([max_recvmsg_len] if good < max_recvmsg_len else []) + [good]


def dump_batch(pending: Sequence[bytes], room: int, done: bytes) -> tuple[bytes, int, bool]:
    """One dump skb of ``room`` bytes: as many pending messages as fit, in order, then NLMSG_DONE
    if nothing is left and it fits too. Returns (skb bytes, messages taken, dump finished)."""
    body, taken = b"", 0
    while taken < len(pending) and len(body) + len(pending[taken]) <= room:
        body += pending[taken]
        taken += 1
    finished = False
    if taken == len(pending) and len(body) + len(done) <= room:
        body += done
        finished = True
    return body, taken, finished


def recvmsg_len_after(max_recvmsg_len: int, bufsize: int) -> int:
    """``max_recvmsg_len`` after a recvmsg with a ``bufsize`` buffer (section 8: it only grows,
    capped at 32448 on x86-64)."""
    return min(max(max_recvmsg_len, bufsize), nl.MAX_RECVMSG_LEN)


# --- nfnetlink_queue batch verdicts (section 12.2) -----------------------------------------------
def batch_verdict_ids(queued_ids: Iterable[int], packet_id: int) -> list[int]:
    """``nfqnl_recv_verdict_batch``: walking the queue in enqueue order, every id up to the first
    one "after" ``packet_id`` in serial-number arithmetic; ENOENT if none."""
    hit = []
    for qid in queued_ids:
        if nl.serial_after(qid, packet_id):
            break
        hit.append(qid)
    if not hit:
        raise NetlinkError("ENOENT", f"no queued packet id <= {packet_id}")
    return hit
