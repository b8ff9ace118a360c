"""Two processes, real shared memory: every message arrives once, in order, intact.

The kernel side runs in its own process (``python -m nlmmap.impl.kernel``); this process is the
user. Every message carries a sequence number and a CRC-32 (``nlmmap.impl.wire``), so a lost,
duplicated, reordered or torn message fails the run. No wake-up may be lost on either side: a
bounded sleep that expired counts as lost only if the awaited frame was ready, and the sleeper's
flag unclaimed, since before the sleep began (a stall under load is no lost wake-up). Readers
wait without a deadline (``timeout=None``): nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import pytest

from nlmmap.impl import wire
from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec.abi import RingRequest
from nlmmap.spec.errors import NetlinkError


@pytest.fixture(scope="module")
def kernel():
    with KernelProcess() as k:
        yield k


def _read_in_order(s: RingSocket, n: int, start: int = 0) -> int:
    expected = start
    for m in s.messages(limit=n):
        seq = wire.check_seq_message(m)  # length, type and checksum
        assert seq == expected, f"message {seq} arrived where {expected} was due"
        expected += 1
    return expected - start


def test_million_messages_through_rx_ring_and_100k_through_tx_ring(kernel):
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(16384, 32, 2048, 256), tx=RingRequest(16384, 16, 2048, 128))
        s.mmap()
        n = 1_000_000
        s.service("stream", count=n, size=64)
        assert _read_in_order(s, n) == n
        s.settle()  # the producer has finished (it may still be setting stream_done when we read the last)
        st = s.stats()
        assert st["stream_done"] and st["stream_sent"] == n
        assert st["drops"] == 0 and st["lost_wakeups"] == 0 and s.lost_wakeups == 0
        with pytest.raises(NetlinkError) as e:  # nothing extra (no duplicate) is queued
            s.recvmsg()
        assert e.value.errno == "EAGAIN"
        assert "POLLIN" not in s.poll()

        m = 100_000
        s.service("sink", start=0)
        for i in range(m):
            s.send(wire.build_seq_message(i, 32 + (i * 7) % 400))
        s.flush()
        st = s.stats()
        assert st["sink_first_error"] == "" and st["sink_errors"] == 0
        assert st["sink_received"] == m and st["sink_next"] == m
        assert st["tx_frames"] == m


def test_mixed_ring_and_copy_path_messages_stay_in_order(kernel):
    """Every 10th message is too big for a frame: COPY frame + recvmsg, interleaved in order."""
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 8, 1024, 32))
        s.mmap()
        n = 20_000
        s.service("stream", count=n, size=100, big_every=10, big_size=3000)
        assert _read_in_order(s, n) == n
        s.settle()
        st = s.stats()
        assert st["copy_queued"] == n // 10 and st["drops"] == 0
        assert st["lost_wakeups"] == 0 and s.lost_wakeups == 0


def test_copy_baseline_without_rings(kernel):
    with RingSocket(kernel.path) as s:
        n = 20_000
        s.service("stream", count=n, size=200, mode="copy", batch=25)
        assert _read_in_order(s, n) == n


def test_ring_read_fails_on_a_corrupted_message(kernel):
    """The checker is able to fail: a byte flipped in a frame is reported."""
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 1, 512, 8))
        s.mmap()
        s.service("stream", count=1, size=64)
        for m in s.messages(limit=1):
            raw = bytearray(m)
            raw[40] ^= 0xFF
            with pytest.raises(NetlinkError, match="checksum"):
                wire.check_seq_message(raw)
