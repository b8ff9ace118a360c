"""The ring fast path: the stream producer claims, fills and publishes runs of frames; the
reader hands frames back in batches. Same bytes, same rules: a frame the kernel did not see
UNUSED is never written, a frame is handed back only after its messages were read."""

from __future__ import annotations

import random
import struct

import pytest

from nlmmap.impl import wire
from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec.abi import RingRequest, Status


@pytest.fixture(scope="module")
def kernel():
    with KernelProcess() as k:
        yield k


@pytest.mark.parametrize("size", [0, 28, 64, 100, 155, 156, 157, 200, 1500, 3000])
def test_seq_writer_writes_the_bytes_of_build_seq_message(size):
    rng = random.Random(size)
    w = wire.SeqWriter(size)
    for seq in [0, 1, 255, 256, 2**32 - 1, 2**64 - 1, 2**64 + 7] + [rng.getrandbits(64) for _ in range(40)]:
        m = wire.build_seq_message(seq, size)
        buf = bytearray(len(m) + 8)
        w.message(buf, 4, seq)
        assert bytes(buf[4:4 + len(m)]) == m
        fr = bytearray(b"\xaa" * (len(m) + 32))
        w.frame(fr, 0, seq)
        assert fr[:4] == b"\xaa" * 4  # the status word is not touched
        assert struct.unpack_from("=5I", fr, 4) == (len(m), 0, 0, 0, 0)
        assert bytes(fr[24:24 + len(m)]) == m


def test_stopping_early_hands_back_finished_frames_only(kernel):
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 4, 512, 32))
        s.mmap()
        s.service("stream", count=10, size=64)
        s.settle()  # all 10 published (the ring has 32 frames)
        assert s.stats()["stream_sent"] == 10
        for k, m in enumerate(s.messages()):
            assert wire.check_seq_message(m) == k
            if k == 4:
                break
        st = [s.status("rx", i) for i in range(10)]
        assert st[:4] == [Status.UNUSED] * 4  # read and handed back
        assert st[4:] == [Status.VALID] * 6  # the one being read when it stopped, and the rest
        assert s.rx_cursor == 4
        assert [wire.check_seq_message(m) for m in s.messages(limit=6)] == list(range(4, 10))
        assert all(s.status("rx", i) == Status.UNUSED for i in range(32))


@pytest.mark.parametrize("size,geometry", [(64, RingRequest(4096, 4, 512, 32)),  # one message per frame
                                           (2000, RingRequest(8192, 2, 3000, 4))])  # gaps: per-frame lengths
def test_no_view_of_messages_outlives_its_frame(kernel, size, geometry):
    """``messages()`` hands out zero-copy views: once a frame is handed back (the kernel may write
    it again), every view of its bytes is released (reading it raises ValueError), at each step
    and at the end."""
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=geometry)
        s.mmap()
        n = 3 * geometry.frame_nr
        s.service("stream", count=n, size=size)
        held: list[tuple[int, memoryview]] = []  # (frame index, view)
        for k, m in enumerate(s.messages(limit=n)):
            assert wire.check_seq_message(m) == k
            held.append((k % geometry.frame_nr, m))
            for j, v in held[:-1]:
                if s.status("rx", j) == Status.UNUSED or j == held[-1][0]:  # handed back, or reused
                    with pytest.raises(ValueError):
                        bytes(v)
        assert len(held) == n
        for _j, v in held:
            with pytest.raises(ValueError):
                bytes(v)


def test_messages_views_follow_each_frames_message_and_mapping(kernel):
    """Every view ``messages()`` hands out has its own message's length while a frame's messages
    change length lap by lap; a view the consumer keeps past its frame is released; after reading,
    munmap closes the mapping (no view of it is left alive), and a new mapping's messages are read
    from the new mapping. (Guarantees a reader that reuses views, tried once, must keep.)"""
    geometry = RingRequest(4096, 2, 512, 16)
    with RingSocket(kernel.path) as s:
        for lap in range(2):
            s.set_rings(rx=geometry)
            s.mmap()
            kept = []
            seq = 0
            for size in (64, 200, 200, 64, 100):  # each a lap of the ring or more
                n = geometry.frame_nr + 3
                s.service("stream", count=n, size=size, start=seq)
                got = []
                for k, m in enumerate(s.messages(limit=n)):
                    assert len(m) == size and wire.check_seq_message(m) == seq + k, (lap, size, k)
                    got.append(id(m))
                    if k == 5:
                        kept.append(m)
                assert len(got) == n
                seq += n
            for m in kept:  # each kept view was released when its frame was handed back
                with pytest.raises(ValueError):
                    bytes(m)
            s.munmap()  # raises BufferError if a view of the mapping were still alive
            s.set_rings(rx=RingRequest(0, 0, 0, 0))


def test_run_stops_at_a_frame_it_did_not_see_unused(kernel):
    """A frame the user (wrongly) holds in the middle of the ring ends the producer's run: it is
    not written until it is UNUSED again, and messages stay in order around it."""
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 2, 512, 16))
        s.mmap()
        off = s.frame_offset("rx", 3)
        s.mm[off + 4:off + 200] = b"\xee" * 196
        s.set_status("rx", 3, Status.RESERVED)
        s.service("stream", count=6, size=64)
        s.settle()  # the producer waits: it saw frame 3 RESERVED
        assert s.stats()["stream_sent"] == 3  # no drop, no overwrite
        assert s.mm[off + 4:off + 200] == b"\xee" * 196
        assert [wire.check_seq_message(m) for m in s.messages(limit=3)] == [0, 1, 2]
        s.settle()
        assert s.stats()["stream_sent"] == 3 and s.mm[off + 4:off + 200] == b"\xee" * 196
        s.set_status("rx", 3, Status.UNUSED)  # tells the waiting kernel side
        assert [wire.check_seq_message(m) for m in s.messages(limit=3)] == [3, 4, 5]
        s.settle()
        st = s.stats()
        assert st["stream_sent"] == 6 and st["drops"] == 0
        assert st["lost_wakeups"] == 0 and s.lost_wakeups == 0


@pytest.mark.parametrize("size", [0, 64, 157, 1500])
def test_seq_writer_batches_write_the_bytes_of_build_seq_message(size):
    """frames()/messages() across the 256-message CRC segments and the u64 wrap."""
    w = wire.SeqWriter(size)
    msize = w.size
    for seq in (0, 250, 2**16 - 3, 2**64 - 5):
        k = 300
        buf = bytearray(msize * k)
        assert w.messages(buf, 0, seq, k) == msize * k
        fs = (msize + 24 + 15) & ~15
        fr = bytearray(b"\xaa" * (fs * k))
        w.frames(fr, [j * fs for j in range(k)], seq)
        for j in range(k):
            m = wire.build_seq_message(seq + j, size)
            assert bytes(buf[j * msize:(j + 1) * msize]) == m
            assert fr[j * fs:j * fs + 4] == b"\xaa" * 4
            assert bytes(fr[j * fs + 24:j * fs + 24 + msize]) == m


@pytest.mark.parametrize("size", [0, 64, 157, 1500])
def test_frame_run_writes_the_frames_that_frames_writes(size):
    """The strided batch (one copy per 256 frames, three u32 columns) against one ``pack_into``
    per frame, across 256-message segments, the u32 and u64 wraps, tight and power-of-two
    strides: the same frame header words and message in every frame; the first frame's status
    word and every byte outside the frames untouched; other status words untouched or UNUSED."""
    w = wire.SeqWriter(size)
    msize = w.size
    for stride in sorted({(msize + 24 + 3) & ~3, 1 << (msize + 23).bit_length()}):
        for seq in (0, 250, 2**16 - 3, 2**32 - 100, 2**40 + 255, 2**64 - 5):
            k, first = 300, 8
            got = bytearray(b"\xaa" * (first + k * stride + 16))
            w.frame_run(got, first, stride, k, seq)
            want = bytearray(got)
            want[:] = b"\xaa" * len(got)
            w.frames(want, [first + j * stride for j in range(k)], seq)
            end = first + (k - 1) * stride + 24 + msize
            assert got[:first + 4] == want[:first + 4] and got[end:] == want[end:]
            for j in range(k):
                o = first + j * stride
                assert got[o + 4:o + 24 + msize] == want[o + 4:o + 24 + msize], (stride, seq, j)
                assert wire.check_seq_message(got[o + 24:o + 24 + msize]) == (seq + j) & (2**64 - 1)
                if j:
                    assert got[o:o + 4] in (b"\xaa" * 4, bytes(4)), (stride, seq, j)


def test_a_run_across_the_ring_end_continues_the_sequence(kernel):
    """With the cursor at frame 13 of 16, the producer's run of 6 takes frames 13-15 and 0-2:
    two strided batches, the second carrying on the sequence of the first."""
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 1, 256, 16))  # 16 frames back to back: runs of up to 8
        s.mmap()
        s.service("stream", count=13, size=64)
        assert [wire.check_seq_message(m) for m in s.messages(limit=13)] == list(range(13))
        s.service("stream", count=6, size=64, start=13)
        s.settle()
        assert [s.status("rx", i) for i in range(16)] == [Status.VALID] * 3 + [Status.UNUSED] * 10 + [
            Status.VALID] * 3
        assert [wire.check_seq_message(m) for m in s.messages(limit=6)] == list(range(13, 19))


def test_stream_over_frames_that_are_not_back_to_back(kernel):
    """A ring whose blocks leave a gap after their frames: the producer writes frame by frame,
    never into the gaps, and every message arrives once, in order, intact."""
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 4, 1536, 8))  # 2 frames per block, 1024 bytes of gap
        s.mmap()
        gaps = [s.frame_offset("rx", 2 * b + 1) + 1536 for b in range(4)]
        for g in gaps:
            s.mm[g:g + 1024] = b"\x5c" * 1024
        n = 300
        s.service("stream", count=n, size=200)
        assert [wire.check_seq_message(m) for m in s.messages(limit=n)] == list(range(n))
        assert all(s.mm[g:g + 1024] == b"\x5c" * 1024 for g in gaps)
        s.settle()
        assert s.stats()["drops"] == 0


def test_message_runs_delivers_every_message_once_in_order(kernel):
    n = 5000
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 8, 512, 64))  # uniform stride: 8 frames per block
        s.mmap()
        s.service("stream", count=n, size=100)
        seqs = []
        for buf, offs in s.message_runs(limit=n, max_run=16):
            assert len(offs) <= 16
            seqs.extend(wire.check_seq_message(buf[o:o + wire.SeqWriter(100).size]) for o in offs)
        assert seqs == list(range(n))
        s.settle()
        st = s.stats()
        assert st["drops"] == 0 and st["lost_wakeups"] == 0 and s.lost_wakeups == 0
        assert all(s.status("rx", i) == Status.UNUSED for i in range(64))


def test_runs_longer_than_the_readers_default_are_handed_back_whole(kernel):
    """``max_run`` above the default (256): a run of 1000 published frames is read (one strided
    read of its status words) and handed back in one piece."""
    n = 3000
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(16384, 32, 128, 4096))
        s.mmap()
        s.service("stream", count=n, size=64)
        s.settle()
        sizes, seqs = [], []
        for buf, offs in s.message_runs(limit=n, max_run=1000):
            sizes.append(len(offs))
            seqs.extend(wire.check_seq_message(buf[o:o + 64]) for o in offs)
        assert seqs == list(range(n)) and max(sizes) == 1000
        assert all(s.status("rx", i) == Status.UNUSED for i in range(4096))


def test_message_runs_mixed_frames_and_early_stop(kernel):
    """Multi-message frames, empty frames, a frame length past the frame, a COPY frame, and a
    run left VALID (then delivered again) when the caller stops."""
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 2, 512, 16))
        s.mmap()
        two = wire.build_seq_message(0, 64) + wire.build_seq_message(1, 64)
        for payload in (two, wire.build_seq_message(2, 64)):
            assert s.deliver(payload, path="ring") == "frame"
        s.service("stream", count=2, size=64, start=3)  # frames 2, 3
        s.settle()
        assert s.stats()["stream_sent"] == 2
        big = wire.build_seq_message(5, 600)  # too big for a frame: the COPY path, frame 4
        assert s.deliver(big, path="ring") == "copy"
        off = s.frame_offset("rx", 5)  # an empty VALID frame, then one with nm_len past its end
        struct.pack_into("=I", s.mm, off + 4, 0)
        s.set_status("rx", 5, Status.VALID)
        off = s.frame_offset("rx", 6)
        struct.pack_into("=I", s.mm, off + 4, 10_000)
        s.set_status("rx", 6, Status.VALID)
        got = []
        runs = s.message_runs()
        buf, offs = next(runs)
        got += [wire.check_seq_message(buf[o:o + 64]) for o in offs]
        assert got == [0, 1, 2, 3, 4]
        runs.close()  # stopped before asking for more: the run stays VALID
        assert s.status("rx", 0) == Status.VALID and s.rx_cursor == 0
        seen = []
        for buf, offs in s.message_runs(timeout=0):  # what is there now (all published above)
            for o in offs:
                ln = struct.unpack_from("=I", buf, o)[0]
                seen.append(wire.check_seq_message(buf[o:o + ln]))
        assert seen == [0, 1, 2, 3, 4, 5]
        assert all(s.status("rx", i) == Status.UNUSED for i in range(16))


def test_a_reader_waiting_when_the_kernel_side_dies_gets_econnreset():
    """The kernel side killed while the reader waits for a frame: the socket reaches its end,
    and ``messages()`` (no timeout) raises ECONNRESET instead of polling the dead socket forever
    (it did: poll() says readable at end of file, the reader drained nothing and slept again)."""
    import subprocess
    import sys

    code = """
import os, signal
from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec.abi import RingRequest
from nlmmap.spec.errors import NetlinkError
with KernelProcess() as k:
    s = RingSocket(k.path)
    s.set_rings(rx=RingRequest(4096, 4, 512, 32))
    s.mmap()
    s.service("stream", count=3, size=64)
    got = 0
    try:
        for m in s.messages():
            got += 1
            if got == 3:
                os.kill(k.proc.pid, signal.SIGKILL)
    except NetlinkError as e:
        print(got, e.errno)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["3", "ECONNRESET"], (r.stdout, r.stderr[-2000:])
