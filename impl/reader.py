"""The user's RX reader: ONE frame reader under both :meth:`RxReader.messages` (a memoryview per
message) and :meth:`RxReader.message_runs` (message offsets per run of frames), and the reader's
half of the wake-up handshake.

Reading (kernel-protocol.md 6.6, 15): frames are taken in ring order from the reader's cursor, a
run at a time (:meth:`RxReader._rx_run`: one acquire load per status word, all of a run's loads
before any of its headers is read; a frame after one not seen VALID is never taken). Each frame's
``nm_len`` must lie within the frame and each ``nlmsg_len`` be >= 16 and within ``nm_len``; a
VALID frame of length 0 (or a bad ``nm_len``) gives no message and is released. A COPY frame is
paired with the next queued message (recvmsg). Frames are handed back (release stores, the last
seq_cst, then ONE load of the kernel's wait flag) only after the consumer finished reading them.

Sleeping: the reader spins briefly, then sets its wait flag (seq_cst) in the control page,
re-checks the frame (seq_cst loads: the handshake is a Dekker pattern) and only then sleeps in
``poll()`` on the socket, which the kernel side kicks (WAKE) when it publishes and sees the flag.
The sleep is bounded (``poll_timeout``, a defence): each expiry is counted in ``poll_timeouts``;
it is a *lost wake-up* (``lost_wakeups``) only when the awaited frame is ready and, once the
kernel has made the kick decision of every publish it began (``CTL_PUB_DECIDED >=
CTL_PUB_BEGUN``), the flag is still unclaimed: a kernel that is merely late (a stall under load)
is never counted. (A kernel that claims the flag and then never sends the kick looks late, not
lost: only the flag is shared.)
"""

from __future__ import annotations

import collections
import select
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat, takewhile
from typing import Any

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import NL_MMAP_HDRLEN, NM_GROUP_OFFSET, NM_LEN_OFFSET, Status
from nlmmap.spec.errors import NetlinkError

from . import wire

__all__ = ["RxReader", "split_offsets"]

UNUSED, VALID, COPY = int(Status.UNUSED), int(Status.VALID), int(Status.COPY)
_RETRY = object()  # see RxReader._fetch_copy
_LEN = struct.Struct("=I")
#: nm_len and the first nlmsg_len (at NL_MMAP_HDRLEN), read from NM_LEN_OFFSET
_HEAD = struct.Struct(f"=I{NL_MMAP_HDRLEN - NM_GROUP_OFFSET}xI")
_NLMSG_HDRLEN = nl.NLMSG_HDRLEN
#: Most frames in one run of the reader (``messages()`` and ``message_runs()``), and so the most it
#: holds before handing them back; fewer on small rings (a quarter of the ring). A run costs a few
#: microseconds (its loads, the header check, the hand-back with its wake-flag load) whatever its
#: length: 16 frames a run cost ~250 ns a message, 256 cost ~15 ns (docs/performance.md).
_RUN_MAX = 256
#: Runs a ``map()`` to its end at C speed (the stores of a hand-back).
_exhaust = collections.deque(maxlen=0).extend
_IS_VALID = VALID.__eq__


def split_offsets(buf: Any, start: int, total: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of the netlink messages in ``buf[start:start + total]``, as
    ``netlink_rcv_skb`` walks them: 4-aligned, stopping at a header shorter than 16 bytes or
    longer than what is left."""
    pos = 0
    unpack = _LEN.unpack_from
    while total - pos >= _NLMSG_HDRLEN:
        ln = unpack(buf, start + pos)[0]
        if ln < _NLMSG_HDRLEN or ln > total - pos:
            return
        yield start + pos, ln
        pos += nl.nlmsg_align(ln)


#: One run of the reader, a plain tuple (cheapest to build on the hot path):
#: ``(buf, offsets, lengths, length, frames, counts)``: the run's messages as ``offsets`` into
#: ``buf`` (lengths: ``lengths``, or ``length`` each when ``lengths`` is None), the ``frames``
#: (offsets of their status words) to hand back, and ``counts`` (messages per frame; None: one
#: per frame, or no frames at all).
_Run = tuple


class RxReader:
    """The reading half of :class:`~nlmmap.impl.client.RingSocket`."""

    # set by RingSocket
    at: Any
    ctl: Any
    mm: Any
    layout: Any
    _mv: Any
    _u32: Any
    _rx_offs: list[int]
    _rx_uniform: bool
    _rx_full: bool
    _rel_seq: int
    rx_cursor: int
    spin: int
    poll_timeout: float
    sock: Any
    recvmsg: Callable[..., tuple[bytes, bool]]
    _drain: Callable[[], bool]
    _note: Callable[[str], None]
    _rcv_wake: Callable[[], None]
    _rq_len: Callable[[], int]
    _sync_posts: Callable[[], bool]

    # ---- the two ways to read ---------------------------------------------------------------------
    def messages(self, *, timeout: float | None = None, limit: int | None = None,
                 raise_enobufs: bool = False) -> Iterator[memoryview]:
        """Every received netlink message, in ring order, as a zero-copy memoryview valid until
        the next step. COPY frames are paired with recvmsg, empty VALID frames released, ENOBUFS
        counted in ``enobufs`` (or raised). Stops after ``limit`` messages (at the end of a frame)
        or when nothing arrives for ``timeout`` seconds. A frame is handed back once every
        message in it was handed out and its view released; stopping early hands back only the
        frames finished (the frame whose message was given last stays VALID: it is read again)."""
        n = len(self._rx_offs) if self.mm is not None and self.layout is not None and self.layout.rx else 0
        run_max = max(1, min(_RUN_MAX, n // 4))
        left = -1 if limit is None else limit  # messages still wanted (-1: no limit)
        while left:
            run = self._next_run(run_max, left, timeout, raise_enobufs)
            if run is None:
                return
            buf, offs, lens, ln, frames, counts = run
            j = 0  # frames finished (every view of their messages released)
            try:
                if lens is None:  # one message of ``ln`` bytes per frame; ``offs`` is a range
                    o = None
                    try:
                        for o in offs:
                            view = buf[o:o + ln]
                            try:
                                yield view
                            finally:
                                view.release()
                        o = None
                    finally:  # the frames before the one being read when the caller stopped
                        # (counted here, not by an increment per message: ~12 ns of ~190)
                        j = len(offs) if o is None else offs.index(o)
                    if left > 0:
                        left -= j
                else:
                    m = 0
                    for c in counts or (len(offs),):
                        for o, ln in zip(offs[m:m + c], lens[m:m + c], strict=True):
                            view = buf[o:o + ln]
                            try:
                                yield view
                            finally:
                                view.release()
                        m += c
                        j += 1
                        if left > 0:
                            left = max(0, left - c)
                            if not left:
                                break
            finally:
                self._finish_run(frames, j)

    def message_runs(self, *, timeout: float | None = None, limit: int | None = None,
                     raise_enobufs: bool = False, max_run: int | None = None) -> Iterator[tuple[Any, Sequence[int]]]:
        """The frame-level fast path: ``(buf, offsets)`` per run of frames, in ring order.

        ``offsets`` are the starts of the run's netlink messages in ``buf`` (for a run of VALID
        frames, ``buf`` is a memoryview of the whole mapping; for a COPY frame, of the message
        recvmsg returned), checked as :meth:`messages` checks them. A run is handed back only
        when the caller asks for the next one, i.e. after it finished reading it; stopping early
        leaves the current run VALID (it is delivered again by the next read). A run is at most
        ``max_run`` frames (default: a quarter of the ring, at most 256) and never wraps around
        the ring end. ``limit``/``timeout`` as in
        :meth:`messages` (a run may end past ``limit`` only with multi-message frames)."""
        left = -1 if limit is None else limit
        if max_run is None:
            n = len(self._rx_offs) if self.mm is not None and self.layout is not None and self.layout.rx else 0
            max_run = max(1, min(_RUN_MAX, n // 4))
        while left:
            run = self._next_run(max_run, left, timeout, raise_enobufs)
            if run is None:
                return
            buf, offs, _, _, frames, _ = run
            done = 0
            try:
                if offs:
                    yield buf, offs
                done = len(frames)
            finally:
                self._finish_run(frames, done)
            if left > 0:
                left = max(0, left - len(offs))

    # ---- the one reader ---------------------------------------------------------------------------
    def _next_run(self, max_run: int, left: int, timeout: float | None, raise_enobufs: bool) -> _Run | None:
        """The next run from the reader's cursor: VALID frames (at most ``max_run``, and at most
        ``left`` when ``left`` > 0), or a COPY frame with its queued message, or a datagram of a
        ring-less socket; None when nothing arrived within ``timeout``. Waits, and reports a
        pending ENOBUFS, as needed. The caller reads it, then calls :meth:`_finish_run`."""
        if self.mm is None or self.layout is None or self.layout.rx is None:
            while True:
                data = self._fetch_copy(timeout, raise_enobufs)
                if data is not _RETRY:
                    break
            if data is None:
                return None
            dv = memoryview(data)
            pairs = list(split_offsets(dv, 0, len(dv)))
            return dv, [p[0] for p in pairs], [p[1] for p in pairs], 0, [], None
        n = len(self._rx_offs)
        max_run = min(max_run, n)
        hlen = NL_MMAP_HDRLEN
        while True:
            i = self.rx_cursor
            m = min(n - i, max_run)
            if 0 < left < m:
                m = left
            cand, k, state = self._rx_run(i, m)
            if k:
                frames = cand[:k] if k < m else cand
                base = frames[0]
                ln = self._run_len(base, k)
                if ln:  # one message of ``ln`` bytes per frame
                    fs = self.layout.rx.frame_size
                    return self._mv, range(base + hlen, base + hlen + k * fs, fs), None, ln, frames, None
                return self._mixed_run(frames)
            if state == VALID:  # published since the run's loads: take it with the next run
                continue
            if state != COPY:
                if not self._rx_wait(cand[0], timeout, raise_enobufs):
                    return None
                continue
            data = self._fetch_copy(timeout, raise_enobufs)
            if data is None:  # nothing queued within the timeout
                return None
            if data is _RETRY:  # an ENOBUFS was reported (counted): look at the frame again
                continue
            dv = memoryview(data)
            pairs = list(split_offsets(dv, 0, len(dv)))
            return dv, [p[0] for p in pairs], [p[1] for p in pairs], 0, [cand[0]], [len(pairs)]

    def _mixed_run(self, frames: list[int]) -> _Run:
        """A run whose frames are not all one message of one length: each frame's ``nm_len``
        checked against the frame, its messages split (none for an empty or bad frame)."""
        mm, head, hlen = self.mm, _HEAD.unpack_from, NL_MMAP_HDRLEN
        cap = self.layout.rx.payload_capacity
        offs: list[int] = []
        lens: list[int] = []
        counts: list[int] = []
        for o in frames:
            ln, first = head(mm, o + NM_LEN_OFFSET)
            c0 = len(offs)
            if 0 < ln <= cap:
                if first == ln >= _NLMSG_HDRLEN:
                    offs.append(o + hlen)
                    lens.append(ln)
                else:
                    for a, b in split_offsets(mm, o + hlen, ln):
                        offs.append(a)
                        lens.append(b)
            counts.append(len(offs) - c0)
        return self._mv, offs, lens, 0, frames, counts

    def _finish_run(self, frames: list[int], done: int) -> None:
        """Hand back the first ``done`` of a run's ``frames`` (the consumer finished them) and move
        the cursor past them."""
        if done and frames:
            self._give_back(frames[:done] if done < len(frames) else frames)
            i = self.rx_cursor + min(done, len(frames))
            self.rx_cursor = 0 if i == len(self._rx_offs) else i

    def _rx_run(self, i: int, m: int) -> tuple[list[int], int, int]:
        """The next run of VALID RX frames: ``(cand, k, first_status)``, ``cand`` the offsets of
        the ``m`` frames from index ``i`` on (not past the ring end), ``k`` how many of them from
        the first on are VALID. Every frame's status word is read before the caller reads any
        header, with acquire semantics: after a full run, all of them in ONE strided read of the
        u32 words followed by ONE acquire fence (frames back to back; else an acquire load each,
        issued by ``map``: one C call each); a frame after one not seen VALID is never taken.
        After a short run (the reader is at the producer's heels)
        the loads stop at the first frame not VALID (``takewhile``), so that the reader does not
        pull the cache lines of frames the producer is about to write."""
        at = self.at
        cand = self._rx_offs[i:i + m]
        if self._rx_full:
            u32 = self._u32
            if self._rx_uniform:  # the run's status words in one strided read, then ONE acquire fence
                step = self.layout.rx.frame_size >> 2
                w = cand[0] >> 2
                sts = u32[w:w + m * step:step].tolist()
                at.fence(at.ACQUIRE)
            else:
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
        step = self.layout.rx.frame_size >> 2
        w = (base + NM_LEN_OFFSET) >> 2
        lens = u32[w:w + k * step:step].tolist()
        ln = lens[0]
        if (_NLMSG_HDRLEN <= ln <= self.layout.rx.payload_capacity
                and lens.count(ln) == k and lens == u32[w + 5:w + 5 + k * step:step].tolist()):
            return ln
        return 0

    def _give_back(self, done: list[int]) -> None:
        """Release RX frames (all reads of them are finished) in ring order: release stores
        (issued by ``map``), the last one seq_cst so that all of them are ordered before the ONE
        load of the kernel's wait flag (the kernel is told only if it waits); counted for the
        kernel's lost-wake-up rule (``CTL_REL_BEGUN`` before, ``CTL_REL_DECIDED`` after). One
        thread at a time hands frames back (as one thread at a time reads them)."""
        at, ctl = self.at, self.ctl
        k = len(done)
        st, st64, rel = at.store32, ctl.store64r, ctl.RELEASE
        seq = self._rel_seq = self._rel_seq + 1
        st64(wire.CTL_REL_BEGUN, seq, rel)
        if k > 1:
            # one store per word, never a memoryview slice assignment: CPython copies each item
            # of a strided slice with libc memcpy, which for 4 bytes stores the word twice; the
            # kernel side can see the first store, reuse the frame and publish it VALID before
            # the second lands (a preemption between the two), and the second undoes the VALID
            _exhaust(map(st, done[:k - 1], repeat(UNUSED, k - 1), repeat(rel, k - 1)))
        st(done[k - 1], UNUSED, at.SEQ_CST)
        if ctl.load32(wire.CTL_K_WAIT, ctl.SEQ_CST) and ctl.exchange(wire.CTL_K_WAIT, 0):
            self._note("released")
        st64(wire.CTL_REL_DECIDED, seq, rel)

    def _released(self) -> None:
        """After status words were written by other means (``poke``): the kick decision."""
        ctl = self.ctl
        seq = self._rel_seq = self._rel_seq + 1
        ctl.store64(wire.CTL_REL_BEGUN, seq)
        if ctl.load_sc(wire.CTL_K_WAIT) and ctl.exchange(wire.CTL_K_WAIT, 0):
            self._note("released")
        ctl.store64(wire.CTL_REL_DECIDED, seq)

    # ---- errors and COPY frames ---------------------------------------------------------------------
    def _err_pending(self) -> bool:
        return self.ctl.load_acquire(wire.CTL_ERR_RAISED) != self.ctl.load_acquire(wire.CTL_ERR_TAKEN)

    def _take_err(self) -> None:
        self.ctl.store_sc(wire.CTL_ERR_TAKEN, self.ctl.load_acquire(wire.CTL_ERR_RAISED))
        self._rcv_wake()

    def _fetch_copy(self, timeout: float | None, raise_enobufs: bool) -> Any:
        """The next queued message (a COPY frame's, or a ring-less socket's): its bytes; None if
        nothing arrived within ``timeout``; ``_RETRY`` after a pending ENOBUFS was reported (and
        counted in ``enobufs``)."""
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

    # ---- sleeping -----------------------------------------------------------------------------------
    def _rx_wait(self, off: int, timeout: float | None, raise_enobufs: bool) -> bool:
        """The frame at the cursor is neither VALID nor COPY: report a pending ENOBUFS, else
        sleep until it is (wake-up handshake). False when ``timeout`` passed first. Sendmsg calls
        posted without waiting are taken by the kernel side first (their messages may be next)."""
        if self._sync_posts():
            return True
        if self._err_pending():
            self._take_err()
            self.enobufs += 1
            if raise_enobufs:
                raise NetlinkError("ENOBUFS", "messages were lost (ring overrun)")
            return True
        ld, acq, sc = self.at.load32, self.at.ACQUIRE, self.at.SEQ_CST
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._sleep_until(lambda: ld(off, acq) in (VALID, COPY), deadline,
                                 lambda: ld(off, sc) in (VALID, COPY))

    def _kernel_alive(self) -> bool:
        """The kernel side's end of the connection is still open."""
        p = select.poll()
        p.register(self.sock, select.POLLHUP)
        return not any(ev & (select.POLLHUP | select.POLLERR) for _, ev in p.poll(0))

    def _wait_socket(self, timeout: float | None) -> bool:
        """Block until a datagram is waiting on the socket, or ``timeout`` (None: forever)."""
        p = select.poll()
        p.register(self.sock, select.POLLIN)
        return bool(p.poll(None if timeout is None else max(0, int(timeout * 1000))))

    def _sleep_until(self, ready: Callable[[], bool], deadline: float | None, recheck: Callable[[], bool]) -> bool:
        """The reader's half of the wake-up handshake: spin (``ready``: acquire loads), flag, re-check
        (``recheck``: the same test by seq_cst loads, which C11 orders after the seq_cst flag store;
        an acquire load may be satisfied before it, e.g. LDAPR, and lose the wake-up), then sleep in
        bounded slices until a kick (a datagram on the socket) with the flag set. A slice that
        expires with the frame ready ends the wait and is judged (lost or late); one that expires
        with nothing ready sleeps on, the flag still set. False if ``deadline`` passed first."""
        for _ in range(self.spin):
            if ready():
                return True
        ctl = self.ctl
        ctl.store_sc(wire.CTL_RX_WAIT, 1)
        while True:
            if recheck():
                ctl.store_sc(wire.CTL_RX_WAIT, 0)
                return True
            defence = self.poll_timeout
            left = defence if deadline is None else min(defence, deadline - time.monotonic())
            if left <= 0:
                ctl.store_sc(wire.CTL_RX_WAIT, 0)
                return recheck()
            self.sleeps += 1
            if self._wait_socket(left):
                if self._drain():  # the socket is at its end: no kick can come any more
                    ctl.store_sc(wire.CTL_RX_WAIT, 0)
                    raise NetlinkError("ECONNRESET", "the kernel side went away while the reader waited")
                # a kick claimed the flag; anything else (DATA, a stale kick) may have too: re-arm
                # it, and the loop re-checks before sleeping again
                ctl.store_sc(wire.CTL_RX_WAIT, 1)
                continue
            if left >= defence:  # only the defence counts; the caller's own deadline is no stall
                self.poll_timeouts += 1
            if recheck():
                # lost iff, once the kernel decided about every publish it began, the flag is unclaimed
                decided = wire.wait_decided(ctl, wire.CTL_PUB_BEGUN, wire.CTL_PUB_DECIDED, alive=self._kernel_alive)
                if not decided or ctl.load_sc(wire.CTL_RX_WAIT):
                    self.lost_wakeups += 1
                ctl.store_sc(wire.CTL_RX_WAIT, 0)
                return True
