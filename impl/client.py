"""The user side: :class:`RingSocket`, a netlink socket with memory-mapped rings.

Two layers. The **system-call layer** has the real API's shape: :meth:`RingSocket.setsockopt`
with the raw ``struct nl_mmap_req`` bytes, :meth:`~RingSocket.mmap`, frame access by index
(:meth:`~RingSocket.status`, :meth:`~RingSocket.header`, :meth:`~RingSocket.payload`, ...),
:meth:`~RingSocket.poll`, :meth:`~RingSocket.sendmsg` (``None`` = the TX ring kick) and
:meth:`~RingSocket.recvmsg` (the messages behind COPY frames). The **pythonic layer**
(:meth:`~RingSocket.messages`, :meth:`~RingSocket.send`, :meth:`~RingSocket.flush`, the context
manager) follows the documented read and write loops (kernel-protocol.md 15): VALID frames are
read in place, VALID frames of length 0 are released, COPY frames are paired with recvmsg, a
pending ENOBUFS is counted; TX frames are filled in ring order and kicked in batches.

Ordering: the status word is loaded with acquire semantics before the header and payload are
read, and stored with release semantics after they are written (:mod:`nlmmap.impl.atomics`).
Wake-ups: the reader spins briefly, then sets its wait flag (seq_cst) in the control page,
re-checks the frame and only then sleeps in ``poll()`` on the socket; the kernel side kicks only
when it sees the flag. A poll timeout is a defence, and it is counted (``poll_timeouts``): in a
healthy run it stays 0.
"""

from __future__ import annotations

import collections
import contextlib
import mmap
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from itertools import repeat, takewhile
from typing import Any

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import (
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    NL_MMAP_HDRLEN,
    SOL_NETLINK,
    FrameHeader,
    MappingLayout,
    RingGeometry,
    RingRequest,
    Status,
)
from nlmmap.spec.errors import NetlinkError

from . import wire
from .atomics import Atomics, open_atomics

__all__ = ["RingSocket", "Paused"]

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
_RETRY = object()  # see RingSocket._fetch_copy
_U32 = struct.Struct("=I")
_LEN = struct.Struct("=I")
_HEAD = struct.Struct("=I16xI")  # nm_len (frame offset 4) and the first nlmsg_len (offset 24)
_NLMSG_HDRLEN = nl.NLMSG_HDRLEN
#: Most frames the reader holds before handing them back (fewer on small rings: n // 4).
_RELEASE_BATCH = 16
#: Most frames in one run of :meth:`RingSocket.message_runs`.
_RUN_MAX = 64
#: Runs a ``map()`` to its end at C speed (the stores of a hand-back).
_drain = collections.deque(maxlen=0).extend
_IS_VALID = VALID.__eq__


class Paused(int):
    """The token of a sendmsg paused after validation (``pause_after_validate``)."""


class RingSocket:
    """One netlink socket of the kernel side listening at ``path``.

    Parameters
    ----------
    path : str
        The kernel side's Unix socket (``python -m nlmmap.impl.kernel --socket PATH``).
    atomics : str
        Atomics backend (``auto``, ``atomicshm``, ``tso``).
    poll_timeout : float
        Bounded sleep of a waiting reader (a defence; each expiry is counted).
    spin : int
        Status checks before a reader goes to sleep (~0.1 us each: a sleep costs a wake-up
        round trip far longer than the kernel side needs to publish the next run).
    """

    def __init__(self, path: str, *, atomics: str = "auto", poll_timeout: float = 1.0, spin: int = 1000):
        self.path = path
        self.atomics_backend = atomics
        self.poll_timeout = poll_timeout
        self.spin = spin
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        self._stash: collections.deque[tuple[int, bytes]] = collections.deque()
        self._lock = threading.RLock()
        data, fds, _, _ = socket.recv_fds(self.sock, wire.MAX_DATAGRAM, 4)
        kind, _, hello, _ = wire.decode(data)
        if kind != wire.HELLO or len(fds) != 1:
            raise NetlinkError("EPROTO", "the kernel side did not greet with its control page")
        self.portid: int = hello["portid"]
        self.kernel_pid: int = hello["pid"]
        self.page_size: int = hello["page_size"]
        self._ctl_mm = mmap.mmap(fds[0], wire.CTL_SIZE)
        os.close(fds[0])
        self.ctl: Atomics = open_atomics(self._ctl_mm, atomics)
        self._consumed = 0
        self._epoch = 0
        self._req: dict[str, RingRequest | None] = {"rx": None, "tx": None}
        self.layout: MappingLayout | None = None
        self.mm: mmap.mmap | None = None
        self.map_fd: int | None = None
        self.at: Atomics | None = None
        self._mv: memoryview | None = None
        self._u32: memoryview | None = None  # the mapping as u32 words (strided header reads)
        self._rx_uniform = False
        self._rx_full = True  # the last RX run took every frame it looked at
        self.rx_cursor = 0
        self.tx_cursor = 0
        self._tx_filled = 0
        self.poll_timeouts = 0  # bounded sleeps that expired (lost wake-ups if the data was there)
        self.lost_wakeups = 0  # expiries after which the awaited frame was ready
        self.sleeps = 0  # times the reader went to sleep
        self.enobufs = 0  # ENOBUFS reported to the iterator (messages the kernel dropped)
        self.closed = False

    # ---- wire -----------------------------------------------------------------------------------
    def _call(self, op: str, args: dict | None = None, blob: bytes = b"") -> tuple[dict, list[int]]:
        """One system call on the kernel side; DATA arriving meanwhile joins the receive queue."""
        if self.closed:
            raise NetlinkError("EBADF", "the socket is closed")
        with self._lock:
            self.sock.send(wire.encode(wire.REQ, op, args, blob))
            while True:
                data, fds, _, _ = socket.recv_fds(self.sock, wire.MAX_DATAGRAM, 4)
                if not data:
                    raise NetlinkError("ECONNRESET", "the kernel side went away")
                kind = data[0]
                if kind == wire.REPLY:
                    _, _, res, _ = wire.decode(data)
                    if not res.get("ok"):
                        for fd in fds:
                            os.close(fd)
                        raise NetlinkError(res.get("errno", "EIO"), res.get("message", ""))
                    return res, fds
                for fd in fds:
                    os.close(fd)
                self._take(data)

    def _take(self, data: bytes) -> None:
        """A datagram that is not a reply: DATA joins the receive queue; WAKE only woke us."""
        if data[0] == wire.DATA:  # header (4 bytes, no JSON), generation (u32), the message
            self._stash.append((_U32.unpack_from(data, 4)[0], data[8:]))

    def _drain(self) -> None:
        """Read every datagram waiting on the socket without blocking."""
        with self._lock:
            while True:
                try:
                    data = self.sock.recv(wire.MAX_DATAGRAM, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    return
                if not data:
                    return
                self._take(data)

    def _note(self, op: str) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(wire.encode(wire.NOTE, op))

    # ---- setsockopt / mmap ----------------------------------------------------------------------
    def setsockopt(self, option: int, optval: bytes, level: int = SOL_NETLINK) -> None:
        """setsockopt(level, option, optval) with raw option bytes; errors as the kernel's."""
        self._call("setsockopt", {"level": level, "option": option}, bytes(optval))
        if option in (NETLINK_RX_RING, NETLINK_TX_RING):
            req = RingRequest.unpack(optval)
            name = "tx" if option == NETLINK_TX_RING else "rx"
            self._req[name] = None if req.is_teardown else req
            if name == "rx":
                self.rx_cursor = 0
            else:
                self.tx_cursor = 0
                self._tx_filled = 0

    def set_rings(self, rx: RingRequest | None = None, tx: RingRequest | None = None) -> None:
        """Configure the RX and/or TX ring from geometries (before :meth:`mmap`)."""
        if rx is not None:
            self.setsockopt(NETLINK_RX_RING, rx.pack())
        if tx is not None:
            self.setsockopt(NETLINK_TX_RING, tx.pack())

    def _layout(self) -> MappingLayout:
        ps = self.page_size
        rx, tx = self._req["rx"], self._req["tx"]
        return MappingLayout(RingGeometry.from_request(rx, page_size=ps) if rx else None,
                             RingGeometry.from_request(tx, page_size=ps) if tx else None)

    def mmap(self, length: int | None = None, offset: int = 0) -> mmap.mmap:
        """Map both rings (RX first, then TX) with one mapping; ``length`` defaults to the total."""
        layout = self._layout()
        if length is None:
            length = layout.size
        if self.mm is not None:
            raise NetlinkError("EBUSY", "this RingSocket already holds a mapping (munmap first)")
        res, fds = self._call("mmap", {"length": length, "offset": offset})
        if len(fds) != 1:
            raise NetlinkError("EPROTO", "the kernel side sent no memfd")
        self.map_fd = fds[0]
        self.layout = layout
        self.mm = mmap.mmap(self.map_fd, res["size"])
        self._mv = memoryview(self.mm)
        self._u32 = self._mv.cast("I") if len(self._mv) % 4 == 0 else None
        self.at = open_atomics(self.mm, self.atomics_backend)
        self._rx_offs = [layout.frame_offset("rx", i) for i in range(layout.rx.frame_nr)] if layout.rx else []
        self._tx_offs = [layout.frame_offset("tx", i) for i in range(layout.tx.frame_nr)] if layout.tx else []
        offs, fs = self._rx_offs, layout.rx.frame_size if layout.rx else 0
        # RX frames at one stride (each block a whole number of frames), u32-aligned
        self._rx_uniform = (self._u32 is not None and bool(offs) and fs % 4 == 0 and offs[0] % 4 == 0
                            and all(o == offs[0] + j * fs for j, o in enumerate(offs)))
        return self.mm

    @property
    def map_path(self) -> str | None:
        """``/proc/<pid>/fd/<n>``: a path another process may map (shared memory mode)."""
        return None if self.map_fd is None else f"/proc/{os.getpid()}/fd/{self.map_fd}"

    def munmap(self) -> None:
        """Unmap (memoryviews handed out must have been released)."""
        if self.mm is None:
            raise NetlinkError("EINVAL", "munmap: not mapped")
        if self.at is not None:
            self.at.close()
        if self._u32 is not None:
            self._u32.release()
        if self._mv is not None:
            self._mv.release()
        self.mm.close()
        if self.map_fd is not None:
            os.close(self.map_fd)
        self.mm = self.at = self._mv = self._u32 = self.map_fd = None
        self._call("munmap")

    # ---- frames ---------------------------------------------------------------------------------
    def frame_offset(self, ring: str, index: int) -> int:
        """Offset of frame ``index`` of ``ring`` ("rx"/"tx") in the mapping."""
        if self.layout is None:
            raise NetlinkError("EINVAL", "not mapped")
        return self.layout.frame_offset(ring, index)

    def status(self, ring: str, index: int) -> int:
        """The frame's status word (acquire load)."""
        return self.at.load_acquire(self.frame_offset(ring, index))  # type: ignore[union-attr]

    def set_status(self, ring: str, index: int, value: int) -> None:
        """Store a status word (release: earlier writes of the frame are visible first)."""
        off = self.frame_offset(ring, index)
        self.at.store_sc(off, value)  # type: ignore[union-attr]
        if ring == "rx" and value in (UNUSED,):
            self._released()

    def header(self, ring: str, index: int) -> FrameHeader:
        """The frame header (read after an acquire load of the status)."""
        off = self.frame_offset(ring, index)
        self.at.load_acquire(off)  # type: ignore[union-attr]
        return FrameHeader.unpack(self._mv[off:off + NL_MMAP_HDRLEN])  # type: ignore[index]

    def payload(self, ring: str, index: int, length: int | None = None) -> memoryview:
        """Zero-copy view of the frame's data (``nm_len`` bytes by default). Release it before
        the frame is released."""
        h = self.header(ring, index)
        off = self.frame_offset(ring, index)
        geom = self.layout.ring(ring)  # type: ignore[union-attr]
        n = min(h.len if length is None else length, geom.payload_capacity)  # type: ignore[union-attr]
        return self._mv[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + n]  # type: ignore[index]

    def write_frame(self, index: int, data: bytes, *, status: int = VALID) -> None:
        """Fill TX frame ``index``: data at +24, nm_len, then the status (release store)."""
        off = self.frame_offset("tx", index)
        cap = self.layout.tx.payload_capacity  # type: ignore[union-attr]
        if len(data) > cap:
            raise NetlinkError("EMSGSIZE", f"{len(data)} bytes do not fit a TX frame ({cap})")
        self.mm[off + NL_MMAP_HDRLEN:off + NL_MMAP_HDRLEN + len(data)] = data  # type: ignore[index]
        _LEN.pack_into(self.mm, off + 4, len(data))  # type: ignore[arg-type]
        self.at.store_sc(off, status)  # type: ignore[union-attr]

    def release(self, index: int) -> None:
        """Hand RX frame ``index`` back to the kernel (UNUSED) and tell it if it waits."""
        self.at.store_sc(self._rx_offs[index], UNUSED)  # type: ignore[union-attr]
        self._released()

    def _released(self) -> None:
        ctl = self.ctl
        if ctl.load_sc(wire.CTL_K_WAIT) and ctl.exchange(wire.CTL_K_WAIT, 0):
            self._note("released")

    # ---- system calls ---------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> set[str]:
        """poll(): a subset of POLLIN, POLLOUT, POLLERR (continues dumps, as the kernel's does);
        with ``timeout`` > 0 waits for an RX frame or queued message first."""
        res, _ = self._call("poll")
        mask = set(res["revents"])
        if "POLLIN" not in mask and timeout > 0:
            self._sleep_until(lambda: self._rx_ready_any(), time.monotonic() + timeout)
            res, _ = self._call("poll")
            mask = set(res["revents"])
        return mask

    def _rx_ready_any(self) -> bool:
        if self._rq_len() > 0:
            return True
        if self.at is None or self.layout is None or self.layout.rx is None:
            return False
        return any(self.at.load_acquire(o) == VALID for o in self._rx_offs)

    def sendmsg(self, payload: bytes | None = None, to: str = "kernel", *,
                pause_after_validate: bool = False) -> int:
        """A plain send of ``payload`` or, with ``None``, the TX ring kick. Returns the bytes
        sent (sum of frame lengths for a kick), or a :class:`Paused` token."""
        args: dict[str, Any] = {"to": to}
        if payload is None:
            args["kick"] = True
            if pause_after_validate:
                args["pause"] = True
        res, _ = self._call("sendmsg", args, b"" if payload is None else bytes(payload))
        if "paused" in res:
            return Paused(res["paused"])
        return res["bytes"]

    def resume(self, token: int) -> int:
        """Finish a paused sendmsg."""
        return self._call("resume", {"token": int(token)})[0]["bytes"]

    def _rq_len(self) -> int:
        ctl = self.ctl
        return ctl.load64(wire.CTL_PUSHED) - ctl.load64(wire.CTL_PURGED) - self._consumed

    def _rcv_wake(self) -> None:
        if self._rq_len() <= 0:
            self._epoch = (self._epoch + 1) & 0xFFFFFFFF
            self.ctl.store_sc(wire.CTL_WAKE_EPOCH, self._epoch)

    def _pop_data(self) -> bytes | None:
        gen = self.ctl.load_acquire(wire.CTL_GEN)
        while self._stash:
            g, data = self._stash.popleft()
            if g == gen:
                return data
        return None

    def recvmsg(self, bufsize: int = 65536, dontwait: bool = True, timeout: float | None = None) -> tuple[bytes, bool]:
        """recvmsg: ENOBUFS once after an overrun, else the next queued message (truncated to
        ``bufsize``), else EAGAIN (or wait, unless ``dontwait``). Never touches a frame."""
        ctl = self.ctl
        raised = ctl.load_acquire(wire.CTL_ERR_RAISED)
        if raised != ctl.load_acquire(wire.CTL_ERR_TAKEN):
            ctl.store_sc(wire.CTL_ERR_TAKEN, raised)
            self._rcv_wake()
            raise NetlinkError("ENOBUFS", "messages were lost (receive ring or queue overrun)")
        data = self._pop_data()
        if data is None:
            self._drain()
            data = self._pop_data()
        if data is None and not dontwait:
            deadline = None if timeout is None else time.monotonic() + timeout
            while data is None:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._wait_socket(self.poll_timeout if deadline is None else
                                  min(self.poll_timeout, max(0.0, deadline - time.monotonic())), counted=False)
                self._drain()
                data = self._pop_data()
        if data is None:
            self._rcv_wake()
            raise NetlinkError("EAGAIN", "no message queued")
        self._consumed += 1
        ctl.store64(wire.CTL_CONSUMED, self._consumed)
        self._rcv_wake()
        return data[:bufsize], len(data) > bufsize

    def deliver(self, payload: bytes, path: str = "copy", group: int = 0) -> str:
        """Test hook: have the kernel side send ``payload`` to this socket (``ring``: as a kernel
        subsystem building it in a frame; ``copy``: from the user-space peer)."""
        return self._call("deliver", {"path": path, "group": group}, bytes(payload))[0]["outcome"]

    def received(self) -> list[bytes]:
        """Drain what the peer got from this socket."""
        return [bytes.fromhex(m) for m in self._call("received")[0]["messages"]]

    def service(self, name: str, **args: Any) -> None:
        """Start or configure a kernel-side service (stream, echo, sink, dump, queue)."""
        a = dict(args)
        a["name"] = name
        self._call("service", a)

    def stats(self, *, global_: bool = False) -> dict[str, Any]:
        """The kernel side's counters for this socket (and the whole server with ``global_``)."""
        res, _ = self._call("stats", {"global": global_})
        res.pop("ok", None)
        return res

    # ---- sleeping ---------------------------------------------------------------------------------
    def _wait_socket(self, timeout: float, *, counted: bool = True) -> bool:
        p = select.poll()
        p.register(self.sock, select.POLLIN)
        ev = p.poll(max(0, int(timeout * 1000)))
        if not ev and counted:
            self.poll_timeouts += 1
        return bool(ev)

    def _sleep_until(self, ready: Any, deadline: float | None) -> bool:
        """The reader's half of the wake-up handshake: spin, flag, re-check, sleep."""
        for _ in range(self.spin):
            if ready():
                return True
        ctl = self.ctl
        while True:
            ctl.store_sc(wire.CTL_RX_WAIT, 1)
            if ready():
                ctl.store_sc(wire.CTL_RX_WAIT, 0)
                return True
            left = self.poll_timeout if deadline is None else min(self.poll_timeout, deadline - time.monotonic())
            if left <= 0:
                ctl.store_sc(wire.CTL_RX_WAIT, 0)
                return ready()
            self.sleeps += 1
            # only the defence timeout counts; the caller's own deadline is not a lost wake-up
            woke = self._wait_socket(left, counted=left >= self.poll_timeout)
            self._drain()
            if ready():
                if not woke:
                    self.lost_wakeups += 1
                return True

    # ---- pythonic layer ---------------------------------------------------------------------------
    def _fetch_copy(self, timeout: float | None, raise_enobufs: bool) -> Any:
        """The queued message a COPY frame announces: its bytes; None if nothing arrived within
        ``timeout``; ``_RETRY`` after a pending ENOBUFS was reported (and counted)."""
        try:
            data, _ = self.recvmsg(1 << 20, dontwait=False, timeout=timeout)
        except NetlinkError as e:
            if e.errno == "ENOBUFS":
                self.enobufs += 1
                if raise_enobufs:
                    raise
                return _RETRY
            if e.errno == "EAGAIN":
                return None
            raise
        return data

    def messages(self, *, timeout: float | None = None, limit: int | None = None,
                 raise_enobufs: bool = False) -> Iterator[memoryview]:
        """Every received netlink message, in ring order, as a zero-copy memoryview valid until
        the next step (the frame is released after the view). COPY frames are paired with
        recvmsg, empty VALID frames released, ENOBUFS counted in ``enobufs`` (or raised). Stops
        after ``limit`` messages or when nothing arrives for ``timeout`` seconds.

        Frames are taken a run at a time (:meth:`_rx_run`: one acquire load per frame, all
        before the run's headers are read) and handed back once every message of the run was
        handed out and its view released; stopping early hands back only the frames finished
        (the frame whose message was given last stays VALID: it is delivered again)."""
        if self.mm is None or self.layout is None or self.layout.rx is None:
            yield from self._messages_plain(timeout, limit, raise_enobufs)
            return
        mv, mm = self._mv, self.mm
        assert mv is not None
        n = len(self._rx_offs)
        cap = self.layout.rx.payload_capacity
        fs = self.layout.rx.frame_size
        hlen = NL_MMAP_HDRLEN
        head = _HEAD.unpack_from
        run_max = max(1, min(_RELEASE_BATCH, n // 4))
        left = -1 if limit is None else limit  # messages still wanted (-1: no limit)
        i = self.rx_cursor
        while left:
            m = min(n - i, run_max)
            if 0 < left < m:
                m = left
            cand, k, state = self._rx_run(i, m)
            if k:
                j = 0  # frames of the run finished (all their views released)
                try:
                    ln = self._run_len(cand[0], k)
                    if ln:  # one message of ``ln`` bytes per frame
                        if left > 0:
                            left = max(0, left - k)
                        base = cand[0] + hlen
                        for o in range(base, base + k * fs, fs):
                            view = mv[o:o + ln]
                            try:
                                yield view
                            finally:
                                view.release()
                            j += 1
                    else:
                        for o in cand[:k]:
                            if not left:  # the limit was reached at the end of a frame
                                break
                            ln, first = head(mm, o + 4)
                            if 0 < ln <= cap:
                                view = mv[o + hlen:o + hlen + ln]
                                try:
                                    if first == ln >= _NLMSG_HDRLEN:  # one message: the frame's data
                                        left -= left > 0
                                        yield view
                                    else:
                                        for msg in _split(view):
                                            left -= left > 0
                                            try:
                                                yield msg
                                            finally:
                                                msg.release()
                                finally:
                                    view.release()
                            j += 1
                finally:
                    # also when the caller stops early: the frames it finished go back
                    if j:
                        self._give_back(cand[:j] if j < len(cand) else cand)
                        i = i + j
                        if i == n:
                            i = 0
                    self.rx_cursor = i
                continue
            off = cand[0]
            if state == VALID:  # published since the run's loads: take it with the next run
                continue
            if state == COPY:
                data = self._fetch_copy(timeout, raise_enobufs)
                if data is None:  # nothing queued within the timeout
                    return
                if data is _RETRY:  # an ENOBUFS was reported (counted): look at the frame again
                    continue
                for msg in _split(memoryview(data)):
                    left -= left > 0
                    yield msg
                self._give_back([off])
                i = 0 if i == n - 1 else i + 1
                self.rx_cursor = i
                continue
            if not self._rx_wait(off, timeout, raise_enobufs):
                return

    def message_runs(self, *, timeout: float | None = None, limit: int | None = None,
                     raise_enobufs: bool = False, max_run: int = _RUN_MAX) -> Iterator[tuple[Any, Sequence[int]]]:
        """The frame-level fast path: ``(buf, offsets)`` per run of frames, in ring order.

        ``offsets`` are the starts of the run's netlink messages in ``buf`` (for a run of VALID
        frames, ``buf`` is a memoryview of the whole mapping; for a COPY frame, of the message
        recvmsg returned). Every offset was checked like :meth:`messages` checks it: the
        frame's ``nm_len`` within the frame, each ``nlmsg_len`` >= 16 and within ``nm_len``;
        VALID frames of length 0 (or a bad ``nm_len``) give no message and are released.

        Protocol: each frame's status word is loaded with ``acquire`` semantics (one load per
        frame, all of a run's loads before any of its headers are read); a run is handed back
        (release stores, the last seq_cst, then ONE load of the kernel's wait flag) only when
        the caller asks for the next run, i.e. after it finished reading it. Stopping early
        leaves the current run VALID: it is delivered again by the next read. A run is at most
        ``max_run`` frames (and never wraps around the ring end). ``limit``/``timeout`` as in
        :meth:`messages` (a run may end past ``limit`` only with multi-message frames).
        """
        if self.mm is None or self.layout is None or self.layout.rx is None:
            for m in self._messages_plain(timeout, limit, raise_enobufs):
                yield m, (0,)
            return
        mm, mv = self.mm, self._mv
        n = len(self._rx_offs)
        cap = self.layout.rx.payload_capacity
        fs = self.layout.rx.frame_size
        head = _HEAD.unpack_from
        hlen = NL_MMAP_HDRLEN
        max_run = max(1, min(max_run, n))
        left = -1 if limit is None else limit  # messages still wanted (-1: no limit)
        i = self.rx_cursor
        while left:
            m = min(n - i, max_run)
            if 0 < left < m:
                m = left
            cand, k, state = self._rx_run(i, m)
            if k:
                run = cand[:k] if k < m else cand
                base = run[0]
                ln = self._run_len(base, k)
                out: Sequence[int]
                if ln:  # one message per frame
                    out = range(base + hlen, base + hlen + k * fs, fs)
                else:
                    out = []
                    for o in run:
                        ln, first = head(mm, o + 4)
                        if 0 < ln <= cap:
                            if first == ln >= _NLMSG_HDRLEN:
                                out.append(o + hlen)
                            else:
                                out.extend(_split_offsets(mm, o + hlen, ln))
                if out:
                    if left > 0:
                        left = max(0, left - len(out))
                    yield mv, out
                # the caller asked for more: its reads of the run are finished
                self._give_back(run)
                i = i + k
                if i == n:
                    i = 0
                self.rx_cursor = i
                continue
            off = cand[0]
            if state == VALID:  # published since the run's loads: take it with the next run
                continue
            if state == COPY:
                data = self._fetch_copy(timeout, raise_enobufs)
                if data is None:  # nothing queued within the timeout
                    return
                if data is _RETRY:  # an ENOBUFS was reported (counted): look at the frame again
                    continue
                dv = memoryview(data)
                mo = list(_split_offsets(dv, 0, len(dv)))
                if left > 0:
                    left = max(0, left - len(mo))
                yield dv, mo
                self._give_back([off])
                i = 0 if i == n - 1 else i + 1
                self.rx_cursor = i
                continue
            if not self._rx_wait(off, timeout, raise_enobufs):
                return

    def _rx_run(self, i: int, m: int) -> tuple[list[int], int, int]:
        """The next run of VALID RX frames: ``(cand, k, first_status)``, ``cand`` the offsets of
        the ``m`` frames from index ``i`` on (not past the ring end), ``k`` how many of them from
        the first on are VALID. Every frame's status word has its own acquire load (issued by
        ``map``: one C call each), all before the caller reads any header; a frame after one
        not seen VALID is never taken. After a short run (the reader is at the producer's heels)
        the loads stop at the first frame not VALID (``takewhile``), so that the reader does not
        pull the cache lines of frames the producer is about to write."""
        at = self.at
        assert at is not None
        cand = self._rx_offs[i:i + m]
        if self._rx_full:
            sts = list(map(at.load32, cand, repeat(at.ACQUIRE, m)))
            if sts.count(VALID) == m:
                return cand, m, VALID
            k = 0
            while sts[k] == VALID:
                k += 1
            self._rx_full = False
            return cand, k, sts[0]
        k = len(list(takewhile(_IS_VALID, map(at.load32, cand, repeat(at.ACQUIRE, m)))))
        self._rx_full = k == m
        # the first status again for the caller (k == 0: COPY or wait; a VALID seen now is
        # taken by the caller's next run)
        return cand, k, VALID if k else at.load32(cand[0], at.ACQUIRE)

    def _run_len(self, base: int, k: int) -> int:
        """For ``k`` VALID frames from offset ``base`` at the ring's one stride: the message
        length if every frame holds exactly one message of that length (``nm_len`` ==
        first ``nlmsg_len``, 16 <= it <= the frame's capacity), else 0. Two strided reads of
        the header words (after the run's acquire loads) instead of one unpack per frame."""
        u32 = self._u32
        if not self._rx_uniform or u32 is None:
            return 0
        step = self.layout.rx.frame_size >> 2  # type: ignore[union-attr]
        w = (base + 4) >> 2
        lens = u32[w:w + k * step:step].tolist()
        ln = lens[0]
        if (_NLMSG_HDRLEN <= ln <= self.layout.rx.payload_capacity  # type: ignore[union-attr]
                and lens.count(ln) == k and lens == u32[w + 5:w + 5 + k * step:step].tolist()):
            return ln
        return 0

    def _rx_wait(self, off: int, timeout: float | None, raise_enobufs: bool) -> bool:
        """The frame at the cursor is neither VALID nor COPY: report a pending ENOBUFS, else
        sleep until it is (wake-up handshake). False when ``timeout`` passed first."""
        if self._err_pending():
            self._take_err()
            self.enobufs += 1
            if raise_enobufs:
                raise NetlinkError("ENOBUFS", "messages were lost (ring overrun)")
            return True
        at = self.at
        assert at is not None
        ld, acq = at.load32, at.ACQUIRE
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._sleep_until(lambda: ld(off, acq) in (VALID, COPY), deadline)

    def _give_back(self, done: list[int]) -> None:
        """Release RX frames (all reads of them are finished) in ring order: release stores
        (issued by ``map``), the last one seq_cst so that all of them are ordered before the ONE
        load of the kernel's wait flag (the kernel is told only if it waits for space)."""
        at = self.at
        assert at is not None
        k = len(done)
        st = at.store32
        if k > 1:
            _drain(map(st, done[:k - 1], repeat(UNUSED, k - 1), repeat(at.RELEASE, k - 1)))
        st(done[k - 1], UNUSED, at.SEQ_CST)
        ctl = self.ctl
        if ctl.load_sc(wire.CTL_K_WAIT) and ctl.exchange(wire.CTL_K_WAIT, 0):
            self._note("released")

    def _err_pending(self) -> bool:
        return self.ctl.load_acquire(wire.CTL_ERR_RAISED) != self.ctl.load_acquire(wire.CTL_ERR_TAKEN)

    def _take_err(self) -> None:
        self.ctl.store_sc(wire.CTL_ERR_TAKEN, self.ctl.load_acquire(wire.CTL_ERR_RAISED))
        self._rcv_wake()

    def _messages_plain(self, timeout: float | None, limit: int | None, raise_enobufs: bool) -> Iterator[memoryview]:
        """Without an RX ring: every datagram of the receive queue, split into messages."""
        got = 0
        while limit is None or got < limit:
            try:
                data, _ = self.recvmsg(1 << 20, dontwait=False, timeout=timeout)
            except NetlinkError as e:
                if e.errno == "ENOBUFS":
                    self.enobufs += 1
                    if raise_enobufs:
                        raise
                    continue
                if e.errno == "EAGAIN":
                    return
                raise
            for m in _split(memoryview(data)):
                yield m
                got += 1

    def recv_plain_into(self, buf: bytearray) -> memoryview:
        """Fast path of a plain (ring-less) socket: one recv() of the next datagram into ``buf``;
        the datagram's messages (a view into ``buf``). Blocks."""
        mv = memoryview(buf)
        if self._stash:  # DATA that arrived while we waited for a reply
            data = self._pop_data()
            if data is not None:
                buf[8:8 + len(data)] = data
                self._consumed += 1
                self.ctl.store64(wire.CTL_CONSUMED, self._consumed)
                return mv[8:8 + len(data)]
        while True:
            n = self.sock.recv_into(buf)
            if n and buf[0] == wire.DATA:
                self._consumed += 1
                self.ctl.store64(wire.CTL_CONSUMED, self._consumed)
                return mv[8:n]
            if n == 0:
                raise NetlinkError("ECONNRESET", "the kernel side went away")

    def send(self, msg: bytes, *, flush: bool = False) -> None:
        """Queue ``msg`` in the next TX frame (ring order); kick when the ring is full or on
        ``flush``."""
        offs = self._tx_offs
        i = self.tx_cursor
        off = offs[i]
        at = self.at
        assert at is not None
        if at.load_acquire(off) != UNUSED:
            self.flush()
            if at.load_acquire(off) != UNUSED:
                raise NetlinkError("ENOBUFS", f"TX frame {i} is still not free after a kick")
        self.write_frame(i, msg)
        self.tx_cursor = 0 if i == len(offs) - 1 else i + 1
        self._tx_filled += 1
        if flush or self._tx_filled >= len(offs):
            self.flush()

    def flush(self) -> int:
        """Kick the TX ring if frames are waiting; the bytes the kernel took."""
        if not self._tx_filled:
            return 0
        self._tx_filled = 0
        return self.sendmsg(None)

    # ---- life -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Unmap and close (idempotent)."""
        if self.closed:
            return
        with contextlib.suppress(NetlinkError, OSError, BufferError):
            if self.mm is not None:
                self.munmap()
        with contextlib.suppress(NetlinkError, OSError):
            self._call("close")
        self.closed = True
        with contextlib.suppress(BufferError):
            self.ctl.close()
            self._ctl_mm.close()
        self.sock.close()

    def __enter__(self) -> RingSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split_offsets(buf: Any, start: int, total: int) -> Iterator[int]:
    """Offsets of the netlink messages in ``buf[start:start + total]`` (as :func:`_split`)."""
    pos = 0
    unpack = _LEN.unpack_from
    while total - pos >= nl.NLMSG_HDRLEN:
        ln = unpack(buf, start + pos)[0]
        if ln < nl.NLMSG_HDRLEN or ln > total - pos:
            return
        yield start + pos
        pos += nl.nlmsg_align(ln)


def _split(view: memoryview) -> Iterator[memoryview]:
    """The netlink messages of a buffer (4-aligned, stop at a bad header); one message: itself."""
    total = len(view)
    if total >= nl.NLMSG_HDRLEN:
        first = _LEN.unpack_from(view, 0)[0]
        if first == total:
            yield view
            return
    pos = 0
    while total - pos >= nl.NLMSG_HDRLEN:
        ln = _LEN.unpack_from(view, pos)[0]
        if ln < nl.NLMSG_HDRLEN or ln > total - pos:
            return
        yield view[pos:pos + ln]
        pos += nl.nlmsg_align(ln)
