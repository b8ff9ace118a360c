"""Strategies for what the suite's user writes: ring geometries (valid, invalid, raw bytes), netlink
requests to the kernel (with and without NLM_F_ACK, unknown types, malformed), deliveries, and the
adversary's bytes. Payload bytes are expanded from a small drawn pattern, so a long message costs
Hypothesis a few choices, not thousands, and shrinks to a readable one."""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN, RingRequest
from nlmmap.spec.family import DUMP_TYPE, FAMILY_GROUPS

__all__ = ["geometry_menu", "ring_optval", "pattern", "message", "datagram", "deliver_payload", "group_number",
           "group_payload", "scribble_value", "KERNEL_SAFE_TYPES"]

#: Request types the test family answers without acting (section 20), safe on a real NETLINK_ROUTE:
#: control types (< 0x10), DUMP_TYPE (no handler on 4.5), types above RTM_MAX. Other family types
#: are sent only without a payload byte (rtnetlink ignores those) or without NLM_F_REQUEST.
KERNEL_SAFE_TYPES = (nl.NLMSG_NOOP, nl.NLMSG_ERROR, nl.NLMSG_DONE, nl.NLMSG_OVERRUN, 0x5, 0xF, DUMP_TYPE,
                     nl.RTM_MAX + 1, 0x1234, 0xFFFF)
#: A pid the suite writes into requests: never a portid a SUT hands out in practice (transcript
#: replays map portids in kernel-built messages).
REQUEST_PID = 0x5A5A5A5A


def geometry_menu(page: int) -> list[RingRequest]:
    """Small valid geometries: frames that hold an ACK or not (COPY path), gaps at block ends,
    one-frame rings, several blocks, frames of several pages."""
    return [RingRequest(page, 1, 2048, 2), RingRequest(page, 1, 1024, 4), RingRequest(page, 1, 1024, 4),
            RingRequest(page, 1, 512, 8), RingRequest(page, 1, 256, 16), RingRequest(page, 1, 2048, 2),
            RingRequest(page, 2, 2048, 4), RingRequest(page, 1, 48, page // 48), RingRequest(page, 1, 1000, 4),
            RingRequest(page, 1, page, 1), RingRequest(2 * page, 1, 2 * page, 1), RingRequest(page, 1, 128, 32),
            RingRequest(2 * page, 1, 2048, 4), RingRequest(page, 1, 64, 64), RingRequest(page, 2, 1024, 8)]


@st.composite
def ring_optval(draw, page: int) -> bytes:
    """Raw setsockopt bytes for NETLINK_RX_RING/TX_RING: mostly valid, else each geometry rule
    broken in turn, a tear-down (good or with frame_nr != 0), a u32 product that wraps, any bytes."""
    g = draw(st.sampled_from(geometry_menu(page)))
    kind = draw(st.sampled_from(["valid"] * 3 + ["teardown"] * 2 + ["bad_block", "block_top_bit", "block_zero",
                                                 "frame_small", "frame_unaligned", "frame_gt_block", "count", "count",
                                                 "teardown_count", "wrap", "raw", "long"]))
    bs, bn, fs, fn = g.block_size, g.block_nr, g.frame_size, g.frame_nr
    if kind == "teardown":
        bs, bn, fs, fn = draw(st.sampled_from([(0, 0, 0, 0), (0, 0, 0, 0), (page + 7, 0, 17, 0)]))
    elif kind == "bad_block":
        bs += draw(st.sampled_from([4, page // 2, 1]))
    elif kind == "block_top_bit":
        bs |= 0x80000000
    elif kind == "block_zero":
        bs = 0
    elif kind == "frame_small":
        fs, fn = draw(st.sampled_from([0, 16, 20])), fn
    elif kind == "frame_unaligned":
        fs += 2
    elif kind == "frame_gt_block":
        fs = bs + 4
    elif kind == "count":
        fn += draw(st.sampled_from([1, -1, 7]))
        fn &= 0xFFFFFFFF
    elif kind == "teardown_count":
        bs, bn, fs, fn = 0, 0, 0, draw(st.sampled_from([1, 3]))
    elif kind == "wrap":  # fpb * block_nr wraps to frame_nr: passes the checks, then ENOMEM
        bs, fs = page, page // 2
        bn = 0x80000001
        fn = (2 * bn) & 0xFFFFFFFF
    req = struct.pack("=4I", bs, bn, fs, fn)
    if kind == "raw":
        return draw(st.binary(max_size=24))
    if kind == "long":
        return req + draw(st.binary(min_size=1, max_size=8))
    return req


@st.composite
def pattern(draw, size: int) -> bytes:
    """``size`` bytes from a drawn (start, step) pattern."""
    if size <= 0:
        return b""
    a, b = draw(st.integers(0, 255)), draw(st.sampled_from([1, 3, 7, 0, 101]))
    return bytes((a + b * i) & 0xFF for i in range(size))


@st.composite
def message(draw, *, max_body: int = 64, to_kernel: bool = True) -> bytes:
    """One netlink message for the kernel: a control message or an unknown/unhandled type, with or
    without NLM_F_REQUEST/NLM_F_ACK, sometimes with a malformed ``nlmsg_len``."""
    typ = draw(st.sampled_from(KERNEL_SAFE_TYPES + (0x10, 18, 54)))
    flags = draw(st.sampled_from([nl.NLM_F_REQUEST | nl.NLM_F_ACK, nl.NLM_F_REQUEST, nl.NLM_F_ACK, 0,
                                  nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_DUMP, nl.NLM_F_REQUEST | nl.NLM_F_ECHO]))
    body_len = draw(st.integers(0, max_body))
    if to_kernel and nl.NLMSG_MIN_TYPE <= typ <= nl.RTM_MAX and typ != DUMP_TYPE and flags & nl.NLM_F_REQUEST:
        body_len = 0  # rtnetlink ignores a family request without a payload byte; with one it would act
    seq = draw(st.sampled_from([0, 1, 7, 0xFFFFFFFF]))
    body = draw(pattern(body_len))
    msg = nl.build_message(typ, flags, seq, REQUEST_PID if draw(st.booleans()) else 0, body)
    bad = draw(st.sampled_from([None] * 8 + ["short", "long", "zero"]))
    if bad is not None:
        ln = {"short": 8, "long": len(msg) + 100, "zero": 0}[bad]
        msg = struct.pack("=I", ln) + msg[4:]
    return msg


@st.composite
def datagram(draw, *, max_len: int = 1 << 16, to_kernel: bool = True) -> bytes:
    """One to three messages back to back, sometimes with fewer than 16 trailing bytes."""
    parts = draw(st.lists(message(to_kernel=to_kernel), min_size=1, max_size=3))
    data = b"".join(parts)
    if draw(st.integers(0, 9)) == 0:
        data += draw(pattern(draw(st.integers(1, 15))))
    return data[:max_len]


@st.composite
def acked_noop(draw, *, max_len: int = 1 << 16) -> bytes:
    """A NLMSG_NOOP asking for an ACK, with a drawn seq: every kernel answers it with an ACK that
    echoes its header, so a walk that acts on these bytes instead of the validated ones shows."""
    seq = draw(st.integers(0x1000, 0xFFFF))
    return nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, 0, b"")[:max_len]


def padded_request(request: bytes, size: int) -> bytes:
    """``request`` (one message) with zero bytes after its header up to ``size`` bytes in all, its
    ``nlmsg_len`` saying so: a request that fills a frame to its last byte."""
    hdr = nl.NlMsgHdr.unpack(request)
    return nl.build_message(hdr.type, hdr.flags, hdr.seq, hdr.portid, bytes(max(size - nl.NLMSG_HDRLEN, 0)))


@st.composite
def deliver_payload(draw, capacity: int | None) -> bytes:
    """A message for the socket, sized around the RX frame payload capacity (ring vs COPY path)."""
    if capacity is None:
        size = draw(st.integers(0, 600))
    else:
        size = draw(st.one_of(st.sampled_from([capacity, capacity + 1, capacity - 1, capacity + 4, 0, 16, 36]),
                              st.integers(0, capacity + 64)))
    size = max(size, 0)
    body = draw(pattern(max(size - 16, 0)))
    if size < 16:
        return draw(pattern(size))
    return nl.build_message(draw(st.sampled_from([0x10, 0x1234, 0x24])), 0, draw(st.integers(0, 3)), 0, body)[:size]


def group_number(*, errors: bool = True) -> st.SearchStrategy[int]:
    """A multicast group of the test family: 1..FAMILY_GROUPS (32), and with ``errors`` the
    numbers just outside (0, 33) and far outside it."""
    ok = st.integers(1, FAMILY_GROUPS)
    if not errors:
        return ok
    return st.one_of(ok, ok, ok, st.sampled_from([0, FAMILY_GROUPS + 1, FAMILY_GROUPS + 1, 1000, 0xFFFFFFFF]))


@st.composite
def group_payload(draw, size_max: int = 256) -> bytes:
    """A multicast message: never NLM_F_REQUEST or NLM_F_ACK (the unicast half a real kernel hands
    to its family must be ignored)."""
    size = draw(st.integers(16, size_max))
    return nl.build_message(0x1234, nl.NLM_F_MULTI if draw(st.booleans()) else 0, 0, 0, draw(pattern(size - 16)))


def scribble_value(*, skip: bool = True) -> st.SearchStrategy[int]:
    """A status word the adversary writes: statuses, and values that are none (SKIP only when the
    SUT implements it)."""
    return st.sampled_from([v for v in (0, 1, 2, 3, 4, 5, 0xFF, 0x100, 0xFFFFFFFF, 0x80000002) if skip or v != 4])


def tx_payload_capacity(frame_size: int) -> int:
    return frame_size - NL_MMAP_HDRLEN
