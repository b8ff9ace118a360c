"""The ``stream`` service: N sequence-numbered messages to the user, as fast as the ring allows.

Not a kernel subsystem but this implementation's producer for throughput tests and benchmarks:
it waits for free frames instead of dropping. ``ring`` mode claims, fills and publishes runs of
frames (the shared-memory fast path, :meth:`StreamMixin.stream_run`); a message too big for a
frame goes through the COPY path; ``copy`` mode sends plain messages, ``batch`` per datagram (the
baselines). Both modes generate their messages with the same :class:`~nlmmap.impl.wire.SeqWriter`.
"""

from __future__ import annotations

import collections
import socket
import struct
from itertools import repeat, takewhile
from typing import Any

from nlmmap.spec.abi import Status

from . import wire
from .sockstate import SockState

__all__ = ["StreamMixin", "STREAM_RUN"]

UNUSED, VALID = int(Status.UNUSED), int(Status.VALID)
#: Most frames the stream producer claims, fills and publishes in one run (one lock, one SKIP
#: step of the spec, one wake check); fewer on small rings (half the ring). Longer runs amortise
#: the run's fixed cost (a few microseconds: the spec's SKIP step alone is ~2 us).
STREAM_RUN = 256
_WIRE_DATA = struct.Struct("=BBHI")  # wire header (kind, op, no JSON) + receive-queue generation


class StreamMixin(SockState):
    """The stream producer of a :class:`~nlmmap.impl.ksock.KSock`."""

    # RingsMixin / ServicesMixin / KSock
    forward_ring: Any
    alloc: Any
    publish: Any
    sendskb_plain: Any
    cursor_free: Any
    wait_space: Any
    begin_publish: Any
    end_publish: Any
    status: Any
    service_waiting: Any

    def stream(self, count: int, size: int, mode: str, batch: int, start: int,
               big_every: int = 0, big_size: int = 0) -> None:
        """The service thread's body (``stream_done`` is set when it ends)."""
        try:
            if mode == "ring":
                self._stream_ring(count, size, start, big_every, big_size)
            else:
                self._stream_copy(count, size, batch, start)
        finally:
            self.stats.stream_done = True

    def _copy_one(self, msg: bytes) -> bool:
        """A plain message through the COPY path if the cursor frame is free (no overrun)."""
        with self.lock:
            if self.rx is not None and not self.cursor_free():
                return False
            self.sendskb_plain(msg)
            return True

    def _stream_one(self, msg: bytes) -> bool:
        """One stream message the slow way (a frame of its own, or the COPY path when it does
        not fit a frame); waits for space instead of dropping. False if the socket goes away."""
        if self.rx is None or len(msg) > self.rx.cap:  # COPY path: wait for the cursor frame itself
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
        """Runs of frames (:meth:`stream_run`); every ``big_every``-th message is ``big_size``
        bytes (the COPY path when a frame cannot hold it)."""
        w = wire.SeqWriter(size)
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
            k = self.stream_run(w, seq, run_end - seq)
            if k:
                seq += k
            elif k is None:  # no ring (or frames too small): one message the slow way
                if not self._stream_one(wire.build_seq_message(seq, size)):
                    return
                stats.stream_sent += 1
                seq += 1
            else:
                stats.stream_waits += 1
                if not self.wait_space():
                    return

    def stream_run(self, w: wire.SeqWriter, seq: int, count: int) -> int | None:
        """The fast path: publish messages ``seq``, ... in the frames from the cursor on; returns
        how many (0: no free frame; None: no ring, or frames too small for the messages).

        Under the receive-queue lock (held for the whole run, so no other producer can move the
        cursor or reuse a frame meanwhile, and no RESERVED marking is needed): step over SKIP
        frames at the cursor (``forward_ring``), then take every consecutive frame whose status,
        read with an acquire load, is UNUSED (up to ``STREAM_RUN`` frames; never one it did not
        see UNUSED; the loads are issued by ``map``, one C call per status word); write each
        message straight into its frame (plain stores: ``SeqWriter.frame_run``, one copy of a
        template per 256 frames and three strided word writes, when the ring's frames are back to
        back; that copy also rewrites the status words of claimed frames with the UNUSED they were
        seen holding. Else ``SeqWriter.frames``, one ``pack_into`` per frame); then publish the
        statuses in ring order: release stores
        (``map`` again), the last one seq_cst, which also orders all of them before the ONE
        wake-flag load of the run (``begin_publish``/``end_publish`` around the stores).
        """
        stats = self.stats
        with self.lock:
            r = self.rx
            if r is None or w.size > r.cap:
                return None
            j = self.forward_ring()
            if j is None:
                return 0
            offs, n, mm, at = r.offs, r.n, self.mm, self.at
            # raw atomics: one C call per status word (atomics.py)
            ld, st, acq, rel = at.load32, at.store32, at.ACQUIRE, at.RELEASE
            nmax = min(count, max(1, n // 2), STREAM_RUN)
            # the frames from the cursor on, in ring order (at most n of them)
            ahead = offs[j:j + nmax]
            if len(ahead) < nmax:
                ahead += offs[:nmax - len(ahead)]
            # acquire loads of the frames ahead (map: one C call each, no bytecode between
            # them); the run is the UNUSED prefix (counted at C speed), never a frame not seen
            # UNUSED
            sts = list(map(ld, ahead, repeat(acq, nmax)))
            k = nmax if sts.count(UNUSED) == nmax else len(list(takewhile(_IS_UNUSED, sts)))
            if k:
                claimed = ahead[:k] if k < nmax else ahead
                if r.stride:  # frames back to back: one copy per 256 (SeqWriter.frame_run)
                    b = min(k, n - j)  # the frames before the ring's end, then those after it
                    w.frame_run(mm, claimed[0], r.stride, b, seq)
                    if k > b:
                        w.frame_run(mm, claimed[b], r.stride, k - b, seq + b)
                else:
                    w.frames(mm, claimed, seq)
                self.begin_publish()
                if k > 1:
                    _drain(map(st, claimed[:k - 1], repeat(VALID, k - 1), repeat(rel, k - 1)))
                st(claimed[k - 1], VALID, at.SEQ_CST)
                r.head = (j + k) % n
                stats.ring_published += k
                stats.stream_sent += k
                self.end_publish()
            return k

    def _stream_copy(self, count: int, size: int, batch: int, start: int) -> None:
        """Plain messages for recvmsg, ``batch`` messages per datagram (the copy baselines). The
        messages are packed straight into one reused datagram buffer (no per-message
        allocation, same generator as the ring), one send per datagram; a full receive queue
        blocks the sender (backpressure), a wait the ``settle`` call counts as waiting."""
        w = wire.SeqWriter(size)
        messages, msize = w.messages, w.size
        head = _WIRE_DATA.size
        buf = bytearray(head + batch * msize)
        mv = memoryview(buf)
        seq, end = start, start + count
        try:
            while seq < end and not self.closing.is_set():
                k = min(batch, end - seq)
                p = messages(buf, head, seq, k)
                _WIRE_DATA.pack_into(buf, 0, wire.DATA, 0, 0, self.gen)
                self.pushed += 1
                self.ctl.store64(wire.CTL_PUSHED, self.pushed)
                if not self._send_blocking(mv[:p]):
                    return
                seq += k
                self.stats.stream_sent += k
        finally:
            mv.release()

    def _send_blocking(self, data: Any) -> bool:
        """One datagram to the user; when its receive queue is full, wait (as ``waiting``)."""
        if self.dead:
            return False
        try:
            with self.send_lock:
                try:
                    self.conn.send(data, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    with self.service_waiting():
                        self.conn.send(data)
            return True
        except OSError:
            self.stats.send_failures += 1
            return False


_drain = collections.deque(maxlen=0).extend  # runs a map() to its end
_IS_UNUSED = UNUSED.__eq__
