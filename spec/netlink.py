"""Netlink messages: ``nlmsghdr``/``nlattr`` layouts, the kernel's input loop and its ACKs.

What the kernel side does with a message it receives, through a TX frame or a plain sendmsg
(kernel-protocol.md section 20): ``netlink_rcv_skb`` walks the datagram message by message and
stops *silently* at the first malformed header; each request is answered through
``netlink_ack`` with an NLMSG_ERROR message (error 0 and the request header, or an errno and the
whole request). The kernel side of the test family answers as NETLINK_ROUTE does for messages it
does not implement. A TX frame is validated first (:func:`validate_tx_frame`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .abi import NL_MMAP_HDRLEN, FrameHeader, u32
from .errors import NetlinkError, errno_code

__all__ = [
    "NLMSG_ALIGNTO", "NLMSG_HDRLEN", "NLMSG_NOOP", "NLMSG_ERROR", "NLMSG_DONE", "NLMSG_OVERRUN",
    "NLMSG_MIN_TYPE", "NLMSG_LEN_OFFSET", "NLMSG_TYPE_OFFSET", "NLMSG_FLAGS_OFFSET",
    "NLMSG_SEQ_OFFSET", "NLMSG_PID_OFFSET", "NLM_F_REQUEST", "NLM_F_MULTI", "NLM_F_ACK", "NLM_F_ECHO", "NLM_F_ROOT",
    "NLM_F_MATCH", "NLM_F_DUMP", "NLA_HDRLEN", "RTM_MAX", "RTNLGRP_MAX", "nlmsg_align", "NlMsgHdr", "NlAttr",
    "split_messages", "parse_attributes", "build_message", "build_ack", "ack_length",
    "validate_tx_frame", "Reply", "route_family_answer", "nlmsg_goodsize", "MAX_RECVMSG_LEN", "DEFAULT_SNDBUF",
]

NLMSG_ALIGNTO = 4
NLMSG_HDRLEN = 16
NLMSG_NOOP = 0x1
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3
NLMSG_OVERRUN = 0x4
NLMSG_MIN_TYPE = 0x10  # types below are control messages, never handed to a family

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ECHO = 0x8
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH

NLA_HDRLEN = 4
#: Highest rtnetlink message type on Linux 4.5 (RTM_GETNSID = 90, rounded to a group of 4, - 1).
RTM_MAX = 91
#: Multicast groups of NETLINK_ROUTE on Linux 4.5 (RTNLGRP_NSID = 28): NETLINK_ADD_MEMBERSHIP of
#: 0 or of a larger group number is EINVAL.
RTNLGRP_MAX = 28

_NLH = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
#: Byte offset of each ``struct nlmsghdr`` field in a message (u32 len, u16 type, u16 flags, u32 seq,
#: u32 pid): the offsets of _NLH's fields.
NLMSG_LEN_OFFSET, NLMSG_TYPE_OFFSET, NLMSG_FLAGS_OFFSET, NLMSG_SEQ_OFFSET, NLMSG_PID_OFFSET = (
    struct.calcsize("=" + _NLH.format[1:k]) for k in range(1, len(_NLH.format)))
_ERR = struct.Struct("=i")


#: net.core.wmem_default on the recorded kernels: SO_SNDBUF of a new socket; a plain sendmsg longer
#: than sndbuf - 32 fails with EMSGSIZE (section 11.1).
DEFAULT_SNDBUF = 212992
SKB_SHARED_INFO_SIZE = 320  # SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64 (4.4)
MAX_RECVMSG_LEN = 32768 - SKB_SHARED_INFO_SIZE  # SKB_WITH_OVERHEAD(32768), the 4.4 cap (section 8)


def nlmsg_goodsize(page_size: int = 4096) -> int:
    """``NLMSG_GOODSIZE``: min(PAGE_SIZE, 8192) minus the skb_shared_info overhead (3776 on
    x86-64 with 4 KiB pages; section 10). The first allocation size of every dump skb."""
    return min(int(page_size), 8192) - SKB_SHARED_INFO_SIZE


def nlmsg_align(x: int) -> int:
    """``NLMSG_ALIGN``: round up to a multiple of 4."""
    return (int(x) + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1)


@dataclass(frozen=True)
class NlMsgHdr:
    """``struct nlmsghdr``: length (header included), type, flags, sequence number, portid."""

    len: int
    type: int
    flags: int
    seq: int
    portid: int  # nlmsg_pid: the sender's (or, in a reply, the requester's) portid, not a process id

    def __post_init__(self) -> None:
        u32(self.len, "nlmsg_len")
        u32(self.seq, "nlmsg_seq")
        u32(self.portid, "nlmsg_pid")
        for name in ("type", "flags"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFF:
                raise NetlinkError("EINVAL", f"nlmsg_{name} = {v!r} does not fit a u16")

    def pack(self) -> bytes:
        """The 16 header bytes."""
        return _NLH.pack(self.len, self.type, self.flags, self.seq, self.portid)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> NlMsgHdr:
        """Parse 16 header bytes at ``offset`` (``EINVAL`` if fewer remain)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise NetlinkError("EFAULT", f"message must be bytes, got {type(data).__name__}")
        if offset < 0 or len(data) - offset < NLMSG_HDRLEN:
            raise NetlinkError("EINVAL", f"need {NLMSG_HDRLEN} bytes for a nlmsghdr at offset {offset}")
        return _nlh_from(cls, data, offset)


def _nlh_from(cls: type[NlMsgHdr], data: Any, offset: int) -> NlMsgHdr:
    """A header from 16 bytes known to be there. The unpacked fields are a u32, two u16 and two
    u32 by construction: the range checks of ``__post_init__`` cannot fail, and skipping them
    (and the frozen ``__init__``) cuts the cost of every parsed message to a third."""
    hdr = _new(cls)
    d = hdr.__dict__
    d["len"], d["type"], d["flags"], d["seq"], d["portid"] = _NLH.unpack_from(data, offset)
    return hdr


_new = object.__new__



@dataclass(frozen=True)
class NlAttr:
    """One ``struct nlattr`` (type without the NESTED/BYTEORDER flag bits) and its payload."""

    type: int
    nested: bool
    net_byteorder: bool
    payload: bytes


def split_messages(datagram: bytes) -> Iterator[tuple[NlMsgHdr, bytes]]:
    """The messages of one datagram as ``netlink_rcv_skb`` takes them: while 16 bytes remain, a
    header whose ``nlmsg_len`` is < 16 or larger than what is left ends the walk silently; the
    next message starts at the 4-aligned ``nlmsg_len``. Yields (header, whole message bytes)."""
    if not isinstance(datagram, (bytes, bytearray, memoryview)):
        raise NetlinkError("EFAULT", f"datagram must be bytes, got {type(datagram).__name__}")
    data = datagram if type(datagram) is bytes else bytes(datagram)
    pos, total = 0, len(data)
    while total - pos >= NLMSG_HDRLEN:
        hdr = _nlh_from(NlMsgHdr, data, pos)
        ln = hdr.len
        if ln < NLMSG_HDRLEN or ln > total - pos:
            return
        yield hdr, data[pos:pos + ln]
        pos += min(nlmsg_align(ln), total - pos)


def parse_attributes(buf: bytes) -> tuple[list[NlAttr], int]:
    """``nla_parse`` structure checks: attributes while ``nla_ok`` holds (4 header bytes, a length
    >= 4 and within what is left); returns (attributes, leftover bytes). A kernel handler logs
    leftover bytes but accepts them (4.5)."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise NetlinkError("EFAULT", f"attributes must be bytes, got {type(buf).__name__}")
    data = buf if type(buf) is bytes else bytes(buf)
    pos, total, out = 0, len(data), []
    unpack = _NLA.unpack_from
    while total - pos >= NLA_HDRLEN:
        nla_len, nla_type = unpack(data, pos)
        if nla_len < NLA_HDRLEN or nla_len > total - pos:
            break
        a = _new(NlAttr)  # the frozen __init__ costs ~1 us a call; the fields are the same
        d = a.__dict__
        d["type"], d["nested"], d["net_byteorder"], d["payload"] = (
            nla_type & 0x3FFF, nla_type & 0x8000 != 0, nla_type & 0x4000 != 0, data[pos + NLA_HDRLEN:pos + nla_len])
        out.append(a)
        pos += min(nlmsg_align(nla_len), total - pos)
    return out, total - pos


def build_message(type_: int, flags: int, seq: int, portid: int, payload: bytes = b"") -> bytes:
    """A netlink message: header with ``nlmsg_len = 16 + len(payload)`` and ``nlmsg_pid`` =
    ``portid``, payload, zero padding to a 4-byte boundary (as ``__nlmsg_put`` does)."""
    body = bytes(payload)
    hdr = NlMsgHdr(NLMSG_HDRLEN + len(body), type_, flags, seq, portid)
    return (hdr.pack() + body).ljust(nlmsg_align(hdr.len), b"\0")


def ack_length(request: NlMsgHdr, error: int, *, cap_ack: bool = False) -> int:
    """Bytes of ``netlink_ack``'s reply (the skb length, 4-aligned): 36 for error 0 or with
    NETLINK_CAP_ACK, else 20 + the request's ``nlmsg_len``."""
    payload = 4 + NLMSG_HDRLEN
    if error and not cap_ack:
        payload += request.len - NLMSG_HDRLEN
    return nlmsg_align(NLMSG_HDRLEN + payload)


def build_ack(request: bytes, requester_portid: int, error: int = 0, *, cap_ack: bool = False) -> bytes:
    """``netlink_ack``: NLMSG_ERROR with flags 0, the request's seq, ``nlmsg_pid`` = the
    requester's portid; payload = ``error`` (0 or a negative errno) then the request header, or
    the whole request when ``error`` is non-zero and NETLINK_CAP_ACK is off."""
    hdr = NlMsgHdr.unpack(request)
    if isinstance(error, bool) or not isinstance(error, int) or not -4095 <= error <= 0:
        raise NetlinkError("EINVAL", f"ACK error must be 0 or a negative errno, got {error!r}")
    echoed = bytes(request[:hdr.len]) if (error and not cap_ack) else bytes(request[:NLMSG_HDRLEN])
    if len(echoed) < min(hdr.len, NLMSG_HDRLEN if not error or cap_ack else hdr.len):
        raise NetlinkError("EINVAL", f"request holds {len(request)} bytes, nlmsg_len says {hdr.len}")
    return build_message(NLMSG_ERROR, 0, hdr.seq, u32(requester_portid, "portid"),
                         _ERR.pack(error) + echoed)


def validate_tx_frame(header: FrameHeader, frame_size: int) -> int:
    """The TX walk's one check on a VALID frame (11.2): ``nm_len`` read once must be at most
    ``frame_size - 24``; returns it, or raises ``EINVAL`` (the frame stays VALID)."""
    maxlen = frame_size - NL_MMAP_HDRLEN
    if header.len > maxlen:
        raise NetlinkError("EINVAL", f"TX frame nm_len {header.len} > frame_size - {NL_MMAP_HDRLEN} = {maxlen}")
    return header.len


@dataclass(frozen=True)
class Reply:
    """What the kernel family does with one request: ``error`` for netlink_ack (0 or -errno) and
    whether an ACK is sent at all (``ack``); ``dump`` is True when a dump should start."""

    error: int
    ack: bool
    dump: bool = False


def route_family_answer(hdr: NlMsgHdr, *, dump_types: frozenset[int] = frozenset(),
                        cap_net_admin: bool = True) -> Reply:
    """How NETLINK_ROUTE on 4.5 answers a request it does not implement (section 20): messages
    without NLM_F_REQUEST and control types (< 0x10) get an ACK only with NLM_F_ACK; types above
    RTM_MAX get EOPNOTSUPP; a request without a payload byte is ignored (result 0); non-GET kinds
    need CAP_NET_ADMIN (EPERM); a GET with NLM_F_DUMP on a type in ``dump_types`` starts a dump;
    everything else has no handler: EOPNOTSUPP. A non-zero result always gets an error ACK."""
    wants_ack = bool(hdr.flags & NLM_F_ACK)
    if not hdr.flags & NLM_F_REQUEST or hdr.type < NLMSG_MIN_TYPE:
        return Reply(0, wants_ack)
    if hdr.type > RTM_MAX:
        return Reply(-errno_code("EOPNOTSUPP"), True)
    if hdr.len - NLMSG_HDRLEN < 1:
        return Reply(0, wants_ack)
    kind = (hdr.type - NLMSG_MIN_TYPE) & 3
    if kind != 2 and not cap_net_admin:
        return Reply(-errno_code("EPERM"), True)
    if kind == 2 and hdr.flags & NLM_F_DUMP and hdr.type in dump_types:
        return Reply(0, False, dump=True)
    return Reply(-errno_code("EOPNOTSUPP"), True)


# --- nfnetlink_queue (sections 12.2, 13.7) ------------------------------------------------------------
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 1, 2, 3
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NF_DROP, NF_ACCEPT = 0, 1
_NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, res_id (big-endian queue number)


def serial_after(a: int, b: int) -> bool:
    """nfqueue's id comparison: ``(int32)(a - b) > 0`` (serial-number arithmetic)."""
    d = (int(a) - int(b)) & 0xFFFFFFFF
    return 0 < d < 0x80000000


def _nla(type_: int, payload: bytes) -> bytes:
    return (_NLA.pack(NLA_HDRLEN + len(payload), type_) + payload).ljust(nlmsg_align(NLA_HDRLEN + len(payload)), b"\0")


def build_queue_packet(packet_id: int, payload: bytes, *, queue_num: int = 0, portid: int = 0) -> bytes:
    """An NFQNL_MSG_PACKET message: nfgenmsg, NFQA_PACKET_HDR (packet id big-endian, hw protocol,
    hook), NFQA_PAYLOAD."""
    hdr = struct.pack(">IHB", u32(packet_id, "packet id"), 0x0800, 1)
    body = _NFGEN.pack(0, 0, struct.unpack("=H", struct.pack(">H", queue_num & 0xFFFF))[0])
    body += _nla(NFQA_PACKET_HDR, hdr) + _nla(NFQA_PAYLOAD, bytes(payload))
    return build_message((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET, 0, 0, portid, body)


#: Offset of the packet id (big-endian u32, first in NFQA_PACKET_HDR) in a packet message of
#: :func:`build_queue_packet`: after the nlmsghdr, the nfgenmsg and the attribute's header.
QUEUE_PACKET_ID_OFFSET = NLMSG_HDRLEN + _NFGEN.size + NLA_HDRLEN


def parse_queue_packet(msg: bytes) -> tuple[int, bytes]:
    """(packet id, payload) of an NFQNL_MSG_PACKET message; ``EINVAL`` if it is not one."""
    hdr = NlMsgHdr.unpack(msg)
    if hdr.type != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET or hdr.len > len(msg) or hdr.len < NLMSG_HDRLEN + 4:
        raise NetlinkError("EINVAL", "not an NFQNL_MSG_PACKET message")
    attrs, _ = parse_attributes(bytes(msg[NLMSG_HDRLEN + 4:hdr.len]))
    by_type = {a.type: a.payload for a in attrs}
    if NFQA_PACKET_HDR not in by_type or len(by_type[NFQA_PACKET_HDR]) < 4:
        raise NetlinkError("EINVAL", "packet message without NFQA_PACKET_HDR")
    return struct.unpack(">I", by_type[NFQA_PACKET_HDR][:4])[0], by_type.get(NFQA_PAYLOAD, b"")


def build_queue_verdict(packet_id: int, verdict: int = NF_ACCEPT, *, batch: bool = False, queue_num: int = 0,
                        seq: int = 0, flags: int = NLM_F_REQUEST) -> bytes:
    """An NFQNL_MSG_VERDICT (or, with ``batch``, NFQNL_MSG_VERDICT_BATCH: every queued id <= the
    given one) message: nfgenmsg, NFQA_VERDICT_HDR (verdict, packet id; both big-endian)."""
    body = _NFGEN.pack(0, 0, struct.unpack("=H", struct.pack(">H", queue_num & 0xFFFF))[0])
    body += _nla(NFQA_VERDICT_HDR, struct.pack(">II", u32(verdict, "verdict"), u32(packet_id, "packet id")))
    type_ = (NFNL_SUBSYS_QUEUE << 8) | (NFQNL_MSG_VERDICT_BATCH if batch else NFQNL_MSG_VERDICT)
    return build_message(type_, flags, seq, 0, body)


_VERDICT_HDR = struct.Struct(">II")
_VERDICT_KINDS = {(NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT: False,
                  (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT_BATCH: True}


def parse_queue_verdict(msg: bytes) -> tuple[int, int, bool]:
    """(packet id, verdict, batch) of a verdict message; ``EINVAL`` if it is not one."""
    hdr = NlMsgHdr.unpack(msg)
    kinds = _VERDICT_KINDS
    if hdr.type not in kinds or hdr.len > len(msg) or hdr.len < NLMSG_HDRLEN + 4:
        raise NetlinkError("EINVAL", "not an NFQNL verdict message")
    attrs, _ = parse_attributes(bytes(msg[NLMSG_HDRLEN + 4:hdr.len]))
    vhdr = b""
    for a in attrs:  # the last NFQA_VERDICT_HDR counts (nla_parse keeps the last of a type)
        if a.type == NFQA_VERDICT_HDR:
            vhdr = a.payload
    if len(vhdr) < 8:
        raise NetlinkError("EINVAL", "verdict message without NFQA_VERDICT_HDR")
    verdict, packet_id = _VERDICT_HDR.unpack_from(vhdr)
    return packet_id, verdict, kinds[hdr.type]
