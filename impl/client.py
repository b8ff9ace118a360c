"""The user side: :class:`RingSocket`, a netlink socket with memory-mapped rings.

Two layers. The **system-call layer** has the real API's shape: :meth:`RingSocket.setsockopt`
with the raw ``struct nl_mmap_req`` bytes, :meth:`~RingSocket.mmap`, frame access by index
(:meth:`~RingSocket.status`, :meth:`~RingSocket.header`, :meth:`~RingSocket.payload`, ...),
:meth:`~RingSocket.poll`, :meth:`~RingSocket.sendmsg` (``None`` = the TX ring kick) and
:meth:`~RingSocket.recvmsg` (the messages behind COPY frames). The **pythonic layer**
(:meth:`~RingSocket.messages` and :meth:`~RingSocket.message_runs`, both on the one frame reader
of :mod:`nlmmap.impl.reader`; :meth:`~RingSocket.send`, :meth:`~RingSocket.flush`, the context
manager) follows the documented read and write loops (kernel-protocol.md 15): VALID frames are
read in place, VALID frames of length 0 are released, COPY frames are paired with recvmsg, a
pending ENOBUFS is counted; TX frames are filled in ring order and kicked in batches.

Ordering: the status word is loaded with acquire semantics before the header and payload are
read, and stored with release semantics after they are written (:mod:`nlmmap.impl.atomics`).
recvmsg reads this process's share of the receive queue; when the kernel must learn of it (a
new ``max_recvmsg_len``, or a dump running) it is also a call to the kernel side (section 8).

Posted sends: ``sendmsg(msg, wait=False)`` returns what the kernel's sendmsg to the kernel
returns (the length: what the kernel's input makes of the message comes back as messages in the
receive queue, never as the call's result) without waiting for the kernel side's answer, a round
trip to another process where a kernel runs the input inside the call. So that no program using
this class can tell, every later observation waits until the kernel side has taken the posted
ones first (:meth:`~RingSocket.sync`): each call, each frame read (``status``, ``header``,
``payload``, a TX frame for ``send``), ``recvmsg``, and the readers before they wait for a frame;
a post that failed raises there, naming itself (no silent loss). A program reading the mapping's
bytes directly calls :meth:`~RingSocket.sync` first.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import mmap
import os
import select
import socket
import struct
import threading
import time
from typing import Any

from nlmmap.spec import family
from nlmmap.spec.abi import (
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    NL_MMAP_HDRLEN,
    NM_LEN_OFFSET,
    SOL_NETLINK,
    FrameHeader,
    MappingLayout,
    RingGeometry,
    RingRequest,
    Status,
)
from nlmmap.spec.errors import NetlinkError
from nlmmap.spec.expr import evaluate
from nlmmap.spec.protocol import poll_in

from . import wire
from .atomics import Atomics, open_atomics
from .reader import RxReader

__all__ = ["RingSocket", "Paused"]

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
_U32 = struct.Struct("=I")
_LEN = struct.Struct("=I")
_POLL_IN = poll_in()
_POST_BYTES = wire.MAX_DATAGRAM // 2  # posted bytes sent in one datagram at most


class _Loads:
    """``rx_status[j]`` for the spec: an acquire load of frame j's status word."""

    __slots__ = ("load", "offs")

    def __init__(self, load: Any, offs: list[int]):
        self.load, self.offs = load, offs

    def __getitem__(self, j: int) -> int:
        return self.load(self.offs[j])


def _post_error(data: bytes) -> NetlinkError:
    """The error a POSTERR datagram carries (EIO if it is malformed)."""
    try:
        _, _, res, _ = wire.decode(data)
        return NetlinkError(str(res.get("errno", "EIO")), str(res.get("message", "")))
    except (NetlinkError, ValueError, TypeError):
        return NetlinkError("EIO", "a malformed error report of a posted sendmsg")


class Paused(int):
    """The token of a sendmsg paused after validation (``pause_after_validate``)."""


class RingSocket(RxReader):
    """One netlink socket of the kernel side listening at ``path``.

    Parameters
    ----------
    path : str
        The kernel side's Unix socket (``python -m nlmmap.impl.kernel --socket PATH``).
    atomics : str
        Atomics backend (``auto``, ``atomicshm``, ``tso``).
    poll_timeout : float
        Bounded sleep of a waiting reader (a defence: each expiry is counted in
        ``poll_timeouts``, a proven lost wake-up in ``lost_wakeups``).
    spin : int
        Status checks before a reader goes to sleep (~0.1 us each: a sleep costs a wake-up
        round trip far longer than the kernel side needs to publish the next run).
    post_batch : int
        Sendmsg calls posted with ``wait=False`` sent to the kernel side in one datagram: 1 sends
        each at once; more sends them once that many wait, or before the next observation or
        wait of this socket (the module docstring), whichever is first.
    """

    def __init__(self, path: str, *, atomics: str = "auto", poll_timeout: float = 1.0, spin: int = 1000,
                 post_batch: int = 1):
        self.path = path
        self.atomics_backend = atomics
        self.poll_timeout = poll_timeout
        self.spin = spin
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with contextlib.suppress(OSError):  # room for a call of MAX_DATAGRAM bytes
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * wire.MAX_DATAGRAM)
        self.sock.connect(path)
        self._stash: collections.deque[tuple[int, bytes]] = collections.deque()
        self._posted = 0  # sendmsg calls posted without waiting (wait=False)
        self._posted_done = 0  # of them, those the kernel side was seen to have taken
        self._post_errors: collections.deque[NetlinkError] = collections.deque()
        self._post_buf: list[bytes] = []  # posted, not sent yet (post_batch > 1)
        self._post_bytes = 0
        if isinstance(post_batch, bool) or not isinstance(post_batch, int) or post_batch < 1:
            raise ValueError(f"post_batch must be a positive integer, got {post_batch!r}")
        self.post_batch = post_batch
        self._lock = threading.RLock()
        self._reader = wire.DatagramReader(self.sock)
        data, fds = self._reader.recv()
        kind, _, hello, _ = wire.decode(data)
        if kind != wire.HELLO or len(fds) != 1:
            raise NetlinkError("EPROTO", "the kernel side did not greet with its control page")
        self.portid: int = hello["portid"]
        self.serial: int = hello["serial"]  # the kernel side's name for this connection (retired)
        self.kernel_pid: int = hello["kernel_pid"]
        self.page_size: int = hello["page_size"]
        self._ctl_mm = mmap.mmap(fds[0], wire.CTL_SIZE)
        os.close(fds[0])
        self.ctl: Atomics = open_atomics(self._ctl_mm, atomics)
        self._consumed = 0
        self._epoch = 0
        self._max_recvmsg_len = 0  # what the kernel side recorded (section 8)
        self._last_bufsize = -1
        self._rel_seq = 0  # hand-backs begun (the wake-up handshake's count, reader.py)
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
        self.poll_timeouts = 0  # bounded sleeps that expired (a stall, or a lost wake-up)
        self.lost_wakeups = 0  # expiries with the frame ready since before the sleep, flag unclaimed
        self.sleeps = 0  # times the reader went to sleep
        self.enobufs = 0  # ENOBUFS reported to the iterator (messages the kernel dropped)
        self.closed = False

    # ---- wire -----------------------------------------------------------------------------------
    def _call(self, op: str, args: dict | None = None, blob: bytes = b"") -> tuple[dict, list[int]]:
        """One system call on the kernel side; DATA arriving meanwhile joins the receive queue."""
        if self.closed:
            raise NetlinkError("EBADF", "the socket is closed")
        self._sync_posts()
        data = wire.encode(wire.REQ, op, args, blob)
        if len(data) > wire.MAX_DATAGRAM:
            raise NetlinkError("EMSGSIZE", f"{op}: {len(blob)} bytes exceed what the kernel side takes in one call")
        with self._lock:
            try:
                self.sock.send(data)
            except OSError as e:
                if e.errno != errno.EMSGSIZE:
                    raise
                # the control socket's buffer (SO_SNDBUF, capped by net.core.wmem_max) is smaller than
                # this call: a typed error naming the cause, not an internal one
                raise NetlinkError("EMSGSIZE", f"{op}: a call of {len(data)} bytes does not fit the control "
                                               f"socket's send buffer (net.core.wmem_max too small?)") from None
            while True:
                data, fds = self._reader.recv()
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
        """A datagram that is not a reply: DATA joins the receive queue; POSTERR is kept for the
        next :meth:`sync`; WAKE only woke us."""
        if data[0] == wire.DATA:  # header (4 bytes, no JSON), generation (u32), the message
            self._stash.append((_U32.unpack_from(data, 4)[0], data[8:]))
        elif data[0] == wire.POSTERR:
            self._post_errors.append(_post_error(data))

    # ---- posted sends ---------------------------------------------------------------------------
    def _sync_posts(self) -> bool:
        """Before every look or wait of the socket (calls, frame reads, recvmsg, the TX ring, the
        readers' waits): :meth:`sync` when posted sendmsg calls are outstanding or a failure of
        one is still to be raised. True when it synced (what was looked at may have changed)."""
        if self._posted != self._posted_done or self._post_errors:
            self.sync()
            return True
        return False

    def sync(self, bound: float = 60.0) -> None:
        """Wait until the kernel side has taken every sendmsg posted with ``wait=False`` (its count
        in the control page), then raise the first that failed. ETIMEDOUT after ``bound`` seconds,
        ECONNRESET if the kernel side went away."""
        target = self._posted
        if target != self._posted_done:
            self.flush_posted()
            why = wire.wait_counter(self.ctl, wire.CTL_POST_DONE, target, alive=self._kernel_alive, bound=bound,
                                    spin=self.spin)
            if why == "gone":
                raise NetlinkError("ECONNRESET", "the kernel side went away with posted sendmsg calls untaken")
            if why == "timeout":
                raise NetlinkError("ETIMEDOUT", f"the kernel side did not take {target - self._posted_done} "
                                                f"posted sendmsg calls within {bound} s")
            self._posted_done = target
            self._drain()  # the POSTERR of a failed post is on the socket before its count moved
        if self._post_errors:
            e = self._post_errors.popleft()
            raise NetlinkError(e.errno, f"a sendmsg posted without waiting failed: {e.message}")

    def _post(self, payload: bytes) -> None:
        """Queue one posted sendmsg; sent at once, or with ``post_batch`` > 1 once that many wait
        (and before anything that observes or waits: :meth:`sync`, :meth:`flush_posted`)."""
        buf = self._post_buf
        buf.append(payload)
        self._post_bytes += len(payload) + 4
        self._posted += 1
        if len(buf) >= self.post_batch or self._post_bytes >= _POST_BYTES:
            self.flush_posted()

    def flush_posted(self) -> None:
        """Send the posted sendmsg calls not sent yet, in one POST datagram (wire.encode_post); while
        the kernel side's buffer is full, read what it sends us (it may be waiting for room on
        our side) instead of blocking."""
        if not self._post_buf:
            return
        data = wire.encode_post(self._post_buf)
        self._post_buf = []
        self._post_bytes = 0
        with self._lock:
            while True:
                try:
                    self.sock.send(data, socket.MSG_DONTWAIT)
                    return
                except (BlockingIOError, InterruptedError):
                    self._drain()
                    select.select([self.sock], [self.sock], [], 0.01)
                except OSError as e:
                    raise NetlinkError("ECONNRESET", f"the kernel side went away ({e})") from None

    def _drain(self) -> bool:
        """Read every datagram waiting on the socket without blocking; True if the kernel side
        has gone (end of file: it never sends an empty datagram)."""
        with self._lock:
            while True:
                try:
                    data, fds = self._reader.recv(socket.MSG_DONTWAIT)
                    for fd in fds:
                        os.close(fd)
                except (BlockingIOError, InterruptedError):
                    return False
                except OSError:
                    return True
                if not data:
                    return True
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
        # RX frames back to back (RingGeometry.stride), at u32-aligned offsets of the u32 view
        stride = layout.rx.stride if layout.rx else 0
        self._rx_uniform = (self._u32 is not None and stride > 0 and stride % 4 == 0 and layout.rx_base % 4 == 0)
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
        self._sync_posts()
        return self.at.load_acquire(self.frame_offset(ring, index))  # type: ignore[union-attr]

    def set_status(self, ring: str, index: int, value: int) -> None:
        """Store a status word (release: earlier writes of the frame are visible first)."""
        off = self.frame_offset(ring, index)
        if ring == "rx" and value == UNUSED:
            self._give_back([off])
        else:
            self.at.store_sc(off, value)  # type: ignore[union-attr]

    def header(self, ring: str, index: int) -> FrameHeader:
        """The frame header (read after an acquire load of the status)."""
        self._sync_posts()
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
        _LEN.pack_into(self.mm, off + NM_LEN_OFFSET, len(data))  # type: ignore[arg-type]
        self.at.store_sc(off, status)  # type: ignore[union-attr]

    def release(self, index: int) -> None:
        """Hand RX frame ``index`` back to the kernel (UNUSED) and tell it if it waits."""
        self._give_back([self._rx_offs[index]])

    # ---- system calls ---------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> set[str]:
        """poll(): a subset of POLLIN, POLLOUT, POLLERR (continues dumps, as the kernel's does);
        with ``timeout`` > 0 waits for an RX frame or queued message first."""
        res, _ = self._call("poll")
        mask = set(res["revents"])
        if "POLLIN" not in mask and timeout > 0:
            self._sleep_until(self._pollin, time.monotonic() + timeout, lambda: self._pollin(recheck=True))
            res, _ = self._call("poll")
            mask = set(res["revents"])
        return mask

    def _pollin(self, recheck: bool = False) -> bool:
        """The spec's ``poll_in()`` as this process sees the socket (its frames, its queue); the
        status words by acquire loads, or by seq_cst loads for the ``recheck`` after the wait flag."""
        rx = self.layout.rx if self.layout is not None and self.at is not None else None
        at = self.at
        load, offs = ((at.load_sc if recheck else at.load_acquire), self._rx_offs) if rx is not None else (None, [])
        view = {"rx_frame_nr": rx.frame_nr if rx is not None else 0, "rq_len": self._rq_len(),
                "rx_status": _Loads(load, offs)}
        return bool(evaluate(_POLL_IN, view))

    def sendmsg(self, payload: bytes | None = None, to: str = "kernel", *,
                pause_after_validate: bool = False, wait: bool = True) -> int:
        """A plain send of ``payload`` or, with ``None``, the TX ring kick. Returns the bytes
        sent (sum of frame lengths for a kick), or a :class:`Paused` token. ``wait=False`` posts
        a plain send to the kernel (module docstring): its length now, a failure at the next
        call or :meth:`sync`."""
        args: dict[str, Any] = {} if to == wire.DEFAULT_TO else {"to": to}
        if not wait:
            if payload is None or args or pause_after_validate:
                raise NetlinkError("EINVAL", "only a plain sendmsg to the kernel can be posted (wait=False): "
                                             "not a TX ring kick, a pause, or a send to the peer")
            if self.closed:
                raise NetlinkError("EBADF", "the socket is closed")
            if len(payload) > _POST_BYTES:
                raise NetlinkError("EMSGSIZE", f"sendmsg: {len(payload)} bytes exceed what the kernel side "
                                               "takes in one posted call")
            self._post(bytes(payload))
            return len(payload)
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
        self._sync_posts()
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
                self._wait_socket(None if deadline is None else max(0.0, deadline - time.monotonic()))
                self._drain()
                data = self._pop_data()
        if data is None:
            self._rcv_wake()
            raise NetlinkError("EAGAIN", "no message queued")
        self._consumed += 1
        ctl.store64(wire.CTL_CONSUMED, self._consumed)
        self._recorded(bufsize)
        self._rcv_wake()
        return data[:bufsize], len(data) > bufsize

    def _recorded(self, bufsize: int) -> None:
        """After a recvmsg took a message: tell the kernel side when it records a new
        ``max_recvmsg_len`` or continues a running dump (both happen in the kernel's recvmsg)."""
        if bufsize != self._last_bufsize:
            self._last_bufsize = bufsize
            grows = family.recvmsg_len_after(self._max_recvmsg_len, bufsize) != self._max_recvmsg_len
        else:
            grows = False
        if grows or self.ctl.load_acquire(wire.CTL_DUMP_RUNNING):
            self._max_recvmsg_len = self._call("recvmsg", {"bufsize": bufsize})[0]["max_recvmsg_len"]

    def deliver(self, payload: bytes, path: str = "copy", group: int = 0) -> str:
        """Test hook: have the kernel side send ``payload`` to this socket (``ring``: as a kernel
        subsystem building it in a frame; ``copy``: from the user-space peer)."""
        return self._call("deliver", {"path": path, "group": group}, bytes(payload))[0]["outcome"]

    def received(self) -> list[bytes]:
        """Drain what the peer got from this socket."""
        return [bytes.fromhex(m) for m in self._call("received")[0]["messages"]]

    def service(self, name: str, **args: Any) -> None:
        """Start or configure a kernel-side service (``stream``, ``echo``, ``sink``, ``queue``:
        :mod:`nlmmap.impl.services`). Dumps are requested in-band (``family.dump_request``)."""
        a = dict(args)
        a["name"] = name
        self._call("service", a)

    def stats(self, *, global_: bool = False) -> dict[str, Any]:
        """The kernel side's counters for this socket (and the whole server with ``global_``)."""
        res, _ = self._call("stats", {"global": global_})
        res.pop("ok", None)
        return res

    def settle(self) -> None:
        """Return once every service of this socket waits (for frames or verdicts) or has
        finished: a deterministic point to look at counters and frames (no sleeping)."""
        self._call("settle")

    def retired(self, serial: int) -> dict[str, Any]:
        """The kernel side's final counters of the socket whose :attr:`serial` this is, once it
        has reclaimed it (port ids are reused once a socket is closed; serials are not)."""
        return self._call("retired", {"serial": int(serial)})[0]["record"]

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
                self._recorded(len(buf))
                return mv[8:8 + len(data)]
        while True:
            if self._post_buf:  # posted sends not sent yet go out before this recv blocks
                try:
                    n = self.sock.recv_into(buf, 0, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    self.flush_posted()
                    continue
            else:
                n = self.sock.recv_into(buf)
            if n and buf[0] == wire.DATA:
                self._consumed += 1
                self.ctl.store64(wire.CTL_CONSUMED, self._consumed)
                self._recorded(len(buf))
                return mv[8:n]
            if n == 0:
                raise NetlinkError("ECONNRESET", "the kernel side went away")
            if buf[0] == wire.POSTERR:
                self._take(bytes(buf[:n]))
                self.sync()

    def send(self, msg: bytes, *, flush: bool = False) -> None:
        """Queue ``msg`` in the next TX frame (ring order); kick when the ring is full or on
        ``flush``."""
        self._sync_posts()
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
        failed: NetlinkError | None = None
        try:
            self.sync()
        except NetlinkError as e:  # raised once the socket is closed: never dropped
            failed = e
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
        self._reader.close()
        if failed is not None:
            raise failed

    def __enter__(self) -> RingSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
