"""RX rows: the ring against the copy path, message by message, and the physical bound.

Every variant moves the same sequence-numbered messages (``wire.SeqWriter`` on the kernel side,
the same generator for the ring and the copy baselines) from the kernel-side process to this one,
and does the same work per message: read its sequence number and check that it follows the
previous one (a miss, a duplicate or a reorder is a sequence error; checksums are the tests'
business, ``tests/impl/test_impl_throughput.py``). Variants, per message size:

- ``ring_runs``: the frame-level reader, :meth:`RingSocket.message_runs` (offsets of a run's
  messages in the mapping), the counterpart of the copy side's ``recv_plain_into``;
- ``ring_iter``: the pythonic iterator :meth:`RingSocket.messages` (a memoryview per message);
- ``copy_1``: one ``recv`` per message (one datagram each) on a socket without rings;
- ``copy_25``: the best batched copy, 25 messages per datagram, read with ``recv_plain_into``.

The ring's geometry is sized for the message (:func:`ring_for`): frames of the smallest power of
two that holds it (at least 128 bytes, so that no two frames share a cache line), and about the
same memory for every size. ``memcpy`` rows measure a single core copying the same bytes.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from nlmmap.impl.client import RingSocket
from nlmmap.spec.abi import NL_MMAP_HDRLEN, RingRequest

from .harness import Sample

__all__ = ["ring_for", "ring_rx", "copy_rx", "memcpy_rate", "SIZES", "TIMEOUT"]

SIZES = (64, 256, 1500, 4096)
#: Longest a reader waits for the next message before a run is called hung.
TIMEOUT = 30.0
RING_BYTES = 4 << 20  # memory of one RX ring, whatever the message size: the copy path's socket buffer
_Q = struct.Struct("=Q")
_LEN = struct.Struct("=I")


def ring_for(size: int, ring_bytes: int = RING_BYTES) -> RingRequest:
    """An RX ring for ``size``-byte messages: frames of the smallest power of two >= size + 24
    (>= 128), blocks of >= 16 KiB, about ``ring_bytes`` of frames (at least 8)."""
    fs = max(128, 1 << (size + NL_MMAP_HDRLEN - 1).bit_length())
    block = max(fs, 16384)
    per_block = block // fs
    blocks = max(1, ring_bytes // block, -(-8 // per_block))
    return RingRequest(block, blocks, fs, blocks * per_block)


def _counters(s: RingSocket, sample: Sample) -> Sample:
    st = s.stats()
    sample.poll_timeouts += s.poll_timeouts + st["wait_timeouts"]
    sample.lost_wakeups += s.lost_wakeups + st["lost_wakeups"]
    sample.extra.update(reader_sleeps=s.sleeps, producer_waits=st["stream_waits"], drops=st["drops"])
    return sample


def ring_rx(path: str, n: int, size: int, *, runs: bool = True, ring_bytes: int = RING_BYTES) -> Sample:
    """Messages/s through the RX ring, read frame by frame (``runs``) or with ``messages()``."""
    with RingSocket(path) as s:
        s.set_rings(rx=ring_for(size, ring_bytes))
        s.mmap()
        s.service("stream", count=n, size=size)
        unpack = _Q.unpack_from
        nxt = bad = got = 0
        t = time.perf_counter()
        if runs:
            for buf, offs in s.message_runs(limit=n, timeout=TIMEOUT):
                for off in offs:
                    seq = unpack(buf, off + 16)[0]
                    if seq != nxt:
                        bad += 1
                    nxt = seq + 1
                got += len(offs)
        else:
            for m in s.messages(limit=n, timeout=TIMEOUT):
                seq = unpack(m, 16)[0]
                if seq != nxt:
                    bad += 1
                nxt = seq + 1
                got += 1
        dt = time.perf_counter() - t
        return _counters(s, Sample(got / dt, got, bad + abs(n - got)))


def copy_rx(path: str, n: int, size: int, batch: int) -> Sample:
    """Messages/s through plain ``recv`` of datagrams of ``batch`` messages (no rings)."""
    with RingSocket(path) as s:
        s.sock.settimeout(TIMEOUT)
        s.service("stream", count=n, size=size, mode="copy", batch=batch)
        buf = bytearray(max(1 << 16, 2 * batch * (size + 64)))
        unpack, hdr = _Q.unpack_from, _LEN.unpack_from
        nxt = bad = got = 0
        t = time.perf_counter()
        try:
            while got < n:
                mv = s.recv_plain_into(buf)
                pos, total = 0, len(mv)
                while pos < total:
                    ln = hdr(mv, pos)[0]
                    seq = unpack(mv, pos + 16)[0]
                    if seq != nxt:
                        bad += 1
                    nxt = seq + 1
                    pos += (ln + 3) & ~3
                    got += 1
                mv.release()
        except (TimeoutError, OSError):
            pass  # counted below as missing messages
        dt = time.perf_counter() - t
        s.sock.settimeout(None)
        return _counters(s, Sample(got / dt, got, bad + abs(n - got)))


def memcpy_rate(nbytes: int, *, total: int, rounds: int = 5) -> Sample:
    """Bytes/s of one core copying a buffer of ``nbytes`` into another (already touched, so that
    page faults are not counted) until ``total`` bytes were copied; the best of ``rounds``."""
    src = bytearray(b"\x5a") * nbytes
    dst = bytearray(nbytes)
    dst[:] = src
    reps = max(1, total // nbytes)
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            dst[:] = src
        best = max(best, reps * nbytes / (time.perf_counter() - t))
    return Sample(best, 0)


def variants(path: str, size: int, n: int, n_slow: int, ring_bytes: int = RING_BYTES) -> dict[str, Any]:
    """The RX variants at one message size (``n_slow`` messages for one recv per message)."""
    return {
        "ring_runs": lambda: ring_rx(path, n, size, runs=True, ring_bytes=ring_bytes),
        "ring_iter": lambda: ring_rx(path, n, size, runs=False, ring_bytes=ring_bytes),
        "copy_25": lambda: copy_rx(path, n, size, 25),
        "copy_1": lambda: copy_rx(path, n_slow, size, 1),
    }
