"""TX: the kernel side acts only on bytes that passed validation, whatever the user writes.

The 2015 rule (kernel-protocol.md 11.2, 12.1): read ``nm_len`` once, copy the frame to private
memory, validate the copy, act on the copy. The echo service makes "what the kernel acted on"
visible: every message it acted on comes back in an RX frame, which the checks read RAW (status,
``nm_len``, bytes), never through the iterator (which skips malformed messages and so would hide
exactly what these tests look for). The same checks catch the known-bad kernel sides of
``flaws.py`` (the 3.10 validate-in-place flaw, and a walk without a copy).
"""

from __future__ import annotations

import random
import struct
import threading

import pytest

from nlmmap.impl.client import Paused, RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import RingRequest, Status

RX = RingRequest(4096, 16, 512, 128)
TX = RingRequest(4096, 2, 512, 16)


def _msg(seq: int, size: int = 64) -> bytes:
    return nl.build_message(0x7E, nl.NLM_F_REQUEST, seq, 0, bytes((seq & 0xFF,)) * (size - 16))


def _acted(s: RingSocket) -> list[bytes]:
    """The raw contents of the VALID RX frames from the reader's cursor on (each released), as
    the kernel wrote them: ``nm_len`` bytes at +24, whatever they are."""
    out = []
    n = s.layout.rx.frame_nr
    while s.status("rx", s.rx_cursor) == Status.VALID:
        h = s.header("rx", s.rx_cursor)
        with s.payload("rx", s.rx_cursor, h.len) as p:
            out.append(bytes(p))
        s.release(s.rx_cursor)
        s.rx_cursor = (s.rx_cursor + 1) % n
    return out


def _well_formed(m: bytes) -> bool:
    """One netlink message that passed netlink_rcv_skb's checks: 16 <= nlmsg_len == its length."""
    return len(m) >= nl.NLMSG_HDRLEN and struct.unpack_from("=I", m)[0] == len(m)


def _pause_rounds(kernel_path: str, rounds: int = 60) -> list[tuple[bytes, bytes | None, list[bytes]]]:
    """Each round: a message (valid or not, seeded) in TX frame 0 of a fresh ring cursor, a kick
    paused after the copy, a rewrite of the frame (garbage or another valid message), resume.
    Returns (message at copy time, what the copy should make the kernel echo, what it echoed)."""
    rng = random.Random(11)
    out = []
    with RingSocket(kernel_path) as s:
        s.set_rings(rx=RX, tx=TX)
        s.mmap()
        s.service("echo")
        for r in range(rounds):
            i = s.tx_cursor
            msg = bytearray(_msg(r))
            valid = rng.random() < 0.7
            if not valid:  # the copy itself is malformed: nothing may be acted on
                struct.pack_into("=I", msg, 0, rng.choice((3, 15, len(msg) + 1, 0xFFFFFFFF)))
            s.write_frame(i, bytes(msg))
            token = s.sendmsg(None, pause_after_validate=True)
            assert isinstance(token, Paused)
            assert s.status("tx", i) == Status.UNUSED  # copied and released before acting
            off = s.frame_offset("tx", i) + 24
            if rng.random() < 0.5:
                s.mm[off:off + len(msg)] = bytes(rng.getrandbits(8) for _ in range(len(msg)))
            else:
                s.mm[off:off + len(msg)] = _msg(r + 1000)
            assert s.resume(token) == len(msg)  # the kick returns the frame's nm_len
            s.tx_cursor = (i + 1) % TX.frame_nr
            out.append((bytes(msg), bytes(msg) if valid else None, _acted(s)))
    return out


def _check_rounds(rounds: list[tuple[bytes, bytes | None, list[bytes]]]) -> None:
    for k, (msg, want, got) in enumerate(rounds):
        assert got == ([want] if want is not None else []), (
            f"round {k}: the kernel acted on {[g[:16].hex() for g in got]}, its copy held {msg[:16].hex()}")


def test_rewrite_after_validation_is_never_acted_on():
    with KernelProcess() as k:
        _check_rounds(_pause_rounds(k.path))


@pytest.mark.parametrize("name", ["ValidateInPlace", "ZeroCopyTx"])
def test_the_check_catches_a_kernel_that_acts_on_shared_bytes(flaw, name):
    """The same rounds against a known-bad kernel side (flaws.py): the check must fail (the
    rewrite is acted on)."""
    with KernelProcess(socket_class=flaw(name)) as k:
        rounds = _pause_rounds(k.path)
    with pytest.raises(AssertionError, match="acted on"):
        _check_rounds(rounds)


def test_rewriter_thread_never_makes_the_kernel_act_on_invalid_bytes():
    """A thread attacks the odd TX frames while the user fills and kicks all of them: it rewrites
    a frame's nlmsg_len the moment it sees the kernel release the frame (the TOCTOU window of a
    kernel that re-reads) and, now and then, at any other time. Whatever the kernel acted on is
    well formed and was written by the user; the even frames (never touched) always come back,
    and each round one odd frame is invalid before the kick: deterministic bounds."""
    rounds = 400
    with KernelProcess() as k, RingSocket(k.path) as s:
        s.set_rings(rx=RX, tx=TX)
        s.mmap()
        s.service("echo")
        odd = [s.frame_offset("tx", i) for i in range(1, TX.frame_nr, 2)]
        stop = threading.Event()
        writes = [0]

        def rewriter() -> None:
            rng = random.Random(7)
            mm, ld = s.mm, s.at.load_acquire
            seen = [0] * len(odd)
            while not stop.is_set():
                for x, off in enumerate(odd):
                    now = ld(off)
                    if (seen[x] == Status.VALID and now == Status.UNUSED) or rng.random() < 0.01:
                        bad = rng.choice((0xFFFFFFFF, 3, 0x10000, 17, rng.getrandbits(32)))
                        mm[off + 24:off + 28] = struct.pack("=I", bad)
                        writes[0] += 1
                    seen[x] = now

        t = threading.Thread(target=rewriter, daemon=True)
        t.start()
        written: dict[int, bytes] = {}  # nlmsg_seq -> the message as the user wrote it
        echoed: list[bytes] = []
        try:
            for rnd in range(rounds):
                for j in range(8):
                    m = _msg(rnd * 8 + j)
                    written[rnd * 8 + j] = m
                    s.send(m)
                off = s.frame_offset("tx", (s.tx_cursor - 1) % TX.frame_nr) + 24
                s.mm[off:off + 4] = struct.pack("=I", 3)  # the last frame of the round (odd): invalid
                assert s.flush() == 8 * 64  # the kick returns the frames' nm_len sum
                echoed += _acted(s)
        finally:
            stop.set()
            t.join()
        # well formed, and the bytes of a message the user wrote (only its nlmsg_len rewritten)
        bad = [m[:16].hex() for m in echoed if not _well_formed(m)
               or written.get(struct.unpack_from("=I", m, 8)[0], b"")[4:len(m)] != m[4:]]
        assert not bad, f"the kernel acted on {len(bad)} messages that were never valid: {bad[:3]}"
        assert rounds * 4 <= len(echoed) <= rounds * 7
        assert writes[0] > 0 and s.stats()["drops"] == 0
