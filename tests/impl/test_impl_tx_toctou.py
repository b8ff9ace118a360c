"""TX: the kernel side acts only on bytes that passed validation, whatever the user writes.

The 2015 rule (kernel-protocol.md 11.2, 12.1): read ``nm_len`` once, copy the frame to private
memory, validate the copy, act on the copy. The echo service makes "what the kernel acted on"
visible: every message it acted on comes back on the RX ring.
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


@pytest.fixture(scope="module")
def kernel():
    with KernelProcess() as k:
        yield k


def _msg(seq: int, size: int = 64) -> bytes:
    return nl.build_message(0x7E, nl.NLM_F_REQUEST, seq, 0, bytes((seq & 0xFF,)) * (size - 16))


def test_rewriter_thread_never_makes_the_kernel_act_on_invalid_bytes(kernel):
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 16, 512, 128), tx=RingRequest(4096, 2, 512, 16))
        s.mmap()
        s.service("echo")
        tx_offs = [s.frame_offset("tx", i) + 24 for i in range(16)]
        stop = threading.Event()
        writes = [0]

        def rewriter() -> None:
            rng = random.Random(7)
            mm = s.mm
            while not stop.is_set():
                off = rng.choice(tx_offs)
                bad = rng.choice((0xFFFFFFFF, 3, 0x10000, 17, rng.getrandbits(32)))
                mm[off:off + 4] = struct.pack("=I", bad)  # the message's nlmsg_len
                writes[0] += 1

        t = threading.Thread(target=rewriter, daemon=True)
        t.start()
        sent = echoed = 0
        try:
            for rnd in range(1500):
                for k in range(8):
                    s.send(_msg(rnd * 8 + k))
                    sent += 1
                assert s.flush() == 8 * 64  # the kick returns the frames' nm_len sum
                for m in s.messages(timeout=0):
                    hdr = nl.NlMsgHdr.unpack(m)
                    # what the kernel acted on passed netlink_rcv_skb's checks on ITS copy
                    assert nl.NLMSG_HDRLEN <= hdr.len == len(m), f"acted on an invalid message {bytes(m[:16]).hex()}"
                    echoed += 1
        finally:
            stop.set()
            t.join()
        assert writes[0] > 0
        assert 0 < echoed < sent, "the rewriter should have invalidated some messages (else the test proves nothing)"
        assert s.stats()["drops"] == 0


def _acted_bytes_after_rewrite(kernel_args: list[str]) -> tuple[bytes, bytes]:
    with KernelProcess(args=kernel_args) as k, RingSocket(k.path) as s:
        s.set_rings(rx=RingRequest(4096, 1, 512, 8), tx=RingRequest(4096, 1, 512, 8))
        s.mmap()
        s.service("echo")
        msg = _msg(1)
        s.write_frame(0, msg)
        token = s.sendmsg(None, pause_after_validate=True)
        assert isinstance(token, Paused)
        assert s.status("tx", 0) == Status.UNUSED  # copied and released before validation
        off = s.frame_offset("tx", 0) + 24
        s.mm[off:off + len(msg)] = b"\xff" * len(msg)  # rewrite after validation
        assert s.resume(token) == len(msg)
        assert s.status("rx", 0) == Status.VALID
        return msg, bytes(s.payload("rx", 0))


def test_pause_after_validate_rewrite_is_not_acted_on():
    msg, acted = _acted_bytes_after_rewrite([])
    assert acted == msg


def test_the_check_catches_the_historical_validate_in_place_flaw():
    """The same check fails on the 3.10-style kernel (validate shared memory, act on a re-read)."""
    msg, acted = _acted_bytes_after_rewrite(["--flaw-tx-validate-in-place"])
    assert acted != msg and acted == b"\xff" * len(msg)
