"""Faults: a user that dies mid-frame, closes with frames VALID, scribbles on any header or
status at any time, or writes an oversize nm_len. The kernel side keeps serving the others,
loses no message it accepted (each is taken by the user or counted undelivered) and counts drops.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import threading

import pytest

from nlmmap.impl import wire
from nlmmap.impl.client import RingSocket
from nlmmap.impl.kernel import KernelProcess
from nlmmap.spec import family
from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import RingRequest, Status
from nlmmap.spec.errors import NetlinkError


@pytest.fixture(scope="module")
def kernel():
    with KernelProcess() as k:
        yield k


def _stream_ok(path: str, n: int) -> None:
    with RingSocket(path) as s:
        s.set_rings(rx=RingRequest(4096, 8, 1024, 32))
        s.mmap()
        s.service("stream", count=n, size=100)
        expected = 0
        for m in s.messages(limit=n):
            assert wire.check_seq_message(m) == expected
            expected += 1
        assert expected == n and s.lost_wakeups == 0
        s.settle()
        assert s.stats()["lost_wakeups"] == 0


class _Bystander(threading.Thread):
    """Another user streaming meanwhile; ``check()`` re-raises what failed in its thread."""

    def __init__(self, path: str, n: int):
        super().__init__(daemon=True)
        self.path, self.n, self.error = path, n, None
        self.start()

    def run(self) -> None:
        try:
            _stream_ok(self.path, self.n)
        except BaseException as e:  # re-raised by check()
            self.error = e

    def check(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _retired(path: str, serial: int) -> dict:
    """The kernel side's final record of the socket of connection ``serial`` (it answers once it
    has reclaimed it; port ids are reused, serials are not)."""
    with RingSocket(path) as probe:
        return probe.retired(serial)


CHILD = r"""
import os, signal, sys
from nlmmap.impl import wire
from nlmmap.impl.client import RingSocket
from nlmmap.impl.server import _exit_with_parent
from nlmmap.spec.abi import NL_MMAP_HDRLEN as H, NM_LEN_OFFSET as L, RingRequest
_exit_with_parent()  # a test that fails or times out takes its child with it
s = RingSocket(sys.argv[1])
s.set_rings(rx=RingRequest(4096, 4, 512, 32), tx=RingRequest(4096, 1, 512, 8))
s.mmap()
s.service("stream", count=1000000, size=64)
k = 0
for m in s.messages(limit=int(sys.argv[2])):
    wire.check_seq_message(m)
    k += 1
off = s.frame_offset("rx", s.rx_cursor)
s.mm[off + L:off + H] = b"\xee" * (H - L)       # half-rewritten header of a frame it holds
s.mm[off + H:off + H + 40] = b"\xdd" * 40
t = s.frame_offset("tx", 0)
s.mm[t + H:t + H + 16] = b"\x01" * 16           # a TX frame half filled
print(s.serial, k, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_user_dies_mid_frame_others_keep_being_served(kernel):
    child = subprocess.Popen([sys.executable, "-c", CHILD, kernel.path, "500"], stdout=subprocess.PIPE)
    other = _Bystander(kernel.path, 30_000)
    out, _ = child.communicate()
    serial, taken = (int(x) for x in out.split())
    assert child.returncode == -9
    other.check()
    rec = _retired(kernel.path, serial)
    # every message the kernel published is either taken by the user or counted undelivered
    assert rec["ring_published"] == taken + rec["undelivered_at_close"]
    assert rec["undelivered_at_close"] >= 1
    assert rec["drops"] == 0  # backpressure, not loss
    _stream_ok(kernel.path, 1000)  # and the kernel side is still fine


def test_close_with_frames_valid_counts_them_undelivered(kernel):
    s = RingSocket(kernel.path)
    s.set_rings(rx=RingRequest(4096, 2, 512, 16))
    s.mmap()
    s.service("stream", count=100, size=64)
    s.settle()  # the ring is full: the producer waits
    assert s.stats()["stream_sent"] == 16
    for _ in s.messages(limit=3):
        pass
    s.settle()  # the ring is full again
    assert s.stats()["stream_sent"] == 19
    serial = s.serial
    s.close()
    rec = _retired(kernel.path, serial)
    assert rec["ring_published"] == 3 + rec["undelivered_at_close"]
    assert rec["undelivered_at_close"] == 16  # the ring was full again when the user left
    _stream_ok(kernel.path, 500)


def test_garbage_anywhere_at_any_time(kernel):
    """A thread writes random values into every header, status and payload word of both rings
    while the kernel streams into them and the user kicks the TX ring."""
    bystander = _Bystander(kernel.path, 20_000)
    with RingSocket(kernel.path, poll_timeout=0.2) as s:
        s.set_rings(rx=RingRequest(4096, 2, 256, 32), tx=RingRequest(4096, 1, 256, 16))
        s.mmap()
        s.service("stream", count=10**7, size=64)
        size = len(s.mm)
        stop = threading.Event()

        def scribbler() -> None:
            rng = random.Random(3)
            mm = s.mm
            while not stop.is_set():
                off = rng.randrange(0, size, 4)
                v = rng.choice((0, 1, 2, 3, 4, 0xFFFFFFFF, 10**6, rng.getrandbits(32)))
                mm[off:off + 4] = struct.pack("=I", v)

        t = threading.Thread(target=scribbler, daemon=True)
        t.start()
        errnos = set()
        try:
            for _ in range(300):
                for _m in s.messages(timeout=0, limit=50):
                    pass
                for i in range(16):
                    s.set_status("rx", i * 2, Status.UNUSED)
                try:
                    s.sendmsg(None)
                except NetlinkError as e:
                    errnos.add(e.errno)
                s.poll()
        finally:
            stop.set()
            t.join()
        assert errnos <= {"EINVAL", "ENOBUFS", "EAGAIN"}  # never EIO: no internal error
        st = s.stats()
        assert st["send_failures"] == 0
    bystander.check()
    _stream_ok(kernel.path, 500)


def test_oversize_nm_len_blocks_the_tx_ring_until_rewritten(kernel):
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 1, 512, 8), tx=RingRequest(4096, 1, 512, 8))
        s.mmap()
        msg = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 5, 0, b"")
        s.write_frame(0, msg)
        off = s.frame_offset("tx", 0)
        s.mm[off + 4:off + 8] = struct.pack("=I", 512 - 24 + 1)
        for _ in range(2):
            with pytest.raises(NetlinkError) as e:
                s.sendmsg(None)
            assert e.value.errno == "EINVAL"
            assert s.status("tx", 0) == Status.VALID  # untouched, the cursor stays on it
        s.mm[off + 4:off + 8] = struct.pack("=I", len(msg))
        assert s.sendmsg(None) == len(msg)
        assert s.status("tx", 0) == Status.UNUSED
        assert s.header("rx", 0).len == 36  # the ACK, built in the RX ring
        s.write_frame(1, b"")  # nm_len 0 is accepted and adds 0
        assert s.sendmsg(None) == 0 and s.status("tx", 1) == Status.UNUSED
        assert s.stats()["tx_rejected"] == 2


def test_ring_full_drops_are_counted_and_reported(kernel):
    with RingSocket(kernel.path) as s:
        s.set_rings(rx=RingRequest(4096, 1, 512, 8))
        s.mmap()
        ack_me = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 1, 0, b"")
        for _ in range(8):
            s.sendmsg(ack_me)
        assert s.deliver(b"\x10\0\0\0\x20\0\0\0" + bytes(8), "ring") == "dropped"
        assert s.stats()["drops"] == 1
        assert "POLLERR" in s.poll()
        with pytest.raises(NetlinkError) as e:
            s.recvmsg()
        assert e.value.errno == "ENOBUFS"
        with pytest.raises(NetlinkError) as e:
            s.recvmsg()
        assert e.value.errno == "EAGAIN"
        got = [bytes(m) for m in s.messages(timeout=0)]
        assert len(got) == 8 and all(nl.NlMsgHdr.unpack(m).type == nl.NLMSG_ERROR for m in got)


def test_the_wire_memo_never_mixes_up_arguments_or_shares_them():
    """Small answers are encoded and decoded from a memo: values equal in Python but not in JSON
    (True and 1, 0 and False) keep their own bytes, and every decode is a fresh dict."""
    import json

    cases = [{"bytes": True}, {"bytes": 1}, {"bytes": 0}, {"bytes": False}, {"bytes": None}, {"bytes": "1"},
             {"ok": True, "bytes": 36}, {"bytes": 36, "ok": True}, {"m": [1]}, {"x": 0.0}, {"x": -0.0}]
    for _ in range(2):  # the second round is served from the memo
        for args in cases:
            data = wire.encode(wire.REPLY, 0, args)
            assert data[4:] == json.dumps(args, separators=(",", ":")).encode(), args
            got = wire.decode(data)[2]
            assert got == args and list(got) == list(args) and [type(v) for v in got.values()] == [
                type(v) for v in args.values()], (args, got)
            got["mutated"] = 1
            assert "mutated" not in wire.decode(data)[2]


def test_port_ids_autobind_to_the_tgid_first_and_are_free_again_at_close():
    """netlink_autobind as Linux 4.5 (family.autobind_portid, tgid 1 as the recordings' agent):
    a socket opened while no other holds the tgid gets it, one opened beside it a negative port
    id below -4096, and a closed socket's port id is free at once for the next; each socket's
    retired record is its own (by serial), however often its port id is taken again."""
    with KernelProcess() as k:
        a = RingSocket(k.path)
        b = RingSocket(k.path)
        assert (a.portid, b.portid) == (1, family.AUTOBIND_ROVER_TOP & 0xFFFFFFFF)
        first = a.serial
        a.service("stream", count=3, size=64, mode="copy")
        a.settle()
        a.close()
        c = RingSocket(k.path)
        assert c.portid == 1 and c.serial != first  # taken again at once
        rec = _retired(k.path, first)
        assert rec["portid"] == 1 and rec["stream_sent"] == 3
        c.close()
        b.close()


def test_autobind_portid_is_the_tgid_else_the_highest_free_below_minus_4096():
    top = family.AUTOBIND_ROVER_TOP & 0xFFFFFFFF
    assert family.autobind_portid(1, []) == 1
    assert family.autobind_portid(1, [1]) == top == 0xFFFFEFFF
    assert family.autobind_portid(1, [1, top]) == top - 1
    assert family.autobind_portid(7, [1, top]) == 7
    assert family.autobind_portid(1, [-4097 & 0xFFFFFFFF, 1, top - 1]) == top - 2
