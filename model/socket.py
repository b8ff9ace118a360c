"""The executable reference model: netlink sockets with rings, as the kernel (Linux 4.5) has them.

A :class:`Kernel` holds sockets of one test family (each with a user-space *peer* socket) and
plays the kernel side; each :class:`ModelSocket` owns its rings as real bytes laid out per the ABI
(:mod:`nlmmap.spec.abi`), so its memory can be compared byte for byte with any implementation's
shared memory. The frame-level protocol is not written here: every status transition is an
action of the spec (:func:`nlmmap.spec.protocol.socket_system`), executed through a *view* that
binds the spec's variable names to this model's bytes and fields (``rx_status[j]`` is the u32 at
frame ``j``'s offset). Before each kernel action the model checks the spec's step properties
(``KernelWritesOnlyOwnedFrames``...), after each action the invariants. What the model adds is
what the transition system abstracts away: header fields, payload bytes, the receive queue's
contents, errnos and return values, ACKs, dumps.

Pure Python, deterministic, no I/O. Every failure is a :class:`~nlmmap.spec.errors.NetlinkError`
with the errno the kernel returns.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import (
    DEFAULT_PAGE_SIZE,
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_CAP_ACK,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_NO_ENOBUFS,
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    NL_MMAP_HDRLEN,
    SOL_NETLINK,
    FrameHeader,
    MappingLayout,
    RingGeometry,
    RingRequest,
    Status,
    as_bytes,
    check_mmap_request,
    check_page_size,
    check_ring_change,
    nonneg_int,
)
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.expr import evaluate
from nlmmap.spec.protocol import (
    TX_IDLE,
    Variant,
    choose_alloc,
    dump_space,
    expected_violations,
    fits_frame,
    poll_err,
    poll_in,
    socket_system,
)
from nlmmap.spec.system import System, apply_action, violated_invariants, violated_step_properties

__all__ = ["ModelConfig", "Kernel", "ModelSocket", "ModelInvariantError", "Delivery"]

_U32 = struct.Struct("=I")
MSG_OOB = 0x1
UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)


class ModelInvariantError(AssertionError):
    """The model broke a spec invariant or step property: a bug in the model (never the user's)."""


@dataclass(frozen=True)
class ModelConfig:
    """Parameters of the modelled kernel and machine."""

    page_size: int = DEFAULT_PAGE_SIZE
    variant: Variant = field(default_factory=Variant)
    cap_net_admin: bool = True  # CAP_NET_ADMIN in the initial user namespace (else EPERM on rings)
    memory_limit: int = 64 << 20  # bytes per ring the "machine" can allocate (else ENOMEM)
    sender_pid: int = 4242  # credentials pid of the user-space peer (nm_pid of its messages)
    sndbuf: int = nl.DEFAULT_SNDBUF  # SO_SNDBUF: plain sends longer than sndbuf - 32 fail with EMSGSIZE
    dumps: dict[int, tuple[int, int]] = field(default_factory=dict)  # type -> (messages, payload bytes)
    check_invariants: str = "auto"  # "always", "never", or "auto" (rings of at most 64 frames)
    netlink_mmap: bool = True  # False: a kernel without the feature (4.6+, CONFIG off): section 1.7

    def __post_init__(self) -> None:
        check_page_size(self.page_size)
        limit = nl.nlmsg_goodsize(self.page_size) - nl.NLMSG_HDRLEN - 4  # room for NLMSG_DONE too
        for type_, (count, size) in self.dumps.items():
            if not (nl.NLMSG_MIN_TYPE <= type_ <= nl.RTM_MAX and count >= 0 and
                    0 <= nl.nlmsg_align(nl.NLMSG_HDRLEN + size) <= limit):
                raise NetlinkError("EINVAL", f"dump type {type_}: {count} messages of {size} bytes do not fit "
                                             f"NLMSG_GOODSIZE skbs (or the type is not a family type)")
        if self.check_invariants not in ("always", "never", "auto"):
            raise NetlinkError("EINVAL", f"check_invariants must be always/never/auto, got {self.check_invariants!r}")


@dataclass
class _Msg:
    data: bytes
    pid: int = 0
    group: int = 0


@dataclass
class Delivery:
    """How one message to a socket ended: ``frame`` (built in an RX frame), ``copy`` (COPY frame
    or plain receive queue), ``dropped``."""

    outcome: str
    frame: int | None = None


class _Ring:
    """One configured ring: geometry and its bytes."""

    def __init__(self, geom: RingGeometry):
        self.geom = geom
        self.mem = bytearray(geom.size)

    def off(self, i: int) -> int:
        return self.geom.frame_offset(i)

    def status(self, i: int) -> int:
        return _U32.unpack_from(self.mem, self.off(i))[0]

    def header(self, i: int) -> FrameHeader:
        return FrameHeader.unpack(self.mem, self.off(i))


class _StatusArray:
    def __init__(self, ring: _Ring | None):
        self.ring = ring

    def __getitem__(self, i: int) -> int:
        if self.ring is None or not 0 <= i < self.ring.geom.frame_nr:
            return 0
        return self.ring.status(i)


class _FieldArray:
    """u32 field at ``field_off`` of every frame (nm_len: 4)."""

    def __init__(self, ring: _Ring | None, field_off: int):
        self.ring, self.field_off = ring, field_off

    def __getitem__(self, i: int) -> int:
        if self.ring is None or not 0 <= i < self.ring.geom.frame_nr:
            return 0
        return _U32.unpack_from(self.ring.mem, self.ring.off(i) + self.field_off)[0]


class _DataArray:
    """The payload area (frame + 24 .. frame end) of every frame, as bytes."""

    def __init__(self, ring: _Ring | None):
        self.ring = ring

    def __getitem__(self, i: int) -> bytes:
        if self.ring is None or not 0 <= i < self.ring.geom.frame_nr:
            return b""
        o = self.ring.off(i)
        return bytes(self.ring.mem[o + NL_MMAP_HDRLEN:o + self.ring.geom.frame_size])


class _View:
    """Binds the spec's variable names to the socket's bytes and fields (a ConcreteState)."""

    def __init__(self, sock: ModelSocket):
        self.s = sock

    def __getitem__(self, name: str) -> Any:
        s = self.s
        if name == "rx_status":
            return _StatusArray(s.rx)
        if name == "tx_status":
            return _StatusArray(s.tx)
        if name == "tx_len":
            return _FieldArray(s.tx, 4)
        if name == "tx_data":
            return _DataArray(s.tx)
        return s.g[name]

    def assign(self, name: str, value: Any) -> None:
        self.s.g[name] = value

    def store(self, name: str, index: int, value: Any) -> None:
        s = self.s
        if name in ("rx_status", "tx_status", "tx_len"):
            ring = s.rx if name == "rx_status" else s.tx
            if ring is None or not 0 <= index < ring.geom.frame_nr:
                return  # stores past the ring (setup resets) have no bytes behind them
            _U32.pack_into(ring.mem, ring.off(index) + (4 if name == "tx_len" else 0), value & 0xFFFFFFFF)
        elif name == "tx_data":
            ring = s.tx
            if ring is None or not 0 <= index < ring.geom.frame_nr:
                return
            o = ring.off(index) + NL_MMAP_HDRLEN
            cap = ring.geom.payload_capacity
            raw = value if isinstance(value, (bytes, bytearray)) else int(value).to_bytes(8, "little", signed=True)
            ring.mem[o:o + cap] = bytes(raw[:cap]).ljust(cap, b"\0")
        else:
            arr = s.g[name]
            if 0 <= index < len(arr):
                arr[index] = value


def _ghost_arrays(n: int) -> dict[str, list]:
    return {"rx_owned": [0] * n, "rx_held": [False] * n, "rx_seq": [0] * n}


class ModelSocket:
    """One netlink socket of the test family, with its rings, receive queue and peer."""

    def __init__(self, kernel: Kernel, handle: int, portid: int):
        self.kernel = kernel
        self.handle = handle
        self.portid = portid
        self.rx: _Ring | None = None
        self.tx: _Ring | None = None
        self.rq: list[_Msg] = []
        self.peer_inbox: list[bytes] = []  # what the peer received from this socket
        self.cap_ack = False
        self.groups: set[int] = set()
        self.max_recvmsg_len = 0
        self.dump: list[bytes] | None = None  # remaining dump messages (then NLMSG_DONE)
        self.dump_seq = 0
        self.dump_type = 0
        self.adversarial = False  # the user wrote a status a well-behaved user would not
        self.closed = False
        self.trace: list[tuple[str, dict]] = []  # spec actions taken, in order
        self.violations: list[tuple[str, str, int]] = []  # (property, action, step) of known flaws
        # netlink_ring fields sock_diag reports: pg_vec_pages, pg_vec_len, frame_size, frame_max (all 0 at
        # creation: frame_max 0 reads back as frame_nr 1)
        self._diag = {"rx": (0, 0, 0, 0), "tx": (0, 0, 0, 0)}
        self.g: dict[str, Any] = {
            "rx_head": 0, "rx_pending": 0, "claims": 0, "rq_len": 0, "congested": False, "sk_err": False,
            "no_enobufs": False, "drops": 0, "mapped": 0, "sent": 0, "in_ring": 0, "consumed": 0,
            "dropped": 0, "aborted": 0, "purged": 0, "unsignalled_drops": 0, "tx_head": 0, "tx_pending": 0,
            "tx_phase": TX_IDLE, "tx_cur": 0, "tx_private": b"", "tx_plen": 0, "tx_validated": b"", "tx_vlen": 0,
            "rx_frame_nr": 0, "rx_capacity": 0, "tx_frame_nr": 0, "tx_capacity": 0,
        }
        self.g.update(_ghost_arrays(0))
        self.view = _View(self)

    # ---- spec plumbing -------------------------------------------------------------------------
    @property
    def system(self) -> System:
        """The transition system this socket follows (the configured variant)."""
        return self.kernel.system

    def step(self, action: str, **params: Any) -> None:
        """Take one spec action on this socket: check its step properties, apply it, check the
        invariants (a violation is a model bug: :class:`ModelInvariantError`)."""
        a = self.system.action(action)
        user = "well-behaved" if not self.adversarial else "any"
        bad = self._unexpected(violated_step_properties(self.system, a, self.view, params, user=user), action)
        if bad:
            raise ModelInvariantError(f"{a.actor} action {action}({params}) would break {', '.join(bad)}")
        apply_action(a, self.view, params)
        self.trace.append((action, dict(params)))
        if len(self.rq) != self.g["rq_len"]:
            raise ModelInvariantError(f"receive queue holds {len(self.rq)} messages, spec says {self.g['rq_len']}")
        for ring, key in ((self.rx, "rx_frame_nr"), (self.tx, "tx_frame_nr")):
            if (ring.geom.frame_nr if ring else 0) != self.g[key]:
                raise ModelInvariantError(f"spec says {key} = {self.g[key]}, the model's ring disagrees")
        if self._check():
            bad = self._unexpected(violated_invariants(self.system, self.view, user=user), action)
            if bad:
                raise ModelInvariantError(f"after {action}({params}): invariants {', '.join(bad)} broken")

    def _unexpected(self, names: list[str], action: str) -> list[str]:
        """Record violations the configured history switches are known to cause (the historical
        flaws, see ``violations``); return the others (model bugs)."""
        known = expected_violations(self.kernel.config.variant)
        for nm in names:
            if nm in known:
                self.violations.append((nm, action, len(self.trace)))
        return [nm for nm in names if nm not in known]

    def _check(self) -> bool:
        mode = self.kernel.config.check_invariants
        if mode == "auto":
            n = (self.rx.geom.frame_nr if self.rx else 0) + (self.tx.geom.frame_nr if self.tx else 0)
            return n <= 64
        return mode == "always"

    def holds(self, predicate) -> bool:
        """Evaluate a spec predicate (e.g. ``poll_in()``) on this socket."""
        return bool(evaluate(predicate, self.view.__getitem__))

    def _alive(self) -> None:
        if self.closed:
            raise NetlinkError("EBADF", f"socket {self.handle} is closed")

    # ---- setsockopt / mmap (sections 3, 4) ------------------------------------------------------
    def setsockopt(self, option: int, optval: bytes, level: int = SOL_NETLINK) -> None:
        """setsockopt(level, option, optval) with the kernel's checks in the kernel's order."""
        self._alive()
        optval = as_bytes(optval, "optval")
        option = nonneg_int(option, "option")
        if level != SOL_NETLINK:
            raise NetlinkError("ENOPROTOOPT", f"level {level} is not SOL_NETLINK")
        if option in (NETLINK_RX_RING, NETLINK_TX_RING):
            if not self.kernel.config.netlink_mmap:
                raise NetlinkError("ENOPROTOOPT", "this kernel has no memory-mapped netlink (4.6+ or CONFIG off)")
            self._set_ring(option == NETLINK_TX_RING, optval)
            return
        val = _U32.unpack_from(optval, 0)[0] if len(optval) >= 4 else 0
        if option == NETLINK_NO_ENOBUFS:
            self.step("set_no_enobufs", on=bool(val))
        elif option == NETLINK_CAP_ACK:
            self.cap_ack = bool(val)
        elif option in (NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP):
            if not val or val > nl.RTNLGRP_MAX:
                raise NetlinkError("EINVAL", f"multicast group {val} is not 1..{nl.RTNLGRP_MAX}")
            (self.groups.add if option == NETLINK_ADD_MEMBERSHIP else self.groups.discard)(val)
        elif option in (3, 4, 8):
            pass  # PKTINFO, BROADCAST_ERROR, LISTEN_ALL_NSID: flags with no effect on the rings
        else:
            raise NetlinkError("ENOPROTOOPT", f"SOL_NETLINK option {option} is not supported")

    def _set_ring(self, tx: bool, optval: bytes) -> None:
        name = "TX" if tx else "RX"
        if not self.kernel.config.cap_net_admin:
            raise NetlinkError("EPERM", f"NETLINK_{name}_RING needs CAP_NET_ADMIN in the initial user namespace")
        req = RingRequest.unpack(optval)  # optlen < 16: EINVAL
        ring = self.tx if tx else self.rx
        geom = check_ring_change(name, req, mapped=self.g["mapped"],
                                 pending=self.g["tx_pending"] if tx else self.g["rx_pending"],
                                 exists=ring is not None, page_size=self.kernel.config.page_size,
                                 memory_limit=self.kernel.config.memory_limit)
        page = self.kernel.config.page_size
        diag_after = (req.block_size // page, req.block_nr, req.frame_size, (req.frame_nr - 1) & 0xFFFFFFFF)
        if geom is None:
            self._diag["tx" if tx else "rx"] = diag_after
            if tx:
                self.tx = None
                self.step("teardown_tx_ring")
            else:
                self.rx = None
                self.rq.clear()
                self.step("teardown_rx_ring")  # purges the queue even without a ring
            return
        self._diag["tx" if tx else "rx"] = diag_after
        if tx:
            self.tx = _Ring(geom)
            self.step("set_tx_ring", n=geom.frame_nr, cap=geom.payload_capacity)
        else:
            self.rx = _Ring(geom)
            self.g.update(_ghost_arrays(geom.frame_nr))
            self.rq.clear()
            self.step("set_rx_ring", n=geom.frame_nr, cap=geom.payload_capacity)

    @property
    def layout(self) -> MappingLayout:
        """The layout one mmap() of this socket covers (RX ring, then TX ring)."""
        return MappingLayout(self.rx.geom if self.rx else None, self.tx.geom if self.tx else None)

    def mmap(self, length: int, offset: int = 0) -> None:
        """mmap(): offset 0, length the rings' total (rounded to pages); mapped += 1."""
        self._alive()
        if not self.kernel.config.netlink_mmap:
            raise NetlinkError("ENODEV", "sock_no_mmap: this kernel has no memory-mapped netlink")
        check_mmap_request(self.layout, length, offset, page_size=self.kernel.config.page_size)
        self.step("mmap")

    def munmap(self) -> None:
        """munmap() of one mapping: mapped -= 1 (the rings keep their state)."""
        self._alive()
        if self.g["mapped"] == 0:
            raise NetlinkError("EINVAL", "munmap: the socket is not mapped")
        self.step("munmap")

    # ---- the user's view of memory ----------------------------------------------------------------
    def _span(self, offset: int, length: int) -> Iterator[tuple[_Ring, str, int, int]]:
        """Split [offset, offset+length) of the mapping into (ring, name, ring offset, length)."""
        if self.g["mapped"] == 0:
            raise NetlinkError("EFAULT", "the rings are not mapped")
        lay = self.layout
        if offset < 0 or length < 0 or offset + length > lay.size:
            raise NetlinkError("EFAULT", f"[{offset}, {offset + length}) is outside the {lay.size}-byte mapping")
        pos, end = offset, offset + length
        while pos < end:
            for ring, name in ((self.rx, "rx"), (self.tx, "tx")):
                if ring is None:
                    continue
                base = lay.base(name)
                if base <= pos < base + ring.geom.size:
                    n = min(end, base + ring.geom.size) - pos
                    yield ring, name, pos - base, n
                    pos += n
                    break

    def peek(self, offset: int, length: int) -> bytes:
        """Bytes of the mapping, as the user reads them."""
        self._alive()
        offset, length = nonneg_int(offset, "offset"), nonneg_int(length, "length")
        return b"".join(bytes(r.mem[o:o + n]) for r, _, o, n in self._span(offset, length))

    def poke(self, offset: int, data: bytes) -> None:
        """Write bytes into the mapping as the user would, at any time. Writes to status words
        (and TX nm_len/payload) are the spec's user/adversary actions."""
        self._alive()
        offset, data = nonneg_int(offset, "offset"), as_bytes(data, "data")
        pos = 0
        for ring, name, roff, n in list(self._span(offset, len(data))):
            self._poke_ring(ring, name, roff, data[pos:pos + n])
            pos += n

    def _poke_ring(self, ring: _Ring, name: str, roff: int, chunk: bytes) -> None:
        geom = ring.geom
        end = roff + len(chunk)
        fpb = geom.frames_per_block
        lo_i = (roff // geom.block_size) * fpb
        hi_i = min(geom.frame_nr, ((end - 1) // geom.block_size + 1) * fpb) if chunk else lo_i
        touched = [i for i in range(lo_i, hi_i) if ring.off(i) < end and roff < ring.off(i) + geom.frame_size]
        # the post-write image of the touched window; spec-visible fields go through spec actions
        base = min([roff] + [ring.off(i) for i in touched])
        top = max([end] + [ring.off(i) + geom.frame_size for i in touched])
        new = bytearray(ring.mem[base:top])
        new[roff - base:end - base] = chunk
        for i in touched:
            o = ring.off(i)
            w = o - base
            if name == "rx":
                old_status, new_status = ring.status(i), _U32.unpack_from(new, w)[0]
                ring.mem[o + 4:o + geom.frame_size] = new[w + 4:w + geom.frame_size]
                if o < end and roff < o + 4:  # the status word was written
                    self._user_status(i, old_status, new_status)
            else:
                old_status = ring.status(i)
                st, ln = _U32.unpack_from(new, w)[0], _U32.unpack_from(new, w + 4)[0]
                payload = bytes(new[w + NL_MMAP_HDRLEN:w + geom.frame_size])
                ring.mem[o + 8:o + NL_MMAP_HDRLEN] = new[w + 8:w + NL_MMAP_HDRLEN]
                if old_status == UNUSED and st == VALID:
                    self.step("fill_tx_frame", j=i, len=ln, data=payload)
                else:
                    if old_status != UNUSED:
                        self.adversarial = True
                    self.step("write_tx", j=i, v=st, len=ln, data=payload)
        # bytes in block gaps (no frame) are plain memory
        for p in range(roff, end):
            if geom.frame_at(p) is None:
                ring.mem[p] = new[p - base]

    def _user_status(self, i: int, old: int, new: int) -> None:
        if new == UNUSED and old in (VALID, COPY, SKIP):
            self.step("release_frame", j=i)
        elif new == SKIP and old == VALID:
            self.step("skip_frame", j=i)
        else:
            if not (new == old and old in (UNUSED, VALID, COPY, SKIP)):
                self.adversarial = True
            self.step("write_status", j=i, v=new)

    # ---- RX: kernel side (section 6) ----------------------------------------------------------
    def _write_header(self, i: int, length: int, group: int, pid: int) -> None:
        o = self.rx.off(i)  # type: ignore[union-attr]
        struct.pack_into("=5I", self.rx.mem, o + 4, length, group, pid, 0, 0)  # type: ignore[union-attr]

    def ring_alloc(self, size: int) -> int | None:
        """``netlink_alloc_skb`` towards this socket: the claimed frame, or None when the ring
        is full (message lost, overrun). Call only when :meth:`fits` says the ring path applies."""
        if self.kernel.config.variant.skip_broken:
            j = self.g["rx_head"]  # before 4.4 forward_ring was a no-op: SKIP at the head is "full"
        else:
            choice = choose_alloc(self.view)
            if choice is None:
                self.step("alloc_all_skip", size=size)
                return None
            j = choice["j"]
        if self.rx.status(j) == UNUSED:  # type: ignore[union-attr]
            self.step("alloc", j=j, size=size)
            return j
        self.step("alloc_full", j=j, size=size)
        return None

    def fits(self, size: int) -> bool:
        """The ring path applies: an RX ring whose frames hold ``size`` bytes (section 6.1)."""
        return self.holds(fits_frame(size))

    def ring_publish(self, j: int, data: bytes, *, group: int = 0, pid: int = 0, data_offset: int = 0,
                     nm_len: int | None = None) -> None:
        """Fill the claimed frame ``j``: payload at +24 (+ ``data_offset``), header, then VALID."""
        ring = self.rx
        o = ring.off(j)  # type: ignore[union-attr]
        start = o + NL_MMAP_HDRLEN + data_offset
        ring.mem[start:start + len(data)] = data  # type: ignore[union-attr]
        self._write_header(j, len(data) if nm_len is None else nm_len, group, pid)
        self.step("publish", j=j)

    def ring_abort(self, j: int) -> None:
        """Free the claimed frame undelivered: nm_len 0, then VALID (section 6.4)."""
        _U32.pack_into(self.rx.mem, self.rx.off(j) + 4, 0)  # type: ignore[union-attr]
        self.step("abort", j=j)

    def sendskb_plain(self, msg: _Msg) -> Delivery:
        """``__netlink_sendskb`` of a plain skb (after admission): COPY frame + queue, or the
        plain queue without an RX ring; a non-UNUSED cursor frame drops it (section 6.3)."""
        if self.rx is None:
            self.rq.append(msg)
            self.step("queue_plain")
            return Delivery("copy")
        j = self.g["rx_head"]
        if self.rx.status(j) != UNUSED:
            self.step("copy_full")
            return Delivery("dropped")
        self._write_header(j, len(msg.data), msg.group, msg.pid)
        self.rq.append(msg)
        self.step("copy_claim")
        return Delivery("copy", j)

    def unicast_plain(self, msg: _Msg, *, from_kernel: bool) -> Delivery:
        """``netlink_unicast`` of a plain skb: admission (CONGESTED: a kernel sender's message is
        dropped with an overrun, a non-blocking user sender gets EAGAIN), then delivery."""
        if self.g["congested"]:
            if from_kernel:
                self.step("copy_congested_kernel")
                return Delivery("dropped")
            self.step("copy_refused")
            raise NetlinkError("EAGAIN", "receiver is congested after an overrun (non-blocking sender)")
        return self.sendskb_plain(msg)

    def broadcast_deliver(self, msg: _Msg) -> Delivery:
        """``netlink_broadcast_deliver``: a CONGESTED listener drops the message with an overrun."""
        if self.g["congested"]:
            self.step("copy_congested_kernel")
            return Delivery("dropped")
        return self.sendskb_plain(msg)

    def kernel_send(self, data: bytes, *, is_ack: bool = False) -> Delivery:
        """A kernel-built message for this socket (ACKs, dump replies, ``deliver`` ring path):
        ring path when it fits a frame, else a plain skb (section 6.1)."""
        if self.fits(len(data)):
            j = self.ring_alloc(len(data))
            if j is None:
                if is_ack:
                    self.step("ack_alloc_failed")
                return Delivery("dropped")
            self.ring_publish(j, data)
            return Delivery("frame", j)
        return self.unicast_plain(_Msg(data), from_kernel=True)

    # ---- the test family's kernel input (section 20) ---------------------------------------------
    def kernel_input(self, datagram: bytes) -> None:
        """``netlink_rcv_skb`` of a datagram sent to the kernel: every request answered as
        NETLINK_ROUTE answers one it does not implement; dumps for configured types."""
        dump_types = frozenset(self.kernel.config.dumps)
        for hdr, raw in nl.split_messages(datagram):
            reply = nl.route_family_answer(hdr, dump_types=dump_types,
                                           cap_net_admin=self.kernel.config.cap_net_admin)
            if reply.dump:
                err = self.dump_start(hdr)
                if err == 0:
                    continue  # -EINTR: a started dump gets no ACK
                reply = nl.Reply(err, True)
            if reply.ack or reply.error:
                ack = nl.build_ack(raw, self.portid, reply.error, cap_ack=self.cap_ack)
                self.kernel_send(ack, is_ack=True)

    # ---- dumps (section 10) -----------------------------------------------------------------------
    def dump_start(self, hdr: nl.NlMsgHdr) -> int:
        """``__netlink_dump_start``: EBUSY if one runs; else the first batch now. Returns 0 or -errno."""
        if self.dump is not None:
            return -16  # EBUSY
        count, size = self.kernel.config.dumps[hdr.type]
        self.dump = [nl.build_message(hdr.type, nl.NLM_F_MULTI, hdr.seq, self.portid,
                                      bytes((k + b) & 0xFF for b in range(size))) for k in range(count)]
        self.dump_seq, self.dump_type = hdr.seq, hdr.type
        return self.dump_continue()

    def dump_continue(self) -> int:
        """``netlink_dump``: one skb of dump messages (NLMSG_DONE at the end). 0 or -ENOBUFS."""
        if self.dump is None:
            return -22
        goodsize = nl.nlmsg_goodsize(self.kernel.config.page_size)
        j = None
        got = False
        # 4.4: first an attempt of max_recvmsg_len bytes if larger, then NLMSG_GOODSIZE; each
        # attempt uses a ring frame if one can hold it (a full ring fails it), else a plain skb
        for alloc_size in ([self.max_recvmsg_len] if goodsize < self.max_recvmsg_len else []) + [goodsize]:
            if self.fits(alloc_size):
                j = self.ring_alloc(alloc_size)
                if j is not None:
                    got = True
                    break
            else:
                got = True
                break
        if not got:
            return -105  # ENOBUFS: the dump stays registered and continues from poll
        in_ring = j is not None
        room = self.rx.geom.payload_capacity if in_ring else alloc_size  # type: ignore[union-attr]
        reserve = 0
        if in_ring and self.kernel.config.variant.dump_offset_bug:
            reserve = room - alloc_size  # 4.4.34: skb_reserve(tailroom - alloc_size) on ring skbs too
            room = alloc_size
        body = b""
        while self.dump and len(body) + len(self.dump[0]) <= room:
            body += self.dump.pop(0)
        done = False
        if not self.dump:
            fin = nl.build_message(nl.NLMSG_DONE, nl.NLM_F_MULTI, self.dump_seq, self.portid, b"\0\0\0\0")
            if len(body) + len(fin) <= room:
                body += fin
                done = True
        if j is not None:
            self.ring_publish(j, body, data_offset=reserve)
        else:
            self.sendskb_plain(_Msg(body))  # dumps bypass the receive-buffer admission
        if done:
            self.dump = None
        return 0

    # ---- user-visible calls -----------------------------------------------------------------------
    def poll(self) -> set[str]:
        """poll() mask (section 7): continue a dump while there is space, rcv_wake, then POLLIN /
        POLLOUT / POLLERR."""
        self._alive()
        if self.rx is not None:
            while self.dump is not None and self.holds(dump_space()):
                err = self.dump_continue()
                if err:
                    break
        self.step("poll")
        mask = {"POLLOUT"}
        if self.holds(poll_in(self.kernel.config.variant)):
            mask.add("POLLIN")
        if self.holds(poll_err()):
            mask.add("POLLERR")
        return mask

    def recvmsg(self, bufsize: int, dontwait: bool = True) -> tuple[bytes, bool]:
        """recvmsg (section 8): ENOBUFS once after an overrun, the next queued message
        (truncated to ``bufsize``), or EAGAIN. Never touches a frame."""
        self._alive()
        if isinstance(bufsize, bool) or not isinstance(bufsize, int) or bufsize < 0:
            raise NetlinkError("EINVAL", f"bufsize must be a non-negative integer, got {bufsize!r}")
        if self.g["sk_err"]:
            self.step("recvmsg_error")
            raise NetlinkError("ENOBUFS", "messages were lost (receive ring or queue overrun)")
        if not self.rq:
            self.step("recvmsg_empty")
            if dontwait:
                raise NetlinkError("EAGAIN", "no message queued")
            raise NetlinkError("EAGAIN", "no message queued (the model cannot block: nothing else would run)")
        msg = self.rq.pop(0)
        self.step("recvmsg")
        self.max_recvmsg_len = min(max(self.max_recvmsg_len, bufsize), nl.MAX_RECVMSG_LEN)
        if self.dump is not None:
            self.dump_continue()
        return msg.data[:bufsize], len(msg.data) > bufsize

    def sendmsg(self, payload: bytes | None, to: str = "kernel", *, pause_after_validate: bool = False,
                flags: int = 0) -> int:
        """sendmsg: a plain send of ``payload`` (to the kernel or the peer), or with ``None`` a
        TX ring kick (section 11). Returns the call's value; errors raise."""
        gen = self.sendmsg_steps(payload, to, pause_after_validate=pause_after_validate, flags=flags)
        for _ in gen:
            pass
        return self.last_send

    def sendmsg_steps(self, payload: bytes | None, to: str = "kernel", *,
                      pause_after_validate: bool = False, flags: int = 0) -> Iterator[str]:
        """Like :meth:`sendmsg`, as a generator that yields ``"validated"`` after the first frame
        is validated when ``pause_after_validate`` is set (so a caller can write meanwhile);
        the return value is left in ``last_send`` (the value of the last finished sendmsg)."""
        self._alive()
        if to not in ("kernel", "peer"):
            raise NetlinkError("EINVAL", f"destination must be 'kernel' or 'peer', got {to!r}")
        flags = nonneg_int(flags, "flags")
        if flags & MSG_OOB:
            raise NetlinkError("EOPNOTSUPP", "MSG_OOB is not supported by netlink")
        self.last_send = 0
        if payload is None and self.tx is not None:
            total = 0
            paused = False
            while True:
                if self.holds(self.system.action("tx_reject").guard):
                    self.step("tx_reject")
                    raise NetlinkError("EINVAL", f"TX frame {self.g['tx_head']} has nm_len > frame_size - 24")
                zc = self.kernel.config.variant.tx_zero_copy
                first = self.system.action("tx_claim" if zc else "tx_copy")
                if not self.holds(first.guard):
                    break
                self.step(first.name)
                self.step("tx_validate")
                if pause_after_validate and not paused:
                    paused = True
                    yield "validated"
                if zc:
                    msg, mlen = self.view["tx_data"][self.g["tx_cur"]], self.view["tx_len"][self.g["tx_cur"]]
                else:
                    msg, mlen = self.g["tx_private"], self.g["tx_plen"]
                self.step("tx_act")
                if zc:
                    self.step("tx_release")
                total += self._deliver_from_user(bytes(msg[:mlen]), to)
            self.last_send = total
            return
        data = b"" if payload is None else as_bytes(payload, "payload")
        if len(data) > self.kernel.config.sndbuf - 32:
            raise NetlinkError("EMSGSIZE", f"message of {len(data)} bytes > sndbuf - 32")
        self.last_send = self._deliver_from_user(data, to)

    def _deliver_from_user(self, data: bytes, to: str) -> int:
        if to == "peer":
            self.peer_inbox.append(data)
        else:
            self.kernel_input(data)
        return len(data)

    def deliver(self, payload: bytes, path: str = "copy", group: int = 0) -> Delivery:
        """A message arrives for this socket: ``ring`` (built by a kernel subsystem in a frame if
        it fits) or ``copy`` (a plain message from the user-space peer; a multicast one with
        ``group``)."""
        self._alive()
        data = as_bytes(payload, "payload")
        group = nonneg_int(group, "group")
        if path == "ring":
            if group:
                raise NetlinkError("EINVAL", "ring-path deliveries are unicast (group must be 0)")
            return self.kernel_send(data)
        if path != "copy":
            raise NetlinkError("EINVAL", f"path must be 'ring' or 'copy', got {path!r}")
        msg = _Msg(data, self.kernel.config.sender_pid, group)
        if group:
            return self.broadcast_deliver(msg)
        return self.unicast_plain(msg, from_kernel=False)

    def received(self) -> list[bytes]:
        """Drain what the peer got from this socket."""
        self._alive()
        out, self.peer_inbox = self.peer_inbox, []
        return out

    def close(self) -> None:
        """close(): the socket, its rings and its queue go away."""
        self._alive()
        self.closed = True
        self.rq.clear()
        self.rx = self.tx = None

    # ---- inspection -------------------------------------------------------------------------------
    def diag_rings(self) -> dict[str, tuple[int, int, int, int]]:
        """What sock_diag reports with NDIAG_SHOW_RING_CFG (section 13.1), per ring:
        (block_size, block_nr, frame_size, frame_nr) = (pg_vec_pages * PAGE_SIZE, pg_vec_len,
        frame_size, frame_max + 1 as u32). Never configured: (0, 0, 0, 1)."""
        page = self.kernel.config.page_size
        return {r: (pages * page, nr, fs, (fmax + 1) & 0xFFFFFFFF) for r, (pages, nr, fs, fmax) in self._diag.items()}

    def statuses(self, ring: str = "rx") -> list[int]:
        """Status word of every frame of ``ring``."""
        r = self.rx if ring == "rx" else self.tx
        return [] if r is None else [r.status(i) for i in range(r.geom.frame_nr)]

    def header(self, ring: str, index: int) -> FrameHeader:
        """Header of one frame."""
        r = self.rx if ring == "rx" else self.tx
        if r is None:
            raise NetlinkError("EINVAL", f"no {ring.upper()} ring")
        return r.header(index)


class Kernel:
    """The kernel side of the test family: sockets (each with a peer) and their portids."""

    def __init__(self, config: ModelConfig | None = None):
        self.config = config or ModelConfig()
        self.system: System = socket_system(self.config.variant)
        self.sockets: dict[int, ModelSocket] = {}
        self._next_handle = 1
        self._next_portid = 1

    def socket(self) -> ModelSocket:
        """A new socket of the test family (its portid is bound at once)."""
        s = ModelSocket(self, self._next_handle, self._next_portid)
        self.sockets[s.handle] = s
        self._next_handle += 1
        self._next_portid += 1
        return s

    def get(self, handle: int) -> ModelSocket:
        """The open socket with this handle (EBADF otherwise)."""
        s = self.sockets.get(handle)
        if s is None or s.closed:
            raise NetlinkError("EBADF", f"no open socket {handle}")
        return s

    def close(self, handle: int) -> None:
        """Close a socket."""
        self.get(handle).close()
        del self.sockets[handle]


