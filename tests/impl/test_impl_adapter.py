"""``python -m nlmmap.impl.adapter`` speaks nlmmap-adapter/1: every op of the protocol table,
shared-memory mode (the mmap path maps the kernel side's very pages) and proxied peek/poke."""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys

import pytest

from nlmmap.spec import netlink as nl
from nlmmap.spec.abi import RingRequest
from nlmmap.spec.adapter import FEATURES, PROTOCOL


class Adapter:
    def __init__(self, *args: str) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "nlmmap.impl.adapter", *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.n = 0

    def __call__(self, op: str, **args) -> dict:
        self.n += 1
        req = {"id": self.n, "op": op, **args}
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        ans = json.loads(self.p.stdout.readline())
        assert ans["id"] == self.n
        return ans

    def ok(self, op: str, **args) -> dict:
        ans = self(op, **args)
        assert ans["ok"], ans
        return ans


@pytest.fixture
def adapter():
    a = Adapter()
    yield a
    if a.p.poll() is None:
        a.p.kill()
        a.p.wait()


def _hdr(status: int, length: int) -> str:
    return (status.to_bytes(4, "little") + length.to_bytes(4, "little")).hex()


def test_every_op(adapter):
    a = adapter
    h = a.ok("hello", protocol=PROTOCOL)
    assert h["protocol"] == PROTOCOL and set(h["features"]) == set(FEATURES) and h["page_size"] == 4096
    s = a.ok("socket")
    sock, portid = s["sock"], s["portid"]
    assert portid > 0
    geo = RingRequest(4096, 1, 1024, 4).pack().hex()
    assert a("setsockopt", sock=sock, option="NETLINK_RX_RING", optval=geo[:30])["errno"] == "EINVAL"
    a.ok("setsockopt", sock=sock, option="NETLINK_RX_RING", optval=geo)
    a.ok("setsockopt", sock=sock, option="NETLINK_TX_RING", optval=geo)
    assert a("setsockopt", sock=sock, option="NETLINK_TX_RING", optval=geo)["errno"] == "EBUSY"
    a.ok("setsockopt", sock=sock, option="NETLINK_NO_ENOBUFS", optval="00000000")
    assert a("mmap", sock=sock, length=4096)["errno"] == "EINVAL"
    path = a.ok("mmap", sock=sock, length=8192)["path"]
    assert path and path.startswith("/proc/")
    assert a("setsockopt", sock=sock, option="NETLINK_RX_RING", optval="00" * 16)["errno"] == "EBUSY"
    fd = os.open(path, os.O_RDWR)
    shared = mmap.mmap(fd, 8192)
    os.close(fd)
    try:
        # deliver: ring path (a kernel subsystem builds it in a frame), copy path, multicast
        msg = nl.build_message(0x20, 0, 1, 0, b"abcd")
        assert a.ok("deliver", sock=sock, payload=msg.hex(), path="ring")["outcome"] == "frame"
        assert shared[0:8].hex() == _hdr(2, len(msg)) and shared[24:24 + len(msg)] == msg  # shared mode
        assert a.ok("peek", sock=sock, offset=0, length=24 + len(msg))["data"] == shared[:24 + len(msg)].hex()
        assert a.ok("deliver", sock=sock, payload=msg.hex(), path="copy")["outcome"] == "copy"
        assert a.ok("deliver", sock=sock, payload=msg.hex(), path="copy", group=3)["outcome"] == "copy"
        assert shared[1024 + 8:1024 + 12] == b"\0\0\0\0" and shared[2048 + 8:2048 + 12] == b"\3\0\0\0"
        assert set(a.ok("poll", sock=sock)["revents"]) == {"POLLIN", "POLLOUT"}
        r = a.ok("recvmsg", sock=sock, bufsize=8)
        assert r["payload"] == msg[:8].hex() and r["truncated"] is True
        assert a.ok("recvmsg", sock=sock, bufsize=4096)["payload"] == msg.hex()
        assert a("recvmsg", sock=sock, bufsize=4096)["errno"] == "EAGAIN"
        for off in (0, 1024, 2048):
            a.ok("poke", sock=sock, offset=off, data="00000000")
        assert shared[0:4] == b"\0\0\0\0"
        # ring full (frame 3 only is free): one ACK fits, the next is lost with ENOBUFS
        a.ok("poke", sock=sock, offset=0, data="02000000")
        a.ok("poke", sock=sock, offset=1024, data="02000000")
        a.ok("poke", sock=sock, offset=2048, data="04000000")  # SKIP: stepped over by the ring path
        noop = nl.build_message(nl.NLMSG_NOOP, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 9, 0, b"")
        assert a.ok("sendmsg", sock=sock, payload=noop.hex())["bytes"] == 16
        assert shared[3072:3076] == b"\2\0\0\0"
        a.ok("sendmsg", sock=sock, payload=noop.hex(), to="kernel")
        assert "POLLERR" in a.ok("poll", sock=sock)["revents"]
        assert a("recvmsg", sock=sock, bufsize=64)["errno"] == "ENOBUFS"
        # TX: fill frame 0 through poke, kick to the peer; then a paused kick and resume
        tx = 4096
        body = nl.build_message(0x30, 0, 2, 0, b"x" * 8)
        a.ok("poke", sock=sock, offset=tx + 24, data=body.hex())
        a.ok("poke", sock=sock, offset=tx + 4, data=len(body).to_bytes(4, "little").hex())
        a.ok("poke", sock=sock, offset=tx, data="02000000")
        assert a.ok("sendmsg", sock=sock, payload=None, to="peer")["bytes"] == len(body)
        assert a.ok("received", sock=sock)["messages"] == [body.hex()]
        assert a.ok("sendmsg", sock=sock, payload="0102", to="peer")["bytes"] == 2
        assert a.ok("received", sock=sock)["messages"] == ["0102"]
        shared[tx + 1024 + 24:tx + 1024 + 24 + len(body)] = body  # write through the shared mapping
        shared[tx + 1024 + 4:tx + 1024 + 8] = len(body).to_bytes(4, "little")
        shared[tx + 1024:tx + 1024 + 4] = b"\2\0\0\0"
        paused = a.ok("sendmsg", sock=sock, payload=None, to="peer", pause_after_validate=True)
        assert "paused" in paused
        assert a.ok("peek", sock=sock, offset=tx + 1024, length=4)["data"] == "00000000"
        assert a.ok("resume", token=paused["paused"])["bytes"] == len(body)
        assert a.ok("received", sock=sock)["messages"] == [body.hex()]
        assert a("resume", token=paused["paused"])["errno"] == "EINVAL"
        assert a("peek", sock=sock, offset=8190, length=4)["errno"] == "EFAULT"
    finally:
        shared.close()
    a.ok("close", sock=sock)
    assert a("poll", sock=sock)["errno"] == "EBADF"
    assert a("frobnicate")["errno"] == "ENOSYS"
    a.ok("bye")
    assert a.p.wait(10) == 0


def test_blocking_recvmsg_answers_eagain_after_its_bound(adapter):
    """``dontwait: false`` on an empty queue: EAGAIN after at most 1 s, as the real-kernel agent."""
    sock = adapter.ok("socket")["sock"]
    assert adapter("recvmsg", sock=sock, bufsize=64, dontwait=False)["errno"] == "EAGAIN"
    msg = nl.build_message(0x20, 0, 1, 0, b"abcd")
    assert adapter.ok("deliver", sock=sock, payload=msg.hex(), path="copy")["outcome"] == "copy"
    assert adapter.ok("recvmsg", sock=sock, bufsize=64, dontwait=False)["payload"] == msg.hex()


def test_group_range_is_the_familys(adapter):
    """Groups 1..FAMILY_GROUPS (32) for membership options and deliveries; 0 and 33 are EINVAL."""
    from nlmmap.spec.family import FAMILY_GROUPS

    sock = adapter.ok("socket")["sock"]
    for g, ok in ((0, False), (1, True), (FAMILY_GROUPS, True), (FAMILY_GROUPS + 1, False)):
        ans = adapter("setsockopt", sock=sock, option="NETLINK_ADD_MEMBERSHIP", optval=g.to_bytes(4, "little").hex())
        assert ans["ok"] is ok and (ok or ans["errno"] == "EINVAL"), (g, ans)
    msg = nl.build_message(0x20, 0, 1, 0, b"abcd").hex()
    assert adapter.ok("deliver", sock=sock, payload=msg, path="copy", group=FAMILY_GROUPS)["outcome"] == "copy"
    assert adapter("deliver", sock=sock, payload=msg, path="copy", group=FAMILY_GROUPS + 1)["errno"] == "EINVAL"


def test_socket_class_option_names_a_bad_class_as_a_usage_error():
    r = subprocess.run([sys.executable, "-m", "nlmmap.impl.adapter", "--socket-class", "nlmmap.impl.wire:SeqWriter"],
                       input="", capture_output=True, text=True)
    assert r.returncode == 2 and "not a subclass" in r.stderr


def test_socket_class_option_runs_a_mutant(flaw):
    """``--socket-class`` starts the kernel side with a subclass: a kernel that acts on the frame's
    bytes after the pause echoes the rewrite (the correct one, the original: test_every_op)."""
    a = Adapter("--socket-class", flaw("ValidateInPlace"))
    try:
        sock = a.ok("socket")["sock"]
        geo = RingRequest(4096, 1, 1024, 4).pack().hex()
        a.ok("setsockopt", sock=sock, option="NETLINK_RX_RING", optval=geo)
        a.ok("setsockopt", sock=sock, option="NETLINK_TX_RING", optval=geo)
        a.ok("mmap", sock=sock, length=8192)
        body = nl.build_message(0x30, 0, 2, 0, b"x" * 8)
        a.ok("poke", sock=sock, offset=4096 + 24, data=body.hex())
        a.ok("poke", sock=sock, offset=4096 + 4, data=len(body).to_bytes(4, "little").hex())
        a.ok("poke", sock=sock, offset=4096, data="02000000")
        token = a.ok("sendmsg", sock=sock, payload=None, to="peer", pause_after_validate=True)["paused"]
        a.ok("poke", sock=sock, offset=4096 + 24, data=(b"y" * len(body)).hex())
        assert a.ok("resume", token=token)["bytes"] == len(body)
        assert a.ok("received", sock=sock)["messages"] == [(b"y" * len(body)).hex()]
        a.ok("bye")
    finally:
        if a.p.poll() is None:
            a.p.kill()
        a.p.wait()


def test_replays_the_real_kernel_transcript(shared_file):
    """Every recorded real-kernel case agrees; a skipped case fails the test too."""
    replay = shared_file("tools/replay-transcript")
    r = subprocess.run([sys.executable, str(replay), "--", sys.executable, "-m", "nlmmap.impl.adapter"],
                       capture_output=True, text=True, timeout=240)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0, r.stdout[-3000:]
    agree, total = last.split()[1].split("/")
    assert agree == total and "(0 skipped)" in last, last
