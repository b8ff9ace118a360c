"""The kernel ABI of memory-mapped netlink, byte for byte (kernel-protocol.md sections 1-4).

This module is the single place where a constant, a struct layout or a geometry rule of the
protocol is written down. Everything else (the reference model, the production implementation,
the conformance suite, the docs) imports it from here.

Layouts are native-endian, as in the kernel (``struct`` format prefix ``=``): on x86-64 and
AArch64 that is little-endian, which is what the recorded real-kernel transcripts show.

Geometry (section 2.2): a ring is ``block_nr`` blocks of ``block_size`` bytes; each block holds
``fpb = block_size // frame_size`` frames, possibly followed by an unused gap; frame ``i`` lives
at ``(i // fpb) * block_size + (i % fpb) * frame_size``. One mmap() covers the RX ring first,
then the TX ring (section 2.4).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from .errors import NetlinkError

__all__ = [
    "SOL_NETLINK", "NETLINK_ADD_MEMBERSHIP", "NETLINK_DROP_MEMBERSHIP", "NETLINK_PKTINFO",
    "NETLINK_BROADCAST_ERROR", "NETLINK_NO_ENOBUFS", "NETLINK_RX_RING", "NETLINK_TX_RING",
    "NETLINK_LISTEN_ALL_NSID", "NETLINK_LIST_MEMBERSHIPS", "NETLINK_CAP_ACK", "SOCKET_OPTIONS",
    "socket_option", "Status", "NL_MMAP_MSG_ALIGNMENT", "nl_mmap_msg_align", "NL_MMAP_HDRLEN",
    "NL_MMAP_REQ_LEN", "U32_MAX", "DEFAULT_PAGE_SIZE", "NDIAG_SHOW_MEMINFO", "NDIAG_SHOW_GROUPS",
    "NDIAG_SHOW_RING_CFG", "NETLINK_DIAG_MEMINFO", "NETLINK_DIAG_GROUPS", "NETLINK_DIAG_RX_RING",
    "NETLINK_DIAG_TX_RING", "RingRequest", "FrameHeader", "NM_STATUS_OFFSET", "NM_LEN_OFFSET", "NM_GROUP_OFFSET",
    "NM_PID_OFFSET", "NM_UID_OFFSET", "NM_GID_OFFSET", "NM_STATUS_SIZE", "check_page_size", "check_ring_geometry",
    "validate_ring_request", "RingGeometry", "MappingLayout", "FrameRef", "mapping_layout",
    "check_mmap_request", "u32", "as_bytes", "nonneg_int", "check_ring_change",
]

# --- 1.1 socket options -------------------------------------------------------------------------
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_DROP_MEMBERSHIP = 2
NETLINK_PKTINFO = 3
NETLINK_BROADCAST_ERROR = 4
NETLINK_NO_ENOBUFS = 5
NETLINK_RX_RING = 6
NETLINK_TX_RING = 7
NETLINK_LISTEN_ALL_NSID = 8
NETLINK_LIST_MEMBERSHIPS = 9
NETLINK_CAP_ACK = 10

#: Option names as the adapter protocol spells them -> option numbers.
SOCKET_OPTIONS: dict[str, int] = {
    "NETLINK_ADD_MEMBERSHIP": NETLINK_ADD_MEMBERSHIP,
    "NETLINK_DROP_MEMBERSHIP": NETLINK_DROP_MEMBERSHIP,
    "NETLINK_PKTINFO": NETLINK_PKTINFO,
    "NETLINK_BROADCAST_ERROR": NETLINK_BROADCAST_ERROR,
    "NETLINK_NO_ENOBUFS": NETLINK_NO_ENOBUFS,
    "NETLINK_RX_RING": NETLINK_RX_RING,
    "NETLINK_TX_RING": NETLINK_TX_RING,
    "NETLINK_LISTEN_ALL_NSID": NETLINK_LISTEN_ALL_NSID,
    "NETLINK_LIST_MEMBERSHIPS": NETLINK_LIST_MEMBERSHIPS,
    "NETLINK_CAP_ACK": NETLINK_CAP_ACK,
}


def socket_option(option: str | int) -> int:
    """Option number of a name (``"NETLINK_RX_RING"``) or number; ``ENOPROTOOPT`` if unknown."""
    if isinstance(option, bool):
        raise NetlinkError("EINVAL", f"socket option must be a name or a number, got {option!r}")
    if isinstance(option, int):
        if not 0 <= option <= 0x7FFFFFFF:
            raise NetlinkError("ENOPROTOOPT", f"socket option {option} is out of range")
        return option
    if isinstance(option, str) and option in SOCKET_OPTIONS:
        return SOCKET_OPTIONS[option]
    raise NetlinkError("ENOPROTOOPT", f"unknown SOL_NETLINK option {option!r}")


# --- 1.4 frame status ---------------------------------------------------------------------------
class Status(IntEnum):
    """``enum nl_mmap_status``: who owns a frame. Any other u32 the user writes is 'unknown'."""

    UNUSED = 0
    RESERVED = 1
    VALID = 2
    COPY = 3
    SKIP = 4


# --- 1.5 alignment and header length ------------------------------------------------------------
NL_MMAP_MSG_ALIGNMENT = 4
NL_MMAP_HDRLEN = 24  # align4(sizeof(struct nl_mmap_hdr)); message data starts at frame + 24
NL_MMAP_REQ_LEN = 16  # sizeof(struct nl_mmap_req)
U32_MAX = 0xFFFFFFFF
DEFAULT_PAGE_SIZE = 4096

# --- 1.6 netlink_diag ---------------------------------------------------------------------------
NDIAG_SHOW_MEMINFO = 0x1
NDIAG_SHOW_GROUPS = 0x2
NDIAG_SHOW_RING_CFG = 0x4
NETLINK_DIAG_MEMINFO = 0
NETLINK_DIAG_GROUPS = 1
NETLINK_DIAG_RX_RING = 2
NETLINK_DIAG_TX_RING = 3

_REQ = struct.Struct("=4I")
_HDR = struct.Struct("=6I")
assert _REQ.size == NL_MMAP_REQ_LEN and _HDR.size == NL_MMAP_HDRLEN


def nl_mmap_msg_align(x: int) -> int:
    """``NL_MMAP_MSG_ALIGN``: round up to a multiple of 4."""
    return (int(x) + NL_MMAP_MSG_ALIGNMENT - 1) & ~(NL_MMAP_MSG_ALIGNMENT - 1)


def u32(value: object, what: str) -> int:
    """Check that ``value`` is an int in [0, 2**32); ``EINVAL`` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise NetlinkError("EINVAL", f"{what} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= U32_MAX:
        raise NetlinkError("EINVAL", f"{what} = {value} does not fit a u32")
    return value


def as_bytes(data: object, what: str) -> bytes:
    """``data`` as bytes; anything else is ``EFAULT`` (the kernel's answer to a pointer it
    cannot read)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise NetlinkError("EFAULT", f"{what} must be bytes, got {type(data).__name__}")


def nonneg_int(value: object, what: str) -> int:
    """``value`` if it is a non-negative int; ``EINVAL`` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NetlinkError("EINVAL", f"{what} must be a non-negative integer, got {value!r}")
    return value


# --- 1.2 struct nl_mmap_req ---------------------------------------------------------------------
@dataclass(frozen=True)
class RingRequest:
    """``struct nl_mmap_req``: the setsockopt argument describing one ring's geometry."""

    block_size: int
    block_nr: int
    frame_size: int
    frame_nr: int

    def __post_init__(self) -> None:
        for name in ("block_size", "block_nr", "frame_size", "frame_nr"):
            u32(getattr(self, name), f"nm_{name}")

    def pack(self) -> bytes:
        """The 16 bytes userspace passes to setsockopt."""
        return _REQ.pack(self.block_size, self.block_nr, self.frame_size, self.frame_nr)

    @classmethod
    def unpack(cls, optval: bytes) -> RingRequest:
        """Read a request as the kernel does: ``optlen < 16`` is EINVAL, extra bytes ignored."""
        data = as_bytes(optval, "optval")
        if len(data) < NL_MMAP_REQ_LEN:
            raise NetlinkError(
                "EINVAL", f"optlen {len(data)} < sizeof(struct nl_mmap_req) = {NL_MMAP_REQ_LEN}")
        return cls(*_REQ.unpack_from(data, 0))

    @property
    def is_teardown(self) -> bool:
        """``nm_block_nr == 0``: the request removes the ring instead of creating one."""
        return self.block_nr == 0


# --- 1.3 struct nl_mmap_hdr ---------------------------------------------------------------------
@dataclass(frozen=True)
class FrameHeader:
    """``struct nl_mmap_hdr`` at the start of every frame. ``status`` is any u32 (users may write
    garbage); compare it with :class:`Status` members."""

    status: int = Status.UNUSED
    len: int = 0
    group: int = 0
    pid: int = 0
    uid: int = 0
    gid: int = 0

    def __post_init__(self) -> None:
        for name in ("status", "len", "group", "pid", "uid", "gid"):
            u32(getattr(self, name), f"nm_{name}")

    def pack(self) -> bytes:
        """The 24 header bytes."""
        return _HDR.pack(self.status, self.len, self.group, self.pid, self.uid, self.gid)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> FrameHeader:
        """Parse 24 header bytes at ``offset``; ``EINVAL`` if fewer are available."""
        raw = as_bytes(data, "frame header")
        if offset < 0 or len(raw) - offset < NL_MMAP_HDRLEN:
            raise NetlinkError("EINVAL", f"need {NL_MMAP_HDRLEN} header bytes at offset {offset}, "
                                         f"have {max(0, len(raw) - offset)}")
        return cls(*_HDR.unpack_from(raw, offset))

    @property
    def status_name(self) -> str:
        """``"VALID"`` etc., or ``"0x..."`` for a value that is no status."""
        try:
            return Status(self.status).name
        except ValueError:
            return f"0x{self.status:08x}"


#: Byte offset in a frame of each ``struct nl_mmap_hdr`` field (six u32 in FrameHeader's order):
#: ``nm_status`` at 0 (the status word), ``nm_len`` at 4, then ``nm_group``, ``nm_pid``, ``nm_uid``,
#: ``nm_gid``; the message at NL_MMAP_HDRLEN.
NM_STATUS_OFFSET, NM_LEN_OFFSET, NM_GROUP_OFFSET, NM_PID_OFFSET, NM_UID_OFFSET, NM_GID_OFFSET = (
    _HDR.size // 6 * i for i, _ in enumerate(dataclasses.fields(FrameHeader)))
NM_STATUS_SIZE = NM_LEN_OFFSET  # bytes of the status word


# --- 3.1 ring geometry rules --------------------------------------------------------------------
def check_page_size(page_size: int) -> int:
    """PAGE_SIZE must be a power of two of at least 4096 (x86-64: 4096; some arm64: 65536)."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 4096 \
            or page_size & (page_size - 1):
        raise NetlinkError("EINVAL", f"page_size must be a power of two >= 4096, got {page_size!r}")
    return page_size


def check_ring_geometry(req: RingRequest, *, page_size: int = DEFAULT_PAGE_SIZE) -> RingRequest:
    """The checks of ``netlink_set_ring`` that depend on the request alone (3.1 step 6.3/6.4),
    in the kernel's order; the first failing rule raises its errno."""
    check_page_size(page_size)
    if not isinstance(req, RingRequest):
        raise NetlinkError("EINVAL", f"expected a RingRequest, got {type(req).__name__}")
    if req.is_teardown:
        if req.frame_nr != 0:
            raise NetlinkError("EINVAL", f"tear-down (nm_block_nr 0) with nm_frame_nr {req.frame_nr} != 0")
        return req  # block_size and frame_size are not checked on tear-down
    if req.block_size == 0 or req.block_size >= 1 << 31:
        raise NetlinkError("EINVAL", f"nm_block_size {req.block_size} <= 0 as a signed int")
    if req.block_size % page_size:
        raise NetlinkError("EINVAL", f"nm_block_size {req.block_size} is not a multiple of "
                                     f"PAGE_SIZE {page_size}")
    if req.frame_size < NL_MMAP_HDRLEN:
        raise NetlinkError("EINVAL", f"nm_frame_size {req.frame_size} < NL_MMAP_HDRLEN {NL_MMAP_HDRLEN}")
    if req.frame_size % NL_MMAP_MSG_ALIGNMENT:
        raise NetlinkError("EINVAL", f"nm_frame_size {req.frame_size} is not a multiple of "
                                     f"NL_MMAP_MSG_ALIGNMENT {NL_MMAP_MSG_ALIGNMENT}")
    fpb = req.block_size // req.frame_size
    if fpb == 0:
        raise NetlinkError("EINVAL", f"nm_frame_size {req.frame_size} > nm_block_size "
                                     f"{req.block_size}: no frame fits a block")
    if (fpb * req.block_nr) & U32_MAX != req.frame_nr:
        raise NetlinkError("EINVAL", f"nm_frame_nr {req.frame_nr} != frames per block {fpb} x "
                                     f"nm_block_nr {req.block_nr} (u32)")
    return req


def validate_ring_request(optval: bytes, *, page_size: int = DEFAULT_PAGE_SIZE) -> RingRequest:
    """Parse raw setsockopt bytes and apply every rule that depends on the request alone, raising
    :class:`NetlinkError` with the errno the kernel's setsockopt would return.

    >>> validate_ring_request(RingRequest(4096, 4, 2048, 8).pack()).frame_nr
    8
    >>> validate_ring_request(b"\\0" * 15)
    Traceback (most recent call last):
    nlmmap.spec.errors.NetlinkError: EINVAL: optlen 15 < sizeof(struct nl_mmap_req) = 16
    """
    return check_ring_geometry(RingRequest.unpack(optval), page_size=page_size)


def check_ring_change(ring: str, req: RingRequest, *, mapped: int, pending: int, exists: bool,
                      page_size: int = DEFAULT_PAGE_SIZE, memory_limit: int | None = None) -> RingGeometry | None:
    """The rest of ``netlink_set_ring`` once the 16 option bytes were read (3.1 step 6), in the
    kernel's order: EBUSY while mapped, EBUSY with frames in flight, EBUSY on a create over an
    existing ring, then the geometry rules, then ENOMEM if the machine cannot hold the ring.
    Returns the new geometry, or None for a tear-down."""
    name = ring.upper()
    if mapped:
        raise NetlinkError("EBUSY", f"{name} ring change while the socket is mapped ({mapped} VMAs)")
    if pending:
        raise NetlinkError("EBUSY", f"{name} ring has frames in flight")
    if not req.is_teardown and exists:
        raise NetlinkError("EBUSY", f"{name} ring already exists: tear it down first")
    check_ring_geometry(req, page_size=page_size)
    if req.is_teardown:
        return None
    geom = RingGeometry.from_request(req, page_size=page_size)
    if memory_limit is not None and geom.size > memory_limit:
        raise NetlinkError("ENOMEM", f"{name} ring of {geom.size} bytes exceeds the memory available ({memory_limit})")
    return geom


@dataclass(frozen=True)
class RingGeometry:
    """A created ring's geometry with its derived quantities (section 2.1/2.2)."""

    block_size: int
    block_nr: int
    frame_size: int
    frame_nr: int

    @classmethod
    def from_request(cls, req: RingRequest, *, page_size: int = DEFAULT_PAGE_SIZE) -> RingGeometry:
        """Geometry of a valid create request (``EINVAL`` for a tear-down or an invalid one)."""
        check_ring_geometry(req, page_size=page_size)
        if req.is_teardown:
            raise NetlinkError("EINVAL", "a tear-down request describes no ring")
        return cls(req.block_size, req.block_nr, req.frame_size, req.frame_nr)

    @property
    def frames_per_block(self) -> int:
        """``fpb = block_size div frame_size``."""
        return self.block_size // self.frame_size

    @property
    def frame_max(self) -> int:
        """Index of the last frame (``frame_nr - 1``)."""
        return self.frame_nr - 1

    @property
    def size(self) -> int:
        """Bytes this ring contributes to the mapping: ``block_nr * block_size``."""
        return self.block_nr * self.block_size

    @property
    def payload_capacity(self) -> int:
        """Usable message bytes per frame: ``frame_size - 24``."""
        return self.frame_size - NL_MMAP_HDRLEN

    @property
    def stride(self) -> int:
        """``frame_size`` when every frame lies right after the one before it (``frame_offset(i) ==
        i * frame_size`` for every frame: blocks without slack, or all frames in the first block),
        else 0. Readers and writers of whole runs of frames rely on it."""
        fs, fpb = self.frame_size, self.frames_per_block
        return fs if self.block_size == fpb * fs or self.frame_nr <= fpb else 0

    def frame_offset(self, index: int) -> int:
        """Offset of frame ``index`` inside this ring (block/slot formula, never ``i*frame_size``)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.frame_nr:
            raise NetlinkError("EINVAL", f"frame index {index!r} outside 0..{self.frame_max}")
        fpb = self.frames_per_block
        return (index // fpb) * self.block_size + (index % fpb) * self.frame_size

    def next_index(self, index: int) -> int:
        """``netlink_increment_head``: the index after ``index``, wrapping after frame_max."""
        return 0 if index == self.frame_max else index + 1

    def frame_at(self, offset: int) -> int | None:
        """Index of the frame whose bytes contain ``offset`` (ring-relative), or None in a gap."""
        if not 0 <= offset < self.size:
            return None
        blk, rem = divmod(offset, self.block_size)
        slot = rem // self.frame_size
        if slot >= self.frames_per_block:
            return None
        index = blk * self.frames_per_block + slot
        return index if index < self.frame_nr else None

    def request(self) -> RingRequest:
        """The nl_mmap_req that creates this geometry."""
        return RingRequest(self.block_size, self.block_nr, self.frame_size, self.frame_nr)


@dataclass(frozen=True)
class FrameRef:
    """One frame of a mapping: which ring, its index, and its offset in the whole mapping."""

    ring: str  # "rx" or "tx"
    index: int
    offset: int
    frame_size: int


@dataclass(frozen=True)
class MappingLayout:
    """The single mmap() of a socket: RX ring at 0 (if configured), then the TX ring."""

    rx: RingGeometry | None
    tx: RingGeometry | None

    @property
    def rx_base(self) -> int:
        """Offset of the RX ring in the mapping (always 0)."""
        return 0

    @property
    def tx_base(self) -> int:
        """Offset of the TX ring: right after the RX ring, or 0 without one."""
        return self.rx.size if self.rx is not None else 0

    @property
    def size(self) -> int:
        """Total mapping length the kernel expects."""
        return sum(g.size for g in (self.rx, self.tx) if g is not None)

    def ring(self, name: str) -> RingGeometry | None:
        """The geometry of ``"rx"`` or ``"tx"``."""
        if name not in ("rx", "tx"):
            raise NetlinkError("EINVAL", f"ring must be 'rx' or 'tx', got {name!r}")
        return self.rx if name == "rx" else self.tx

    def base(self, name: str) -> int:
        """Offset of ring ``name`` in the mapping."""
        return self.rx_base if name == "rx" else self.tx_base

    def frame_offset(self, name: str, index: int) -> int:
        """Mapping offset of frame ``index`` of ring ``name``."""
        geom = self.ring(name)
        if geom is None:
            raise NetlinkError("EINVAL", f"no {name.upper()} ring is configured")
        return self.base(name) + geom.frame_offset(index)

    def frames(self) -> Iterator[FrameRef]:
        """Every frame of the mapping in address order (RX frames, then TX frames)."""
        for name in ("rx", "tx"):
            geom = self.ring(name)
            if geom is None:
                continue
            for i in range(geom.frame_nr):
                yield FrameRef(name, i, self.base(name) + geom.frame_offset(i), geom.frame_size)

    def locate(self, offset: int) -> FrameRef | None:
        """The frame containing mapping offset ``offset``, or None (gap or outside)."""
        for name in ("rx", "tx"):
            geom = self.ring(name)
            if geom is None:
                continue
            rel = offset - self.base(name)
            if 0 <= rel < geom.size:
                i = geom.frame_at(rel)
                return None if i is None else FrameRef(name, i, self.base(name) + geom.frame_offset(i),
                                                       geom.frame_size)
        return None


def mapping_layout(rx: RingGeometry | None, tx: RingGeometry | None) -> MappingLayout:
    """The layout of one mmap() covering the configured rings (RX first)."""
    return MappingLayout(rx, tx)


def check_mmap_request(layout: MappingLayout, length: int, offset: int = 0, *,
                       page_size: int = DEFAULT_PAGE_SIZE) -> None:
    """``netlink_mmap``'s rules (section 4): offset 0, at least one ring, and a length that the mm
    layer rounds up (to a page multiple) to exactly the rings' total. ``EINVAL`` otherwise."""
    check_page_size(page_size)
    for what, v in (("length", length), ("offset", offset)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise NetlinkError("EINVAL", f"mmap {what} must be an integer, got {v!r}")
    if length <= 0:
        raise NetlinkError("EINVAL", f"mmap length {length} must be positive")
    if offset != 0:
        raise NetlinkError("EINVAL", f"mmap offset {offset} != 0")
    expected = layout.size
    if expected == 0:
        raise NetlinkError("EINVAL", "mmap of a socket without a configured ring")
    rounded = -(-length // page_size) * page_size
    if rounded != expected:
        raise NetlinkError("EINVAL", f"mmap length {length} (rounded to {rounded}) != ring total {expected}")
