"""The kernel side: a process that plays a netlink family with memory-mapped rings (Linux 4.5).

``python -m nlmmap.impl.kernel --socket PATH`` listens on a Unix socket; every connection is one
netlink socket of the test family (see :mod:`nlmmap.impl.wire` for the private wire). Per socket
it validates ring requests exactly like ``netlink_set_ring`` (via :mod:`nlmmap.spec.abi`), keeps
both rings in ONE memfd laid out like the kernel's single mmap (RX ring, then TX ring), hands the
memfd to the user with ``SCM_RIGHTS``, and follows the kernel's rules (kernel-protocol.md):

- ring path (6.1/6.2): step over SKIP frames at the cursor, claim the UNUSED frame as RESERVED,
  advance the cursor; write the payload at +24 and the header, then VALID (release store). Too
  big for a frame: a plain message (COPY path). Ring full: dropped, overrun.
- COPY path (6.3): the frame at the cursor must be UNUSED (no SKIP stepping): COPY frame and the
  message queued for recvmsg; otherwise dropped with an overrun.
- overrun (6.5): ``sk_err = ENOBUFS`` and CONGESTED unless NETLINK_NO_ENOBUFS; drops counted.
- ACKs (20): ``netlink_rcv_skb`` over the datagram, NETLINK_ROUTE's answers, replies built in
  the RX ring (``nlmmap.spec.netlink``).
- TX (11.2, the 2015 rule): walk VALID frames at the TX cursor; read ``nm_len`` once, check it,
  COPY the bytes to private memory, release the frame (UNUSED), advance; then validate the copy
  and act on the copy only. An error returns the errno and discards the byte count.

Services started per socket: ``stream`` (N sequence-numbered messages, waiting for free frames
instead of dropping), ``echo`` (every message sent to the kernel comes back on RX), ``sink``
(checks sequence-numbered messages sent to the kernel), ``dump`` (dump replies continued when
the user frees frames or polls), ``queue`` (nfqueue-like; frame claim, id assignment and publish
under ONE lock, so ring order is id order and batch verdicts are sound).

A hostile or dead user never stops the process: each socket has its own thread; every value
read from shared memory is treated as untrusted; a socket whose user vanished is reclaimed and
its undelivered messages are counted.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
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
    check_mmap_request,
    check_ring_change,
)
from nlmmap.spec.errors import NetlinkError, errno_code

from . import wire
from .atomics import open_atomics

__all__ = ["KernelConfig", "KernelServer", "KernelProcess", "main"]

UNUSED, RESERVED, VALID, COPY, SKIP = (int(s) for s in Status)
_U32 = struct.Struct("=I")
_HDR5 = struct.Struct("=5I")
_SO_SNDTIMEO = struct.Struct("=qq")
#: Most frames the stream producer claims, fills and publishes in one run (one lock, one wake
#: check). Shorter runs hand frames to the reader sooner; longer ones amortise more.
STREAM_RUN = 128


@dataclass(frozen=True)
class KernelConfig:
    """Parameters of the kernel side."""

    page_size: int = DEFAULT_PAGE_SIZE
    atomics: str = "auto"  # atomics backend (nlmmap.impl.atomics)
    wait_timeout: float = 1.0  # bounded waits for free frames (a timeout is counted: lost wake-up)
    #: free-frame checks a waiting producer makes before it sets its wait flag and sleeps (a
    #: sleep costs a NOTE round trip and a thread wake-up, far longer than a reader's run)
    wait_spin: int = 256
    send_timeout: float = 10.0  # a user that does not read its socket for this long loses messages
    memory_limit: int = 64 << 20  # bytes per ring (else ENOMEM)
    sndbuf: int = nl.DEFAULT_SNDBUF  # plain sends longer than sndbuf - 32 fail with EMSGSIZE
    peer_pid: int = 4242  # nm_pid of messages from the user-space peer
    #: The historical 3.10 flaw (never use): validate the shared frame, later act on re-read bytes.
    tx_validate_in_place: bool = False


class _Ring:
    """One configured ring inside the socket's memfd."""

    def __init__(self, geom: RingGeometry, base: int):
        self.geom = geom
        self.base = base
        self.n = geom.frame_nr
        self.cap = geom.payload_capacity
        self.offs = [base + geom.frame_offset(i) for i in range(geom.frame_nr)]
        self.head = 0
        self.pending = 0

    def advance(self) -> None:
        self.head = 0 if self.head == self.n - 1 else self.head + 1


@dataclass
class _Stats:
    """Counters of one socket (reported by the ``stats`` call and kept after it closes)."""

    ring_published: int = 0
    copy_queued: int = 0
    dropped: int = 0
    kernel_wait_timeouts: int = 0
    tx_frames: int = 0
    tx_rejected: int = 0
    sink_received: int = 0
    sink_errors: int = 0
    sink_next: int = 0
    sink_first_error: str = ""
    stream_sent: int = 0
    stream_done: bool = False
    stream_waits: int = 0  # times the ring producer found no free frame and waited
    queue_sent: int = 0
    queue_decided: int = 0
    queue_verdict_msgs: int = 0
    queue_done: bool = False
    send_failures: int = 0
    undelivered_at_close: int = 0
    extra: dict = field(default_factory=dict)


class KSock:
    """The kernel's half of one netlink socket (one Unix connection)."""

    def __init__(self, server: KernelServer, conn: socket.socket, portid: int):
        self.server = server
        self.cfg = server.config
        self.conn = conn
        self.portid = portid
        self.lock = threading.RLock()  # the receive-queue lock: RX cursor, claims, config
        self.tx_lock = threading.Lock()  # pg_vec_lock for the TX walk
        self.queue_lock = threading.Lock()  # the queue service's lock (claim + id + publish)
        self.send_lock = threading.Lock()
        self.rx: _Ring | None = None
        self.tx: _Ring | None = None
        self.memfd: int | None = None
        self.mm: mmap.mmap | None = None
        self.at: Any = None
        self.mapped = 0
        self.pushed = self.purged = self.gen = 0
        self.congested = False
        self.congested_epoch = 0
        self.no_enobufs = False
        self.cap_ack = False
        self.groups: set[int] = set()
        self.drops = 0
        self.peer_inbox: list[bytes] = []
        self.paused: dict[int, Iterator[str]] = {}
        self.walk_paused = False
        self._next_token = 1
        self.released = threading.Event()
        self.verdicted = threading.Event()
        self.dead = False
        self.closing = threading.Event()
        self.threads: list[threading.Thread] = []
        self.dumps: dict[int, tuple[int, int]] = {}
        self.dump: list[bytes] | None = None
        self.dump_seq = 0
        self.echo = False
        self.sink = False
        self.queue: collections.OrderedDict[int, int] | None = None
        self.queue_id = 0
        self.stats = _Stats()
        # control page: its own memfd, outside the ring mapping
        self.ctl_fd = os.memfd_create("nlmmap-ctl", os.MFD_CLOEXEC)
        os.ftruncate(self.ctl_fd, wire.CTL_SIZE)
        self.ctl_mm = mmap.mmap(self.ctl_fd, wire.CTL_SIZE)
        self.ctl = open_atomics(self.ctl_mm, self.cfg.atomics)

    # ---- plumbing -------------------------------------------------------------------------------
    def send(self, kind: int, op: str | int = 0, args: dict | None = None, blob: bytes = b"",
             fds: list[int] | None = None) -> bool:
        """One datagram to the user; False (and counted) if the user is gone or not reading."""
        if self.dead:
            return False
        data = wire.encode(kind, op, args, blob)
        try:
            with self.send_lock:
                if fds:
                    socket.send_fds(self.conn, [data], fds)
                else:
                    self.conn.send(data)
            return True
        except OSError:
            self.stats.send_failures += 1
            return False

    def send_raw(self, data: Any) -> bool:
        """An already encoded datagram (bytes or a buffer) to the user; as :meth:`send`."""
        if self.dead:
            return False
        try:
            with self.send_lock:
                self.conn.send(data)
            return True
        except OSError:
            self.stats.send_failures += 1
            return False

    def reply(self, args: dict, blob: bytes = b"", fds: list[int] | None = None) -> None:
        self.send(wire.REPLY, 0, args, blob, fds)

    # ---- counters shared with the user ------------------------------------------------------------
    def rq_len(self) -> int:
        """Messages queued for recvmsg that the user has not taken yet."""
        return max(0, self.pushed - self.purged - self.ctl.load64(wire.CTL_CONSUMED))

    def err_pending(self) -> bool:
        return self.ctl.load_acquire(wire.CTL_ERR_RAISED) != self.ctl.load_acquire(wire.CTL_ERR_TAKEN)

    def raise_err(self) -> None:
        """``sk_err = ENOBUFS`` (one pending error at most, as a flag)."""
        if not self.err_pending():
            self.ctl.store_sc(wire.CTL_ERR_RAISED, (self.ctl.load_acquire(wire.CTL_ERR_RAISED) + 1) & 0xFFFFFFFF)

    def is_congested(self) -> bool:
        """CONGESTED, cleared lazily by the user's rcv_wake (recvmsg ending on an empty queue)."""
        if self.congested and self.ctl.load_acquire(wire.CTL_WAKE_EPOCH) != self.congested_epoch:
            self.congested = False
        return self.congested

    def overrun(self) -> None:
        """``netlink_overrun``: CONGESTED and sk_err unless NO_ENOBUFS; always a drop."""
        if not self.no_enobufs:
            if not self.is_congested():
                self.congested = True
                self.congested_epoch = self.ctl.load_acquire(wire.CTL_WAKE_EPOCH)
                self.raise_err()
        self.drops += 1
        self.stats.dropped += 1
        self.ctl.store64(wire.CTL_DROPS, self.drops)

    # ---- frames ---------------------------------------------------------------------------------
    def status(self, ring: _Ring, j: int) -> int:
        return self.at.load_acquire(ring.offs[j])

    def wake_user(self) -> None:
        """After a publish: kick the user only if it sleeps (flag read after the seq_cst store)."""
        if self.ctl.load_sc(wire.CTL_RX_WAIT) and self.ctl.exchange(wire.CTL_RX_WAIT, 0):
            self.send(wire.WAKE)

    def fits(self, size: int) -> bool:
        return self.rx is not None and size <= self.rx.cap

    def _forward(self) -> int | None:
        """``netlink_forward_ring`` (4.4): move the cursor over SKIP frames; None if all are SKIP
        (then the cursor is back where it started)."""
        r = self.rx
        assert r is not None
        for _ in range(r.n):
            if self.status(r, r.head) != SKIP:
                return r.head
            r.advance()
        return None

    def alloc(self, size: int, *, overrun: bool = True) -> int | None:
        """``netlink_alloc_skb`` into the ring (call with ``fits(size)``): the claimed frame, or
        None when the ring is full (an overrun unless ``overrun=False``: a waiting producer)."""
        with self.lock:
            r = self.rx
            if r is None:
                return None
            j = self._forward()
            if j is None or self.status(r, j) != UNUSED:
                if overrun:
                    self.overrun()
                return None
            self.at.store_release(r.offs[j], RESERVED)
            r.pending += 1
            r.advance()
            return j

    def has_space(self) -> bool:
        """The next ring allocation would succeed (read-only peek for waiting producers)."""
        r = self.rx
        if r is None:
            return False
        h = r.head
        for _ in range(r.n):
            s = self.status(r, h)
            if s != SKIP:
                return s == UNUSED
            h = 0 if h == r.n - 1 else h + 1
        return False

    def publish(self, j: int, data: bytes, group: int = 0, pid: int = 0) -> None:
        """``netlink_queue_mmaped_skb``: payload at +24, header, then VALID (seq_cst store: a
        release store that is also ordered before the wake-flag load)."""
        r = self.rx
        if r is None:  # the ring went away meanwhile (cannot happen while pending > 0)
            return
        o = r.offs[j]
        mm = self.mm
        mm[o + NL_MMAP_HDRLEN:o + NL_MMAP_HDRLEN + len(data)] = data
        _HDR5.pack_into(mm, o + 4, len(data), group, pid, 0, 0)
        self.at.store_sc(o, VALID)
        r.pending -= 1
        self.stats.ring_published += 1
        self.wake_user()

    def push_data(self, data: bytes) -> None:
        """Queue a message for recvmsg (the Unix socket's buffer is the receive queue)."""
        self.pushed += 1
        self.ctl.store64(wire.CTL_PUSHED, self.pushed)
        self.stats.copy_queued += 1
        self.send(wire.DATA, 0, None, _U32.pack(self.gen) + data)

    def sendskb_plain(self, data: bytes, group: int = 0, pid: int = 0) -> str:
        """``__netlink_sendskb`` of a plain message: COPY frame at the cursor (no SKIP stepping)
        plus the queue, or only the queue without an RX ring; a busy cursor frame drops it."""
        with self.lock:
            r = self.rx
            if r is None:
                self.push_data(data)
                return "copy"
            j = r.head
            if self.status(r, j) != UNUSED:
                self.overrun()
                return "dropped"
            o = r.offs[j]
            r.advance()
            _HDR5.pack_into(self.mm, o + 4, len(data), group, pid, 0, 0)
            self.at.store_sc(o, COPY)
            self.push_data(data)
        self.wake_user()
        return "copy"

    def unicast_plain(self, data: bytes, *, from_kernel: bool, pid: int = 0) -> str:
        """``netlink_unicast`` of a plain message: CONGESTED drops a kernel sender's message
        (overrun) and refuses a non-blocking user sender (EAGAIN)."""
        with self.lock:
            if self.is_congested():
                if from_kernel:
                    self.overrun()
                    return "dropped"
                raise NetlinkError("EAGAIN", "receiver is congested after an overrun (non-blocking sender)")
            return self.sendskb_plain(data, 0, pid)

    def kernel_send(self, data: bytes, *, is_ack: bool = False) -> str:
        """A kernel-built message: ring path when it fits a frame, else a plain message."""
        if self.fits(len(data)):
            j = self.alloc(len(data))
            if j is None:
                if is_ack:
                    self.raise_err()  # netlink_ack: sk_err = ENOBUFS regardless of NO_ENOBUFS
                return "dropped"
            self.publish(j, data)
            return "frame"
        return self.unicast_plain(data, from_kernel=True)

    # ---- the family's input (section 20) ----------------------------------------------------------
    def kernel_input(self, parts: list[tuple[nl.NlMsgHdr, bytes]]) -> None:
        """Act on messages that passed validation (``split_messages`` of the private copy)."""
        for hdr, raw in parts:
            if self.echo:
                self.kernel_send(raw)
                continue
            if self.sink:
                self._sink(raw)
                continue
            if self.queue is not None and hdr.type in _VERDICT_TYPES and hdr.flags & nl.NLM_F_REQUEST:
                err = self._verdict(raw)
                if err or hdr.flags & nl.NLM_F_ACK:
                    self.kernel_send(nl.build_ack(raw, self.portid, err, cap_ack=self.cap_ack), is_ack=True)
                continue
            reply = nl.route_family_answer(hdr, dump_types=frozenset(self.dumps))
            if reply.dump:
                err = self.dump_start(hdr)
                if err == 0:
                    continue
                reply = nl.Reply(err, True)
            if reply.ack or reply.error:
                self.kernel_send(nl.build_ack(raw, self.portid, reply.error, cap_ack=self.cap_ack), is_ack=True)

    def _sink(self, raw: bytes) -> None:
        st = self.stats
        st.sink_received += 1
        try:
            seq = wire.check_seq_message(raw)
            if seq != st.sink_next:
                raise NetlinkError("EINVAL", f"sequence {seq}, expected {st.sink_next}")
            st.sink_next = seq + 1
        except NetlinkError as e:
            st.sink_errors += 1
            st.sink_first_error = st.sink_first_error or e.message

    def from_user(self, data: bytes, to: str) -> int:
        """A message this socket sends (plain send or TX frame): to the peer or the kernel."""
        if to == "peer":
            self.peer_inbox.append(data)
        else:
            self.kernel_input(list(nl.split_messages(data)))
        return len(data)

    # ---- TX walk (11.2) -----------------------------------------------------------------------------
    def tx_walk(self, to: str, pause: bool) -> Iterator[str]:
        """The TX ring walk; yields ``"validated"`` once when ``pause`` is set. Returns the sum of
        the frames' lengths (StopIteration.value); errors raise and discard the sum."""
        total = 0
        paused = False
        t = self.tx
        assert t is not None
        while True:
            with self.tx_lock:
                j = t.head
                o = t.offs[j]
                if self.at.load_acquire(o) != VALID:
                    break
                n = _U32.unpack_from(self.mm, o + 4)[0]  # nm_len, read ONCE
                try:
                    nl.validate_tx_frame(FrameHeader(VALID, n), t.geom.frame_size)
                except NetlinkError:
                    self.stats.tx_rejected += 1
                    raise  # the frame stays VALID, the cursor stays on it
                copy = bytes(self.mm[o + NL_MMAP_HDRLEN:o + NL_MMAP_HDRLEN + n])  # private copy
                self.at.store_sc(o, UNUSED)  # all loads of the copy are done before the release
                t.advance()
                self.stats.tx_frames += 1
            # validate the private copy (netlink_rcv_skb's structure checks)
            if to == "peer":
                spans: list[tuple[int, int]] = [(0, n)]
            else:
                spans, pos = [], 0
                for hdr, _raw in nl.split_messages(copy):
                    spans.append((pos, pos + hdr.len))
                    pos += nl.nlmsg_align(hdr.len)
            if pause and not paused:
                paused = True
                self.walk_paused = True
                try:
                    yield "validated"
                finally:
                    self.walk_paused = False
            if self.cfg.tx_validate_in_place:  # the 3.10 flaw: act on bytes re-read from shared memory
                src = bytes(self.mm[o + NL_MMAP_HDRLEN:o + t.geom.frame_size])
            else:
                src = copy
            if to == "peer":
                total += self.from_user(src[:n], "peer")
            else:
                parts = []
                for a, b in spans:
                    raw = src[a:b]
                    if len(raw) >= nl.NLMSG_HDRLEN:
                        parts.append((nl.NlMsgHdr.unpack(raw), raw))
                self.kernel_input(parts)
                total += n
        return total

    def run_walk(self, gen: Iterator[str]) -> dict:
        """Drive a TX walk to its end or to its pause; the reply fields."""
        try:
            next(gen)
        except StopIteration as stop:
            return {"bytes": stop.value}
        token = self._next_token
        self._next_token += 1
        self.paused[token] = gen
        return {"paused": token}

    # ---- dumps (section 10) ---------------------------------------------------------------------------
    def dump_start(self, hdr: nl.NlMsgHdr) -> int:
        if self.dump is not None:
            return -errno_code("EBUSY")
        count, size = self.dumps[hdr.type]
        self.dump = [nl.build_message(hdr.type, nl.NLM_F_MULTI, hdr.seq, self.portid,
                                      bytes((k + b) & 0xFF for b in range(size))) for k in range(count)]
        self.dump_seq = hdr.seq
        err = self.dump_continue()
        if err == 0 and self.dump is not None:
            self.dump_pump()
        return err

    def dump_space(self) -> bool:
        r = self.rx
        if r is None:
            return False
        m = r.head + (r.n - 1) // 2
        if m > r.n - 1:
            m -= r.n - 1
        return self.status(r, r.head) == UNUSED and self.status(r, m) == UNUSED

    def dump_continue(self) -> int:
        """``netlink_dump``: one skb of dump messages (NLMSG_DONE at the end). 0 or -ENOBUFS."""
        with self.lock:
            if self.dump is None:
                return -errno_code("EINVAL")
            size = nl.nlmsg_goodsize(self.cfg.page_size)
            j = None
            if self.fits(size):
                j = self.alloc(size, overrun=False)
                if j is None:
                    self.ctl.store_sc(wire.CTL_K_WAIT, 1)  # tell me when frames are released
                    return -errno_code("ENOBUFS")
            room = self.rx.cap if j is not None else size  # type: ignore[union-attr]
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
                self.publish(j, body)
            else:
                self.sendskb_plain(body)
            if done:
                self.dump = None
            return 0

    def dump_pump(self) -> None:
        """Continue a running dump while there is space; ask for a NOTE when there is none."""
        with self.lock:
            while self.dump is not None and self.dump_space():
                if self.dump_continue():
                    break
            if self.dump is not None:
                self.ctl.store_sc(wire.CTL_K_WAIT, 1)
                if self.dump_space():  # released meanwhile: go on (no lost wake-up)
                    self.dump_pump()

    # ---- queue service (12.2, under one lock) -----------------------------------------------------------
    def _verdict(self, raw: bytes) -> int:
        try:
            pid, verdict, batch = nl.parse_queue_verdict(raw)
        except NetlinkError as e:
            return -e.code
        self.stats.queue_verdict_msgs += 1
        with self.queue_lock:
            q = self.queue
            assert q is not None
            if batch:
                hit = []
                for qid in q:
                    if nl.serial_after(qid, pid):
                        break
                    hit.append(qid)
                if not hit:
                    return -errno_code("ENOENT")
                for qid in hit:
                    del q[qid]
                self.stats.queue_decided += len(hit)
            else:
                if pid not in q:
                    return -errno_code("ENOENT")
                del q[pid]
                self.stats.queue_decided += 1
        self.verdicted.set()
        return 0

    # ---- waiting producers ------------------------------------------------------------------------------
    def wait_space(self, *, copy: bool = False) -> bool:
        """Sleep until the user frees an RX frame: flag (seq_cst), re-check, bounded wait.
        False if the socket is going away. ``copy``: the cursor frame itself must be free."""
        r = self.rx
        if not copy:
            for _ in range(self.cfg.wait_spin):
                if self.has_space():
                    return not self.closing.is_set()
        self.released.clear()
        self.ctl.store_sc(wire.CTL_K_WAIT, 1)
        if (r is not None and self.status(r, r.head) == UNUSED) if copy else self.has_space():
            return not self.closing.is_set()
        if not self.released.wait(self.cfg.wait_timeout) and not self.closing.is_set():
            self.stats.kernel_wait_timeouts += 1  # the defence expired: a lost wake-up if space was there
        return not self.closing.is_set()

    def _copy_one(self, msg: bytes) -> bool:
        """A plain message through the COPY path if the cursor frame is free (no overrun)."""
        with self.lock:
            r = self.rx
            if r is not None and self.status(r, r.head) != UNUSED:
                return False
            self.sendskb_plain(msg)
            return True

    def _service_stream(self, count: int, size: int, mode: str, batch: int, start: int,
                        big_every: int = 0, big_size: int = 0) -> None:
        try:
            if mode == "ring":
                self._stream_ring(count, size, start, big_every, big_size)
            else:
                self._stream_copy(count, size, batch, start)
        finally:
            self.stats.stream_done = True

    def _stream_one(self, msg: bytes) -> bool:
        """One stream message the slow way (a frame of its own, or the COPY path when it does
        not fit a frame); waits for space instead of dropping. False if the socket goes away."""
        if not self.fits(len(msg)):  # COPY path: wait for the cursor frame itself
            while not self._copy_one(msg):
                if not self.wait_space(copy=True):
                    return False
            return True
        while True:
            j = self.alloc(len(msg), overrun=False)
            if j is not None:
                break
            if not self.wait_space():
                return False
        self.publish(j, msg)
        return True

    def _stream_ring(self, count: int, size: int, start: int, big_every: int, big_size: int) -> None:
        """The ring producer, a run of frames at a time.

        Under the receive-queue lock (held for the whole run, so no other producer can move the
        cursor or reuse a frame meanwhile, and no RESERVED marking is needed): step over SKIP
        frames at the cursor, then take every consecutive frame whose status, read with an
        acquire load, is UNUSED (up to ``STREAM_RUN`` frames; never one it did not see UNUSED;
        the loads are issued by ``map``, one C call per status word); write each message
        straight into its frame (``SeqWriter.frames``: frame header words and message in one
        ``pack_into``, plain stores); then publish the statuses in ring order: release stores
        (``map`` again), the last one seq_cst, which also orders all of them before the ONE
        wake-flag load of the run (the user is kicked only if it sleeps). A ring with no free
        frame makes the producer wait (a short spin, then flag, re-check, bounded wait), never
        drop.
        """
        w = wire.SeqWriter(size)
        frames, msize = w.frames, w.size
        drain = collections.deque(maxlen=0).extend  # runs a map() to its end
        stats = self.stats
        seq, end = start, start + count
        while seq < end:
            run_end = end
            if big_every:
                k = seq - start
                big_seq = seq + (big_every - 1 - k % big_every)  # the next big message
                if big_seq == seq:
                    if not self._stream_one(wire.build_seq_message(seq, big_size)):
                        return
                    stats.stream_sent += 1
                    seq += 1
                    continue
                run_end = min(end, big_seq)
            k = 0
            with self.lock:
                r = self.rx
                if r is None or msize > r.cap:
                    fast = False
                else:
                    fast = True
                    j = self._forward()
                    if j is not None:
                        offs, n, mm, at = r.offs, r.n, self.mm, self.at
                        # raw atomics: one C call per status word (atomics.py)
                        ld, st, acq, rel = at.load32, at.store32, at.ACQUIRE, at.RELEASE
                        nmax = min(run_end - seq, n, STREAM_RUN)
                        # the frames from the cursor on, in ring order (at most n of them)
                        ahead = offs[j:j + nmax]
                        if len(ahead) < nmax:
                            ahead += offs[:nmax - len(ahead)]
                        # acquire loads of the frames ahead (map: one C call each, no bytecode
                        # between them); the run is the UNUSED prefix, never a frame not seen UNUSED
                        sts = list(map(ld, ahead, repeat(acq, nmax)))
                        if sts.count(UNUSED) == nmax:
                            k = nmax
                        else:
                            while sts[k] == UNUSED:
                                k += 1
                        if k:
                            claimed = ahead[:k] if k < nmax else ahead
                            frames(mm, claimed, seq)
                            if k > 1:
                                drain(map(st, claimed[:k - 1], repeat(VALID, k - 1), repeat(rel, k - 1)))
                            st(claimed[k - 1], VALID, at.SEQ_CST)
                            r.head = (j + k) % n
                            stats.ring_published += k
                            stats.stream_sent += k
            if k:
                self.wake_user()
                seq += k
            elif not fast:  # no ring (or frames too small): one message the slow way
                if not self._stream_one(wire.build_seq_message(seq, size)):
                    return
                stats.stream_sent += 1
                seq += 1
            else:
                stats.stream_waits += 1
                if not self.wait_space():
                    return

    def _stream_copy(self, count: int, size: int, batch: int, start: int) -> None:
        """Plain messages for recvmsg, ``batch`` messages per datagram (the copy baselines). The
        messages are packed straight into one reused datagram buffer (no per-message
        allocation, same generator as the ring), sent with one blocking send per datagram."""
        w = wire.SeqWriter(size)
        messages, msize = w.messages, w.size
        head = 8  # wire header (kind, op, no JSON) + generation
        buf = bytearray(head + batch * msize)
        mv = memoryview(buf)
        wire_hdr = struct.Struct("=BBHI")
        seq, end = start, start + count
        try:
            while seq < end and not self.closing.is_set():
                k = min(batch, end - seq)
                p = messages(buf, head, seq, k)
                wire_hdr.pack_into(buf, 0, wire.DATA, 0, 0, self.gen)
                self.pushed += 1
                self.ctl.store64(wire.CTL_PUSHED, self.pushed)
                # a blocking sender waits for room in the receive queue (backpressure)
                if not self.send_raw(mv[:p]):
                    return
                seq += k
                self.stats.stream_sent += k
        finally:
            mv.release()

    def _service_queue(self, count: int, size: int, maxlen: int) -> None:
        try:
            payload_len = max(0, size)
            for _ in range(count):
                while True:
                    if self.closing.is_set():
                        return
                    with self.queue_lock:
                        q = self.queue
                        assert q is not None
                        if len(q) < maxlen:
                            # ONE lock: claim the frame, assign the id, build and publish, enqueue
                            pid = (self.queue_id + 1) & 0xFFFFFFFF
                            msg = nl.build_queue_packet(pid, bytes((pid & 0xFF,)) * payload_len, portid=self.portid)
                            if not self.fits(len(msg)):
                                self.queue_id = pid
                                q[pid] = 1
                                self.sendskb_plain(msg)
                                break
                            j = self.alloc(len(msg), overrun=False)
                            if j is not None:
                                self.queue_id = pid
                                q[pid] = 1
                                self.publish(j, msg)
                                break
                            full = "ring"
                        else:
                            full = "queue"
                            self.verdicted.clear()
                    if full == "ring":
                        self.wait_space()
                    elif not self.verdicted.wait(self.cfg.wait_timeout):
                        with self.queue_lock:
                            still = len(self.queue) >= maxlen  # type: ignore[arg-type]
                        if still and not self.closing.is_set():
                            self.stats.kernel_wait_timeouts += 1
                self.stats.queue_sent += 1
        finally:
            self.stats.queue_done = True

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=self._guard, args=(target, *args), daemon=True)
        self.threads.append(t)
        t.start()

    def _guard(self, target: Any, *args: Any) -> None:
        try:
            target(*args)
        except Exception:
            self.server.log(f"socket {self.portid}: service failed\n{traceback.format_exc()}")

    # ---- calls ----------------------------------------------------------------------------------------
    def handle(self, op: str, args: dict, blob: bytes) -> dict:
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            raise NetlinkError("ENOSYS", f"unknown call {op!r}")
        return fn(args, blob)

    def op_setsockopt(self, args: dict, blob: bytes) -> dict:
        level, option = _int(args, "level", SOL_NETLINK), _int(args, "option")
        if level != SOL_NETLINK:
            raise NetlinkError("ENOPROTOOPT", f"level {level} is not SOL_NETLINK")
        if option in (NETLINK_RX_RING, NETLINK_TX_RING):
            self.set_ring(option == NETLINK_TX_RING, blob)
            return {"gen": self.gen}
        val = _U32.unpack_from(blob, 0)[0] if len(blob) >= 4 else 0
        if option == NETLINK_NO_ENOBUFS:
            with self.lock:
                self.no_enobufs = bool(val)
                if val:
                    self.congested = False
        elif option == NETLINK_CAP_ACK:
            self.cap_ack = bool(val)
        elif option in (NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP):
            if not val or val > nl.RTNLGRP_MAX:
                raise NetlinkError("EINVAL", f"multicast group {val} is not 1..{nl.RTNLGRP_MAX}")
            (self.groups.add if option == NETLINK_ADD_MEMBERSHIP else self.groups.discard)(val)
        elif option in (3, 4, 8):
            pass  # PKTINFO, BROADCAST_ERROR, LISTEN_ALL_NSID: no effect on the rings
        else:
            raise NetlinkError("ENOPROTOOPT", f"SOL_NETLINK option {option} is not supported")
        return {}

    def set_ring(self, tx: bool, optval: bytes) -> None:
        """``netlink_set_ring`` in the kernel's order: optlen, mapped, pending, exists, geometry."""
        name = "TX" if tx else "RX"
        req = RingRequest.unpack(optval)  # optlen < 16: EINVAL
        with self.lock, self.tx_lock:
            ring = self.tx if tx else self.rx
            # a paused sendmsg holds a TX message in flight, like a pending skb
            pending = (ring.pending if ring is not None else 0) or (tx and self.walk_paused)
            geom = check_ring_change(name, req, mapped=self.mapped, pending=pending, exists=ring is not None,
                                     page_size=self.cfg.page_size, memory_limit=self.cfg.memory_limit)
            rx_g = self.rx.geom if self.rx else None
            tx_g = self.tx.geom if self.tx else None
            if tx:
                self._rebuild(rx_g, geom, keep_rx=True, keep_tx=False)
            else:
                self._rebuild(geom, tx_g, keep_rx=False, keep_tx=True)
                # purge the receive queue
                self.purged = self.pushed - self.ctl.load64(wire.CTL_CONSUMED)
                self.ctl.store64(wire.CTL_PURGED, self.purged)
                self.gen += 1
                self.ctl.store_sc(wire.CTL_GEN, self.gen)
                self.congested = self.congested  # purging does not wake (rcv_wake runs in recvmsg/poll)

    def _rebuild(self, rx_g: RingGeometry | None, tx_g: RingGeometry | None, *, keep_rx: bool, keep_tx: bool) -> None:
        """A new memfd laid out as the single mapping (RX, then TX); surviving rings keep bytes."""
        layout = MappingLayout(rx_g, tx_g)
        old_mm, old_at, old_fd = self.mm, self.at, self.memfd
        old = {"rx": self.rx, "tx": self.tx}
        new_mm = new_fd = new_at = None
        if layout.size:
            new_fd = os.memfd_create("nlmmap-rings", os.MFD_CLOEXEC)
            os.ftruncate(new_fd, layout.size)
            new_mm = mmap.mmap(new_fd, layout.size)
        new_rx = _Ring(rx_g, layout.rx_base) if rx_g else None
        new_tx = _Ring(tx_g, layout.tx_base) if tx_g else None
        for name, ring, keep in (("rx", new_rx, keep_rx), ("tx", new_tx, keep_tx)):
            o = old[name]
            if keep and ring is not None and o is not None and old_mm is not None and new_mm is not None:
                new_mm[ring.base:ring.base + ring.geom.size] = old_mm[o.base:o.base + o.geom.size]
                ring.head, ring.pending = o.head, o.pending
        if new_mm is not None:
            new_at = open_atomics(new_mm, self.cfg.atomics)
        self.mm, self.at, self.memfd, self.rx, self.tx = new_mm, new_at, new_fd, new_rx, new_tx
        if old_at is not None:
            old_at.close()
        if old_mm is not None:
            old_mm.close()
        if old_fd is not None:
            os.close(old_fd)

    def layout(self) -> MappingLayout:
        return MappingLayout(self.rx.geom if self.rx else None, self.tx.geom if self.tx else None)

    def op_mmap(self, args: dict, blob: bytes) -> dict:
        with self.lock:
            lay = self.layout()
            check_mmap_request(lay, _int(args, "length"), _int(args, "offset", 0), page_size=self.cfg.page_size)
            self.mapped += 1
            fd = self.memfd
            self.reply({"ok": True, "size": lay.size, "rx_base": lay.rx_base, "tx_base": lay.tx_base}, fds=[fd])
        return {"__sent__": True}

    def op_munmap(self, args: dict, blob: bytes) -> dict:
        with self.lock:
            if self.mapped == 0:
                raise NetlinkError("EINVAL", "munmap: the socket is not mapped")
            self.mapped -= 1
        return {}

    def op_sendmsg(self, args: dict, blob: bytes) -> dict:
        to = args.get("to", "kernel")
        if to not in ("kernel", "peer"):
            raise NetlinkError("EINVAL", f"destination must be 'kernel' or 'peer', got {to!r}")
        if args.get("kick") and self.tx is not None:
            if self.walk_paused:
                return {"bytes": 0}  # the cursor frame is being processed by the paused call
            return self.run_walk(self.tx_walk(to, bool(args.get("pause"))))
        if len(blob) > self.cfg.sndbuf - 32:
            raise NetlinkError("EMSGSIZE", f"message of {len(blob)} bytes > sndbuf - 32")
        return {"bytes": self.from_user(blob, to)}

    def op_resume(self, args: dict, blob: bytes) -> dict:
        token = _int(args, "token")
        gen = self.paused.pop(token, None)
        if gen is None:
            raise NetlinkError("EINVAL", f"no paused sendmsg with token {token}")
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return {"bytes": stop.value}

    def op_poll(self, args: dict, blob: bytes) -> dict:
        with self.lock:
            if self.rx is not None:
                while self.dump is not None and self.dump_space():
                    if self.dump_continue():
                        break
                if self.rq_len() == 0:
                    self.congested = False
            mask = ["POLLOUT"]
            if self.rq_len() >= 1 or (self.rx is not None and
                                      any(self.status(self.rx, i) == VALID for i in range(self.rx.n))):
                mask.append("POLLIN")
            if self.err_pending():
                mask.append("POLLERR")
        return {"revents": mask}

    def op_released(self, args: dict, blob: bytes) -> dict:
        """NOTE from the user: frames were released while the kernel waited."""
        self.released.set()
        if self.dump is not None:
            self.dump_pump()
        return {}

    def op_deliver(self, args: dict, blob: bytes) -> dict:
        path, group = args.get("path", "copy"), _int(args, "group", 0)
        if path == "ring":
            if group:
                raise NetlinkError("EINVAL", "ring-path deliveries are unicast (group must be 0)")
            return {"outcome": self.kernel_send(blob)}
        if path != "copy":
            raise NetlinkError("EINVAL", f"path must be 'ring' or 'copy', got {path!r}")
        if group:
            with self.lock:
                if self.is_congested():
                    self.overrun()
                    return {"outcome": "dropped"}
                return {"outcome": self.sendskb_plain(blob, group, self.cfg.peer_pid)}
        return {"outcome": self.unicast_plain(blob, from_kernel=False, pid=self.cfg.peer_pid)}

    def op_received(self, args: dict, blob: bytes) -> dict:
        out, self.peer_inbox = self.peer_inbox, []
        return {"messages": [m.hex() for m in out]}

    def op_service(self, args: dict, blob: bytes) -> dict:
        name = args.get("name")
        if name == "echo":
            self.echo = bool(args.get("on", True))
        elif name == "sink":
            self.sink = bool(args.get("on", True))
            self.stats.sink_next = _int(args, "start", 0)
        elif name == "dump":
            t, count, size = _int(args, "type"), _int(args, "count"), _int(args, "size")
            limit = nl.nlmsg_goodsize(self.cfg.page_size) - nl.NLMSG_HDRLEN - 4
            if not (nl.NLMSG_MIN_TYPE <= t <= nl.RTM_MAX) or nl.nlmsg_align(nl.NLMSG_HDRLEN + size) > limit:
                raise NetlinkError("EINVAL", f"dump type {t}: messages of {size} bytes do not fit NLMSG_GOODSIZE")
            self.dumps[t] = (count, size)
        elif name == "stream":
            mode = args.get("mode", "ring")
            if mode not in ("ring", "copy"):
                raise NetlinkError("EINVAL", f"stream mode must be ring or copy, got {mode!r}")
            self.stats.stream_done = False
            self._spawn(self._service_stream, _int(args, "count"), _int(args, "size", 64), mode,
                        max(1, _int(args, "batch", 1)), _int(args, "start", 0), _int(args, "big_every", 0),
                        _int(args, "big_size", 0))
        elif name == "queue":
            if self.rx is None:
                raise NetlinkError("EINVAL", "the queue service needs an RX ring")
            if self.queue is None:
                self.queue = collections.OrderedDict()
            self.stats.queue_done = False
            self._spawn(self._service_queue, _int(args, "count"), _int(args, "size", 64),
                        max(1, _int(args, "maxlen", 1024)))
        else:
            raise NetlinkError("EINVAL", f"unknown service {name!r} (stream, echo, sink, dump, queue)")
        return {}

    def op_stats(self, args: dict, blob: bytes) -> dict:
        out = dict(self.stats.__dict__)
        out.pop("extra", None)
        out.update(drops=self.drops, rq_len=self.rq_len(), portid=self.portid,
                   queued=len(self.queue) if self.queue is not None else 0,
                   rx_head=self.rx.head if self.rx else None, tx_head=self.tx.head if self.tx else None)
        if args.get("global"):
            out["server"] = self.server.global_stats()
        return out

    def op_close(self, args: dict, blob: bytes) -> dict:
        self.reply({"ok": True})
        self.shutdown()
        return {"__sent__": True}

    # ---- life ------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Serve this socket's calls until the user closes it or goes away."""
        try:
            self.send(wire.HELLO, 0, {"portid": self.portid, "pid": os.getpid(), "page_size": self.cfg.page_size,
                                      "atomics": self.ctl.name}, fds=[self.ctl_fd])
            while not self.dead:
                try:
                    data, fds, _, _ = socket.recv_fds(self.conn, wire.MAX_DATAGRAM, 4)
                except OSError:
                    break
                for fd in fds:  # the user has no business sending us descriptors
                    os.close(fd)
                if not data:
                    break
                try:
                    kind, op, args, blob = wire.decode(data)
                except NetlinkError as e:
                    self.reply(wire.error_reply(e))
                    continue
                if kind == wire.NOTE:
                    self._call(op, args, blob, answer=False)
                elif kind == wire.REQ:
                    self._call(op, args, blob, answer=True)
        finally:
            self.shutdown()

    def _call(self, op: str, args: dict, blob: bytes, *, answer: bool) -> None:
        try:
            res = self.handle(op, args, blob)
        except NetlinkError as e:
            if answer:
                self.reply(wire.error_reply(e))
            return
        except Exception as e:  # a bug: report it, keep serving
            self.server.log(f"socket {self.portid}: {op} failed\n{traceback.format_exc()}")
            if answer:
                self.reply({"ok": False, "errno": "EIO", "message": f"{op}: {type(e).__name__}: {e}"})
            return
        if answer and not res.get("__sent__"):
            res = dict(res)
            res["ok"] = True
            self.reply(res)

    def shutdown(self) -> None:
        """Reclaim everything: stop services, count what the user never took, free memory."""
        with self.lock:
            if self.dead:
                return
            self.dead = True
        self.closing.set()
        self.released.set()
        self.verdicted.set()
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            if t is not threading.current_thread():
                t.join(5)
        with self.lock, self.tx_lock:
            undelivered = self.rq_len()
            if self.rx is not None and self.at is not None:
                undelivered += sum(1 for i in range(self.rx.n) if self.status(self.rx, i) in (VALID, COPY, SKIP))
            self.stats.undelivered_at_close = undelivered
            self.server.retire(self)
            self.paused.clear()
            self._rebuild(None, None, keep_rx=False, keep_tx=False)
            self.ctl.close()
            self.ctl_mm.close()
            os.close(self.ctl_fd)
        self.conn.close()


_VERDICT_TYPES = frozenset({(nl.NFNL_SUBSYS_QUEUE << 8) | nl.NFQNL_MSG_VERDICT,
                            (nl.NFNL_SUBSYS_QUEUE << 8) | nl.NFQNL_MSG_VERDICT_BATCH})


def _int(args: dict, name: str, default: int | None = None) -> int:
    v = args.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise NetlinkError("EINVAL", f"argument {name!r} must be a non-negative integer, got {v!r}")
    return v


class KernelServer:
    """Accepts connections on a Unix socket; one :class:`KSock` (and thread) per connection."""

    def __init__(self, path: str, config: KernelConfig | None = None, *, log: Any = None):
        self.path = path
        self.config = config or KernelConfig()
        self._log = log if log is not None else sys.stderr
        self._lock = threading.Lock()
        self._next_portid = 1
        self.live: dict[int, KSock] = {}
        self.closed_sockets = 0
        self.totals: collections.Counter[str] = collections.Counter()
        self.retired: collections.OrderedDict[int, dict[str, Any]] = collections.OrderedDict()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(64)
        self._stop = False

    def log(self, text: str) -> None:
        with contextlib.suppress(Exception):
            self._log.write(text.rstrip("\n") + "\n")
            self._log.flush()

    def retire(self, ks: KSock) -> None:
        with self._lock:
            self.live.pop(ks.portid, None)
            self.closed_sockets += 1
            rec = dict(ks.stats.__dict__)
            rec.pop("extra", None)
            rec["drops"] = ks.drops
            self.retired[ks.portid] = rec
            while len(self.retired) > 1000:
                self.retired.popitem(last=False)
            for k in ("dropped", "undelivered_at_close", "send_failures", "kernel_wait_timeouts", "tx_rejected",
                      "ring_published", "copy_queued", "tx_frames"):
                self.totals[k] += getattr(ks.stats, k)

    def global_stats(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self.totals)
            out["live_sockets"] = len(self.live)
            out["closed_sockets"] = self.closed_sockets
            out["retired"] = {str(p): dict(r) for p, r in self.retired.items()}
        return out

    def serve_forever(self) -> None:
        """Accept until :meth:`stop`."""
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                if self._stop:
                    break
                continue
            bufsize = max(self.config.sndbuf * 2, 4 << 20)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
                secs = self.config.send_timeout
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                                _SO_SNDTIMEO.pack(int(secs), int((secs % 1) * 1e6)))
            with self._lock:
                portid = self._next_portid
                self._next_portid += 1
            try:
                ks = KSock(self, conn, portid)
            except Exception:
                self.log(f"cannot set up a socket\n{traceback.format_exc()}")
                conn.close()
                continue
            with self._lock:
                self.live[portid] = ks
            threading.Thread(target=ks.run, name=f"nlsock-{portid}", daemon=True).start()

    def stop(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for ks in list(self.live.values()):
            ks.shutdown()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class KernelProcess:
    """Start ``python -m nlmmap.impl.kernel`` in its own process (a context manager)."""

    def __init__(self, path: str | None = None, *, args: list[str] | None = None):
        self._tmp = None
        if path is None:
            self._tmp = tempfile.mkdtemp(prefix="nlmmap-")
            path = os.path.join(self._tmp, "kernel.sock")
        self.path = path
        cmd = [sys.executable, "-m", "nlmmap.impl.kernel", "--socket", path, "--exit-with-parent", *(args or [])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline() if self.proc.stdout else b""
        if not line.startswith(b"ready"):
            self.proc.kill()
            raise RuntimeError(f"kernel side did not start: {line!r}")

    def __enter__(self) -> KernelProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._tmp:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            with contextlib.suppress(OSError):
                os.rmdir(self._tmp)


def _exit_with_parent() -> None:
    """PR_SET_PDEATHSIG: the kernel side goes when the process that started it goes."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the kernel side until SIGTERM/SIGINT. Prints ``ready PATH`` once listening."""
    ap = argparse.ArgumentParser(prog="python -m nlmmap.impl.kernel", description=__doc__.split("\n")[0])
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on")
    ap.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    ap.add_argument("--atomics", default="auto", help="atomics backend: auto, atomicshm, tso")
    ap.add_argument("--wait-timeout", type=float, default=1.0, help="bounded wait for free frames (counted)")
    ap.add_argument("--wait-spin", type=int, default=KernelConfig.wait_spin,
                    help="free-frame checks before a waiting producer sleeps")
    ap.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process exits")
    ap.add_argument("--flaw-tx-validate-in-place", action="store_true",
                    help="the historical 3.10 TOCTOU flaw, for tests that must catch it (never use)")
    args = ap.parse_args(argv)
    if args.exit_with_parent:
        _exit_with_parent()
    cfg = KernelConfig(page_size=args.page_size, atomics=args.atomics, wait_timeout=args.wait_timeout,
                       wait_spin=max(0, args.wait_spin),
                       tx_validate_in_place=args.flaw_tx_validate_in_place)
    server = KernelServer(args.socket, cfg)

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    sys.stdout.write(f"ready {args.socket}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
